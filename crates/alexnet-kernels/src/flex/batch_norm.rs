//! Training-mode BatchNorm on flex in three passes over the activation each way.
//!
//! Burn's default `batch_norm_train` and its backward are composed from tensor ops that
//! move the channel axis first (a layout copy of the whole activation) before each
//! reduction, and apply the result in separate element-wise passes: about nine passes
//! over the activation forward and more backward. Here the statistics are read straight
//! from the `[N, C, ...]` layout, channel by channel, and the output and the input
//! gradient are one fused pass each.

use super::{f32s, tensor};
use crate::NativeBatchNorm;
use burn::{
    backend::{
        Autodiff, AutodiffBackend, Flex, TensorMetadata,
        autodiff::{
            checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
            grads::Gradients,
            ops::{Backward, Ops, OpsKind},
        },
        flex::FlexTensor,
        ops::ModuleOps,
        tensor::FloatTensor,
    },
    tensor::{DType, Shape},
};
use rayon::prelude::*;

/// A `[batch, channels, positions]` view of a contiguous `[N, C, ...]` tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Planes {
    batch: usize,
    channels: usize,
    positions: usize,
}

impl Planes {
    fn of(shape: &Shape) -> Option<Self> {
        let dims = shape.as_slice();
        (dims.len() >= 2 && dims[1] > 0).then(|| Self {
            batch: dims[0],
            channels: dims[1],
            positions: dims[2..].iter().product(),
        })
    }

    /// Elements per channel.
    fn count(&self) -> usize {
        self.batch * self.positions
    }

    /// Per channel `c`, the sum of `f(c)(a, b)` over the channel's elements of the pair of
    /// tensors `a` and `b` (of this shape): f32 within a plane, in eight independent
    /// lanes that vectorize, and f64 across planes.
    fn channel_sums<F: Fn(f32, f32) -> f32>(
        &self,
        a: &[f32],
        b: &[f32],
        f: impl Fn(usize) -> F + Sync,
    ) -> Vec<f64> {
        let channel_sum = |channel: usize| {
            let f = f(channel);
            (0..self.batch)
                .map(|image| {
                    let start = (image * self.channels + channel) * self.positions;
                    let end = start + self.positions;
                    lane_sum(&a[start..end], &b[start..end], &f)
                })
                .sum::<f64>()
        };
        // Small planes (a BatchNorm1d's single position): one thread, no task overhead.
        if self.positions < 64 {
            (0..self.channels).map(channel_sum).collect()
        } else {
            (0..self.channels)
                .into_par_iter()
                .map(channel_sum)
                .collect()
        }
    }

    /// `a · k₀[c] + b · k₁[c] + k₂[c]` element-wise, `c` the element's channel.
    fn affine(&self, a: &[f32], b: &[f32], coefficients: &[[f32; 3]]) -> Vec<f32> {
        let plane = self.positions.max(1);
        // Whole planes per task, at least 16 Ki elements.
        let chunk = plane * (16384 / plane).max(1);
        let mut out = vec![0.0f32; a.len()];
        out.par_chunks_mut(chunk)
            .zip(a.par_chunks(chunk))
            .zip(b.par_chunks(chunk))
            .enumerate()
            .for_each(|(task, ((out, a), b))| {
                let first_plane = task * chunk / plane;
                let planes = out
                    .chunks_mut(plane)
                    .zip(a.chunks(plane))
                    .zip(b.chunks(plane));
                for (index, ((out, a), b)) in planes.enumerate() {
                    let [k0, k1, k2] = coefficients[(first_plane + index) % self.channels];
                    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                        *o = x * k0 + y * k1 + k2;
                    }
                }
            });
        out
    }
}

/// `Σ f(a, b)` over a pair of equally long slices.
fn lane_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    const LANES: usize = 8;
    let mut lanes = [0.0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let remainder: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(&x, &y)| f(x, y))
        .sum();
    for (a, b) in a_chunks.zip(b_chunks) {
        for lane in 0..LANES {
            lanes[lane] += f(a[lane], b[lane]);
        }
    }
    lanes.iter().map(|&v| f64::from(v)).sum::<f64>() + f64::from(remainder)
}

/// The batch mean and `1 / sqrt(var + epsilon)` per channel, and the biased variance.
fn statistics(planes: &Planes, x: &[f32], epsilon: f64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let count = planes.count().max(1) as f64;
    let means: Vec<f64> = planes
        .channel_sums(x, x, |_| |value, _| value)
        .into_iter()
        .map(|sum| sum / count)
        .collect();
    let variances: Vec<f64> = planes
        .channel_sums(x, x, |channel| {
            let mean = means[channel] as f32;
            move |value, _| (value - mean) * (value - mean)
        })
        .into_iter()
        .map(|sum| sum / count)
        .collect();
    let inv_std = variances
        .iter()
        .map(|variance| (1.0 / (variance + epsilon).sqrt()) as f32)
        .collect();
    let to_f32 = |values: Vec<f64>| values.into_iter().map(|v| v as f32).collect();
    (to_f32(means), inv_std, to_f32(variances))
}

/// What the backward pass reads: the input, `gamma`, and the batch statistics.
#[derive(Debug, Clone)]
struct NormState {
    x: FlexTensor,
    gamma: Vec<f32>,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
}

/// Whether [`forward`] covers an input of this shape and dtypes (`x`, `gamma`, `beta`):
/// f32, `[N, C, ...]`; Burn's composition handles the rest.
fn supported(shape: &Shape, dtypes: [DType; 3]) -> bool {
    dtypes == [DType::F32; 3] && Planes::of(shape).is_some()
}

/// Training-mode BatchNorm of `x` ([`supported`]): output, mean, biased variance, and the
/// state its backward pass needs. `gamma` and `beta` have one value per channel (Burn's
/// `batch_norm_train` checked).
fn forward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    epsilon: f64,
) -> (FlexTensor, FlexTensor, FlexTensor, NormState) {
    let shape = x.shape();
    let planes = Planes::of(&shape).expect("supported() checked the shape");
    let [x, gamma, beta] = [x, gamma, beta].map(FlexTensor::to_contiguous);
    let (gamma_values, beta_values) = (f32s(&gamma).to_vec(), f32s(&beta));
    let values = f32s(&x);
    let (mean, inv_std, variance) = statistics(&planes, values, epsilon);
    // y = x · (γ / σ) + (β − μ γ / σ)
    let coefficients: Vec<[f32; 3]> = (0..planes.channels)
        .map(|c| {
            let scale = gamma_values[c] * inv_std[c];
            [scale, 0.0, beta_values[c] - mean[c] * scale]
        })
        .collect();
    let output = tensor(planes.affine(values, values, &coefficients), shape);
    let channels = Shape::new([planes.channels]);
    let state = NormState {
        x: x.clone(),
        gamma: gamma_values,
        mean: mean.clone(),
        inv_std,
    };
    (
        output,
        tensor(mean, channels.clone()),
        tensor(variance, channels),
        state,
    )
}

/// The gradients for `x`, `gamma` and `beta` of training-mode BatchNorm, given the output
/// gradient.
fn backward(state: &NormState, output_grad: FlexTensor) -> (FlexTensor, FlexTensor, FlexTensor) {
    let shape = state.x.shape();
    let planes = Planes::of(&shape).expect("the forward pass checked the shape");
    let output_grad = output_grad.to_contiguous();
    let dy = output_grad
        .as_slice::<f32>()
        .expect("a contiguous f32 gradient of the forward pass's output");
    let x = state
        .x
        .as_slice::<f32>()
        .expect("the forward pass kept its input contiguous");
    let mean = &state.mean;
    let grad_sums = planes.channel_sums(dy, dy, |_| |g, _| g);
    let grad_x_sums = planes.channel_sums(x, dy, |c| {
        let mean = mean[c];
        move |value, g| g * (value - mean)
    });
    let count = planes.count().max(1) as f64;
    let mut beta_grad = Vec::with_capacity(planes.channels);
    let mut gamma_grad = Vec::with_capacity(planes.channels);
    // dx = k (dy − Σdy / M − x̂ Σ(dy x̂) / M), k = γ / σ, x̂ = (x − μ) / σ
    //    = dy · k + x · e + f, e = −k Σ(dy x̂) / (σ M), f = −k Σdy / M − μ e
    let coefficients: Vec<[f32; 3]> = (0..planes.channels)
        .map(|c| {
            let inv_std = f64::from(state.inv_std[c]);
            let k = f64::from(state.gamma[c]) * inv_std;
            let grad_sum = grad_sums[c];
            let grad_normalized_sum = grad_x_sums[c] * inv_std;
            beta_grad.push(grad_sum as f32);
            gamma_grad.push(grad_normalized_sum as f32);
            let e = -k * grad_normalized_sum * inv_std / count;
            let f = -k * grad_sum / count - f64::from(mean[c]) * e;
            [k as f32, e as f32, f as f32]
        })
        .collect();
    let x_grad = tensor(planes.affine(dy, x, &coefficients), shape);
    let channels = Shape::new([planes.channels]);
    (
        x_grad,
        tensor(gamma_grad, channels.clone()),
        tensor(beta_grad, channels),
    )
}

impl NativeBatchNorm for Flex {
    fn native_batch_norm_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        if supported(&x.shape(), [x.dtype(), gamma.dtype(), beta.dtype()]) {
            let (output, mean, variance, _) = forward(&x, &gamma, &beta, epsilon);
            (output, mean, variance)
        } else {
            let result = Flex::batch_norm_train(x, gamma, beta, epsilon);
            (result.output, result.mean, result.variance)
        }
    }
}

/// Burn's backward step for [`NativeBatchNorm`] on flex.
#[derive(Debug)]
struct FlexNormBackward;

impl Backward<Flex, 3> for FlexNormBackward {
    type State = NormState;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let grad = grads.consume::<Flex>(&ops.node);
        let (x_grad, gamma_grad, beta_grad) = backward(&ops.state, grad);
        for (node, gradient) in ops.parents.into_iter().zip([x_grad, gamma_grad, beta_grad]) {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, gradient);
            }
        }
    }
}

impl<C: CheckpointStrategy> NativeBatchNorm for Autodiff<Flex, C> {
    fn native_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        if !supported(&x.shape(), [x.dtype(), gamma.dtype(), beta.dtype()]) {
            // Burn's composition, differentiated by Burn.
            let result = Self::batch_norm_train(x, gamma, beta, epsilon);
            return (result.output, result.mean, result.variance);
        }
        let ops = FlexNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful();
        let [x, gamma, beta] = [x, gamma, beta].map(|input| input.into_primitive());
        let (output, mean, variance, state) = forward(&x, &gamma, &beta, epsilon);
        let output = match ops {
            OpsKind::Tracked(prep) => prep.finish(state, output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        };
        (output, Self::from_inner(mean), Self::from_inner(variance))
    }
}
