//! `test_caltech`: a run's checkpoint evaluated on a split.

use std::path::{Path, PathBuf};

use alexnet_prep::Split;

use super::{command_config, resolve_data};
use crate::{
    config::{ExperimentConfig, Overrides},
    error::{Result, invalid},
    eval::{TestReport, TestRequest, TestView, test},
    trainer::RUN_CONFIG,
};

/// The prepared dataset to evaluate a run on: the one given (`train.data` or
/// `prep.output`), else the one the run trained on (its `config.toml`), else the demo
/// dataset, with a warning, as [`resolve_data`] would. Sets `train.data`.
pub fn resolve_test_data(config: &mut ExperimentConfig, run_dir: &Path) -> Result<PathBuf> {
    let given = config.train.data.is_some() || config.prep.output.is_some();
    let recorded = run_dir.join(RUN_CONFIG);
    if !given && recorded.is_file() {
        let trained = ExperimentConfig::load(&recorded)?;
        if let Some(data) = trained.train.data {
            tracing::info!(
                "evaluating on the dataset the run trained on, {} (from {})",
                data.display(),
                recorded.display()
            );
            config.train.data = Some(data);
        }
    }
    if config.train.data.is_none() && config.prep.output.is_none() {
        tracing::warn!(
            "no dataset given and {} records none: evaluating on the built-in demo dataset",
            recorded.display()
        );
    }
    resolve_data(config, false)
}

/// What the `test_caltech` example asks for.
#[derive(Debug, Clone)]
pub struct TestCommand<'a> {
    /// `--config`; else as [`command_config`] says (the run directory's `config.toml`).
    pub config: Option<&'a Path>,
    /// `--checkpoint`; else the run's latest.
    pub checkpoint: Option<PathBuf>,
    /// The split to evaluate; `None`: test where the dataset has one, else val.
    pub split: Option<Split>,
    /// How images are presented.
    pub view: TestView,
    /// Score a dataset other than the one the checkpoint trained on.
    pub other_dataset: bool,
    /// `--run-dir`, `--data`, `--device`.
    pub overrides: Overrides,
}

/// What the `test_caltech` example calls: the config resolved as [`TestCommand`] says,
/// the dataset as [`resolve_test_data`] finds it, then [`test`].
pub fn test_command(command: &TestCommand) -> Result<TestReport> {
    let (mut config, run_dir) = command_config(command.config, &command.overrides, true)?;
    if !run_dir.is_dir() && command.checkpoint.is_none() {
        return Err(invalid(
            "--run-dir",
            format!(
                "run directory {} does not exist (train first, or pass --run-dir / --checkpoint)",
                run_dir.display()
            ),
        ));
    }
    let _log = crate::logging::init(&config.logging, None)?;
    resolve_test_data(&mut config, &run_dir)?;
    let request = TestRequest {
        checkpoint: command.checkpoint.as_deref(),
        split: command.split,
        view: Some(command.view),
        other_dataset: command.other_dataset,
    };
    test(&config, &run_dir, &request)
}
