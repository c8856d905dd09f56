//! [`Trainer::run`]: the run's header (TensorBoard's summary, graph and preview), then
//! each epoch — train, check, evaluate, report, keep — where nothing non-finite is
//! evaluated, logged or saved.

use std::{path::PathBuf, sync::Arc, time::Instant};

use alexnet_model::AlexNet;
use burn::prelude::*;
use indicatif::ProgressBar;
use tfevents::EventWriter;

use super::{EpochObserver, SUMMARY_CSV, TrainSummary, Trainer};
use crate::{
    data::{ImageBatch, ImageBatcher, epoch_seed, for_each_batch, loader_pool, train_loader},
    error::{Result, TrainError},
    eval::{EvalOptions, evaluate},
    faults::pause_point,
    logging::{finish_progress, progress_bar},
    metrics::{Accumulator, EpochMetrics},
    optim::{LossScaler, MIN_LOSS_SCALE},
    report::{log_epoch, open_tensorboard, preview_grid, write_scalars, write_summary_csv},
    step::{StepOutcome, all_finite},
};

/// The sums of one epoch's applied steps.
#[derive(Default)]
struct EpochTraining {
    /// Loss summed over the images of applied steps (every rank's).
    loss_sum: f64,
    /// Images of applied steps (every rank's).
    images: u64,
    /// Top-1 and top-5 counts (every rank's, summed at the end of the epoch).
    accuracy: Accumulator,
    applied: u64,
    /// Steps skipped as f16 overflows.
    skipped: u64,
}

impl EpochTraining {
    /// Adds a step's outcome (an applied step's loss and accuracy, or a skip).
    fn add(&mut self, outcome: &StepOutcome, classes: usize, targets: &[usize]) {
        if outcome.applied {
            self.applied += 1;
            self.loss_sum += f64::from(outcome.loss) * outcome.images as f64;
            self.images += outcome.images as u64;
            self.accuracy
                .add_log_probs(&outcome.log_probs, classes, targets);
        } else {
            self.skipped += 1;
        }
    }

    /// The mean training loss so far.
    fn loss(&self) -> f64 {
        self.loss_sum / self.images.max(1) as f64
    }
}

/// The stop for a run that diverged, naming where and what a resume starts from.
fn diverged(
    what: String,
    epoch: usize,
    batch: usize,
    step: u64,
    last_checkpoint: &Option<PathBuf>,
) -> TrainError {
    TrainError::NonFinite {
        what,
        epoch,
        batch,
        step,
        last_checkpoint: last_checkpoint
            .as_ref()
            .map_or("none (no checkpoint yet)".into(), |p| {
                p.display().to_string()
            }),
    }
}

/// Why a step ends the run, if it does: under f16 a non-finite step is an overflow,
/// skipped and retried with a smaller scale, until even the smallest scale keeps
/// overflowing; in f32 it is divergence.
fn step_failure(scaler: Option<&LossScaler>, outcome: &StepOutcome) -> Option<String> {
    match scaler {
        Some(scaler) if scaler.exhausted() => Some(format!(
            "f16 steps overflowed {} times in a row at the smallest loss scale ({MIN_LOSS_SCALE}), the last loss {}",
            scaler.overflows_at_min(),
            outcome.loss
        )),
        Some(_) => None,
        None if !outcome.loss.is_finite() => Some(format!("loss became {}", outcome.loss)),
        None if outcome.non_finite_grads => {
            Some("gradients became non-finite (NaN or infinite)".into())
        }
        None => None,
    }
}

/// The distinct devices of `devices`, in first-seen order.
fn distinct(devices: &[Device]) -> Vec<&Device> {
    let mut seen: Vec<&Device> = Vec::new();
    for device in devices {
        if !seen.contains(&device) {
            seen.push(device);
        }
    }
    seen
}

impl Trainer {
    /// Trains, calling `observer` after each epoch.
    pub fn run(mut self, observer: &mut EpochObserver<'_>) -> Result<TrainSummary> {
        if let Some(dir) = &self.last_checkpoint {
            tracing::info!(
                "resuming from {} (epoch {})",
                dir.display(),
                self.state.epoch
            );
        }
        // Rank 0 alone writes the run's files; every rank computes the same run.
        let writes = self.stepper.group.is_first();
        if writes {
            self.write_resolved_config()?;
            write_summary_csv(&self.run_dir.join(SUMMARY_CSV), &self.state.history)?;
        }
        let tensorboard_dir = self.run_dir.join("tensorboard");
        let mut board = if writes {
            Some(open_tensorboard(&tensorboard_dir, self.state.epoch)?)
        } else {
            None
        };
        let parameters = self.model()?.num_trainable_params();
        self.log_start(parameters);
        let pool = loader_pool(self.config.train.loader_threads)?;
        if let Some(board) = board.as_mut() {
            self.write_header(board, &pool)?;
        }
        let epochs = self.config.train.epochs;
        let mut stopped_early = self.config.train.early_stop(&self.state.history);
        if let Some(stop) = &stopped_early {
            tracing::info!("training already complete: {stop}");
        } else if self.state.epoch >= epochs {
            tracing::info!(
                "training already complete: {} of {epochs} epochs done",
                self.state.epoch
            );
        }
        let mut interrupted = false;
        let first = self.state.epoch + 1;
        for epoch in first..=epochs {
            if stopped_early.is_some() {
                break;
            }
            let metrics = self.epoch(board.as_mut(), epoch, &pool)?;
            if !observer(&metrics) {
                interrupted = epoch < epochs;
                break;
            }
            stopped_early = self.config.train.early_stop(&self.state.history);
            if let Some(stop) = &stopped_early {
                let best = self.state.best.as_ref().map_or(0, |best| best.epoch);
                tracing::info!("{stop}; checkpoints/best/ holds epoch {best}");
            }
        }
        Ok(TrainSummary {
            run_dir: self.run_dir,
            tensorboard_dir,
            checkpoint: self.last_checkpoint,
            history: self.state.history,
            parameters,
            interrupted,
            stopped_early,
            rank: self.stepper.group.rank(),
        })
    }

    /// Logs what is trained, on what, and this rank's share of each batch.
    fn log_start(&self, parameters: usize) {
        let train_config = &self.config.train;
        let inputs = &self.inputs;
        let [h, w] = inputs.train_pipeline.output_size();
        tracing::info!(
            "AlexNet ({:?}), {parameters} trainable parameters, {} classes, input {h}x{w}; {} training / {} validation images; device {}, {:?}",
            inputs.model_config.variant,
            inputs.data.num_classes(),
            inputs.train_set.items().len(),
            inputs.val_set.items().len(),
            train_config.device,
            train_config.precision
        );
        let group = &self.stepper.group;
        if group.size() > 1 {
            tracing::info!(
                "rank {} of {}: images {:?} of each batch of {}",
                group.rank(),
                group.size(),
                group.share(train_config.batch_size),
                train_config.batch_size
            );
        }
    }

    /// A new run's TensorBoard header: the model summary, its graph and a grid of
    /// augmented training images.
    fn write_header(&self, board: &mut EventWriter, pool: &Arc<rayon::ThreadPool>) -> Result<()> {
        if self.state.epoch == 0 {
            let inputs = &self.inputs;
            let [h, w] = inputs.train_pipeline.output_size();
            let summary = inputs.model_config.summary(h as usize, w as usize)?;
            board.text("model/summary", &format!("```\n{summary}\n```"), 0)?;
            board.graph(&crate::report::graph_nodes(&summary))?;
            let preview = preview_grid(
                &inputs.train_set,
                &inputs.train_pipeline,
                pool.clone(),
                self.state.seed,
                self.config.train.preview_images,
                &self.eval_device,
            )?;
            if let Some(grid) = preview {
                board.image("augmented_training_images", &grid, 0)?;
            }
        }
        Ok(board.flush()?)
    }

    /// One epoch: train, check, evaluate, report, keep. Nothing non-finite is
    /// evaluated, logged or saved.
    fn epoch(
        &mut self,
        board: Option<&mut EventWriter>,
        epoch: usize,
        pool: &Arc<rayon::ThreadPool>,
    ) -> Result<EpochMetrics> {
        let started = Instant::now();
        let lr = self.schedule.lr();
        let trained = self.train_epoch(epoch, lr, pool)?;
        // Every rank continues with rank 0's BatchNorm statistics (the first shard's, as
        // on several devices of one process) and parameters.
        let model = self.model.take().ok_or(TrainError::ModelLost)?;
        self.model = Some(self.stepper.group.broadcast_model(model)?);
        self.check_trained(&trained, epoch)?;
        let train_seconds = started.elapsed().as_secs_f64();
        let val = self.validate(epoch, pool)?;
        let train_config = &self.config.train;
        let images = self.batches_per_epoch() * train_config.batch_size;
        let metrics = EpochMetrics {
            epoch,
            train_loss: trained.loss(),
            train_accuracy: trained.accuracy.top1(),
            val_loss: val.loss(),
            val_top1: val.top1(),
            val_top5: val.top5(),
            val_mean_per_class: val.mean_per_class(),
            lr,
            images_per_sec: images as f64 / train_seconds.max(1e-9),
            seconds: started.elapsed().as_secs_f64(),
            skipped_steps: trained.skipped,
            loss_scale: f64::from(self.stepper.loss_scale()),
        };
        log_epoch(&metrics, train_config.epochs);
        if let Some(board) = board {
            write_scalars(board, &metrics, self.stepper.scaler.is_some())?;
        }
        pause_point("epoch-logged", epoch);
        self.keep(&metrics)?;
        if self.stepper.group.is_first() {
            write_summary_csv(&self.run_dir.join(SUMMARY_CSV), &self.state.history)?;
        }
        Ok(metrics)
    }

    /// The run's stop if the epoch took no step or left a non-finite parameter.
    fn check_trained(&self, trained: &EpochTraining, epoch: usize) -> Result<()> {
        if trained.applied == 0 {
            return Err(self.diverged_at_epoch_end(epoch, format!(
                "no optimizer step completed in the epoch ({} skipped as f16 overflows, the loss scale now {}; a smaller train.loss_scale.initial takes fewer steps to fit)",
                trained.skipped,
                self.stepper.loss_scale()
            )));
        }
        if !all_finite(self.model()?)? {
            return Err(self.diverged_at_epoch_end(
                epoch,
                "parameters or BatchNorm statistics became non-finite".into(),
            ));
        }
        Ok(())
    }

    /// The validation sums: each rank evaluates its share, the sums are added. A
    /// non-finite loss stops the run.
    fn validate(&mut self, epoch: usize, pool: &Arc<rayon::ThreadPool>) -> Result<Accumulator> {
        let train_config = &self.config.train;
        let options = EvalOptions {
            batch_size: train_config.eval_batch_size,
            precision: train_config.precision,
            device: self.eval_device.clone(),
            prefetch: train_config.prefetch,
            pool: pool.clone(),
        };
        let group = &mut self.stepper.group;
        let model = self.model.as_ref().ok_or(TrainError::ModelLost)?;
        let mut val = evaluate(
            model,
            &self.inputs.val_set.share(group.rank(), group.size()),
            self.inputs.eval_pipeline.clone(),
            &options,
        )?
        .metrics;
        group.sum_accumulator(&mut val, "the validation sums")?;
        if !val.loss().is_finite() {
            return Err(self.diverged_at_epoch_end(
                epoch,
                format!(
                    "validation loss is {} (the model's validation outputs are not finite)",
                    val.loss()
                ),
            ));
        }
        Ok(val)
    }

    /// The stop for a run found diverged at the end of `epoch` (after its last batch).
    fn diverged_at_epoch_end(&self, epoch: usize, what: String) -> TrainError {
        let (batch, step) = (self.batches_per_epoch(), self.state.global_step);
        diverged(what, epoch, batch, step, &self.last_checkpoint)
    }

    /// Full batches in an epoch (the last partial one is dropped).
    fn batches_per_epoch(&self) -> usize {
        self.inputs.train_set.items().len() / self.config.train.batch_size
    }

    /// Seeds each device's generator for `epoch`. Dropout draws from it; reseeding per
    /// epoch makes each epoch's masks independent of how the run got there (fresh or
    /// resumed). Across ranks each takes the next numbers, as the devices of one process
    /// would.
    fn seed_devices(&self, epoch: usize) {
        let devices = distinct(&self.stepper.devices);
        let first_stream = (self.stepper.group.rank() * devices.len()) as u64;
        for (k, device) in devices.into_iter().enumerate() {
            let seed = epoch_seed(self.state.seed, epoch as u64);
            device.seed(seed.wrapping_add(first_stream + k as u64));
        }
    }

    /// The epoch's training steps.
    fn train_epoch(
        &mut self,
        epoch: usize,
        lr: f64,
        pool: &Arc<rayon::ThreadPool>,
    ) -> Result<EpochTraining> {
        self.seed_devices(epoch);
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
            self.state.seed,
            epoch as u64,
            &self.stepper.devices[0],
        );
        let bar = progress_bar(
            self.batches_per_epoch() as u64,
            "{msg} [{bar:25}] {pos}/{len} {per_sec} ETA {eta}",
        );
        bar.set_message(format!("epoch {epoch}/{}", train_config.epochs));
        let mut sums = EpochTraining::default();
        // The step takes the model by value: with no other handle on its parameters the
        // optimizer updates them in place instead of allocating new ones.
        let mut model = self.model.take();
        let result = for_each_batch(&loader, train_config.prefetch, |index, batch| {
            let taken = model.take().ok_or(TrainError::ModelLost)?;
            let updated = self.train_step(taken, batch, (epoch, index), lr, &mut sums, &bar)?;
            model = Some(updated);
            Ok(())
        });
        finish_progress(&bar);
        result?;
        self.model = Some(model.ok_or(TrainError::ModelLost)?);
        self.stepper
            .group
            .sum_accumulator(&mut sums.accuracy, "the training accuracy sums")?;
        Ok(sums)
    }

    /// One step of the epoch: the update, its checks, the sums and the progress bar.
    fn train_step(
        &mut self,
        model: AlexNet,
        batch: ImageBatch,
        (epoch, index): (usize, usize),
        lr: f64,
        sums: &mut EpochTraining,
        bar: &ProgressBar,
    ) -> Result<AlexNet> {
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
        }
        sums.add(&outcome, self.inputs.data.num_classes(), &targets);
        pause_point(format_args!("step-{}", index + 1), epoch);
        bar.inc(1);
        bar.set_message(format!(
            "epoch {epoch}/{} loss {:.4} train acc {:.2}% lr {lr:.3e}",
            self.config.train.epochs,
            sums.loss(),
            100.0 * sums.accuracy.top1()
        ));
        Ok(model)
    }
}
