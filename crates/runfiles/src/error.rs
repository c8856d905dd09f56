//! The crate's error type: each message names the file or folder at fault and keeps its
//! cause.

use std::path::PathBuf;

/// A checkpoint that cannot be written or trusted.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing a file or folder of the store.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The state file could not be written or parsed.
    #[error("checkpoint {path}: state unreadable: {source}")]
    State {
        /// The state file (or the folder being written).
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A file whose length or CRC is not the one the state file records.
    #[error(
        "checkpoint {path}: damaged: {bytes} bytes with CRC {crc32:08x}, expected {expected_bytes} bytes with CRC {expected_crc32:08x}"
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// Its length.
        bytes: u64,
        /// Its CRC-32.
        crc32: u32,
        /// The recorded length.
        expected_bytes: u64,
        /// The recorded CRC-32.
        expected_crc32: u32,
    },
    /// The checkpoint folder is not there.
    #[error("checkpoint {0}: not found")]
    NotFound(PathBuf),
    /// Every candidate for the latest checkpoint failed to load.
    #[error(
        "checkpoint {dir}: no usable checkpoint ({reasons}); refusing to restart from the beginning"
    )]
    NoUsable {
        /// The store's folder.
        dir: PathBuf,
        /// Why each candidate failed, `; `-separated.
        reasons: String,
    },
}

/// `Result` with [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Attaches a path to I/O errors.
pub(crate) trait IoAt<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoAt<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| StoreError::Io {
            path: path.into(),
            source,
        })
    }
}
