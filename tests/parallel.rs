//! Data parallelism over several device handles and reduced precision.

mod common;

use alexnet::{
    burn::{
        module::{Module, ModuleVisitor, Param},
        optim::SgdConfig,
        prelude::*,
        tensor::{Distribution, FloatDType},
    },
    model::AlexNetConfig,
    train::{
        config::Precision,
        step::{GradientOptions, batch_gradients},
        tfevents::read_event_dir,
        trainer::train,
    },
};
use common::{assert_learned_in_shards, curve, separable_dataset, serial, tiny_config};

/// Every float parameter's values, in visiting order.
struct Collect(Vec<Vec<f32>>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.val().try_to_vec_as::<f32>().unwrap());
    }
}

fn parameters(module: &impl Module) -> Vec<Vec<f32>> {
    let mut collect = Collect(Vec::new());
    module.visit(&mut collect);
    collect.0
}

/// Burn's CPU backend has one physical device; two handles of it still exercise the
/// whole data-parallel path (sharding, replicas, per-device backward, weighted average).
#[test]
fn two_devices_take_the_same_step_as_one_with_the_whole_batch() {
    let _serial = serial();
    let device = Device::flex().autodiff();
    device.seed(3);
    // The paper's network has no BatchNorm; without dropout a step is deterministic.
    let config = AlexNetConfig {
        fc_dropout: 0.0,
        ..AlexNetConfig::paper(3)
    };
    let model = config.init(&device).unwrap();
    let images = Tensor::<4>::random([5, 3, 67, 67], Distribution::Normal(0.0, 30.0), &device);
    let targets = Tensor::<1, Int>::from_data([0, 1, 2, 1, 0], &device);
    let one = batch_gradients(
        &model,
        std::slice::from_ref(&device),
        images.clone(),
        targets.clone(),
        &GradientOptions::new(FloatDType::F32),
    )
    .unwrap();
    let two_devices = [device.clone(), Device::flex().autodiff()];
    let two = batch_gradients(
        &model,
        &two_devices,
        images,
        targets,
        &GradientOptions {
            check_finite: true,
            ..GradientOptions::new(FloatDType::F32)
        },
    )
    .unwrap();
    assert!(!two.non_finite);
    assert!(
        (one.loss - two.loss).abs() < 1e-5,
        "{} vs {}",
        one.loss,
        two.loss
    );
    assert_eq!(one.log_probs.len(), two.log_probs.len());
    let sgd = || SgdConfig::new().init();
    let after_one = parameters(&sgd().step(0.05, model.clone(), one.grads));
    let after_two = parameters(&sgd().step(0.05, model.clone(), two.grads));
    let before = parameters(&model);
    let mut moved = 0usize;
    for ((a, b), original) in after_one.iter().zip(&after_two).zip(&before) {
        for ((x, y), z) in a.iter().zip(b).zip(original) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + x.abs()), "{x} vs {y}");
            moved += usize::from(x != z);
        }
    }
    assert!(
        moved > 1_000_000,
        "the step changed the parameters ({moved} moved)"
    );
}

/// Data-parallel training on two handles of one device learns the separable fixture.
#[test]
fn alexnet_trains_data_parallel() {
    let _serial = serial();
    let run = tempfile::tempdir().unwrap();
    let mut config = tiny_config(run.path());
    config.train.data = Some(separable_dataset().to_path_buf());
    config.train.device = "flex,flex".into();
    config.train.epochs = 6;
    config.train.batch_size = 18;
    config.train.eval_batch_size = 30;
    let summary = train(&config, &mut |_| true).unwrap();
    let curve = curve(&summary.history);
    eprintln!("loss/accuracy and validation per epoch: {curve:?}");
    assert_learned_in_shards(&summary.history);
}

#[test]
fn reduced_precision_trains_with_f32_master_weights() {
    let _serial = serial();
    for precision in [Precision::F16, Precision::Bf16] {
        let run = tempfile::tempdir().unwrap();
        let mut config = tiny_config(run.path());
        config.train.precision = precision;
        config.train.epochs = 2;
        config.train.device = "flex,flex".into(); // together with data parallelism
        // Three steps an epoch: from the default 65536 the scale would still be backing
        // off when the first epoch ends without a step, which is an error.
        config.train.loss_scale.initial = 256.0;
        let summary = train(&config, &mut |_| true).unwrap();
        for metrics in &summary.history {
            assert!(
                metrics.train_loss.is_finite() && metrics.val_loss.is_finite(),
                "{precision:?}: {metrics:?}"
            );
        }
        let events = read_event_dir(&run.path().join("tensorboard")).unwrap();
        assert_eq!(
            events.scalars.contains_key("loss_scale"),
            precision == Precision::F16
        );
    }
}

#[test]
fn f16_loss_scaling_skips_overflowing_steps_and_backs_off() {
    let _serial = serial();
    let run = tempfile::tempdir().unwrap();
    let mut config = tiny_config(run.path());
    config.train.precision = Precision::F16;
    config.train.epochs = 2;
    // Gradients scaled by 1e9 overflow f16 (max 65504): those steps are skipped and the
    // scale backs off until they fit.
    config.train.loss_scale.initial = 1e9;
    config.train.loss_scale.backoff_factor = 1e-3;
    config.train.loss_scale.growth_interval = 1000;
    let summary = train(&config, &mut |_| true).unwrap();
    let first = &summary.history[0];
    let last = &summary.history[1];
    assert!(first.skipped_steps >= 1, "{first:?}");
    assert!(last.loss_scale <= 1e6, "{last:?}");
    assert!(
        first.train_loss.is_finite() && first.train_loss > 0.0,
        "{first:?}"
    );
    let total_steps = 2 * 3;
    let skipped = (first.skipped_steps + last.skipped_steps) as usize;
    assert!(
        skipped < total_steps,
        "some steps went through once the scale fit"
    );
}
