//! Convolution and BatchNorm that libtorch differentiates itself (feature `tch`).
//!
//! Burn's autodiff differentiates these layers with backend-neutral lowerings. For a
//! convolution's weight gradient that is a convolution of the input, batch and channel
//! axes swapped, with the output gradient as a dilated kernel: on libtorch 2.2× as long
//! as libtorch's own `convolution_backward` (oneDNN on the CPU, cuDNN on CUDA). BatchNorm
//! is composed from reductions and element-wise passes with layout copies, where
//! libtorch has one fused kernel each way (see docs/benchmarks.md). tch-rs binds neither
//! backward kernel.
//!
//! So on a libtorch autodiff device these layers are recorded in libtorch's own autograd
//! graph, through Burn backend extensions ([`NativeConv`], [`NativeBatchNorm`]): the
//! forward pass runs on detached leaves that require gradients, and Burn's backward step
//! asks libtorch's autograd engine for exactly the gradients Burn needs, which then come
//! from libtorch's dedicated backward kernels. On every other device [`conv2d`] and
//! [`batch_norm`] are Burn's own.
//!
//! ```no_run
//! use alexnet_model::native;
//! use burn::{nn::BatchNormConfig, prelude::*, tensor::ops::ConvOptions};
//!
//! let device = Device::libtorch().autodiff();
//! let x = Tensor::<4>::zeros([2, 3, 32, 32], &device).require_grad();
//! let weight = Tensor::<4>::zeros([8, 3, 3, 3], &device).require_grad();
//! let bias = Tensor::<1>::zeros([8], &device);
//! let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
//! let y = native::conv2d(x.clone(), weight, Some(bias), options);
//! let norm = BatchNormConfig::new(8).init(&device);
//! let grads = native::batch_norm(&norm, y).sum().backward();
//! assert_eq!(x.grad(&grads).unwrap().dims(), [2, 3, 32, 32]);
//! ```

// burn-tch is deprecated in favour of CubeCL, but it is the only backend with libtorch's
// CPU kernels, which are the fastest on CPUs here (docs/benchmarks.md).
#![allow(deprecated)]

use burn::{
    backend::{
        Autodiff, AutodiffBackend, Backend, DispatchDevice, LibTorch,
        autodiff::{
            checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
            grads::Gradients,
            ops::{Backward, Ops, OpsKind},
        },
        backend_extension,
        libtorch::TchTensor,
        tensor::FloatTensor,
    },
    nn::BatchNorm,
    prelude::*,
    tensor::ops::ConvOptions,
};
use std::sync::atomic::{AtomicBool, Ordering};

/// A 2-D convolution with a bias, differentiated by the backend's own backward kernel.
#[backend_extension(LibTorch, Autodiff)]
pub trait NativeConv: Backend {
    /// `conv2d(x, weight) + bias`, as [`burn::tensor::module::conv2d`] with symmetric
    /// padding (`options.padding_begin()` is used for both sides).
    fn native_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;
}

/// Training-mode BatchNorm, differentiated by the backend's own backward kernel.
#[backend_extension(LibTorch, Autodiff)]
pub trait NativeBatchNorm: Backend {
    /// Normalizes `x` (`[N, C, ...]`) with its batch statistics and applies `gamma` and
    /// `beta`; returns the output, the batch mean and the biased batch variance per
    /// channel, as [`burn::tensor::module::batch_norm_train`].
    fn native_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

fn libtorch_conv2d(inputs: &[tch::Tensor; 3], options: &ConvOptions<2>) -> tch::Tensor {
    let [x, weight, bias] = inputs;
    tch::Tensor::conv2d(
        x,
        weight,
        Some(bias),
        options.stride.map(|i| i as i64),
        options.padding_begin().map(|i| i as i64),
        options.dilation.map(|i| i as i64),
        options.groups as i64,
    )
}

/// libtorch's batch norm in training mode: output, mean and `1 / sqrt(var + epsilon)`.
fn libtorch_batch_norm(
    inputs: &[tch::Tensor; 3],
    epsilon: f64,
) -> (tch::Tensor, (tch::Tensor, tch::Tensor)) {
    let [x, gamma, beta] = inputs;
    let (output, mean, inv_std) =
        x.native_batch_norm(Some(gamma), Some(beta), None, None, true, 0.0, epsilon);
    (output, (mean, inv_std))
}

/// A copy of `tensor` in its own memory, outside any autograd graph: for handing Burn a
/// buffer it may update in place while libtorch keeps the original.
pub fn fresh_copy(tensor: &tch::Tensor) -> tch::Tensor {
    tch::no_grad(|| {
        let mut copy = tensor.empty_like();
        copy.copy_(tensor);
        copy
    })
}

/// The biased variance from libtorch's `1 / sqrt(var + epsilon)`.
fn variance(inv_std: &tch::Tensor, epsilon: f64) -> TchTensor {
    TchTensor::new(tch::no_grad(|| inv_std.pow_tensor_scalar(-2.0) - epsilon))
}

impl NativeConv for LibTorch {
    fn native_conv2d(
        x: TchTensor,
        weight: TchTensor,
        bias: TchTensor,
        options: ConvOptions<2>,
    ) -> TchTensor {
        let inputs = [x.tensor, weight.tensor, bias.tensor];
        TchTensor::new(tch::no_grad(|| libtorch_conv2d(&inputs, &options)))
    }
}

impl NativeBatchNorm for LibTorch {
    fn native_batch_norm_train(
        x: TchTensor,
        gamma: TchTensor,
        beta: TchTensor,
        epsilon: f64,
    ) -> (TchTensor, TchTensor, TchTensor) {
        let inputs = [x.tensor, gamma.tensor, beta.tensor];
        let (output, (mean, inv_std)) = tch::no_grad(|| libtorch_batch_norm(&inputs, epsilon));
        (
            TchTensor::new(output),
            TchTensor::new(mean),
            variance(&inv_std, epsilon),
        )
    }
}

/// An operation as libtorch's autograd recorded it.
struct LibTorchGraph<const N: usize> {
    /// The operation's output, whose `grad_fn` is libtorch's backward kernel.
    output: tch::Tensor,
    /// The detached leaves the graph starts from, one per input.
    leaves: [tch::Tensor; N],
    /// Burn's own handles on the inputs. Holding them keeps Burn from reusing the inputs'
    /// memory in place while libtorch's graph still reads it.
    _inputs: [TchTensor; N],
}

impl<const N: usize> Clone for LibTorchGraph<N> {
    fn clone(&self) -> Self {
        Self {
            output: self.output.shallow_clone(),
            leaves: self.leaves.each_ref().map(tch::Tensor::shallow_clone),
            _inputs: self._inputs.clone(),
        }
    }
}

impl<const N: usize> std::fmt::Debug for LibTorchGraph<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LibTorchGraph")
            .field("output", &self.output.size())
            .finish_non_exhaustive()
    }
}

/// Burn's backward step for an operation recorded in libtorch's autograd.
#[derive(Debug)]
struct LibTorchBackward;

impl<const N: usize> Backward<LibTorch, N> for LibTorchBackward {
    type State = LibTorchGraph<N>;

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let grad = grads.consume::<LibTorch>(&ops.node);
        let graph = ops.state;
        let (wanted, leaves): (Vec<_>, Vec<_>) = ops
            .parents
            .iter()
            .zip(&graph.leaves)
            .filter_map(|(parent, leaf)| parent.as_ref().map(|node| (node.id, leaf)))
            .unzip();
        if wanted.is_empty() {
            return;
        }
        // libtorch's engine seeds each root with ones, so the root is `output · grad`,
        // whose gradient with respect to `output` is `grad`.
        let computed = tch::with_grad(|| graph.output.f_mul(&grad.tensor))
            .and_then(|root| tch::Tensor::f_run_backward(&[root], &leaves, false, false))
            .unwrap_or_else(|error| panic!("libtorch's backward pass failed: {error}"));
        for (node, gradient) in wanted.into_iter().zip(computed) {
            grads.register::<LibTorch>(node, TchTensor::new(gradient));
        }
    }
}

/// Runs `forward` on `inputs` and returns its output as a Burn autodiff tensor. When Burn
/// tracks the operation, `forward` runs on detached leaves under libtorch's autograd, and
/// the backward step asks libtorch for the gradients; `T` is whatever else `forward`
/// returns (not differentiated).
fn record<const N: usize, C: CheckpointStrategy, T>(
    inputs: [FloatTensor<Autodiff<LibTorch, C>>; N],
    forward: impl FnOnce(&[tch::Tensor; N]) -> (tch::Tensor, T),
) -> (FloatTensor<Autodiff<LibTorch, C>>, T) {
    let prep = LibTorchBackward
        .prepare::<C>(inputs.each_ref().map(|input| input.node()))
        .compute_bound()
        .stateful();
    let inputs = inputs.map(|input| input.into_primitive());
    match prep {
        OpsKind::Tracked(prep) => {
            let leaves = inputs
                .each_ref()
                .map(|input| input.tensor.detach().set_requires_grad(true));
            let (output, rest) = tch::with_grad(|| forward(&leaves));
            let result = TchTensor::new(output.detach());
            let graph = LibTorchGraph {
                output,
                leaves,
                _inputs: inputs,
            };
            (prep.finish(graph, result), rest)
        }
        OpsKind::UnTracked(prep) => {
            let tensors = inputs.each_ref().map(|input| input.tensor.shallow_clone());
            let (output, rest) = tch::no_grad(|| forward(&tensors));
            (prep.finish(TchTensor::new(output)), rest)
        }
    }
}

impl<C: CheckpointStrategy> NativeConv for Autodiff<LibTorch, C> {
    fn native_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        record::<3, C, _>([x, weight, bias], |inputs| {
            (libtorch_conv2d(inputs, &options), ())
        })
        .0
    }
}

impl<C: CheckpointStrategy> NativeBatchNorm for Autodiff<LibTorch, C> {
    fn native_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (output, (mean, inv_std)) = record::<3, C, _>([x, gamma, beta], |inputs| {
            let (output, (mean, inv_std)) = libtorch_batch_norm(inputs, epsilon);
            // libtorch's backward reads the saved mean; Burn gets its own copy, which it
            // may update in place.
            (output, (fresh_copy(&mean), inv_std.detach()))
        });
        (
            output,
            Self::from_inner(TchTensor::new(mean)),
            Self::from_inner(variance(&inv_std, epsilon)),
        )
    }
}

/// Whether [`conv2d`] and [`batch_norm`] use the native operations (the default).
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns the native operations on or off for the whole process: off, [`conv2d`] and
/// [`batch_norm`] are Burn's own on every device, and `alexnet_train::sgd::Sgd` uses
/// Burn's tensor ops (for comparisons; `bench train --no-native`).
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// Whether the native operations are on; see [`set_enabled`].
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Whether the native operations apply on `device`: it runs on libtorch (with or without
/// autodiff) and they are on ([`set_enabled`]).
pub fn active_on(device: &Device) -> bool {
    enabled()
        && matches!(
            device.clone().inner().as_dispatch(),
            DispatchDevice::LibTorch(_)
        )
}

/// `conv2d(x, weight) + bias` as [`burn::tensor::module::conv2d`]; on libtorch, with a
/// bias and symmetric padding, through [`NativeConv`].
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    let symmetric = options.padding.iter().all(|(begin, end)| begin == end);
    match bias {
        Some(bias) if symmetric && active_on(&x.device()) => {
            Tensor::from_dispatch(<burn::backend::Dispatch as NativeConv>::native_conv2d(
                x.into_dispatch(),
                weight.into_dispatch(),
                bias.into_dispatch(),
                options,
            ))
        }
        bias => burn::tensor::module::conv2d(x, weight, bias, options),
    }
}

/// `norm.forward(x)`; in training on a libtorch autodiff device, through
/// [`NativeBatchNorm`], updating the running statistics exactly as Burn's
/// `BatchNorm::forward` does.
pub fn batch_norm<const D: usize>(norm: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    if !(device.is_autodiff() && norm.training.is_enabled() && active_on(&device)) {
        return norm.forward(x);
    }
    let (output, mean, variance) =
        <burn::backend::Dispatch as NativeBatchNorm>::native_batch_norm_train(
            x.into_dispatch(),
            norm.gamma.val().into_dispatch(),
            norm.beta.val().into_dispatch(),
            norm.epsilon,
        );
    let update = |running: Tensor<1>, batch: burn::backend::DispatchTensor| {
        running
            .to_device(&device)
            .mul_scalar(1.0 - norm.momentum)
            .add(Tensor::<1>::from_dispatch(batch).mul_scalar(norm.momentum))
            .detach()
    };
    norm.running_mean
        .update(update(norm.running_mean.value_sync(), mean));
    norm.running_var
        .update(update(norm.running_var.value_sync(), variance));
    Tensor::from_dispatch(output)
}
