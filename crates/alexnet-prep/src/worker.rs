//! The per-image work of a preprocessing run: the job list (split and output names),
//! and a worker that reads, decodes, resizes, encodes and writes one image.

use std::{
    collections::HashSet,
    fs,
    path::{Path, PathBuf},
};

use crate::{
    config::{NearDuplicates, PrepConfig},
    decode::{DecodeOptions, decode_rgb8},
    error::Result,
    format::Split,
    io::write_output,
    neardup::{Signature, signature},
    report::SkipReason,
    scan::ClassFolder,
    stats::RgbAccumulator,
    transform::{SquareResizer, encode_jpeg},
};

/// One image to produce.
pub(crate) struct Job {
    pub class: usize,
    /// Relative to the input folder.
    pub source: PathBuf,
    /// The output file name.
    pub name: String,
    pub split: Split,
}

/// What became of a job's image.
pub(crate) enum Outcome {
    Written {
        stats: Option<Box<RgbAccumulator>>,
        warning: Option<String>,
        /// The written image's signature, unless near duplicates are off.
        signature: Option<Signature>,
    },
    Skipped(SkipReason),
}

/// Every image to produce, in class and file order, each with its split (`splits`, as
/// listed) and a unique output name.
pub(crate) fn plan_jobs(classes: &[ClassFolder], splits: &[Vec<Split>]) -> Vec<Job> {
    let mut used = HashSet::new();
    let mut jobs = Vec::new();
    for (class_id, (class, class_splits)) in classes.iter().zip(splits).enumerate() {
        for (source, &split) in class.files.iter().zip(class_splits) {
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
                split,
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
pub(crate) struct Worker {
    resizer: SquareResizer,
    quality: u8,
    max_file_bytes: u64,
    hash: bool,
    encoded: Vec<u8>,
}

impl Worker {
    pub(crate) fn new(config: &PrepConfig) -> Self {
        Self {
            resizer: SquareResizer::new(config.size, config.center_crop, config.filter),
            quality: config.jpeg_quality,
            max_file_bytes: config.max_file_bytes,
            hash: config.near_duplicates != NearDuplicates::Off,
            encoded: Vec::new(),
        }
    }

    /// Reads, decodes, resizes, encodes and writes one image.
    pub(crate) fn process(
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
        let signature = self.hash.then(|| signature(&resized));
        if let Err(error) = encode_jpeg(&resized, self.quality, &mut self.encoded) {
            return Ok(Outcome::Skipped(SkipReason::Unreadable(error)));
        }
        // Statistics come from the bytes actually written, decoded as a loader will.
        let stats = if job.split != Split::Train {
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
            Some(Box::new(stats))
        };
        write_output(&output.join(job.split.dir()).join(&job.name), &self.encoded)?;
        Ok(Outcome::Written {
            stats,
            warning: decoded.warning,
            signature,
        })
    }
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
