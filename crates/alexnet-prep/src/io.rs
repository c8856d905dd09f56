//! Writing a file so that a reader never sees it half-written: the `runfiles` crate's
//! helpers, which every crate of the workspace uses, and this crate's output writer.

use std::path::Path;

pub use runfiles::atomic::{Durability, sync_dir, temporary_path, write_atomic, write_synced};

use crate::error::{IoContext, Result};

/// [`write_atomic`] for this crate's outputs ([`Durability::OnRename`]: the marker file
/// vouches for a finished folder), the error naming `path`.
pub(crate) fn write_output(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, bytes, Durability::OnRename).at(path)
}
