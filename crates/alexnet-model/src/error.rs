//! The crate's error type.

/// What can go wrong building, running or loading the model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A configuration value is out of range or missing.
    #[error("invalid value for `{field}`: {reason}")]
    InvalidConfig {
        /// The config key, e.g. `model.conv_dropout`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The input image is smaller than the network can take.
    #[error(
        "input {height}x{width} is too small for AlexNet: the smallest input is {min}x{min} \
         (below it the third max-pool has no output)"
    )]
    InputTooSmall {
        /// Input height.
        height: usize,
        /// Input width.
        width: usize,
        /// The minimum side.
        min: usize,
    },
    /// The input does not have 3 channels.
    #[error("input has {0} channels; AlexNet takes RGB images (3 channels)")]
    WrongChannels(usize),
    /// Saving or loading weights failed, or they do not fit this configuration.
    #[error("model weights {path}: {reason}")]
    Record {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// A PyTorch or safetensors weight file cannot be read, or does not fit the network.
    #[error("weight file {path}: {reason}")]
    Weights {
        /// The file.
        path: std::path::PathBuf,
        /// Why, naming the file's key.
        reason: String,
    },
}

/// `Result` with [`ModelError`].
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
