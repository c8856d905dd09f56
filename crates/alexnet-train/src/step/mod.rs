//! One training step: the loss, the gradients of a batch over one or several devices
//! (data parallelism), the finiteness checks, and the optimizer step with loss scaling.

use alexnet_model::AlexNet;
use burn::{
    module::{Module, ModuleVisitor, Param, RunningState},
    nn::BatchNorm,
    optim::{GradientsParams, ModuleOptimizer},
    prelude::*,
    tensor::FloatDType,
};

use crate::{
    data::ImageBatch,
    distributed::{ProcessGroup, ReducedGradients},
    error::{Result, TrainError},
    loss_scale::LossScaler,
};

/// Negative log-likelihood of `targets` under `log_probs` (mean over the batch).
pub fn nll_loss(log_probs: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let [n, _] = log_probs.dims();
    log_probs.gather(1, targets.reshape([n, 1])).mean().neg()
}

/// Combines per-device gradients into one set on the main device: a weighted sum, then
/// divided by the loss scale. Also sums every gradient value (read back once): the sum is
/// finite exactly when every gradient is (short of a sum past `f32::MAX`, itself a
/// divergence), at the cost of one read of the gradients.
struct GradientCombiner<'a> {
    shards: Vec<(GradientsParams, f64)>,
    out: GradientsParams,
    device: &'a Device,
    unscale: f64,
    total: Option<Tensor<1>>,
    check: bool,
}

impl ModuleVisitor for GradientCombiner<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let mut total: Option<Tensor<D>> = None;
        for (grads, weight) in self.shards.iter_mut() {
            if let Some(grad) = grads.remove::<D>(param.id) {
                let grad = grad.to_device(self.device);
                let grad = if *weight == 1.0 {
                    grad
                } else {
                    grad.mul_scalar(*weight)
                };
                total = Some(match total {
                    Some(sum) => sum + grad,
                    None => grad,
                });
            }
        }
        if let Some(mut grad) = total {
            if self.unscale != 1.0 {
                grad = grad.mul_scalar(self.unscale);
            }
            if self.check {
                add_to(&mut self.total, grad.clone().sum());
            }
            self.out.register(param.id, grad);
        }
    }
}

/// Adds `value` to the running `total` (the first value starts it).
pub(crate) fn add_to(total: &mut Option<Tensor<1>>, value: Tensor<1>) {
    *total = Some(match total.take() {
        Some(sum) => sum + value,
        None => value,
    });
}

/// Whether a sum built by [`add_to`] is finite (read back once); no sum is finite.
pub(crate) fn sum_is_finite(total: Option<Tensor<1>>) -> Result<bool> {
    match total {
        Some(total) => Ok(total
            .try_into_scalar::<f32>()
            .map_err(|source| TrainError::TensorRead {
                what: "a gradient or parameter sum",
                source,
            })?
            .is_finite()),
        None => Ok(true),
    }
}

/// Sums every float value of a module (parameters and BatchNorm statistics).
struct ValueSum(Option<Tensor<1>>);

impl ModuleVisitor for ValueSum {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        add_to(&mut self.0, param.val().sum());
    }
}

/// Whether every parameter and BatchNorm statistic of `model` is finite.
pub(crate) fn all_finite(model: &AlexNet) -> Result<bool> {
    let mut sum = ValueSum(None);
    model.visit(&mut sum);
    sum_is_finite(sum.0)
}

/// A replica whose BatchNorm running statistics are its own: its updates are discarded.
/// `Clone` shares them (Burn's `RunningState` is behind an `Arc`), so without this every
/// shard would update the model's statistics (see [`batch_gradients`]).
fn with_private_statistics(mut replica: AlexNet) -> AlexNet {
    let detach = |norm: &mut BatchNorm| {
        norm.running_mean = RunningState::new(norm.running_mean.value());
        norm.running_var = RunningState::new(norm.running_var.value());
    };
    for block in [
        &mut replica.conv1,
        &mut replica.conv2,
        &mut replica.conv3,
        &mut replica.conv4,
        &mut replica.conv5,
    ] {
        if let Some(norm) = block.norm.as_mut() {
            detach(norm);
        }
    }
    for norm in [replica.norm1.as_mut(), replica.norm2.as_mut()]
        .into_iter()
        .flatten()
    {
        detach(norm);
    }
    replica
}

/// The gradients of one batch, possibly computed on several devices.
pub struct BatchGradients {
    /// The gradients of the mean loss over the whole batch, on the first device,
    /// divided by the loss scale.
    pub grads: GradientsParams,
    /// The mean loss over the batch (unscaled).
    pub loss: f32,
    /// The model's log-probabilities, row-major `[n, classes]`, on the host.
    pub log_probs: Vec<f32>,
    /// Whether any gradient is NaN or infinite (only looked at when asked for).
    pub non_finite: bool,
}

/// Where the shards of a batch run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShardThreads {
    /// Shards on distinct devices run on threads of their own; shards on handles of one
    /// device (`flex,flex`) take turns on the calling thread, which keeps dropout draws
    /// from that device's one generator in a fixed order.
    #[default]
    PerDevice,
    /// Every shard after the first on a thread of its own, even on one device: the
    /// multi-device path on a CPU (for tests). Dropout draws from one device's generator
    /// then race, so runs with dropout are not reproducible this way.
    PerShard,
}

/// How [`batch_gradients`] computes a batch's gradients.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradientOptions {
    /// Compute precision.
    pub dtype: FloatDType,
    /// The loss is multiplied by this before the backward pass, the gradients divided
    /// by it after (f16 loss scaling; 1 otherwise).
    pub loss_scale: f32,
    /// Whether to look for non-finite gradients ([`BatchGradients::non_finite`]).
    pub check_finite: bool,
    /// Where the shards run.
    pub threads: ShardThreads,
}

impl GradientOptions {
    /// Computing in `dtype`, unscaled, unchecked, shards on threads per device.
    pub fn new(dtype: FloatDType) -> Self {
        Self {
            dtype,
            loss_scale: 1.0,
            check_finite: false,
            threads: ShardThreads::PerDevice,
        }
    }
}

/// Forward and backward of `images`/`targets` split into contiguous shares across
/// `devices` (data parallelism), the shares' gradients weighted by their size and summed
/// on the first device: the gradient of the mean loss over the whole batch.
///
/// BatchNorm running statistics follow PyTorch `DataParallel`'s rule: the first shard
/// (on the first device, run on the calling thread) updates them from its own batch
/// statistics, once per step; the other shards' updates are discarded. Burn commits a
/// thread's pending update when the same thread updates again, so the calling thread,
/// which lives for the whole run, keeps them a per-step moving average.
pub fn batch_gradients(
    model: &AlexNet,
    devices: &[Device],
    images: Tensor<4>,
    targets: Tensor<1, Int>,
    options: &GradientOptions,
) -> Result<BatchGradients> {
    let &GradientOptions {
        dtype,
        loss_scale,
        check_finite,
        threads,
    } = options;
    let [n] = targets.dims();
    let shards = devices.len().clamp(1, n.max(1));
    let base = n / shards;
    let mut start = 0;
    let jobs: Vec<(usize, usize, Device)> = (0..shards)
        .map(|k| {
            let len = base + usize::from(k < n % shards);
            let job = (start, len, devices[k].clone());
            start += len;
            job
        })
        .collect();
    let run_shard = |replica: &AlexNet,
                     images: Tensor<4>,
                     targets: Tensor<1, Int>|
     -> Result<(GradientsParams, f32, Vec<f32>)> {
        let log_probs = replica.forward(images, dtype)?;
        let loss = nll_loss(log_probs.clone(), targets);
        let loss_value =
            loss.clone()
                .try_into_scalar::<f32>()
                .map_err(|source| TrainError::TensorRead {
                    what: "the loss",
                    source,
                })?;
        let grads = if loss_scale == 1.0 {
            loss.backward()
        } else {
            loss.mul_scalar(loss_scale).backward()
        };
        let grads = GradientsParams::from_grads(grads, replica);
        Ok((grads, loss_value, to_host(log_probs.detach())?))
    };
    let shard_of = |(start, len, device): &(usize, usize, Device)| {
        (
            images.clone().narrow(0, *start, *len).to_device(device),
            targets.clone().narrow(0, *start, *len).to_device(device),
        )
    };
    let replica_for = |device: &Device| with_private_statistics(model.clone()).fork(device);
    let mut results = Vec::with_capacity(shards);
    let one_device = jobs.iter().all(|(_, _, device)| *device == devices[0]);
    if shards == 1 {
        results.push(run_shard(model, images, targets)?);
    } else if one_device && threads == ShardThreads::PerDevice {
        for (k, job) in jobs.iter().enumerate() {
            let (images, targets) = shard_of(job);
            if k == 0 {
                results.push(run_shard(model, images, targets)?);
            } else {
                results.push(run_shard(&replica_for(&job.2), images, targets)?);
            }
        }
    } else {
        // The other shards on their own threads (Burn's ops on one device are not blocked
        // by another's); the first on this one.
        let outputs = std::thread::scope(|scope| {
            let handles: Vec<_> = jobs[1..]
                .iter()
                .map(|job| {
                    let (images, targets) = shard_of(job);
                    let replica = replica_for(&job.2);
                    let run_shard = &run_shard;
                    scope.spawn(move || run_shard(&replica, images, targets))
                })
                .collect();
            let (images, targets) = shard_of(&jobs[0]);
            let mut outputs = vec![run_shard(model, images, targets)];
            outputs.extend(handles.into_iter().map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(TrainError::ShardPanicked))
            }));
            outputs
        });
        for output in outputs {
            results.push(output?);
        }
    }
    let mut loss = 0.0f64;
    let mut log_probs = Vec::new();
    let mut weighted = Vec::with_capacity(results.len());
    for ((grads, shard_loss, shard_log_probs), (_, len, _)) in results.into_iter().zip(&jobs) {
        let weight = *len as f64 / n as f64;
        loss += f64::from(shard_loss) * weight;
        log_probs.extend(shard_log_probs);
        weighted.push((grads, weight));
    }
    let mut combiner = GradientCombiner {
        shards: weighted,
        out: GradientsParams::new(),
        device: &devices[0],
        unscale: 1.0 / f64::from(loss_scale),
        total: None,
        check: check_finite,
    };
    model.visit(&mut combiner);
    let non_finite = !sum_is_finite(combiner.total.take())?;
    Ok(BatchGradients {
        grads: combiner.out,
        loss: loss as f32,
        log_probs,
        non_finite,
    })
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
        let model = if applied {
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
        };
        Ok((model, outcome))
    }
}
