//! SGD's momentum step on libtorch, in place, in PyTorch's five passes.

#![allow(deprecated)] // burn-tch is deprecated in favour of CubeCL; see the module above.

use super::fresh_copy;
use crate::SgdParams;
use burn::{
    backend::tensor::FloatTensor,
    backend::{Backend, Dispatch, LibTorch, backend_extension, libtorch::TchTensor},
    prelude::*,
};

/// One SGD step with momentum on one parameter.
#[backend_extension(LibTorch)]
pub trait NativeSgd: Backend {
    /// Returns the updated parameter and velocity.
    fn native_sgd_momentum_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        velocity: FloatTensor<Self>,
        lr: f64,
        sgd: SgdParams,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
}

impl NativeSgd for LibTorch {
    fn native_sgd_momentum_step(
        param: TchTensor,
        grad: TchTensor,
        velocity: TchTensor,
        lr: f64,
        sgd: SgdParams,
    ) -> (TchTensor, TchTensor) {
        // A 0-dimensional tensor scales `addcmul_`'s product: `a += b · s` in one pass.
        let scalar = |value: f64| {
            tch::Tensor::from(value)
                .to_kind(param.tensor.kind())
                .to_device(param.tensor.device())
        };
        let in_place = param.can_mut() && grad.can_mut() && velocity.can_mut();
        let (mut p, mut g, mut v) = if in_place {
            (
                param.tensor.shallow_clone(),
                grad.tensor.shallow_clone(),
                velocity.tensor.shallow_clone(),
            )
        } else {
            (
                fresh_copy(&param.tensor),
                fresh_copy(&grad.tensor),
                fresh_copy(&velocity.tensor),
            )
        };
        tch::no_grad(|| {
            if sgd.weight_decay != 0.0 {
                let _ = g.addcmul_(&p, &scalar(sgd.weight_decay));
            }
            let _ = v.g_mul_scalar_(sgd.momentum);
            if sgd.dampening == 0.0 {
                let _ = v.g_add_(&g);
            } else {
                let _ = v.addcmul_(&g, &scalar(1.0 - sgd.dampening));
            }
            if sgd.nesterov {
                let _ = g.addcmul_(&v, &scalar(sgd.momentum));
                let _ = p.addcmul_(&g, &scalar(-lr));
            } else {
                let _ = p.addcmul_(&v, &scalar(-lr));
            }
        });
        if in_place {
            // Same buffers: keep Burn's ownership records.
            (
                TchTensor {
                    tensor: p,
                    storage: param.storage,
                },
                TchTensor {
                    tensor: v,
                    storage: velocity.storage,
                },
            )
        } else {
            (TchTensor::new(p), TchTensor::new(v))
        }
    }
}

/// The step through [`NativeSgd`], for a tensor on libtorch.
pub(crate) fn momentum_step<const D: usize>(
    sgd: &SgdParams,
    lr: f64,
    tensor: Tensor<D>,
    grad: Tensor<D>,
    velocity: Tensor<D>,
) -> (Tensor<D>, Tensor<D>) {
    let (tensor, velocity) = <Dispatch as NativeSgd>::native_sgd_momentum_step(
        tensor.into_dispatch(),
        grad.into_dispatch(),
        velocity.into_dispatch(),
        lr,
        *sgd,
    );
    (
        Tensor::from_dispatch(tensor),
        Tensor::from_dispatch(velocity),
    )
}
