//! What TensorBoard itself makes of an event folder: its `EventAccumulator` (the reader
//! the TensorBoard server loads runs with), run through a Python that has the
//! `tensorboard` package. For tests that check a trainer's files against the real
//! reader, not only against [`crate::read_event_dir`].

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use crate::error::{EventsError, Result};

/// The reader's script: tags and steps, or the graph's node names (`--graph`).
const SCRIPT: &str = include_str!("tensorboard_steps.py");

/// TensorBoard's own reader, through `python`.
#[derive(Debug, Clone)]
pub struct Accumulator {
    python: PathBuf,
}

impl Accumulator {
    /// The reader run by `python` (which must have the `tensorboard` package).
    pub fn new(python: impl Into<PathBuf>) -> Self {
        Self {
            python: python.into(),
        }
    }

    /// The steps it keeps for each tag of `dir` (scalars, images and text alike), after
    /// its purges.
    pub fn steps(&self, dir: &Path) -> Result<BTreeMap<String, Vec<u64>>> {
        let text = self.run(dir, &[])?;
        let mut steps = BTreeMap::new();
        for line in text.lines() {
            let malformed = || EventsError::Reader {
                path: dir.to_path_buf(),
                reason: format!("unexpected line `{line}`"),
            };
            let (tag, list) = line.split_once('\t').ok_or_else(malformed)?;
            let list = list
                .split(',')
                .filter(|step| !step.is_empty())
                .map(|step| step.parse().map_err(|_| malformed()))
                .collect::<Result<Vec<u64>>>()?;
            steps.insert(tag.to_string(), list);
        }
        Ok(steps)
    }

    /// The node names of the graph it finds in `dir`.
    pub fn graph_nodes(&self, dir: &Path) -> Result<Vec<String>> {
        let text = self.run(dir, &["--graph"])?;
        Ok(text.lines().map(str::to_string).collect())
    }

    fn run(&self, dir: &Path, extra: &[&str]) -> Result<String> {
        let output = Command::new(&self.python)
            .arg("-c")
            .arg(SCRIPT)
            .arg(dir)
            .args(extra)
            .output()
            .map_err(|source| EventsError::Io {
                path: self.python.clone(),
                source,
            })?;
        if !output.status.success() {
            return Err(EventsError::Reader {
                path: dir.to_path_buf(),
                reason: String::from_utf8_lossy(&output.stderr)
                    .trim()
                    .replace('\n', " "),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}
