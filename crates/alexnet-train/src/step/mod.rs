//! One training step: the loss, the gradients of a batch over one or several devices
//! (data parallelism), the finiteness checks, and the optimizer step with loss scaling.

mod clip;
mod finite;
mod gradients;

use alexnet_model::AlexNet;
use burn::{optim::ModuleOptimizer, prelude::*, tensor::FloatDType};
pub use clip::{clip_grad_norm, gradient_norm};
pub(crate) use finite::all_finite;
pub use gradients::{BatchGradients, GradientOptions, ShardThreads, batch_gradients};

use crate::{
    data::ImageBatch,
    distributed::{ProcessGroup, ReducedGradients},
    error::{Result, TrainError},
    optim::LossScaler,
};

/// Negative log-likelihood of `targets` under `log_probs` (mean over the batch).
pub fn nll_loss(log_probs: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let [n, _] = log_probs.dims();
    log_probs.gather(1, targets.reshape([n, 1])).mean().neg()
}

/// The training loss: [`nll_loss`] with label smoothing `smoothing` (ε), as PyTorch's
/// `F.cross_entropy(…, label_smoothing=ε)` on the logits these are the log-softmax of:
/// the target's share is 1 − ε and every class gets ε / classes more, so the loss is
/// (1 − ε) · NLL + ε · the mean over classes of −log p (each averaged over the batch).
/// `smoothing == 0` is [`nll_loss`] exactly.
pub fn training_loss(log_probs: Tensor<2>, targets: Tensor<1, Int>, smoothing: f64) -> Tensor<1> {
    if smoothing == 0.0 {
        return nll_loss(log_probs, targets);
    }
    let uniform = log_probs.clone().mean().neg();
    nll_loss(log_probs, targets)
        .mul_scalar(1.0 - smoothing)
        .add(uniform.mul_scalar(smoothing))
}

/// The host copy of a `[n, classes]` tensor of log-probabilities.
pub(crate) fn to_host(tensor: Tensor<2>) -> Result<Vec<f32>> {
    tensor
        .try_to_vec_as::<f32>()
        .map_err(|source| TrainError::TensorRead {
            what: "log-probabilities",
            source,
        })
}

/// One optimizer step's outcome.
#[derive(Debug, Clone)]
pub struct StepOutcome {
    /// The batch's mean loss (over every rank's share of it).
    pub loss: f32,
    /// Images in the batch (over every rank's share of it).
    pub images: usize,
    /// This rank's log-probabilities, row-major `[n, classes]`.
    pub log_probs: Vec<f32>,
    /// Whether the optimizer step was taken.
    pub applied: bool,
    /// Some gradient was NaN or infinite (the step was not applied).
    pub non_finite_grads: bool,
    /// The global gradient norm before clipping, where clipping is on.
    pub grad_norm: Option<f64>,
}

/// The training step as the trainer takes it: the batch's gradients over the devices,
/// summed over the ranks of a distributed run, then one optimizer step, with f16 loss
/// scaling.
pub struct Stepper {
    /// The devices the batch is split across (autodiff); the first holds the model.
    pub devices: Vec<Device>,
    /// Compute precision.
    pub dtype: FloatDType,
    /// The optimizer.
    pub optim: ModuleOptimizer,
    /// f16's loss scaling; `None` in f32 and bf16.
    pub scaler: Option<LossScaler>,
    /// Whether to look for non-finite gradients (the trainer always does: a step with
    /// one is not applied).
    pub check_finite: bool,
    /// The ranks the global batch is split across (one process: [`ProcessGroup::local`]).
    /// Each rank's batch is its share; the step sums the shares' gradients.
    pub group: ProcessGroup,
    /// Label smoothing ε of the training loss ([`training_loss`]; 0: none).
    pub label_smoothing: f64,
    /// Clip the summed gradients to this global norm ([`clip_grad_norm`]); `None`: no
    /// clipping.
    pub clip_grad_norm: Option<f64>,
}

impl Stepper {
    /// The loss scale the next step uses (1 without loss scaling).
    pub fn loss_scale(&self) -> f32 {
        self.scaler.as_ref().map_or(1.0, LossScaler::scale)
    }

    /// Gradients over the devices and ranks, then one SGD step. A step whose loss or
    /// gradients are not finite is not applied: under f16 it is an overflow (the scale
    /// backs off, see [`LossScaler`]); in f32 the caller stops. Every rank sees the same
    /// summed gradients, so every rank makes the same decision and the same step.
    pub fn step(
        &mut self,
        model: AlexNet,
        batch: ImageBatch,
        lr: f64,
    ) -> Result<(AlexNet, StepOutcome)> {
        let distributed = self.group.size() > 1;
        let options = GradientOptions {
            loss_scale: self.loss_scale(),
            // Across ranks the summed gradients are checked on the host instead.
            check_finite: self.check_finite && !distributed,
            label_smoothing: self.label_smoothing,
            ..GradientOptions::new(self.dtype)
        };
        let images = batch.classes.len();
        let BatchGradients {
            grads,
            loss,
            log_probs,
            non_finite,
        } = batch_gradients(&model, &self.devices, batch.images, batch.targets, &options)?;
        let ReducedGradients {
            grads,
            loss,
            images,
            non_finite,
        } = if distributed {
            self.group.reduce_gradients(&model, grads, loss, images)?
        } else {
            ReducedGradients {
                grads,
                loss,
                images,
                non_finite,
            }
        };
        let applied = !non_finite && loss.is_finite();
        let mut grad_norm = None;
        let model = if applied {
            let grads = match self.clip_grad_norm {
                Some(max_norm) => {
                    let (grads, norm) = clip_grad_norm(&model, grads, max_norm)?;
                    grad_norm = Some(norm);
                    grads
                }
                None => grads,
            };
            self.optim.step(lr, model, grads)
        } else {
            model
        };
        if let Some(scaler) = self.scaler.as_mut() {
            if applied {
                scaler.stepped();
            } else {
                scaler.overflowed();
            }
        }
        let outcome = StepOutcome {
            loss,
            images,
            log_probs,
            applied,
            non_finite_grads: non_finite,
            grad_norm,
        };
        Ok((model, outcome))
    }
}
