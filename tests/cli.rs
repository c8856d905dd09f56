//! The example binaries' command lines: every bad invocation is a clear error with a
//! non-zero exit, and nothing is written.

mod common;

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use common::example;

fn run(name: &str, args: &[&str], cwd: &Path) -> Output {
    Command::new(example(name))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run example")
}

/// Asserts a failed run whose error output names `expected`.
fn fails_with(output: Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "expected failure, got success; stderr: {stderr}"
    );
    assert!(
        stderr.contains(expected),
        "expected `{expected}` in: {stderr}"
    );
}

/// Asserts our own (not clap's) error: exactly one line.
fn one_line_error(output: Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let error_lines: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("error:"))
        .collect();
    assert_eq!(error_lines.len(), 1, "{stderr}");
    // The error is the last thing printed, and all on its line: no cause chain, no
    // backtrace, no second line of the message after it.
    let after_error: Vec<&str> = stderr
        .lines()
        .skip_while(|line| !line.starts_with("error:"))
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .collect();
    assert!(
        after_error.is_empty(),
        "lines after the error: {after_error:?}; stderr: {stderr}"
    );
    fails_with(output, expected);
}

/// `dir/raw`: the demo's drawings, 3 classes of 12 images of 72–96 px.
fn three_class_demo(dir: &Path) -> PathBuf {
    let raw = dir.join("raw");
    let demo = alexnet::prep::DemoConfig {
        classes: 3,
        images_per_class: 12,
        min_size: 72,
        max_size: 96,
        oddities: false,
        ..Default::default()
    };
    alexnet::prep::generate_demo(&raw, &demo).unwrap();
    raw
}

fn raw_dataset(dir: &Path) -> PathBuf {
    let raw = dir.join("raw");
    let demo = alexnet::prep::DemoConfig {
        classes: 2,
        images_per_class: 4,
        oddities: false,
        ..Default::default()
    };
    alexnet::prep::generate_demo(&raw, &demo).unwrap();
    raw
}

#[test]
fn preprocess_bad_invocations() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let raw = raw_dataset(cwd);
    let raw_s = raw.to_str().unwrap();
    let out = cwd.join("out");
    let out_s = out.to_str().unwrap();

    one_line_error(
        run("preprocess_caltech", &["--output", out_s], cwd),
        "no input folder",
    );
    one_line_error(
        run(
            "preprocess_caltech",
            &["--input", "missing", "--output", out_s],
            cwd,
        ),
        "missing does not exist",
    );
    let inside = raw.join("processed");
    one_line_error(
        run(
            "preprocess_caltech",
            &["--input", raw_s, "--output", inside.to_str().unwrap()],
            cwd,
        ),
        "inside the input folder",
    );
    assert!(!inside.exists(), "nothing written inside the input");
    let empty = cwd.join("empty");
    fs::create_dir_all(&empty).unwrap();
    one_line_error(
        run(
            "preprocess_caltech",
            &["--input", empty.to_str().unwrap(), "--output", out_s],
            cwd,
        ),
        "no class folders",
    );
    one_line_error(
        run(
            "preprocess_caltech",
            &["--input", raw_s, "--output", out_s, "--val-split", "1.5"],
            cwd,
        ),
        "prep.val_split",
    );
    one_line_error(
        run(
            "preprocess_caltech",
            &["--input", raw_s, "--output", out_s, "--size", "0"],
            cwd,
        ),
        "prep.size",
    );
    fails_with(
        run(
            "preprocess_caltech",
            &["--input", raw_s, "--sise", "3"],
            cwd,
        ),
        "--sise",
    );
    fails_with(
        run(
            "preprocess_caltech",
            &["--input", raw_s, "--jobs", "many"],
            cwd,
        ),
        "--jobs",
    );
    let bad_config = cwd.join("bad.toml");
    fs::write(&bad_config, "[prep]\nvalsplit = 0.1\n").unwrap();
    one_line_error(
        run(
            "preprocess_caltech",
            &[
                "--config",
                bad_config.to_str().unwrap(),
                "--input",
                raw_s,
                "--output",
                out_s,
            ],
            cwd,
        ),
        "valsplit",
    );
    assert!(!out.exists(), "no failed invocation created the output");

    // A good run, then the same output again: refused without --overwrite, replaced with it.
    let ok = run(
        "preprocess_caltech",
        &["--input", raw_s, "--output", out_s, "--size", "72"],
        cwd,
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(stdout.contains("8 written"), "{stdout}");
    let train_csv = fs::read(out.join("train.csv")).unwrap();
    one_line_error(
        run(
            "preprocess_caltech",
            &["--input", raw_s, "--output", out_s],
            cwd,
        ),
        "--overwrite",
    );
    assert_eq!(fs::read(out.join("train.csv")).unwrap(), train_csv);
    let again = run(
        "preprocess_caltech",
        &[
            "--input",
            raw_s,
            "--output",
            out_s,
            "--size",
            "72",
            "--overwrite",
        ],
        cwd,
    );
    assert!(again.status.success());
}

#[test]
fn train_and_test_bad_invocations() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    one_line_error(
        run("train_caltech", &["--data", "nowhere"], cwd),
        "nowhere does not exist",
    );
    one_line_error(
        run(
            "train_caltech",
            &["--data", "nowhere", "--device", "gpu"],
            cwd,
        ),
        "device `gpu`",
    );
    one_line_error(
        run(
            "train_caltech",
            &["--data", "nowhere", "--batch-size", "0"],
            cwd,
        ),
        "train.batch_size",
    );
    one_line_error(
        run(
            "train_caltech",
            &["--data", "nowhere", "--epochs", "0"],
            cwd,
        ),
        "train.epochs",
    );
    one_line_error(
        run(
            "train_caltech",
            &["--data", "nowhere", "--checkpoint-every-steps", "0"],
            cwd,
        ),
        "train.checkpoint_every_steps",
    );
    one_line_error(
        run(
            "train_caltech",
            &["--data", "nowhere", "--checkpoint-every-minutes", "0"],
            cwd,
        ),
        "train.checkpoint_every_minutes",
    );
    let smoothing = cwd.join("smoothing.toml");
    fs::write(&smoothing, "[train]\nlabel_smoothing = 1.0\n").unwrap();
    one_line_error(
        run(
            "train_caltech",
            &["--config", smoothing.to_str().unwrap(), "--data", "nowhere"],
            cwd,
        ),
        "train.label_smoothing",
    );
    fs::write(&smoothing, "[train]\nclip_grad_norm = 0.0\n").unwrap();
    one_line_error(
        run(
            "train_caltech",
            &["--config", smoothing.to_str().unwrap(), "--data", "nowhere"],
            cwd,
        ),
        "train.clip_grad_norm",
    );
    fails_with(run("train_caltech", &["--precision", "f8"], cwd), "f8");
    // Without the `mpi` feature the error names it; with it (tests/mpi.rs), mpirun.
    one_line_error(
        run(
            "train_caltech",
            &["--data", "nowhere", "--distributed", "mpi"],
            cwd,
        ),
        if cfg!(feature = "mpi") {
            "started by mpirun"
        } else {
            "a build with the `mpi` feature"
        },
    );
    fails_with(
        run("train_caltech", &["--distributed", "nccl"], cwd),
        "unknown distributed backend `nccl`",
    );
    let bad_config = cwd.join("bad.toml");
    fs::write(&bad_config, "[train]\nepochs = \"ten\"\n").unwrap();
    one_line_error(
        run(
            "train_caltech",
            &["--config", bad_config.to_str().unwrap()],
            cwd,
        ),
        "bad.toml",
    );
    one_line_error(
        run("test_caltech", &["--run-dir", "no-run"], cwd),
        "no-run does not exist",
    );
    fails_with(
        run("test_caltech", &["--split", "testing"], cwd),
        "unknown split `testing` (expected train, val or test)",
    );
    one_line_error(
        run(
            "train_caltech",
            &["--data", "nowhere", "--new-classifier"],
            cwd,
        ),
        "train.new_classifier",
    );
    one_line_error(
        run(
            "train_caltech",
            &["--data", "nowhere", "--init-from", "absent.pth"],
            cwd,
        ),
        "absent.pth is not a file",
    );
    fails_with(run("export", &["--out", "x.safetensors"], cwd), "--run-dir");
    one_line_error(
        run(
            "export",
            &["--run-dir", "no-run", "--out", "x.safetensors"],
            cwd,
        ),
        "no checkpoint",
    );
    assert!(!cwd.join("x.safetensors").exists());
    assert!(
        !cwd.join("runs").exists(),
        "no failed invocation created a run directory"
    );
}

/// `top1=<fraction> top5=<fraction> images=<n>`, test_caltech's last line.
fn scores(output: &Output) -> (f64, f64, usize) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "test_caltech failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    let field = |name: &str| -> String {
        last.split_whitespace()
            .find_map(|pair| pair.strip_prefix(name))
            .unwrap_or_else(|| panic!("no `{name}` in the last line: {stdout}"))
            .to_string()
    };
    let top1: f64 = field("top1=").parse().expect("top1 fraction");
    let top5: f64 = field("top5=").parse().expect("top5 fraction");
    let images: usize = field("images=").parse().expect("image count");
    assert!(
        (0.0..=1.0).contains(&top1) && (top1..=1.0).contains(&top5),
        "{last}"
    );
    (top1, top5, images)
}

fn succeeds(output: Output) -> Output {
    assert!(
        output.status.success(),
        "expected success; stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A small config as a user would write it: no dataset in it (given with --data), and a
/// demo section that a wrong fallback would visibly generate.
const TINY_CONFIG: &str = r#"
[demo]
dir = "demo"
classes = 2
images_per_class = 4
oddities = false

[augment]
train = [
  { op = "normalize", mean = "dataset" },
  { op = "horizontal_flip", p = 0.5 },
  { op = "random_crop", size = [67, 67] },
]
eval = [
  { op = "normalize", mean = "dataset" },
  { op = "center_crop", size = [67, 67] },
]

[model]
batch_norm_momentum = 0.5

[train]
epochs = 2
batch_size = 9
eval_batch_size = 9
lr = 0.002
checkpoint_interval = 1
preview_images = 2
seed = 42
"#;

/// preprocess → train → test, as the README runs them, on a tiny dataset; then what a
/// user naturally types next: test with the same config, resume with another seed, test
/// on a dataset with other classes.
#[test]
fn preprocess_train_and_test_succeed_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let raw = three_class_demo(cwd);
    let prep = succeeds(run(
        "preprocess_caltech",
        &[
            "--input",
            "raw",
            "--output",
            "data",
            "--size",
            "72",
            "--val-split",
            "0.25",
        ],
        cwd,
    ));
    assert!(
        String::from_utf8_lossy(&prep.stdout).contains("36 written"),
        "{}",
        String::from_utf8_lossy(&prep.stdout)
    );
    fs::write(cwd.join("tiny.toml"), TINY_CONFIG).unwrap();
    let train = |extra: &[&str]| {
        let mut args = vec![
            "--config",
            "tiny.toml",
            "--data",
            "data",
            "--run-dir",
            "run",
        ];
        args.extend_from_slice(extra);
        succeeds(run("train_caltech", &args, cwd))
    };
    let trained = train(&[]);
    let stdout = String::from_utf8_lossy(&trained.stdout);
    assert!(stdout.contains("done: 2 epochs"), "{stdout}");
    assert!(cwd.join("run/checkpoints/epoch-0002").is_dir());

    // export: safetensors and labels once; a second time nothing is overwritten.
    let export = ["--run-dir", "run", "--out", "run.safetensors"];
    let exported = succeeds(run("export", &export, cwd));
    assert!(
        String::from_utf8_lossy(&exported.stdout).contains("Original key names, epoch 2"),
        "{}",
        String::from_utf8_lossy(&exported.stdout)
    );
    let bytes = fs::read(cwd.join("run.safetensors")).unwrap();
    one_line_error(run("export", &export, cwd), "already exists");
    assert_eq!(fs::read(cwd.join("run.safetensors")).unwrap(), bytes);
    assert_eq!(
        fs::read_to_string(cwd.join("run.categories.txt"))
            .unwrap()
            .lines()
            .count(),
        3
    );

    // classify: top labels for a good image, one error line for a corrupt one, status 1.
    let good = fs::read_dir(
        raw.join(
            fs::read_dir(&raw)
                .unwrap()
                .map(|entry| entry.unwrap().file_name())
                .min()
                .unwrap(),
        ),
    )
    .unwrap()
    .map(|entry| entry.unwrap().path())
    .min()
    .unwrap();
    fs::create_dir_all(cwd.join("photos")).unwrap();
    fs::copy(&good, cwd.join("photos/good.jpg")).unwrap();
    fs::write(cwd.join("photos/corrupt.jpg"), b"\xff\xd8\xff not a jpeg").unwrap();
    let classified = run("classify", &["--run-dir", "run", "photos"], cwd);
    assert_eq!(classified.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&classified.stdout).to_string();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "the image and its 3 classes: {stdout}");
    assert_eq!(lines[0], "photos/good.jpg");
    let total: f64 = lines[1..]
        .iter()
        .map(|line| {
            line.split_whitespace()
                .next()
                .unwrap()
                .parse::<f64>()
                .unwrap()
        })
        .sum();
    assert!(
        (total - 1.0).abs() < 1e-3,
        "all 3 classes' probabilities: {stdout}"
    );
    one_line_error(classified, "corrupt.jpg");
    one_line_error(
        run("classify", &["--run-dir", "no-run", "good.jpg"], cwd),
        "no checkpoint",
    );

    let (_, _, images) = scores(&run("test_caltech", &["--run-dir", "run"], cwd));
    assert_eq!(
        images, 9,
        "the validation split: 12 images a class, a quarter of them"
    );
    // The same config again: no dataset in it, so the run's recorded dataset is used,
    // never the demo's shapes.
    let same_config = run(
        "test_caltech",
        &["--config", "tiny.toml", "--run-dir", "run"],
        cwd,
    );
    let stderr = String::from_utf8_lossy(&same_config.stderr).to_string();
    assert_eq!(
        scores(&same_config),
        scores(&run("test_caltech", &["--run-dir", "run"], cwd))
    );
    assert!(!stderr.contains("demo dataset"), "{stderr}");
    assert!(!cwd.join("demo").exists(), "the demo dataset was generated");

    // A resume that keeps the checkpoint's seed says so in the run's log file too.
    train(&["--epochs", "3", "--seed", "5"]);
    let log = fs::read_to_string(cwd.join("run/train.log")).unwrap();
    assert!(log.contains("seed 42 is kept"), "{log}");

    // Another dataset with as many classes but other ones: refused, naming both.
    let other = cwd.join("other");
    fs::create_dir_all(&other).unwrap();
    let classes = fs::read_dir(&raw)
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.path().is_dir());
    for (k, entry) in classes.enumerate() {
        let renamed = other.join(format!("{:03}.other{k}", k + 1));
        fs::create_dir_all(&renamed).unwrap();
        for file in fs::read_dir(entry.path()).unwrap() {
            let file = file.unwrap();
            fs::copy(file.path(), renamed.join(file.file_name())).unwrap();
        }
    }
    succeeds(run(
        "preprocess_caltech",
        &["--input", "other", "--output", "other-data", "--size", "72"],
        cwd,
    ));
    one_line_error(
        run(
            "test_caltech",
            &["--run-dir", "run", "--data", "other-data"],
            cwd,
        ),
        "other0",
    );
}

/// `train_caltech --data D` and `test_caltech --data D` (no config, no run directory)
/// agree on the run directory, `runs/alexnet`: the examples share one rule
/// (`alexnet_train::commands::command_config`). Before, test_caltech looked in
/// `runs/demo` and failed.
#[test]
fn train_and_test_with_only_data_agree_on_the_run_directory() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    raw_dataset(cwd);
    succeeds(run(
        "preprocess_caltech",
        &[
            "--input",
            "raw",
            "--output",
            "data",
            "--size",
            "227",
            "--val-split",
            "0.25",
        ],
        cwd,
    ));
    // The original's settings (227 crops of 227 images here), one short epoch.
    let flags = ["--data", "data", "--epochs", "1", "--batch-size", "3"];
    succeeds(run("train_caltech", &flags, cwd));
    assert!(cwd.join("runs/alexnet/checkpoints/latest").is_file());
    assert!(!cwd.join("runs/demo").exists());
    let tested = succeeds(run("test_caltech", &["--data", "data"], cwd));
    let stdout = String::from_utf8_lossy(&tested.stdout);
    assert!(
        stdout.contains("runs/alexnet/checkpoints/epoch-0001"),
        "{stdout}"
    );
    assert!(stdout.contains("images=2"), "{stdout}");
}

/// The last line of a successful test_caltech, and its `name=value` field.
fn last_line_field(output: &Output, name: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "test_caltech failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default().to_string();
    last.split_whitespace()
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no `{name}=` in the last line: {stdout}"))
        .to_string()
}

/// The split that chose the checkpoint is never reported as a test result, and says
/// so; a dataset re-split since training is refused for a resume and for testing (its
/// test split could hold images the run trained on); a dataset with a test split is
/// scored on it by default.
#[test]
fn test_numbers_come_from_a_split_nothing_was_chosen_on() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    three_class_demo(cwd);
    let prep = |args: &[&str]| {
        let mut all = vec!["--input", "raw", "--size", "72", "--val-split", "0.25"];
        all.extend_from_slice(args);
        succeeds(run("preprocess_caltech", &all, cwd))
    };
    prep(&["--output", "data"]);
    fs::write(cwd.join("tiny.toml"), TINY_CONFIG).unwrap();
    let train = |data: &str, run_dir: &str, epochs: &str| {
        let args = [
            "--config",
            "tiny.toml",
            "--data",
            data,
            "--run-dir",
            run_dir,
            "--epochs",
            epochs,
        ];
        run("train_caltech", &args, cwd)
    };
    succeeds(train("data", "run", "1"));

    // No test split: val is scored, named, and said not to be a test result.
    let scored = run("test_caltech", &["--run-dir", "run"], cwd);
    assert_eq!(last_line_field(&scored, "split"), "val");
    let stdout = String::from_utf8_lossy(&scored.stdout).to_string();
    assert!(stdout.contains("not a test result"), "{stdout}");
    one_line_error(
        run(
            "test_caltech",
            &["--run-dir", "run", "--split", "test"],
            cwd,
        ),
        "no test split",
    );

    // The same folder re-split with another seed: refused for a resume and a test.
    prep(&["--output", "data", "--overwrite", "--seed", "7"]);
    one_line_error(train("data", "run", "2"), "the train split");
    one_line_error(
        run("test_caltech", &["--run-dir", "run"], cwd),
        "changed since",
    );
    let anyway = run(
        "test_caltech",
        &["--run-dir", "run", "--other-dataset"],
        cwd,
    );
    assert_eq!(last_line_field(&anyway, "split"), "val");

    // Three splits: test is scored by default, with mean per-class accuracy.
    prep(&["--output", "data3", "--test-split", "0.25"]);
    succeeds(train("data3", "run3", "1"));
    let tested = run("test_caltech", &["--run-dir", "run3"], cwd);
    assert_eq!(last_line_field(&tested, "split"), "test");
    assert_eq!(last_line_field(&tested, "images"), "9");
    let mean: f64 = last_line_field(&tested, "mean_per_class").parse().unwrap();
    assert!((0.0..=1.0).contains(&mean));
    let stdout = String::from_utf8_lossy(&tested.stdout).to_string();
    assert!(!stdout.contains("not a test result"), "{stdout}");
    assert!(cwd.join("run3/summary.csv").is_file());
}

/// The protocol example: K seeded splits of N training images per class, each trained
/// and scored on its test split, and the mean ± std of their mean per-class accuracy.
#[test]
fn the_protocol_runs_seeded_splits_and_averages_them() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    three_class_demo(cwd);
    let config = format!("[prep]\nsize = 72\nval_split = 0.25\n{TINY_CONFIG}");
    fs::write(cwd.join("tiny.toml"), config).unwrap();
    let args = [
        "--config",
        "tiny.toml",
        "--input",
        "raw",
        "--train-per-class",
        "6",
        "--splits",
        "2",
        "--dir",
        "protocol",
        "--epochs",
        "1",
    ];
    let output = succeeds(run("protocol", &args, cwd));
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    let field = |line: &str, name: &str| -> f64 {
        line.split_whitespace()
            .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {line}"))
            .parse()
            .unwrap()
    };
    let scores: Vec<f64> = lines[..2]
        .iter()
        .map(|l| field(l, "mean_per_class"))
        .collect();
    // 12 images a class: 6 train, round(6 × 0.25) = 2 val, 4 test; 3 classes.
    for line in &lines[..2] {
        assert!(line.contains("images=12"), "{line}");
    }
    let mean = field(lines[2], "mean_per_class");
    assert!(
        (mean - (scores[0] + scores[1]) / 2.0).abs() < 1e-4,
        "{stdout}"
    );
    assert!(
        lines[2].contains("± ") && lines[2].contains("over 2 splits of 6"),
        "{stdout}"
    );
    let train_csv = |k: usize| {
        fs::read_to_string(cwd.join(format!("protocol/split-{k}/data/train.csv"))).unwrap()
    };
    assert_ne!(train_csv(0), train_csv(1), "the splits differ");
    assert_eq!(train_csv(0).lines().count(), 1 + 18);
}
