//! Which optimizer moves the parameters: SGD (the original's, [`super::Sgd`]) or AdamW
//! (Burn's `AdamW`, which is PyTorch's `torch.optim.AdamW`: decoupled weight decay
//! `p ← p · (1 − lr · wd)`, then `p ← p − lr · m̂ / (√v̂ + ε)` with bias-corrected moments).

use burn::optim::{AdamWConfig, ModuleOptimizer};
use serde::{Deserialize, Serialize};

use super::Sgd;

/// The optimizer (`train.optimizer`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// SGD with momentum, dampening, Nesterov and L2 weight decay (`train.momentum`,
    /// `train.dampening`, `train.nesterov`, `train.weight_decay`).
    #[default]
    Sgd,
    /// AdamW (`train.betas`, `train.eps`, `train.weight_decay` decoupled).
    Adamw,
}

/// AdamW's hyper-parameters, PyTorch's names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWParams {
    /// β1 and β2, the moments' decay.
    pub betas: [f64; 2],
    /// ε added to the denominator.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

impl AdamWParams {
    /// The optimizer over a whole module.
    pub fn init(&self) -> ModuleOptimizer {
        AdamWConfig::new()
            .with_beta_1(self.betas[0] as f32)
            .with_beta_2(self.betas[1] as f32)
            .with_epsilon(self.eps as f32)
            .with_weight_decay(self.weight_decay as f32)
            .init()
    }
}

/// An SGD optimizer over a whole module.
pub fn sgd_optimizer(params: alexnet_kernels::SgdParams) -> ModuleOptimizer {
    ModuleOptimizer::from(Sgd::from(params))
}
