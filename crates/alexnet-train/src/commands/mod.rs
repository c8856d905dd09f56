//! What the example programs call, one function each, and the one rule they share for
//! which config and run directory a command uses ([`command_config`]).
//!
//! ```no_run
//! use alexnet_train::{commands, config::Overrides};
//!
//! // `train_caltech --data data/caltech256`: trains in runs/alexnet ...
//! let overrides = Overrides { data: Some("data/caltech256".into()), ..Overrides::default() };
//! let (config, run_dir) = commands::command_config(None, &overrides, false)?;
//! assert_eq!(run_dir, std::path::Path::new("runs/alexnet"));
//! // ... and `test_caltech --data data/caltech256` looks there too.
//! let (_, test_dir) = commands::command_config(None, &overrides, true)?;
//! assert_eq!(test_dir, run_dir);
//! # let _ = config;
//! # Ok::<(), alexnet_train::TrainError>(())
//! ```

pub mod classify;
pub mod export;
mod protocol;
mod test;
mod train;

use std::path::{Path, PathBuf};

use alexnet_prep::{DemoPrepOptions, prepare_demo};
pub use protocol::{
    ProtocolCommand, ProtocolReport, ProtocolSplit, mean_and_std, protocol_command,
};
pub use test::{TestCommand, resolve_test_data, test_command};
pub use train::train_command;

use crate::{
    config::{ExperimentConfig, Overrides},
    error::{Result, invalid},
    logging::{finish_progress, track},
    trainer::RUN_CONFIG,
};

/// The run directory used when none is given: `runs/<name>`.
pub fn default_run_dir(name: &str) -> PathBuf {
    PathBuf::from("runs").join(name)
}

/// A run's name: the config file's stem; without a file, `demo` when no dataset is
/// given (the built-in demo trains) and `alexnet` otherwise.
pub fn run_name(config_file: Option<&Path>, data_given: bool) -> String {
    match config_file.and_then(Path::file_stem) {
        Some(stem) => stem.to_string_lossy().into_owned(),
        None if data_given => "alexnet".into(),
        None => "demo".into(),
    }
}

/// The config and run directory of a command, by one rule for every example:
/// - the run directory is `--run-dir`, else the config file's `train.run_dir`, else
///   `runs/<`[`run_name`]`>`;
/// - the config is `config_file`; else, for a command on a trained run (`trained`), the
///   run directory's `config.toml`, which training wrote; else the demo's settings when
///   no dataset is given, else the defaults (the original post's);
/// - `overrides` are applied last, and the run directory is set in the config.
pub fn command_config(
    config_file: Option<&Path>,
    overrides: &Overrides,
    trained: bool,
) -> Result<(ExperimentConfig, PathBuf)> {
    let data_given = overrides.data.is_some();
    let given = config_file.map(ExperimentConfig::load).transpose()?;
    let run_dir = overrides
        .run_dir
        .clone()
        .or_else(|| {
            given
                .as_ref()
                .and_then(|config| config.train.run_dir.clone())
        })
        .unwrap_or_else(|| default_run_dir(&run_name(config_file, data_given)));
    let recorded = run_dir.join(RUN_CONFIG);
    let mut config = match given {
        Some(config) => config,
        None if trained && recorded.is_file() => ExperimentConfig::load(&recorded)?,
        None => ExperimentConfig::load_or_demo(None, !data_given)?,
    };
    config.apply(overrides);
    config.train.run_dir = Some(run_dir.clone());
    Ok((config, run_dir))
}

/// The prepared dataset to use: `train.data`, else `prep.output`, else the demo dataset,
/// generated and preprocessed on first use (reused afterwards). Sets `train.data`.
pub fn resolve_data(config: &mut ExperimentConfig, show_progress: bool) -> Result<PathBuf> {
    if let Some(data) = config
        .train
        .data
        .clone()
        .or_else(|| config.prep.output.clone())
    {
        if !data.is_dir() {
            return Err(invalid(
                "train.data",
                format!(
                    "{} does not exist (run preprocess_caltech first, or pass --data)",
                    data.display()
                ),
            ));
        }
        config.train.data = Some(data.clone());
        return Ok(data);
    }
    tracing::info!(
        "no dataset configured: using the built-in demo dataset in {}",
        config.demo.dir.display()
    );
    // The console writer prints log lines above this bar while prep draws it.
    let bar = show_progress.then(|| track(alexnet_prep::progress_bar("preprocessing demo")));
    let options = DemoPrepOptions {
        reuse: true,
        overwrite: true,
        progress: bar.clone(),
        stop: None,
    };
    let demo = prepare_demo(&config.demo, &config.prep, options);
    if let Some(bar) = &bar {
        finish_progress(bar);
    }
    let demo = demo?;
    if let Some(report) = &demo.report {
        tracing::info!(
            "demo dataset: {} images in {} classes ({} generated, {} odd files skipped as a real download's would be)",
            report.counts.written,
            report.counts.classes,
            demo.summary.images,
            report.counts.skipped
        );
    }
    let processed = demo.processed;
    config.train.data = Some(processed.clone());
    Ok(processed)
}
