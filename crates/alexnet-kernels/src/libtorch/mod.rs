//! The native operations on libtorch: convolutions and BatchNorm recorded in libtorch's
//! autograd graph, so that libtorch's own backward kernels differentiate them.

// burn-tch is deprecated in favour of CubeCL, but it is the only backend with libtorch's
// CPU kernels, which are the fastest on CPUs here (docs/benchmarks.md).
#![allow(deprecated)]

mod batch_norm;
mod conv;
mod sgd;

pub(crate) use sgd::momentum_step;

use burn::backend::{
    Autodiff, LibTorch,
    autodiff::{
        checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
        grads::Gradients,
        ops::{Backward, Ops, OpsKind},
    },
    libtorch::TchTensor,
    tensor::FloatTensor,
};

/// A copy of `tensor` in its own memory, outside any autograd graph: for handing Burn a
/// buffer it may update in place while libtorch keeps the original.
pub(crate) fn fresh_copy(tensor: &tch::Tensor) -> tch::Tensor {
    tch::no_grad(|| {
        let mut copy = tensor.empty_like();
        copy.copy_(tensor);
        copy
    })
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
pub(crate) fn record<const N: usize, C: CheckpointStrategy, T>(
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
