//! `bench checkpoint`: what a step checkpoint of the post's model costs — the weights
//! and the optimizer's momentum turned into bytes, then written by the trainer's
//! checkpoint store (each file fsynced, the folder renamed into place, `latest` moved,
//! old step checkpoints pruned) — and what that takes off the throughput with a
//! checkpoint every N minutes.

use std::{path::Path, time::Instant};

use alexnet::{
    burn::{
        prelude::*,
        tensor::{Distribution, FloatDType},
    },
    model::AlexNetConfig,
    train::{
        checkpoint::{CheckpointStore, TrainerState},
        data::ImageBatch,
        optim::{LossScaleConfig, Schedule, SchedulerConfig},
    },
};
use anyhow::Result;

use crate::{median, stepper};

/// Times `reps` step checkpoints of the post's model (`classes` outputs) in `dir`.
pub fn bench_checkpoint(classes: usize, dir: &Path, reps: usize) -> Result<()> {
    let device = alexnet::train::device::parse_device("flex")?.autodiff();
    device.seed(0);
    let config = AlexNetConfig::seed(classes);
    let mut model = config.init(&device)?;
    // One step on two small images, so the optimizer holds its momentum buffers.
    let mut stepper = stepper(vec![device.clone()], FloatDType::F32, false);
    let batch = ImageBatch {
        images: Tensor::random([2, 3, 227, 227], Distribution::Normal(0.0, 60.0), &device),
        targets: Tensor::from_data(TensorData::new(vec![0i64, 1], [2]), &device),
        classes: vec![0, 1],
        indices: vec![0, 1],
        crops: 1,
    };
    (model, _) = stepper.step(model, batch, 0.01)?;
    let schedule = Schedule::new(&SchedulerConfig::default(), 0.01)?.state();
    let mut state = TrainerState::new(0, config, schedule, LossScaleConfig::default().initial);
    let store = CheckpointStore::new(dir, 1).keeping_steps(2);
    let (mut encode, mut write) = (Vec::new(), Vec::new());
    let mut bytes = 0;
    for step in 1..=reps {
        let started = Instant::now();
        let weights = model.to_record().into_bytes()?;
        let optimizer = stepper.optim.into_bytes()?;
        let encoded = Instant::now();
        state.global_step = step as u64;
        store.save_step(&state, [&weights, &optimizer], step)?;
        encode.push((encoded - started).as_secs_f64());
        write.push(encoded.elapsed().as_secs_f64());
        bytes = weights.len() + optimizer.len();
    }
    let (encode, write) = (median(encode), median(write));
    let total = encode + write;
    eprintln!(
        "# {:.0} MB a checkpoint: to bytes {encode:.2} s, written and synced {write:.2} s",
        bytes as f64 / 1e6
    );
    for minutes in [1.0, 5.0, 10.0, 30.0] {
        let share = total / (60.0 * minutes + total);
        eprintln!(
            "# a checkpoint every {minutes} min: {:.2} % of the time, throughput x{:.4}",
            100.0 * share,
            1.0 - share
        );
    }
    println!("RESULT checkpoint-seconds {total:.3}");
    Ok(())
}
