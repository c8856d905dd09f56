//! Trains AlexNet as the original post does (or on the built-in demo dataset when no
//! data is configured), resuming from the run's latest checkpoint.
//!
//! ```text
//! cargo run --release --example train_caltech                       # the demo, minutes on a CPU
//! cargo run --release --example train_caltech -- --config configs/caltech256.toml
//! tensorboard --logdir runs
//! # data-parallel over 4 processes (two nodes), in a build with `--features mpi`:
//! mpirun -np 4 -H node1:2,node2:2 target/release/examples/train_caltech --distributed mpi --config ...
//! ```

mod support;

use std::path::PathBuf;

use alexnet::train::{StopRequest, commands::train_command, config::Overrides};
use anyhow::Result;
use clap::Parser;

/// Train AlexNet; flags override the config file.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Config file (all sections). Default: configs/demo.toml's settings when no --data
    /// is given, the original post's settings otherwise. The run directory is
    /// runs/<config name> (runs/demo without a config or --data, runs/alexnet with --data).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: Overrides,
}

fn run(args: Args) -> Result<()> {
    // Ctrl-C or SIGTERM: a checkpoint after the step in flight, then exit 130 or 143; a
    // second signal exits at once.
    let stop = StopRequest::on_signals()?;
    let summary = train_command(args.config.as_deref(), &args.overrides, stop)?;
    if let Some(signal) = summary.stopped_by {
        // The log's last line said where it saved and how to resume.
        std::process::exit(StopRequest::exit_code(signal));
    }
    if summary.rank != 0 {
        // Rank 0 reports for a distributed run.
        return Ok(());
    }
    if let Some(stop) = &summary.stopped_early {
        println!("{stop}");
    }
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
