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

/// A prepared 4-class dataset of 72×72 images, 30 per class, that any correct training
/// learns completely in a few steps: each class is one colour (red, green, blue,
/// yellow) under per-image brightness and per-pixel noise. The learning tests assert on
/// it with wide margins, so no machine's floating-point order or batch noise can flip
/// them.
pub fn separable_dataset() -> &'static Path {
    static DATA: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DATA
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("temp dir");
            let raw = dir.path().join("raw");
            const COLOURS: [[f32; 3]; 4] = [
                [200.0, 40.0, 40.0],
                [40.0, 200.0, 40.0],
                [40.0, 40.0, 200.0],
                [200.0, 200.0, 40.0],
            ];
            // A fixed hash for the noise: the fixture is the same on every machine.
            let hash = |a: u64, b: u64| {
                let mut x = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_add(0x632B_E59B);
                x ^= x >> 31;
                x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
                x ^= x >> 29;
                (x % 1000) as f32 / 1000.0
            };
            for (class, colour) in COLOURS.iter().enumerate() {
                let folder = raw.join(format!("{:03}.colour{class}", class + 1));
                std::fs::create_dir_all(&folder).expect("class folder");
                for i in 0..30u64 {
                    let seed = class as u64 * 1000 + i;
                    let brightness = 0.75 + 0.5 * hash(seed, 0);
                    let (width, height) = (72 + (i as u32 % 4) * 8, 72 + (i as u32 % 3) * 8);
                    let image = image::RgbImage::from_fn(width, height, |x, y| {
                        let noise = hash(seed, u64::from(y * width + x) + 1) * 60.0 - 30.0;
                        image::Rgb(colour.map(|c| (c * brightness + noise).clamp(0.0, 255.0) as u8))
                    });
                    let mut bytes = Vec::new();
                    alexnet::prep::encode_jpeg(&image, 95, &mut bytes).expect("encode");
                    std::fs::write(folder.join(format!("{i:04}.jpg")), bytes).expect("write");
                }
            }
            let out = preprocess_72(raw, dir.path());
            (dir, out)
        })
        .1
}

/// Preprocesses `raw` to 72×72 images in `dir/processed`, a quarter held out.
fn preprocess_72(raw: PathBuf, dir: &Path) -> PathBuf {
    let out = dir.join("processed");
    let prep = PrepConfig {
        input: Some(raw),
        output: Some(out.clone()),
        size: 72,
        val_split: 0.25,
        ..PrepConfig::default()
    };
    Preprocessor::new(prep).run().expect("preprocessing");
    out
}

/// Each epoch's `train loss/accuracy val loss/accuracy`, for assertion messages.
pub fn curve(history: &[alexnet::train::metrics::EpochMetrics]) -> Vec<String> {
    history
        .iter()
        .map(|m| {
            format!(
                "{:.3}/{:.2} val {:.3}/{:.2}",
                m.train_loss, m.train_accuracy, m.val_loss, m.val_top1
            )
        })
        .collect()
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
    let out = preprocess_72(raw, dir.path());
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
    config.train.seed = test_seed();
    config
}

/// The config file of the kill and stop tests: [`tiny_config`]'s augmentation and model
/// on the tiny dataset, then `[train]` with `train` (its keys, one a line) and `rest`
/// (further sections).
pub fn tiny_toml(train: &str, rest: &str) -> String {
    format!(
        r#"
[augment]
train = [
  {{ op = "normalize", mean = "dataset" }},
  {{ op = "horizontal_flip", p = 0.5 }},
  {{ op = "random_crop", size = [67, 67] }},
]
eval = [
  {{ op = "normalize", mean = "dataset" }},
  {{ op = "center_crop", size = [67, 67] }},
]

[model]
batch_norm_momentum = 0.5

[train]
data = "{}"
lr = 0.002
checkpoint_interval = 1
keep_last = 2
preview_images = 2
seed = 42
{train}
{rest}"#,
        tiny_dataset().display()
    )
}

/// The training seed of the tests: `ALEXNET_TEST_SEED`, to check that no learning test
/// depends on one lucky seed, else 42.
pub fn test_seed() -> u64 {
    std::env::var("ALEXNET_TEST_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(42)
}

/// TensorBoard's own reader (`EventAccumulator` of the `tensorboard` Python package,
/// through `tfevents::Accumulator`) with the Python in `ALEXNET_TENSORBOARD_PYTHON`.
/// `None` (with a note) when that is unset, unless `ALEXNET_REQUIRE_TENSORBOARD` is set:
/// CI sets both.
fn tensorboard_reader() -> Option<alexnet::train::tfevents::Accumulator> {
    let Some(python) = std::env::var_os("ALEXNET_TENSORBOARD_PYTHON") else {
        assert!(
            std::env::var_os("ALEXNET_REQUIRE_TENSORBOARD").is_none(),
            "ALEXNET_REQUIRE_TENSORBOARD is set but ALEXNET_TENSORBOARD_PYTHON is not"
        );
        eprintln!("note: ALEXNET_TENSORBOARD_PYTHON unset; TensorBoard's own reader not run");
        return None;
    };
    Some(alexnet::train::tfevents::Accumulator::new(python))
}

/// The steps TensorBoard's own reader sees for each tag of `dir`.
pub fn tensorboard_steps(dir: &Path) -> Option<std::collections::BTreeMap<String, Vec<u64>>> {
    Some(
        tensorboard_reader()?
            .steps(dir)
            .expect("TensorBoard's reader"),
    )
}

/// The node names of the graph TensorBoard's own reader finds in `dir` (its
/// `EventAccumulator.Graph()`).
pub fn tensorboard_graph(dir: &Path) -> Option<Vec<String>> {
    Some(
        tensorboard_reader()?
            .graph_nodes(dir)
            .expect("TensorBoard's reader"),
    )
}

/// The example binary `name`, brought up to date once per test process (`cargo test
/// --test cli` alone does not build examples) in the profile this test runs in.
pub fn example(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = profile_dir.join("examples").join(name);
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !built.iter().any(|done| done == name) {
        built.push(name.to_string());
        let mut build = std::process::Command::new(env!("CARGO"));
        build
            .args(["build", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        // The binary must have the features this test was built with.
        let features: Vec<&str> = [
            (cfg!(feature = "mpi"), "mpi"),
            (cfg!(feature = "fault-injection"), "fault-injection"),
        ]
        .into_iter()
        .filter_map(|(on, feature)| on.then_some(feature))
        .collect();
        if !features.is_empty() {
            build.args(["--features", &features.join(",")]);
        }
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        assert!(
            build.status().expect("cargo build").success(),
            "building example {name}"
        );
    }
    path
}

/// Asserts that a run whose batches were split in shards of 9 images learned the
/// separable fixture. Shards that small make BatchNorm's batch statistics noisy, so the
/// margins are on the best epochs after the first. Measured over seeds 42, 1, 2, 3 (see
/// the closing notes): the best validation accuracy 100 %, the best training accuracy
/// 0.90–1.00, the lowest loss 0.02–0.23 of the first epoch's; chance is 25 %, a loss of
/// 1.39.
pub fn assert_learned_in_shards(history: &[alexnet::train::metrics::EpochMetrics]) {
    let curve = curve(history);
    let first = &history[0];
    let later = &history[1..];
    let best_val = later.iter().map(|m| m.val_top1).fold(0.0, f64::max);
    let best_train = later.iter().map(|m| m.train_accuracy).fold(0.0, f64::max);
    let lowest = later.iter().map(|m| m.train_loss).fold(f64::MAX, f64::min);
    assert!(best_val >= 0.9, "validation accuracy: {curve:?}");
    assert!(best_train >= 0.8, "training accuracy: {curve:?}");
    assert!(lowest < 0.5 * first.train_loss, "training loss: {curve:?}");
}

/// The state of `run`'s latest checkpoint (`checkpoints/latest`'s `state.json`).
pub fn latest_state(run: &Path) -> alexnet::train::checkpoint::TrainerState {
    let latest = std::fs::read_to_string(run.join("checkpoints/latest")).expect("latest");
    let state = run
        .join("checkpoints")
        .join(latest.trim())
        .join("state.json");
    serde_json::from_slice(&std::fs::read(state).expect("state.json")).expect("a state")
}

/// Asserts that a run killed and resumed repeated an uninterrupted one epoch by epoch:
/// train and validation loss within 1e-6 ([`within_1e6`]), the same train accuracy.
pub fn assert_same_history(
    uninterrupted: &[alexnet::train::metrics::EpochMetrics],
    resumed: &[alexnet::train::metrics::EpochMetrics],
) {
    assert_eq!(uninterrupted.len(), resumed.len());
    for (a, b) in uninterrupted.iter().zip(resumed) {
        assert!(
            within_1e6(a.train_loss, b.train_loss)
                && within_1e6(a.val_loss, b.val_loss)
                && a.train_accuracy == b.train_accuracy,
            "epoch {}: uninterrupted (train loss, val loss, train acc) {:?}, killed and resumed {:?}",
            a.epoch,
            (a.train_loss, a.val_loss, a.train_accuracy),
            (b.train_loss, b.val_loss, b.train_accuracy)
        );
    }
}

/// Whether `x` and `y` agree within 1e-6 (relative, absolute below 1): how exactly a
/// resumed run must repeat an uninterrupted one.
pub fn within_1e6(x: f64, y: f64) -> bool {
    (x - y).abs() <= 1e-6 * x.abs().max(1.0)
}

/// Asserts that the TensorBoard folder `dir` shows one point per epoch `1..=epochs` for
/// every curve and one at step 0 for the summary and preview, as this project's reader
/// sees it and, where available, TensorBoard's own ([`tensorboard_steps`]). Returns
/// this project's view for further checks.
pub fn assert_one_point_per_epoch(dir: &Path, epochs: u64) -> alexnet::train::tfevents::EventLog {
    let expected: Vec<u64> = (1..=epochs).collect();
    let events = alexnet::train::tfevents::read_event_dir(dir).expect("event files");
    for (tag, points) in &events.scalars {
        let steps: Vec<u64> = points.iter().map(|p| p.0).collect();
        assert_eq!(steps, expected, "{tag}");
    }
    for (tag, steps) in &events.images {
        assert_eq!(steps, &vec![0], "{tag}");
    }
    for (tag, texts) in &events.texts {
        let steps: Vec<u64> = texts.iter().map(|t| t.0).collect();
        assert_eq!(steps, vec![0], "{tag}");
    }
    if let Some(seen) = tensorboard_steps(dir) {
        for (tag, steps) in &seen {
            // `__run_graph__`: the reader's tag for the GraphDef, written at step 0.
            if tag.starts_with("model/") || tag.starts_with("augmented") || tag == "__run_graph__" {
                assert_eq!(steps, &vec![0], "TensorBoard's reader, tag {tag}");
            } else {
                assert_eq!(steps, &expected, "TensorBoard's reader, tag {tag}");
            }
        }
        assert!(seen.contains_key("loss/train"), "{seen:?}");
    }
    events
}
