//! `bench loader` and `bench epoch`: the input pipeline alone, and with the trainer's
//! training step, on a prepared folder.

use std::{ops::ControlFlow, sync::Arc, time::Instant};

use alexnet::{
    augment::{AugmentConfig, Pipeline},
    burn::prelude::*,
    model::AlexNetConfig,
    prep::{ProcessedDataset, Split},
    train::{
        data::{
            ImageBatcher, ImageDataset, channel_stats, for_each_batch_until, loader_pool,
            train_loader,
        },
        device::parse_devices,
    },
};
use anyhow::{Result, bail};

use crate::{DataArgs, peak_rss_mib, report, stepper, wait_for};

pub fn bench_data(args: DataArgs, train: bool) -> Result<()> {
    let data = ProcessedDataset::open(&args.data)?;
    let devices = parse_devices(&args.device)?;
    let main = devices[0].clone().autodiff();
    let train_devices: Vec<Device> = devices.iter().map(|d| d.clone().autodiff()).collect();
    let ops = AugmentConfig::original(args.crop).train;
    let size = data.image_size()?;
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
    let mut stepper = stepper(train_devices, args.precision.float_dtype(), false);
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
            (0, epoch),
            0,
            &main,
        );
        for_each_batch_until(&loader, 2, |_, batch| {
            if done >= warmup + args.steps {
                return Ok(ControlFlow::Break(()));
            }
            let n = batch.classes.len();
            if train {
                let taken = model.take().ok_or(alexnet::train::TrainError::ModelLost)?;
                let (updated, _) = stepper.step(taken, batch, 0.01)?;
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
