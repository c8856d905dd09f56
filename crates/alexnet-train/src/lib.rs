//! The training and evaluation engine: a prepared dataset (alexnet-prep), augmentation
//! pipelines (alexnet-augment) and the network (alexnet-model) trained with SGD as the
//! original, with what long runs need — exact resume from atomic checkpoints,
//! ReduceLROnPlateau, TensorBoard, NaN detection, multiple devices and mixed precision.
//!
//! ```no_run
//! use alexnet_train::{ExperimentConfig, commands, trainer};
//!
//! let mut config = ExperimentConfig::demo();
//! commands::resolve_data(&mut config, true)?; // builds the demo dataset when none is set
//! config.train.run_dir = Some(commands::default_run_dir("demo"));
//! let summary = trainer::train(&config, &mut |metrics| {
//!     println!("epoch {}: val acc {:.1}%", metrics.epoch, 100.0 * metrics.val_top1);
//!     true // keep going
//! })?;
//! println!("checkpoint: {:?}", summary.checkpoint);
//! # Ok::<(), alexnet_train::error::TrainError>(())
//! ```
//!
//! Modules, leaves first: [`error`], [`device`] (`--device` strings; the only place a
//! backend is named), [`io`], [`metrics`], [`logging`] (TensorBoard's files are the [`tfevents`] crate's); [`config`]
//! (the TOML file and the flags that override it; each section beside its owner);
//! [`data`] (Burn dataset, batcher, loaders, shares); [`optim`] (SGD, the schedule, f16
//! loss scaling); [`distributed`] (the process group and MPI); [`step`] (the loss and a
//! batch's gradients over devices and ranks); [`checkpoint`]; [`eval`] (evaluation and
//! testing a checkpoint); [`trainer`] (a run checked, then its epochs, and what is kept
//! of each); [`commands`] (what the examples call, and their one rule for configs and
//! run directories).

pub mod checkpoint;
pub mod commands;
pub mod config;
pub mod confusion;
pub mod data;
pub mod device;
pub mod distributed;
pub mod error;
pub mod eval;
mod faults;
mod inputs;
pub mod io;
mod launcher;
pub mod logging;
pub mod metrics;
pub mod optim;
mod report;
pub mod step;
pub mod trainer;

/// The Burn version this crate is built on, for devices and tensors in your own code.
pub use burn;
pub use config::ExperimentConfig;
pub use error::{Result, TrainError};
pub use inputs::{build_pipelines, check_same_classes, class_labels, resolve_model};
/// The TensorBoard event files a run writes, and their reader.
pub use runfiles::StopRequest;
pub use tfevents;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
