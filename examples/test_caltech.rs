//! Evaluates a run's latest checkpoint (or a given one) on the test split (the
//! validation split, said so, when the dataset has no test split), writes the per-class
//! accuracy, the confusion matrix and the most-confused pairs, and prints
//! `top1=… top5=… mean_per_class=… images=… split=…` as its last line.
//!
//! ```text
//! cargo run --release --example test_caltech                         # the demo run
//! cargo run --release --example test_caltech -- --config configs/caltech256.toml --ten-crop
//! ```

mod support;

use std::path::PathBuf;

use alexnet::{
    prep::Split,
    train::{
        commands::{TestCommand, test_command},
        config::Overrides,
        eval::TestView,
    },
};
use anyhow::Result;
use clap::Parser;

/// Evaluate a trained AlexNet checkpoint.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Config file. Default: the run directory's config.toml (what training used).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run directory. Default: train_caltech's for the same flags: runs/<config name>
    /// (runs/demo without a config or --data, runs/alexnet with --data).
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// A checkpoint folder (checkpoints/epoch-NNNN or checkpoints/best). Default: the
    /// run's latest.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// The prepared dataset. Default: the config's, else the one the run trained on
    /// (recorded in its config.toml), else the demo dataset (with a warning).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Which split to evaluate (train, val or test). Default: test where the dataset
    /// has one, else val (which chose the checkpoint: not a test result, and said so).
    #[arg(long)]
    split: Option<Split>,
    /// Score a prepared dataset other than the one the checkpoint trained on (by default
    /// a changed dataset is refused: a re-split puts trained-on images in the test split).
    #[arg(long)]
    other_dataset: bool,
    /// The paper's ten-crop evaluation (corners, centre, mirrors; outputs averaged).
    #[arg(long, conflicts_with = "center_crop")]
    ten_crop: bool,
    /// One central crop instead of the config's eval pipeline (the original's squash).
    #[arg(long)]
    center_crop: bool,
    /// Device to evaluate on.
    #[arg(long)]
    device: Option<String>,
}

fn run(args: Args) -> Result<()> {
    let report = test_command(&TestCommand {
        config: args.config.as_deref(),
        checkpoint: args.checkpoint,
        split: args.split,
        view: TestView::from_flags(args.ten_crop, args.center_crop),
        other_dataset: args.other_dataset,
        overrides: Overrides {
            run_dir: args.run_dir,
            data: args.data,
            device: args.device,
            ..Overrides::default()
        },
    })?;
    println!("{report}");
    Ok(())
}

fn main() {
    support::main(|| run(Args::parse()));
}
