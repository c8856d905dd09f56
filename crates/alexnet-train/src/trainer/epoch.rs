//! The epoch loop: train an epoch, check it, evaluate, report, checkpoint.
//!
//! A hand-written loop rather than burn-train's `Learner`: the original steps
//! ReduceLROnPlateau once per epoch on an epoch metric (burn-train steps schedulers per
//! iteration, without metrics), and a run here must resume exactly (data order, random
//! streams, scheduler), write checkpoints atomically with a fallback, stop on a NaN
//! naming the batch, scale f16 losses, and purge TensorBoard curves on resume — none of
//! which burn-train's hooks offer. Burn provides everything below the loop: modules,
//! autodiff, the SGD optimizer and its state records, the data loader, schedulers.
//! autodiff, the SGD optimizer and its state records, the data loader, schedulers.
//!
//! Over 400 lines: the loop's checks (a non-finite value is never a result) sit with
//! the steps they guard; the step, loss scaling, evaluation and reporting are elsewhere.

use std::{path::PathBuf, sync::Arc, time::Instant};

use alexnet_model::AlexNet;
use burn::prelude::*;

use crate::{
    checkpoint::BestMetric,
    config::{ExperimentConfig, MIN_LOSS_SCALE, Overrides},
    data::{ImageBatcher, epoch_seed, for_each_batch, loader_pool, train_loader},
    distributed::ProcessGroup,
    error::{Result, TrainError},
    eval::{EvalOptions, evaluate},
    logging::{finish_progress, progress_bar},
    metrics::{Accumulator, EpochMetrics},
    report::{log_epoch, open_tensorboard, preview_grid, write_scalars},
    session::{Session, default_run_dir, resolve_data},
    step::all_finite,
    tensorboard::TensorBoard,
};

/// What a finished (or stopped) run reports.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The TensorBoard folder.
    pub tensorboard_dir: PathBuf,
    /// The last checkpoint written or resumed from.
    pub checkpoint: Option<PathBuf>,
    /// Every epoch's metrics, resumed ones included.
    pub history: Vec<EpochMetrics>,
    /// Trainable parameters of the model.
    pub parameters: usize,
    /// Whether the run was stopped by the observer before its last epoch.
    pub interrupted: bool,
    /// This process's rank in a distributed run (0 otherwise): rank 0 reports.
    pub rank: usize,
}

/// Called after every epoch; returning `false` stops the run at once, as a kill would
/// (no further checkpoint).
pub type EpochObserver<'a> = dyn FnMut(&EpochMetrics) -> bool + 'a;

/// Trains as `config` says (its data path and run directory must be resolved; see
/// [`crate::session::resolve_data`]), calling `observer` after each epoch.
pub fn train(config: &ExperimentConfig, observer: &mut EpochObserver<'_>) -> Result<TrainSummary> {
    Session::prepare(config)?.run(observer)
}

/// What the `train_caltech` example calls: `config` with `overrides` applied, the run
/// directory defaulting to `runs/<name>`, checked, the data resolved (the demo built
/// when none is configured), then trained with the console log copied to the run's
/// `train.log`. Nothing is written before every input has been checked.
pub fn train_command(
    mut config: ExperimentConfig,
    overrides: &Overrides,
    name: &str,
) -> Result<TrainSummary> {
    config.apply(overrides);
    let run_dir = config
        .train
        .run_dir
        .get_or_insert_with(|| default_run_dir(name))
        .clone();
    config.validate()?;
    let console = crate::logging::console(&config.logging)?;
    let group = ProcessGroup::connect(&config.distributed)?;
    if group.size() > 1 {
        let rank = group.rank();
        crate::logging::set_console_prefix(&format!("[rank {rank}] "));
        return crate::distributed::finish(rank, train_ranked(config, group, console, &run_dir));
    }
    resolve_data(&mut config, true)?;
    let session = Session::prepare(&config)?;
    let _log = console.into_file(&run_dir)?;
    session.run(&mut |_| true)
}

/// [`train_command`] on one rank of several: rank 0 resolves the data first (it builds
/// the demo dataset if needed; the others then open it), and alone keeps the log file.
fn train_ranked(
    mut config: ExperimentConfig,
    mut group: ProcessGroup,
    console: crate::logging::ConsoleLog,
    run_dir: &std::path::Path,
) -> Result<TrainSummary> {
    if group.is_first() {
        resolve_data(&mut config, true)?;
    }
    group.barrier("the data preparation on rank 0")?;
    if !group.is_first() {
        resolve_data(&mut config, false)?;
    }
    let first = group.is_first();
    let session = Session::prepare_in(&config, group)?;
    let _log = if first {
        console.into_file(run_dir)?
    } else {
        drop(console);
        crate::logging::init(&config.logging, None)?
    };
    session.run(&mut |_| true)
}

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

impl Session {
    /// Trains, calling `observer` after each epoch.
    pub fn run(mut self, observer: &mut EpochObserver<'_>) -> Result<TrainSummary> {
        let train_config = self.config.train.clone();
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
        }
        let tensorboard_dir = self.run_dir.join("tensorboard");
        let mut board = if writes {
            Some(open_tensorboard(&tensorboard_dir, self.state.epoch)?)
        } else {
            None
        };
        let parameters = self.model()?.num_trainable_params();
        let inputs = &self.inputs;
        let [h, w] = inputs.train_pipeline.output_size();
        tracing::info!(
            "AlexNet ({:?}), {parameters} trainable parameters, {} classes, input {h}x{w}; {} training / {} validation images; device {}, {:?}",
            inputs.model_config.variant,
            inputs.data.num_classes(),
            inputs.train_set.len_items(),
            inputs.val_set.len_items(),
            train_config.device,
            train_config.precision
        );
        if self.stepper.group.size() > 1 {
            tracing::info!(
                "rank {} of {}: images {:?} of each batch of {}",
                self.stepper.group.rank(),
                self.stepper.group.size(),
                self.stepper.group.share(train_config.batch_size),
                train_config.batch_size
            );
        }
        let pool = loader_pool(train_config.loader_threads)?;
        if let (Some(board), 0) = (board.as_mut(), self.state.epoch) {
            let summary = inputs.model_config.summary(h as usize, w as usize)?;
            board.text("model/summary", &format!("```\n{summary}\n```"), 0)?;
            board.graph(&crate::report::graph_nodes(&summary))?;
            let preview = preview_grid(
                &inputs.train_set,
                &inputs.train_pipeline,
                pool.clone(),
                self.state.seed,
                train_config.preview_images,
                &self.eval_device,
            )?;
            if let Some(grid) = preview {
                board.image("augmented_training_images", &grid, 0)?;
            }
        }
        if let Some(board) = board.as_mut() {
            board.flush()?;
        }

        let mut interrupted = false;
        if self.state.epoch >= train_config.epochs {
            tracing::info!(
                "training already complete: {} of {} epochs done",
                self.state.epoch,
                train_config.epochs
            );
        }
        for epoch in self.state.epoch + 1..=train_config.epochs {
            let metrics = self.epoch(board.as_mut(), epoch, &pool)?;
            if !observer(&metrics) {
                interrupted = epoch < train_config.epochs;
                break;
            }
        }
        Ok(TrainSummary {
            run_dir: self.run_dir,
            tensorboard_dir,
            checkpoint: self.last_checkpoint,
            history: self.state.history,
            parameters,
            interrupted,
            rank: self.stepper.group.rank(),
        })
    }

    /// One epoch: train, check, evaluate, report, checkpoint. Nothing non-finite is
    /// evaluated, logged or saved.
    fn epoch(
        &mut self,
        board: Option<&mut TensorBoard>,
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
        let batches = self.batches_per_epoch();
        let stepper = &mut self.stepper;
        let train_config = &self.config.train;
        let stop = |what: String| {
            diverged(
                what,
                epoch,
                batches,
                self.state.global_step,
                &self.last_checkpoint,
            )
        };
        if trained.applied == 0 {
            return Err(stop(format!(
                "no optimizer step completed in the epoch ({} skipped as f16 overflows, the loss scale now {}; a smaller train.loss_scale.initial takes fewer steps to fit)",
                trained.skipped,
                stepper.loss_scale()
            )));
        }
        if !all_finite(self.model.as_ref().ok_or(TrainError::ModelLost)?)? {
            return Err(stop(
                "parameters or BatchNorm statistics became non-finite".into(),
            ));
        }
        let train_seconds = started.elapsed().as_secs_f64();
        let eval_options = EvalOptions {
            batch_size: train_config.eval_batch_size,
            precision: train_config.precision,
            device: self.eval_device.clone(),
            prefetch: train_config.prefetch,
            pool: pool.clone(),
        };
        // Each rank evaluates its share of the validation set; the sums are added.
        let group = &mut stepper.group;
        let (mut val, _) = evaluate(
            self.model.as_ref().ok_or(TrainError::ModelLost)?,
            &self.inputs.val_set.share(group.rank(), group.size()),
            self.inputs.eval_pipeline.clone(),
            &eval_options,
        )?;
        group.sum_accumulator(&mut val, "the validation sums")?;
        if !val.loss().is_finite() {
            return Err(stop(format!(
                "validation loss is {} (the model's validation outputs are not finite)",
                val.loss()
            )));
        }
        let metrics = EpochMetrics {
            epoch,
            train_loss: trained.loss_sum / trained.images.max(1) as f64,
            train_accuracy: trained.accuracy.top1(),
            val_loss: val.loss(),
            val_top1: val.top1(),
            val_top5: val.top5(),
            lr,
            images_per_sec: (batches * train_config.batch_size) as f64 / train_seconds.max(1e-9),
            seconds: started.elapsed().as_secs_f64(),
            skipped_steps: trained.skipped,
            loss_scale: f64::from(stepper.loss_scale()),
        };
        log_epoch(&metrics, train_config.epochs);
        if let Some(board) = board {
            write_scalars(board, &metrics, stepper.scaler.is_some())?;
        }
        crate::checkpoint::pause_point("epoch-logged", epoch);
        self.save(&metrics)?;
        Ok(metrics)
    }

    /// Full batches in an epoch (the last partial one is dropped).
    fn batches_per_epoch(&self) -> usize {
        self.inputs.train_set.len_items() / self.config.train.batch_size
    }

    /// The epoch's training steps. Under f16 a non-finite step is an overflow, skipped
    /// and retried with a smaller scale, until even the smallest scale keeps
    /// overflowing; in f32 it is divergence.
    fn train_epoch(
        &mut self,
        epoch: usize,
        lr: f64,
        pool: &Arc<rayon::ThreadPool>,
    ) -> Result<EpochTraining> {
        let batches = self.batches_per_epoch();
        let train_config = &self.config.train;
        let stepper = &mut self.stepper;
        let seed = self.state.seed;
        // Dropout draws from the device generator; reseeding per epoch makes each epoch's
        // masks independent of how the run got there (fresh or resumed). Each device has
        // its own generator; the first is also the loader's device.
        // Across ranks each takes the next numbers, as the devices of one process would.
        let devices = distinct(&stepper.devices);
        let first_stream = (stepper.group.rank() * devices.len()) as u64;
        for (k, device) in devices.into_iter().enumerate() {
            device.seed(epoch_seed(seed, epoch as u64).wrapping_add(first_stream + k as u64));
        }
        // Every rank draws the same global batches and loads its own share of each.
        let loader = train_loader(
            &self.inputs.train_set,
            ImageBatcher::new(
                self.inputs.train_pipeline.clone(),
                pool.clone(),
                seed,
                epoch as u64,
            )
            .with_share(stepper.group.rank(), stepper.group.size()),
            train_config.batch_size,
            seed,
            epoch as u64,
            &stepper.devices[0],
        );
        let bar = progress_bar(
            batches as u64,
            "{msg} [{bar:25}] {pos}/{len} {per_sec} ETA {eta}",
        );
        bar.set_message(format!("epoch {epoch}/{}", train_config.epochs));
        let classes = self.inputs.data.num_classes();
        let mut sums = EpochTraining::default();
        let global_step = &mut self.state.global_step;
        let last_checkpoint = &self.last_checkpoint;
        // The step takes the model by value: with no other handle on its parameters the
        // optimizer updates them in place instead of allocating new ones.
        let mut current = self.model.take();
        let lost = || TrainError::ModelLost;
        let result = for_each_batch(&loader, train_config.prefetch, |index, batch| {
            let targets = batch.classes.clone();
            let taken = current.take().ok_or_else(lost)?;
            let (updated, outcome) = stepper.step(taken, batch, lr)?;
            current = Some(updated);
            let stop =
                |what: String| diverged(what, epoch, index + 1, *global_step + 1, last_checkpoint);
            match &stepper.scaler {
                Some(scaler) if scaler.exhausted() => {
                    return Err(stop(format!(
                        "f16 steps overflowed {} times in a row at the smallest loss scale ({MIN_LOSS_SCALE}), the last loss {}",
                        scaler.overflows_at_min(),
                        outcome.loss
                    )));
                }
                Some(_) => {}
                None if !outcome.loss.is_finite() => {
                    return Err(stop(format!("loss became {}", outcome.loss)));
                }
                None if outcome.non_finite_grads => {
                    return Err(stop("gradients became non-finite (NaN or infinite)".into()));
                }
                None => {}
            }
            if outcome.applied {
                *global_step += 1;
                sums.applied += 1;
                sums.loss_sum += f64::from(outcome.loss) * outcome.images as f64;
                sums.images += outcome.images as u64;
                sums.accuracy
                    .add_log_probs(&outcome.log_probs, classes, &targets);
            } else {
                sums.skipped += 1;
            }
            crate::checkpoint::pause_point(&format!("step-{}", index + 1), epoch);
            bar.inc(1);
            bar.set_message(format!(
                "epoch {epoch}/{} loss {:.4} train acc {:.2}% lr {lr:.3e}",
                train_config.epochs,
                sums.loss_sum / sums.images.max(1) as f64,
                100.0 * sums.accuracy.top1()
            ));
            Ok(())
        });
        finish_progress(&bar);
        result?;
        self.model = Some(current.ok_or_else(lost)?);
        self.stepper
            .group
            .sum_accumulator(&mut sums.accuracy, "the training accuracy sums")?;
        Ok(sums)
    }

    /// Records the finished epoch: schedule, state, the best model, a checkpoint every
    /// `train.checkpoint_interval` epochs and at the last. Every rank keeps the same
    /// state; rank 0 alone writes the files.
    fn save(&mut self, metrics: &EpochMetrics) -> Result<()> {
        let train_config = &self.config.train;
        let stepper = &self.stepper;
        let writes = stepper.group.is_first();
        let model = self.model.as_ref().ok_or(TrainError::ModelLost)?;
        let epoch = metrics.epoch;
        self.schedule.step(metrics);
        let state = &mut self.state;
        state.epoch = epoch;
        state.schedule = self.schedule.state();
        if let Some(scaler) = &stepper.scaler {
            state.loss_scale = scaler.state().clone();
        }
        state.history.push(metrics.clone());
        let improved = state
            .best
            .as_ref()
            .is_none_or(|best| metrics.val_top1 > best.val_top1);
        if improved {
            state.best = Some(BestMetric {
                epoch,
                val_top1: metrics.val_top1,
            });
            if writes {
                self.store.save_best(state, &model_bytes(model)?)?;
            }
        }
        let checkpoint =
            epoch.is_multiple_of(train_config.checkpoint_interval) || epoch == train_config.epochs;
        if checkpoint && !writes {
            self.last_checkpoint = Some(
                self.store
                    .dir()
                    .join(crate::checkpoint::epoch_dir_name(epoch)),
            );
        } else if checkpoint {
            let optimizer = stepper
                .optim
                .into_bytes()
                .map_err(|source| TrainError::Record {
                    what: "the optimizer state",
                    source,
                })?;
            let dir = self.store.save(state, &model_bytes(model)?, &optimizer)?;
            tracing::info!("checkpoint {}", dir.display());
            self.last_checkpoint = Some(dir);
        }
        Ok(())
    }
}

/// The model's weights as burnpack bytes.
fn model_bytes(model: &AlexNet) -> Result<Vec<u8>> {
    let bytes = model
        .to_record()
        .into_bytes()
        .map_err(|source| TrainError::Record {
            what: "the model weights",
            source,
        })?;
    Ok(bytes.to_vec())
}
