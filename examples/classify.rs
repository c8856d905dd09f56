//! Classifies image files with a trained model: for each, the top labels with their
//! probabilities. An image that cannot be read is one `error: …` line and the others
//! are still classified; the exit status is 1 if any failed.
//!
//! ```text
//! cargo run --release --example classify -- --run-dir runs/demo photo.jpg other.png
//! cargo run --release --example classify -- --config configs/caltech256-finetune.toml \
//!     --weights alexnet-owt-7be5be79.pth --labels imagenet_classes.txt photo.jpg
//! ```

mod support;

use std::path::PathBuf;

use alexnet::train::{
    commands::classify::{Classifier, ClassifyCommand, image_files},
    config::Overrides,
};
use anyhow::Result;
use clap::Parser;

/// Classify images with a trained AlexNet.
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
    /// A checkpoint folder instead of the run's latest.
    #[arg(long, conflicts_with = "weights")]
    checkpoint: Option<PathBuf>,
    /// A PyTorch or safetensors weight file for the config's [model] (needs --labels).
    #[arg(long, requires = "labels")]
    weights: Option<PathBuf>,
    /// Class names, one a line in class-id order. Default: the checkpoint's.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Labels shown per image.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// The prepared dataset whose mean a "dataset" normalization uses. Default: the run's.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Device to run on.
    #[arg(long)]
    device: Option<String>,
    /// Image files, or folders whose files are all classified.
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

fn main() {
    support::main(|| {
        let args = Args::parse();
        let classifier = Classifier::new(&ClassifyCommand {
            config: args.config.as_deref(),
            checkpoint: args.checkpoint,
            weights: args.weights,
            labels: args.labels,
            top: args.top,
            overrides: Overrides {
                run_dir: args.run_dir,
                data: args.data,
                device: args.device,
                ..Overrides::default()
            },
        })?;
        let mut failed = 0;
        for image in &image_files(&args.images)? {
            match classifier.classify(image, args.top) {
                Ok(predictions) => {
                    println!("{}", image.display());
                    for prediction in predictions {
                        println!("  {:.4}  {}", prediction.probability, prediction.label);
                    }
                }
                Err(error) => {
                    failed += 1;
                    eprintln!("error: {error}");
                }
            }
        }
        if failed > 0 {
            // Each failure already has its line; the status says some failed.
            std::process::exit(1);
        }
        Result::Ok(())
    });
}
