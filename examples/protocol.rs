//! The Caltech-256 protocol: K seeded splits of N training images per class (the rest
//! validation and test), each prepared, trained and scored on its test split; prints
//! each split and, as its last line, `mean_per_class=<mean> ± <std> over K splits …`.
//!
//! ```text
//! cargo run --release --example protocol -- --config configs/caltech256.toml \
//!     --input data/256_ObjectCategories --train-per-class 30 --splits 3
//! ```

mod support;

use std::path::PathBuf;

use alexnet::train::{
    commands::{ProtocolCommand, protocol_command},
    config::Overrides,
};
use anyhow::Result;
use clap::Parser;

/// Run the N-training-images-per-class protocol over K seeded splits.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Config file (its [prep], [augment], [model] and [train] sections). Default: the
    /// original post's settings.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The raw class-per-folder dataset (overrides prep.input).
    #[arg(long)]
    input: Option<PathBuf>,
    /// N: training images per class (15, 30, 45 or 60 in the literature).
    #[arg(long, default_value_t = 30)]
    train_per_class: usize,
    /// K: seeded splits (seeds prep.seed, prep.seed + 1, …).
    #[arg(long, default_value_t = 3)]
    splits: usize,
    /// Where the splits' datasets and runs go. Default: runs/protocol-<N>.
    #[arg(long)]
    dir: Option<PathBuf>,
    #[command(flatten)]
    overrides: Overrides,
}

fn run(args: Args) -> Result<()> {
    let dir = args
        .dir
        .unwrap_or_else(|| PathBuf::from(format!("runs/protocol-{}", args.train_per_class)));
    let report = protocol_command(&ProtocolCommand {
        config: args.config.as_deref(),
        input: args.input,
        train_per_class: args.train_per_class,
        splits: args.splits,
        dir,
        overrides: args.overrides,
    })?;
    println!("{report}");
    Ok(())
}

fn main() {
    support::main(|| run(Args::parse()));
}
