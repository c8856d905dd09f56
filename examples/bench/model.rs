//! `bench train` and `bench infer`: the post's model on random images, the training
//! step being the trainer's own (`alexnet_train::step::Stepper`), and where the step's time goes.

use std::time::Instant;

use alexnet::{
    burn::{
        optim::{GradientsParams, ModuleOptimizer},
        prelude::*,
        tensor::{Distribution, FloatDType},
    },
    model::{AlexNet, AlexNetConfig},
    train::{
        config::DistributedConfig, data::ImageBatch, device::parse_devices,
        distributed::ProcessGroup, step::nll_loss,
    },
};
use anyhow::Result;

use crate::{ModelArgs, median, peak_rss_mib, report, stepper, wait_for};

pub fn bench_model(args: ModelArgs, train: bool) -> Result<()> {
    let devices = parse_devices(&args.device)?;
    let batch = args.batch_size.unwrap_or(if train { 32 } else { 64 });
    let dtype = args.precision.float_dtype();
    alexnet::kernels::set_enabled(!args.no_native);
    let main = if train {
        devices[0].clone().autodiff()
    } else {
        devices[0].clone()
    };
    let train_devices: Vec<Device> = devices.iter().map(|d| d.clone().autodiff()).collect();
    let group = ProcessGroup::connect(&DistributedConfig {
        backend: args.distributed,
        ..DistributedConfig::default()
    })?;
    let global_batch = batch;
    // A rank computes its share of the global batch.
    let batch = group.share(global_batch).len();
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
    let mut stepper = stepper(train_devices, dtype, args.check_finite);
    stepper.group = group;
    let classes: Vec<usize> = (0..batch).map(|i| i % args.classes).collect();
    let eval = model.valid();
    let mut rates = Vec::new();
    for step in 0..3 + args.steps {
        let started = Instant::now();
        if train {
            let batch = ImageBatch {
                images: images.clone(),
                targets: targets.clone(),
                classes: classes.clone(),
                indices: (0..batch).collect(),
                crops: 1,
            };
            (model, _) = stepper.step(model, batch, 0.01)?;
            wait_for(&model);
        } else {
            let out = eval.forward(images.clone().inner(), dtype)?;
            let _ = out.slice([0..1, 0..1]).into_scalar::<f32>();
        }
        if step >= 3 {
            rates.push(global_batch as f64 / started.elapsed().as_secs_f64());
        }
    }
    let group = std::mem::replace(&mut stepper.group, ProcessGroup::local());
    let ranks = group.size();
    let rank = group.rank();
    alexnet::train::distributed::finish(rank, Ok(()))?;
    if rank != 0 {
        return Ok(());
    }
    if train && devices.len() == 1 && ranks == 1 {
        let [forward, backward, update] =
            step_phases(model, &images, &targets, dtype, &mut stepper.optim, 5)?;
        eprintln!(
            "# step phases (median ms): forward {forward:.0}, backward {backward:.0}, optimizer update {update:.0}"
        );
    }
    eprintln!("# peak RSS {:.0} MiB", peak_rss_mib());
    let precision = format!("{:?}", args.precision).to_lowercase();
    let name = format!(
        "{}-{}{}-b{global_batch}-{precision}-s{}{}",
        if train { "train" } else { "infer" },
        args.device.replace(',', "+"),
        if ranks > 1 {
            format!("-{ranks}ranks")
        } else {
            String::new()
        },
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
        let log_probs = model.forward(images.clone(), dtype)?;
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
