//! Listing a class-per-folder dataset.

use std::{
    ffi::OsString,
    fs,
    io::Read,
    path::{Path, PathBuf},
};

use crate::{
    config::NestedDirs,
    decode::DecodeError,
    error::{IoContext, Result},
    report::{SkipReason, SkippedFile},
};

/// One class folder and the candidate images below it, sorted by path.
#[derive(Debug, Clone)]
pub(crate) struct ClassFolder {
    /// Folder name, e.g. `001.ak47`.
    pub name: String,
    /// Candidate image paths relative to the input folder.
    pub files: Vec<PathBuf>,
    /// How many of `files` came from nested folders.
    pub nested: usize,
}

/// The result of listing the input.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub classes: Vec<ClassFolder>,
    /// Files under class folders that will not be decoded, with the reason.
    pub skipped: Vec<SkippedFile>,
    /// Files found under class folders, including skipped ones.
    pub files: usize,
    pub nested_skipped: usize,
    pub ignored_top_level: Vec<String>,
}

fn sorted_entries(dir: &Path) -> Result<Vec<(OsString, fs::FileType)>> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let mut file_type = entry.file_type().at(entry.path())?;
        if file_type.is_symlink() {
            // Follow links to files and folders; a dangling link is read (and reported) as a file.
            if let Ok(meta) = fs::metadata(entry.path()) {
                file_type = meta.file_type();
            }
        }
        entries.push((entry.file_name(), file_type));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

/// Reads just enough of a file to tell whether it can be an image at all, so that stray
/// files do not take part in the split.
fn sniff(path: &Path) -> Option<SkipReason> {
    let mut head = [0u8; 64];
    let read = fs::File::open(path).and_then(|mut file| {
        let mut filled = 0;
        while filled < head.len() {
            match file.read(&mut head[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        Ok(filled)
    });
    match read {
        Err(error) => Some(SkipReason::Unreadable(error.to_string())),
        Ok(0) => Some(SkipReason::Decode(DecodeError::Empty)),
        Ok(n) if image::guess_format(&head[..n]).is_err() => {
            Some(SkipReason::Decode(DecodeError::NotAnImage))
        }
        Ok(_) => None,
    }
}

fn display(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Lists `input`: every top-level folder (not starting with `.`) is a class; files
/// below it are candidates, nested ones according to `nested`.
pub(crate) fn scan(input: &Path, nested: NestedDirs) -> Result<Scan> {
    let mut scan = Scan::default();
    for (name, file_type) in sorted_entries(input)? {
        let name_str = name.to_string_lossy().into_owned();
        if !file_type.is_dir() || name_str.starts_with('.') {
            scan.ignored_top_level.push(name_str);
            continue;
        }
        let mut class = ClassFolder {
            name: name_str,
            files: Vec::new(),
            nested: 0,
        };
        // Depth-first, sorted at every level, so the order is the same on every machine.
        let mut stack = vec![(PathBuf::from(&name), 0usize)];
        while let Some((dir, depth)) = stack.pop() {
            let entries = sorted_entries(&input.join(&dir))?;
            for (entry, file_type) in entries.into_iter().rev() {
                let rel = dir.join(&entry);
                if file_type.is_dir() {
                    stack.push((rel, depth + 1));
                    continue;
                }
                scan.files += 1;
                if depth > 0 && nested == NestedDirs::Skip {
                    scan.nested_skipped += 1;
                    scan.skipped.push(SkippedFile {
                        path: display(&rel),
                        reason: SkipReason::NestedFolder,
                    });
                    continue;
                }
                if let Some(reason) = sniff(&input.join(&rel)) {
                    scan.skipped.push(SkippedFile {
                        path: display(&rel),
                        reason,
                    });
                    continue;
                }
                if depth > 0 {
                    class.nested += 1;
                }
                class.files.push(rel);
            }
        }
        class.files.sort();
        scan.classes.push(class);
    }
    scan.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(scan)
}
