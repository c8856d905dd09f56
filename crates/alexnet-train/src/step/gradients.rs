//! The gradients of a batch over one or several devices (data parallelism in one
//! process).

use std::ops::Range;

use alexnet_model::AlexNet;
use burn::{
    module::{Module, ModuleVisitor, Param},
    optim::GradientsParams,
    prelude::*,
    tensor::FloatDType,
};

use super::{
    finite::{add_to, sum_is_finite},
    to_host, training_loss,
};
use crate::{
    data::share_of,
    error::{Result, TrainError},
};

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
    /// Label smoothing ε of the loss ([`super::training_loss`]; 0: none).
    pub label_smoothing: f64,
}

impl GradientOptions {
    /// Computing in `dtype`, unscaled, unchecked, shards on threads per device, no label
    /// smoothing.
    pub fn new(dtype: FloatDType) -> Self {
        Self {
            dtype,
            loss_scale: 1.0,
            check_finite: false,
            threads: ShardThreads::PerDevice,
            label_smoothing: 0.0,
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
    let [n] = targets.dims();
    let parts = devices.len().clamp(1, n.max(1));
    let shards: Vec<Shard> = (0..parts)
        .map(|k| Shard {
            rows: share_of(n, k, parts),
            device: devices[k].clone(),
        })
        .collect();
    let outputs = shard_outputs(model, &shards, images, targets, options)?;
    let mut loss = 0.0f64;
    let mut log_probs = Vec::new();
    let mut weighted = Vec::with_capacity(outputs.len());
    for (output, shard) in outputs.into_iter().zip(&shards) {
        let weight = shard.rows.len() as f64 / n as f64;
        loss += f64::from(output.loss) * weight;
        log_probs.extend(output.log_probs);
        weighted.push((output.grads, weight));
    }
    let mut combiner = GradientCombiner {
        shards: weighted,
        out: GradientsParams::new(),
        device: &devices[0],
        unscale: 1.0 / f64::from(options.loss_scale),
        total: None,
        check: options.check_finite,
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

/// A contiguous share of a batch's rows and the device that computes it.
struct Shard {
    rows: Range<usize>,
    device: Device,
}

impl Shard {
    /// This shard's images and targets, on its device.
    fn take(&self, images: &Tensor<4>, targets: &Tensor<1, Int>) -> (Tensor<4>, Tensor<1, Int>) {
        let (start, len) = (self.rows.start, self.rows.len());
        (
            images.clone().narrow(0, start, len).to_device(&self.device),
            targets
                .clone()
                .narrow(0, start, len)
                .to_device(&self.device),
        )
    }
}

/// What one shard computed.
struct ShardOutput {
    grads: GradientsParams,
    loss: f32,
    log_probs: Vec<f32>,
}

/// Forward and backward of one shard on `replica`.
fn run_shard(
    replica: &AlexNet,
    images: Tensor<4>,
    targets: Tensor<1, Int>,
    options: &GradientOptions,
) -> Result<ShardOutput> {
    let log_probs = replica.forward(images, options.dtype)?;
    let loss = training_loss(log_probs.clone(), targets, options.label_smoothing);
    let loss_value =
        loss.clone()
            .try_into_scalar::<f32>()
            .map_err(|source| TrainError::TensorRead {
                what: "the loss",
                source,
            })?;
    let grads = if options.loss_scale == 1.0 {
        loss.backward()
    } else {
        loss.mul_scalar(options.loss_scale).backward()
    };
    Ok(ShardOutput {
        grads: GradientsParams::from_grads(grads, replica),
        loss: loss_value,
        log_probs: to_host(log_probs.detach())?,
    })
}

/// Every shard's output, in shard order: the first on `model` on this thread, the
/// others on replicas with private BatchNorm statistics, on threads of their own where
/// [`ShardThreads`] says so.
fn shard_outputs(
    model: &AlexNet,
    shards: &[Shard],
    images: Tensor<4>,
    targets: Tensor<1, Int>,
    options: &GradientOptions,
) -> Result<Vec<ShardOutput>> {
    if shards.len() == 1 {
        return Ok(vec![run_shard(model, images, targets, options)?]);
    }
    let replica_for = |device: &Device| model.clone().with_private_statistics().fork(device);
    let one_device = shards.iter().all(|shard| shard.device == shards[0].device);
    if one_device && options.threads == ShardThreads::PerDevice {
        return shards
            .iter()
            .enumerate()
            .map(|(k, shard)| {
                let (images, targets) = shard.take(&images, &targets);
                if k == 0 {
                    run_shard(model, images, targets, options)
                } else {
                    run_shard(&replica_for(&shard.device), images, targets, options)
                }
            })
            .collect();
    }
    // The other shards on their own threads (Burn's ops on one device are not blocked by
    // another's); the first on this one.
    std::thread::scope(|scope| {
        let handles: Vec<_> = shards[1..]
            .iter()
            .map(|shard| {
                let (images, targets) = shard.take(&images, &targets);
                let replica = replica_for(&shard.device);
                scope.spawn(move || run_shard(&replica, images, targets, options))
            })
            .collect();
        let (images, targets) = shards[0].take(&images, &targets);
        let mut outputs = vec![run_shard(model, images, targets, options)];
        outputs.extend(handles.into_iter().map(|handle| {
            handle
                .join()
                .unwrap_or_else(|_| Err(TrainError::ShardPanicked))
        }));
        outputs.into_iter().collect()
    })
}
