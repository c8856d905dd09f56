//! Training-mode BatchNorm on libtorch: one fused kernel each way.

#![allow(deprecated)] // burn-tch is deprecated in favour of CubeCL; see the module above.

use super::{fresh_copy, record};
use crate::NativeBatchNorm;
use burn::backend::{
    Autodiff, AutodiffBackend, LibTorch, autodiff::checkpoint::strategy::CheckpointStrategy,
    libtorch::TchTensor, tensor::FloatTensor,
};

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

/// The biased variance from libtorch's `1 / sqrt(var + epsilon)`.
fn variance(inv_std: &tch::Tensor, epsilon: f64) -> TchTensor {
    TchTensor::new(tch::no_grad(|| inv_std.pow_tensor_scalar(-2.0) - epsilon))
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
