//! Learning-rate schedules, stepped once per epoch: PyTorch's `ReduceLROnPlateau`
//! (which Burn lacks) and Burn's own schedulers, with their validation and resumable
//! state; the tests check the plateau schedule against PyTorch's own sequence.

use burn::optim::lr_scheduler::{
    cosine::CosineAnnealingLrSchedulerConfig, exponential::ExponentialLrSchedulerConfig,
    linear::LinearLrSchedulerConfig, module_lr_scheduler::ModuleLrScheduler,
    step::StepLrSchedulerConfig,
};
use serde::{Deserialize, Serialize};

use crate::{
    error::{Result, invalid},
    metrics::EpochMetrics,
};

/// Whether a lower or a higher metric is better.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlateauMode {
    /// Lower is better (losses).
    #[default]
    Min,
    /// Higher is better (accuracies).
    Max,
}

/// How `threshold` is applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThresholdMode {
    /// Relative: better means beyond `best · (1 ∓ threshold)`.
    #[default]
    Rel,
    /// Absolute: better means beyond `best ∓ threshold`.
    Abs,
}

/// A per-epoch metric a schedule can follow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Epoch-mean training loss (the original's choice).
    #[default]
    TrainLoss,
    /// Training accuracy over the epoch's augmented batches.
    TrainAccuracy,
    /// Validation loss.
    ValLoss,
    /// Validation top-1 accuracy.
    ValAccuracy,
    /// Validation mean per-class accuracy (not a number for epochs recorded before it
    /// was measured).
    ValMeanPerClass,
}

impl Metric {
    /// The metric's value in `metrics`.
    pub fn of(self, metrics: &EpochMetrics) -> f64 {
        match self {
            Metric::TrainLoss => metrics.train_loss,
            Metric::TrainAccuracy => metrics.train_accuracy,
            Metric::ValLoss => metrics.val_loss,
            Metric::ValAccuracy => metrics.val_top1,
            Metric::ValMeanPerClass => metrics.val_mean_per_class.unwrap_or(f64::NAN),
        }
    }

    /// Whether higher values are better (the accuracies).
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::TrainLoss | Metric::ValLoss)
    }

    /// The metric's name in a config file.
    pub fn name(self) -> &'static str {
        match self {
            Metric::TrainLoss => "train_loss",
            Metric::TrainAccuracy => "train_accuracy",
            Metric::ValLoss => "val_loss",
            Metric::ValAccuracy => "val_accuracy",
            Metric::ValMeanPerClass => "val_mean_per_class",
        }
    }
}

/// The `[train.scheduler]` table; `kind` selects the schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SchedulerConfig {
    /// PyTorch's `ReduceLROnPlateau`: multiply the rate by `factor` once `metric` has not
    /// improved for more than `patience` epochs. The original: min, 0.5, 5, on train loss.
    Plateau {
        /// The metric followed.
        #[serde(default)]
        metric: Metric,
        /// Lower or higher is better.
        #[serde(default)]
        mode: PlateauMode,
        /// Rate multiplier on a plateau.
        #[serde(default = "half")]
        factor: f64,
        /// Epochs without improvement tolerated.
        #[serde(default = "five")]
        patience: usize,
        /// Minimum change that counts as an improvement.
        #[serde(default = "threshold")]
        threshold: f64,
        /// How `threshold` applies.
        #[serde(default)]
        threshold_mode: ThresholdMode,
        /// Epochs to wait after a reduction before counting again.
        #[serde(default)]
        cooldown: usize,
        /// Lower bound of the rate.
        #[serde(default)]
        min_lr: f64,
        /// Reductions smaller than this are ignored.
        #[serde(default = "eps")]
        eps: f64,
    },
    /// The initial rate throughout.
    Constant,
    /// Burn's step schedule: multiply by `gamma` every `step_size` epochs.
    Step {
        /// Epochs between reductions.
        step_size: usize,
        /// Multiplier.
        #[serde(default = "tenth")]
        gamma: f64,
    },
    /// Burn's exponential schedule: multiply by `gamma` every epoch.
    Exponential {
        /// Multiplier.
        gamma: f64,
    },
    /// Burn's cosine annealing from the initial rate to `min_lr` over `epochs`.
    Cosine {
        /// Final rate.
        #[serde(default)]
        min_lr: f64,
        /// Epochs of the half cosine.
        epochs: usize,
    },
    /// Burn's linear schedule from the initial rate to `final_lr` over `epochs`.
    Linear {
        /// Final rate.
        final_lr: f64,
        /// Epochs of the ramp.
        epochs: usize,
    },
}

// PyTorch's defaults, for the keys a config may leave out (serde) and for
// `SchedulerConfig::default()` alike.
fn half() -> f64 {
    0.5
}
fn five() -> usize {
    5
}
fn threshold() -> f64 {
    1e-4
}
fn eps() -> f64 {
    1e-8
}
fn tenth() -> f64 {
    0.1
}

impl Default for SchedulerConfig {
    /// The original's: ReduceLROnPlateau on the training loss with PyTorch's defaults.
    fn default() -> Self {
        SchedulerConfig::Plateau {
            metric: Metric::default(),
            mode: PlateauMode::default(),
            factor: half(),
            patience: five(),
            threshold: threshold(),
            threshold_mode: ThresholdMode::default(),
            cooldown: 0,
            min_lr: 0.0,
            eps: eps(),
        }
    }
}

impl SchedulerConfig {
    /// Checks the values; errors name the key.
    pub fn validate(&self) -> Result<()> {
        match *self {
            SchedulerConfig::Plateau {
                factor,
                threshold,
                min_lr,
                eps,
                ..
            } => {
                if !(factor > 0.0 && factor < 1.0) {
                    return Err(invalid(
                        "train.scheduler.factor",
                        format!("{factor} is not in (0, 1)"),
                    ));
                }
                if !(threshold.is_finite() && threshold >= 0.0) {
                    return Err(invalid(
                        "train.scheduler.threshold",
                        format!("{threshold} is not >= 0"),
                    ));
                }
                if !(min_lr.is_finite() && min_lr >= 0.0) {
                    return Err(invalid(
                        "train.scheduler.min_lr",
                        format!("{min_lr} is not >= 0"),
                    ));
                }
                if !(eps.is_finite() && eps >= 0.0) {
                    return Err(invalid("train.scheduler.eps", format!("{eps} is not >= 0")));
                }
            }
            SchedulerConfig::Constant => {}
            SchedulerConfig::Step { step_size, gamma } => {
                if step_size == 0 {
                    return Err(invalid("train.scheduler.step_size", "must be at least 1"));
                }
                if !(gamma > 0.0 && gamma.is_finite()) {
                    return Err(invalid(
                        "train.scheduler.gamma",
                        format!("{gamma} is not positive"),
                    ));
                }
            }
            SchedulerConfig::Exponential { gamma } => {
                if !(gamma > 0.0 && gamma <= 1.0) {
                    return Err(invalid(
                        "train.scheduler.gamma",
                        format!("{gamma} is not in (0, 1]"),
                    ));
                }
            }
            SchedulerConfig::Cosine { min_lr, epochs } => {
                if epochs == 0 {
                    return Err(invalid("train.scheduler.epochs", "must be at least 1"));
                }
                if !(min_lr.is_finite() && min_lr >= 0.0) {
                    return Err(invalid(
                        "train.scheduler.min_lr",
                        format!("{min_lr} is not >= 0"),
                    ));
                }
            }
            SchedulerConfig::Linear { final_lr, epochs } => {
                if epochs == 0 {
                    return Err(invalid("train.scheduler.epochs", "must be at least 1"));
                }
                if !(final_lr.is_finite() && final_lr >= 0.0) {
                    return Err(invalid(
                        "train.scheduler.final_lr",
                        format!("{final_lr} is not >= 0"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `ReduceLROnPlateau`'s state; saved in every checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlateauState {
    /// Best metric so far; `None` before the first epoch (PyTorch's ±inf, which JSON
    /// cannot hold).
    pub best: Option<f64>,
    /// Epochs since the best.
    pub bad_epochs: usize,
    /// Epochs of cooldown left.
    pub cooldown_left: usize,
}

/// The schedule of a run: the rate for each epoch, advanced after each epoch.
#[derive(Clone)]
pub struct Schedule {
    config: SchedulerConfig,
    lr: f64,
    plateau: PlateauState,
    burn: Option<ModuleLrScheduler>,
    epochs_done: usize,
}

impl std::fmt::Debug for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schedule")
            .field("config", &self.config)
            .field("lr", &self.lr)
            .field("plateau", &self.plateau)
            .field("epochs_done", &self.epochs_done)
            .finish()
    }
}

/// What a checkpoint records of the schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleState {
    /// The rate of the next epoch.
    pub lr: f64,
    /// Plateau bookkeeping (unused by the other kinds).
    pub plateau: PlateauState,
    /// Epochs stepped.
    pub epochs_done: usize,
}

impl Schedule {
    /// A fresh schedule starting at `initial_lr`.
    pub fn new(config: &SchedulerConfig, initial_lr: f64) -> Result<Self> {
        config.validate()?;
        let build_error = |reason: String| invalid("train.scheduler", reason);
        let mut burn = match *config {
            SchedulerConfig::Plateau { .. } | SchedulerConfig::Constant => None,
            SchedulerConfig::Step { step_size, gamma } => Some(
                StepLrSchedulerConfig::new(initial_lr, step_size)
                    .with_gamma(gamma)
                    .init()
                    .map_err(build_error)?,
            ),
            SchedulerConfig::Exponential { gamma } => Some(
                ExponentialLrSchedulerConfig::new(initial_lr, gamma)
                    .init()
                    .map_err(build_error)?,
            ),
            SchedulerConfig::Cosine { min_lr, epochs } => Some(
                CosineAnnealingLrSchedulerConfig::new(initial_lr, epochs)
                    .with_min_lr(min_lr)
                    .init()
                    .map_err(build_error)?,
            ),
            SchedulerConfig::Linear { final_lr, epochs } => Some(
                LinearLrSchedulerConfig::new(initial_lr, final_lr, epochs)
                    .init()
                    .map_err(build_error)?,
            ),
        };
        // Burn's schedulers return the rate of the step they are asked for; the first
        // call gives epoch 1's rate.
        let lr = burn
            .as_mut()
            .map_or(initial_lr, |scheduler| scheduler.step().base());
        Ok(Self {
            config: config.clone(),
            lr,
            plateau: PlateauState {
                best: None,
                bad_epochs: 0,
                cooldown_left: 0,
            },
            burn,
            epochs_done: 0,
        })
    }

    /// Restores a schedule saved by [`Schedule::state`].
    pub fn restore(
        config: &SchedulerConfig,
        initial_lr: f64,
        state: &ScheduleState,
    ) -> Result<Self> {
        let mut schedule = Self::new(config, initial_lr)?;
        // Burn's schedulers are pure functions of the step count: replay them.
        if let Some(burn) = schedule.burn.as_mut() {
            for _ in 0..state.epochs_done {
                burn.step();
            }
        }
        schedule.lr = state.lr;
        schedule.plateau = state.plateau.clone();
        schedule.epochs_done = state.epochs_done;
        Ok(schedule)
    }

    /// The rate for the coming epoch.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// What a checkpoint stores.
    pub fn state(&self) -> ScheduleState {
        ScheduleState {
            lr: self.lr,
            plateau: self.plateau.clone(),
            epochs_done: self.epochs_done,
        }
    }

    /// Advances after an epoch with `metrics`; returns the new rate.
    pub fn step(&mut self, metrics: &EpochMetrics) -> f64 {
        self.epochs_done += 1;
        match self.config {
            SchedulerConfig::Plateau {
                metric,
                mode,
                factor,
                patience,
                threshold,
                threshold_mode,
                cooldown,
                min_lr,
                eps,
            } => {
                let current = metric.of(metrics);
                let better = match (self.plateau.best, mode, threshold_mode) {
                    (None, ..) => true,
                    (Some(best), PlateauMode::Min, ThresholdMode::Rel) => {
                        current < best * (1.0 - threshold)
                    }
                    (Some(best), PlateauMode::Min, ThresholdMode::Abs) => {
                        current < best - threshold
                    }
                    (Some(best), PlateauMode::Max, ThresholdMode::Rel) => {
                        current > best * (1.0 + threshold)
                    }
                    (Some(best), PlateauMode::Max, ThresholdMode::Abs) => {
                        current > best + threshold
                    }
                };
                if better {
                    self.plateau.best = Some(current);
                    self.plateau.bad_epochs = 0;
                } else {
                    self.plateau.bad_epochs += 1;
                }
                if self.plateau.cooldown_left > 0 {
                    self.plateau.cooldown_left -= 1;
                    self.plateau.bad_epochs = 0;
                }
                if self.plateau.bad_epochs > patience {
                    let reduced = (self.lr * factor).max(min_lr);
                    if self.lr - reduced > eps {
                        tracing::info!(
                            "{metric:?} has not improved for {patience} epochs: learning rate {} -> {reduced}",
                            self.lr
                        );
                        self.lr = reduced;
                    }
                    self.plateau.cooldown_left = cooldown;
                    self.plateau.bad_epochs = 0;
                }
            }
            SchedulerConfig::Constant => {}
            _ => {
                if let Some(burn) = self.burn.as_mut() {
                    self.lr = burn.step().base();
                }
            }
        }
        self.lr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_loss(loss: f64) -> EpochMetrics {
        EpochMetrics {
            train_loss: loss,
            ..EpochMetrics::default()
        }
    }

    /// The sequence PyTorch 2.9's ReduceLROnPlateau(mode="min", factor=0.5, patience=2)
    /// gives for losses [1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.85, 0.85, 0.85, 0.85] starting at 0.1.
    #[test]
    fn plateau_matches_pytorch() {
        let config = SchedulerConfig::Plateau {
            metric: Metric::TrainLoss,
            mode: PlateauMode::Min,
            factor: 0.5,
            patience: 2,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
        };
        let mut schedule = Schedule::new(&config, 0.1).unwrap();
        let losses = [1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.85, 0.85, 0.85, 0.85];
        let rates: Vec<f64> = losses
            .iter()
            .map(|&loss| schedule.step(&with_loss(loss)))
            .collect();
        assert_eq!(
            rates,
            vec![0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025]
        );
    }

    #[test]
    fn cooldown_and_min_lr_hold() {
        let config = SchedulerConfig::Plateau {
            metric: Metric::ValAccuracy,
            mode: PlateauMode::Max,
            factor: 0.1,
            patience: 0,
            threshold: 0.0,
            threshold_mode: ThresholdMode::Abs,
            cooldown: 1,
            min_lr: 0.005,
            eps: 1e-8,
        };
        let mut schedule = Schedule::new(&config, 0.1).unwrap();
        let metrics = |acc| EpochMetrics {
            val_top1: acc,
            ..EpochMetrics::default()
        };
        assert_eq!(schedule.step(&metrics(0.5)), 0.1);
        assert_eq!(schedule.step(&metrics(0.5)), 0.010000000000000002);
        assert_eq!(schedule.step(&metrics(0.5)), 0.010000000000000002); // cooldown
        assert_eq!(schedule.step(&metrics(0.5)), 0.005); // clamped at min_lr
    }

    /// The state as a checkpoint's state.json stores and reads it.
    fn through_json(schedule: &Schedule) -> ScheduleState {
        let text = serde_json::to_string(&schedule.state()).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn every_kind_restores_from_json_before_and_after_stepping() {
        let kinds = [
            "kind = \"plateau\"\npatience = 0",
            "kind = \"plateau\"\nmode = \"max\"\nmetric = \"val_accuracy\"\npatience = 0",
            "kind = \"constant\"",
            "kind = \"step\"\nstep_size = 2",
            "kind = \"exponential\"\ngamma = 0.9",
            "kind = \"cosine\"\nepochs = 4",
            "kind = \"linear\"\nfinal_lr = 0.01\nepochs = 4",
        ];
        for kind in kinds {
            let config: SchedulerConfig = toml::from_str(kind).unwrap();
            let mut straight = Schedule::new(&config, 0.1).unwrap();
            let mut restored = Schedule::restore(&config, 0.1, &through_json(&straight)).unwrap();
            for epoch in 0..4 {
                let metrics = with_loss(1.0 + f64::from(epoch % 2));
                assert_eq!(straight.step(&metrics), restored.step(&metrics), "{kind}");
                restored = Schedule::restore(&config, 0.1, &through_json(&restored)).unwrap();
            }
        }
    }

    #[test]
    fn burn_schedules_restore_by_replay() {
        let config = SchedulerConfig::Step {
            step_size: 2,
            gamma: 0.5,
        };
        let mut schedule = Schedule::new(&config, 0.08).unwrap();
        let mut rates = vec![schedule.lr()];
        for _ in 0..5 {
            rates.push(schedule.step(&EpochMetrics::default()));
        }
        assert_eq!(rates, vec![0.08, 0.08, 0.04, 0.04, 0.02, 0.02]);
        let mut fresh = Schedule::new(&config, 0.08).unwrap();
        fresh.step(&EpochMetrics::default());
        fresh.step(&EpochMetrics::default());
        let mut restored = Schedule::restore(&config, 0.08, &through_json(&fresh)).unwrap();
        assert_eq!(restored.lr(), 0.04);
        assert_eq!(restored.step(&EpochMetrics::default()), 0.04);
        assert_eq!(restored.step(&EpochMetrics::default()), 0.02);
    }

    #[test]
    fn scheduler_tables_parse_and_validate() {
        let parsed: SchedulerConfig = toml::from_str("kind = \"plateau\"\npatience = 3").unwrap();
        assert!(
            matches!(parsed, SchedulerConfig::Plateau { patience: 3, factor, .. } if factor == 0.5)
        );
        let cosine: SchedulerConfig = toml::from_str("kind = \"cosine\"\nepochs = 10").unwrap();
        assert!(matches!(cosine, SchedulerConfig::Cosine { epochs: 10, .. }));
        assert!(toml::from_str::<SchedulerConfig>("kind = \"plateau\"\npatiense = 3").is_err());
        let bad = SchedulerConfig::Step {
            step_size: 0,
            gamma: 0.1,
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("train.scheduler.step_size")
        );
    }
}
