//! The crate's error type.

use std::path::PathBuf;

/// Everything that stops a training or evaluation run. Each message is one line that
/// names the config key, flag or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A config value is out of range, missing or inconsistent.
    #[error("invalid value for `{field}`: {reason}")]
    InvalidConfig {
        /// The config key or flag, e.g. `train.batch_size`.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A config file could not be parsed (unknown key, wrong type, bad TOML).
    #[error("config file {path}: {reason}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// The parser's message (it names the key and line).
        reason: String,
    },
    /// The requested device is unknown or its backend is not compiled in.
    #[error("device `{spec}`: {reason}")]
    Device {
        /// The device string as given.
        spec: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The data folder is missing or not a prepared dataset.
    #[error("data: {0}")]
    Data(#[from] alexnet_prep::PrepError),
    /// An augmentation pipeline is invalid.
    #[error("augment: {0}")]
    Augment(#[from] alexnet_augment::AugmentError),
    /// The model config is invalid or weights do not fit it.
    #[error("model: {0}")]
    Model(#[from] alexnet_model::ModelError),
    /// An image of the prepared dataset could not be loaded.
    #[error("image {path}: {source}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// Why.
        #[source]
        source: LoadCause,
    },
    /// The data loader failed.
    #[error("data loader: {0}")]
    Loader(#[source] burn::data::dataset::DatasetError),
    /// Training diverged: a loss, gradient, parameter or validation output became NaN or
    /// infinite, or f16 could not make a step even at the smallest loss scale. Raised
    /// before anything non-finite is evaluated, checkpointed or marked best.
    #[error(
        "{what} at epoch {epoch}, batch {batch} (global step {step}); \
         training stopped, the last good checkpoint is {last_checkpoint}"
    )]
    NonFinite {
        /// What became non-finite, e.g. `loss became NaN`.
        what: String,
        /// Epoch (1-based).
        epoch: usize,
        /// Batch within the epoch (1-based).
        batch: usize,
        /// Global optimizer step (of the failed step, or the last one taken).
        step: u64,
        /// What a resume would start from.
        last_checkpoint: String,
    },
    /// A checkpoint is missing, damaged or belongs to another configuration.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint folder or file.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// Writing or reading TensorBoard events failed.
    #[error(transparent)]
    TensorBoard(#[from] tfevents::EventsError),
    /// An I/O error on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint could not be written, read or verified.
    #[error(transparent)]
    Store(#[from] runfiles::StoreError),
    /// A checkpoint's model or optimizer record could not be read.
    #[error("checkpoint {path}: {what} unreadable: {source}")]
    CheckpointRecord {
        /// The checkpoint folder.
        path: PathBuf,
        /// `model weights` or `optimizer state`.
        what: &'static str,
        /// Burn's error.
        #[source]
        source: burn::store::RecordError,
    },
    /// A model or optimizer could not be serialized.
    #[error("serializing {what}: {source}")]
    Record {
        /// What was being serialized.
        what: &'static str,
        /// Burn's error.
        #[source]
        source: burn::store::RecordError,
    },
    /// Reading a tensor back from its device failed.
    #[error("reading {what} back from the device: {source}")]
    TensorRead {
        /// What was being read.
        what: &'static str,
        /// Burn's error.
        #[source]
        source: burn::tensor::TensorReadError,
    },
    /// A CSV file could not be written.
    #[error("csv: {0}")]
    Csv(#[from] csv::Error),
    /// A thread computing a shard of the batch on another device panicked.
    #[error("a device thread computing part of the batch panicked (see the message above)")]
    ShardPanicked,
    /// The ranks of a distributed run could not start together or disagree (another
    /// checkpoint, a failed start on one rank).
    #[error("rank {rank}: {reason}")]
    Distributed {
        /// The rank reporting it.
        rank: usize,
        /// What went wrong.
        reason: String,
    },
    /// A step failed after taking the model (a bug: the model cannot be recovered).
    #[error("the model was lost by a failed step")]
    ModelLost,
}

/// Why an image could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadCause {
    /// Reading the file.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Decoding it.
    #[error(transparent)]
    Decode(#[from] alexnet_prep::DecodeError),
    /// Augmenting it.
    #[error(transparent)]
    Augment(#[from] alexnet_augment::AugmentError),
    /// Bringing it to the processed size (`classify`, which takes raw images).
    #[error("resizing: {0}")]
    Resize(String),
}

/// `Result` with [`TrainError`].
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

/// Attaches a path to I/O errors.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| TrainError::Io {
            path: path.into(),
            source,
        })
    }
}

pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> TrainError {
    TrainError::InvalidConfig {
        field,
        reason: reason.into(),
    }
}
