//! AlexNet on Burn: dataset preparation, augmentation, the model and the training
//! engine, re-exported from their crates so one dependency brings them all.
//!
//! ```no_run
//! use alexnet::{prep, train};
//!
//! let mut config = train::ExperimentConfig::load("configs/caltech256.toml".as_ref())?;
//! train::commands::resolve_data(&mut config, true)?;
//! config.train.run_dir = Some(train::commands::default_run_dir("caltech256"));
//! let summary = train::trainer::train(&config, &mut |_| true)?;
//! println!("{} epochs, best checkpoint in {}", summary.history.len(), summary.run_dir.display());
//! # let _ = prep::PrepConfig::default();
//! # Ok::<(), train::TrainError>(())
//! ```
//!
//! The crates can be used one by one: [`prep`] (no deep-learning dependency),
//! [`augment`] (no deep-learning dependency), [`kernels`] (faster layers for any Burn
//! model), [`model`], [`train`]. The examples
//! `preprocess_caltech`, `train_caltech`, `test_caltech` and `bench` compose them.

pub use alexnet_augment as augment;
pub use alexnet_kernels as kernels;
pub use alexnet_model as model;
pub use alexnet_prep as prep;
pub use alexnet_train as train;
/// Burn, as the crates use it (devices, tensors, modules).
pub use alexnet_train::burn;
