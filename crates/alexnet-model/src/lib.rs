//! AlexNet on Burn 0.22: the BatchNorm network of the PyTorch post this project
//! reproduces ([`Variant::Seed`], the default) and the 2012 paper's network with Local
//! Response Normalization and the optional two-tower split ([`Variant::Paper`]), and
//! `torchvision.models.alexnet` ([`Variant::Torchvision`]), whose PyTorch weights (and
//! the original's checkpoints) load with [`AlexNet::load_pytorch`].
//!
//! ```
//! use alexnet_model::{AlexNetConfig, Variant};
//! use burn::{prelude::*, tensor::FloatDType};
//!
//! let config = AlexNetConfig::seed(256);
//! let summary = config.summary(227, 227)?;
//! assert_eq!(summary.total_params(), 59_349_312);
//!
//! let device = Device::flex();
//! let model = config.with_num_classes(4).init(&device)?;
//! let log_probs = model.valid().forward(Tensor::zeros([1, 3, 67, 67], &device), FloatDType::F32)?;
//! assert_eq!(log_probs.dims(), [1, 4]);
//! # Ok::<(), alexnet_model::ModelError>(())
//! ```
//!
//! The output is **log-probabilities**, as in the original: train with the negative
//! log-likelihood; `exp()` gives probabilities. Inputs are `[N, 3, H, W]` with H and W of
//! at least [`MIN_INPUT`] (67; 63 for torchvision's); an adaptive average pool before the classifier lets any
//! size from there work (at 227 it is the identity).
//!
//! Burn 0.22 details handled here: max-pool strides are set to 2 (Burn defaults them to
//! the kernel size); biases are set explicitly (Burn's initializers draw biases too);
//! BatchNorm and Dropout train only on an autodiff device in training mode.

mod config;
mod error;
mod layers;
mod lrn;
mod model;
mod pytorch;
mod store;
mod summary;
mod variant;

pub use config::{AlexNetConfig, DEFAULT_INPUT, MIN_INPUT, Variant};
pub use error::{ModelError, Result};
pub use lrn::LrnConfig;
pub use model::{AlexNet, ConvBlock, Dense};
pub use pytorch::KeyLayout;
pub use summary::{LayerSummary, ModelSummary};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
