//! Finiteness checks that read one number back from the device: a sum is finite exactly
//! when every value summed is (short of a sum past `f32::MAX`, itself a divergence).

use alexnet_model::AlexNet;
use burn::{
    module::{Module, ModuleVisitor, Param},
    prelude::*,
};

use crate::error::{Result, TrainError};

/// Adds `value` to the running `total` (the first value starts it).
pub(crate) fn add_to(total: &mut Option<Tensor<1>>, value: Tensor<1>) {
    *total = Some(match total.take() {
        Some(sum) => sum + value,
        None => value,
    });
}

/// Whether a sum built by [`add_to`] is finite (read back once); no sum is finite.
pub(crate) fn sum_is_finite(total: Option<Tensor<1>>) -> Result<bool> {
    match total {
        Some(total) => Ok(total
            .try_into_scalar::<f32>()
            .map_err(|source| TrainError::TensorRead {
                what: "a gradient or parameter sum",
                source,
            })?
            .is_finite()),
        None => Ok(true),
    }
}

/// Sums every float value of a module (parameters and BatchNorm statistics).
struct ValueSum(Option<Tensor<1>>);

impl ModuleVisitor for ValueSum {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        add_to(&mut self.0, param.val().sum());
    }
}

/// Whether every parameter and BatchNorm statistic of `model` is finite.
pub(crate) fn all_finite(model: &AlexNet) -> Result<bool> {
    let mut sum = ValueSum(None);
    model.visit(&mut sum);
    sum_is_finite(sum.0)
}
