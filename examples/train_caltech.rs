//! Trains AlexNet as the original post does (or on the built-in demo dataset when no
//! data is configured), resuming from the run's latest checkpoint.
//!
//! ```text
//! cargo run --release --example train_caltech                       # the demo, minutes on a CPU
//! cargo run --release --example train_caltech -- --config configs/caltech256.toml
//! tensorboard --logdir runs
//! ```

mod support;

use std::path::PathBuf;

use alexnet::train::{
    self, ExperimentConfig,
    config::{Precision, Resume},
};
use anyhow::{Result, bail};
use clap::Parser;

/// The demo settings, used when neither --config nor --data is given.
const DEMO_CONFIG: &str = include_str!("../configs/demo.toml");

/// Train AlexNet; flags override the config file.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Config file (all sections). Default: configs/demo.toml's settings when no --data
    /// is given, the original post's settings otherwise.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The prepared dataset (output of preprocess_caltech).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Run directory for checkpoints, logs and TensorBoard. Default: runs/<config name>.
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Total epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Training batch size.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Device(s): flex, tch-cpu, tch-cuda:0, cuda:0, or a list such as cuda:0,cuda:1.
    #[arg(long)]
    device: Option<String>,
    /// Compute precision: f32, f16 or bf16 (weights stay f32).
    #[arg(long)]
    precision: Option<Precision>,
    /// auto (latest checkpoint of the run), never, or a checkpoint folder.
    #[arg(long)]
    resume: Option<Resume>,
    /// Save a checkpoint every N epochs.
    #[arg(long)]
    checkpoint_interval: Option<usize>,
    /// Seed of shuffling, augmentation, dropout and initialization.
    #[arg(long)]
    seed: Option<u64>,
}

fn run(args: Args) -> Result<()> {
    let (mut config, name) = match (&args.config, &args.data) {
        (Some(path), _) => (
            ExperimentConfig::load(path)?,
            path.file_stem()
                .map_or("run".into(), |s| s.to_string_lossy().into_owned()),
        ),
        (None, None) => (
            ExperimentConfig::from_toml(DEMO_CONFIG, "configs/demo.toml".as_ref())?,
            "demo".to_string(),
        ),
        (None, Some(_)) => (ExperimentConfig::default(), "alexnet".to_string()),
    };
    let train_config = &mut config.train;
    if let Some(data) = args.data {
        train_config.data = Some(data);
    }
    if let Some(run_dir) = args.run_dir {
        train_config.run_dir = Some(run_dir);
    }
    if train_config.run_dir.is_none() {
        train_config.run_dir = Some(train::run::default_run_dir(&name));
    }
    if let Some(epochs) = args.epochs {
        train_config.epochs = epochs;
    }
    if let Some(batch_size) = args.batch_size {
        train_config.batch_size = batch_size;
    }
    if let Some(device) = args.device {
        train_config.device = device;
    }
    if let Some(precision) = args.precision {
        train_config.precision = precision;
    }
    if let Some(resume) = args.resume {
        train_config.resume = resume;
    }
    if let Some(interval) = args.checkpoint_interval {
        train_config.checkpoint_interval = interval;
    }
    if let Some(seed) = args.seed {
        train_config.seed = seed;
    }
    let Some(run_dir) = config.train.run_dir.clone() else {
        bail!("no run directory");
    };
    config.validate()?;
    // Everything is checked before the run directory is touched.
    let console = train::logging::console(&config.logging)?;
    train::run::resolve_data(&mut config, true)?;
    let session = train::trainer::Session::prepare(&config)?;
    let _log = console.into_file(&run_dir)?;
    let summary = session.run(&mut |_| true)?;
    let last = summary.history.last();
    println!(
        "done: {} epochs, val acc {:.2}% — checkpoint {} — TensorBoard: tensorboard --logdir {}",
        summary.history.len(),
        last.map_or(0.0, |m| 100.0 * m.val_top1),
        summary
            .checkpoint
            .as_ref()
            .map_or("none".into(), |p| p.display().to_string()),
        summary.tensorboard_dir.display()
    );
    Ok(())
}

fn main() {
    support::main(|| run(Args::parse()));
}
