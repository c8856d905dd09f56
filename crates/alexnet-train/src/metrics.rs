//! Per-epoch metrics and the accuracy computations behind them.

use serde::{Deserialize, Serialize};

/// What one epoch measured. Accuracies are fractions in [0, 1].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's applied steps (weighted by batch size; f16
    /// steps skipped as overflows are not counted).
    pub train_loss: f64,
    /// Training accuracy over the augmented batches of the applied steps, in training
    /// mode.
    pub train_accuracy: f64,
    /// Validation loss.
    pub val_loss: f64,
    /// Validation top-1 accuracy.
    pub val_top1: f64,
    /// Validation top-5 accuracy.
    pub val_top5: f64,
    /// Validation mean per-class accuracy (absent from checkpoints written before it
    /// was measured).
    #[serde(default)]
    pub val_mean_per_class: Option<f64>,
    /// Learning rate used during the epoch.
    pub lr: f64,
    /// Training images per second (the step, data loading included).
    pub images_per_sec: f64,
    /// Wall-clock seconds of the epoch (training and validation).
    pub seconds: f64,
    /// Optimizer steps skipped because of f16 overflow.
    #[serde(default)]
    pub skipped_steps: u64,
    /// Loss scale at the end of the epoch (1 unless f16).
    #[serde(default = "one")]
    pub loss_scale: f64,
    /// Share of the epoch's training time the steps spent waiting for the next batch
    /// (absent from checkpoints written before it was measured).
    #[serde(default)]
    pub data_wait_share: Option<f64>,
}

fn one() -> f64 {
    1.0
}

/// The sums of one epoch's training steps so far: what its metrics are computed from at
/// the end, and what a mid-epoch checkpoint keeps so that a resumed epoch ends with the
/// same metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingSums {
    /// Loss summed over the images of applied steps (every rank's).
    pub loss_sum: f64,
    /// Images of applied steps (every rank's).
    pub images: u64,
    /// Top-1 and top-5 counts: this rank's during an epoch, every rank's in a checkpoint
    /// (rank 0 resumes with them, the others from zero).
    pub accuracy: Accumulator,
    /// Steps applied.
    pub applied: u64,
    /// Steps skipped as f16 overflows.
    pub skipped: u64,
    /// Seconds spent training (steps and data loading), over every session.
    pub train_seconds: f64,
    /// Of which the steps waited for the next batch.
    pub data_wait_seconds: f64,
}

impl TrainingSums {
    /// The mean training loss so far.
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.images.max(1) as f64
    }

    /// The share of the training time spent waiting for data.
    pub fn data_wait_share(&self) -> f64 {
        self.data_wait_seconds / self.train_seconds.max(1e-9)
    }
}

/// Running sums over batches of log-probabilities.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Accumulator {
    /// Samples seen.
    pub count: usize,
    /// Σ loss · batch size.
    pub loss_sum: f64,
    /// Samples whose target is the top class.
    pub top1: usize,
    /// Samples whose target is among the top five.
    pub top5: usize,
    /// `(top-1 correct, samples)` per class; empty unless made
    /// [`with_classes`](Self::with_classes).
    pub per_class: Vec<(u64, u64)>,
}

impl Accumulator {
    /// An accumulator that also counts per class (for mean per-class accuracy).
    pub fn with_classes(classes: usize) -> Self {
        Self {
            per_class: vec![(0, 0); classes],
            ..Self::default()
        }
    }

    /// Adds a batch of `rows` (log-probabilities, row-major `[n, classes]`) with
    /// `targets`; the loss added is the mean negative log-likelihood.
    pub fn add_log_probs(&mut self, rows: &[f32], classes: usize, targets: &[usize]) {
        let mut loss = 0.0f64;
        for (row, &target) in rows.chunks_exact(classes).zip(targets) {
            let rank = rank_of(row, target);
            if let Some(class) = self.per_class.get_mut(target) {
                class.0 += u64::from(rank == 0);
                class.1 += 1;
            }
            self.top1 += usize::from(rank == 0);
            self.top5 += usize::from(rank < 5);
            loss -= f64::from(row[target]);
        }
        self.count += targets.len();
        self.loss_sum += loss;
    }

    /// Mean loss.
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.count.max(1) as f64
    }

    /// Top-1 accuracy.
    pub fn top1(&self) -> f64 {
        self.top1 as f64 / self.count.max(1) as f64
    }

    /// Top-5 accuracy.
    pub fn top5(&self) -> f64 {
        self.top5 as f64 / self.count.max(1) as f64
    }

    /// Mean per-class accuracy over the classes seen; `None` without per-class counts.
    pub fn mean_per_class(&self) -> Option<f64> {
        crate::confusion::mean_per_class(self.per_class.iter().copied())
    }
}

/// How many classes score strictly higher than `target` (0 = top-1). Ties count in
/// the target's favour. A row with a NaN or `+∞` score anywhere is a wrong answer:
/// it ranks below every class (`usize::MAX`), so NaN outputs never count as top-1 or
/// top-k for any k. (`-∞` is a legitimate log-probability of zero.)
pub fn rank_of(row: &[f32], target: usize) -> usize {
    if row
        .iter()
        .any(|&score| score.is_nan() || score == f32::INFINITY)
    {
        return usize::MAX;
    }
    let score = row[target];
    row.iter().filter(|&&other| other > score).count()
}

/// Averages `crops` consecutive rows of log-probabilities in probability space and
/// returns log-probabilities again (ten-crop evaluation).
pub fn average_crops(rows: &[f32], classes: usize, crops: usize) -> Vec<f32> {
    if crops <= 1 {
        return rows.to_vec();
    }
    rows.chunks_exact(classes * crops)
        .flat_map(|group| {
            (0..classes).map(move |c| {
                let mean = (0..crops)
                    .map(|k| f64::from(group[k * classes + c]).exp())
                    .sum::<f64>()
                    / crops as f64;
                mean.ln() as f32
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_and_loss() {
        let ln = |p: f32| p.ln();
        let rows = [
            ln(0.7),
            ln(0.2),
            ln(0.1), // target 0: top-1
            ln(0.5),
            ln(0.3),
            ln(0.2), // target 2: rank 2
        ];
        let mut acc = Accumulator::with_classes(3);
        acc.add_log_probs(&rows, 3, &[0, 2]);
        assert_eq!((acc.top1, acc.top5, acc.count), (1, 2, 2));
        assert_eq!(acc.per_class, [(1, 1), (0, 0), (0, 1)]);
        assert_eq!(acc.mean_per_class(), Some(0.5));
        let expected = -(0.7f64.ln() + 0.2f64.ln()) / 2.0;
        assert!((acc.loss() - expected).abs() < 1e-6);
    }

    #[test]
    fn non_finite_scores_are_never_right() {
        let nan_rows = [f32::NAN; 6];
        let mut acc = Accumulator::default();
        acc.add_log_probs(&nan_rows, 3, &[0, 2]);
        assert_eq!((acc.top1, acc.top5), (0, 0));
        // One NaN among otherwise good scores also spoils the row.
        assert_eq!(rank_of(&[0.0, f32::NAN, -1.0], 0), usize::MAX);
        assert_eq!(rank_of(&[f32::INFINITY, -1.0, -2.0], 1), usize::MAX);
        assert_eq!(rank_of(&[f32::NEG_INFINITY, -1.0, -2.0], 1), 0);
        assert_eq!(rank_of(&[-0.5, -1.0, -2.0], 1), 1);
    }

    #[test]
    fn crops_average_in_probability_space() {
        let rows = [0.25f32.ln(), 0.75f32.ln(), 0.75f32.ln(), 0.25f32.ln()];
        let averaged = average_crops(&rows, 2, 2);
        assert!((averaged[0].exp() - 0.5).abs() < 1e-6 && (averaged[1].exp() - 0.5).abs() < 1e-6);
    }
}
