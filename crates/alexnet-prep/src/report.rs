//! `prep-report.json`: what a preprocessing run did, file by file where it matters.

use serde::{Deserialize, Serialize};

use crate::{
    config::{Layout, PrepConfig},
    decode::DecodeError,
    fingerprint::DatasetFingerprint,
    format::REPORT_JSON,
    neardup::NearDuplicate,
};

/// Why a file under a class folder was not turned into a training image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", content = "detail", rename_all = "kebab-case")]
pub enum SkipReason {
    /// The file could not be decoded; the inner error says why.
    Decode(DecodeError),
    /// The file is in a folder nested inside a class folder and
    /// [`NestedDirs::Skip`](crate::NestedDirs::Skip) is configured.
    NestedFolder,
    /// The file could not be read.
    Unreadable(String),
    /// The file is larger than `prep.max_file_bytes`; it was not read.
    TooLarge {
        /// Its size.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// Not a regular file (a FIFO, socket or device); it was not opened.
    NotAFile(String),
    /// A folder (through a symbolic link) that is one of its own ancestors, named
    /// relative to the input (`.` for the input itself); not entered.
    FolderLoop(String),
    /// A file of a flat `val/` folder that the label CSV (named) does not list.
    Unlabelled(String),
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::Decode(error) => write!(f, "{error}"),
            SkipReason::NestedFolder => write!(f, "in a nested folder (prep.nested = \"skip\")"),
            SkipReason::Unreadable(error) => write!(f, "unreadable: {error}"),
            SkipReason::TooLarge { bytes, limit } => write!(
                f,
                "too large: {bytes} bytes exceed prep.max_file_bytes = {limit}; not read"
            ),
            SkipReason::NotAFile(kind) => write!(f, "not a regular file ({kind}); not opened"),
            SkipReason::FolderLoop(target) => write!(
                f,
                "folder loop: links back to {target}, a folder it is inside; not entered"
            ),
            SkipReason::Unlabelled(labels) => write!(f, "unlabelled: not listed in {labels}"),
        }
    }
}

/// A file that was skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedFile {
    /// Path relative to the input folder.
    pub path: String,
    /// Why.
    #[serde(flatten)]
    pub reason: SkipReason,
}

/// A file that was used but had something wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileWarning {
    /// Path relative to the input folder.
    pub path: String,
    /// What was wrong.
    pub warning: String,
}

/// Counts that always add up: `files = written + skipped + dropped_duplicates`,
/// `written = train + val + test`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepCounts {
    /// Class folders found.
    pub classes: usize,
    /// Files found under class folders (nested ones included, whatever the rule).
    pub files: usize,
    /// Images written.
    pub written: usize,
    /// Of those, in the training split.
    pub train: usize,
    /// Of those, in the validation split.
    pub val: usize,
    /// Of those, in the test split.
    #[serde(default)]
    pub test: usize,
    /// Pairs of near-duplicate images across splits (each in `near_duplicates`).
    #[serde(default)]
    pub near_duplicates: usize,
    /// Validation and test images removed as near duplicates of an earlier split's.
    #[serde(default)]
    pub dropped_duplicates: usize,
    /// Files skipped (each listed in `skipped`).
    pub skipped: usize,
    /// Images found in nested folders and used.
    pub nested_included: usize,
    /// Files found in nested folders and skipped by the rule.
    pub nested_skipped: usize,
    /// Images used despite a warning (each listed in `warnings`).
    pub warnings: usize,
}

/// Wall-clock timings of the run, in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PrepTimings {
    /// Listing and sniffing the input.
    pub scan_s: f64,
    /// Decoding, resizing and writing the images.
    pub process_s: f64,
    /// The whole run.
    pub total_s: f64,
    /// Images written per second of `process_s`.
    pub images_per_s: f64,
    /// Worker threads used.
    pub threads: usize,
}

/// The content of `prep-report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrepReport {
    /// Version of alexnet-prep that wrote it.
    pub version: String,
    /// The configuration the run used.
    pub config: PrepConfig,
    /// The input's layout (`auto` resolved).
    #[serde(default)]
    pub layout: Layout,
    /// The prepared dataset's identity (classes and split lists).
    #[serde(default)]
    pub fingerprint: Option<DatasetFingerprint>,
    /// Counts.
    pub counts: PrepCounts,
    /// Every skipped file with its reason.
    pub skipped: Vec<SkippedFile>,
    /// Every file used despite a problem.
    pub warnings: Vec<FileWarning>,
    /// Near-duplicate images across splits, train before val before test.
    #[serde(default)]
    pub near_duplicates: Vec<NearDuplicate>,
    /// Rows of `prep.val_labels` that name no file of `val/`.
    #[serde(default)]
    pub labels_without_file: usize,
    /// Top-level entries that are not class folders (stray files, hidden folders).
    pub ignored_top_level: Vec<String>,
    /// Class folders that ended up with no image.
    pub empty_classes: Vec<String>,
    /// Timings.
    pub timings: PrepTimings,
}

impl PrepReport {
    /// A few lines for a person: the counts, the first `max_skipped` skipped files and
    /// why, the rate, and where the full report is.
    pub fn summary(&self, max_skipped: usize) -> String {
        let counts = &self.counts;
        let test = if counts.test > 0 {
            format!(", {} test", counts.test)
        } else {
            String::new()
        };
        let layout = match self.layout {
            Layout::Presplit => " (presplit)",
            Layout::Folders | Layout::Auto => "",
        };
        let mut text = format!(
            "{} classes, {} files{layout}: {} written ({} train, {} val{test}), {} skipped, {} from nested folders\n",
            counts.classes,
            counts.files,
            counts.written,
            counts.train,
            counts.val,
            counts.skipped,
            counts.nested_included
        );
        for skipped in self.skipped.iter().take(max_skipped) {
            text.push_str(&format!("  skipped {}: {}\n", skipped.path, skipped.reason));
        }
        if self.skipped.len() > max_skipped {
            text.push_str(&format!(
                "  ... and {} more\n",
                self.skipped.len() - max_skipped
            ));
        }
        if counts.near_duplicates > 0 {
            let dropped = if counts.dropped_duplicates > 0 {
                format!(", {} val/test copies dropped", counts.dropped_duplicates)
            } else {
                " (prep.near_duplicates = \"drop\" removes them)".to_string()
            };
            text.push_str(&format!(
                "{} near-duplicate pairs across splits{dropped}\n",
                counts.near_duplicates
            ));
            for pair in self.near_duplicates.iter().take(max_skipped) {
                text.push_str(&format!(
                    "  {} ({}) ~ {} ({}), distance {}\n",
                    pair.first, pair.first_split, pair.second, pair.second_split, pair.distance
                ));
            }
        }
        if self.labels_without_file > 0 {
            text.push_str(&format!(
                "{} rows of prep.val_labels name no file in val/\n",
                self.labels_without_file
            ));
        }
        if let Some(fingerprint) = &self.fingerprint {
            text.push_str(&format!(
                "fingerprint: classes {}, train {}, val {}, test {}\n",
                fingerprint.classes,
                fingerprint.splits[0],
                fingerprint.splits[1],
                fingerprint.splits[2]
            ));
        }
        let report = self
            .config
            .output
            .clone()
            .unwrap_or_default()
            .join(REPORT_JSON);
        text.push_str(&format!(
            "{:.0} images/s on {} threads; report: {}\n",
            self.timings.images_per_s,
            self.timings.threads,
            report.display()
        ));
        text
    }
}
