//! The engine never gives a silent wrong answer: non-finite numbers stop a run, BatchNorm
//! statistics on several devices follow one stated rule, checkpoints and TensorBoard
//! curves stay right across restarts.

mod common;

use std::fs;

use alexnet::{
    augment::{ChannelValues, OpConfig, Scale},
    burn::{prelude::*, tensor::Distribution, tensor::FloatDType},
    model::{AlexNet, AlexNetConfig},
    train::{
        checkpoint::{CheckpointStore, EpochPosition, TrainerState},
        config::Precision,
        metrics::TrainingSums,
        optim::{Schedule, SchedulerConfig},
        step::{GradientOptions, ShardThreads, batch_gradients},
        tfevents::read_event_dir,
        trainer::train,
    },
};
use common::{assert_one_point_per_epoch, serial, tiny_config, within_1e6};

/// A normalization whose output overflows f32: every value becomes infinite.
fn overflowing_normalize() -> OpConfig {
    OpConfig::Normalize {
        mean: ChannelValues::Dataset,
        std: Some(ChannelValues::Values([1e-300; 3])),
        scale: Scale::Byte,
    }
}

#[test]
fn non_finite_validation_outputs_stop_the_run_and_are_never_best() {
    let _serial = serial();
    let run = tempfile::tempdir().unwrap();
    let mut config = tiny_config(run.path());
    config.train.epochs = 2;
    // Training sees normal images; validation sees infinite ones, so the model's
    // validation outputs are NaN.
    config.augment.eval[0] = overflowing_normalize();
    let error = train(&config, &mut |_| true)
        .expect_err("NaN validation outputs must stop the run")
        .to_string();
    assert!(
        error.contains("validation") && error.contains("epoch 1"),
        "{error}"
    );
    assert!(!error.contains('\n'), "{error}");
    assert!(
        !run.path().join("checkpoints/best").exists(),
        "a model with non-finite outputs was marked best"
    );
    assert!(!run.path().join("checkpoints/latest").exists());
}

#[test]
fn f16_that_cannot_make_a_step_stops_instead_of_skipping_forever() {
    let _serial = serial();
    let run = tempfile::tempdir().unwrap();
    let mut config = tiny_config(run.path());
    config.train.precision = Precision::F16;
    config.train.epochs = 3;
    // Every loss is infinite at any scale: the run diverged, it did not overflow.
    config.augment.train[0] = overflowing_normalize();
    let error = train(&config, &mut |_| true)
        .expect_err("a run with no completed step must fail")
        .to_string();
    assert!(error.contains("epoch 1"), "{error}");
    assert!(error.contains("last good checkpoint"), "{error}");
    assert!(!run.path().join("checkpoints/latest").exists());
    let events = read_event_dir(&run.path().join("tensorboard")).unwrap();
    assert!(
        !events.scalars.contains_key("loss/train"),
        "an epoch without a step logged a loss: {:?}",
        events.scalars.get("loss/train")
    );
}

#[test]
fn f16_overflowing_at_the_smallest_scale_stops_after_the_configured_steps() {
    let _serial = serial();
    let run = tempfile::tempdir().unwrap();
    let mut config = tiny_config(run.path());
    config.train.precision = Precision::F16;
    config.train.loss_scale.initial = 1.0;
    config.train.loss_scale.max_overflows_at_min_scale = 2;
    config.augment.train[0] = overflowing_normalize();
    let error = train(&config, &mut |_| true)
        .expect_err("diverged f16 must stop")
        .to_string();
    assert!(
        error.contains("overflowed 2 times in a row at the smallest loss scale")
            && error.contains("epoch 1, batch 2"),
        "{error}"
    );
}

/// Dropout on two device handles draws in a fixed order, so a resumed two-device run
/// repeats an uninterrupted one.
#[test]
fn two_device_runs_resume_exactly() {
    let _serial = serial();
    let train_on_two = |dir: &std::path::Path, stop_after: usize| {
        let mut config = tiny_config(dir);
        config.train.device = "flex,flex".into();
        config.train.epochs = 3;
        train(&config, &mut |metrics| metrics.epoch < stop_after).unwrap()
    };
    let straight_dir = tempfile::tempdir().unwrap();
    let straight = train_on_two(straight_dir.path(), usize::MAX);
    let resumed_dir = tempfile::tempdir().unwrap();
    assert!(train_on_two(resumed_dir.path(), 2).interrupted);
    let resumed = train_on_two(resumed_dir.path(), usize::MAX);
    assert_eq!(straight.history.len(), 3);
    assert_eq!(resumed.history.len(), 3);
    for (a, b) in straight.history.iter().zip(&resumed.history) {
        assert!(
            within_1e6(a.train_loss, b.train_loss)
                && within_1e6(a.val_loss, b.val_loss)
                && within_1e6(a.train_accuracy, b.train_accuracy),
            "epoch {}: {a:?} vs resumed {b:?}",
            a.epoch
        );
    }
}

fn trainer_state(epoch: usize) -> TrainerState {
    let schedule = Schedule::new(&SchedulerConfig::default(), 0.01).unwrap();
    let mut state = TrainerState::new(1, AlexNetConfig::seed(3), schedule.state(), 1.0);
    state.epoch = epoch;
    state
}

#[test]
fn pruning_never_deletes_the_checkpoint_just_written() {
    let run = tempfile::tempdir().unwrap();
    let store = CheckpointStore::new(run.path(), 1);
    store.save(&trainer_state(10), b"ten", b"opt", 0).unwrap();
    // A later line of the run reached epoch 30, then the user resumed from epoch 10
    // (`--resume checkpoints/epoch-0010`), so the directory holds a stale epoch 30.
    let stale = trainer_state(30);
    store.save(&stale, b"thirty", b"opt", 0).unwrap();
    fs::write(run.path().join("checkpoints/latest"), "epoch-0010\n").unwrap();
    let written = store
        .save(&trainer_state(11), b"eleven", b"opt", 0)
        .unwrap();
    assert!(written.is_dir(), "the checkpoint just written was pruned");
    assert_eq!(
        fs::read_to_string(run.path().join("checkpoints/latest"))
            .unwrap()
            .trim(),
        "epoch-0011"
    );
    let resumed = store.load_latest().unwrap().expect("a checkpoint");
    assert_eq!(resumed.state.epoch, 11);
    assert_eq!(resumed.model, b"eleven");
    // keep_last = 1 within this line: epoch 10 goes; the stale epoch 30 is reported, not
    // silently taken as this run's.
    assert!(!run.path().join("checkpoints/epoch-0010").exists());
}

/// `trainer_state(epoch)` with a step checkpoint's position: `batches` into the next epoch.
fn step_state(epoch: usize, batches: usize) -> TrainerState {
    let mut state = trainer_state(epoch);
    state.position = Some(EpochPosition {
        epoch: epoch + 1,
        batches,
        sums: TrainingSums::default(),
    });
    state
}

#[test]
fn a_damaged_step_checkpoint_falls_back_to_the_newest_good_one_of_either_line() {
    let run = tempfile::tempdir().unwrap();
    let store = CheckpointStore::new(run.path(), 2).keeping_steps(2);
    // 10 batches an epoch: epoch 2, then steps 23 and 26 of the run.
    store.save(&trainer_state(2), b"two", b"opt", 20).unwrap();
    store
        .save_step(&step_state(2, 3), [b"step 23", b"opt"], 23)
        .unwrap();
    store
        .save_step(&step_state(2, 6), [b"step 26", b"opt"], 26)
        .unwrap();
    let checkpoints = run.path().join("checkpoints");
    assert_eq!(
        fs::read_to_string(checkpoints.join("latest")).unwrap(),
        "step-0026\n"
    );
    let loaded = store.load_latest().unwrap().unwrap();
    assert_eq!(
        (loaded.model.as_slice(), loaded.state.progress()),
        (&b"step 26"[..], (2, 6))
    );
    // Damaged latest: the step before it.
    fs::write(checkpoints.join("step-0026/model.bpk"), b"step 2X").unwrap();
    let loaded = store.load_latest().unwrap().unwrap();
    assert_eq!(loaded.model, b"step 23");
    // Both step checkpoints damaged: the epoch checkpoint before them.
    fs::write(checkpoints.join("step-0023/model.bpk"), b"step 2X").unwrap();
    let loaded = store.load_latest().unwrap().unwrap();
    assert_eq!(
        (loaded.model.as_slice(), loaded.state.progress()),
        (&b"two"[..], (2, 0))
    );
    // A command that scores the run takes the latest epoch checkpoint, never a step one.
    let scored = store.load_given_or_latest(None).unwrap();
    assert_eq!(scored.state.epoch, 2);
    // Epoch 3's checkpoint (run step 30) supersedes the step checkpoints before it.
    store.save(&trainer_state(3), b"three", b"opt", 30).unwrap();
    assert!(store.list_steps().unwrap().is_empty());
    assert_eq!(
        fs::read_to_string(checkpoints.join("latest")).unwrap(),
        "epoch-0003\n"
    );
}

#[test]
fn tensorboard_has_one_point_per_epoch_after_a_restart_before_any_checkpoint() {
    let _serial = serial();
    let run = tempfile::tempdir().unwrap();
    let mut config = tiny_config(run.path());
    config.train.epochs = 3;
    config.train.checkpoint_interval = 10;
    // Killed after epoch 2, before the first checkpoint: the rerun starts at epoch 1.
    let first = train(&config, &mut |metrics| metrics.epoch < 2).unwrap();
    assert!(first.interrupted);
    assert!(!run.path().join("checkpoints/latest").exists());
    let second = train(&config, &mut |_| true).unwrap();
    assert_eq!(second.history.len(), 3);
    let events = assert_one_point_per_epoch(&run.path().join("tensorboard"), 3);
    assert_eq!(events.images["augmented_training_images"], vec![0]);
    assert_eq!(events.texts["model/summary"].len(), 1);
}

/// Running mean and variance of `model.conv1`'s BatchNorm.
fn conv1_running_stats(model: &AlexNet) -> (Vec<f32>, Vec<f32>) {
    let valid = model.valid();
    let norm = valid
        .conv1
        .norm
        .as_ref()
        .expect("the seed variant has BatchNorm");
    (
        norm.running_mean.value().try_to_vec_as::<f32>().unwrap(),
        norm.running_var.value().try_to_vec_as::<f32>().unwrap(),
    )
}

/// The per-channel mean and biased variance of conv1's ReLU output on `images`.
fn conv1_batch_stats(model: &AlexNet, images: Tensor<4>) -> (Tensor<1>, Tensor<1>) {
    let valid = model.valid();
    let features = valid.conv1.conv.forward(images.inner()).clamp_min(0.0);
    let [n, c, h, w] = features.dims();
    let planes: Tensor<2> = features.swap_dims(0, 1).reshape([c, n * h * w]);
    let mean: Tensor<2> = planes.clone().mean_dim(1);
    let variance = (planes - mean.clone()).powi_scalar(2).mean_dim(1);
    (mean.reshape([c]), variance.reshape([c]))
}

fn assert_close(name: &str, got: &[f32], expected: &[f32]) {
    assert_eq!(got.len(), expected.len());
    for (k, (a, b)) in got.iter().zip(expected).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
            "{name}[{k}]: {a} vs {b} by hand"
        );
    }
}

/// Three steps of a 6-image batch split over two device handles: the running statistics
/// follow the first shard's batches alone, once per step (PyTorch DataParallel's rule),
/// whether the shards take turns on this thread or run on threads of their own (as on
/// two real devices, where every step's worker threads are new).
#[test]
fn batch_norm_statistics_on_two_devices_follow_the_first_shard() {
    let _serial = serial();
    for threads in [ShardThreads::PerDevice, ShardThreads::PerShard] {
        check_statistics_follow_the_first_shard(threads);
    }
}

fn check_statistics_follow_the_first_shard(threads: ShardThreads) {
    let device = Device::flex().autodiff();
    device.seed(11);
    let config = AlexNetConfig {
        batch_norm_momentum: 0.5,
        ..AlexNetConfig::seed(3)
    };
    let momentum = config.batch_norm_momentum;
    let model = config.init(&device).unwrap();
    let devices = [device.clone(), Device::flex().autodiff()];
    let (mut mean, mut variance) = {
        let (m, v) = conv1_running_stats(&model);
        let plain = Device::flex();
        (
            Tensor::<1>::from_floats(m.as_slice(), &plain),
            Tensor::<1>::from_floats(v.as_slice(), &plain),
        )
    };
    for step in 0..3 {
        let images = Tensor::<4>::random(
            [6, 3, 67, 67],
            Distribution::Normal(0.0, 1.0 + step as f64),
            &device,
        );
        let targets = Tensor::<1, Int>::from_data([0, 1, 2, 0, 1, 2], &device);
        let (batch_mean, batch_var) = conv1_batch_stats(&model, images.clone().narrow(0, 0, 3));
        mean = mean.mul_scalar(1.0 - momentum) + batch_mean.mul_scalar(momentum);
        variance = variance.mul_scalar(1.0 - momentum) + batch_var.mul_scalar(momentum);
        let options = GradientOptions {
            dtype: FloatDType::F32,
            loss_scale: 1.0,
            check_finite: false,
            threads,
            label_smoothing: 0.0,
        };
        batch_gradients(&model, &devices, images, targets, &options).unwrap();
    }
    let (got_mean, got_var) = conv1_running_stats(&model);
    let name = |what: &str| format!("{threads:?}: running {what}");
    let mean = mean.try_to_vec_as::<f32>().unwrap();
    let variance = variance.try_to_vec_as::<f32>().unwrap();
    assert_close(&name("mean"), &got_mean, &mean);
    assert_close(&name("var"), &got_var, &variance);
}
