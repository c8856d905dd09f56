//! Throughput benchmarks. Every run ends with `RESULT <name> <images/s>` (median of
//! timed repetitions); compare with ../shared/bench/torch_reference.py in the same run.
//!
//! ```text
//! cargo run --release --example bench -- prep [--jobs 1]
//! cargo run --release --example bench -- prep-scale [--files 100000] [--classes 1000]
//! cargo run --release --example bench -- augment
//! cargo run --release --example bench -- train  [--device flex] [--batch-size 32] [--precision f32] [--size 227]
//! cargo run --release --example bench -- infer  [--device flex] [--batch-size 64]
//! cargo run --release --example bench -- conv   [--device flex] [--batch-size 32]
//! cargo run --release --example bench -- matmul [--device flex] [--sizes 1024,2048,4096] [--precision f32]
//! cargo run --release --example bench -- checkpoint [--classes 257] [--dir target/bench/checkpoint]
//! cargo run --release --example bench -- loader --data DIR [--batch-size 32]
//! cargo run --release --example bench -- epoch  --data DIR [--batch-size 32] [--loader-threads N]
//! # with --features mpi, under mpirun (RESULT from rank 0):
//! mpirun -np 2 target/release/examples/bench train --distributed mpi [--batch-size 32]
//! mpirun -np 2 target/release/examples/bench allreduce        # milliseconds, not images/s
//! ```
//!
//! One module per subcommand; each measures the library's own code (the training step
//! is `alexnet_train::step::Stepper`, the trainer's).

#[path = "../support/mod.rs"]
mod support;

mod allreduce;
mod augment;
mod checkpoint;
mod conv;
mod data;
mod matmul;
mod model;
mod prep;

use std::path::PathBuf;

use alexnet::{
    burn::{optim::ModuleOptimizer, prelude::*, tensor::FloatDType},
    model::AlexNet,
    train::{
        config::{Precision, TrainConfig},
        distributed::ProcessGroup,
        optim::Sgd,
        step::Stepper,
    },
};
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    about = "Throughput benchmarks; the last line is RESULT <name> <images/s> (matmul: GFLOP/s)"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
    /// Timed repetitions (the median is reported).
    #[arg(long, global = true, default_value_t = 5, value_parser = at_least_one)]
    reps: usize,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Preprocessing (decode, center crop, resize 256, JPEG) of generated JPEGs of mixed sizes.
    Prep {
        /// Worker threads; without it, 1 and then every core.
        #[arg(long, value_parser = at_least_one)]
        jobs: Option<usize>,
        /// Images in the generated folder.
        #[arg(long, default_value_t = 240, value_parser = at_least_one)]
        images: usize,
        /// Where the generated JPEGs are kept between runs.
        #[arg(long, default_value = "target/bench/prep-input")]
        dir: PathBuf,
    },
    /// A step checkpoint of the post's model: seconds to encode and write it (fsynced),
    /// and its share of the time with a checkpoint every N minutes.
    Checkpoint {
        /// Classes of the model's last layer (Caltech-256 and its clutter class: 257).
        #[arg(long, default_value_t = 257, value_parser = at_least_one)]
        classes: usize,
        /// Where the checkpoints are written (the disk a run would use).
        #[arg(long, default_value = "target/bench/checkpoint")]
        dir: PathBuf,
    },
    /// Preparing many small files in many classes (ImageNet's shape, scaled down): time
    /// per phase and peak memory of one run.
    PrepScale {
        /// Files to generate and prepare.
        #[arg(long, default_value_t = 100_000, value_parser = at_least_one)]
        files: usize,
        /// Class folders.
        #[arg(long, default_value_t = 1_000, value_parser = at_least_one)]
        classes: usize,
        /// Side of the prepared images.
        #[arg(long, default_value_t = 64, value_parser = at_least_one_u32)]
        size: u32,
        /// Where the generated files are kept between runs.
        #[arg(long, default_value = "target/bench/prep-scale")]
        dir: PathBuf,
    },
    /// The original's training augmentation (mean subtraction, flip, random crop 227) on
    /// 256×256 images, one thread; then with PCA lighting.
    Augment {
        /// Images per repetition.
        #[arg(long, default_value_t = 2000, value_parser = at_least_one)]
        n: usize,
    },
    /// One training step (forward, backward, SGD update) of the post's model.
    Train(ModelArgs),
    /// An evaluation-mode forward pass of the post's model.
    Infer(ModelArgs),
    /// The post's five convolutions alone: forward, Burn's weight-gradient lowering
    /// (`conv2d_weight_backward`), the backend's input gradient and, where the device has
    /// them, the native weight and input gradients (alexnet_kernels); compare with
    /// docs/repro/conv_weight_grad.py.
    Conv(ConvArgs),
    /// Square matrix products in GFLOP/s (not images/s): the machine's peak, for the
    /// step's FLOPs; compare with docs/repro/matmul_peak.py.
    Matmul(MatmulArgs),
    /// The whole input pipeline (read, decode, augment, batch) without the model.
    Loader(DataArgs),
    /// Input pipeline and training step together on a prepared folder.
    Epoch(DataArgs),
    /// The gradient all-reduce of a distributed step (milliseconds, not images/s), for
    /// the post's model: the whole exchange (gradients to host buffers, MPI all-reduce,
    /// back to tensors) and the MPI all-reduce alone. Run it under mpirun.
    Allreduce(AllreduceArgs),
}

#[derive(clap::Args, Debug)]
pub struct AllreduceArgs {
    /// Classes (256: the post's 59 M trainable parameters).
    #[arg(long, default_value_t = 256, value_parser = at_least_one)]
    pub classes: usize,
    /// Size of the fused buffers, MiB.
    #[arg(long, default_value_t = 64, value_parser = at_least_one)]
    pub bucket_mib: usize,
}

#[derive(clap::Args, Debug)]
pub struct ModelArgs {
    /// Device(s).
    #[arg(long, default_value = alexnet::train::device::DEFAULT_DEVICE)]
    pub device: String,
    /// Batch size.
    #[arg(long, value_parser = at_least_one)]
    pub batch_size: Option<usize>,
    /// Compute precision.
    #[arg(long, default_value = "f32")]
    pub precision: Precision,
    /// Input side.
    #[arg(long, default_value_t = 227)]
    pub size: usize,
    /// Classes.
    #[arg(long, default_value_t = 256, value_parser = at_least_one)]
    pub classes: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 10, value_parser = at_least_one)]
    pub steps: usize,
    /// Differentiate convolutions and BatchNorm with Burn's lowerings and update with
    /// Burn's tensor ops, instead of the backend's own backward kernels (libtorch's, and
    /// flex's weight gradient as im2col matrix products) and in-place SGD on libtorch
    /// (alexnet_kernels, alexnet_train::sgd): for comparison.
    #[arg(long)]
    pub no_native: bool,
    /// Also sum the gradients and read the sum back every step, as the trainer does to
    /// stop on a non-finite gradient: its cost, for comparison.
    #[arg(long)]
    pub check_finite: bool,
    /// `mpi`: this process is one rank of a data-parallel step (run under mpirun; the
    /// batch size is the global batch, each rank computes its share).
    #[arg(long, default_value = "none")]
    pub distributed: alexnet::train::config::DistributedBackend,
}

#[derive(clap::Args, Debug)]
pub struct ConvArgs {
    /// Device.
    #[arg(long, default_value = alexnet::train::device::DEFAULT_DEVICE)]
    pub device: String,
    /// Batch size.
    #[arg(long, default_value_t = 32, value_parser = at_least_one)]
    pub batch_size: usize,
}

#[derive(clap::Args, Debug)]
pub struct MatmulArgs {
    /// Device.
    #[arg(long, default_value = alexnet::train::device::DEFAULT_DEVICE)]
    pub device: String,
    /// Matrix sides, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1024,2048,4096", value_parser = at_least_one)]
    pub sizes: Vec<usize>,
    /// Element type of the product.
    #[arg(long, default_value = "f32")]
    pub precision: Precision,
}

#[derive(clap::Args, Debug)]
pub struct DataArgs {
    /// A prepared folder (preprocess_caltech output).
    #[arg(long)]
    pub data: PathBuf,
    /// Device(s).
    #[arg(long, default_value = alexnet::train::device::DEFAULT_DEVICE)]
    pub device: String,
    /// Batch size.
    #[arg(long, default_value_t = 32, value_parser = at_least_one)]
    pub batch_size: usize,
    /// Compute precision.
    #[arg(long, default_value = "f32")]
    pub precision: Precision,
    /// Timed batches.
    #[arg(long, default_value_t = 20, value_parser = at_least_one)]
    pub steps: usize,
    /// Random-crop side.
    #[arg(long, default_value_t = 227, value_parser = clap::value_parser!(u32).range(1..))]
    pub crop: u32,
    /// Decoding threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub loader_threads: usize,
}

/// Counts (images, threads, batch sizes, steps, repetitions) must be at least 1.
fn at_least_one(text: &str) -> std::result::Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(value) => Ok(value),
        Err(error) => Err(error.to_string()),
    }
}

fn at_least_one_u32(text: &str) -> std::result::Result<u32, String> {
    at_least_one(text).and_then(|value| u32::try_from(value).map_err(|error| error.to_string()))
}

/// The median (0 for no values).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Prints the spread to stderr and `RESULT <name> <median>` to stdout.
pub fn report(name: &str, rates: Vec<f64>) {
    let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
    let max = rates.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "# {name}: min {min:.2} max {max:.2} images/s over {} runs",
        rates.len()
    );
    println!("RESULT {name} {:.2}", median(rates));
}

/// Peak resident memory of this process so far, in MiB (Linux; 0 elsewhere).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .and_then(|line| {
                    line.split_whitespace()
                        .nth(1)
                        .and_then(|kb| kb.parse::<f64>().ok())
                })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The trainer's step on `devices` (autodiff) with the post's SGD settings, without
/// loss scaling (a benchmark times steps, it does not recover from overflows).
pub fn stepper(devices: Vec<Device>, dtype: FloatDType, check_finite: bool) -> Stepper {
    Stepper {
        devices,
        dtype,
        optim: ModuleOptimizer::from(Sgd::from(TrainConfig::default().sgd())),
        scaler: None,
        check_finite,
        group: ProcessGroup::local(),
        label_smoothing: 0.0,
        clip_grad_norm: None,
    }
}

/// Reading one weight back waits for the step's update to finish (asynchronous backends).
pub fn wait_for(model: &AlexNet) {
    let _ = model
        .fc3
        .weight
        .val()
        .slice([0..1, 0..1])
        .into_scalar::<f32>();
}

fn main() {
    support::main(|| {
        let args = Args::parse();
        match args.command {
            Command::Prep { jobs, images, dir } => prep::bench_prep(jobs, images, &dir, args.reps),
            Command::PrepScale {
                files,
                classes,
                size,
                dir,
            } => prep::bench_prep_scale(
                files,
                classes,
                &dir.join(format!("{files}-{classes}")),
                size,
            ),
            Command::Augment { n } => augment::bench_augment(n, args.reps),
            Command::Checkpoint { classes, dir } => {
                checkpoint::bench_checkpoint(classes, &dir, args.reps)
            }
            Command::Train(args) => model::bench_model(args, true),
            Command::Infer(args) => model::bench_model(args, false),
            Command::Conv(args_) => conv::bench_conv(args_, args.reps),
            Command::Matmul(args_) => matmul::bench_matmul(args_, args.reps),
            Command::Loader(args) => data::bench_data(args, false),
            Command::Epoch(args) => data::bench_data(args, true),
            Command::Allreduce(args_) => allreduce::bench_allreduce(args_, args.reps),
        }
    });
}
