//! Checkpoints: written atomically (temporary folder, fsync, rename), verified by
//! checksum on load, with a fallback to the previous one when the latest is damaged.
//!
//! ```text
//! checkpoints/epoch-0010/{model.bpk, optimizer.bpk, state.json}
//! checkpoints/latest          the folder name resume picks
//! checkpoints/best/{model.bpk, state.json}   the best validation accuracy so far
//! ```
//!
//! Over 400 lines: writing, verifying, falling back and pruning are one contract (what
//! a resume may trust) and are kept together.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use alexnet_model::{AlexNet, AlexNetConfig};
use burn::{optim::ModuleOptimizer, store::ModuleRecord, tensor::Bytes};
use serde::{Deserialize, Serialize};

use crate::{
    error::{IoContext, Result, TrainError},
    io::{sync_dir, write_atomic, write_synced},
    metrics::EpochMetrics,
    schedule::ScheduleState,
};

/// File of the model weights (burnpack).
pub const MODEL_FILE: &str = "model.bpk";
/// File of the optimizer state (burnpack).
pub const OPTIMIZER_FILE: &str = "optimizer.bpk";
/// File of the trainer state (JSON).
pub const STATE_FILE: &str = "state.json";
/// Pointer to the checkpoint resume picks.
pub const LATEST_FILE: &str = "latest";
/// Folder of the best model.
pub const BEST_DIR: &str = "best";
const FORMAT: u32 = 1;

/// Size and checksum of a checkpoint file, to tell a damaged file from a good one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Length in bytes.
    pub bytes: u64,
    /// CRC-32 of the content.
    pub crc32: u32,
}

impl FileDigest {
    fn of(bytes: &[u8]) -> Self {
        Self {
            bytes: bytes.len() as u64,
            crc32: crc32fast::hash(bytes),
        }
    }
}

/// Dynamic loss-scaling state (f16).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossScaleState {
    /// Current scale.
    pub scale: f32,
    /// Steps since the last overflow or growth.
    pub good_steps: u64,
    /// Consecutive overflowing steps at the smallest scale (divergence when it reaches
    /// `train.loss_scale.max_overflows_at_min_scale`).
    #[serde(default)]
    pub overflows_at_min: u64,
}

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
    /// Every epoch's metrics so far.
    pub history: Vec<EpochMetrics>,
    /// Digests of the checkpoint's other files.
    #[serde(default)]
    pub files: BTreeMap<String, FileDigest>,
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
            schedule,
            loss_scale: LossScaleState {
                scale: loss_scale,
                good_steps: 0,
                overflows_at_min: 0,
            },
            best: None,
            history: Vec::new(),
            files: BTreeMap::new(),
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

/// For the kill tests: when `ALEXNET_TEST_PAUSE_AT` is `<point>@<epoch>`, the process
/// says so on stderr (with its pid) and sleeps there for `ALEXNET_TEST_PAUSE_MS`
/// (default 60 s), so that a test can SIGKILL it at that moment, or watch the other
/// ranks of a distributed run time out on it. With `ALEXNET_TEST_PAUSE_RANK` only that
/// rank pauses. Unset (always, outside those tests) it costs one environment lookup per
/// checkpoint and per training step.
pub fn pause_point(point: &str, epoch: usize) {
    let Ok(at) = std::env::var("ALEXNET_TEST_PAUSE_AT") else {
        return;
    };
    let other_rank = std::env::var("ALEXNET_TEST_PAUSE_RANK")
        .ok()
        .and_then(|rank| rank.parse::<usize>().ok())
        .is_some_and(|rank| Some(rank) != crate::distributed::launcher_rank());
    if !other_rank && at == format!("{point}@{epoch}") {
        let ms = std::env::var("ALEXNET_TEST_PAUSE_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(60_000);
        eprintln!("paused at {point}@{epoch} (pid {})", std::process::id());
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// The checkpoints of one run directory.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
    keep_last: usize,
}

/// Folder name of the checkpoint after `epoch`.
pub fn epoch_dir_name(epoch: usize) -> String {
    format!("epoch-{epoch:04}")
}

/// The epoch of a checkpoint folder name ([`epoch_dir_name`]'s inverse).
fn epoch_of_dir_name(name: &str) -> Option<usize> {
    name.strip_prefix("epoch-")?.parse().ok()
}

impl CheckpointStore {
    /// The store in `run_dir/checkpoints`, keeping the newest `keep_last` epoch checkpoints.
    pub fn new(run_dir: &Path, keep_last: usize) -> Self {
        Self {
            dir: run_dir.join("checkpoints"),
            keep_last: keep_last.max(1),
        }
    }

    /// The `checkpoints` folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Epoch checkpoints present, newest first.
    pub fn list(&self) -> Result<Vec<(usize, PathBuf)>> {
        if !self.dir.is_dir() {
            return Ok(Vec::new());
        }
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.dir).at(&self.dir)? {
            let entry = entry.at(&self.dir)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(epoch) = epoch_of_dir_name(&name)
                && entry.path().is_dir()
            {
                found.push((epoch, entry.path()));
            }
        }
        found.sort_by_key(|(epoch, _)| std::cmp::Reverse(*epoch));
        Ok(found)
    }

    /// The checkpoint `latest` names, if any.
    pub fn latest(&self) -> Result<Option<PathBuf>> {
        let pointer = self.dir.join(LATEST_FILE);
        match fs::read_to_string(&pointer) {
            Ok(name) => Ok(Some(self.dir.join(name.trim()))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(TrainError::Io {
                path: pointer,
                source: error,
            }),
        }
    }

    /// Writes a checkpoint for `state.epoch` and points `latest` at it. A crash at any
    /// moment leaves the previous checkpoint and pointer intact. Then prunes this run's
    /// line of checkpoints (see [`CheckpointStore::prune`]).
    pub fn save(&self, state: &TrainerState, model: &[u8], optimizer: &[u8]) -> Result<PathBuf> {
        let name = epoch_dir_name(state.epoch);
        let target = self.write_dir(&name, state, model, Some(optimizer))?;
        pause_point("before-latest", state.epoch);
        self.point_latest(&name)?;
        self.prune(state.epoch)?;
        Ok(target)
    }

    /// Writes the best model so far (weights and state, no optimizer).
    pub fn save_best(&self, state: &TrainerState, model: &[u8]) -> Result<PathBuf> {
        self.write_dir(BEST_DIR, state, model, None)
    }

    fn write_dir(
        &self,
        name: &str,
        state: &TrainerState,
        model: &[u8],
        optimizer: Option<&[u8]>,
    ) -> Result<PathBuf> {
        fs::create_dir_all(&self.dir).at(&self.dir)?;
        let target = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).at(&tmp)?;
        }
        fs::create_dir(&tmp).at(&tmp)?;
        let mut state = state.clone();
        state.files.clear();
        write_synced(&tmp.join(MODEL_FILE), model)?;
        if optimizer.is_some() {
            pause_point("checkpoint-write", state.epoch);
        }
        state.files.insert(MODEL_FILE.into(), FileDigest::of(model));
        if let Some(optimizer) = optimizer {
            write_synced(&tmp.join(OPTIMIZER_FILE), optimizer)?;
            state
                .files
                .insert(OPTIMIZER_FILE.into(), FileDigest::of(optimizer));
        }
        let json =
            serde_json::to_vec_pretty(&state).map_err(|source| TrainError::CheckpointState {
                path: tmp.clone(),
                source,
            })?;
        write_synced(&tmp.join(STATE_FILE), &json)?;
        sync_dir(&tmp)?;
        // An older folder of the same name (a run resumed from before it) moves aside first.
        if target.exists() {
            let old = self.dir.join(format!(".{name}.old"));
            if old.exists() {
                fs::remove_dir_all(&old).at(&old)?;
            }
            fs::rename(&target, &old).at(&target)?;
            fs::rename(&tmp, &target).at(&target)?;
            fs::remove_dir_all(&old).at(&old)?;
        } else {
            fs::rename(&tmp, &target).at(&target)?;
        }
        sync_dir(&self.dir)?;
        Ok(target)
    }

    fn point_latest(&self, name: &str) -> Result<()> {
        write_atomic(&self.dir.join(LATEST_FILE), format!("{name}\n").as_bytes())
    }

    /// Keeps the checkpoint of `epoch` (the one `latest` names) and the `keep_last - 1`
    /// newest before it, and removes the older ones. Checkpoints of later epochs belong
    /// to another line of this run (one that went further before the run was resumed from
    /// an earlier checkpoint): they are never removed, only reported, since neither
    /// they nor the new line is the other's history.
    pub fn prune(&self, epoch: usize) -> Result<()> {
        let listed = self.list()?;
        let stale: Vec<String> = listed
            .iter()
            .filter(|(other, _)| *other > epoch)
            .map(|(_, dir)| dir.display().to_string())
            .collect();
        if !stale.is_empty() {
            tracing::warn!(
                "{} from another line of this run (past epoch {epoch}, which `latest` names) kept; remove them if that line is abandoned",
                stale.join(", ")
            );
        }
        let older = listed.iter().filter(|(other, _)| *other < epoch);
        for (_, dir) in older.skip(self.keep_last - 1) {
            fs::remove_dir_all(dir).at(dir)?;
        }
        Ok(())
    }

    /// Loads and verifies the checkpoint in `dir`.
    pub fn load(dir: &Path) -> Result<Checkpoint> {
        if !dir.is_dir() {
            return Err(checkpoint_error(dir, "not found"));
        }
        let state_path = dir.join(STATE_FILE);
        let text = fs::read(&state_path).map_err(|source| TrainError::CheckpointIo {
            path: state_path.clone(),
            source,
        })?;
        let state: TrainerState =
            serde_json::from_slice(&text).map_err(|source| TrainError::CheckpointState {
                path: state_path.clone(),
                source,
            })?;
        if state.format != FORMAT {
            return Err(checkpoint_error(
                &state_path,
                format!("format {} is not {FORMAT}", state.format),
            ));
        }
        let read_verified = |name: &str| -> Result<Option<Vec<u8>>> {
            let Some(digest) = state.files.get(name) else {
                return Ok(None);
            };
            let path = dir.join(name);
            let bytes = fs::read(&path).map_err(|source| TrainError::CheckpointIo {
                path: path.clone(),
                source,
            })?;
            if FileDigest::of(&bytes) != *digest {
                return Err(checkpoint_error(
                    &path,
                    format!(
                        "damaged: {} bytes with CRC {:08x}, expected {} bytes with CRC {:08x}",
                        bytes.len(),
                        crc32fast::hash(&bytes),
                        digest.bytes,
                        digest.crc32
                    ),
                ));
            }
            Ok(Some(bytes))
        };
        let model =
            read_verified(MODEL_FILE)?.ok_or_else(|| checkpoint_error(dir, "has no model"))?;
        let optimizer = read_verified(OPTIMIZER_FILE)?;
        Ok(Checkpoint {
            dir: dir.to_path_buf(),
            state,
            model,
            optimizer,
        })
    }

    /// The checkpoint a command uses: `checkpoint` when given, else the run's latest
    /// ([`Self::load_latest`]); a run without one is an error saying so.
    pub fn load_given_or_latest(&self, checkpoint: Option<&Path>) -> Result<Checkpoint> {
        match checkpoint {
            Some(path) => Self::load(path),
            None => self.load_latest()?.ok_or_else(|| {
                checkpoint_error(
                    &self.dir,
                    "the run has no checkpoint yet (train it first, or pass --checkpoint)",
                )
            }),
        }
    }

    /// The checkpoint a `--resume auto` continues from: `latest`, or when it is damaged
    /// the newest good one before it, with a warning naming both. `Ok(None)` only when
    /// the run has no checkpoint at all.
    pub fn load_latest(&self) -> Result<Option<Checkpoint>> {
        let listed = self.list()?;
        let latest = self.latest()?;
        let mut candidates: Vec<PathBuf> = Vec::new();
        // Fallbacks come from the line `latest` is on: epochs before it. A later epoch
        // is another line's (see `prune`) and never resumed silently.
        let latest_epoch = latest
            .as_ref()
            .and_then(|dir| epoch_of_dir_name(dir.file_name()?.to_str()?));
        if let Some(latest) = &latest {
            candidates.push(latest.clone());
        }
        for (epoch, dir) in &listed {
            let same_line = latest_epoch.is_none_or(|latest| *epoch < latest);
            if same_line && !candidates.contains(dir) {
                candidates.push(dir.clone());
            }
        }
        if candidates.is_empty() {
            return Ok(None);
        }
        let mut failures: Vec<(PathBuf, String)> = Vec::new();
        for dir in &candidates {
            match Self::load(dir) {
                Ok(checkpoint) => {
                    if let Some((bad, reason)) = failures.first() {
                        let bad: &PathBuf = bad;
                        tracing::warn!(
                            "checkpoint {} is unusable ({reason}); resuming from the previous one, {}",
                            bad.display(),
                            dir.display()
                        );
                    }
                    return Ok(Some(checkpoint));
                }
                Err(error) => failures.push((dir.clone(), error.to_string())),
            }
        }
        let summary = failures
            .iter()
            .map(|(_, reason)| reason.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        Err(checkpoint_error(
            &self.dir,
            format!(
                "no usable checkpoint ({summary}); refusing to restart from epoch 1 — pass --resume never with a new --run-dir to start over"
            ),
        ))
    }
}
