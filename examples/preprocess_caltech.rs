//! Preprocesses a class-per-folder image dataset (Caltech-256 layout) for training:
//! seeded stratified split, center crop, resize, JPEG, channel statistics, report.
//!
//! ```text
//! cargo run --release --example preprocess_caltech -- --input 256_ObjectCategories --output data/caltech256
//! cargo run --release --example preprocess_caltech -- --demo       # the built-in demo data
//! ```

mod support;

use std::path::PathBuf;

use alexnet::{
    prep::{self, DemoPrepOptions, PrepError, PrepOverrides, preprocess_command},
    train::{self, ExperimentConfig, StopRequest},
};
use anyhow::Result;
use clap::Parser;

/// Preprocess a class-per-folder dataset (NNN.label/*.jpg) for AlexNet training.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// A config file; its [prep] section is used (and [demo] with --demo). Default: the
    /// original's settings, or configs/demo.toml's with --demo.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    prep: PrepOverrides,
    /// Replace the outputs of an earlier run in --output.
    #[arg(long)]
    overwrite: bool,
    /// Generate the built-in demo dataset and preprocess it (input: <demo.dir>/raw,
    /// output: <demo.dir>/processed unless --output is given).
    #[arg(long)]
    demo: bool,
}

fn run(args: Args) -> Result<()> {
    let config = ExperimentConfig::load_or_demo(args.config.as_deref(), args.demo)?;
    let _log = train::logging::init(&config.logging, None)?;
    // Ctrl-C or SIGTERM: the images in flight finish, the output stays marked
    // incomplete, exit 130 or 143; a second signal exits at once.
    let stop = StopRequest::on_signals()?;
    let options = DemoPrepOptions {
        reuse: false,
        overwrite: args.overwrite,
        progress: Some(prep::progress_bar("preprocessing")),
        stop: Some(stop),
    };
    let demo = args.demo.then_some(&config.demo);
    let outcome = match preprocess_command(&config.prep, &args.prep, demo, options) {
        Err(error @ PrepError::Stopped { signal, .. }) => {
            eprintln!("{error}");
            std::process::exit(StopRequest::exit_code(signal));
        }
        outcome => outcome?,
    };
    if let Some(summary) = &outcome.demo {
        println!(
            "demo dataset: {} images in {} classes in {}",
            summary.images,
            summary.config.classes,
            config.demo.dir.join("raw").display()
        );
    }
    print!("{}", outcome.report.summary(10));
    Ok(())
}

fn main() {
    // Not `support::main`: freed decode buffers go back to the system at once.
    support::return_freed_memory();
    support::finish(run(Args::parse()));
}
