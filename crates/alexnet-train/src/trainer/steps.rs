//! An epoch's training steps: from the start or from where a step checkpoint left it,
//! each step seeded by (seed, epoch, batch), followed by what the ranks agree to do
//! next — go on, save a step checkpoint (`train.checkpoint_every_steps`,
//! `train.checkpoint_every_minutes`), or stop on a signal with one.

use std::{ops::ControlFlow, sync::Arc, time::Instant};

use alexnet_model::AlexNet;
use burn::module::Module;
use indicatif::ProgressBar;

use super::{
    Trainer,
    epoch::{diverged, step_failure},
    steplog::{Logged, StepLog},
};
use crate::{
    checkpoint::EpochPosition,
    data::{ImageBatch, ImageBatcher, epoch_seed, for_each_timed_batch, train_loader},
    error::{Result, TrainError},
    faults::pause_point,
    logging::{finish_progress, progress_bar},
    metrics::{Accumulator, TrainingSums},
};

/// How an epoch's training ended.
pub(super) enum Trained {
    /// Every batch was trained: the sums (accuracy counts over every rank).
    Finished(TrainingSums),
    /// A signal stopped it after a step, once a step checkpoint was written.
    Stopped(i32),
}

/// What the ranks do after a step.
#[derive(Debug, Clone, Copy, Default)]
struct Next {
    /// Write a step checkpoint.
    checkpoint: bool,
    /// Stop (after the checkpoint) for this signal.
    stop: Option<i32>,
}

/// A training step's place in the run.
#[derive(Debug, Clone, Copy)]
pub(super) struct StepAt {
    /// The epoch, from 1.
    pub epoch: usize,
    /// The batch within it, from 0.
    pub index: usize,
    /// The run's step, from 1 (batches since the run began, skipped f16 steps
    /// included): the x axis of the per-step curves and the step checkpoints' number.
    pub run_step: usize,
}

/// The seed of a step's dropout masks on one stream: a function of (seed, epoch, batch)
/// alone, so a run resumed at any step draws what an uninterrupted one does.
fn step_seed(seed: u64, epoch: usize, index: usize) -> u64 {
    let mut rng = alexnet_augment::sample_rng(epoch_seed(seed, epoch as u64), index as u64, 0);
    rand::RngExt::random(&mut rng)
}

impl Trainer {
    /// The run's step after `done` batches of `epoch`.
    pub(super) fn run_step(&self, epoch: usize, done: usize) -> usize {
        (epoch - 1) * self.batches_per_epoch() + done
    }

    /// Seeds each device's generator for a step. Dropout draws from it. Across ranks
    /// each takes the next numbers, as the devices of one process would.
    fn seed_step(&self, epoch: usize, index: usize) {
        let devices = super::epoch::distinct(&self.stepper.devices);
        let first_stream = (self.stepper.group.rank() * devices.len()) as u64;
        let seed = step_seed(self.state.seed, epoch, index);
        for (k, device) in devices.into_iter().enumerate() {
            device.seed(seed.wrapping_add(first_stream + k as u64));
        }
    }

    /// Where `epoch` starts: after the batches and with the sums of the step checkpoint
    /// resumed from, or at its beginning. Rank 0 carries the checkpoint's accuracy
    /// counts (every rank's), the other ranks count theirs from zero.
    fn take_position(&mut self, epoch: usize) -> (usize, TrainingSums) {
        match self.state.position.take() {
            Some(position) if position.epoch == epoch => {
                let mut sums = position.sums;
                if !self.stepper.group.is_first() {
                    sums.accuracy = Accumulator::default();
                }
                (position.batches, sums)
            }
            _ => (0, TrainingSums::default()),
        }
    }

    /// The epoch's training steps, from where it was left if it was.
    pub(super) fn train_epoch(
        &mut self,
        epoch: usize,
        lr: f64,
        pool: &Arc<rayon::ThreadPool>,
        log: &mut StepLog,
    ) -> Result<Trained> {
        let (first_batch, mut sums) = self.take_position(epoch);
        let train_config = &self.config.train;
        let group = &self.stepper.group;
        // Every rank draws the same global batches and loads its own share of each.
        let batcher = ImageBatcher::new(
            self.inputs.train_pipeline.clone(),
            pool.clone(),
            self.state.seed,
            epoch as u64,
        )
        .with_share(group.rank(), group.size());
        let loader = train_loader(
            &self.inputs.train_set,
            batcher,
            train_config.batch_size,
            (self.state.seed, epoch as u64),
            first_batch,
            &self.stepper.devices[0],
        );
        let prefetch = train_config.prefetch;
        let bar = progress_bar(
            self.batches_per_epoch() as u64,
            "{msg} [{bar:25}] {pos}/{len} {per_sec} ETA {eta}",
        );
        bar.set_position(first_batch as u64);
        bar.set_message(format!("epoch {epoch}/{}", train_config.epochs));
        let mut stopped = None;
        // The step takes the model by value: with no other handle on its parameters the
        // optimizer updates them in place instead of allocating new ones.
        let mut model = self.model.take();
        let mut clock = Instant::now();
        let result = for_each_timed_batch(&loader, prefetch, |k, batch, waited| {
            let index = first_batch + k;
            let at = StepAt {
                epoch,
                index,
                run_step: self.run_step(epoch, index + 1),
            };
            let taken = model.take().ok_or(TrainError::ModelLost)?;
            let (updated, logged) = self.train_step(taken, batch, at, lr, &mut sums, &bar)?;
            let model = model.insert(updated);
            let seconds = clock.elapsed().as_secs_f64();
            clock = Instant::now();
            sums.train_seconds += seconds;
            sums.data_wait_seconds += waited.as_secs_f64();
            log.step(at, logged, lr, seconds, waited.as_secs_f64())?;
            let next = self.next(at)?;
            if next.checkpoint || next.stop.is_some() {
                self.save_position(model, at, &sums)?;
            }
            stopped = next.stop;
            Ok(if stopped.is_some() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        });
        finish_progress(&bar);
        result?;
        self.model = Some(model.ok_or(TrainError::ModelLost)?);
        if let Some(signal) = stopped {
            return Ok(Trained::Stopped(signal));
        }
        self.stepper
            .group
            .sum_accumulator(&mut sums.accuracy, "the training accuracy sums")?;
        Ok(Trained::Finished(sums))
    }

    /// One step of the epoch: the update, its checks, the sums and the progress bar;
    /// returns the model and what the per-step log records of the step.
    fn train_step(
        &mut self,
        model: AlexNet,
        batch: ImageBatch,
        at: StepAt,
        lr: f64,
        sums: &mut TrainingSums,
        bar: &ProgressBar,
    ) -> Result<(AlexNet, Logged)> {
        let StepAt { epoch, index, .. } = at;
        self.seed_step(epoch, index);
        pause_point(format_args!("in-step-{}", index + 1), epoch);
        let targets = batch.classes.clone();
        let (model, outcome) = self.stepper.step(model, batch, lr)?;
        if let Some(what) = step_failure(self.stepper.scaler.as_ref(), &outcome) {
            let step = self.state.global_step + 1;
            return Err(diverged(
                what,
                epoch,
                index + 1,
                step,
                &self.last_checkpoint,
            ));
        }
        if outcome.applied {
            self.state.global_step += 1;
            sums.applied += 1;
            sums.loss_sum += f64::from(outcome.loss) * outcome.images as f64;
            sums.images += outcome.images as u64;
            let classes = self.inputs.data.num_classes();
            sums.accuracy
                .add_log_probs(&outcome.log_probs, classes, &targets);
        } else {
            sums.skipped += 1;
        }
        pause_point(format_args!("step-{}", index + 1), epoch);
        bar.inc(1);
        bar.set_message(format!(
            "epoch {epoch}/{} loss {:.4} train acc {:.2}% lr {lr:.3e}",
            self.config.train.epochs,
            sums.loss(),
            100.0 * sums.accuracy.top1()
        ));
        let logged = Logged {
            loss: outcome.applied.then_some(outcome.loss),
            grad_norm: outcome.grad_norm,
        };
        Ok((model, logged))
    }

    /// What every rank does after the step `at`: a stop when any rank was signalled,
    /// a step checkpoint when one is due by steps or (on rank 0's clock) by time. Not at
    /// an epoch's last batch unless stopping: the epoch's end follows.
    fn next(&mut self, at: StepAt) -> Result<Next> {
        let train_config = &self.config.train;
        let last = at.index + 1 == self.batches_per_epoch();
        let by_steps = train_config
            .checkpoint_every_steps
            .is_some_and(|every| at.run_step.is_multiple_of(every));
        let by_time = train_config
            .checkpoint_every_minutes
            .is_some_and(|minutes| self.last_save.elapsed().as_secs_f64() >= 60.0 * minutes);
        // Rank 0's clock decides for every rank.
        let (stop, by_time) = self.agree(by_time, "the agreement on stopping after a step")?;
        Ok(Next {
            checkpoint: (by_steps || by_time) && !last,
            stop,
        })
    }

    /// The stop every rank agrees on and rank 0's `due`, in one small exchange (one
    /// process: its own): the signal any rank was given, if one was.
    pub(super) fn agree(&mut self, due: bool, what: &str) -> Result<(Option<i32>, bool)> {
        let mine = self.stop.requested();
        let group = &mut self.stepper.group;
        if group.size() == 1 {
            return Ok((mine, due));
        }
        let value = f64::from(mine.unwrap_or(0)) + if due { 1000.0 } else { 0.0 };
        let all = group.gather(value, what)?;
        let signal = all.iter().map(|v| (v % 1000.0) as i32).max().unwrap_or(0);
        Ok(((signal > 0).then_some(signal), all[0] >= 1000.0))
    }

    /// Writes a step checkpoint after `at`: the state with the epoch's position and sums
    /// (accuracy counts summed over the ranks), the model and the optimizer. Every rank
    /// takes part; rank 0 alone writes.
    fn save_position(&mut self, model: &AlexNet, at: StepAt, sums: &TrainingSums) -> Result<()> {
        let mut saved = sums.clone();
        let group = &mut self.stepper.group;
        group.sum_accumulator(&mut saved.accuracy, "the training accuracy sums")?;
        let dir = self.store.step_dir(at.run_step);
        // Where the state stands until the epoch ends (then the position goes).
        let state = &mut self.state;
        state.position = Some(EpochPosition {
            epoch: at.epoch,
            batches: at.index + 1,
            sums: saved,
        });
        if let Some(scaler) = &self.stepper.scaler {
            state.loss_scale = scaler.state().clone();
        }
        // A BatchNorm layer keeps its last update pending (the record would miss it):
        // `valid()` commits it, as the step after this one would.
        drop(model.valid());
        if group.is_first() {
            let optimizer = super::policy::optimizer_bytes(&self.stepper.optim)?;
            let model = super::policy::model_bytes(model)?;
            self.store
                .save_step(state, [&model, &optimizer], at.run_step)?;
            tracing::info!("checkpoint {}", dir.display());
        }
        self.last_checkpoint = Some(dir);
        self.last_save = Instant::now();
        Ok(())
    }
}
