//! Throughput benchmarks. Every run ends with `RESULT <name> <images/s>` (median of
//! timed repetitions); compare with ../shared/bench/torch_reference.py in the same run.
//!
//! ```text
//! cargo run --release --example bench -- prep [--jobs 1]
//! cargo run --release --example bench -- augment
//! cargo run --release --example bench -- train  [--device flex] [--batch-size 32] [--precision f32] [--size 227]
//! cargo run --release --example bench -- infer  [--device flex] [--batch-size 64]
//! cargo run --release --example bench -- conv   [--device flex] [--batch-size 32]
//! cargo run --release --example bench -- loader --data DIR [--batch-size 32]
//! cargo run --release --example bench -- epoch  --data DIR [--batch-size 32] [--loader-threads N]
//! ```

mod support;

use std::{
    ops::ControlFlow,
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use alexnet::{
    augment::{AugmentConfig, OpConfig, Pipeline, sample_rng},
    burn::{
        module::Module,
        optim::{GradientsParams, ModuleOptimizer},
        prelude::*,
        tensor::{
            Distribution, FloatDType,
            module::{conv_transpose2d, conv2d, conv2d_weight_backward},
            ops::{ConvOptions, ConvTransposeOptions},
        },
    },
    model::{AlexNet, AlexNetConfig},
    prep::{self, DemoConfig, PrepConfig, ProcessedDataset, Split},
    train::{
        config::Precision,
        data::{
            ImageBatcher, ImageDataset, channel_stats, for_each_batch_until, loader_pool,
            train_loader,
        },
        device::parse_devices,
        sgd::Sgd,
        trainer::{batch_gradients, nll_loss},
    },
};
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use image::RgbImage;

#[derive(Parser, Debug)]
#[command(about = "Throughput benchmarks; the last line is RESULT <name> <images/s>")]
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
    /// (`conv2d_weight_backward`) and, where the device has one, the native weight
    /// gradient (alexnet_kernels); compare with docs/repro/conv_weight_grad.py.
    Conv(ConvArgs),
    /// The whole input pipeline (read, decode, augment, batch) without the model.
    Loader(DataArgs),
    /// Input pipeline and training step together on a prepared folder.
    Epoch(DataArgs),
}

#[derive(clap::Args, Debug)]
struct ModelArgs {
    /// Device(s).
    #[arg(long, default_value = alexnet::train::device::DEFAULT_DEVICE)]
    device: String,
    /// Batch size.
    #[arg(long, value_parser = at_least_one)]
    batch_size: Option<usize>,
    /// Compute precision.
    #[arg(long, default_value = "f32")]
    precision: Precision,
    /// Input side.
    #[arg(long, default_value_t = 227)]
    size: usize,
    /// Classes.
    #[arg(long, default_value_t = 256, value_parser = at_least_one)]
    classes: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 10, value_parser = at_least_one)]
    steps: usize,
    /// Differentiate convolutions and BatchNorm with Burn's lowerings and update with
    /// Burn's tensor ops, instead of the backend's own backward kernels (libtorch's, and
    /// flex's weight gradient as im2col matrix products) and in-place SGD on libtorch
    /// (alexnet_kernels, alexnet_train::sgd): for comparison.
    #[arg(long)]
    no_native: bool,
    /// Also sum the gradients and read the sum back every step, as the trainer does to
    /// stop on a non-finite gradient: its cost, for comparison.
    #[arg(long)]
    check_finite: bool,
}

#[derive(clap::Args, Debug)]
struct ConvArgs {
    /// Device.
    #[arg(long, default_value = alexnet::train::device::DEFAULT_DEVICE)]
    device: String,
    /// Batch size.
    #[arg(long, default_value_t = 32, value_parser = at_least_one)]
    batch_size: usize,
}

#[derive(clap::Args, Debug)]
struct DataArgs {
    /// A prepared folder (preprocess_caltech output).
    #[arg(long)]
    data: PathBuf,
    /// Device(s).
    #[arg(long, default_value = alexnet::train::device::DEFAULT_DEVICE)]
    device: String,
    /// Batch size.
    #[arg(long, default_value_t = 32, value_parser = at_least_one)]
    batch_size: usize,
    /// Compute precision.
    #[arg(long, default_value = "f32")]
    precision: Precision,
    /// Timed batches.
    #[arg(long, default_value_t = 20, value_parser = at_least_one)]
    steps: usize,
    /// Random-crop side.
    #[arg(long, default_value_t = 227, value_parser = clap::value_parser!(u32).range(1..))]
    crop: u32,
    /// Decoding threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    loader_threads: usize,
}

/// Counts (images, threads, batch sizes, steps, repetitions) must be at least 1.
fn at_least_one(text: &str) -> std::result::Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(value) => Ok(value),
        Err(error) => Err(error.to_string()),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
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

fn report(name: &str, rates: Vec<f64>) {
    let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
    let max = rates.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "# {name}: min {min:.2} max {max:.2} images/s over {} runs",
        rates.len()
    );
    println!("RESULT {name} {:.2}", median(rates));
}

/// A folder of JPEGs of mixed sizes (photo-like sizes, 200–800 × 150–600), generated once.
fn bench_images(dir: &Path, count: usize) -> Result<Vec<PathBuf>> {
    let marker = dir.join(format!(".complete-{count}"));
    if !marker.exists() {
        if dir.exists() {
            // Only a folder this function generated (it holds a `.complete-*` marker) is
            // replaced; anything else under --dir is the user's and stays untouched.
            let entries = std::fs::read_dir(dir)
                .with_context(|| format!("--dir {}: cannot read the folder", dir.display()))?
                .collect::<std::io::Result<Vec<_>>>()?;
            let generated = entries.iter().any(|entry| {
                entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".complete-")
            });
            if generated {
                std::fs::remove_dir_all(dir)?;
            } else if !entries.is_empty() {
                bail!(
                    "--dir {}: the folder is not empty and was not generated by `bench prep`; name a new or empty folder",
                    dir.display()
                );
            }
        }
        let class_dir = dir.join("001.bench");
        std::fs::create_dir_all(&class_dir)?;
        let config = DemoConfig {
            min_size: 150,
            max_size: 800,
            ..DemoConfig::default()
        };
        for i in 0..count {
            let image = prep::demo::draw(&config, i % 12, i as u64);
            let mut bytes = Vec::new();
            prep::encode_jpeg(&image, 90, &mut bytes).map_err(anyhow::Error::msg)?;
            std::fs::write(class_dir.join(format!("{i:04}.jpg")), bytes)?;
        }
        std::fs::write(&marker, b"")?;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("001.bench"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.sort();
    Ok(files)
}

fn bench_prep(jobs: Option<usize>, images: usize, dir: &Path, reps: usize) -> Result<()> {
    let files = bench_images(dir, images)?;
    eprintln!(
        "# {} JPEGs in {} (the same folder works with torch_reference.py prep {})",
        files.len(),
        dir.join("001.bench").display(),
        dir.join("001.bench").display()
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let thread_counts = match jobs {
        Some(jobs) => vec![jobs],
        None => vec![1, cores],
    };
    let out = std::env::temp_dir().join(format!("alexnet-bench-prep-{}", std::process::id()));
    for threads in thread_counts {
        let mut rates = Vec::new();
        for rep in 0..=reps {
            let config = PrepConfig {
                input: Some(dir.to_path_buf()),
                output: Some(out.clone()),
                jobs: threads,
                val_split: 0.0,
                ..PrepConfig::default()
            };
            let report = prep::Preprocessor::new(config).overwrite(true).run()?;
            // The first pass warms the page cache.
            if rep > 0 {
                rates.push(report.counts.written as f64 / report.timings.total_s);
            }
        }
        report(&format!("prep-j{threads}"), rates);
    }
    let _ = std::fs::remove_dir_all(&out);
    Ok(())
}

fn bench_augment(n: usize, reps: usize) -> Result<()> {
    // As torch_reference.py: 64 random 256×256 images and the mean (123, 117, 104).
    let images: Vec<RgbImage> = (0..64u32)
        .map(|k| {
            RgbImage::from_fn(256, 256, |x, y| {
                image::Rgb([(x * 7 + k) as u8, (y * 13 + k) as u8, (x ^ y ^ k) as u8])
            })
        })
        .collect();
    let stats = alexnet::augment::ChannelStats {
        mean: [123.0, 117.0, 104.0],
        std: [58.0, 57.0, 57.0],
        eigenvalues: [4000.0, 300.0, 60.0],
        eigenvectors: [[0.58, 0.58, 0.57], [-0.71, 0.0, 0.70], [0.41, -0.82, 0.41]],
    };
    let original = AugmentConfig::original(227).train;
    let mut with_pca = original.clone();
    with_pca.push(OpConfig::PcaLighting {
        std: 0.1,
        eigenvalues: None,
        eigenvectors: None,
    });
    // One thread, as the reference's single process.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    for (name, ops) in [("augment-pca", with_pca), ("augment", original)] {
        let pipeline = Pipeline::new("bench", &ops, [256, 256], Some(&stats))?;
        let mut out = vec![0.0f32; pipeline.output_len()];
        let mut rates = Vec::new();
        pool.install(|| -> Result<()> {
            for rep in 0..=reps {
                let started = Instant::now();
                for i in 0..n {
                    pipeline.apply_into(
                        &images[i % 64],
                        &mut sample_rng(0, rep as u64, i as u64),
                        &mut out,
                    )?;
                }
                if rep > 0 {
                    rates.push(n as f64 / started.elapsed().as_secs_f64());
                }
            }
            Ok(())
        })?;
        std::hint::black_box(&out);
        report(name, rates);
    }
    Ok(())
}

fn main() {
    support::main(|| {
        let args = Args::parse();
        match args.command {
            Command::Prep { jobs, images, dir } => bench_prep(jobs, images, &dir, args.reps),
            Command::Augment { n } => bench_augment(n, args.reps),
            Command::Train(model) => alexnet_bench_model(model, true),
            Command::Infer(model) => alexnet_bench_model(model, false),
            Command::Conv(conv) => bench_conv(conv, args.reps),
            Command::Loader(data) => bench_data(data, false),
            Command::Epoch(data) => bench_data(data, true),
        }
    });
}

/// Peak resident memory of this process so far, in MiB (Linux; 0 elsewhere).
fn peak_rss_mib() -> f64 {
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

fn float_dtype(precision: Precision) -> FloatDType {
    match precision {
        Precision::F32 => FloatDType::F32,
        Precision::F16 => FloatDType::F16,
        Precision::Bf16 => FloatDType::BF16,
    }
}

/// The trainer's optimizer with the post's settings.
fn sgd() -> ModuleOptimizer {
    ModuleOptimizer::from(Sgd::from(
        alexnet::train::config::TrainConfig::default().sgd(),
    ))
}

/// Reading one weight back waits for the step's update to finish (asynchronous backends).
fn wait_for(model: &AlexNet) {
    let _ = model
        .fc3
        .weight
        .val()
        .slice([0..1, 0..1])
        .into_scalar::<f32>();
}

fn alexnet_bench_model(args: ModelArgs, train: bool) -> Result<()> {
    let devices = parse_devices(&args.device)?;
    let batch = args.batch_size.unwrap_or(if train { 32 } else { 64 });
    let dtype = float_dtype(args.precision);
    #[cfg(any(feature = "flex", feature = "tch"))]
    alexnet::kernels::set_enabled(!args.no_native);
    let main = if train {
        devices[0].clone().autodiff()
    } else {
        devices[0].clone()
    };
    let train_devices: Vec<Device> = devices.iter().map(|d| d.clone().autodiff()).collect();
    main.seed(0);
    let mut model = AlexNetConfig::seed(args.classes).init(&main)?;
    let images = Tensor::<4>::random(
        [batch, 3, args.size, args.size],
        Distribution::Normal(0.0, 60.0),
        &main,
    );
    let targets = Tensor::<1, Int>::from_data(
        TensorData::new(
            (0..batch as i64)
                .map(|i| i % args.classes as i64)
                .collect::<Vec<_>>(),
            [batch],
        ),
        &main,
    );
    let mut optim = sgd();
    let eval = model.valid();
    let mut rates = Vec::new();
    for step in 0..3 + args.steps {
        let started = Instant::now();
        if train {
            let grads = batch_gradients(
                &model,
                &train_devices,
                images.clone(),
                targets.clone(),
                dtype,
                1.0,
                args.check_finite,
            )?;
            model = optim.step(0.01, model, grads.grads);
            wait_for(&model);
        } else {
            let out = eval.forward_in(images.clone().inner(), dtype)?;
            let _ = out.slice([0..1, 0..1]).into_scalar::<f32>();
        }
        if step >= 3 {
            rates.push(batch as f64 / started.elapsed().as_secs_f64());
        }
    }
    if train && devices.len() == 1 {
        let [forward, backward, update] =
            step_phases(model, &images, &targets, dtype, &mut optim, 5)?;
        eprintln!(
            "# step phases (median ms): forward {forward:.0}, backward {backward:.0}, optimizer update {update:.0}"
        );
    }
    eprintln!("# peak RSS {:.0} MiB", peak_rss_mib());
    let precision = format!("{:?}", args.precision).to_lowercase();
    let name = format!(
        "{}-{}-b{batch}-{precision}-s{}{}",
        if train { "train" } else { "infer" },
        args.device.replace(',', "+"),
        args.size,
        if args.no_native { "-no-native" } else { "" }
    ) + if args.check_finite {
        "-check-finite"
    } else {
        ""
    };
    report(&name, rates);
    Ok(())
}

/// Burn's weight gradient for each of the post's convolutions, next to the forward pass
/// and, where the device has one, the native weight gradient (checked against Burn's).
/// `RESULT` is images/s through the five weight gradients together: the native ones
/// where the device has them, otherwise Burn's.
fn bench_conv(args: ConvArgs, reps: usize) -> Result<()> {
    // (in, out, kernel, stride, padding, input side), as docs/repro/conv_weight_grad.py.
    const LAYERS: [(usize, usize, usize, usize, usize, usize); 5] = [
        (3, 96, 11, 4, 0, 227),
        (96, 256, 5, 1, 2, 27),
        (256, 384, 3, 1, 1, 13),
        (384, 384, 3, 1, 1, 13),
        (384, 256, 3, 1, 1, 13),
    ];
    let device = parse_devices(&args.device)?
        .into_iter()
        .next()
        .context("--device names no device")?;
    let n = args.batch_size;
    let median_ms = |job: &dyn Fn() -> f32| {
        job();
        median(
            (0..reps)
                .map(|_| {
                    let started = Instant::now();
                    std::hint::black_box(job());
                    started.elapsed().as_secs_f64() * 1e3
                })
                .collect(),
        )
    };
    let native = alexnet::kernels::backend(&device).is_some();
    let (mut burn_total, mut native_total) = (0.0, 0.0);
    for (cin, cout, k, stride, padding, side) in LAYERS {
        let normal = Distribution::Normal(0.0, 1.0);
        let x = Tensor::<4>::random([n, cin, side, side], normal, &device);
        let weight = Tensor::<4>::random([cout, cin, k, k], normal, &device);
        let options = ConvOptions::new([stride; 2], [padding; 2], [1, 1], 1);
        let output = conv2d(x.clone(), weight.clone(), None, options.clone());
        let output_grad = Tensor::<4>::random(output.dims(), normal, &device);
        // Reading one value back waits for asynchronous backends.
        let first = |t: Tensor<4>| t.slice([0..1, 0..1, 0..1, 0..1]).into_scalar::<f32>();
        let forward =
            median_ms(&|| first(conv2d(x.clone(), weight.clone(), None, options.clone())));
        let burn_grad = || {
            conv2d_weight_backward(
                x.clone(),
                weight.clone(),
                output_grad.clone(),
                options.clone(),
            )
        };
        let burn_ms = median_ms(&|| first(burn_grad()));
        burn_total += burn_ms;
        // Burn's input gradient is this transposed convolution (the stride-1 layers
        // need no output padding; the first layer's input gradient is never needed).
        let input_ms = median_ms(&|| {
            let options = ConvTransposeOptions::new([stride; 2], [padding; 2], [0, 0], [1, 1], 1);
            first(conv_transpose2d(
                output_grad.clone(),
                weight.clone(),
                None,
                options,
            ))
        });
        eprintln!(
            "# conv {cin}->{cout} k{k} s{stride}, Burn's: forward {forward:.0} ms, input gradient {input_ms:.0} ms, weight gradient {burn_ms:.0} ms"
        );
        #[cfg(any(feature = "flex", feature = "tch"))]
        if native {
            use alexnet::kernels as native;
            let bias = Tensor::<1>::zeros([cout], &device);
            let native_forward = median_ms(&|| {
                first(native::conv2d(
                    x.clone(),
                    weight.clone(),
                    Some(bias.clone()),
                    options.clone(),
                ))
            });
            let native_grad = || {
                native::conv2d_weight_backward(
                    x.clone(),
                    weight.clone(),
                    output_grad.clone(),
                    options.clone(),
                )
            };
            let native_ms = median_ms(&|| first(native_grad()));
            native_total += native_ms;
            // Largest difference, relative to the largest gradient element.
            let expected = burn_grad();
            let scale = expected.clone().abs().max().into_scalar::<f32>();
            let error = (native_grad() - expected).abs().max().into_scalar::<f32>();
            eprintln!(
                "#   native: forward (with bias) {native_forward:.0} ms, weight gradient {native_ms:.0} ms (relative difference to Burn's {:.1e})",
                error / scale
            );
        }
    }
    eprintln!("# the five weight gradients: Burn's {burn_total:.0} ms");
    let rate = |total: f64| n as f64 / (total / 1e3);
    println!(
        "RESULT conv-weight-grad-{}-b{n} {:.2}",
        args.device,
        rate(burn_total)
    );
    if native {
        eprintln!("# the five weight gradients: native {native_total:.0} ms");
        println!(
            "RESULT conv-weight-grad-native-{}-b{n} {:.2}",
            args.device,
            rate(native_total)
        );
    }
    Ok(())
}

/// Where one device's training step spends its time: forward pass and loss (read back),
/// backward pass, optimizer update; median milliseconds over `steps` steps.
fn step_phases(
    mut model: AlexNet,
    images: &Tensor<4>,
    targets: &Tensor<1, Int>,
    dtype: FloatDType,
    optim: &mut ModuleOptimizer,
    steps: usize,
) -> Result<[f64; 3]> {
    let mut phases = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..steps {
        let started = Instant::now();
        let log_probs = model.forward_in(images.clone(), dtype)?;
        let loss = nll_loss(log_probs, targets.clone());
        let _ = loss.clone().into_scalar::<f32>();
        let forward = Instant::now();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let backward = Instant::now();
        model = optim.step(0.01, model, grads);
        wait_for(&model);
        let times = [started, forward, backward, Instant::now()];
        for (phase, pair) in phases.iter_mut().zip(times.windows(2)) {
            phase.push((pair[1] - pair[0]).as_secs_f64() * 1e3);
        }
    }
    Ok(phases.map(median))
}

fn bench_data(args: DataArgs, train: bool) -> Result<()> {
    let data = ProcessedDataset::open(&args.data)?;
    let devices = parse_devices(&args.device)?;
    let main = devices[0].clone().autodiff();
    let train_devices: Vec<Device> = devices.iter().map(|d| d.clone().autodiff()).collect();
    let ops = AugmentConfig::original(args.crop).train;
    let size = {
        let first = data
            .items(Split::Train)
            .first()
            .context("the dataset has no training image")?;
        let (w, h) = image::image_dimensions(&first.path)?;
        [h, w]
    };
    let pipeline = Arc::new(Pipeline::new(
        "augment.train",
        &ops,
        size,
        Some(&channel_stats(data.stats())),
    )?);
    let dataset = ImageDataset::new(&data, Split::Train);
    if dataset.items().len() < args.batch_size {
        bail!(
            "--batch-size {} is larger than the {} training images",
            args.batch_size,
            dataset.items().len()
        );
    }
    let pool = loader_pool(args.loader_threads)?;
    main.seed(0);
    // Taken by each step (no second handle, so the optimizer updates in place).
    let mut model = Some(AlexNetConfig::seed(data.num_classes()).init(&main)?);
    let mut optim = sgd();
    let dtype = float_dtype(args.precision);
    let warmup = 3;
    let mut rates = Vec::new();
    let mut epoch = 1u64;
    let mut last = Instant::now();
    let mut done = 0usize;
    while done < warmup + args.steps {
        let loader = train_loader(
            &dataset,
            ImageBatcher::new(pipeline.clone(), pool.clone(), 0, epoch),
            args.batch_size,
            0,
            epoch,
            &main,
        );
        for_each_batch_until(&loader, 2, |_, batch| {
            if done >= warmup + args.steps {
                return Ok(ControlFlow::Break(()));
            }
            let n = batch.classes.len();
            if train {
                let taken = model
                    .take()
                    .ok_or_else(|| alexnet::train::TrainError::Backend("no model".into()))?;
                let grads = batch_gradients(
                    &taken,
                    &train_devices,
                    batch.images,
                    batch.targets,
                    dtype,
                    1.0,
                    false,
                )?;
                let updated = optim.step(0.01, taken, grads.grads);
                wait_for(&updated);
                model = Some(updated);
            } else {
                let _ = batch
                    .images
                    .slice([0..1, 0..1, 0..1, 0..1])
                    .into_scalar::<f32>();
            }
            let now = Instant::now();
            if done >= warmup {
                rates.push(n as f64 / (now - last).as_secs_f64());
            }
            last = now;
            done += 1;
            Ok(ControlFlow::Continue(()))
        })?;
        epoch += 1;
    }
    eprintln!("# peak RSS {:.0} MiB", peak_rss_mib());
    let name = if train {
        format!(
            "epoch-{}-b{}-{:?}",
            args.device.replace(',', "+"),
            args.batch_size,
            args.precision
        )
        .to_lowercase()
    } else {
        format!("loader-b{}-crop{}", args.batch_size, args.crop)
    };
    report(&name, rates);
    Ok(())
}
