//! The config file: one TOML file with every section drives preprocessing, training
//! and testing alike. Each section sits beside what it configures ([`TrainConfig`] and
//! [`LoggingConfig`] here, the schedule and loss scaling in [`crate::optim`], the
//! process group in [`crate::distributed`]); [`ExperimentConfig`] gathers them.

mod logging;
mod train;

use std::path::{Path, PathBuf};

use alexnet_augment::AugmentConfig;
use alexnet_model::AlexNetConfig;
use alexnet_prep::{DemoConfig, PrepConfig, PrepOverrides};
pub use logging::LoggingConfig;
use serde::{Deserialize, Serialize};
pub use train::{Precision, Resume, TrainConfig};

pub use crate::distributed::{DistributedBackend, DistributedConfig};
use crate::error::{Result, TrainError, invalid};

/// The examples' flags as plain values: each `Some` replaces the config's value
/// ([`ExperimentConfig::apply`]). With the `cli` feature, the `train_caltech` example's
/// flags (`#[command(flatten)]`; the `[prep]` ones are [`PrepOverrides`]'s).
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct Overrides {
    /// The prepared dataset (output of preprocess_caltech).
    #[cfg_attr(feature = "cli", arg(long))]
    pub data: Option<PathBuf>,
    /// Run directory for checkpoints, logs and TensorBoard. Default: runs/<config name>.
    #[cfg_attr(feature = "cli", arg(long))]
    pub run_dir: Option<PathBuf>,
    /// Total epochs.
    #[cfg_attr(feature = "cli", arg(long))]
    pub epochs: Option<usize>,
    /// Training batch size.
    #[cfg_attr(feature = "cli", arg(long))]
    pub batch_size: Option<usize>,
    /// Device(s): flex, tch-cpu, tch-cuda:0, cuda:0, or a list such as cuda:0,cuda:1.
    #[cfg_attr(feature = "cli", arg(long))]
    pub device: Option<String>,
    /// Compute precision: f32, f16 or bf16 (weights stay f32).
    #[cfg_attr(feature = "cli", arg(long))]
    pub precision: Option<Precision>,
    /// auto (latest checkpoint of the run), never, or a checkpoint folder.
    #[cfg_attr(feature = "cli", arg(long))]
    pub resume: Option<Resume>,
    /// Save a checkpoint every N epochs.
    #[cfg_attr(feature = "cli", arg(long))]
    pub checkpoint_interval: Option<usize>,
    /// Also save a checkpoint every N training steps (a resume continues from that step).
    #[cfg_attr(feature = "cli", arg(long, value_name = "N"))]
    pub checkpoint_every_steps: Option<usize>,
    /// Also save a checkpoint every N minutes (checked after each step).
    #[cfg_attr(feature = "cli", arg(long, value_name = "N"))]
    pub checkpoint_every_minutes: Option<f64>,
    /// Seed of shuffling, augmentation, dropout and initialization.
    #[cfg_attr(feature = "cli", arg(long))]
    pub seed: Option<u64>,
    /// Start a new run from these weights: a PyTorch state_dict or checkpoint
    /// (torchvision's alexnet, the original's model.py) or safetensors. A resumed run
    /// ignores it.
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub init_from: Option<PathBuf>,
    /// With --init-from: a fresh last layer for this dataset's classes (fine-tuning).
    #[cfg_attr(feature = "cli", arg(long))]
    pub new_classifier: bool,
    /// Data-parallel training across processes: none, or mpi (started by mpirun; a build
    /// with the `mpi` feature).
    #[cfg_attr(feature = "cli", arg(long, value_name = "none|mpi"))]
    pub distributed: Option<DistributedBackend>,
    /// Seconds a rank waits for the others at a gradient or metric exchange before it
    /// ends the job, naming the ranks it did not hear from.
    #[cfg_attr(feature = "cli", arg(long, value_name = "SECONDS"))]
    pub distributed_timeout: Option<f64>,
    /// The `[prep]` section's.
    #[cfg_attr(feature = "cli", arg(skip))]
    pub prep: PrepOverrides,
}

/// The text of `configs/demo.toml`.
pub const DEMO_TOML: &str = include_str!("demo.toml");

/// A whole config file: `[prep]`, `[demo]`, `[augment]`, `[model]`, `[train]`,
/// `[logging]`, `[distributed]`. Every section is optional and defaults to the original post's settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExperimentConfig {
    /// Preprocessing.
    pub prep: PrepConfig,
    /// The built-in demo dataset, used when no data is configured.
    pub demo: DemoConfig,
    /// Augmentation pipelines.
    pub augment: AugmentConfig,
    /// The network.
    pub model: AlexNetConfig,
    /// Training.
    pub train: TrainConfig,
    /// Logging.
    pub logging: LoggingConfig,
    /// Training over several processes (MPI).
    pub distributed: DistributedConfig,
}

impl ExperimentConfig {
    /// Parses a config file; unknown keys and wrong types are errors naming the key.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self> {
        toml::from_str(text).map_err(|error| TrainError::ConfigFile {
            path: path.to_path_buf(),
            reason: error.to_string().trim().replace('\n', " "),
        })
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| TrainError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// The config as TOML (what goes in the run directory's `config.toml`).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self)
            .map_err(|error| invalid("config", format!("cannot be written as TOML: {error}")))
    }

    /// The built-in demo's settings (`configs/demo.toml`, built into the library: a
    /// test keeps the two identical).
    pub fn demo() -> Self {
        Self::from_toml(DEMO_TOML, Path::new("configs/demo.toml"))
            .expect("the built-in demo config parses (tested)")
    }

    /// The file given, else the demo's settings where `demo`, else the defaults (the
    /// original post's settings).
    pub fn load_or_demo(file: Option<&Path>, demo: bool) -> Result<Self> {
        match file {
            Some(path) => Self::load(path),
            None if demo => Ok(Self::demo()),
            None => Ok(Self::default()),
        }
    }

    /// Replaces the values `overrides` sets.
    pub fn apply(&mut self, overrides: &Overrides) {
        let o = overrides.clone();
        let train = &mut self.train;
        train.data = o.data.or(train.data.take());
        train.run_dir = o.run_dir.or(train.run_dir.take());
        train.epochs = o.epochs.unwrap_or(train.epochs);
        train.batch_size = o.batch_size.unwrap_or(train.batch_size);
        train.device = o.device.unwrap_or(std::mem::take(&mut train.device));
        train.precision = o.precision.unwrap_or(train.precision);
        train.resume = o.resume.unwrap_or(std::mem::take(&mut train.resume));
        train.checkpoint_interval = o.checkpoint_interval.unwrap_or(train.checkpoint_interval);
        if o.checkpoint_every_steps.is_some() {
            train.checkpoint_every_steps = o.checkpoint_every_steps;
        }
        if o.checkpoint_every_minutes.is_some() {
            train.checkpoint_every_minutes = o.checkpoint_every_minutes;
        }
        train.seed = o.seed.unwrap_or(train.seed);
        train.init_from = o.init_from.or(train.init_from.take());
        train.new_classifier |= o.new_classifier;
        let distributed = &mut self.distributed;
        distributed.backend = o.distributed.unwrap_or(distributed.backend);
        distributed.timeout_secs = o.distributed_timeout.unwrap_or(distributed.timeout_secs);
        self.prep.apply(&o.prep);
    }

    /// This config checked once, as the trainer takes it ([`CheckedConfig`]).
    pub fn check(self) -> Result<CheckedConfig> {
        self.validate()?;
        Ok(CheckedConfig(self))
    }

    /// Checks every section that can be checked without data.
    pub fn validate(&self) -> Result<()> {
        self.train.validate()?;
        crate::device::parse_devices(&self.train.device)?;
        self.logging.validate()?;
        self.model.validate()?;
        self.distributed.validate()?;
        Ok(())
    }
}

/// A config whose every section has been checked ([`ExperimentConfig::check`]), once:
/// what the trainer takes, so that nothing downstream checks it again. It reads as an
/// [`ExperimentConfig`]; only what checking does not cover (the dataset path, resolved
/// when the run starts) can still change.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedConfig(ExperimentConfig);

impl std::ops::Deref for CheckedConfig {
    type Target = ExperimentConfig;

    fn deref(&self) -> &ExperimentConfig {
        &self.0
    }
}

impl CheckedConfig {
    /// The config, no longer vouched for.
    pub fn into_inner(self) -> ExperimentConfig {
        self.0
    }

    /// The config for resolving its dataset path (`commands::resolve_data`), which no
    /// check covers.
    pub(crate) fn unchecked_mut(&mut self) -> &mut ExperimentConfig {
        &mut self.0
    }
}
