//! A replica with private BatchNorm statistics leaves the model's statistics alone.

use alexnet_model::AlexNetConfig;
use burn::{
    module::{Module, ModuleVisitor, Param},
    prelude::*,
    tensor::FloatDType,
};

/// Every float value of a module (parameters and running statistics), in order.
struct Values(Vec<f32>);

impl ModuleVisitor for Values {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0
            .extend(param.val().try_into_vec_as::<f32>().expect("values"));
    }
}

fn values<M: Module>(module: &M) -> Vec<f32> {
    let mut values = Values(Vec::new());
    module.visit(&mut values);
    values.0
}

#[test]
fn a_replicas_batch_norm_updates_stay_its_own() {
    let device = Device::flex().autodiff();
    device.seed(3);
    let model = AlexNetConfig::seed(5).init(&device).expect("model");
    assert!(
        model.clone().batch_norms_mut().count() >= 7,
        "the seed variant has BatchNorm after every conv layer and fc1, fc2"
    );
    let before = values(&model);
    let replica = model.clone().with_private_statistics();
    let images = Tensor::<4>::random(
        [4, 3, 67, 67],
        burn::tensor::Distribution::Normal(0.0, 50.0),
        &device,
    );
    let output = replica.forward(images, FloatDType::F32).expect("forward");
    drop(output);
    // `valid()` commits the replica's pending statistics updates.
    let replica_after = values(&replica.valid());
    // (`assert!` on `==`: a failure must not print 58 million values.)
    assert!(replica_after != before, "the replica's statistics moved");
    assert!(
        values(&model.valid()) == before,
        "a running statistic of the model was updated through the replica"
    );
}
