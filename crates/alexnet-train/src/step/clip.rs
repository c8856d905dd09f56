//! Clipping by the global gradient norm, as PyTorch's
//! `torch.nn.utils.clip_grad_norm_(parameters, max_norm)` (the 2-norm over every
//! gradient as one vector): when the norm exceeds `max_norm`, every gradient is scaled
//! by `max_norm / (norm + 1e-6)`.

use alexnet_model::AlexNet;
use burn::{
    module::{Module, ModuleVisitor, Param},
    optim::GradientsParams,
    prelude::*,
};

use crate::error::{Result, TrainError};

/// PyTorch's guard against a zero norm in `clip_grad_norm_`.
const EPSILON: f64 = 1e-6;

/// The sum of squares of each gradient of a module's parameters, one per parameter.
struct SquaredNorms<'a> {
    grads: &'a GradientsParams,
    sums: Vec<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorms<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.get::<D>(param.id) {
            self.sums.push(grad.clone().mul(grad).sum());
        }
    }
}

/// Multiplies every gradient of a module's parameters by `factor`.
struct Scale {
    grads: GradientsParams,
    factor: f64,
}

impl ModuleVisitor for Scale {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, grad.mul_scalar(self.factor));
        }
    }
}

/// The global 2-norm of `model`'s gradients in `grads`: each gradient's sum of squares
/// on its device, read back together once and added in f64 (one f32 sum over all 59 M
/// values would be off by 1e-4).
pub fn gradient_norm(model: &AlexNet, grads: &GradientsParams) -> Result<f64> {
    let mut squares = SquaredNorms {
        grads,
        sums: Vec::new(),
    };
    model.visit(&mut squares);
    if squares.sums.is_empty() {
        return Ok(0.0);
    }
    let sums = Tensor::cat(squares.sums, 0)
        .try_to_vec_as::<f32>()
        .map_err(|source| TrainError::TensorRead {
            what: "the gradient norm",
            source,
        })?;
    Ok(sums.iter().map(|&sum| f64::from(sum)).sum::<f64>().sqrt())
}

/// `grads` clipped to the global norm `max_norm` as `clip_grad_norm_` does, and the norm
/// before clipping.
pub fn clip_grad_norm(
    model: &AlexNet,
    grads: GradientsParams,
    max_norm: f64,
) -> Result<(GradientsParams, f64)> {
    let norm = gradient_norm(model, &grads)?;
    let factor = max_norm / (norm + EPSILON);
    if factor >= 1.0 {
        return Ok((grads, norm));
    }
    let mut scale = Scale { grads, factor };
    model.visit(&mut scale);
    Ok((scale.grads, norm))
}
