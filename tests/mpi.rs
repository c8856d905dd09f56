//! Data-parallel training over MPI ranks (`--distributed mpi`), run as a user would:
//! `mpirun --oversubscribe -np 2 train_caltech ...` on this machine. Built with the `mpi`
//! feature and the pause points of `fault-injection` (`cargo test --features
//! mpi,fault-injection --test mpi`); without Open MPI's `mpirun` the tests skip with a
//! note, unless `ALEXNET_REQUIRE_MPI` is set (CI sets it).

#![cfg(all(feature = "mpi", feature = "fault-injection"))]

mod common;

use std::{
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::mpsc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use alexnet::{
    burn::{
        module::{Module, ModuleVisitor, Param},
        prelude::*,
    },
    model::Variant,
    prep::Split,
    train::{
        ExperimentConfig,
        checkpoint::CheckpointStore,
        device::parse_device,
        eval::{TestRequest, TestView, test},
    },
};
use common::{
    assert_learned_in_shards, assert_one_point_per_epoch, assert_same_history, curve, example,
    latest_state, separable_dataset, tiny_config,
};

/// `mpirun`, or `None` (with a note) where Open MPI is not installed and not required.
fn mpirun() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("mpirun"))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("ALEXNET_REQUIRE_MPI").is_none(),
            "ALEXNET_REQUIRE_MPI is set but mpirun is not on PATH (apt-get install openmpi-bin)"
        );
        eprintln!("note: mpirun not found; the MPI tests did not run");
    }
    found
}

/// `mpirun --oversubscribe -np <ranks> train_caltech --config <config> --run-dir <run>
/// --distributed mpi --distributed-timeout <timeout>` in `cwd`.
fn ranked(mpirun: &Path, cwd: &Path, ranks: usize, run: &str, timeout: u32) -> Command {
    let mut command = Command::new(mpirun);
    command
        .args(["--oversubscribe", "--bind-to", "none", "-np"])
        .arg(ranks.to_string())
        .arg(example("train_caltech"))
        .args(["--config", "run.toml", "--run-dir", run])
        .args(["--distributed", "mpi", "--distributed-timeout"])
        .arg(timeout.to_string())
        .current_dir(cwd)
        // CI runs as root, which Open MPI refuses unless told.
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env_remove("ALEXNET_TEST_PAUSE_AT");
    command
}

/// Runs `command` and asserts it succeeded.
fn succeed(command: &mut Command) -> Output {
    let output = command.output().expect("start the run");
    assert!(
        output.status.success(),
        "the run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Writes `config` as `cwd/run.toml`.
fn write_config(cwd: &Path, config: &ExperimentConfig) {
    fs::write(cwd.join("run.toml"), config.to_toml().unwrap()).unwrap();
}

/// Every float value (parameters and BatchNorm statistics) of the model in `checkpoint`.
fn checkpoint_values(checkpoint: &Path) -> Vec<f32> {
    struct Values(Vec<f32>);
    impl ModuleVisitor for Values {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0
                .extend(param.val().into_data().try_to_vec::<f32>().unwrap());
        }
    }
    let checkpoint = CheckpointStore::load(checkpoint).unwrap();
    let device = parse_device("flex").unwrap();
    let model = checkpoint.state.model.init(&device).unwrap();
    let model = checkpoint.load_model(model).unwrap();
    let mut values = Values(Vec::new());
    model.visit(&mut values);
    values.0
}

#[test]
fn two_ranks_take_the_steps_of_one_process_with_the_whole_batch() {
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    // torchvision's network with no dropout: no BatchNorm and no random draw in the step,
    // so the two runs differ only in the order of the gradients' sums. 27 training
    // images in batches of 9: three steps, shared 5 + 4 between the ranks.
    let mut config = tiny_config(cwd);
    config.model.variant = Variant::Torchvision;
    config.model.fc_dropout = 0.0;
    config.train.epochs = 1;
    config.train.lr = 0.01;
    write_config(cwd, &config);
    let mut single = Command::new(example("train_caltech"));
    single
        .args(["--config", "run.toml", "--run-dir", "single"])
        .current_dir(cwd);
    succeed(&mut single);
    succeed(&mut ranked(&mpirun, cwd, 2, "ranked", 120));

    let one = checkpoint_values(&cwd.join("single/checkpoints/epoch-0001"));
    let two = checkpoint_values(&cwd.join("ranked/checkpoints/epoch-0001"));
    assert_eq!(one.len(), two.len());
    let worst = one
        .iter()
        .zip(&two)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!(
        "{} values, largest difference after 3 steps {worst:e}",
        one.len()
    );
    assert!(
        worst <= 1e-5,
        "parameters differ by up to {worst} between 1 process and 2 ranks"
    );
    let (a, b) = (
        latest_state(&cwd.join("single")),
        latest_state(&cwd.join("ranked")),
    );
    assert_eq!((a.global_step, b.global_step), (3, 3), "three steps each");
    let (a, b) = (&a.history[0], &b.history[0]);
    eprintln!(
        "epoch 1, one process: loss {} val {} / {}; two ranks: loss {} val {} / {}",
        a.train_loss, a.val_loss, a.val_top1, b.train_loss, b.val_loss, b.val_top1
    );
    assert!((a.train_loss - b.train_loss).abs() <= 1e-5 * a.train_loss.abs().max(1.0));
    assert!((a.val_loss - b.val_loss).abs() <= 1e-4 * a.val_loss.abs().max(1.0));
    assert_eq!(a.train_accuracy, b.train_accuracy);

    // Rank 0 alone wrote the run's files: one TensorBoard file, one log without rank 1.
    let mut entries: Vec<String> = fs::read_dir(cwd.join("ranked"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        [
            "checkpoints",
            "config.toml",
            "summary.csv",
            "tensorboard",
            "train.log"
        ]
    );
    for dir in ["ranked/tensorboard", "ranked/tensorboard/steps"] {
        let files = fs::read_dir(cwd.join(dir))
            .unwrap()
            .filter(|entry| entry.as_ref().unwrap().path().is_file())
            .count();
        assert_eq!(files, 1, "{dir}: one event file");
    }
    let log = fs::read_to_string(cwd.join("ranked/train.log")).unwrap();
    assert!(log.contains("rank 0 of 2"), "{log}");
    assert!(!log.contains("rank 1"), "{log}");
}

#[test]
fn two_ranks_learn_and_write_one_point_per_epoch() {
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    // The post's network (BatchNorm, dropout) on the colour-per-class fixture, as
    // tests/parallel.rs's alexnet_trains_data_parallel: four steps of 18 (9 a rank) an
    // epoch.
    let mut config = tiny_config(cwd);
    config.train.data = Some(separable_dataset().to_path_buf());
    config.train.batch_size = 18;
    config.train.eval_batch_size = 30;
    config.train.epochs = 6;
    config.train.checkpoint_interval = 3;
    write_config(cwd, &config);
    let output = succeed(&mut ranked(&mpirun, cwd, 2, "run", 120));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout.matches("done:").count(),
        1,
        "rank 0 alone reports: {stdout}"
    );
    let history = latest_state(&cwd.join("run")).history;
    let curve = curve(&history);
    eprintln!("2 ranks, loss/accuracy and validation per epoch: {curve:?}");
    // The same rule for shards and BatchNorm statistics as tests/parallel.rs's two devices.
    assert_learned_in_shards(&history);
    assert_one_point_per_epoch(&cwd.join("run/tensorboard"), 6);

    // The split evaluation with rank 0's BatchNorm statistics on every rank is the
    // evaluation of the checkpoint (rank 0's model) by one process.
    let last = &history[5];
    let checkpoint = cwd.join("run/checkpoints/epoch-0006");
    let request = TestRequest {
        checkpoint: Some(&checkpoint),
        split: Some(Split::Val),
        view: Some(TestView::Config),
        other_dataset: false,
    };
    let report = test(&config, &cwd.join("run"), &request).unwrap();
    let mean = last.val_mean_per_class.expect("measured");
    assert!(
        (report.mean_per_class - mean).abs() <= 1e-9,
        "mean per-class accuracy: 2 ranks {mean}, one process {}",
        report.mean_per_class
    );
    eprintln!(
        "epoch 6 validation, 2 ranks: loss {} top-1 {}; the checkpoint in one process: loss {} top-1 {}",
        last.val_loss, last.val_top1, report.loss, report.top1
    );
    assert!(
        (report.loss - last.val_loss).abs() <= 1e-5 * last.val_loss.abs().max(1.0),
        "validation loss: 2 ranks {}, one process {}",
        last.val_loss,
        report.loss
    );
    assert_eq!((report.top1, report.top5), (last.val_top1, last.val_top5));
}

/// A 2-rank run whose rank 1 has stopped after step 2 of epoch 2 (for 10 minutes).
struct Stopped {
    launcher: Child,
    /// Rank 1's process.
    pid: u32,
    /// When rank 1 said it stopped.
    since: Instant,
    /// The launcher's stderr, read to the end on a thread.
    output: JoinHandle<Vec<String>>,
}

/// Starts a 2-rank run and waits (5 minutes at most) until its rank 1 has stopped.
fn start_with_rank_1_stopped(mpirun: &Path, cwd: &Path, run: &str, timeout: u32) -> Stopped {
    start_with_rank_1_paused(mpirun, cwd, run, timeout, 600_000)
}

/// Starts a 2-rank run and waits (5 minutes at most) until its rank 1 has paused for
/// `pause_ms` after step 2 of epoch 2.
fn start_with_rank_1_paused(
    mpirun: &Path,
    cwd: &Path,
    run: &str,
    timeout: u32,
    pause_ms: u64,
) -> Stopped {
    let mut launcher = ranked(mpirun, cwd, 2, run, timeout)
        .env("ALEXNET_TEST_PAUSE_AT", "step-2@2")
        .env("ALEXNET_TEST_PAUSE_RANK", "1")
        .env("ALEXNET_TEST_PAUSE_MS", pause_ms.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = launcher.stderr.take().unwrap();
    let (lines, received) = mpsc::channel();
    let output = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line.clone());
            all.push(line);
        }
        all
    });
    let deadline = Instant::now() + Duration::from_secs(300);
    while let Ok(line) = received.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if let Some(rest) = line.split("paused at step-2@2 (pid ").nth(1) {
            return Stopped {
                launcher,
                pid: rest.trim_end_matches(')').parse().unwrap(),
                since: Instant::now(),
                output,
            };
        }
    }
    let _ = launcher.kill();
    let _ = launcher.wait();
    panic!("rank 1 never stopped; output: {:?}", output.join());
}

impl Stopped {
    /// Waits for the launcher to exit, `limit` at most after rank 1 stopped: its status,
    /// the seconds since rank 1 stopped, and its output.
    fn end(mut self, limit: Duration) -> (ExitStatus, f64, String) {
        loop {
            if let Some(status) = self.launcher.try_wait().unwrap() {
                let seconds = self.since.elapsed().as_secs_f64();
                let output = self.output.join().unwrap().join("\n");
                return (status, seconds, output);
            }
            if self.since.elapsed() > limit {
                let _ = Command::new("kill")
                    .args(["-9", &self.pid.to_string()])
                    .status();
                let _ = self.launcher.kill();
                let _ = self.launcher.wait();
                panic!(
                    "the job was still running {limit:?} after rank 1 stopped: {:?}",
                    self.output.join()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn a_hung_rank_ends_the_job_within_the_time_limit_naming_it() {
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    write_config(cwd, &tiny_config(cwd));
    // Rank 1 sleeps (a hang: alive, silent); rank 0 waits 8 s for it at step 3.
    let stopped = start_with_rank_1_stopped(&mpirun, cwd, "run", 8);
    let (status, seconds, output) = stopped.end(Duration::from_secs(60));
    eprintln!("the job ended {seconds:.1} s after rank 1 stopped, {status}");
    for line in output.lines().filter(|line| line.contains("error:")) {
        eprintln!("{line}");
    }
    assert!(!status.success(), "{output}");
    assert!(
        output.contains("error: rank 0: no word from rank 1 within 8 s"),
        "{output}"
    );
    // Rank 0 reaches step 3 at once; the 8 s limit, then MPI_Abort, with a margin for a
    // loaded machine.
    assert!(seconds < 40.0, "took {seconds} s: {output}");
}

#[test]
fn a_killed_rank_ends_the_job_and_the_rerun_resumes_exactly() {
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    write_config(cwd, &tiny_config(cwd));
    succeed(&mut ranked(&mpirun, cwd, 2, "straight", 120));

    let stopped = start_with_rank_1_stopped(&mpirun, cwd, "killed", 20);
    let status = Command::new("kill")
        .args(["-9", &stopped.pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (status, seconds, output) = stopped.end(Duration::from_secs(80));
    eprintln!("the job ended {seconds:.1} s after rank 1 was killed, {status}");
    assert!(!status.success(), "{output}");
    // mpirun names the killed rank, or rank 0 does when its 20 s run out first.
    assert!(
        output.contains("rank 1 with PID") || output.contains("no word from rank 1"),
        "{output}"
    );
    assert!(seconds < 60.0, "took {seconds} s: {output}");
    assert_eq!(
        fs::read_to_string(cwd.join("killed/checkpoints/latest"))
            .unwrap()
            .trim(),
        "epoch-0001"
    );

    // The same command again resumes from epoch 1 and ends as the uninterrupted run.
    let rerun = succeed(&mut ranked(&mpirun, cwd, 2, "killed", 120));
    assert!(String::from_utf8_lossy(&rerun.stderr).contains("resuming from"));
    let reference = latest_state(&cwd.join("straight")).history;
    let resumed = latest_state(&cwd.join("killed")).history;
    assert_eq!(reference.len(), 3);
    assert_same_history(&reference, &resumed);
    assert_one_point_per_epoch(&cwd.join("killed/tensorboard"), 3);
}

#[test]
fn sigterm_to_one_rank_stops_every_rank_at_the_same_step_and_the_rerun_resumes_exactly() {
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let mut config = tiny_config(cwd);
    config.logging.every_steps = 1;
    write_config(cwd, &config);
    succeed(&mut ranked(&mpirun, cwd, 2, "straight", 120));

    // SIGTERM to rank 1 alone, paused after step 2 of epoch 2 (run step 5 of 3-step
    // epochs): both ranks stop after that step, rank 0 writes its checkpoint.
    let paused = start_with_rank_1_paused(&mpirun, cwd, "stopped", 60, 1500);
    let status = Command::new("kill")
        .args(["-TERM", &paused.pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (status, seconds, output) = paused.end(Duration::from_secs(60));
    eprintln!("the job stopped {seconds:.1} s after SIGTERM to rank 1, {status}");
    assert!(!status.success(), "{output}");
    let stop_line = "stopped by SIGTERM after epoch 1 and 2 batches of epoch 2";
    assert_eq!(
        output.matches(stop_line).count(),
        2,
        "each rank says so: {output}"
    );
    assert_eq!(
        fs::read_to_string(cwd.join("stopped/checkpoints/latest"))
            .unwrap()
            .trim(),
        "step-0005"
    );

    let rerun = succeed(&mut ranked(&mpirun, cwd, 2, "stopped", 120));
    assert!(String::from_utf8_lossy(&rerun.stderr).contains("resuming from"));
    let reference = latest_state(&cwd.join("straight")).history;
    let resumed = latest_state(&cwd.join("stopped")).history;
    assert_same_history(&reference, &resumed);
    assert_one_point_per_epoch(&cwd.join("stopped/tensorboard"), 3);
    let losses = |run: &str| {
        alexnet::train::tfevents::read_event_dir(&cwd.join(run).join("tensorboard/steps"))
            .unwrap()
            .scalars["step/loss_train"]
            .clone()
    };
    assert_eq!(losses("straight"), losses("stopped"));
}

#[test]
fn distributed_mpi_outside_mpirun_is_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    write_config(cwd, &tiny_config(cwd));
    let output = Command::new(example("train_caltech"))
        .args([
            "--config",
            "run.toml",
            "--run-dir",
            "run",
            "--distributed",
            "mpi",
        ])
        .current_dir(cwd)
        .env_remove("OMPI_COMM_WORLD_RANK")
        .env_remove("PMIX_RANK")
        .env_remove("PMI_RANK")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("--distributed") && errors[0].contains("mpirun -np"));
    assert!(!cwd.join("run").exists(), "nothing is written");
}
