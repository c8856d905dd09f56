//! A real `kill -9`: the `train_caltech` binary is SIGKILLed at several moments (inside a
//! checkpoint write, between a checkpoint and its `latest` pointer, after an epoch's
//! curves are written but before its checkpoint), rerun each time, and must end with
//! the same per-epoch losses as an uninterrupted run, and one TensorBoard point per epoch.

mod common;

use std::{
    fs,
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
};

use alexnet::train::checkpoint::TrainerState;
use common::{assert_one_point_per_epoch, example, tiny_dataset, within_1e6};

const EPOCHS: usize = 4;

fn config_text(data: &Path) -> String {
    format!(
        r#"
[augment]
train = [
  {{ op = "normalize", mean = "dataset" }},
  {{ op = "horizontal_flip", p = 0.5 }},
  {{ op = "random_crop", size = [67, 67] }},
]
eval = [
  {{ op = "normalize", mean = "dataset" }},
  {{ op = "center_crop", size = [67, 67] }},
]

[model]
batch_norm_momentum = 0.5

[train]
data = "{}"
epochs = {EPOCHS}
batch_size = 9
eval_batch_size = 9
lr = 0.002
checkpoint_interval = 1
keep_last = 2
preview_images = 2
seed = 42
"#,
        data.display()
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

fn final_history(run: &Path) -> Vec<(f64, f64, f64)> {
    let latest = fs::read_to_string(run.join("checkpoints/latest")).unwrap();
    let state = run
        .join("checkpoints")
        .join(latest.trim())
        .join("state.json");
    let state: TrainerState = serde_json::from_slice(&fs::read(state).unwrap()).unwrap();
    assert_eq!(state.epoch, EPOCHS);
    state
        .history
        .iter()
        .map(|m| (m.train_loss, m.val_loss, m.train_accuracy))
        .collect()
}

#[cfg(unix)]
#[test]
fn sigkill_at_any_moment_then_resume_equals_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    fs::write(cwd.join("kill.toml"), config_text(tiny_dataset())).unwrap();
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
    for (epoch, (a, b)) in reference.iter().zip(&resumed).enumerate() {
        assert!(
            within_1e6(a.0, b.0) && within_1e6(a.1, b.1) && a.2 == b.2,
            "epoch {}: uninterrupted (train loss, val loss, train acc) {a:?}, killed and resumed {b:?}",
            epoch + 1
        );
    }

    assert_one_point_per_epoch(&cwd.join("killed/tensorboard"), EPOCHS as u64);
}
