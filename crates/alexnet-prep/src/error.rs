//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while preparing or reading a dataset.
///
/// Problems with single images (corrupt, truncated, not an image) are not errors: they
/// are skipped and listed in the [`PrepReport`](crate::PrepReport). Errors are reserved
/// for problems that make the whole run meaningless.
#[derive(Debug, thiserror::Error)]
pub enum PrepError {
    /// A configuration value is out of range or missing.
    #[error("invalid value for `{field}`: {reason}")]
    InvalidConfig {
        /// The config key or CLI flag, e.g. `prep.val_split`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The input folder does not exist or is not a folder.
    #[error("input folder {0} does not exist or is not a folder")]
    MissingInput(PathBuf),
    /// The input folder holds no class folder.
    #[error("input folder {0} holds no class folders (expected one sub-folder per class)")]
    NoClasses(PathBuf),
    /// The output folder would be inside the input folder (or the same folder).
    #[error(
        "output folder {output} is inside the input folder {input}; choose a folder outside it"
    )]
    OutputInsideInput {
        /// The input folder.
        input: PathBuf,
        /// The output folder.
        output: PathBuf,
    },
    /// The output folder already holds files and overwriting was not asked for.
    #[error(
        "output folder {0} is not empty; pass --overwrite to replace a previous preprocessing run"
    )]
    OutputNotEmpty(PathBuf),
    /// `--overwrite` was given but the folder does not look like one of our outputs.
    #[error(
        "refusing to overwrite {0}: it is not empty and was not written by alexnet-prep (no {marker} file)",
        marker = crate::format::MARKER_FILE
    )]
    NotAPrepOutput(PathBuf),
    /// Some classes have too few images for one in each split.
    #[error(
        "too few images for one in each of {splits} ({rule}): {classes}; lower the split, or remove the class folders"
    )]
    TooFewImages {
        /// The splits each class must fill, e.g. `train, val, test`.
        splits: String,
        /// The settings that ask for them.
        rule: String,
        /// The classes, each with its count and the count needed (the first ten).
        classes: String,
    },
    /// The class folders of a presplit input differ between splits.
    #[error("{split}/ and train/ hold different classes: {differences}")]
    ClassMismatch {
        /// The split that differs from `train/`.
        split: crate::Split,
        /// The classes each side lacks.
        differences: String,
    },
    /// Every candidate file failed to decode.
    #[error("no image in {0} could be decoded; see the skipped files in the report")]
    NoImages(PathBuf),
    /// A processed dataset file is malformed.
    #[error("{path}:{line}: {reason}")]
    Malformed {
        /// The file that is malformed.
        path: PathBuf,
        /// 1-based line number (0 when the problem is not tied to a line).
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// An I/O error on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The path the operation was on.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An image of a processed dataset is unreadable.
    #[error("{path}: {source}")]
    Image {
        /// The image.
        path: PathBuf,
        /// What the decoder said.
        #[source]
        source: image::ImageError,
    },
    /// Building the worker thread pool failed.
    #[error("could not start {jobs} worker threads: {source}")]
    ThreadPool {
        /// Requested number of threads.
        jobs: usize,
        /// Why it failed.
        #[source]
        source: rayon::ThreadPoolBuildError,
    },
    /// A stop was requested (SIGINT or SIGTERM) while images were being processed.
    #[error(
        "stopped by {signal_name}: {} is incomplete and marked so (a training run refuses it); run the same command with --overwrite to preprocess again",
        output.display()
    )]
    Stopped {
        /// The signal's number.
        signal: i32,
        /// Its name.
        signal_name: String,
        /// The output folder left incomplete.
        output: PathBuf,
    },
}

/// `Result` with [`PrepError`].
pub type Result<T, E = PrepError> = std::result::Result<T, E>;

/// Attaches a path to an I/O error.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| PrepError::Io {
            path: path.into(),
            source,
        })
    }
}
