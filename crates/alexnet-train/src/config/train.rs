//! The `[train]` section: the run's hyper-parameters, devices and files, checked once.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{
    error::{Result, invalid},
    metrics::EpochMetrics,
    optim::{
        AdamWParams, EarlyStop, EarlyStoppingConfig, LossScaleConfig, OptimizerKind,
        SchedulerConfig, sgd_optimizer,
    },
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
    /// `sgd` (the original's) or `adamw`.
    pub optimizer: OptimizerKind,
    /// AdamW's β1, β2 (PyTorch's defaults).
    pub betas: [f64; 2],
    /// AdamW's ε (PyTorch's default).
    pub eps: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// SGD dampening (PyTorch's default 0; Burn's default would be 0.1).
    pub dampening: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// Weight decay: for SGD L2, added to the gradient before momentum (as PyTorch);
    /// for AdamW decoupled, `p ← p · (1 − lr · weight_decay)`.
    pub weight_decay: f64,
    /// Label smoothing ε of the training loss, as PyTorch's `F.cross_entropy(…,
    /// label_smoothing=ε)`: 0 (the original's) to below 1. The validation loss stays
    /// the plain negative log-likelihood.
    pub label_smoothing: f64,
    /// Clip the gradients to this global 2-norm before each step, as PyTorch's
    /// `clip_grad_norm_`; none by default (the original's).
    pub clip_grad_norm: Option<f64>,
    /// The learning-rate schedule, stepped once per epoch.
    pub scheduler: SchedulerConfig,
    /// Ends the run once a metric has stopped improving (`[train.early_stopping]`);
    /// none by default.
    pub early_stopping: Option<EarlyStoppingConfig>,
    /// Save a checkpoint every this many epochs (and at the end).
    pub checkpoint_interval: usize,
    /// Epoch checkpoints kept (the newest); the best model is kept separately.
    pub keep_last: usize,
    /// Also save a checkpoint every this many training steps (batches), inside epochs:
    /// a resume continues from that step exactly. None by default.
    pub checkpoint_every_steps: Option<usize>,
    /// Also save a checkpoint when this many minutes have passed since the last one
    /// (checked after each step). None by default.
    pub checkpoint_every_minutes: Option<f64>,
    /// Step checkpoints kept (the newest); an epoch checkpoint removes those it
    /// supersedes.
    pub keep_last_steps: usize,
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
            optimizer: OptimizerKind::Sgd,
            betas: [0.9, 0.999],
            eps: 1e-8,
            momentum: 0.9,
            dampening: 0.0,
            nesterov: true,
            weight_decay: 5e-4,
            label_smoothing: 0.0,
            clip_grad_norm: None,
            scheduler: SchedulerConfig::default(),
            early_stopping: None,
            checkpoint_interval: 10,
            keep_last: 3,
            checkpoint_every_steps: None,
            checkpoint_every_minutes: None,
            keep_last_steps: 2,
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

/// `value` must be a finite number above 0; the error names `key`.
fn positive(key: &'static str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        return Ok(());
    }
    Err(invalid(key, format!("{value} is not a positive number")))
}

/// `value` must be in [0, 1); the error names `key`.
fn below_one(key: &'static str, value: f64) -> Result<()> {
    if (0.0..1.0).contains(&value) {
        return Ok(());
    }
    Err(invalid(key, format!("{value} is not in [0, 1)")))
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

    /// The configured optimizer, fresh (no state yet).
    pub fn build_optimizer(&self) -> burn::optim::ModuleOptimizer {
        match self.optimizer {
            OptimizerKind::Sgd => sgd_optimizer(self.sgd()),
            OptimizerKind::Adamw => AdamWParams {
                betas: self.betas,
                eps: self.eps,
                weight_decay: self.weight_decay,
            }
            .init(),
        }
    }

    /// Whether `early_stopping` ends the run after the epochs of `history`.
    pub fn early_stop(&self, history: &[EpochMetrics]) -> Option<EarlyStop> {
        self.early_stopping.as_ref()?.check(history)
    }

    /// The first device of [`TrainConfig::device`]: evaluation and classification run
    /// on one.
    pub fn first_device(&self) -> &str {
        self.device.split(',').next().unwrap_or_default()
    }

    /// Checks AdamW's values, label smoothing and clipping.
    fn validate_optimizer(&self) -> Result<()> {
        if self.betas.iter().any(|beta| !(0.0..1.0).contains(beta)) {
            return Err(invalid(
                "train.betas",
                format!("{:?} are not both in [0, 1)", self.betas),
            ));
        }
        positive("train.eps", self.eps)?;
        below_one("train.label_smoothing", self.label_smoothing)?;
        if let Some(max_norm) = self.clip_grad_norm {
            positive("train.clip_grad_norm", max_norm)?;
        }
        Ok(())
    }

    /// Checks the checkpoint settings.
    fn validate_checkpoints(&self) -> Result<()> {
        if self.checkpoint_interval == 0 {
            return Err(invalid("train.checkpoint_interval", "must be at least 1"));
        }
        if self.keep_last == 0 {
            return Err(invalid(
                "train.keep_last",
                "must be at least 1 (a resume needs a checkpoint)",
            ));
        }
        if self.checkpoint_every_steps == Some(0) {
            return Err(invalid(
                "train.checkpoint_every_steps",
                "must be at least 1 (leave it out for no step checkpoints)",
            ));
        }
        if let Some(minutes) = self.checkpoint_every_minutes
            && !(minutes.is_finite() && minutes > 0.0)
        {
            return Err(invalid(
                "train.checkpoint_every_minutes",
                format!("{minutes} is not a positive number of minutes"),
            ));
        }
        if self.keep_last_steps == 0 {
            return Err(invalid("train.keep_last_steps", "must be at least 1"));
        }
        Ok(())
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
        positive("train.lr", self.lr)?;
        below_one("train.momentum", self.momentum)?;
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
        self.validate_optimizer()?;
        self.validate_checkpoints()?;
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
        self.loss_scale.validate()?;
        if let Some(stopping) = &self.early_stopping {
            stopping.validate()?;
        }
        self.scheduler.validate()
    }
}
