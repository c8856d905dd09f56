//! Declarative, deterministic augmentation for AlexNet training: the original post's
//! pipeline (mean subtraction, horizontal flip, random 227 crop; a 227 squash for
//! evaluation) plus what the paper used and the post skipped — PCA lighting and
//! ten-crop testing — and `random_resized_crop` for those who want it.
//!
//! ```
//! use alexnet_augment::{AugmentConfig, ChannelStats, Pipeline, sample_rng};
//!
//! // The `[augment]` section of a config file.
//! let config: AugmentConfig = toml::from_str(r#"
//!     train = [
//!       { op = "horizontal_flip", p = 0.5 },
//!       { op = "random_crop", size = [227, 227] },
//!       { op = "normalize", mean = "dataset" },
//!       { op = "pca_lighting", std = 0.1 },
//!     ]
//!     eval = [{ op = "ten_crop", size = [227, 227] }, { op = "normalize" }]
//! "#).unwrap();
//! let stats = ChannelStats {
//!     mean: [123.7, 116.3, 103.5],
//!     std: [58.4, 57.1, 57.4],
//!     eigenvalues: [14000.0, 500.0, 120.0],
//!     eigenvectors: [[0.58, 0.58, 0.57], [-0.7, 0.0, 0.7], [0.4, -0.8, 0.4]],
//! };
//! let train = Pipeline::new("augment.train", &config.train, [256, 256], Some(&stats))?;
//! let eval = Pipeline::new("augment.eval", &config.eval, [256, 256], Some(&stats))?;
//! assert_eq!(eval.crops(), 10);
//!
//! let image = image::RgbImage::new(256, 256);
//! // Randomness comes from (seed, epoch, index): reproducible on any number of threads.
//! let chw: Vec<f32> = train.apply(&image, &mut sample_rng(42, 3, 17))?;
//! assert_eq!(chw.len(), 3 * 227 * 227);
//! # Ok::<(), alexnet_augment::AugmentError>(())
//! ```
//!
//! Every op list is validated when the [`Pipeline`] is built (unknown op, crop larger
//! than the image, `p` outside [0, 1], a mean that is not 3 values...), so a bad config
//! fails at start-up with the op and field named, never mid-epoch.
//!
//! Crops, flips and ten-crop only move a window over the 8-bit image, and normalization
//! and PCA lighting are per-channel affine maps that commute with them; the whole
//! pipeline therefore runs as one pass that reads the window's bytes and writes CHW
//! `f32` (the layout a batch tensor wants), resampling only for `resize` and
//! `random_resized_crop`. The values are what applying the ops in the given order gives.

mod config;
mod error;
mod pipeline;
mod rng;
mod stats;
mod step;
mod view;

pub use config::{AugmentConfig, ChannelValues, Filter, OpConfig, Scale};
pub use error::{AugmentError, Result};
pub use pipeline::{ChannelStats, Pipeline};
pub use rng::sample_rng;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
