//! The trainer: a run checked and loaded before anything is written ([`setup`]), its
//! epochs ([`epoch`]), and what is kept of each ([`policy`]: the schedule, the best model
//! and the checkpoints).
//!
//! A hand-written loop rather than burn-train's `Learner`: the original steps
//! ReduceLROnPlateau once per epoch on an epoch metric (burn-train steps schedulers per
//! iteration, without metrics), and a run here must resume exactly (data order, random
//! streams, scheduler), write checkpoints atomically with a fallback, stop on a NaN
//! naming the batch, scale f16 losses, and purge TensorBoard curves on resume — none of
//! which burn-train's hooks offer. Burn provides everything below the loop: modules,
//! autodiff, the SGD optimizer and its state records, the data loader, schedulers.

mod epoch;
mod policy;
mod setup;
mod steplog;
mod steps;

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use alexnet_model::AlexNet;
use burn::prelude::*;

pub use self::setup::RUN_CONFIG;

pub use crate::inputs::SELECTION_SPLIT;

/// The run's per-epoch table, one row an epoch, rewritten from the state's history (so a
/// resumed run's rows past its checkpoint go, as its TensorBoard points do).
pub const SUMMARY_CSV: &str = "summary.csv";
use crate::{
    checkpoint::{CheckpointStore, TrainerState},
    config::ExperimentConfig,
    error::{Result, TrainError},
    inputs::Inputs,
    metrics::EpochMetrics,
    optim::Schedule,
    step::Stepper,
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
    /// Why `train.early_stopping` ended the run, if it did.
    pub stopped_early: Option<crate::optim::EarlyStop>,
    /// The signal (SIGINT 2, SIGTERM 15) that stopped the run after it saved a
    /// checkpoint, if one did: the process should exit with 128 + it
    /// ([`runfiles::StopRequest::exit_code`]).
    pub stopped_by: Option<i32>,
    /// This process's rank in a distributed run (0 otherwise): rank 0 reports.
    pub rank: usize,
}

/// Called after every epoch; returning `false` stops the run at once, as a kill would
/// (no further checkpoint).
pub type EpochObserver<'a> = dyn FnMut(&EpochMetrics) -> bool + 'a;

/// Trains as `config` says (its data path and run directory must be resolved; see
/// `commands::resolve_data`), calling `observer` after each epoch: the config is checked
/// ([`ExperimentConfig::check`]), then the trainer prepared and run.
pub fn train(config: &ExperimentConfig, observer: &mut EpochObserver<'_>) -> Result<TrainSummary> {
    Trainer::prepare(&config.clone().check()?)?.run(observer)
}

/// A run that has been checked and loaded (data, pipelines, devices, model, optimizer,
/// the checkpoint to resume from) before anything is written: every bad input is an
/// error here, with the run directory untouched. [`Trainer::run`] trains it.
pub struct Trainer {
    config: ExperimentConfig,
    run_dir: PathBuf,
    inputs: Inputs,
    /// The first device, plain: evaluation and the preview run there.
    eval_device: Device,
    /// The training devices, the optimizer and the loss scale.
    stepper: Stepper,
    /// The model, on the first training device; `None` only while a step holds it.
    model: Option<AlexNet>,
    state: TrainerState,
    schedule: Schedule,
    store: CheckpointStore,
    last_checkpoint: Option<PathBuf>,
    /// Set by SIGINT/SIGTERM when the program installed it ([`Trainer::with_stop`]):
    /// the run stops after the step in flight, with a checkpoint.
    stop: runfiles::StopRequest,
    /// When the last checkpoint was written (or the run started), for
    /// `train.checkpoint_every_minutes`.
    last_save: Instant,
}

impl Trainer {
    /// The run directory.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// This trainer, stopping cleanly (a checkpoint after the step in flight) once
    /// `stop` is requested: [`runfiles::StopRequest::on_signals`] makes SIGINT and
    /// SIGTERM request it.
    pub fn with_stop(mut self, stop: runfiles::StopRequest) -> Self {
        self.stop = stop;
        self
    }

    /// The model (an error only after a failed step lost it).
    fn model(&self) -> Result<&AlexNet> {
        self.model.as_ref().ok_or(TrainError::ModelLost)
    }
}
