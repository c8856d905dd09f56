//! The preprocessing run: scan, split, decode → crop → resize → JPEG in parallel,
//! then the CSVs, the channel statistics and the report.
//!
//! Over 400 lines: one streaming run whose stages share its bookkeeping (counts, skips,
//! the output folder's ownership); the format, I/O, decoding, scanning and statistics
//! are in modules of their own.

use std::{
    collections::HashSet,
    fs,
    path::{Component, Path, PathBuf},
    time::Instant,
};

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::Serialize;

use crate::{
    config::PrepConfig,
    decode::{DecodeOptions, decode_rgb8},
    error::{IoContext, PrepError, Result},
    format::{
        CATEGORIES_CSV, CATEGORY_HEADER, LIST_HEADER, MARKER_DONE, MARKER_FILE, MARKER_IN_PROGRESS,
        OWNED_ENTRIES, REPORT_JSON, RGB_MEAN_JSON, TRAIN_CSV, TRAIN_DIR, VAL_CSV, VAL_DIR,
    },
    io::{temporary_path, write_output},
    report::{FileWarning, PrepCounts, PrepReport, PrepTimings, SkipReason, SkippedFile},
    scan::scan,
    split::stratified_val_mask,
    stats::RgbAccumulator,
    transform::{SquareResizer, encode_jpeg},
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
    let bar = ProgressBar::new(0);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} ETA {eta} ({elapsed})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message.to_string());
    bar
}

/// One image to produce.
struct Job {
    class: usize,
    source: PathBuf,
    name: String,
    val: bool,
}

enum Outcome {
    Written {
        stats: Option<RgbAccumulator>,
        warning: Option<String>,
    },
    Skipped(SkipReason),
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
        let input = config.input_dir()?;
        let output = config.output_dir()?;
        let input = check_input(input)?;
        check_output(&input, output, self.overwrite)?;
        let scan = scan(&input, config.nested, config.max_file_bytes)?;
        if scan.classes.is_empty() {
            return Err(PrepError::NoClasses(input));
        }
        // Only now, with every check passed, is anything written or removed.
        prepare_output(output)?;
        let labels: Vec<String> = scan
            .classes
            .iter()
            .map(|class| match &self.label_fn {
                Some(label_fn) => label_fn(&class.name),
                None => config.label.label(&class.name),
            })
            .collect();
        let jobs = plan_jobs(&scan.classes, config);
        let scan_s = started.elapsed().as_secs_f64();

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
        let process_started = Instant::now();
        let decode_options = DecodeOptions {
            max_pixels: config.max_pixels,
            alpha_background: config.alpha_background,
        };
        let outcomes: Vec<Outcome> = pool.install(|| {
            jobs.par_iter()
                .map_init(
                    || Worker::new(config),
                    |worker, job| {
                        let outcome = worker.process(&input, output, job, &decode_options);
                        self.progress.inc(1);
                        outcome
                    },
                )
                .collect::<Result<Vec<_>>>()
        })?;
        self.progress.finish();
        let process_s = process_started.elapsed().as_secs_f64();

        // Everything below is cheap bookkeeping, in the deterministic job order.
        let mut counts = PrepCounts {
            classes: scan.classes.len(),
            files: scan.files,
            nested_skipped: scan.nested_skipped,
            ..PrepCounts::default()
        };
        let mut skipped = scan.skipped;
        let mut warnings = Vec::new();
        let mut train_stats = RgbAccumulator::default();
        let mut per_class = vec![(0usize, 0usize); scan.classes.len()];
        let mut train_rows = Vec::new();
        let mut val_rows = Vec::new();
        for (job, outcome) in jobs.iter().zip(outcomes) {
            let source = job.source.to_string_lossy().into_owned();
            match outcome {
                Outcome::Skipped(reason) => {
                    tracing::warn!("skipped {source}: {reason}");
                    skipped.push(SkippedFile {
                        path: source,
                        reason,
                    });
                }
                Outcome::Written { stats, warning } => {
                    if let Some(warning) = warning {
                        tracing::warn!("{source}: {warning}");
                        warnings.push(FileWarning {
                            path: source.clone(),
                            warning,
                        });
                    }
                    if let Some(stats) = stats {
                        train_stats = train_stats.merge(stats);
                    }
                    if job.source.components().count() > 2 {
                        counts.nested_included += 1;
                    }
                    let row = ListRow {
                        image: &job.name,
                        class: job.class,
                        source,
                    };
                    if job.val {
                        per_class[job.class].1 += 1;
                        val_rows.push(row);
                    } else {
                        per_class[job.class].0 += 1;
                        train_rows.push(row);
                    }
                }
            }
        }
        skipped.sort_by(|a, b| a.path.cmp(&b.path));
        counts.train = train_rows.len();
        counts.val = val_rows.len();
        counts.written = counts.train + counts.val;
        counts.skipped = skipped.len();
        counts.warnings = warnings.len();
        let Some(rgb_stats) = train_stats.finish() else {
            return Err(PrepError::NoImages(input));
        };

        let categories: Vec<CategoryRow> = scan
            .classes
            .iter()
            .zip(&labels)
            .zip(&per_class)
            .enumerate()
            .map(|(id, ((class, label), &(train, val)))| CategoryRow {
                id,
                label,
                folder: &class.name,
                count: train + val,
                train,
                val,
            })
            .collect();
        let empty_classes = categories
            .iter()
            .filter(|row| row.count == 0)
            .map(|row| row.folder.to_string())
            .collect::<Vec<_>>();
        for folder in &empty_classes {
            tracing::warn!("class folder {folder} has no usable image");
        }
        write_csv(&output.join(CATEGORIES_CSV), &CATEGORY_HEADER, &categories)?;
        write_output(&output.join(RGB_MEAN_JSON), &to_json(&rgb_stats)?)?;
        write_csv(&output.join(VAL_CSV), &LIST_HEADER, &val_rows)?;
        write_csv(&output.join(TRAIN_CSV), &LIST_HEADER, &train_rows)?;
        let report = PrepReport {
            version: env!("CARGO_PKG_VERSION").to_string(),
            config: config.clone(),
            counts,
            skipped,
            warnings,
            ignored_top_level: scan.ignored_top_level,
            empty_classes,
            timings: PrepTimings {
                scan_s,
                process_s,
                total_s: started.elapsed().as_secs_f64(),
                images_per_s: (train_rows.len() + val_rows.len()) as f64 / process_s.max(1e-9),
                threads,
            },
        };
        write_output(&output.join(REPORT_JSON), &to_json(&report)?)?;
        write_output(&output.join(MARKER_FILE), MARKER_DONE.as_bytes())?;
        Ok(report)
    }
}

fn check_input(input: &Path) -> Result<PathBuf> {
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
fn check_output(input: &Path, output: &Path, overwrite: bool) -> Result<()> {
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
fn prepare_output(output: &Path) -> Result<()> {
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

/// File-name-safe form of `text`: ASCII letters, digits, `.`, `_` and `-` are kept.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Output base name (without `.jpg`) of a source image: `001.ak47/sub/001_0001.jpg` →
/// `001.ak47__sub__001_0001`; other extensions are kept (`x.png` → `x.png`) so that
/// `x.jpg` and `x.png` side by side stay distinct.
fn output_name(source: &Path) -> String {
    let is_jpeg = source
        .extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| ext.eq_ignore_ascii_case("jpg") || ext.eq_ignore_ascii_case("jpeg"));
    let stem = if is_jpeg {
        source.with_extension("")
    } else {
        source.to_path_buf()
    };
    let parts: Vec<String> = stem
        .components()
        .map(|part| sanitize(&part.as_os_str().to_string_lossy()))
        .collect();
    parts.join("__")
}

fn plan_jobs(classes: &[crate::scan::ClassFolder], config: &PrepConfig) -> Vec<Job> {
    let mut used = HashSet::new();
    let mut jobs = Vec::new();
    for (class_id, class) in classes.iter().enumerate() {
        let mask = stratified_val_mask(class.files.len(), config.val_split, config.seed, class_id);
        for (source, &val) in class.files.iter().zip(&mask) {
            let base = output_name(source);
            let mut name = format!("{base}.jpg");
            let mut n = 2;
            while !used.insert(name.clone()) {
                name = format!("{base}-{n}.jpg");
                n += 1;
            }
            jobs.push(Job {
                class: class_id,
                source: source.clone(),
                name,
                val,
            });
        }
    }
    jobs
}

/// The file's bytes, or `Err(size)` when it holds more than `limit` bytes (then only
/// `limit + 1` of them were read).
fn read_at_most(path: &Path, limit: u64) -> std::io::Result<std::result::Result<Vec<u8>, u64>> {
    use std::io::Read;
    let file = fs::File::open(path)?;
    let size = file.metadata().map(|meta| meta.len()).unwrap_or(0);
    let mut bytes = Vec::with_capacity(size.min(limit) as usize);
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Ok(Err(size.max(bytes.len() as u64)));
    }
    Ok(Ok(bytes))
}

/// Per-thread state: the resizer and the encode buffer, reused across images.
struct Worker {
    resizer: SquareResizer,
    quality: u8,
    max_file_bytes: u64,
    encoded: Vec<u8>,
}

impl Worker {
    fn new(config: &PrepConfig) -> Self {
        Self {
            resizer: SquareResizer::new(config.size, config.center_crop, config.filter),
            quality: config.jpeg_quality,
            max_file_bytes: config.max_file_bytes,
            encoded: Vec::new(),
        }
    }

    fn process(
        &mut self,
        input: &Path,
        output: &Path,
        job: &Job,
        options: &DecodeOptions,
    ) -> Result<Outcome> {
        let source = input.join(&job.source);
        // Read at most one byte past the limit: a file that grew since the scan is
        // still never read whole.
        let bytes = match read_at_most(&source, self.max_file_bytes) {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(bytes)) => {
                return Ok(Outcome::Skipped(SkipReason::TooLarge {
                    bytes,
                    limit: self.max_file_bytes,
                }));
            }
            Err(error) => return Ok(Outcome::Skipped(SkipReason::Unreadable(error.to_string()))),
        };
        let decoded = match decode_rgb8(&bytes, options) {
            Ok(decoded) => decoded,
            Err(error) => return Ok(Outcome::Skipped(SkipReason::Decode(error))),
        };
        drop(bytes);
        let resized = match self.resizer.resize(&decoded.image) {
            Ok(resized) => resized,
            Err(error) => return Ok(Outcome::Skipped(SkipReason::Unreadable(error))),
        };
        drop(decoded.image);
        if let Err(error) = encode_jpeg(&resized, self.quality, &mut self.encoded) {
            return Ok(Outcome::Skipped(SkipReason::Unreadable(error)));
        }
        // Statistics come from the bytes actually written, decoded as a loader will.
        let stats = if job.val {
            None
        } else {
            let written = match decode_rgb8(&self.encoded, options) {
                Ok(written) => written,
                Err(error) => {
                    let reason = format!("re-reading the encoded image failed: {error}");
                    return Ok(Outcome::Skipped(SkipReason::Unreadable(reason)));
                }
            };
            let mut stats = RgbAccumulator::default();
            stats.add_image(written.image.as_raw());
            Some(stats)
        };
        let dir = if job.val { VAL_DIR } else { TRAIN_DIR };
        write_output(&output.join(dir).join(&job.name), &self.encoded)?;
        Ok(Outcome::Written {
            stats,
            warning: decoded.warning,
        })
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
