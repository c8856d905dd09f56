//! The Burn backend extensions the native operations are dispatched through.

// burn-tch is deprecated in favour of CubeCL; it is the libtorch backend we support.
#![allow(deprecated)]

use burn::backend::{
    Autodiff, AutodiffBackend, Backend, autodiff::checkpoint::strategy::CheckpointStrategy,
    backend_extension, tensor::FloatTensor,
};
use burn::tensor::ops::ConvOptions;

/// A convolution's gradient on backend `B`, of `(x, weight, output_grad)`.
pub(crate) type ConvGradient<B> =
    fn(FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, ConvOptions<2>) -> FloatTensor<B>;

/// `gradient` computed on the inner backend of an autodiff one, and not recorded: how
/// the autodiff backends answer [`NativeConv`]'s gradient methods.
pub(crate) fn untracked_conv_gradient<B: Backend, C: CheckpointStrategy>(
    [x, weight, output_grad]: [FloatTensor<Autodiff<B, C>>; 3],
    options: ConvOptions<2>,
    gradient: ConvGradient<B>,
) -> FloatTensor<Autodiff<B, C>> {
    let [x, weight, output_grad] = [x, weight, output_grad].map(|input| input.into_primitive());
    Autodiff::<B, C>::from_inner(gradient(x, weight, output_grad, options))
}

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

    /// The gradient of `conv2d(x, weight)`'s input for the output gradient
    /// `output_grad`, as `ModuleOps::conv2d_x_backward` with symmetric padding, computed
    /// by the kernel [`native_conv2d`](Self::native_conv2d)'s backward pass uses.
    fn native_conv2d_x_backward(
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

/// Training-mode dropout whose mask is a function of a seed and each element's index,
/// recomputed by its backward step instead of kept (flex only).
#[backend_extension(Flex: cfg(feature = "flex"), Autodiff)]
pub trait NativeDropout: Backend {
    /// `x` with each element kept with probability `1 - prob` and scaled by
    /// `1 / (1 - prob)`, else multiplied by zero (a NaN stays NaN); which elements are
    /// kept depends only on `seed` and the element's position in the contiguous tensor.
    fn native_dropout(x: FloatTensor<Self>, prob: f64, seed: u64) -> FloatTensor<Self>;
}
