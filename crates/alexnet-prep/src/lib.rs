//! Fast, robust preparation of class-per-folder image datasets (Caltech-256,
//! ImageNet-style trees) for AlexNet training, and a reader for the result.
//!
//! ```no_run
//! use alexnet_prep::{PrepConfig, Preprocessor, ProcessedDataset, Split};
//!
//! let config = PrepConfig {
//!     input: Some("256_ObjectCategories".into()),
//!     output: Some("processed".into()),
//!     ..PrepConfig::default() // 20% validation, center crop, 256×256, seed 42
//! };
//! let report = Preprocessor::new(config).run()?;
//! println!("{} written, {} skipped", report.counts.written, report.counts.skipped);
//!
//! let data = ProcessedDataset::open("processed")?;
//! println!("{} training images, mean {:?}", data.items(Split::Train).len(), data.stats().mean);
//! # Ok::<(), alexnet_prep::PrepError>(())
//! ```
//!
//! # What a run does
//! - Classes are the top-level folders, sorted by name (ids are stable across
//!   machines); labels come from folder names by a [`LabelRule`] or a function.
//!   Top-level files and hidden folders are not classes; they are listed in the report.
//! - Files below a class folder are candidates; those in nested folders are used or
//!   skipped according to [`NestedDirs`], and counted either way. Every file that is
//!   not an image, or does not decode, is skipped with its reason in the report.
//! - Seeded, stratified splits (per class, by its own seeded shuffle): validation, test
//!   and training by fraction ([`SplitRule::Fractions`]) or N training images per class
//!   ([`SplitRule::TrainPerClass`]); or a presplit input kept as given ([`Layout`]).
//! - Near duplicates across splits (a perceptual hash of each written image, confirmed
//!   on a thumbnail) and a
//!   [`DatasetFingerprint`] of the split lists, in the report.
//! - Decoding handles grayscale, CMYK/YCCK, RGBA (composited over a background), 16-bit,
//!   palette and EXIF-rotated images; a truncated JPEG is an error, not a grey image.
//! - Center crop, SIMD resize to `size × size`, JPEG; in parallel, streaming.
//! - Outputs: `train/`, `val/`, `test/` and their CSVs, `categories.csv`,
//!   `rgb_mean.json` (exact per-channel mean, covariance and its eigen-decomposition
//!   over the written training images), `prep-report.json`. Every file is written to a
//!   temporary name and renamed, and the lists are written last, so an interrupted run
//!   leaves nothing a reader would trust. The input is only ever read.

mod command;
mod config;
mod dataset;
mod decode;
pub mod demo;
mod error;
mod fingerprint;
mod format;
pub mod io;
mod layout;
mod neardup;
mod output;
mod preprocess;
mod report;
mod scan;
mod split;
mod stats;
mod tally;
mod transform;
mod worker;

pub use command::{PreprocessOutcome, preprocess_command};
pub use config::{
    LabelRule, Layout, NearDuplicates, NestedDirs, PrepConfig, PrepOverrides, ResizeFilter,
};
pub use dataset::{Category, Item, ProcessedDataset};
pub use decode::{DecodeError, DecodeOptions, Decoded, decode_rgb8};
pub use demo::{
    DemoConfig, DemoPrepOptions, DemoSummary, PreparedDemo, demo_input, generate_demo, prepare_demo,
};
pub use error::{PrepError, Result};
pub use fingerprint::DatasetFingerprint;
pub use format::{
    CATEGORIES_CSV, MARKER_FILE, REPORT_JSON, RGB_MEAN_JSON, Split, TEST_CSV, TEST_DIR, TRAIN_CSV,
    TRAIN_DIR, VAL_CSV, VAL_DIR,
};
pub use neardup::{
    MAX_THUMBNAIL_DIFFERENCE, NearDuplicate, Signature, cross_split_pairs, signature,
    thumbnail_difference,
};
pub use preprocess::{LabelFn, Preprocessor, preprocess, progress_bar, styled_progress_bar};
pub use report::{FileWarning, PrepCounts, PrepReport, PrepTimings, SkipReason, SkippedFile};
pub use split::{SplitRule, SplitSizes, stratified_splits};
pub use stats::{RgbAccumulator, RgbStats, symmetric_eigen3};
pub use transform::{SquareResizer, center_square, encode_jpeg};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
