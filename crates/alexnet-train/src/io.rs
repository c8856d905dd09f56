//! Writing run files so that neither a reader nor a crash sees them half-written.

use std::path::Path;

use runfiles::Durability;

use crate::error::{IoContext, Result};

/// Writes `bytes` to `path` through a temporary file, fsynced, renamed into place, and
/// the folder's entry fsynced ([`runfiles::write_atomic`]), the error naming `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    runfiles::write_atomic(path, bytes, Durability::Synced).at(path)
}
