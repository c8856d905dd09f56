//! The native operations on libtorch: convolutions and BatchNorm recorded in libtorch's
//! autograd graph, so that libtorch's own backward kernels differentiate them.

// burn-tch is deprecated in favour of CubeCL, but it is the only backend with libtorch's
// CPU kernels, which are the fastest on CPUs here (docs/benchmarks.md).
#![allow(deprecated)]

use super::{NativeBatchNorm, NativeConv};
use burn::{
    backend::{
        Autodiff, AutodiffBackend, LibTorch,
        autodiff::{
            checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
            grads::Gradients,
            ops::{Backward, Ops, OpsKind},
        },
        libtorch::TchTensor,
        tensor::FloatTensor,
    },
    prelude::*,
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

    fn native_conv2d_weight_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::from_inner(LibTorch::native_conv2d_weight_backward(
            x.into_primitive(),
            weight.into_primitive(),
            output_grad.into_primitive(),
            options,
        ))
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
