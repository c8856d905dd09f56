//! [`Trainer::run`]: the run's header (TensorBoard's summary, graph and preview), then
//! each epoch — train, check, evaluate, report, keep — where nothing non-finite is
//! evaluated, logged or saved.

use std::{path::PathBuf, sync::Arc, time::Instant};

use burn::prelude::*;
use tfevents::EventWriter;

use super::{
    EpochObserver, SUMMARY_CSV, TrainSummary, Trainer,
    steplog::{StepLog, log_data_wait},
    steps::Trained,
};
use crate::{
    data::loader_pool,
    error::{Result, TrainError},
    eval::{EvalOptions, evaluate},
    faults::pause_point,
    metrics::{Accumulator, EpochMetrics, TrainingSums},
    optim::{LossScaler, MIN_LOSS_SCALE},
    report::{log_epoch, open_tensorboard, preview_grid, write_scalars, write_summary_csv},
    step::{StepOutcome, all_finite},
};

/// How an epoch ended.
enum EpochEnd {
    /// Trained and evaluated: its metrics, and whether it was checkpointed.
    Done(EpochMetrics, bool),
    /// Stopped by this signal during its training steps, after a step checkpoint.
    Stopped(i32),
}

/// The stop for a run that diverged, naming where and what a resume starts from.
pub(super) fn diverged(
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
pub(super) fn step_failure(scaler: Option<&LossScaler>, outcome: &StepOutcome) -> Option<String> {
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
pub(super) fn distinct(devices: &[Device]) -> Vec<&Device> {
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
            let (epoch, batches) = self.state.progress();
            let inside = if batches > 0 {
                format!(", then {batches} batches of epoch {}", epoch + 1)
            } else {
                String::new()
            };
            tracing::info!("resuming from {} (epoch {epoch}{inside})", dir.display());
        }
        // Rank 0 alone writes the run's files; every rank computes the same run.
        let writes = self.stepper.group.is_first();
        if writes {
            self.write_resolved_config()?;
            write_summary_csv(&self.run_dir.join(SUMMARY_CSV), &self.state.history)?;
        }
        let tensorboard_dir = self.run_dir.join("tensorboard");
        let mut board = if writes {
            Some(open_tensorboard(&tensorboard_dir, self.state.epoch as u64)?)
        } else {
            None
        };
        let (epoch, batches) = self.state.progress();
        let steps_done = self.run_step(epoch + 1, batches);
        let mut log = StepLog::open(
            &tensorboard_dir,
            steps_done,
            self.config.logging.every_steps,
            self.config.train.batch_size,
            writes,
        )?;
        let parameters = self.model()?.num_trainable_params();
        self.log_start(parameters);
        let pool = loader_pool(self.config.train.loader_threads)?;
        if let Some(board) = board.as_mut() {
            self.write_header(board, &pool)?;
        }
        let (interrupted, stopped_by) = self.epochs(board.as_mut(), &mut log, &pool, observer)?;
        log.flush()?;
        if let Some(signal) = stopped_by {
            self.log_stopped(signal);
        }
        Ok(TrainSummary {
            run_dir: self.run_dir,
            tensorboard_dir,
            checkpoint: self.last_checkpoint,
            stopped_early: self.config.train.early_stop(&self.state.history),
            history: self.state.history,
            parameters,
            interrupted,
            stopped_by,
            rank: self.stepper.group.rank(),
        })
    }

    /// The epochs left: returns whether the observer interrupted the run, and the
    /// signal that stopped it, if one did.
    fn epochs(
        &mut self,
        mut board: Option<&mut EventWriter>,
        log: &mut StepLog,
        pool: &Arc<rayon::ThreadPool>,
        observer: &mut EpochObserver<'_>,
    ) -> Result<(bool, Option<i32>)> {
        let epochs = self.config.train.epochs;
        if let Some(stop) = self.config.train.early_stop(&self.state.history) {
            tracing::info!("training already complete: {stop}");
            return Ok((false, None));
        } else if self.state.epoch >= epochs {
            tracing::info!(
                "training already complete: {} of {epochs} epochs done",
                self.state.epoch
            );
        }
        for epoch in self.state.epoch + 1..=epochs {
            let (metrics, checkpointed) =
                match self.epoch(board.as_deref_mut(), log, epoch, pool)? {
                    EpochEnd::Stopped(signal) => return Ok((true, Some(signal))),
                    EpochEnd::Done(metrics, checkpointed) => (metrics, checkpointed),
                };
            // Any rank's signal stops every rank at the epoch's end.
            if let (Some(signal), _) = self.agree(false, "the agreement on stopping")? {
                if !checkpointed {
                    self.save_epoch()?;
                }
                return Ok((epoch < epochs, Some(signal)));
            }
            if !observer(&metrics) {
                return Ok((epoch < epochs, None));
            }
            if let Some(stop) = self.config.train.early_stop(&self.state.history) {
                let best = self.state.best.as_ref().map_or(0, |best| best.epoch);
                tracing::info!("{stop}; checkpoints/best/ holds epoch {best}");
                break;
            }
        }
        Ok((false, None))
    }

    /// The line a stopped run ends on: where it saved, and how to go on.
    fn log_stopped(&self, signal: i32) {
        let name = runfiles::StopRequest::signal_name(signal);
        let (epoch, batches) = self.state.progress();
        let saved = self
            .last_checkpoint
            .as_ref()
            .map_or("no checkpoint".into(), |dir| dir.display().to_string());
        tracing::warn!(
            "stopped by {name} after epoch {epoch}{}, checkpoint {saved}; to resume, run the same command again",
            if batches > 0 {
                format!(" and {batches} batches of epoch {}", epoch + 1)
            } else {
                String::new()
            }
        );
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
    /// evaluated, logged or saved. A signal during the training steps stops it after a
    /// step checkpoint.
    fn epoch(
        &mut self,
        board: Option<&mut EventWriter>,
        log: &mut StepLog,
        epoch: usize,
        pool: &Arc<rayon::ThreadPool>,
    ) -> Result<EpochEnd> {
        let lr = self.schedule.lr();
        let trained = match self.train_epoch(epoch, lr, pool, log)? {
            Trained::Finished(sums) => sums,
            Trained::Stopped(signal) => return Ok(EpochEnd::Stopped(signal)),
        };
        // The training time is the sums' (over every session of the epoch); what
        // follows is timed from here.
        let trained_at = Instant::now();
        // The epoch's end supersedes its step checkpoints' positions.
        self.state.position = None;
        // Every rank continues with rank 0's BatchNorm statistics (the first shard's, as
        // on several devices of one process) and parameters.
        let model = self.model.take().ok_or(TrainError::ModelLost)?;
        self.model = Some(self.stepper.group.broadcast_model(model)?);
        self.check_trained(&trained, epoch)?;
        let train_config = &self.config.train;
        log_data_wait(
            epoch,
            &trained,
            train_config.loader_threads,
            train_config.prefetch,
        );
        pause_point("validate", epoch);
        let val = self.validate(epoch, pool)?;
        let train_config = &self.config.train;
        let images = self.batches_per_epoch() * train_config.batch_size;
        let seconds = trained.train_seconds + trained_at.elapsed().as_secs_f64();
        let metrics = EpochMetrics {
            epoch,
            train_loss: trained.loss(),
            train_accuracy: trained.accuracy.top1(),
            val_loss: val.loss(),
            val_top1: val.top1(),
            val_top5: val.top5(),
            val_mean_per_class: val.mean_per_class(),
            lr,
            images_per_sec: images as f64 / trained.train_seconds.max(1e-9),
            seconds,
            skipped_steps: trained.skipped,
            loss_scale: f64::from(self.stepper.loss_scale()),
            data_wait_share: Some(trained.data_wait_share()),
        };
        log_epoch(&metrics, train_config.epochs);
        if let Some(board) = board {
            write_scalars(board, &metrics, self.stepper.scaler.is_some())?;
        }
        pause_point("epoch-logged", epoch);
        let checkpointed = self.keep(&metrics)?;
        if self.stepper.group.is_first() {
            write_summary_csv(&self.run_dir.join(SUMMARY_CSV), &self.state.history)?;
        }
        Ok(EpochEnd::Done(metrics, checkpointed))
    }

    /// The run's stop if the epoch took no step or left a non-finite parameter.
    fn check_trained(&self, trained: &TrainingSums, epoch: usize) -> Result<()> {
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
    pub(super) fn batches_per_epoch(&self) -> usize {
        self.inputs.train_set.items().len() / self.config.train.batch_size
    }
}
