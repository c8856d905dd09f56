//! The Caltech-256 protocol as one command: K seeded splits of N training images per
//! class (validation carved from the rest by `prep.val_split`, every other image test),
//! each prepared, trained and scored on its test split, then the mean ± standard
//! deviation of mean per-class accuracy.

use std::path::{Path, PathBuf};

use alexnet_prep::{Preprocessor, Split};

use crate::{
    config::{ExperimentConfig, Overrides},
    error::{Result, invalid},
    eval::{TestReport, TestRequest, test},
    trainer::Trainer,
};

/// What the `protocol` example asks for.
#[derive(Debug, Clone)]
pub struct ProtocolCommand<'a> {
    /// The config (prep, augment, model, train); else the defaults.
    pub config: Option<&'a Path>,
    /// The raw class-per-folder dataset; else the config's `prep.input`.
    pub input: Option<PathBuf>,
    /// N: training images per class (15, 30, 45 or 60 in the literature).
    pub train_per_class: usize,
    /// K: seeded splits, `prep.seed`, `prep.seed + 1`, …
    pub splits: usize,
    /// Where each split's dataset and run go: `<dir>/split-<k>/{data,run}`.
    pub dir: PathBuf,
    /// Training flags (`--epochs`, `--device`, …); `data` and `run_dir` are the
    /// protocol's own.
    pub overrides: Overrides,
}

/// One split's outcome.
#[derive(Debug, Clone)]
pub struct ProtocolSplit {
    /// The split's seed (`prep.seed`).
    pub seed: u64,
    /// Its prepared dataset.
    pub data: PathBuf,
    /// Its run.
    pub run_dir: PathBuf,
    /// Its test split's scores.
    pub report: TestReport,
}

/// What [`protocol_command`] measured.
#[derive(Debug, Clone)]
pub struct ProtocolReport {
    /// N.
    pub train_per_class: usize,
    /// Each split, in seed order.
    pub splits: Vec<ProtocolSplit>,
    /// Mean over the splits of the test split's mean per-class accuracy.
    pub mean: f64,
    /// Its sample standard deviation (0 with one split).
    pub std: f64,
}

impl std::fmt::Display for ProtocolReport {
    /// A line a split, then `mean_per_class=<mean> ± <std> …` as the last line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (k, split) in self.splits.iter().enumerate() {
            let report = &split.report;
            writeln!(
                f,
                "split {k} (seed {}): mean_per_class={:.4} top1={:.4} top5={:.4} images={} ({})",
                split.seed,
                report.mean_per_class,
                report.top1,
                report.top5,
                report.images,
                split.run_dir.display()
            )?;
        }
        write!(
            f,
            "mean_per_class={:.4} ± {:.4} over {} splits of {} training images per class (test split)",
            self.mean,
            self.std,
            self.splits.len(),
            self.train_per_class
        )
    }
}

/// Mean and sample standard deviation.
pub fn mean_and_std(values: &[f64]) -> (f64, f64) {
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let squares: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
    (mean, (squares / (n - 1.0)).sqrt())
}

/// Runs the protocol as [`ProtocolCommand`] says. Each split's dataset is prepared again
/// (the same seed writes the same files), and its run resumes where it stopped, so an
/// interrupted protocol continues when run again.
pub fn protocol_command(command: &ProtocolCommand) -> Result<ProtocolReport> {
    if command.splits == 0 {
        return Err(invalid("--splits", "must be at least 1"));
    }
    if command.overrides.data.is_some() || command.overrides.run_dir.is_some() {
        return Err(invalid(
            "--data",
            "the protocol prepares its own datasets and runs under --dir",
        ));
    }
    // The original post's settings without a config file (not the demo's, which
    // command_config picks when no dataset is given).
    let mut base = match command.config {
        Some(path) => ExperimentConfig::load(path)?,
        None => ExperimentConfig::default(),
    };
    base.apply(&command.overrides);
    let _log = crate::logging::init(&base.logging, None)?;
    let mut splits = Vec::with_capacity(command.splits);
    for k in 0..command.splits {
        let split_dir = command.dir.join(format!("split-{k}"));
        let mut prep = base.prep.clone();
        prep.input = command.input.clone().or(prep.input);
        prep.train_per_class = Some(command.train_per_class);
        prep.test_split = 0.0;
        prep.seed = base.prep.seed.wrapping_add(k as u64);
        let data = split_dir.join("data");
        prep.output = Some(data.clone());
        tracing::info!(
            "split {k} of {} (seed {}): preparing {}",
            command.splits,
            prep.seed,
            data.display()
        );
        Preprocessor::new(prep.clone()).overwrite(true).run()?;
        let mut config = base.clone();
        config.prep = prep;
        config.train.data = Some(data.clone());
        let run_dir = split_dir.join("run");
        config.train.run_dir = Some(run_dir.clone());
        let config = config.check()?;
        Trainer::prepare(&config)?.run(&mut |_| true)?;
        let request = TestRequest {
            split: Some(Split::Test),
            ..TestRequest::default()
        };
        let report = test(&config, &run_dir, &request)?;
        tracing::info!(
            "split {k}: mean_per_class={:.4} top1={:.4}",
            report.mean_per_class,
            report.top1
        );
        splits.push(ProtocolSplit {
            seed: config.prep.seed,
            data,
            run_dir,
            report,
        });
    }
    let scores: Vec<f64> = splits.iter().map(|s| s.report.mean_per_class).collect();
    let (mean, std) = mean_and_std(&scores);
    Ok(ProtocolReport {
        train_per_class: command.train_per_class,
        splits,
        mean,
        std,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_standard_deviation() {
        let (mean, std) = mean_and_std(&[0.5, 0.7, 0.6]);
        assert!((mean - 0.6).abs() < 1e-12);
        assert!((std - 0.1).abs() < 1e-12, "{std}");
        assert_eq!(mean_and_std(&[0.4]), (0.4, 0.0));
    }
}
