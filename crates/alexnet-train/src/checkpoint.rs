//! The trainer's checkpoints: its state and Burn's records of the model and optimizer,
//! kept in a [`runfiles::Store`] (written atomically, a CRC per file verified on load, a
//! fallback to the previous checkpoint when the latest is damaged, retention).
//!
//! ```text
//! checkpoints/epoch-0010/{model.bpk, optimizer.bpk, state.json}
//! checkpoints/step-00001234/…  inside an epoch: after training step 1234 of the run
//! checkpoints/latest          the folder name resume picks
//! checkpoints/best/{model.bpk, state.json}   the best validation accuracy so far
//! ```
//!
//! Epoch and step checkpoints are two lines with their own retention
//! (`train.keep_last`, `train.keep_last_steps`); an epoch checkpoint removes the step
//! checkpoints it supersedes. A resume takes `latest`, or when it is damaged the newest
//! good checkpoint of either line before it.

use std::path::{Path, PathBuf};

use alexnet_model::{AlexNet, AlexNetConfig};
use burn::{optim::ModuleOptimizer, store::ModuleRecord, tensor::Bytes};
use serde::{Deserialize, Serialize};

use runfiles::{Loaded, Store};

use crate::{
    error::{Result, TrainError},
    metrics::{EpochMetrics, TrainingSums},
    optim::{LossScaleState, ScheduleState},
};

/// File of the model weights (burnpack).
pub const MODEL_FILE: &str = "model.bpk";
/// File of the optimizer state (burnpack).
pub const OPTIMIZER_FILE: &str = "optimizer.bpk";
/// File of the trainer state (JSON).
pub const STATE_FILE: &str = runfiles::STATE_FILE;
/// Pointer to the checkpoint resume picks.
pub const LATEST_FILE: &str = runfiles::LATEST_FILE;
/// Folder of the best model.
pub const BEST_DIR: &str = "best";
const FORMAT: u32 = 1;

/// The best validation accuracy so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestMetric {
    /// Epoch it was reached.
    pub epoch: usize,
    /// Validation top-1 accuracy.
    pub val_top1: f64,
}

/// Everything besides weights and optimizer state that a resume needs. Random streams
/// (shuffle, augmentation, dropout) derive from `(seed, epoch, sample)`, so the seed is
/// the whole generator state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Format version of this file.
    pub format: u32,
    /// Epochs completed.
    pub epoch: usize,
    /// Optimizer steps taken (skipped f16 steps not counted).
    pub global_step: u64,
    /// The run's seed.
    pub seed: u64,
    /// The network, with its number of classes.
    pub model: AlexNetConfig,
    /// The class labels the model was trained on, in id order (`categories.csv`);
    /// empty in checkpoints written before they were recorded.
    #[serde(default)]
    pub classes: Vec<String>,
    /// The learning-rate schedule.
    pub schedule: ScheduleState,
    /// Loss scaling.
    pub loss_scale: LossScaleState,
    /// The best validation accuracy.
    pub best: Option<BestMetric>,
    /// The prepared dataset trained on (absent from checkpoints written before it was
    /// recorded); a resume on a changed dataset is refused.
    #[serde(default)]
    pub dataset: Option<alexnet_prep::DatasetFingerprint>,
    /// Every epoch's metrics so far.
    pub history: Vec<EpochMetrics>,
    /// The optimizer whose state `optimizer.bpk` holds (SGD in checkpoints written
    /// before there was a choice).
    #[serde(default)]
    pub optimizer: crate::optim::OptimizerKind,
    /// Where inside the next epoch a step checkpoint was taken; `None` at an epoch's end.
    #[serde(default)]
    pub position: Option<EpochPosition>,
}

/// A point inside an epoch: the data order and every random stream are functions of
/// (seed, epoch, batch), so the batches done and the sums so far are all a resume needs
/// to continue the epoch exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochPosition {
    /// The epoch in progress (`TrainerState::epoch` + 1).
    pub epoch: usize,
    /// Its batches done.
    pub batches: usize,
    /// Its sums so far.
    pub sums: TrainingSums,
}

impl TrainerState {
    /// How far the run is: epochs done and batches into the next; orders checkpoints.
    pub fn progress(&self) -> (usize, usize) {
        (self.epoch, self.position.as_ref().map_or(0, |p| p.batches))
    }
}

impl TrainerState {
    /// A state for a run about to start.
    pub fn new(seed: u64, model: AlexNetConfig, schedule: ScheduleState, loss_scale: f32) -> Self {
        Self {
            format: FORMAT,
            epoch: 0,
            global_step: 0,
            seed,
            model,
            classes: Vec::new(),
            dataset: None,
            schedule,
            loss_scale: LossScaleState {
                scale: loss_scale,
                good_steps: 0,
                overflows_at_min: 0,
            },
            best: None,
            history: Vec::new(),
            optimizer: crate::optim::OptimizerKind::Sgd,
            position: None,
        }
    }
}

/// A loaded checkpoint, ready to apply.
pub struct Checkpoint {
    /// Its folder.
    pub dir: PathBuf,
    /// The trainer state.
    pub state: TrainerState,
    /// Model weights (burnpack bytes).
    pub model: Vec<u8>,
    /// Optimizer state (burnpack bytes), absent in `best/`.
    pub optimizer: Option<Vec<u8>>,
}

impl Checkpoint {
    /// A verified folder as the trainer's checkpoint: its format known, its model there.
    fn from_loaded(mut loaded: Loaded<TrainerState>) -> Result<Self> {
        let state_path = loaded.dir.join(STATE_FILE);
        if loaded.state.format != FORMAT {
            return Err(checkpoint_error(
                &state_path,
                format!("format {} is not {FORMAT}", loaded.state.format),
            ));
        }
        let model = loaded
            .files
            .remove(MODEL_FILE)
            .ok_or_else(|| checkpoint_error(&loaded.dir, "has no model"))?;
        Ok(Self {
            optimizer: loaded.files.remove(OPTIMIZER_FILE),
            dir: loaded.dir,
            state: loaded.state,
            model,
        })
    }

    /// `model` with this checkpoint's weights.
    pub fn load_model(&self, model: AlexNet) -> Result<AlexNet> {
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(self.model.clone())).map_err(
            |source| TrainError::CheckpointRecord {
                path: self.dir.clone(),
                what: "model weights",
                source,
            },
        )?;
        Ok(model.apply_record(record, &self.dir)?)
    }

    /// `optim` with this checkpoint's optimizer state; a folder without one (`best/`) is
    /// an error.
    pub fn load_optimizer(&self, optim: ModuleOptimizer) -> Result<ModuleOptimizer> {
        let bytes = self
            .optimizer
            .clone()
            .ok_or_else(|| TrainError::Checkpoint {
                path: self.dir.clone(),
                reason: "has no optimizer state (is it a best-model folder?)".into(),
            })?;
        optim
            .from_bytes(Bytes::from_bytes_vec(bytes))
            .map_err(|source| TrainError::CheckpointRecord {
                path: self.dir.clone(),
                what: "optimizer state",
                source,
            })
    }
}

fn checkpoint_error(path: &Path, reason: impl Into<String>) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The checkpoints of one run directory: epoch checkpoints numbered by epoch (the newest
/// `train.keep_last` kept), step checkpoints numbered by the run's training step (the
/// newest `train.keep_last_steps` kept), and the best model apart.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    store: Store,
    steps: Store,
}

/// The prefix of step checkpoint folders.
pub const STEP_PREFIX: &str = "step-";

/// Writes checkpoint `number` of `store`: the state, the model's and the optimizer's
/// records.
fn save_in(
    store: &Store,
    number: usize,
    state: &TrainerState,
    [model, optimizer]: [&[u8]; 2],
) -> Result<PathBuf> {
    let files = [(MODEL_FILE, model), (OPTIMIZER_FILE, optimizer)];
    Ok(store.save(number, state, &files)?)
}

/// The store's pause points for step checkpoints: `step-checkpoint-write@<step>` and
/// `step-before-latest@<step>`.
fn step_hook(point: &str, step: usize) {
    crate::faults::pause_point(format_args!("step-{point}"), step);
}

impl CheckpointStore {
    /// The store in `run_dir/checkpoints`, keeping the newest `keep_last` epoch
    /// checkpoints and two step checkpoints ([`Self::keeping_steps`]).
    pub fn new(run_dir: &Path, keep_last: usize) -> Self {
        let dir = run_dir.join("checkpoints");
        Self {
            store: Store::new(&dir, "epoch-", keep_last)
                .with_hook(|point, epoch| crate::faults::pause_point(point, epoch)),
            steps: Store::new(&dir, STEP_PREFIX, 2).with_hook(step_hook),
        }
    }

    /// This store keeping the newest `keep` step checkpoints.
    pub fn keeping_steps(mut self, keep: usize) -> Self {
        let dir = self.store.dir().to_path_buf();
        self.steps = Store::new(&dir, STEP_PREFIX, keep).with_hook(step_hook);
        self
    }

    /// The `checkpoints` folder.
    pub fn dir(&self) -> &Path {
        self.store.dir()
    }

    /// The folder of the checkpoint after `epoch` (`epoch-NNNN`), whether or not it
    /// exists.
    pub fn epoch_dir(&self, epoch: usize) -> PathBuf {
        self.dir().join(self.store.name(epoch))
    }

    /// The folder of the checkpoint after the run's training step `step`, whether or
    /// not it exists.
    pub fn step_dir(&self, step: usize) -> PathBuf {
        self.dir().join(self.steps.name(step))
    }

    /// Epoch checkpoints present, newest first.
    pub fn list(&self) -> Result<Vec<(usize, PathBuf)>> {
        Ok(self.store.list()?)
    }

    /// Step checkpoints present, newest first.
    pub fn list_steps(&self) -> Result<Vec<(usize, PathBuf)>> {
        Ok(self.steps.list()?)
    }

    /// The checkpoint `latest` names, if any.
    pub fn latest(&self) -> Result<Option<PathBuf>> {
        Ok(self.store.latest()?)
    }

    /// Writes a checkpoint for `state.epoch` and points `latest` at it. A crash at any
    /// moment leaves the previous checkpoint and pointer intact. Then prunes this run's
    /// line of checkpoints ([`Store::prune`]: later epochs of another line are kept) and
    /// removes the step checkpoints up to `step` (the run's training steps so far),
    /// which this one supersedes.
    pub fn save(
        &self,
        state: &TrainerState,
        model: &[u8],
        optimizer: &[u8],
        step: usize,
    ) -> Result<PathBuf> {
        let dir = save_in(&self.store, state.epoch, state, [model, optimizer])?;
        self.steps.remove_up_to(step)?;
        Ok(dir)
    }

    /// Writes a checkpoint inside an epoch, after the run's training step `step`
    /// (`state.position` says where): `weights` are the model's and the optimizer's
    /// records, as [`Self::save`] takes them. Points `latest` at it; the newest
    /// `keep_last_steps` are kept.
    pub fn save_step(
        &self,
        state: &TrainerState,
        weights: [&[u8]; 2],
        step: usize,
    ) -> Result<PathBuf> {
        save_in(&self.steps, step, state, weights)
    }

    /// Writes the best model so far (weights and state, no optimizer).
    pub fn save_best(&self, state: &TrainerState, model: &[u8]) -> Result<PathBuf> {
        Ok(self
            .store
            .save_named(BEST_DIR, state, &[(MODEL_FILE, model)])?)
    }

    /// Loads and verifies the checkpoint in `dir`.
    pub fn load(dir: &Path) -> Result<Checkpoint> {
        Checkpoint::from_loaded(Store::load(dir)?)
    }

    /// The checkpoint a command uses: `checkpoint` when given, else the run's latest
    /// epoch checkpoint (a step checkpoint is for resuming: its epoch is unfinished); a
    /// run without one is an error saying so.
    pub fn load_given_or_latest(&self, checkpoint: Option<&Path>) -> Result<Checkpoint> {
        if let Some(path) = checkpoint {
            return Self::load(path);
        }
        self.store
            .load_latest(verified)
            .map_err(no_usable)?
            .ok_or_else(|| {
                checkpoint_error(
                    self.dir(),
                    "the run has no checkpoint of a finished epoch yet (train it first, or pass --checkpoint)",
                )
            })
    }

    /// The checkpoint a `--resume auto` continues from: `latest`, or when it is damaged
    /// the newest good one before it (of either line), with a warning naming both.
    /// `Ok(None)` only when the run has no checkpoint at all.
    pub fn load_latest(&self) -> Result<Option<Checkpoint>> {
        let candidates = self.resume_candidates()?;
        self.load_candidates(&candidates)
    }

    /// `latest`, then the checkpoints of both lines before it by progress, newest
    /// first. One further than `latest` belongs to another line of the run (it went on
    /// before being resumed from an earlier checkpoint) and is never taken silently.
    fn resume_candidates(&self) -> Result<Vec<PathBuf>> {
        let latest = self.latest()?;
        // The state file alone, not the weights: enough to order checkpoints.
        let progress_of = |dir: &Path| {
            Store::read_state::<TrainerState>(dir)
                .ok()
                .map(|state| state.progress())
        };
        let bound = latest.as_deref().and_then(progress_of).or_else(|| {
            let name = latest.as_deref()?.file_name()?.to_str()?;
            Some((self.store.number(name)?, 0))
        });
        let mut others: Vec<((usize, usize), PathBuf)> = Vec::new();
        for (_, dir) in self.list()?.into_iter().chain(self.list_steps()?) {
            if Some(&dir) == latest.as_ref() {
                continue;
            }
            // A folder whose state does not read is tried last, where `latest` is
            // unreadable too; it fails with its reason.
            let key = progress_of(&dir).unwrap_or((0, 0));
            if bound.is_none_or(|bound| key < bound) {
                others.push((key, dir));
            }
        }
        others.sort_by_key(|other| std::cmp::Reverse(other.0));
        let mut candidates: Vec<PathBuf> = latest.into_iter().collect();
        candidates.extend(others.into_iter().map(|(_, dir)| dir));
        Ok(candidates)
    }

    /// The first of `candidates` that loads and verifies, as [`Store::load_first`].
    fn load_candidates(&self, candidates: &[PathBuf]) -> Result<Option<Checkpoint>> {
        self.store
            .load_first(candidates, verified)
            .map_err(no_usable)
    }
}

/// A loaded folder as the trainer's checkpoint, or why it is not one.
fn verified(loaded: Loaded<TrainerState>) -> std::result::Result<Checkpoint, String> {
    Checkpoint::from_loaded(loaded).map_err(|error| error.to_string())
}

/// The store's error, with what to do when no checkpoint is usable.
fn no_usable(error: runfiles::StoreError) -> TrainError {
    match error {
        runfiles::StoreError::NoUsable { dir, reasons } => checkpoint_error(
            &dir,
            format!(
                "no usable checkpoint ({reasons}); refusing to restart from epoch 1 — pass --resume never with a new --run-dir to start over"
            ),
        ),
        other => other.into(),
    }
}
