//! Convolutions on libtorch: forward with libtorch's kernel, the weight gradient from
//! libtorch's own backward kernel (oneDNN on the CPU, cuDNN on CUDA).

#![allow(deprecated)] // burn-tch is deprecated in favour of CubeCL; see the module above.

use super::record;
use crate::{NativeConv, extension::untracked_conv_gradient};
use burn::{
    backend::{
        Autodiff, LibTorch, autodiff::checkpoint::strategy::CheckpointStrategy,
        libtorch::TchTensor, ops::ModuleOps, tensor::FloatTensor,
    },
    tensor::ops::ConvOptions,
};

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

    fn native_conv2d_weight_backward(
        x: TchTensor,
        weight: TchTensor,
        output_grad: TchTensor,
        options: ConvOptions<2>,
    ) -> TchTensor {
        // libtorch's autograd on a leaf weight runs the backward kernel for it alone.
        let weight = weight.tensor.detach().set_requires_grad(true);
        let computed = tch::with_grad(|| {
            let output = tch::Tensor::f_conv2d::<&tch::Tensor>(
                &x.tensor,
                &weight,
                None,
                options.stride.map(|i| i as i64),
                options.padding_begin().map(|i| i as i64),
                options.dilation.map(|i| i as i64),
                options.groups as i64,
            )?;
            let root = output.f_mul(&output_grad.tensor)?;
            tch::Tensor::f_run_backward(&[root], &[&weight], false, false)
        });
        match computed {
            Ok(mut gradients) if gradients.len() == 1 => TchTensor::new(gradients.remove(0)),
            Ok(_) => panic!("libtorch's backward pass returned no weight gradient"),
            Err(error) => panic!("libtorch's backward pass failed: {error}"),
        }
    }

    fn native_conv2d_x_backward(
        x: TchTensor,
        weight: TchTensor,
        output_grad: TchTensor,
        options: ConvOptions<2>,
    ) -> TchTensor {
        // Burn's lowering on libtorch is libtorch's transposed convolution; the step
        // itself takes its input gradient from libtorch's autograd.
        LibTorch::conv2d_x_backward(x, weight, output_grad, options)
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

    fn native_conv2d_weight_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let gradient = LibTorch::native_conv2d_weight_backward;
        untracked_conv_gradient::<LibTorch, C>([x, weight, output_grad], options, gradient)
    }

    fn native_conv2d_x_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let gradient = LibTorch::native_conv2d_x_backward;
        untracked_conv_gradient::<LibTorch, C>([x, weight, output_grad], options, gradient)
    }
}
