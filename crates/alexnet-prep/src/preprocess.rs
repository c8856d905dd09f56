//! The preprocessing run: list and split (`layout`), decode → crop → resize → JPEG in parallel,
//! then the CSVs, the channel statistics and the report.
//!
//! The output folder's checks are in `output`, the per-image work in `worker`, the
//! bookkeeping and the lists in `tally`; the format, I/O, decoding, scanning, near
//! duplicates and statistics are modules of their own.

use std::{fs, path::Path, time::Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use serde::Serialize;

use crate::{
    config::PrepConfig,
    decode::DecodeOptions,
    error::{IoContext, PrepError, Result},
    format::Split,
    format::{MARKER_DONE, MARKER_FILE, REPORT_JSON, RGB_MEAN_JSON},
    io::write_output,
    layout::list_input,
    output::{check_input, check_output, prepare_output},
    report::{PrepReport, PrepTimings},
    tally::Tally,
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
    stop: runfiles::StopRequest,
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

impl<'a> Preprocessor<'a> {
    /// A run of `config` that refuses a non-empty output and shows no progress.
    pub fn new(config: PrepConfig) -> Self {
        Self {
            config,
            overwrite: false,
            progress: ProgressBar::hidden(),
            label_fn: None,
            stop: runfiles::StopRequest::new(),
        }
    }

    /// Stops once `stop` is requested ([`runfiles::StopRequest::on_signals`]: on SIGINT
    /// or SIGTERM): the images in flight finish, no new one starts, and the run returns
    /// [`PrepError::Stopped`] with the output still marked in progress, which a training
    /// run refuses and `--overwrite` replaces.
    pub fn stop_on(mut self, stop: runfiles::StopRequest) -> Self {
        self.stop = stop;
        self
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
        let mut listing = list_input(&input, config)?;
        if listing.scan.classes.is_empty() {
            return Err(PrepError::NoClasses(input));
        }
        // Only now, with every check passed, is anything written or removed.
        prepare_output(output)?;
        let jobs = plan_jobs(&listing.scan.classes, &listing.splits);
        let scan_s = started.elapsed().as_secs_f64();
        let process_started = Instant::now();
        let (outcomes, threads) = self.process(&input, output, &jobs)?;
        let process_s = process_started.elapsed().as_secs_f64();
        // Everything below is bookkeeping, in the deterministic job order.
        let mut tally = Tally::of(&jobs, outcomes, &mut listing.scan);
        tally.near_duplicates(config, output)?;
        let Some(rgb_stats) = std::mem::take(&mut tally.train_stats).finish() else {
            return Err(PrepError::NoImages(input));
        };
        let labels: Vec<String> = listing
            .scan
            .classes
            .iter()
            .map(|class| match &self.label_fn {
                Some(label_fn) => label_fn(&class.name),
                None => config.label.label(&class.name),
            })
            .collect();
        write_output(&output.join(RGB_MEAN_JSON), &to_json(&rgb_stats)?)?;
        let empty_classes = tally.write_lists(output, &listing.scan.classes, &labels)?;
        for folder in &empty_classes {
            tracing::warn!("class folder {folder} has no usable image");
        }
        let report = PrepReport {
            version: env!("CARGO_PKG_VERSION").to_string(),
            config: config.clone(),
            layout: listing.layout,
            fingerprint: Some(tally.fingerprint(&labels)),
            counts: tally.counts,
            skipped: tally.skipped,
            warnings: tally.warnings,
            near_duplicates: tally.near_duplicates,
            labels_without_file: listing.labels_without_file,
            ignored_top_level: listing.scan.ignored_top_level,
            empty_classes,
            timings: PrepTimings {
                scan_s,
                process_s,
                total_s: started.elapsed().as_secs_f64(),
                images_per_s: jobs.len() as f64 / process_s.max(1e-9),
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
        for split in Split::ALL {
            let dir = output.join(split.dir());
            if split != Split::Test || jobs.iter().any(|job| job.split == split) {
                fs::create_dir_all(&dir).at(&dir)?;
            }
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
                        if let Some(signal) = self.stop.requested() {
                            return Err(PrepError::Stopped {
                                signal,
                                signal_name: runfiles::StopRequest::signal_name(signal),
                                output: output.to_path_buf(),
                            });
                        }
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

fn to_json(value: &impl Serialize) -> Result<Vec<u8>> {
    let mut text = serde_json::to_vec_pretty(value).map_err(|error| PrepError::InvalidConfig {
        field: "prep",
        reason: format!("could not serialise JSON: {error}"),
    })?;
    text.push(b'\n');
    Ok(text)
}
