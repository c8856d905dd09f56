//! Writes a trained run's model for PyTorch: safetensors with torchvision's or the
//! original's key names (`load_state_dict(safetensors.torch.load_file(F))`, strict) and
//! the class labels beside it (`F` with `.categories.txt`).
//!
//! ```text
//! cargo run --release --example export -- --run-dir runs/demo --out demo.safetensors
//! cargo run --release --example export -- --checkpoint runs/demo/checkpoints/best --out best.safetensors
//! ```

mod support;

use std::path::PathBuf;

use alexnet::train::commands::export::{ExportCommand, export_command};
use anyhow::Result;
use clap::Parser;

/// Export a trained AlexNet to safetensors with PyTorch's key names.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Run directory whose latest checkpoint is exported.
    #[arg(long, required_unless_present = "checkpoint")]
    run_dir: Option<PathBuf>,
    /// A checkpoint folder (checkpoints/epoch-NNNN or checkpoints/best) instead.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// The safetensors file to write; it must not exist.
    #[arg(long)]
    out: PathBuf,
}

fn run(args: Args) -> Result<()> {
    let report = export_command(&ExportCommand {
        run_dir: args.run_dir,
        checkpoint: args.checkpoint,
        out: args.out,
    })?;
    println!("{report}");
    Ok(())
}

fn main() {
    support::main(|| run(Args::parse()));
}
