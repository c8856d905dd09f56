//! Convolution and BatchNorm with backward kernels of the backend's own (features `flex`
//! and `tch`).
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
//!   PyTorch's CPU kernels do, one im2col matrix product per image (the input and bias
//!   gradients are flex's own), BatchNorm reads its statistics straight from the
//!   `[N, C, ...]` layout and applies them in one fused pass each way, and max pooling
//!   works out its windows' bounds once per call and keeps 32-bit indices.
//!
//! On every other device, or after [`set_enabled`]`(false)`, [`conv2d`], [`batch_norm`]
//! and [`max_pool2d`] are Burn's own.
//!
//! ```
//! use alexnet_model::native;
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

#[cfg(feature = "flex")]
mod flex;
#[cfg(feature = "flex")]
mod flex_norm;
#[cfg(feature = "flex")]
mod flex_pool;
#[cfg(feature = "tch")]
mod libtorch;

#[cfg(feature = "tch")]
pub use libtorch::fresh_copy;

use burn::{
    backend::{Backend, DispatchDevice, backend_extension, tensor::FloatTensor},
    nn::{BatchNorm, PaddingConfig2d, pool::MaxPool2d},
    prelude::*,
    tensor::ops::ConvOptions,
};
use std::sync::atomic::{AtomicBool, Ordering};

/// A 2-D convolution with a bias, differentiated by the backend's own backward kernel.
#[backend_extension(LibTorch: cfg(feature = "tch"), Flex: cfg(feature = "flex"), Autodiff)]
pub trait NativeConv: Backend {
    /// `conv2d(x, weight) + bias`, as [`burn::tensor::module::conv2d`] with symmetric
    /// padding (`options.padding_begin()` is used for both sides).
    fn native_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;

    /// The gradient of `conv2d(x, weight)`'s weight for the output gradient
    /// `output_grad`, as [`burn::tensor::module::conv2d_weight_backward`] with symmetric
    /// padding, computed by the kernel [`native_conv2d`](Self::native_conv2d)'s backward
    /// pass uses.
    fn native_conv2d_weight_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;
}

/// Training-mode BatchNorm, differentiated by the backend's own backward kernel.
#[backend_extension(LibTorch: cfg(feature = "tch"), Flex: cfg(feature = "flex"), Autodiff)]
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

/// Max pooling with its own backward step (flex only).
#[backend_extension(Flex: cfg(feature = "flex"), Autodiff)]
pub trait NativeMaxPool: Backend {
    /// `max_pool2d(x)` with symmetric padding and floor rounding, as
    /// [`burn::tensor::module::max_pool2d`].
    fn native_max_pool2d(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
    ) -> FloatTensor<Self>;
}

/// The backends with native operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeBackend {
    /// libtorch: convolutions and BatchNorm in libtorch's autograd, SGD in place.
    LibTorch,
    /// flex: the convolution's forward pass and weight gradient as one im2col matrix
    /// product per image, BatchNorm in fused passes, max pooling with 32-bit indices.
    Flex,
}

/// Whether the native operations are used (the default).
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

/// The backend whose native operations apply on `device` (with or without autodiff),
/// if they are on ([`set_enabled`]) and compiled in for it.
pub fn backend(device: &Device) -> Option<NativeBackend> {
    if !enabled() {
        return None;
    }
    match device.clone().inner().as_dispatch() {
        #[cfg(feature = "tch")]
        DispatchDevice::LibTorch(_) => Some(NativeBackend::LibTorch),
        #[cfg(feature = "flex")]
        DispatchDevice::Flex(_) => Some(NativeBackend::Flex),
        _ => None,
    }
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
    let symmetric = !options.is_asymmetric();
    match bias {
        Some(bias) if symmetric && backend(&x.device()).is_some() => {
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
    let symmetric = !options.is_asymmetric();
    if symmetric && backend(&x.device()).is_some() {
        Tensor::from_dispatch(
            <burn::backend::Dispatch as NativeConv>::native_conv2d_weight_backward(
                x.into_dispatch(),
                weight.into_dispatch(),
                output_grad.into_dispatch(),
                options,
            ),
        )
    } else {
        burn::tensor::module::conv2d_weight_backward(x, weight, output_grad, options)
    }
}

/// `norm.forward(x)`; in training on an autodiff device with native operations
/// ([`backend`]), through [`NativeBatchNorm`], updating the running statistics exactly as
/// Burn's `BatchNorm::forward` does.
pub fn batch_norm<const D: usize>(norm: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    if !(device.is_autodiff() && norm.training.is_enabled() && backend(&device).is_some()) {
        return norm.forward(x);
    }
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

/// `pool.forward(x)`; on flex, with symmetric padding and floor rounding, through
/// [`NativeMaxPool`].
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
        Some(padding) if native => Tensor::from_dispatch(
            <burn::backend::Dispatch as NativeMaxPool>::native_max_pool2d(
                x.into_dispatch(),
                pool.kernel_size,
                pool.stride,
                padding,
                pool.dilation,
            ),
        ),
        _ => pool.forward(x),
    }
}
