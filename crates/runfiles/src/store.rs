//! [`Store`]: numbered checkpoint folders written atomically, each with a state file that
//! records a length and CRC-32 for every other file, a `latest` pointer, retention, and a
//! fallback to the newest good checkpoint when the latest is damaged.
//!
//! ```text
//! <dir>/epoch-0010/{<files>, state.json}   a checkpoint: `prefix` and its number
//! <dir>/latest                             the folder name a resume picks
//! <dir>/best/{<files>, state.json}         a named checkpoint outside the sequence
//! ```

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{
    atomic::{Durability, sync_dir, write_atomic, write_synced},
    error::{IoAt, Result, StoreError},
};

/// The state file of a checkpoint folder (JSON).
pub const STATE_FILE: &str = "state.json";
/// The pointer to the checkpoint a resume picks.
pub const LATEST_FILE: &str = "latest";
/// The key of the state file under which the store records its file digests.
const FILES_KEY: &str = "files";

/// Size and checksum of a checkpoint file, to tell a damaged file from a good one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Length in bytes.
    pub bytes: u64,
    /// CRC-32 of the content.
    pub crc32: u32,
}

impl FileDigest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            bytes: bytes.len() as u64,
            crc32: crc32fast::hash(bytes),
        }
    }
}

/// A checkpoint read back and verified.
#[derive(Debug, Clone)]
pub struct Loaded<S> {
    /// Its folder.
    pub dir: PathBuf,
    /// The state it was saved with.
    pub state: S,
    /// Every file the state file records, by name, each one's digest checked.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// Called at two moments of a save, for fault-injection tests: `("checkpoint-write", n)`
/// after the first file of checkpoint `n` is written, `("before-latest", n)` before the
/// pointer moves to it.
pub type Hook = fn(point: &str, number: usize);

/// Numbered checkpoints in one folder.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    prefix: String,
    keep_last: usize,
    hook: Option<Hook>,
}

impl Store {
    /// The checkpoints `<dir>/<prefix><number:04>`, of which [`Store::save`] keeps the
    /// newest `keep_last` (at least 1).
    pub fn new(dir: &Path, prefix: &str, keep_last: usize) -> Self {
        Self {
            dir: dir.to_path_buf(),
            prefix: prefix.to_string(),
            keep_last: keep_last.max(1),
            hook: None,
        }
    }

    /// This store, calling `hook` during saves (see [`Hook`]).
    pub fn with_hook(mut self, hook: Hook) -> Self {
        self.hook = Some(hook);
        self
    }

    /// The store's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The folder name of checkpoint `number`.
    pub fn name(&self, number: usize) -> String {
        format!("{}{number:04}", self.prefix)
    }

    /// The number of a checkpoint folder name ([`Store::name`]'s inverse).
    pub fn number(&self, name: &str) -> Option<usize> {
        name.strip_prefix(&self.prefix)?.parse().ok()
    }

    /// Numbered checkpoints present, newest first.
    pub fn list(&self) -> Result<Vec<(usize, PathBuf)>> {
        if !self.dir.is_dir() {
            return Ok(Vec::new());
        }
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.dir).at(&self.dir)? {
            let entry = entry.at(&self.dir)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(number) = self.number(&name)
                && entry.path().is_dir()
            {
                found.push((number, entry.path()));
            }
        }
        found.sort_by_key(|(number, _)| std::cmp::Reverse(*number));
        Ok(found)
    }

    /// The checkpoint `latest` names, if any.
    pub fn latest(&self) -> Result<Option<PathBuf>> {
        let pointer = self.dir.join(LATEST_FILE);
        match fs::read_to_string(&pointer) {
            Ok(name) => Ok(Some(self.dir.join(name.trim()))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(StoreError::Io {
                path: pointer,
                source: error,
            }),
        }
    }

    /// Writes checkpoint `number` (`files` then the state file) and points `latest` at
    /// it. A crash at any moment leaves the previous checkpoint and pointer intact. Then
    /// prunes this line of checkpoints (see [`Store::prune`]).
    pub fn save<S: Serialize>(
        &self,
        number: usize,
        state: &S,
        files: &[(&str, &[u8])],
    ) -> Result<PathBuf> {
        let name = self.name(number);
        let target = self.write(&name, Some(number), state, files)?;
        self.call_hook("before-latest", Some(number));
        write_atomic(
            &self.dir.join(LATEST_FILE),
            format!("{name}\n").as_bytes(),
            Durability::Synced,
        )
        .at(self.dir.join(LATEST_FILE))?;
        self.prune(number)?;
        Ok(target)
    }

    /// Writes a checkpoint folder `name` outside the numbered sequence (a best model),
    /// replacing an earlier one of that name atomically.
    pub fn save_named<S: Serialize>(
        &self,
        name: &str,
        state: &S,
        files: &[(&str, &[u8])],
    ) -> Result<PathBuf> {
        self.write(name, None, state, files)
    }

    /// Calls the hook, for numbered checkpoints only.
    fn call_hook(&self, point: &str, number: Option<usize>) {
        if let (Some(hook), Some(number)) = (self.hook, number) {
            hook(point, number);
        }
    }

    /// The folder written under a temporary name, fsynced, then renamed into place;
    /// `number` is `None` for a named checkpoint.
    fn write<S: Serialize>(
        &self,
        name: &str,
        number: Option<usize>,
        state: &S,
        files: &[(&str, &[u8])],
    ) -> Result<PathBuf> {
        fs::create_dir_all(&self.dir).at(&self.dir)?;
        let target = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).at(&tmp)?;
        }
        fs::create_dir(&tmp).at(&tmp)?;
        let mut digests = BTreeMap::new();
        for (k, (file, bytes)) in files.iter().enumerate() {
            write_synced(&tmp.join(file), bytes).at(tmp.join(file))?;
            digests.insert(file.to_string(), FileDigest::of(bytes));
            if k == 0 {
                self.call_hook("checkpoint-write", number);
            }
        }
        let json = state_json(state, digests).map_err(|source| StoreError::State {
            path: tmp.clone(),
            source,
        })?;
        write_synced(&tmp.join(STATE_FILE), &json).at(tmp.join(STATE_FILE))?;
        sync_dir(&tmp).at(&tmp)?;
        // An older folder of the same name (a run resumed from before it) moves aside first.
        if target.exists() {
            let old = self.dir.join(format!(".{name}.old"));
            if old.exists() {
                fs::remove_dir_all(&old).at(&old)?;
            }
            fs::rename(&target, &old).at(&target)?;
            fs::rename(&tmp, &target).at(&target)?;
            fs::remove_dir_all(&old).at(&old)?;
        } else {
            fs::rename(&tmp, &target).at(&target)?;
        }
        sync_dir(&self.dir).at(&self.dir)?;
        Ok(target)
    }

    /// Keeps checkpoint `number` (the one `latest` names) and the `keep_last - 1` newest
    /// before it, and removes the older ones. Checkpoints of later numbers belong to
    /// another line of this run (one that went further before it was resumed from an
    /// earlier checkpoint): they are never removed, only reported, since neither they
    /// nor the new line is the other's history.
    pub fn prune(&self, number: usize) -> Result<()> {
        let listed = self.list()?;
        let stale: Vec<String> = listed
            .iter()
            .filter(|(other, _)| *other > number)
            .map(|(_, dir)| dir.display().to_string())
            .collect();
        if !stale.is_empty() {
            tracing::warn!(
                "{} from another line of this run (past {}, which `latest` names) kept; remove them if that line is abandoned",
                stale.join(", "),
                self.name(number)
            );
        }
        let older = listed.iter().filter(|(other, _)| *other < number);
        for (_, dir) in older.skip(self.keep_last - 1) {
            fs::remove_dir_all(dir).at(dir)?;
        }
        Ok(())
    }

    /// Removes the numbered checkpoints up to and including `number` (superseded ones:
    /// a line of frequent checkpoints once a later checkpoint of another kind holds
    /// everything they do). Call it only once `latest` names a checkpoint outside them.
    pub fn remove_up_to(&self, number: usize) -> Result<()> {
        for (_, dir) in self.list()?.iter().filter(|(other, _)| *other <= number) {
            fs::remove_dir_all(dir).at(dir)?;
        }
        Ok(())
    }

    /// Loads the checkpoint in `dir` and verifies every file its state file records.
    pub fn load<S: DeserializeOwned>(dir: &Path) -> Result<Loaded<S>> {
        if !dir.is_dir() {
            return Err(StoreError::NotFound(dir.to_path_buf()));
        }
        let state_path = dir.join(STATE_FILE);
        let text = fs::read(&state_path).at(&state_path)?;
        let unreadable = |source| StoreError::State {
            path: state_path.clone(),
            source,
        };
        let mut value: serde_json::Value = serde_json::from_slice(&text).map_err(unreadable)?;
        let digests: BTreeMap<String, FileDigest> = match value.get_mut(FILES_KEY) {
            Some(files) => serde_json::from_value(files.take()).map_err(unreadable)?,
            None => BTreeMap::new(),
        };
        let state = serde_json::from_value(value).map_err(unreadable)?;
        let mut files = BTreeMap::new();
        for (name, digest) in digests {
            let path = dir.join(&name);
            let bytes = fs::read(&path).at(&path)?;
            let found = FileDigest::of(&bytes);
            if found != digest {
                return Err(StoreError::Damaged {
                    path,
                    bytes: found.bytes,
                    crc32: found.crc32,
                    expected_bytes: digest.bytes,
                    expected_crc32: digest.crc32,
                });
            }
            files.insert(name, bytes);
        }
        Ok(Loaded {
            dir: dir.to_path_buf(),
            state,
            files,
        })
    }

    /// The checkpoint a resume continues from: `latest`, or when it fails `check` (it
    /// does not load, or the caller rejects it) the newest good one before it on the
    /// same line, with a warning naming both. `Ok(None)` only when the store holds no
    /// checkpoint at all.
    pub fn load_latest<S: DeserializeOwned, T>(
        &self,
        check: impl Fn(Loaded<S>) -> std::result::Result<T, String>,
    ) -> Result<Option<T>> {
        self.load_first(&self.candidates()?, check)
    }

    /// The first of `candidates` (folders, best first) that loads and passes `check`,
    /// with a warning naming the first that did not; `Ok(None)` when there are no
    /// candidates, an error listing every reason when none is usable. For callers that
    /// order checkpoints of several lines themselves (see [`Store::read_state`]).
    pub fn load_first<S: DeserializeOwned, T>(
        &self,
        candidates: &[PathBuf],
        check: impl Fn(Loaded<S>) -> std::result::Result<T, String>,
    ) -> Result<Option<T>> {
        if candidates.is_empty() {
            return Ok(None);
        }
        let mut failures: Vec<(PathBuf, String)> = Vec::new();
        for dir in candidates {
            match Self::load(dir)
                .map_err(|error| error.to_string())
                .and_then(&check)
            {
                Ok(checkpoint) => {
                    if let Some((bad, reason)) = failures.first() {
                        tracing::warn!(
                            "checkpoint {} is unusable ({reason}); resuming from the previous one, {}",
                            bad.display(),
                            dir.display()
                        );
                    }
                    return Ok(Some(checkpoint));
                }
                Err(reason) => failures.push((dir.clone(), reason)),
            }
        }
        let reasons: Vec<String> = failures.into_iter().map(|(_, reason)| reason).collect();
        Err(StoreError::NoUsable {
            dir: self.dir.clone(),
            reasons: reasons.join("; "),
        })
    }

    /// The state file of the checkpoint in `dir` alone, its files neither read nor
    /// verified: enough to order checkpoints before loading one.
    pub fn read_state<S: DeserializeOwned>(dir: &Path) -> Result<S> {
        let state_path = dir.join(STATE_FILE);
        let text = fs::read(&state_path).at(&state_path)?;
        serde_json::from_slice(&text).map_err(|source| StoreError::State {
            path: state_path,
            source,
        })
    }

    /// `latest`, then the numbered checkpoints before it, newest first. A later number
    /// is another line's (see [`Store::prune`]) and never resumed silently. A `latest`
    /// that names no checkpoint of this store (stores of two prefixes sharing a folder
    /// and its pointer) is passed over, and every numbered checkpoint is a candidate.
    fn candidates(&self) -> Result<Vec<PathBuf>> {
        let latest = self.latest()?;
        let latest_number = latest
            .as_ref()
            .and_then(|dir| self.number(dir.file_name()?.to_str()?));
        let mut candidates: Vec<PathBuf> = latest
            .filter(|_| latest_number.is_some())
            .into_iter()
            .collect();
        for (number, dir) in self.list()? {
            let same_line = latest_number.is_none_or(|latest| number < latest);
            if same_line && !candidates.contains(&dir) {
                candidates.push(dir);
            }
        }
        Ok(candidates)
    }
}

/// `state` as pretty JSON with the file digests under `"files"`.
fn state_json<S: Serialize>(
    state: &S,
    digests: BTreeMap<String, FileDigest>,
) -> serde_json::Result<Vec<u8>> {
    let mut value = serde_json::to_value(state)?;
    if let serde_json::Value::Object(map) = &mut value {
        map.insert(FILES_KEY.into(), serde_json::to_value(digests)?);
    }
    serde_json::to_vec_pretty(&value)
}
