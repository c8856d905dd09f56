//! Shared fixtures: a tiny generated dataset, preprocessed once per test binary.

#![allow(dead_code)]

/// The example binaries' allocator (mimalloc; see there why).
#[path = "../../examples/support/mod.rs"]
mod support;

use std::{
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard, OnceLock},
};

/// Training runs in one process share the CPU backend's random generator (dropout), so
/// tests that compare runs exactly take turns.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

use alexnet::{
    augment::{ChannelValues, OpConfig, Scale},
    prep::{DemoConfig, PrepConfig, Preprocessor},
    train::ExperimentConfig,
};

/// A prepared 3-class dataset of 72×72 images (12 per class, no odd files).
pub fn tiny_dataset() -> &'static Path {
    static DATA: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DATA.get_or_init(|| prepared_dataset(3, 12)).1
}

/// A prepared 4-class dataset of 72×72 images, 30 per class: enough steps per epoch
/// for the loss curve to say something beyond batch noise.
pub fn learnable_dataset() -> &'static Path {
    static DATA: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DATA.get_or_init(|| prepared_dataset(4, 30)).1
}

fn prepared_dataset(classes: usize, images_per_class: usize) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let raw = dir.path().join("raw");
    let demo = DemoConfig {
        classes,
        images_per_class,
        min_size: 72,
        max_size: 96,
        oddities: false,
        ..DemoConfig::default()
    };
    alexnet::prep::generate_demo(&raw, &demo).expect("demo data");
    let out = dir.path().join("processed");
    let prep = PrepConfig {
        input: Some(raw),
        output: Some(out.clone()),
        size: 72,
        val_split: 0.25,
        ..PrepConfig::default()
    };
    Preprocessor::new(prep).run().expect("preprocessing");
    (dir, out)
}

/// A fast config on the tiny dataset: 67×67 crops, small batches, `run_dir` given.
pub fn tiny_config(run_dir: &Path) -> ExperimentConfig {
    let mut config = ExperimentConfig::default();
    let normalize = OpConfig::Normalize {
        mean: ChannelValues::Dataset,
        std: None,
        scale: Scale::Byte,
    };
    config.augment.train = vec![
        normalize.clone(),
        OpConfig::HorizontalFlip { p: 0.5 },
        OpConfig::RandomCrop { size: [67, 67] },
    ];
    config.augment.eval = vec![normalize, OpConfig::CenterCrop { size: [67, 67] }];
    config.train.data = Some(tiny_dataset().to_path_buf());
    config.train.run_dir = Some(run_dir.to_path_buf());
    config.train.epochs = 3;
    config.train.batch_size = 9;
    config.train.eval_batch_size = 9;
    config.train.lr = 0.002;
    config.train.checkpoint_interval = 1;
    config.train.preview_images = 4;
    // A handful of steps per run: faster BatchNorm statistics let evaluation catch up.
    config.model.batch_norm_momentum = 0.5;
    config
}
