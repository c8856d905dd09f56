//! Faster CNN layers for Burn 0.22 on flex and libtorch: convolution, BatchNorm and max
//! pooling with backward kernels of the backend's own, and an SGD step that updates in
//! place (features `flex` and `tch`). Any Burn model can call them in place of Burn's
//! `Conv2d::forward`, `BatchNorm::forward` and `MaxPool2d::forward`.
//!
//! Burn's autodiff differentiates these layers with backend-neutral lowerings. For a
//! convolution's weight gradient that is a convolution of the input, batch and channel
//! axes swapped, with the output gradient as a dilated kernel: on libtorch 2.2× as long
//! as libtorch's own `convolution_backward` (oneDNN on the CPU, cuDNN on CUDA), on flex
//! 1.6–1.8× as long as the forward pass. BatchNorm is composed from reductions and
//! element-wise passes with layout copies, where libtorch has one fused kernel each way
//! (see docs/benchmarks.md). tch-rs binds neither backward kernel.
//!
//! So through Burn backend extensions ([`NativeConv`], [`NativeBatchNorm`],
//! [`NativeMaxPool`]):
//! - on a libtorch autodiff device these layers are recorded in libtorch's own autograd
//!   graph: the forward pass runs on detached leaves that require gradients, and Burn's
//!   backward step asks libtorch's autograd engine for exactly the gradients Burn needs,
//!   which then come from libtorch's dedicated backward kernels;
//! - on flex the convolution's forward pass and weight gradient are computed as
//!   PyTorch's CPU kernels do, one im2col matrix product per image (on CPUs with AVX2
//!   but not AVX-512 the forward pass is an indirect product with our own AVX2
//!   micro-kernel; the input gradient of wide stride-1 layers is that forward product
//!   with the flipped kernel, the others `Wᵀ · dY` and col2im; the bias gradient is
//!   flex's own), BatchNorm reads
//!   its statistics straight from the `[N, C, ...]` layout and applies them in one
//!   fused pass each way, max pooling
//!   works out its windows' bounds once per call and keeps 32-bit indices, and dropout
//!   ([`NativeDropout`]) is one pass each way with a mask recomputed from a seed.
//!
//! On every other device, or after [`set_enabled`]`(false)`, [`conv2d`], [`batch_norm`],
//! [`max_pool2d`] and [`dropout`] are Burn's own, and [`sgd_step`] is computed with Burn's tensor ops.
//!
//! ```
//! use alexnet_kernels as native;
//! use burn::{nn::BatchNormConfig, prelude::*, tensor::ops::ConvOptions};
//!
//! let device = Device::flex().autodiff();
//! let x = Tensor::<4>::zeros([2, 3, 32, 32], &device).require_grad();
//! let weight = Tensor::<4>::zeros([8, 3, 3, 3], &device).require_grad();
//! let bias = Tensor::<1>::zeros([8], &device);
//! let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
//! let y = native::conv2d(x.clone(), weight, Some(bias), options);
//! let norm = BatchNormConfig::new(8).init(&device);
//! let grads = native::batch_norm(&norm, y).sum().backward();
//! assert_eq!(x.grad(&grads).unwrap().dims(), [2, 3, 32, 32]);
//! ```

#[cfg(any(feature = "flex", feature = "tch"))]
mod extension;
#[cfg(feature = "flex")]
mod flex;
#[cfg(feature = "tch")]
mod libtorch;

#[cfg(any(feature = "flex", feature = "tch"))]
pub use extension::{NativeBatchNorm, NativeConv};
#[cfg(feature = "flex")]
pub use extension::{NativeDropout, NativeMaxPool};

#[cfg(any(feature = "flex", feature = "tch"))]
use burn::backend::DispatchDevice;
use burn::{
    nn::{BatchNorm, Dropout, PaddingConfig2d, pool::MaxPool2d},
    prelude::*,
    tensor::ops::ConvOptions,
};
use std::sync::atomic::{AtomicBool, Ordering};

/// The backends with native operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeBackend {
    /// libtorch: convolutions and BatchNorm in libtorch's autograd, SGD in place.
    LibTorch,
    /// flex: the convolution's forward pass and both gradients as matrix products per
    /// image (im2col, or the indirect product on AVX2-only CPUs), BatchNorm in fused
    /// passes, max pooling with 32-bit indices.
    Flex,
}

/// Whether the native operations are used (the default).
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns the native operations on or off for the whole process: off, every function
/// here computes with Burn's own operations on every device (for comparisons; `bench
/// train --no-native`).
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// Whether the native operations are on; see [`set_enabled`].
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The backend whose native operations apply on `device` (with or without autodiff),
/// if they are on ([`set_enabled`]) and compiled in for it.
pub fn backend(device: &Device) -> Option<NativeBackend> {
    if !enabled() {
        return None;
    }
    #[cfg(any(feature = "flex", feature = "tch"))]
    match device.clone().inner().as_dispatch() {
        #[cfg(feature = "tch")]
        DispatchDevice::LibTorch(_) => return Some(NativeBackend::LibTorch),
        #[cfg(feature = "flex")]
        DispatchDevice::Flex(_) => return Some(NativeBackend::Flex),
        _ => {}
    }
    let _ = device;
    None
}

/// `conv2d(x, weight) + bias` as [`burn::tensor::module::conv2d`]; with a bias and
/// symmetric padding on a device with native operations ([`backend`]), through
/// [`NativeConv`].
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    match bias {
        #[cfg(any(feature = "flex", feature = "tch"))]
        Some(bias) if native_conv_serves(&x, &options) => {
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

/// The weight gradient of `conv2d(x, weight)` for `output_grad`, as
/// [`burn::tensor::module::conv2d_weight_backward`]; with symmetric padding on a device
/// with native operations, the one [`conv2d`]'s backward pass computes there.
pub fn conv2d_weight_backward(
    x: Tensor<4>,
    weight: Tensor<4>,
    output_grad: Tensor<4>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    #[cfg(any(feature = "flex", feature = "tch"))]
    if native_conv_serves(&x, &options) {
        let gradient = <burn::backend::Dispatch as NativeConv>::native_conv2d_weight_backward;
        return conv_gradient(x, weight, output_grad, options, gradient);
    }
    burn::tensor::module::conv2d_weight_backward(x, weight, output_grad, options)
}

/// The input gradient of `conv2d(x, weight)` for `output_grad`, as the backend's
/// `ModuleOps::conv2d_x_backward`; with symmetric padding on a device with native
/// operations, the one [`conv2d`]'s backward pass computes there.
#[cfg(any(feature = "flex", feature = "tch"))]
pub fn conv2d_x_backward(
    x: Tensor<4>,
    weight: Tensor<4>,
    output_grad: Tensor<4>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    use burn::backend::{Dispatch, ops::ModuleOps};
    let gradient: ConvGradient = if native_conv_serves(&x, &options) {
        <Dispatch as NativeConv>::native_conv2d_x_backward
    } else {
        <Dispatch as ModuleOps<Dispatch>>::conv2d_x_backward
    };
    conv_gradient(x, weight, output_grad, options, gradient)
}

/// Whether [`NativeConv`] computes a convolution of `x` with `options` (and its
/// gradients): symmetric padding, on a device with native operations.
#[cfg(any(feature = "flex", feature = "tch"))]
fn native_conv_serves(x: &Tensor<4>, options: &ConvOptions<2>) -> bool {
    !options.is_asymmetric() && backend(&x.device()).is_some()
}

/// A convolution's gradient on the dispatch backend, of `(x, weight, output_grad)`.
#[cfg(any(feature = "flex", feature = "tch"))]
type ConvGradient = fn(
    burn::backend::tensor::FloatTensor<burn::backend::Dispatch>,
    burn::backend::tensor::FloatTensor<burn::backend::Dispatch>,
    burn::backend::tensor::FloatTensor<burn::backend::Dispatch>,
    ConvOptions<2>,
) -> burn::backend::tensor::FloatTensor<burn::backend::Dispatch>;

/// `gradient` of the tensors' dispatch primitives.
#[cfg(any(feature = "flex", feature = "tch"))]
fn conv_gradient(
    x: Tensor<4>,
    weight: Tensor<4>,
    output_grad: Tensor<4>,
    options: ConvOptions<2>,
    gradient: ConvGradient,
) -> Tensor<4> {
    let [x, weight, output_grad] = [x, weight, output_grad].map(Tensor::into_dispatch);
    Tensor::from_dispatch(gradient(x, weight, output_grad, options))
}

/// `norm.forward(x)`; in training on an autodiff device with native operations
/// ([`backend`]), through [`NativeBatchNorm`], updating the running statistics exactly as
/// Burn's `BatchNorm::forward` does.
pub fn batch_norm<const D: usize>(norm: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    #[cfg(any(feature = "flex", feature = "tch"))]
    if device.is_autodiff() && norm.training.is_enabled() && backend(&device).is_some() {
        return native_batch_norm_train(norm, x, &device);
    }
    let _ = device;
    norm.forward(x)
}

#[cfg(any(feature = "flex", feature = "tch"))]
fn native_batch_norm_train<const D: usize>(
    norm: &BatchNorm,
    x: Tensor<D>,
    device: &Device,
) -> Tensor<D> {
    let channels = x.dims()[1];
    assert_eq!(
        norm.gamma.dims(),
        [channels],
        "invalid batch norm gamma shape"
    );
    let (output, mean, variance) =
        <burn::backend::Dispatch as NativeBatchNorm>::native_batch_norm_train(
            x.into_dispatch(),
            norm.gamma.val().into_dispatch(),
            norm.beta.val().into_dispatch(),
            norm.epsilon,
        );
    let update = |running: Tensor<1>, batch: burn::backend::DispatchTensor| {
        running
            .to_device(device)
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

/// `pool.forward(x)`; on flex, with symmetric padding and floor rounding, through
/// `NativeMaxPool`.
pub fn max_pool2d(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    // `Same` padding is Burn's (it may be asymmetric).
    let padding = match pool.padding {
        PaddingConfig2d::Valid => Some([0, 0]),
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            Some([top, left])
        }
        _ => None,
    };
    let native = backend(&x.device()) == Some(NativeBackend::Flex) && !pool.ceil_mode;
    match padding {
        #[cfg(feature = "flex")]
        Some(padding) if native => Tensor::from_dispatch(
            <burn::backend::Dispatch as NativeMaxPool>::native_max_pool2d(
                x.into_dispatch(),
                pool.kernel_size,
                pool.stride,
                padding,
                pool.dilation,
            ),
        ),
        _ => {
            let _ = (padding, native);
            pool.forward(x)
        }
    }
}

/// `layer.forward(x)`; in training on a flex autodiff device, through [`NativeDropout`]:
/// one pass each way, with a mask drawn from a seed that Burn's random stream for the
/// device gives (so `Device::seed` makes it repeatable), instead of a tensor of Bernoulli
/// samples kept for the backward pass.
pub fn dropout<const D: usize>(layer: &Dropout, x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    {
        // Where Burn's `Dropout::forward` drops at all; p = 1 stays Burn's.
        let device = x.device();
        let drops = layer.training.is_enabled() && device.is_autodiff() && layer.prob > 0.0;
        if drops && layer.prob < 1.0 && backend(&device) == Some(NativeBackend::Flex) {
            let seed = draw_seed(&device);
            return Tensor::from_dispatch(
                <burn::backend::Dispatch as NativeDropout>::native_dropout(
                    x.into_dispatch(),
                    layer.prob,
                    seed,
                ),
            );
        }
    }
    layer.forward(x)
}

/// A 64-bit seed from Burn's random stream for `device`: four 16-bit draws.
#[cfg(feature = "flex")]
fn draw_seed(device: &Device) -> u64 {
    let draws = Tensor::<1, Int>::random(
        [4],
        burn::tensor::Distribution::Uniform(0.0, 65536.0),
        device,
    );
    draws
        .into_data()
        .iter::<i64>()
        .fold(0u64, |seed, draw| (seed << 16) | (draw as u64 & 0xFFFF))
}

/// SGD's hyper-parameters, with PyTorch's meaning: dampening applies to the gradient
/// added to the velocity, and weight decay (an L2 penalty) is added to the gradient
/// before momentum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdParams {
    /// Momentum factor; 0 for plain SGD.
    pub momentum: f64,
    /// Dampening of the gradient added to the velocity.
    pub dampening: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 penalty, added to the gradient as `weight_decay · parameter`.
    pub weight_decay: f64,
}

/// One step of `torch.optim.SGD` on one parameter with learning rate `lr`: returns the
/// updated parameter and, with momentum, its velocity (`velocity` is `None` before the
/// first step).
///
/// Burn's `Sgd` makes about nine element-wise passes over each parameter per step, three
/// of them into new buffers; PyTorch's makes five, in place. On libtorch ([`backend`])
/// this step updates the parameter and its velocity in place with libtorch's kernels,
/// in PyTorch's five passes (when Burn holds the only reference to each buffer;
/// otherwise out of place). Elsewhere it computes the same update with Burn's tensor ops.
pub fn sgd_step<const D: usize>(
    sgd: &SgdParams,
    lr: f64,
    tensor: Tensor<D>,
    grad: Tensor<D>,
    velocity: Option<Tensor<D>>,
) -> (Tensor<D>, Option<Tensor<D>>) {
    let decayed = |grad: Tensor<D>, tensor: &Tensor<D>| {
        if sgd.weight_decay == 0.0 {
            grad
        } else {
            grad.add(tensor.clone().mul_scalar(sgd.weight_decay))
        }
    };
    if sgd.momentum == 0.0 {
        let grad = decayed(grad, &tensor);
        return (tensor - grad.mul_scalar(lr), None);
    }
    #[cfg(feature = "tch")]
    let velocity = match velocity {
        Some(velocity) if backend(&tensor.device()) == Some(NativeBackend::LibTorch) => {
            let (tensor, velocity) = libtorch::momentum_step(sgd, lr, tensor, grad, velocity);
            return (tensor, Some(velocity));
        }
        velocity => velocity,
    };
    let grad = decayed(grad, &tensor);
    let velocity = match velocity {
        // The first step: the velocity starts as the (decayed) gradient, undampened.
        None => grad.clone(),
        Some(velocity) => velocity
            .mul_scalar(sgd.momentum)
            .add(grad.clone().mul_scalar(1.0 - sgd.dampening)),
    };
    let step = if sgd.nesterov {
        grad.add(velocity.clone().mul_scalar(sgd.momentum))
    } else {
        velocity.clone()
    };
    (tensor - step.mul_scalar(lr), Some(velocity))
}

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
