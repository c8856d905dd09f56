//! The training and evaluation engine: a prepared dataset (alexnet-prep), augmentation
//! pipelines (alexnet-augment) and the network (alexnet-model) trained with SGD as the
//! original, with what long runs need — exact resume from atomic checkpoints,
//! ReduceLROnPlateau, TensorBoard, NaN detection, multiple devices and mixed precision.
//!
//! ```no_run
//! use alexnet_train::{config::ExperimentConfig, run, trainer};
//!
//! let mut config = ExperimentConfig::load("configs/demo.toml".as_ref())?;
//! run::resolve_data(&mut config, true)?; // builds the demo dataset when none is set
//! config.train.run_dir = Some(run::default_run_dir("demo"));
//! let summary = trainer::train(&config, &mut |metrics| {
//!     println!("epoch {}: val acc {:.1}%", metrics.epoch, 100.0 * metrics.val_top1);
//!     true // keep going
//! })?;
//! println!("checkpoint: {:?}", summary.checkpoint);
//! # Ok::<(), alexnet_train::error::TrainError>(())
//! ```
//!
//! Modules: [`config`] (the TOML file), [`device`] (`--device` strings; the only place a
//! backend is named), [`data`] (Burn dataset, batcher and loaders), [`schedule`]
//! (ReduceLROnPlateau and Burn's schedulers), [`trainer`] (the loop), [`checkpoint`],
//! [`tensorboard`], [`logging`], [`metrics`], [`run`] (what the examples call).

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod device;
pub mod error;
pub mod logging;
pub mod metrics;
pub mod run;
pub mod schedule;
pub mod sgd;
pub mod tensorboard;
pub mod trainer;

/// The Burn version this crate is built on, for devices and tensors in your own code.
pub use burn;
pub use config::ExperimentConfig;
pub use error::{Result, TrainError};
