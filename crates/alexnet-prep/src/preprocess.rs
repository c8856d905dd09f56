//! The preprocessing run: scan, split, decode → crop → resize → JPEG in parallel,
//! then the CSVs, the channel statistics and the report.
//!
//! The output folder's checks are in `output`, the per-image work in `worker`; the
//! format, I/O, decoding, scanning and statistics are modules of their own.

use std::{fs, path::Path, time::Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use serde::Serialize;

use crate::{
    config::PrepConfig,
    decode::DecodeOptions,
    error::{IoContext, PrepError, Result},
    format::{
        CATEGORIES_CSV, CATEGORY_HEADER, LIST_HEADER, MARKER_DONE, MARKER_FILE, REPORT_JSON,
        RGB_MEAN_JSON, TRAIN_CSV, TRAIN_DIR, VAL_CSV, VAL_DIR,
    },
    io::write_output,
    output::{check_input, check_output, prepare_output},
    report::{FileWarning, PrepCounts, PrepReport, PrepTimings, SkippedFile},
    scan::{ClassFolder, Scan, scan},
    stats::RgbAccumulator,
    worker::{Job, Outcome, Worker, plan_jobs},
};

/// A user-supplied label function (folder name → label).
pub type LabelFn<'a> = Box<dyn Fn(&str) -> String + Send + Sync + 'a>;

/// Runs preprocessing with options beyond the config file.
///
/// ```no_run
/// use alexnet_prep::{PrepConfig, Preprocessor};
/// let config = PrepConfig {
///     input: Some("256_ObjectCategories".into()),
///     output: Some("processed".into()),
///     ..PrepConfig::default()
/// };
/// let report = Preprocessor::new(config).overwrite(true).run()?;
/// println!("{} images written", report.counts.written);
/// # Ok::<(), alexnet_prep::PrepError>(())
/// ```
pub struct Preprocessor<'a> {
    config: PrepConfig,
    overwrite: bool,
    progress: ProgressBar,
    label_fn: Option<LabelFn<'a>>,
}

/// Preprocesses with `config` and no progress bar; see [`Preprocessor`] for more options.
pub fn preprocess(config: &PrepConfig) -> Result<PrepReport> {
    Preprocessor::new(config.clone()).run()
}

/// The progress bar style used by the examples: count, rate and ETA.
pub fn progress_bar(message: &str) -> ProgressBar {
    styled_progress_bar(
        0,
        "{msg} [{bar:30}] {pos}/{len} {per_sec} ETA {eta} ({elapsed})",
        message,
    )
}

/// A bar of `length` steps with indicatif's `template`, drawn on stderr four times a
/// second when stderr is a terminal (hidden otherwise, so piped output stays clean).
pub fn styled_progress_bar(length: u64, template: &str, message: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr_with_hz(4));
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message.to_string());
    bar
}

#[derive(Serialize)]
struct ListRow<'a> {
    image: &'a str,
    class: usize,
    source: String,
}

#[derive(Serialize)]
struct CategoryRow<'a> {
    id: usize,
    label: &'a str,
    folder: &'a str,
    count: usize,
    train: usize,
    val: usize,
}

impl<'a> Preprocessor<'a> {
    /// A run of `config` that refuses a non-empty output and shows no progress.
    pub fn new(config: PrepConfig) -> Self {
        Self {
            config,
            overwrite: false,
            progress: ProgressBar::hidden(),
            label_fn: None,
        }
    }

    /// Allows replacing the outputs of an earlier run in the output folder (only files
    /// alexnet-prep writes are removed; a folder not written by it is refused).
    pub fn overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }

    /// Reports progress on `bar` (its length is set by the run).
    pub fn progress(mut self, bar: ProgressBar) -> Self {
        self.progress = bar;
        self
    }

    /// Derives labels from folder names with `label_fn` instead of `config.label`.
    pub fn label_fn(mut self, label_fn: impl Fn(&str) -> String + Send + Sync + 'a) -> Self {
        self.label_fn = Some(Box::new(label_fn));
        self
    }

    /// Runs preprocessing and returns the report that was also written to
    /// `prep-report.json`.
    pub fn run(self) -> Result<PrepReport> {
        let started = Instant::now();
        let config = &self.config;
        config.validate()?;
        let input = check_input(config.input_dir()?)?;
        let output = config.output_dir()?;
        check_output(&input, output, self.overwrite)?;
        let mut scan = scan(&input, config.nested, config.max_file_bytes)?;
        if scan.classes.is_empty() {
            return Err(PrepError::NoClasses(input));
        }
        // Only now, with every check passed, is anything written or removed.
        prepare_output(output)?;
        let jobs = plan_jobs(&scan.classes, config);
        let scan_s = started.elapsed().as_secs_f64();
        let process_started = Instant::now();
        let (outcomes, threads) = self.process(&input, output, &jobs)?;
        let process_s = process_started.elapsed().as_secs_f64();
        // Everything below is cheap bookkeeping, in the deterministic job order.
        let tally = Tally::of(&jobs, outcomes, &mut scan);
        let Some(rgb_stats) = tally.train_stats.finish() else {
            return Err(PrepError::NoImages(input));
        };
        let labels: Vec<String> = scan
            .classes
            .iter()
            .map(|class| match &self.label_fn {
                Some(label_fn) => label_fn(&class.name),
                None => config.label.label(&class.name),
            })
            .collect();
        let categories = tally.categories(&scan.classes, &labels);
        let empty_classes: Vec<String> = categories
            .iter()
            .filter(|row| row.count == 0)
            .map(|row| row.folder.to_string())
            .collect();
        for folder in &empty_classes {
            tracing::warn!("class folder {folder} has no usable image");
        }
        write_csv(&output.join(CATEGORIES_CSV), &CATEGORY_HEADER, &categories)?;
        write_output(&output.join(RGB_MEAN_JSON), &to_json(&rgb_stats)?)?;
        write_csv(&output.join(VAL_CSV), &LIST_HEADER, &tally.val_rows)?;
        write_csv(&output.join(TRAIN_CSV), &LIST_HEADER, &tally.train_rows)?;
        let images = tally.train_rows.len() + tally.val_rows.len();
        let report = PrepReport {
            version: env!("CARGO_PKG_VERSION").to_string(),
            config: config.clone(),
            counts: tally.counts,
            skipped: tally.skipped,
            warnings: tally.warnings,
            ignored_top_level: scan.ignored_top_level,
            empty_classes,
            timings: PrepTimings {
                scan_s,
                process_s,
                total_s: started.elapsed().as_secs_f64(),
                images_per_s: images as f64 / process_s.max(1e-9),
                threads,
            },
        };
        write_output(&output.join(REPORT_JSON), &to_json(&report)?)?;
        write_output(&output.join(MARKER_FILE), MARKER_DONE.as_bytes())?;
        Ok(report)
    }

    /// Runs every job on a pool of `prep.jobs` threads (0: every core); returns the
    /// outcomes in job order and the thread count.
    fn process(&self, input: &Path, output: &Path, jobs: &[Job]) -> Result<(Vec<Outcome>, usize)> {
        let config = &self.config;
        for dir in [TRAIN_DIR, VAL_DIR] {
            fs::create_dir_all(output.join(dir)).at(output.join(dir))?;
        }
        let threads = if config.jobs == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            config.jobs
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|source| PrepError::ThreadPool {
                jobs: threads,
                source,
            })?;
        self.progress.set_length(jobs.len() as u64);
        let decode_options = DecodeOptions {
            max_pixels: config.max_pixels,
            alpha_background: config.alpha_background,
        };
        let outcomes = pool.install(|| {
            jobs.par_iter()
                .map_init(
                    || Worker::new(config),
                    |worker, job| {
                        let outcome = worker.process(input, output, job, &decode_options);
                        self.progress.inc(1);
                        outcome
                    },
                )
                .collect::<Result<Vec<_>>>()
        })?;
        self.progress.finish();
        Ok((outcomes, threads))
    }
}

/// The run's bookkeeping, gathered in job order: counts, skips, warnings, the list rows
/// of each split, per-class counts and the training images' channel sums.
struct Tally<'j> {
    counts: PrepCounts,
    skipped: Vec<SkippedFile>,
    warnings: Vec<FileWarning>,
    train_stats: RgbAccumulator,
    /// `(train, val)` images per class.
    per_class: Vec<(usize, usize)>,
    train_rows: Vec<ListRow<'j>>,
    val_rows: Vec<ListRow<'j>>,
}

impl<'j> Tally<'j> {
    fn of(jobs: &'j [Job], outcomes: Vec<Outcome>, scan: &mut Scan) -> Self {
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
            per_class: vec![(0, 0); scan.classes.len()],
            train_rows: Vec::new(),
            val_rows: Vec::new(),
        };
        for (job, outcome) in jobs.iter().zip(outcomes) {
            tally.add(job, outcome);
        }
        tally.skipped.sort_by(|a, b| a.path.cmp(&b.path));
        let counts = &mut tally.counts;
        counts.train = tally.train_rows.len();
        counts.val = tally.val_rows.len();
        counts.written = counts.train + counts.val;
        counts.skipped = tally.skipped.len();
        counts.warnings = tally.warnings.len();
        tally
    }

    fn add(&mut self, job: &'j Job, outcome: Outcome) {
        let source = job.source.to_string_lossy().into_owned();
        let (stats, warning) = match outcome {
            Outcome::Skipped(reason) => {
                tracing::warn!("skipped {source}: {reason}");
                self.skipped.push(SkippedFile {
                    path: source,
                    reason,
                });
                return;
            }
            Outcome::Written { stats, warning } => (stats, warning),
        };
        if let Some(warning) = warning {
            tracing::warn!("{source}: {warning}");
            self.warnings.push(FileWarning {
                path: source.clone(),
                warning,
            });
        }
        if let Some(stats) = stats {
            self.train_stats = std::mem::take(&mut self.train_stats).merge(stats);
        }
        if job.source.components().count() > 2 {
            self.counts.nested_included += 1;
        }
        let row = ListRow {
            image: &job.name,
            class: job.class,
            source,
        };
        if job.val {
            self.per_class[job.class].1 += 1;
            self.val_rows.push(row);
        } else {
            self.per_class[job.class].0 += 1;
            self.train_rows.push(row);
        }
    }

    /// One `categories.csv` row per class folder.
    fn categories<'c>(
        &self,
        classes: &'c [ClassFolder],
        labels: &'c [String],
    ) -> Vec<CategoryRow<'c>> {
        classes
            .iter()
            .zip(labels)
            .zip(&self.per_class)
            .enumerate()
            .map(|(id, ((class, label), &(train, val)))| CategoryRow {
                id,
                label,
                folder: &class.name,
                count: train + val,
                train,
                val,
            })
            .collect()
    }
}

fn to_json(value: &impl Serialize) -> Result<Vec<u8>> {
    let mut text = serde_json::to_vec_pretty(value).map_err(|error| PrepError::InvalidConfig {
        field: "prep",
        reason: format!("could not serialise JSON: {error}"),
    })?;
    text.push(b'\n');
    Ok(text)
}

/// Writes `rows` under an explicit header, so an empty list still has its header.
fn write_csv<T: Serialize>(path: &Path, header: &[&str], rows: &[T]) -> Result<()> {
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
