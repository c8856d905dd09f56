//! A run's bookkeeping, gathered in job order: counts, skips, warnings, the list rows of
//! each split, per-class counts, hashes and the training images' channel sums; then the
//! near duplicates across splits, and the lists written as CSV.

use std::{fs, path::Path};

use serde::Serialize;

use crate::{
    config::{NearDuplicates, PrepConfig},
    error::{IoContext, PrepError, Result},
    fingerprint::DatasetFingerprint,
    format::Split,
    format::{CATEGORIES_CSV, CATEGORY_HEADER, LIST_HEADER},
    io::write_output,
    neardup::{
        MAX_THUMBNAIL_DIFFERENCE, NearDuplicate, Signature, cross_split_pairs, thumbnail_difference,
    },
    report::{FileWarning, PrepCounts, SkippedFile},
    scan::{ClassFolder, Scan},
    stats::RgbAccumulator,
    worker::{Job, Outcome},
};

/// One row of `train.csv`, `val.csv` or `test.csv`.
#[derive(Serialize)]
pub(crate) struct ListRow<'a> {
    pub image: &'a str,
    pub class: usize,
    pub source: String,
    /// The written image's signature (not written to the CSV).
    #[serde(skip)]
    pub signature: Option<Signature>,
}

#[derive(Serialize)]
struct CategoryRow<'a> {
    id: usize,
    label: &'a str,
    folder: &'a str,
    count: usize,
    train: usize,
    val: usize,
    test: usize,
}

/// See the module documentation.
pub(crate) struct Tally<'j> {
    pub counts: PrepCounts,
    pub skipped: Vec<SkippedFile>,
    pub warnings: Vec<FileWarning>,
    pub train_stats: RgbAccumulator,
    /// The rows of train, val and test.
    pub rows: [Vec<ListRow<'j>>; 3],
    pub near_duplicates: Vec<NearDuplicate>,
}

impl<'j> Tally<'j> {
    pub(crate) fn of(jobs: &'j [Job], outcomes: Vec<Outcome>, scan: &mut Scan) -> Self {
        let mut tally = Tally {
            counts: PrepCounts {
                classes: scan.classes.len(),
                files: scan.files,
                nested_skipped: scan.nested_skipped,
                ..PrepCounts::default()
            },
            skipped: std::mem::take(&mut scan.skipped),
            warnings: Vec::new(),
            train_stats: RgbAccumulator::default(),
            rows: Default::default(),
            near_duplicates: Vec::new(),
        };
        for (job, outcome) in jobs.iter().zip(outcomes) {
            tally.add(job, outcome);
        }
        tally.skipped.sort_by(|a, b| a.path.cmp(&b.path));
        tally.count();
        tally
    }

    fn count(&mut self) {
        let counts = &mut self.counts;
        [counts.train, counts.val, counts.test] = self.rows.each_ref().map(Vec::len);
        counts.written = counts.train + counts.val + counts.test;
        counts.skipped = self.skipped.len();
        counts.warnings = self.warnings.len();
        counts.near_duplicates = self.near_duplicates.len();
        counts.dropped_duplicates = self.near_duplicates.iter().filter(|d| d.dropped).count();
    }

    fn add(&mut self, job: &'j Job, outcome: Outcome) {
        let source = job.source.to_string_lossy().into_owned();
        let (stats, warning, signature) = match outcome {
            Outcome::Skipped(reason) => {
                tracing::warn!("skipped {source}: {reason}");
                self.skipped.push(SkippedFile {
                    path: source,
                    reason,
                });
                return;
            }
            Outcome::Written {
                stats,
                warning,
                signature,
            } => (stats, warning, signature),
        };
        if let Some(warning) = warning {
            tracing::warn!("{source}: {warning}");
            self.warnings.push(FileWarning {
                path: source.clone(),
                warning,
            });
        }
        if let Some(stats) = stats {
            self.train_stats = std::mem::take(&mut self.train_stats).merge(*stats);
        }
        if job.source.components().count() > 2 {
            self.counts.nested_included += 1;
        }
        self.rows[job.split.index()].push(ListRow {
            image: &job.name,
            class: job.class,
            source,
            signature,
        });
    }

    /// Finds near duplicates across splits; with `drop`, removes the later copy of each
    /// pair from its list and deletes its file from `output`.
    pub(crate) fn near_duplicates(&mut self, config: &PrepConfig, output: &Path) -> Result<()> {
        if config.near_duplicates == NearDuplicates::Off {
            return Ok(());
        }
        let mut index = Vec::new();
        let mut images = Vec::new();
        for split in Split::ALL {
            for (row, list_row) in self.rows[split.index()].iter().enumerate() {
                if let Some(signature) = &list_row.signature {
                    index.push((split, row));
                    images.push((signature.hash, split));
                }
            }
        }
        let drop = config.near_duplicates == NearDuplicates::Drop;
        let mut dropped = [
            vec![false; self.rows[1].len()],
            vec![false; self.rows[2].len()],
        ];
        for (a, b, distance) in cross_split_pairs(&images, config.near_duplicate_distance) {
            let ((split_a, row_a), (split_b, row_b)) = (index[a], index[b]);
            let first = &self.rows[split_a.index()][row_a];
            let second = &self.rows[split_b.index()][row_b];
            let (Some(x), Some(y)) = (&first.signature, &second.signature) else {
                continue;
            };
            let difference = thumbnail_difference(&x.thumbnail, &y.thumbnail);
            if difference > MAX_THUMBNAIL_DIFFERENCE {
                continue;
            }
            tracing::warn!(
                "near duplicates across splits: {} ({split_a}) and {} ({split_b}), distance {distance}",
                first.source,
                second.source
            );
            if drop {
                dropped[split_b.index() - 1][row_b] = true;
            }
            self.near_duplicates.push(NearDuplicate {
                first: first.source.clone(),
                first_split: split_a,
                second: second.source.clone(),
                second_split: split_b,
                distance,
                difference,
                dropped: drop,
            });
        }
        for (split, marks) in [Split::Val, Split::Test].into_iter().zip(dropped) {
            let rows = std::mem::take(&mut self.rows[split.index()]);
            for (row, gone) in rows.into_iter().zip(marks) {
                if gone {
                    let path = output.join(split.dir()).join(row.image);
                    fs::remove_file(&path).at(&path)?;
                } else {
                    self.rows[split.index()].push(row);
                }
            }
        }
        self.count();
        Ok(())
    }

    /// The fingerprint of the lists as they are written.
    pub(crate) fn fingerprint(&self, labels: &[String]) -> DatasetFingerprint {
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        let lists = self.rows.each_ref().map(|rows| {
            rows.iter()
                .map(|row| (row.image.to_string(), row.class))
                .collect::<Vec<_>>()
        });
        DatasetFingerprint::of(&labels, &lists)
    }

    /// Writes the three lists (`test.csv` only when the test split has an image) and
    /// `categories.csv`; returns the classes without an image.
    pub(crate) fn write_lists(
        &self,
        output: &Path,
        classes: &[ClassFolder],
        labels: &[String],
    ) -> Result<Vec<String>> {
        let mut per_class = vec![[0usize; 3]; classes.len()];
        for (slot, rows) in self.rows.iter().enumerate() {
            for row in rows {
                per_class[row.class][slot] += 1;
            }
        }
        let categories: Vec<CategoryRow> = classes
            .iter()
            .zip(labels)
            .zip(&per_class)
            .enumerate()
            .map(|(id, ((class, label), &[train, val, test]))| CategoryRow {
                id,
                label,
                folder: &class.name,
                count: train + val + test,
                train,
                val,
                test,
            })
            .collect();
        write_csv(&output.join(CATEGORIES_CSV), &CATEGORY_HEADER, &categories)?;
        // The lists go last: a reader trusts a folder only once they are there.
        for split in [Split::Test, Split::Val, Split::Train] {
            let rows = &self.rows[split.index()];
            if split != Split::Test || !rows.is_empty() {
                write_csv(&output.join(split.csv()), &LIST_HEADER, rows)?;
            }
        }
        Ok(categories
            .iter()
            .filter(|row| row.count == 0)
            .map(|row| row.folder.to_string())
            .collect())
    }
}

/// Writes `rows` under an explicit header, so an empty list still has its header.
pub(crate) fn write_csv<T: Serialize>(path: &Path, header: &[&str], rows: &[T]) -> Result<()> {
    let malformed = |error: csv::Error| PrepError::Malformed {
        path: path.to_path_buf(),
        line: 0,
        reason: error.to_string(),
    };
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    writer.write_record(header).map_err(malformed)?;
    for row in rows {
        writer.serialize(row).map_err(malformed)?;
    }
    let bytes = writer.into_inner().map_err(|error| PrepError::Io {
        path: path.to_path_buf(),
        source: error.into_error(),
    })?;
    write_output(path, &bytes)
}
