//! Preprocesses a class-per-folder image dataset (Caltech-256 layout) for training:
//! seeded stratified split, center crop, resize, JPEG, channel statistics, report.
//!
//! ```text
//! cargo run --release --example preprocess_caltech -- --input 256_ObjectCategories --output data/caltech256
//! cargo run --release --example preprocess_caltech -- --demo       # the built-in demo data
//! ```

mod support;

use std::path::PathBuf;

use alexnet::{prep, train};

/// The demo settings, used by --demo when no --config is given.
const DEMO_CONFIG: &str = include_str!("../configs/demo.toml");
use anyhow::{Context, Result, bail};
use clap::Parser;

/// Preprocess a class-per-folder dataset (NNN.label/*.jpg) for AlexNet training.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The raw dataset: one folder per class (overrides prep.input).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Where the processed dataset goes (overrides prep.output).
    #[arg(long)]
    output: Option<PathBuf>,
    /// A config file; its [prep] section is used (and [demo] with --demo). Default: the
    /// original's settings, or configs/demo.toml's with --demo.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Side of the square output images in pixels (overrides prep.size).
    #[arg(long)]
    size: Option<u32>,
    /// Fraction of each class held out for validation (overrides prep.val_split).
    #[arg(long)]
    val_split: Option<f64>,
    /// Seed of the split (overrides prep.seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Resize the whole image to a square instead of center-cropping first.
    #[arg(long)]
    no_center_crop: bool,
    /// Worker threads (overrides prep.jobs; 0 = all cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Files larger than this many bytes are skipped unread (overrides
    /// prep.max_file_bytes).
    #[arg(long)]
    max_file_bytes: Option<u64>,
    /// Replace the outputs of an earlier run in --output.
    #[arg(long)]
    overwrite: bool,
    /// Generate the built-in demo dataset and preprocess it (input: <demo.dir>/raw,
    /// output: <demo.dir>/processed unless --output is given).
    #[arg(long)]
    demo: bool,
}

fn run(args: Args) -> Result<()> {
    let config = match &args.config {
        Some(path) => train::ExperimentConfig::load(path)?,
        None if args.demo => {
            train::ExperimentConfig::from_toml(DEMO_CONFIG, "configs/demo.toml".as_ref())?
        }
        None => train::ExperimentConfig::default(),
    };
    let _log = train::logging::init(&config.logging, None)?;
    let mut prep_config = config.prep.clone();
    if args.demo {
        if args.input.is_some() {
            bail!("--demo and --input exclude each other: --demo generates its own input");
        }
        let raw = config.demo.dir.join("raw");
        let summary = prep::generate_demo(&raw, &config.demo)?;
        println!(
            "demo dataset: {} images in {} classes in {}",
            summary.images,
            summary.config.classes,
            raw.display()
        );
        prep_config.input = Some(raw);
        if args.output.is_none() && prep_config.output.is_none() {
            prep_config.output = Some(config.demo.dir.join("processed"));
        }
    }
    if let Some(input) = args.input {
        prep_config.input = Some(input);
    }
    if let Some(output) = args.output {
        prep_config.output = Some(output);
    }
    if prep_config.input.is_none() {
        bail!("no input folder: pass --input (or --demo for the built-in demo dataset)");
    }
    if prep_config.output.is_none() {
        bail!("no output folder: pass --output");
    }
    if let Some(size) = args.size {
        prep_config.size = size;
    }
    if let Some(val_split) = args.val_split {
        prep_config.val_split = val_split;
    }
    if let Some(seed) = args.seed {
        prep_config.seed = seed;
    }
    if args.no_center_crop {
        prep_config.center_crop = false;
    }
    if let Some(jobs) = args.jobs {
        prep_config.jobs = jobs;
    }
    if let Some(limit) = args.max_file_bytes {
        prep_config.max_file_bytes = limit;
    }
    let output = prep_config.output.clone().context("output folder")?;
    let report = prep::Preprocessor::new(prep_config)
        .overwrite(args.overwrite)
        .progress(prep::progress_bar("preprocessing"))
        .run()?;
    let counts = &report.counts;
    println!(
        "{} classes, {} files: {} written ({} train, {} val), {} skipped, {} from nested folders",
        counts.classes,
        counts.files,
        counts.written,
        counts.train,
        counts.val,
        counts.skipped,
        counts.nested_included
    );
    for skipped in report.skipped.iter().take(10) {
        println!("  skipped {}: {}", skipped.path, skipped.reason);
    }
    if report.skipped.len() > 10 {
        println!("  ... and {} more", report.skipped.len() - 10);
    }
    println!(
        "{:.0} images/s on {} threads; report: {}",
        report.timings.images_per_s,
        report.timings.threads,
        output.join(prep::REPORT_JSON).display()
    );
    Ok(())
}

fn main() {
    // Not `support::main`: freed decode buffers go back to the system at once.
    support::return_freed_memory();
    support::finish(run(Args::parse()));
}
