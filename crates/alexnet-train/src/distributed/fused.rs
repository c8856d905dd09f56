//! Gradients and parameters in and out of the few flat buffers a collective exchanges.

use std::collections::HashMap;

use burn::{
    module::{ModuleMapper, ModuleVisitor, Param, ParamId},
    optim::GradientsParams,
    prelude::*,
};

use crate::error::TrainError;

/// Where one parameter's gradient sits in the fused buffers.
pub(super) struct Slot {
    pub(super) bucket: usize,
    pub(super) offset: usize,
    pub(super) dims: Vec<usize>,
    pub(super) device: Device,
}

/// Copies each parameter's gradient, times `weight`, into the fused buffers.
pub(super) struct Packer<'a> {
    pub(super) grads: &'a mut GradientsParams,
    pub(super) buckets: Vec<Vec<f32>>,
    pub(super) slots: HashMap<ParamId, Slot>,
    pub(super) bucket_len: usize,
    pub(super) weight: f32,
    pub(super) error: Option<TrainError>,
}

impl ModuleVisitor for Packer<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.error.is_some() {
            return;
        }
        let Some(grad) = self.grads.remove::<D>(param.id) else {
            return;
        };
        let dims = grad.dims().to_vec();
        let device = grad.device();
        let data = match grad.try_into_data_as::<f32>() {
            Ok(data) => data,
            Err(source) => {
                self.error = Some(TrainError::TensorRead {
                    what: "a gradient",
                    source,
                });
                return;
            }
        };
        let values = match data.as_slice::<f32>() {
            Ok(values) => values,
            Err(error) => {
                self.error = Some(TrainError::TensorRead {
                    what: "a gradient",
                    source: error.into(),
                });
                return;
            }
        };
        // A new buffer once the current one is full; a large parameter fills one alone.
        let open = self.buckets.iter().rposition(|b| !b.is_empty());
        let bucket = match open {
            Some(k) if self.buckets[k].len() < self.bucket_len => k,
            Some(k) => k + 1,
            None => 0,
        };
        if self.buckets.len() <= bucket {
            self.buckets.push(Vec::new());
        }
        let buffer = &mut self.buckets[bucket];
        let offset = buffer.len();
        let weight = self.weight;
        buffer.extend(values.iter().map(|&x| x * weight));
        self.slots.insert(
            param.id,
            Slot {
                bucket,
                offset,
                dims,
                device,
            },
        );
    }
}

/// Builds the summed gradients, times `scale`, from the fused buffers.
pub(super) struct Unpacker<'a> {
    pub(super) buckets: &'a [Vec<f32>],
    pub(super) slots: &'a HashMap<ParamId, Slot>,
    pub(super) scale: f32,
    pub(super) out: GradientsParams,
}

impl ModuleVisitor for Unpacker<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(slot) = self.slots.get(&param.id) else {
            return;
        };
        let len: usize = slot.dims.iter().product();
        let values: Vec<f32> = self.buckets[slot.bucket][slot.offset..slot.offset + len]
            .iter()
            .map(|&x| x * self.scale)
            .collect();
        let grad = Tensor::<D>::from_data(TensorData::new(values, slot.dims.clone()), &slot.device);
        self.out.register(param.id, grad);
    }
}

/// Reads every float value of a module (parameters and BatchNorm statistics) in visiting
/// order.
pub(super) struct ValueReader {
    pub(super) values: Vec<f32>,
    pub(super) error: Option<TrainError>,
}

impl ModuleVisitor for ValueReader {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.error.is_some() {
            return;
        }
        match param.val().try_into_vec_as::<f32>() {
            Ok(values) => self.values.extend(values),
            Err(source) => {
                self.error = Some(TrainError::TensorRead {
                    what: "the parameters",
                    source,
                });
            }
        }
    }
}

/// Replaces every float value of a module by the next ones of `values`, in the order
/// [`ValueReader`] read them, keeping each parameter's id, device and gradient tracking.
pub(super) struct ValueWriter<'a> {
    pub(super) values: &'a [f32],
    pub(super) offset: usize,
}

impl ModuleMapper for ValueWriter<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let values = self.values;
        let offset = &mut self.offset;
        param.map(|tensor| {
            let dims = tensor.dims();
            let len: usize = dims.iter().product();
            let device = tensor.device();
            let require_grad = tensor.is_require_grad();
            let data = TensorData::new(values[*offset..*offset + len].to_vec(), dims);
            *offset += len;
            Tensor::<D>::from_data(data, &device).set_require_grad(require_grad)
        })
    }
}
