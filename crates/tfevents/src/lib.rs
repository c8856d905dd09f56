//! TensorBoard event files for any Rust trainer: a writer and the reader that checks it.
//!
//! ```
//! use tfevents::{EventWriter, read_event_dir};
//!
//! let dir = tempfile::tempdir()?;
//! let mut board = EventWriter::create(dir.path(), "my-trainer")?;
//! board.session_start(0)?;
//! board.scalar("loss/train", 0.5, 1)?;
//! board.flush()?;
//! // A restarted run marks its first step; TensorBoard then drops the points at that step
//! // and after that the interrupted run wrote (PyTorch's `purge_step`).
//! let mut restarted = EventWriter::create(dir.path(), "my-trainer")?;
//! restarted.session_start(1)?;
//! restarted.scalar("loss/train", 0.4, 1)?;
//! restarted.flush()?;
//! let log = read_event_dir(dir.path())?;
//! assert_eq!(log.scalars["loss/train"], vec![(1, 0.4)]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! tensorboard-rs's own `SummaryWriter` is not used, only its record framing and the
//! protobuf types: it names files by the second (two writers in one second erase each
//! other), panics on I/O errors, and its image call swaps width and height. Here each
//! writer owns a file whose name sorts after every existing one, every error is
//! returned, and [`read_event_dir`] reads a folder with the TensorBoard server's rules
//! (its `plugin_event_accumulator`), so a trainer can test what a user will see
//! ([`Accumulator`] runs TensorBoard's own reader, where a Python with it is at hand). Burn's
//! own training crate has no TensorBoard writer; this one depends on no deep-learning
//! crate.

mod accumulator;
mod error;
mod reader;
mod writer;

pub use accumulator::Accumulator;
pub use error::{EventsError, Result};
pub use reader::{EventLog, read_event_dir, session_starts};
pub use writer::{EventWriter, GraphNode};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
