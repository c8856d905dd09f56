//! A real `kill -9`: the `train_caltech` binary is SIGKILLed at several moments (inside a
//! checkpoint write, between a checkpoint and its `latest` pointer, after an epoch's
//! curves are written but before its checkpoint), rerun each time, and must end with
//! the same per-epoch losses as an uninterrupted run, and one TensorBoard point per epoch.
//! The pause points need the `fault-injection` feature (`cargo test --workspace
//! --features fault-injection`, the README's test command).

#![cfg(feature = "fault-injection")]

mod common;

use std::{
    fs,
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
};

use alexnet::train::metrics::EpochMetrics;
use common::{assert_one_point_per_epoch, assert_same_history, example, latest_state, tiny_toml};

const EPOCHS: usize = 4;

fn config_text() -> String {
    tiny_toml(
        &format!("epochs = {EPOCHS}\nbatch_size = 9\neval_batch_size = 9"),
        "",
    )
}

fn train_command(cwd: &Path, run_dir: &str) -> Command {
    let mut command = Command::new(example("train_caltech"));
    command
        .args(["--config", "kill.toml", "--run-dir", run_dir])
        .current_dir(cwd)
        .env_remove("ALEXNET_TEST_PAUSE_AT");
    command
}

/// Runs training to the end.
fn train_to_end(cwd: &Path, run_dir: &str) {
    let output = train_command(cwd, run_dir).output().unwrap();
    assert!(
        output.status.success(),
        "training failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Starts training, waits until it pauses at `point` (`<name>@<epoch>`) and SIGKILLs it.
fn kill_at(cwd: &Path, run_dir: &str, point: &str) {
    let mut child = train_command(cwd, run_dir)
        .env("ALEXNET_TEST_PAUSE_AT", point)
        .env("ALEXNET_TEST_PAUSE_MS", "600000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let mut paused = false;
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        if line.contains(&format!("paused at {point}")) {
            paused = true;
            break;
        }
        seen.push(line);
    }
    // Child::kill is SIGKILL on Unix: no destructor, no flush, no cleanup runs.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(paused, "never paused at {point}; stderr: {seen:?}");
    assert!(!status.success());
}

/// The per-epoch metrics of the run's latest checkpoint, which must be the last epoch's.
fn final_history(run: &Path) -> Vec<EpochMetrics> {
    let state = latest_state(run);
    assert_eq!(state.epoch, EPOCHS);
    state.history
}

#[cfg(unix)]
#[test]
fn sigkill_at_any_moment_then_resume_equals_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    fs::write(cwd.join("kill.toml"), config_text()).unwrap();
    train_to_end(cwd, "straight");

    kill_at(cwd, "killed", "checkpoint-write@2");
    // Epoch 2's half-written checkpoint is never taken for a good one.
    assert_eq!(
        fs::read_to_string(cwd.join("killed/checkpoints/latest"))
            .unwrap()
            .trim(),
        "epoch-0001"
    );
    kill_at(cwd, "killed", "before-latest@3");
    kill_at(cwd, "killed", "epoch-logged@4");
    train_to_end(cwd, "killed");

    let reference = final_history(&cwd.join("straight"));
    let resumed = final_history(&cwd.join("killed"));
    assert_eq!(reference.len(), EPOCHS);
    assert_eq!(resumed.len(), EPOCHS);
    assert_same_history(&reference, &resumed);

    assert_one_point_per_epoch(&cwd.join("killed/tensorboard"), EPOCHS as u64);
}
