//! Long runs that lose nothing: the `train_caltech` binary is stopped with SIGTERM at
//! several moments (inside a step, inside a step checkpoint's write, during
//! evaluation), SIGKILLed between step checkpoints and inside one, and sent a second
//! SIGTERM while it saves; each time it is rerun, and it must end with the same per-step
//! losses and per-epoch metrics as an uninterrupted run, one TensorBoard point per step.
//! A slowed loader must show in the data-wait figure. AdamW, label smoothing and
//! gradient clipping are on, so their resume is checked too (tests/kill.rs checks SGD). The pause points need the
//! `fault-injection` feature (the README's test command turns it on).

#![cfg(all(unix, feature = "fault-injection"))]

mod common;

use std::{
    fs,
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
};

use alexnet::train::checkpoint::CheckpointStore;
use common::{
    assert_one_point_per_epoch, assert_same_history, example, latest_state, tensorboard_steps,
    tiny_toml, within_1e6,
};

const EPOCHS: usize = 3;

fn config_text(device: &str) -> String {
    tiny_toml(
        &format!(
            "epochs = {EPOCHS}\nbatch_size = 5\neval_batch_size = 9\ncheckpoint_every_steps = 2\nkeep_last_steps = 2\ndevice = \"{device}\"\nlabel_smoothing = 0.1\nclip_grad_norm = 5.0\noptimizer = \"adamw\""
        ),
        "[logging]\nevery_steps = 1\n",
    )
}

/// A directory with the run's config (`stop.toml`) on `device`.
fn setup(device: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("stop.toml"), config_text(device)).unwrap();
    dir
}

fn train_command(cwd: &Path, run_dir: &str) -> Command {
    let mut command = Command::new(example("train_caltech"));
    command
        .args(["--config", "stop.toml", "--run-dir", run_dir])
        .current_dir(cwd)
        .env_remove("ALEXNET_TEST_PAUSE_AT")
        .env_remove("ALEXNET_TEST_LOADER_DELAY_MS");
    command
}

/// Runs training to the end; returns its stderr.
fn train_to_end(cwd: &Path, run_dir: &str) -> String {
    let output = train_command(cwd, run_dir).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "training failed: {stderr}");
    stderr
}

/// Starts training paused at `point` for `pause_ms`; returns the child once it says it
/// paused there, with the stderr lines so far.
fn start_paused(cwd: &Path, run_dir: &str, point: &str, pause_ms: u64) -> (Child, Vec<String>) {
    let mut child = train_command(cwd, run_dir)
        .env("ALEXNET_TEST_PAUSE_AT", point)
        .env("ALEXNET_TEST_PAUSE_MS", pause_ms.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let paused = line.contains(&format!("paused at {point} "));
        seen.push(line);
        if paused {
            // The rest of stderr is read on a thread, so the child never blocks on it.
            let rest = std::thread::spawn(move || lines.map_while(|l| l.ok()).collect());
            STDERR_REST.with(|cell| *cell.borrow_mut() = Some(rest));
            return (child, seen);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("never paused at {point}; stderr: {seen:?}");
}

thread_local! {
    static STDERR_REST: std::cell::RefCell<Option<std::thread::JoinHandle<Vec<String>>>> =
        const { std::cell::RefCell::new(None) };
}

/// Waits for the child; returns its status and the stderr lines after the pause.
fn finish(mut child: Child) -> (ExitStatus, String) {
    let status = child.wait().unwrap();
    let rest = STDERR_REST
        .with(|cell| cell.borrow_mut().take())
        .map(|handle| handle.join().unwrap())
        .unwrap_or_default();
    (status, rest.join("\n"))
}

fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Pauses the run at `point`, sends SIGTERM there, and checks that it stopped cleanly:
/// status 143 and a last line saying how to resume.
fn sigterm_at(cwd: &Path, run_dir: &str, point: &str) {
    let (child, _) = start_paused(cwd, run_dir, point, 1500);
    signal(&child, "TERM");
    let (status, stderr) = finish(child);
    assert_eq!(
        status.code(),
        Some(143),
        "after SIGTERM at {point}: {stderr}"
    );
    assert!(
        stderr.contains("stopped by SIGTERM") && stderr.contains("run the same command again"),
        "{stderr}"
    );
}

/// SIGKILLs the run paused at `point`.
fn sigkill_at(cwd: &Path, run_dir: &str, point: &str) {
    let (mut child, _) = start_paused(cwd, run_dir, point, 600_000);
    child.kill().unwrap();
    let (status, _) = finish(child);
    assert!(!status.success());
}

/// The per-step training losses of a run, by step, as this project's reader sees them
/// (restart marks applied).
fn step_losses(run: &Path) -> Vec<(u64, f64)> {
    let events = alexnet::train::tfevents::read_event_dir(&run.join("tensorboard/steps"))
        .expect("per-step event files");
    events.scalars["step/loss_train"]
        .iter()
        .map(|&(step, loss)| (step, f64::from(loss)))
        .collect()
}

/// Asserts that `resumed` repeated `uninterrupted` step by step and epoch by epoch, one
/// point per step on every per-step curve, as TensorBoard's own reader sees it too.
fn assert_same_run(uninterrupted: &Path, resumed: &Path) {
    let reference = step_losses(uninterrupted);
    let repeated = step_losses(resumed);
    let steps: Vec<u64> = reference.iter().map(|p| p.0).collect();
    let expected: Vec<u64> = (1..=steps.len() as u64).collect();
    assert_eq!(steps, expected, "uninterrupted run's steps");
    assert_eq!(
        repeated.iter().map(|p| p.0).collect::<Vec<_>>(),
        expected,
        "resumed run's steps"
    );
    for ((step, a), (_, b)) in reference.iter().zip(&repeated) {
        assert!(
            within_1e6(*a, *b),
            "step {step}: loss {a} uninterrupted, {b} resumed"
        );
    }
    let a = latest_state(uninterrupted);
    let b = latest_state(resumed);
    assert_eq!(b.epoch, EPOCHS);
    assert_same_history(&a.history, &b.history);
    assert_one_point_per_epoch(&resumed.join("tensorboard"), EPOCHS as u64);
    if let Some(seen) = tensorboard_steps(&resumed.join("tensorboard/steps")) {
        for (tag, steps) in &seen {
            assert_eq!(steps, &expected, "TensorBoard's reader, tag {tag}");
        }
        assert!(seen.contains_key("step/loss_train"), "{seen:?}");
    }
}

/// The latest checkpoint's folder name.
fn latest(run: &Path) -> String {
    fs::read_to_string(run.join("checkpoints/latest"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn sigterm_mid_step_mid_checkpoint_and_during_evaluation_then_resume_equals_an_uninterrupted_run() {
    let dir = setup("flex");
    let cwd = dir.path();
    train_to_end(cwd, "straight");

    // Inside step 3 of epoch 1: the step finishes, a step checkpoint follows.
    sigterm_at(cwd, "stopped", "in-step-3@1");
    assert_eq!(latest(&cwd.join("stopped")), "step-0003");
    let state = latest_state(&cwd.join("stopped"));
    assert_eq!(
        (state.epoch, state.position.as_ref().unwrap().batches),
        (0, 3)
    );
    // Inside the write of the step checkpoint after run step 4: it completes, the run
    // stops after the next step.
    sigterm_at(cwd, "stopped", "step-checkpoint-write@4");
    assert_eq!(latest(&cwd.join("stopped")), "step-0005");
    // During epoch 2's evaluation: it completes, the epoch is checkpointed.
    sigterm_at(cwd, "stopped", "validate@2");
    assert_eq!(latest(&cwd.join("stopped")), "epoch-0002");
    let stderr = train_to_end(cwd, "stopped");
    assert!(stderr.contains("resuming from"), "{stderr}");

    assert_same_run(&cwd.join("straight"), &cwd.join("stopped"));
}

#[test]
fn sigkill_between_and_inside_step_checkpoints_redoes_only_the_steps_since_the_last() {
    let dir = setup("flex,flex");
    let cwd = dir.path();
    train_to_end(cwd, "straight");

    // After step 3, before the checkpoint of step 4: step 3 is redone from step-0002.
    sigkill_at(cwd, "killed", "step-3@1");
    assert_eq!(latest(&cwd.join("killed")), "step-0002");
    // Inside the write of step 4's checkpoint: the half-written folder is never taken.
    sigkill_at(cwd, "killed", "step-checkpoint-write@4");
    assert_eq!(latest(&cwd.join("killed")), "step-0002");
    train_to_end(cwd, "killed");

    assert_same_run(&cwd.join("straight"), &cwd.join("killed"));
    // Epoch checkpoints superseded the step checkpoints before them.
    let store = CheckpointStore::new(&cwd.join("killed"), 2);
    let steps = store.list_steps().unwrap();
    assert!(steps.is_empty(), "{steps:?}");
}

#[test]
fn a_second_sigterm_while_saving_exits_at_once_and_latest_still_loads() {
    let dir = setup("flex");
    let cwd = dir.path();
    let (child, _) = start_paused(cwd, "twice", "step-checkpoint-write@4", 600_000);
    signal(&child, "TERM");
    std::thread::sleep(std::time::Duration::from_millis(300));
    signal(&child, "TERM");
    let started = std::time::Instant::now();
    let (status, _) = finish(child);
    assert!(started.elapsed().as_secs() < 60, "did not exit at once");
    assert_eq!(status.code(), Some(143));
    let run = cwd.join("twice");
    assert_eq!(latest(&run), "step-0002");
    let store = CheckpointStore::new(&run, 2);
    let loaded = store.load_latest().unwrap().expect("a checkpoint");
    assert_eq!(loaded.state.position.unwrap().batches, 2);
    train_to_end(cwd, "twice");
    assert_eq!(latest_state(&run).epoch, EPOCHS);
    // A resume with another optimizer than the checkpoint's is refused, naming the key.
    let text = fs::read_to_string(cwd.join("stop.toml")).unwrap();
    fs::write(
        cwd.join("stop.toml"),
        text.replace("optimizer = \"adamw\"", "optimizer = \"sgd\""),
    )
    .unwrap();
    let output = train_command(cwd, "twice").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("train.optimizer"),
        "{stderr}"
    );
}

#[test]
fn a_slow_loader_shows_in_the_data_wait_share() {
    let dir = setup("flex");
    let cwd = dir.path();
    let text = fs::read_to_string(cwd.join("stop.toml"))
        .unwrap()
        .replace(&format!("epochs = {EPOCHS}"), "epochs = 1\nprefetch = 1")
        .replace("checkpoint_every_steps = 2\n", "");
    fs::write(cwd.join("stop.toml"), text).unwrap();
    train_to_end(cwd, "fast");
    let output = train_command(cwd, "slow")
        .env("ALEXNET_TEST_LOADER_DELAY_MS", "5000")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let share = |run: &str| {
        latest_state(&cwd.join(run)).history[0]
            .data_wait_share
            .expect("a data-wait share")
    };
    let (fast, slow) = (share("fast"), share("slow"));
    // Each of the 5 batches of the slow run takes 5 s to arrive, one after the other,
    // and the first is waited for in full; a step takes about 1 s at 67×67 in a debug
    // build (3 s beside other tests still leaves 0.46): it waits most of the epoch.
    assert!(
        slow > 0.4 && slow > fast + 0.2,
        "fast {fast}, slow {slow}: {stderr}"
    );
    assert!(
        stderr.contains("waited for data") && stderr.contains("train.loader_threads"),
        "{stderr}"
    );
}
