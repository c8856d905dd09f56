//! Dynamic loss scaling for f16, as PyTorch's `GradScaler`: the loss is multiplied by a
//! scale before the backward pass; a step whose gradients overflow is skipped and the
//! scale backs off; after `growth_interval` clean steps it grows.

use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};

/// Dynamic loss scaling for `f16` (as PyTorch's `GradScaler`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossScaleConfig {
    /// Starting scale.
    pub initial: f32,
    /// Multiplier after `growth_interval` steps without overflow.
    pub growth_factor: f32,
    /// Multiplier when a step overflows (the step is skipped).
    pub backoff_factor: f32,
    /// Clean steps between growths.
    pub growth_interval: u64,
    /// Consecutive steps that may overflow at the smallest scale ([`MIN_LOSS_SCALE`])
    /// before the run stops as diverged: there, scaling down can no longer help.
    pub max_overflows_at_min_scale: u64,
}

/// The smallest f16 loss scale: backing off stops here.
pub const MIN_LOSS_SCALE: f32 = 1.0;

impl Default for LossScaleConfig {
    fn default() -> Self {
        Self {
            initial: 65536.0,
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 2000,
            max_overflows_at_min_scale: 20,
        }
    }
}

impl LossScaleConfig {
    /// Checks the values; errors name the key.
    pub fn validate(&self) -> Result<()> {
        if !(self.initial.is_finite() && self.initial >= 1.0) {
            return Err(invalid(
                "train.loss_scale.initial",
                format!("{} is not >= 1", self.initial),
            ));
        }
        if !(self.growth_factor > 1.0 && self.growth_factor.is_finite()) {
            return Err(invalid("train.loss_scale.growth_factor", "must be > 1"));
        }
        if !(self.backoff_factor > 0.0 && self.backoff_factor < 1.0) {
            return Err(invalid(
                "train.loss_scale.backoff_factor",
                "must be in (0, 1)",
            ));
        }
        if self.growth_interval == 0 {
            return Err(invalid(
                "train.loss_scale.growth_interval",
                "must be at least 1",
            ));
        }
        if self.max_overflows_at_min_scale == 0 {
            return Err(invalid(
                "train.loss_scale.max_overflows_at_min_scale",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Dynamic loss-scaling state (f16).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossScaleState {
    /// Current scale.
    pub scale: f32,
    /// Steps since the last overflow or growth.
    pub good_steps: u64,
    /// Consecutive overflowing steps at the smallest scale (divergence when it reaches
    /// `train.loss_scale.max_overflows_at_min_scale`).
    #[serde(default)]
    pub overflows_at_min: u64,
}

/// The scale and its rules.
#[derive(Debug, Clone)]
pub struct LossScaler {
    state: LossScaleState,
    growth_factor: f32,
    backoff_factor: f32,
    growth_interval: u64,
    max_overflows_at_min: u64,
}

impl LossScaler {
    /// A scaler with `config`'s rules, continuing from `state` (a checkpoint's, or a new
    /// run's initial scale).
    pub fn new(config: &LossScaleConfig, state: LossScaleState) -> Self {
        Self {
            state,
            growth_factor: config.growth_factor,
            backoff_factor: config.backoff_factor,
            growth_interval: config.growth_interval,
            max_overflows_at_min: config.max_overflows_at_min_scale,
        }
    }

    /// The current scale.
    pub fn scale(&self) -> f32 {
        self.state.scale
    }

    /// What a checkpoint records.
    pub fn state(&self) -> &LossScaleState {
        &self.state
    }

    /// A step overflowed and was skipped: back off, down to [`MIN_LOSS_SCALE`], where
    /// overflows in a row are counted.
    pub fn overflowed(&mut self) {
        if self.state.scale <= MIN_LOSS_SCALE {
            self.state.overflows_at_min += 1;
        }
        self.state.scale = (self.state.scale * self.backoff_factor).max(MIN_LOSS_SCALE);
        self.state.good_steps = 0;
    }

    /// A step was applied: grow after `growth_interval` of them in a row.
    pub fn stepped(&mut self) {
        self.state.overflows_at_min = 0;
        self.state.good_steps += 1;
        if self.state.good_steps >= self.growth_interval {
            self.state.scale *= self.growth_factor;
            self.state.good_steps = 0;
        }
    }

    /// Whether steps have overflowed at the smallest scale as many times in a row as
    /// `train.loss_scale.max_overflows_at_min_scale` allows: f16 cannot train this model.
    pub fn exhausted(&self) -> bool {
        self.state.overflows_at_min >= self.max_overflows_at_min
    }

    /// Overflows in a row at the smallest scale.
    pub fn overflows_at_min(&self) -> u64 {
        self.state.overflows_at_min
    }
}
