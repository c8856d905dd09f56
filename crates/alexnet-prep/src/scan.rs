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

/// What a folder entry is, links followed.
#[derive(Debug, Clone, Copy)]
enum EntryKind {
    Dir {
        /// (device, inode): what loop detection compares.
        id: (u64, u64),
    },
    File {
        bytes: u64,
    },
    /// A FIFO, socket or device: never opened (a FIFO would block the sniff forever).
    Special(&'static str),
    /// A link whose target cannot be read: reported as unreadable when sniffed.
    Dangling,
}

#[cfg(unix)]
fn dir_id(meta: &fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn dir_id(_meta: &fs::Metadata) -> (u64, u64) {
    // No inode numbers: no loop detection (links to folders are rare there).
    (0, 0)
}

fn special_kind(file_type: fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_socket() {
            return "a socket";
        }
        if file_type.is_block_device() || file_type.is_char_device() {
            return "a device";
        }
    }
    let _ = file_type;
    "not a file or folder"
}

fn sorted_entries(dir: &Path) -> Result<Vec<(OsString, EntryKind)>> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        // Links to files and folders are followed.
        let kind = match fs::metadata(entry.path()) {
            Ok(meta) if meta.is_dir() => EntryKind::Dir { id: dir_id(&meta) },
            Ok(meta) if meta.is_file() => EntryKind::File { bytes: meta.len() },
            Ok(meta) => EntryKind::Special(special_kind(meta.file_type())),
            Err(_) => EntryKind::Dangling,
        };
        entries.push((entry.file_name(), kind));
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
/// below it are candidates, nested ones according to `nested`. Files above
/// `max_file_bytes` and anything that is not a regular file are skipped with a reason
/// without being opened; a folder that links back to one of its ancestors is reported
/// and not entered.
pub(crate) fn scan(input: &Path, nested: NestedDirs, max_file_bytes: u64) -> Result<Scan> {
    let mut scan = Scan::default();
    let root = (dir_id(&fs::metadata(input).at(input)?), PathBuf::from("."));
    for (name, kind) in sorted_entries(input)? {
        let name_str = name.to_string_lossy().into_owned();
        let EntryKind::Dir { id } = kind else {
            scan.ignored_top_level.push(name_str);
            continue;
        };
        if name_str.starts_with('.') {
            scan.ignored_top_level.push(name_str);
            continue;
        }
        let mut class = ClassFolder {
            name: name_str,
            files: Vec::new(),
            nested: 0,
        };
        let limits = (nested, max_file_bytes);
        walk_class(
            input,
            &name,
            (id, root.clone()),
            limits,
            &mut class,
            &mut scan,
        )?;
        class.files.sort();
        scan.classes.push(class);
    }
    scan.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(scan)
}

/// Walks one class folder into `class`: depth-first, sorted at every level, so the
/// order is the same on every machine; each folder carries the identities of its
/// ancestors, for loop detection. Skipped files go to `scan`.
fn walk_class(
    input: &Path,
    name: &OsString,
    (id, root): ((u64, u64), ((u64, u64), PathBuf)),
    (nested, max_file_bytes): (NestedDirs, u64),
    class: &mut ClassFolder,
    scan: &mut Scan,
) -> Result<()> {
    let class_dir = PathBuf::from(name);
    let mut stack = vec![(class_dir.clone(), vec![root, (id, class_dir)])];
    while let Some((dir, ancestors)) = stack.pop() {
        let depth = ancestors.len() - 2;
        let entries = sorted_entries(&input.join(&dir))?;
        for (entry, kind) in entries.into_iter().rev() {
            let rel = dir.join(&entry);
            if let EntryKind::Dir { id } = kind {
                let looped = ancestors
                    .iter()
                    .find(|(ancestor, _)| id != (0, 0) && *ancestor == id);
                if let Some((_, target)) = looped {
                    scan.skipped.push(SkippedFile {
                        path: display(&rel),
                        reason: SkipReason::FolderLoop(display(target)),
                    });
                } else {
                    let mut inner = ancestors.clone();
                    inner.push((id, rel.clone()));
                    stack.push((rel, inner));
                }
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
            let reason = match kind {
                EntryKind::Special(what) => Some(SkipReason::NotAFile(what.into())),
                EntryKind::File { bytes } if bytes > max_file_bytes => Some(SkipReason::TooLarge {
                    bytes,
                    limit: max_file_bytes,
                }),
                _ => sniff(&input.join(&rel)),
            };
            if let Some(reason) = reason {
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
    Ok(())
}

/// The image files directly in `dir` (a flat folder, e.g. ImageNet's validation
/// images), sorted, with the skipped ones and the count of files found; paths are
/// relative to `input`, `dir` being `input/<prefix>`. Folders inside are listed in
/// `ignored` and not entered.
pub(crate) fn scan_flat(
    input: &Path,
    prefix: &Path,
    max_file_bytes: u64,
    scan: &mut Scan,
) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for (name, kind) in sorted_entries(&input.join(prefix))? {
        let rel = prefix.join(&name);
        let reason = match kind {
            EntryKind::Dir { .. } => {
                scan.ignored_top_level.push(display(&rel));
                continue;
            }
            EntryKind::Special(what) => Some(SkipReason::NotAFile(what.into())),
            EntryKind::File { bytes } if bytes > max_file_bytes => Some(SkipReason::TooLarge {
                bytes,
                limit: max_file_bytes,
            }),
            _ => sniff(&input.join(&rel)),
        };
        scan.files += 1;
        match reason {
            Some(reason) => scan.skipped.push(SkippedFile {
                path: display(&rel),
                reason,
            }),
            None => files.push(rel),
        }
    }
    Ok(files)
}

impl Scan {
    /// This scan of `input/<prefix>` as a part of a scan of `input`: every path
    /// gains the prefix.
    pub(crate) fn under(mut self, prefix: &str) -> Self {
        for class in &mut self.classes {
            for file in &mut class.files {
                *file = Path::new(prefix).join(&*file);
            }
        }
        for skipped in &mut self.skipped {
            skipped.path = format!("{prefix}/{}", skipped.path);
        }
        for ignored in &mut self.ignored_top_level {
            *ignored = format!("{prefix}/{ignored}");
        }
        self
    }
}
