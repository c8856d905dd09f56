//! Early stopping: the run ends once a per-epoch metric has stopped improving. The
//! decision is a function of the metrics history alone, which every checkpoint holds,
//! so a resumed run decides exactly as an uninterrupted one.

use serde::{Deserialize, Serialize};

use crate::{
    error::{Result, invalid},
    metrics::EpochMetrics,
    optim::schedule::{Metric, PlateauMode},
};

/// The `[train.early_stopping]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStoppingConfig {
    /// The metric followed (`val_loss`, `val_accuracy`, `val_mean_per_class`, …).
    pub metric: Metric,
    /// Lower or higher is better; by default what the metric is (losses lower).
    #[serde(default)]
    pub mode: Option<PlateauMode>,
    /// Epochs without an improvement after which the run ends (Keras' and Lightning's
    /// `patience`).
    pub patience: usize,
    /// How much better than the best so far an epoch must be to count as an
    /// improvement, in the metric's units (absolute, as Keras' and Lightning's).
    #[serde(default)]
    pub min_delta: f64,
}

/// Why a run stopped early.
#[derive(Debug, Clone, PartialEq)]
pub struct EarlyStop {
    /// The epoch after which it stopped.
    pub epoch: usize,
    /// The metric followed.
    pub metric: Metric,
    /// The best value, and the epoch it was reached.
    pub best: (f64, usize),
    /// The config's patience and minimum improvement.
    pub patience: usize,
    /// The config's minimum improvement.
    pub min_delta: f64,
}

impl std::fmt::Display for EarlyStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stopped early after epoch {}: {} has not improved by more than {} for {} epochs (best {:.6} at epoch {})",
            self.epoch,
            self.metric.name(),
            self.min_delta,
            self.patience,
            self.best.0,
            self.best.1
        )
    }
}

impl EarlyStoppingConfig {
    /// Checks the values; errors name the key.
    pub fn validate(&self) -> Result<()> {
        if self.patience == 0 {
            return Err(invalid(
                "train.early_stopping.patience",
                "must be at least 1",
            ));
        }
        if !(self.min_delta.is_finite() && self.min_delta >= 0.0) {
            return Err(invalid(
                "train.early_stopping.min_delta",
                format!("{} is not a finite number ≥ 0", self.min_delta),
            ));
        }
        Ok(())
    }

    fn higher_is_better(&self) -> bool {
        match self.mode {
            Some(mode) => mode == PlateauMode::Max,
            None => self.metric.higher_is_better(),
        }
    }

    /// Whether `history` (every epoch so far, in order) has run `patience` epochs
    /// without improving on its best by more than `min_delta`; the first epoch where it
    /// had. A non-finite value is never an improvement.
    pub fn check(&self, history: &[EpochMetrics]) -> Option<EarlyStop> {
        let higher = self.higher_is_better();
        let mut best: Option<(f64, usize)> = None;
        let mut since = 0;
        for metrics in history {
            let value = self.metric.of(metrics);
            let improved = value.is_finite()
                && best.is_none_or(|(best, _)| {
                    if higher {
                        value > best + self.min_delta
                    } else {
                        value < best - self.min_delta
                    }
                });
            if improved {
                best = Some((value, metrics.epoch));
                since = 0;
                continue;
            }
            since += 1;
            if let (true, Some(best)) = (since >= self.patience, best) {
                return Some(EarlyStop {
                    epoch: metrics.epoch,
                    metric: self.metric,
                    best,
                    patience: self.patience,
                    min_delta: self.min_delta,
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(values: &[f64]) -> Vec<EpochMetrics> {
        values
            .iter()
            .enumerate()
            .map(|(k, &val_loss)| EpochMetrics {
                epoch: k + 1,
                val_loss,
                ..EpochMetrics::default()
            })
            .collect()
    }

    #[test]
    fn the_toml_table_reads_with_defaults() {
        let config: EarlyStoppingConfig =
            toml::from_str("metric = \"val_mean_per_class\"\npatience = 5").unwrap();
        assert_eq!(
            (config.patience, config.min_delta, config.mode),
            (5, 0.0, None)
        );
        assert!(config.higher_is_better());
        let error = toml::from_str::<EarlyStoppingConfig>(
            "metric = \"val_loss\"\npatience = 5\nmin_delt = 1",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("min_delt"), "{error}");
    }

    #[test]
    fn stops_after_patience_epochs_without_improvement() {
        let config = EarlyStoppingConfig {
            metric: Metric::ValLoss,
            mode: None,
            patience: 2,
            min_delta: 0.05,
        };
        // 1.0, 0.9 (better), 0.88 (not by 0.05), 0.86 (not by 0.05 of 0.9): stop at 4.
        let stop = config
            .check(&history(&[1.0, 0.9, 0.88, 0.86, 0.1]))
            .unwrap();
        assert_eq!((stop.epoch, stop.best), (4, (0.9, 2)));
        assert!(config.check(&history(&[1.0, 0.9, 0.88, 0.8])).is_none());
        // NaN is never an improvement.
        assert_eq!(
            config
                .check(&history(&[1.0, f64::NAN, f64::NAN]))
                .map(|s| s.epoch),
            Some(3)
        );
        let max = EarlyStoppingConfig {
            mode: Some(PlateauMode::Max),
            min_delta: 0.0,
            ..config.clone()
        };
        assert_eq!(
            max.check(&history(&[1.0, 0.9, 0.8])).map(|s| s.epoch),
            Some(3)
        );
        assert!(
            EarlyStoppingConfig {
                patience: 0,
                ..config
            }
            .validate()
            .unwrap_err()
            .to_string()
            .contains("train.early_stopping.patience")
        );
    }
}
