//! The training and evaluation engine: a prepared dataset (alexnet-prep), augmentation
//! pipelines (alexnet-augment) and the network (alexnet-model) trained with SGD as the
//! original, with what long runs need — exact resume from atomic checkpoints,
//! ReduceLROnPlateau, TensorBoard, NaN detection, multiple devices and mixed precision.
//!
//! ```no_run
//! use alexnet_train::{config::ExperimentConfig, fit, session};
//!
//! let mut config = ExperimentConfig::load("configs/demo.toml".as_ref())?;
//! session::resolve_data(&mut config, true)?; // builds the demo dataset when none is set
//! config.train.run_dir = Some(session::default_run_dir("demo"));
//! let summary = fit::train(&config, &mut |metrics| {
//!     println!("epoch {}: val acc {:.1}%", metrics.epoch, 100.0 * metrics.val_top1);
//!     true // keep going
//! })?;
//! println!("checkpoint: {:?}", summary.checkpoint);
//! # Ok::<(), alexnet_train::error::TrainError>(())
//! ```
//!
//! Modules, in the order a run uses them: [`config`] (the TOML file and the flags that
//! override it), [`device`] (`--device` strings; the only place a backend is named),
//! [`session`] (a run checked and loaded before anything is written), [`data`] (Burn
//! dataset, batcher and loaders), [`step`] (loss and batch gradients over devices),
//! [`loss_scale`] (f16), [`sgd`], [`schedule`] (ReduceLROnPlateau and Burn's
//! schedulers), [`fit`] (the epoch loop), [`eval`] (evaluation and testing a
//! checkpoint), [`export`] (a checkpoint to PyTorch's key names), [`classify`] (a model on image files), [`checkpoint`], [`tensorboard`], [`logging`], [`metrics`], [`io`], [`distributed`] (data-parallel training over processes: MPI).

pub mod checkpoint;
pub mod classify;
pub mod config;
pub mod data;
pub mod device;
pub mod distributed;
pub mod error;
pub mod eval;
pub mod export;
pub mod fit;
pub mod io;
pub mod logging;
pub mod loss_scale;
pub mod metrics;
mod report;
pub mod schedule;
pub mod session;
pub mod sgd;
pub mod step;
pub mod tensorboard;

/// The Burn version this crate is built on, for devices and tensors in your own code.
pub use burn;
pub use config::ExperimentConfig;
pub use error::{Result, TrainError};
