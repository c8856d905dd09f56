//! The crate's error type: every failure names the event file or folder, and keeps its
//! cause.

use std::path::PathBuf;

/// A failure to write or read an event file.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// Creating, writing or reading a file or folder.
    #[error("tensorboard {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Encoding or decoding an event (protobuf).
    #[error("tensorboard {path}: {source}")]
    Protobuf {
        /// The event file.
        path: PathBuf,
        /// protobuf's error.
        #[source]
        source: protobuf::ProtobufError,
    },
    /// Encoding an image summary as PNG.
    #[error("tensorboard {path}: {source}")]
    Image {
        /// The event file.
        path: PathBuf,
        /// The encoder's error.
        #[source]
        source: image::ImageError,
    },
    /// TensorBoard's own reader failed or printed something unexpected.
    #[error("tensorboard {path}: TensorBoard's reader: {reason}")]
    Reader {
        /// The event folder.
        path: PathBuf,
        /// Its error output, or the line it did not understand.
        reason: String,
    },
    /// A record whose framing or checksum is wrong.
    #[error("tensorboard {path}: corrupt record: {what}")]
    Corrupt {
        /// The event file.
        path: PathBuf,
        /// What is wrong (`header CRC`, `short body`, …).
        what: &'static str,
    },
}

/// `Result` with [`EventsError`].
pub type Result<T, E = EventsError> = std::result::Result<T, E>;

/// Attaches a path to I/O errors.
pub(crate) fn io_at(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> EventsError {
    let path = path.into();
    move |source| EventsError::Io { path, source }
}
