//! Writing a file so that a reader never sees it half-written: the bytes go to a hidden
//! temporary file beside the target, which is then renamed into place, flushed to disk
//! first where the file must survive a crash.
use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

/// How durable [`write_atomic`] makes the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The rename alone: a reader sees the old file or the new one, never a part; a power
    /// loss may lose the new one. For outputs that a marker file vouches for.
    OnRename,
    /// The file's contents and the folder's entry are flushed to disk (`fsync`) before
    /// returning: what a checkpoint needs to survive a crash.
    Synced,
}

/// The hidden temporary name [`write_atomic`] writes `path` under first.
pub fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned());
    path.with_file_name(format!(".{}.part", name.unwrap_or_default()))
}

/// Writes `bytes` to `path` and flushes them to disk, without a temporary name: for a
/// file inside a folder that is itself written under a temporary name and renamed.
pub fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_file(path, bytes, Durability::Synced)
}

fn write_file(path: &Path, bytes: &[u8], durability: Durability) -> std::io::Result<()> {
    let mut file = fs::File::create(path)?;
    file.write_all(bytes)?;
    if durability == Durability::Synced {
        file.sync_all()?;
    }
    Ok(())
}

/// Writes `bytes` to [`temporary_path`]`(path)`, then renames it to `path`.
pub fn write_atomic(path: &Path, bytes: &[u8], durability: Durability) -> std::io::Result<()> {
    let tmp = temporary_path(path);
    write_file(&tmp, bytes, durability)?;
    fs::rename(&tmp, path)?;
    if durability == Durability::Synced
        && let Some(dir) = path.parent()
    {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Flushes `dir`'s entries (the renames inside it) to disk. Not every platform can open
/// a folder; there it does nothing.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    fs::File::open(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    })?
    .sync_all()?;
    let _ = dir;
    Ok(())
}
