//! The output folder's safety: never inside the input, never someone else's folder,
//! and an earlier run's outputs removed only when asked, only the entries we write.

use std::{
    fs,
    path::{Component, Path, PathBuf},
};

use crate::{
    error::{IoContext, PrepError, Result},
    format::{MARKER_FILE, MARKER_IN_PROGRESS, OWNED_ENTRIES},
    io::{temporary_path, write_output},
};

/// The input folder, canonical.
pub(crate) fn check_input(input: &Path) -> Result<PathBuf> {
    if !input.is_dir() {
        return Err(PrepError::MissingInput(input.to_path_buf()));
    }
    input.canonicalize().at(input)
}

/// Resolves `path` as far as it exists, so a not-yet-created output can be compared
/// with the input even through symbolic links.
fn resolve(path: &Path) -> Result<PathBuf> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().at(".")?.join(path)
    };
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => break,
        }
    }
    let mut resolved = existing.canonicalize().at(existing)?;
    for name in rest.into_iter().rev() {
        resolved.push(name);
    }
    // `..` in the part that does not exist yet cannot be resolved; refuse to guess.
    if resolved.components().any(|c| c == Component::ParentDir) {
        return Err(PrepError::InvalidConfig {
            field: "prep.output",
            reason: format!(
                "{} contains `..` below a folder that does not exist",
                path.display()
            ),
        });
    }
    Ok(resolved)
}

/// Checks that `output` may be written, without touching it.
pub(crate) fn check_output(input: &Path, output: &Path, overwrite: bool) -> Result<()> {
    let resolved = resolve(output)?;
    if resolved.starts_with(input) || input.starts_with(&resolved) {
        return Err(PrepError::OutputInsideInput {
            input: input.to_path_buf(),
            output: output.to_path_buf(),
        });
    }
    if output.exists() {
        if !output.is_dir() {
            return Err(PrepError::InvalidConfig {
                field: "prep.output",
                reason: format!("{} exists and is not a folder", output.display()),
            });
        }
        let non_empty = fs::read_dir(output).at(output)?.next().is_some();
        if non_empty {
            if !overwrite {
                return Err(PrepError::OutputNotEmpty(output.to_path_buf()));
            }
            if !output.join(MARKER_FILE).is_file() {
                return Err(PrepError::NotAPrepOutput(output.to_path_buf()));
            }
        }
    }
    Ok(())
}

/// Removes an earlier run's outputs (only the entries alexnet-prep writes) and marks
/// the folder as being written.
pub(crate) fn prepare_output(output: &Path) -> Result<()> {
    if output.join(MARKER_FILE).is_file() {
        for entry in OWNED_ENTRIES {
            let path = output.join(entry);
            if path.is_dir() {
                fs::remove_dir_all(&path).at(&path)?;
            } else if path.exists() {
                fs::remove_file(&path).at(&path)?;
            }
            // Leftovers of an interrupted atomic write.
            let part = temporary_path(&path);
            if part.is_file() {
                fs::remove_file(&part).at(&part)?;
            }
        }
    }
    fs::create_dir_all(output).at(output)?;
    write_output(&output.join(MARKER_FILE), MARKER_IN_PROGRESS.as_bytes())
}
