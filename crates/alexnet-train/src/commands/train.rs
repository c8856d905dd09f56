//! `train_caltech`: a config and flags to a trained run.

use std::path::Path;

use runfiles::StopRequest;

use super::{command_config, resolve_data};
use crate::{
    config::{CheckedConfig, Overrides},
    distributed::ProcessGroup,
    error::Result,
    logging::ConsoleLog,
    trainer::{TrainSummary, Trainer},
};

/// What the `train_caltech` example calls: the config and run directory by
/// [`command_config`]'s rule (`config_file`, then `overrides`), checked, the data
/// resolved (the demo built when none is configured), then trained with the console
/// log copied to the run's `train.log`. Nothing is written before every input has been
/// checked. Once `stop` is requested (the example makes SIGINT and SIGTERM request it)
/// the run stops after the step in flight, with a checkpoint
/// ([`TrainSummary::stopped_by`]).
pub fn train_command(
    config_file: Option<&Path>,
    overrides: &Overrides,
    stop: StopRequest,
) -> Result<TrainSummary> {
    let (config, run_dir) = command_config(config_file, overrides, false)?;
    let mut config = config.check()?;
    let console = crate::logging::console(&config.logging)?;
    let group = ProcessGroup::connect(&config.distributed)?;
    if group.size() > 1 {
        let rank = group.rank();
        crate::logging::set_console_prefix(&format!("[rank {rank}] "));
        let result = train_ranked(config, group, console, &run_dir, stop);
        return crate::distributed::finish(rank, result);
    }
    resolve_data(config.unchecked_mut(), true)?;
    let trainer = Trainer::prepare(&config)?.with_stop(stop);
    let _log = console.into_file(&run_dir)?;
    trainer.run(&mut |_| true)
}

/// [`train_command`] on one rank of several: rank 0 resolves the data first (it builds
/// the demo dataset if needed; the others then open it), and alone keeps the log file.
fn train_ranked(
    mut config: CheckedConfig,
    mut group: ProcessGroup,
    console: ConsoleLog,
    run_dir: &Path,
    stop: StopRequest,
) -> Result<TrainSummary> {
    if group.is_first() {
        resolve_data(config.unchecked_mut(), true)?;
    }
    group.barrier("the data preparation on rank 0")?;
    if !group.is_first() {
        resolve_data(config.unchecked_mut(), false)?;
    }
    let first = group.is_first();
    let trainer = Trainer::prepare_in(&config, group)?.with_stop(stop);
    let _log = if first {
        console.into_file(run_dir)?
    } else {
        drop(console);
        crate::logging::init(&config.logging, None)?
    };
    trainer.run(&mut |_| true)
}
