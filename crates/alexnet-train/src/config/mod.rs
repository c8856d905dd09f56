//! The config file: one TOML file with every section drives preprocessing, training
//! and testing alike.
//! and testing alike.
//!
//! Over 400 lines: every section's fields with their documentation and validation, and
//! the command-line overrides that mirror them.

use std::path::{Path, PathBuf};

use alexnet_augment::AugmentConfig;
use alexnet_model::AlexNetConfig;
use alexnet_prep::{DemoConfig, PrepConfig, PrepOverrides};
use serde::{Deserialize, Serialize};

use crate::{
    error::{Result, TrainError, invalid},
    schedule::SchedulerConfig,
};

/// Floating-point precision of the forward and backward passes. Weights and optimizer
/// state stay `f32` whatever is chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Single precision throughout.
    #[default]
    F32,
    /// Half precision compute with dynamic loss scaling.
    F16,
    /// bfloat16 compute (no loss scaling needed: it has f32's exponent range).
    Bf16,
}

impl Precision {
    /// The compute dtype.
    pub fn float_dtype(self) -> burn::tensor::FloatDType {
        match self {
            Self::F32 => burn::tensor::FloatDType::F32,
            Self::F16 => burn::tensor::FloatDType::F16,
            Self::Bf16 => burn::tensor::FloatDType::BF16,
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        match text {
            "f32" => Ok(Self::F32),
            "f16" => Ok(Self::F16),
            "bf16" => Ok(Self::Bf16),
            other => Err(format!(
                "unknown precision `{other}` (expected f32, f16 or bf16)"
            )),
        }
    }
}

/// Where a run starts from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resume {
    /// Continue from the run directory's latest checkpoint if there is one.
    #[default]
    Auto,
    /// Start from scratch; refused if the run directory already holds checkpoints.
    Never,
    /// Continue from this checkpoint folder.
    #[serde(untagged)]
    Path(PathBuf),
}

impl std::str::FromStr for Resume {
    type Err = String;
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        Ok(match text {
            "auto" => Self::Auto,
            "never" => Self::Never,
            path => Self::Path(PathBuf::from(path)),
        })
    }
}

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

/// How a run spreads over processes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DistributedBackend {
    /// One process (its devices may still be several: `train.device`).
    #[default]
    None,
    /// One process per rank, started by `mpirun`, gradients all-reduced through MPI.
    Mpi,
}

impl std::str::FromStr for DistributedBackend {
    type Err = String;
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        match text {
            "none" => Ok(Self::None),
            "mpi" => Ok(Self::Mpi),
            other => Err(format!(
                "unknown distributed backend `{other}` (expected none or mpi)"
            )),
        }
    }
}

/// The `[distributed]` section: data-parallel training over several processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DistributedConfig {
    /// `none` or `mpi`.
    pub backend: DistributedBackend,
    /// Seconds a rank waits at an exchange for the others (a rank that died or hangs)
    /// before it ends the job on every rank. It must exceed the longest time one rank
    /// works alone: rank 0 writing a checkpoint or, at start-up, the demo dataset.
    pub timeout_secs: f64,
    /// Gradients are all-reduced in fused buffers of about this many MiB (a parameter
    /// larger than this is a buffer of its own).
    pub bucket_mib: usize,
}

impl Default for DistributedConfig {
    fn default() -> Self {
        Self {
            backend: DistributedBackend::None,
            timeout_secs: 600.0,
            bucket_mib: 64,
        }
    }
}

impl DistributedConfig {
    /// Checks the values; errors name the key.
    pub fn validate(&self) -> Result<()> {
        if !(self.timeout_secs.is_finite() && self.timeout_secs > 0.0) {
            return Err(invalid(
                "distributed.timeout_secs",
                format!("{} is not a positive number of seconds", self.timeout_secs),
            ));
        }
        if self.bucket_mib == 0 {
            return Err(invalid("distributed.bucket_mib", "must be at least 1"));
        }
        Ok(())
    }
}

/// Dynamic loss scaling for `f16` (as PyTorch's `GradScaler`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossScaleConfig {
    /// Starting scale.
    pub initial: f32,
    /// Multiplier after `growth_interval` steps without overflow.
    pub growth_factor: f32,
    /// Multiplier when a step overflows (the step is skipped).
    pub backoff_factor: f32,
    /// Clean steps between growths.
    pub growth_interval: u64,
    /// Consecutive steps that may overflow at the smallest scale ([`MIN_LOSS_SCALE`])
    /// before the run stops as diverged: there, scaling down can no longer help.
    pub max_overflows_at_min_scale: u64,
}

/// The smallest f16 loss scale: backing off stops here.
pub const MIN_LOSS_SCALE: f32 = 1.0;

impl Default for LossScaleConfig {
    fn default() -> Self {
        Self {
            initial: 65536.0,
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 2000,
            max_overflows_at_min_scale: 20,
        }
    }
}

/// The `[train]` section. Defaults are the original's (`train.py`, `properties.py`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// The prepared dataset (preprocessing output). Falls back to `prep.output`; with
    /// neither, the built-in demo dataset is generated and used.
    pub data: Option<PathBuf>,
    /// Run directory (checkpoints, logs, TensorBoard). Default `runs/<config name>`.
    pub run_dir: Option<PathBuf>,
    /// Epochs to train in total (a resumed run continues up to this).
    pub epochs: usize,
    /// Training batch size (the last partial batch is dropped, as the original).
    pub batch_size: usize,
    /// Evaluation batch size (does not change results).
    pub eval_batch_size: usize,
    /// Initial learning rate.
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// SGD dampening (PyTorch's default 0; Burn's default would be 0.1).
    pub dampening: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 weight decay, added to the gradient before momentum (as PyTorch).
    pub weight_decay: f64,
    /// The learning-rate schedule, stepped once per epoch.
    pub scheduler: SchedulerConfig,
    /// Save a checkpoint every this many epochs (and at the end).
    pub checkpoint_interval: usize,
    /// Epoch checkpoints kept (the newest); the best model is kept separately.
    pub keep_last: usize,
    /// Device(s): `flex`, `tch-cpu`, `tch-cuda:0`, `cuda:0`, `cuda:0,cuda:1`.
    pub device: String,
    /// Compute precision.
    pub precision: Precision,
    /// Loss scaling for `f16`.
    pub loss_scale: LossScaleConfig,
    /// Seed of shuffling, augmentation, dropout and initialization.
    pub seed: u64,
    /// Where to start from.
    pub resume: Resume,
    /// Weights a new run starts from (PyTorch `torch.save` file or safetensors, with
    /// torchvision's or the original's key names); a resumed run ignores it.
    pub init_from: Option<PathBuf>,
    /// With `init_from`: the last layer starts afresh, for a dataset with other classes.
    pub new_classifier: bool,
    /// Batches prepared ahead of the training step.
    pub prefetch: usize,
    /// Threads decoding and augmenting images; 0 uses every core.
    pub loader_threads: usize,
    /// How many augmented training images go into the TensorBoard grid at start-up.
    pub preview_images: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            data: None,
            run_dir: None,
            epochs: 100,
            batch_size: 256,
            eval_batch_size: 64,
            lr: 0.01,
            momentum: 0.9,
            dampening: 0.0,
            nesterov: true,
            weight_decay: 5e-4,
            scheduler: SchedulerConfig::default(),
            checkpoint_interval: 10,
            keep_last: 3,
            device: crate::device::DEFAULT_DEVICE.to_string(),
            precision: Precision::F32,
            loss_scale: LossScaleConfig::default(),
            seed: 42,
            resume: Resume::Auto,
            init_from: None,
            new_classifier: false,
            prefetch: 2,
            loader_threads: 0,
            preview_images: 16,
        }
    }
}

impl TrainConfig {
    /// The optimizer's hyper-parameters.
    pub fn sgd(&self) -> alexnet_kernels::SgdParams {
        alexnet_kernels::SgdParams {
            momentum: self.momentum,
            dampening: self.dampening,
            nesterov: self.nesterov,
            weight_decay: self.weight_decay,
        }
    }

    /// Checks every value that can be checked without the data; errors name the key.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(invalid("train.epochs", "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(invalid("train.batch_size", "must be at least 1"));
        }
        if self.eval_batch_size == 0 {
            return Err(invalid("train.eval_batch_size", "must be at least 1"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(invalid(
                "train.lr",
                format!("{} is not a positive number", self.lr),
            ));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(invalid(
                "train.momentum",
                format!("{} is not in [0, 1)", self.momentum),
            ));
        }
        if !(0.0..=1.0).contains(&self.dampening) {
            return Err(invalid(
                "train.dampening",
                format!("{} is not in [0, 1]", self.dampening),
            ));
        }
        if self.nesterov && (self.momentum == 0.0 || self.dampening != 0.0) {
            return Err(invalid(
                "train.nesterov",
                "Nesterov momentum needs momentum > 0 and dampening 0 (as PyTorch)",
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(invalid(
                "train.weight_decay",
                format!("{} is not a non-negative number", self.weight_decay),
            ));
        }
        if self.checkpoint_interval == 0 {
            return Err(invalid("train.checkpoint_interval", "must be at least 1"));
        }
        if self.keep_last == 0 {
            return Err(invalid(
                "train.keep_last",
                "must be at least 1 (a resume needs a checkpoint)",
            ));
        }
        if self.prefetch == 0 {
            return Err(invalid("train.prefetch", "must be at least 1"));
        }
        match &self.init_from {
            None if self.new_classifier => {
                return Err(invalid(
                    "train.new_classifier",
                    "replaces the last layer of the weights in train.init_from (--init-from FILE), which is not set",
                ));
            }
            Some(path) if !path.is_file() => {
                return Err(invalid(
                    "train.init_from",
                    format!("{} is not a file", path.display()),
                ));
            }
            _ => {}
        }
        let scale = &self.loss_scale;
        if !(scale.initial.is_finite() && scale.initial >= 1.0) {
            return Err(invalid(
                "train.loss_scale.initial",
                format!("{} is not >= 1", scale.initial),
            ));
        }
        if !(scale.growth_factor > 1.0 && scale.growth_factor.is_finite()) {
            return Err(invalid("train.loss_scale.growth_factor", "must be > 1"));
        }
        if !(scale.backoff_factor > 0.0 && scale.backoff_factor < 1.0) {
            return Err(invalid(
                "train.loss_scale.backoff_factor",
                "must be in (0, 1)",
            ));
        }
        if scale.growth_interval == 0 {
            return Err(invalid(
                "train.loss_scale.growth_interval",
                "must be at least 1",
            ));
        }
        if scale.max_overflows_at_min_scale == 0 {
            return Err(invalid(
                "train.loss_scale.max_overflows_at_min_scale",
                "must be at least 1",
            ));
        }
        self.scheduler.validate()
    }
}

/// The `[logging]` section (the original's LOGFILE / LOGLEVEL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// Log file name inside the run directory.
    pub file: String,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            file: "train.log".into(),
            level: "info".into(),
        }
    }
}

impl LoggingConfig {
    /// The level as a tracing filter; an error names the key.
    pub fn level_filter(&self) -> Result<tracing::Level> {
        self.level.parse().map_err(|_| {
            invalid(
                "logging.level",
                format!(
                    "`{}` is not one of error, warn, info, debug, trace",
                    self.level
                ),
            )
        })
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        self.level_filter()?;
        let plain = Path::new(&self.file).components().count() == 1
            && !self.file.is_empty()
            && self.file != "..";
        if !plain {
            return Err(invalid(
                "logging.file",
                format!(
                    "`{}` must be a plain file name (it goes in the run directory)",
                    self.file
                ),
            ));
        }
        Ok(())
    }
}

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

    /// The config a command starts from: the file given, else `fallback` (TOML text and
    /// the name it is known by, such as the built-in demo's), else the defaults.
    pub fn load_or(file: Option<&Path>, fallback: Option<(&str, &Path)>) -> Result<Self> {
        match (file, fallback) {
            (Some(path), _) => Self::load(path),
            (None, Some((text, origin))) => Self::from_toml(text, origin),
            (None, None) => Ok(Self::default()),
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
        train.seed = o.seed.unwrap_or(train.seed);
        train.init_from = o.init_from.or(train.init_from.take());
        train.new_classifier |= o.new_classifier;
        let distributed = &mut self.distributed;
        distributed.backend = o.distributed.unwrap_or(distributed.backend);
        distributed.timeout_secs = o.distributed_timeout.unwrap_or(distributed.timeout_secs);
        self.prep.apply(&o.prep);
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
