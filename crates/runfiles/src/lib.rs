//! Crash-safe run files for training programs: what a run writes survives a crash at any
//! moment, and what it reads back is verified.
//!
//! ```
//! use runfiles::Store;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct State { epoch: usize, loss: f64 }
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::new(dir.path(), "epoch-", 2);
//! for epoch in 1..=3 {
//!     let weights = vec![epoch as u8; 16];
//!     store.save(epoch, &State { epoch, loss: 1.0 / epoch as f64 }, &[("model.bin", &weights)])?;
//! }
//! assert_eq!(store.list()?.len(), 2); // the newest two are kept
//! // The newest checkpoint, its files' CRCs checked; a damaged one falls back to the
//! // one before it.
//! let latest = store.load_latest(|loaded: runfiles::Loaded<State>| Ok(loaded))?.unwrap();
//! assert_eq!(latest.state.epoch, 3);
//! assert_eq!(latest.files["model.bin"], vec![3u8; 16]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`atomic`]: a file goes to a hidden temporary name and is renamed into place, flushed
//! to disk first where it must survive a power loss. [`Store`]: numbered checkpoint
//! folders, each written under a temporary name and renamed, a state file of any serde
//! type recording a CRC per file, a `latest` pointer, retention of the newest few, and a
//! fallback to the newest good one. [`StopRequest`]: a graceful stop on SIGINT or
//! SIGTERM that a loop polls, a second signal ending the process at once. No deep-learning dependency: the files are bytes.

pub mod atomic;
mod error;
pub mod stop;
mod store;

pub use atomic::{Durability, sync_dir, temporary_path, write_atomic, write_synced};
pub use error::{Result, StoreError};
pub use stop::StopRequest;
pub use store::{FileDigest, Hook, LATEST_FILE, Loaded, STATE_FILE, Store};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
