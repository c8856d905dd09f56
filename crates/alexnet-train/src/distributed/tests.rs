//! The fused, image-weighted exchange against a fake peer.

use alexnet_model::{AlexNet, AlexNetConfig};
use burn::{
    module::{Module, ModuleVisitor, Param},
    optim::GradientsParams,
    prelude::*,
};

use super::{Collective, ProcessGroup};
use crate::error::Result;

/// Rank 0 of two whose peer sends what `peer` makes of rank 0's buffers.
struct FakePeer {
    peer: fn(&[f32]) -> Vec<f32>,
}

impl Collective for FakePeer {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        2
    }

    fn all_reduce_f32(&mut self, buffers: &mut [Vec<f32>], _what: &str) -> Result<()> {
        for buffer in buffers {
            let theirs = (self.peer)(buffer);
            for (mine, theirs) in buffer.iter_mut().zip(theirs) {
                *mine += theirs;
            }
        }
        Ok(())
    }

    fn all_reduce_f64(&mut self, _values: &mut [f64], _what: &str) -> Result<()> {
        Ok(())
    }
}

/// Every parameter's gradient set to `value`.
struct Fill(GradientsParams, f32);

impl ModuleVisitor for Fill {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if param.val().is_require_grad() {
            self.0
                .register(param.id, param.val().inner().ones_like().mul_scalar(self.1));
        }
    }
}

/// torchvision's network for 3 classes, and a gradient of `value` for each parameter.
fn model_with_gradients(value: f32) -> (AlexNet, GradientsParams) {
    let device = crate::device::parse_device(crate::device::DEFAULT_DEVICE)
        .expect("device")
        .autodiff();
    let model = AlexNetConfig::torchvision(3).init(&device).expect("model");
    let mut fill = Fill(GradientsParams::new(), value);
    model.visit(&mut fill);
    (model, fill.0)
}

/// Every gradient value of `grads`, in the model's order.
struct Read<'a>(&'a GradientsParams, Vec<f32>);

impl ModuleVisitor for Read<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.0.get::<D>(param.id) {
            self.1.extend(grad.into_data().iter::<f32>());
        }
    }
}

#[test]
fn gradients_are_weighted_by_images_fused_and_restored() {
    let (model, grads) = model_with_gradients(2.0);
    let tensors = grads.len();
    // 1 MiB buffers: several, so values cross buffer boundaries.
    let mut group = ProcessGroup::new(
        Box::new(FakePeer {
            // The other rank had 3 images, gradient 3 everywhere and loss 2.0: its
            // buffer holds 3 · 3 = 9 per value, then loss · images = 6 and 3. This
            // rank's buffers hold 5 · 2 = 10 per value; its last ends with 5 and 5.
            peer: |mine| {
                let mut theirs = vec![9.0; mine.len()];
                if mine.ends_with(&[5.0, 5.0]) {
                    let n = theirs.len();
                    theirs[n - 2] = 6.0;
                    theirs[n - 1] = 3.0;
                }
                theirs
            },
        }),
        1,
    );
    // This rank: 5 images, gradient 2, loss 1.0.
    let reduced = group
        .reduce_gradients(&model, grads, 1.0, 5)
        .expect("reduce");
    assert!(group.buffer_lens().len() > 3, "{:?}", group.buffer_lens());
    assert_eq!(reduced.images, 8);
    assert!(!reduced.non_finite);
    // (5 · 2 + 3 · 3) / 8 and (5 · 1.0 + 3 · 2.0) / 8.
    assert!((reduced.loss - 11.0 / 8.0).abs() < 1e-6, "{}", reduced.loss);
    assert_eq!(reduced.grads.len(), tensors);
    let mut read = Read(&reduced.grads, Vec::new());
    model.visit(&mut read);
    assert_eq!(read.1.len(), model.num_trainable_params());
    assert!(read.1.iter().all(|&g| (g - 19.0 / 8.0).abs() < 1e-6));
}

#[test]
fn a_non_finite_gradient_on_any_rank_is_seen_by_every_rank() {
    let (model, grads) = model_with_gradients(1.0);
    let mut group = ProcessGroup::new(
        Box::new(FakePeer {
            peer: |mine| {
                let mut theirs = vec![0.0; mine.len()];
                theirs[0] = f32::NAN;
                theirs
            },
        }),
        64,
    );
    let reduced = group
        .reduce_gradients(&model, grads, 1.0, 5)
        .expect("reduce");
    assert!(reduced.non_finite);
}
