//! Writing run files so that neither a reader nor a crash sees them half-written.

use std::path::Path;

use alexnet_prep::io::Durability;

use crate::error::{IoContext, Result};

/// Writes `bytes` to `path` through a temporary file, fsynced, renamed into place, and
/// the folder's entry fsynced ([`alexnet_prep::io::write_atomic`], the one helper of the
/// workspace).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    alexnet_prep::io::write_atomic(path, bytes, Durability::Synced).at(path)
}

/// Writes `bytes` to `path`, fsynced, under its final name: for the files of a
/// checkpoint folder, which is itself written under a temporary name and renamed.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    alexnet_prep::io::write_synced(path, bytes).at(path)
}

/// Makes the renames inside `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    alexnet_prep::io::sync_dir(dir).at(dir)
}
