//! Local Response Normalization as the AlexNet paper defines it.

use burn::nn::{LocalResponseNorm, LocalResponseNormConfig as BurnLrnConfig};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Local Response Normalization across channels, in the paper's form (section 3.3):
///
/// `b[c] = a[c] / (k + alpha · Σ a[j]²)^beta`, the sum over the `size` channels
/// centred on `c` (zero beyond the edges).
///
/// PyTorch's `nn.LocalResponseNorm` divides `alpha` by `size`; this config takes the
/// paper's `alpha` (default 1e-4) and does the conversion, so
/// `LrnConfig { alpha: a, .. }` equals `nn.LocalResponseNorm(size, alpha=a*size, ...)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LrnConfig {
    /// Channels in the neighbourhood (the paper's n = 5).
    pub size: usize,
    /// The paper's α = 1e-4 (not divided by `size`).
    pub alpha: f64,
    /// The paper's β = 0.75.
    pub beta: f64,
    /// The paper's k = 2.
    pub k: f64,
}

impl Default for LrnConfig {
    fn default() -> Self {
        Self {
            size: 5,
            alpha: 1e-4,
            beta: 0.75,
            k: 2.0,
        }
    }
}

impl LrnConfig {
    /// Checks the values; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field, reason: String| Err(ModelError::InvalidConfig { field, reason });
        if self.size == 0 {
            return invalid("model.lrn.size", "must be at least 1".into());
        }
        for (field, value) in [
            ("model.lrn.alpha", self.alpha),
            ("model.lrn.beta", self.beta),
        ] {
            if !value.is_finite() || value < 0.0 {
                return invalid(
                    field,
                    format!("{value} is not a finite non-negative number"),
                );
            }
        }
        if !self.k.is_finite() || self.k <= 0.0 {
            return invalid(
                "model.lrn.k",
                format!("{} is not a finite positive number", self.k),
            );
        }
        Ok(())
    }

    /// Builds the layer (Burn's `LocalResponseNorm`, which has PyTorch's semantics).
    pub fn init(&self) -> Result<LocalResponseNorm> {
        self.validate()?;
        Ok(BurnLrnConfig::new(self.size)
            .with_alpha(self.alpha * self.size as f64)
            .with_beta(self.beta)
            .with_k(self.k)
            .init())
    }
}
