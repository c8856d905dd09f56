//! Dynamic loss scaling for f16, as PyTorch's `GradScaler`: the loss is multiplied by a
//! scale before the backward pass; a step whose gradients overflow is skipped and the
//! scale backs off; after `growth_interval` clean steps it grows.

use crate::{
    checkpoint::LossScaleState,
    config::{LossScaleConfig, MIN_LOSS_SCALE},
};

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
