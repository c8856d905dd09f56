//! The example binaries' command lines: every bad invocation is a clear error with a
//! non-zero exit, and nothing is written.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::Mutex,
};

/// The example binary `name`, brought up to date once per test process (`cargo test
/// --test cli` alone does not build examples) in the profile this test runs in.
fn example(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = profile_dir.join("examples").join(name);
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !built.iter().any(|done| done == name) {
        built.push(name.to_string());
        let mut build = Command::new(env!("CARGO"));
        build
            .args(["build", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        assert!(
            build.status().expect("cargo build").success(),
            "building example {name}"
        );
    }
    path
}

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
    assert!(!stderr.trim_end().contains('\n') || !stderr.lines().last().unwrap_or("").is_empty());
    fails_with(output, expected);
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
    fails_with(run("train_caltech", &["--precision", "f8"], cwd), "f8");
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
        run("test_caltech", &["--split", "test"], cwd),
        "unknown split",
    );
    assert!(
        !cwd.join("runs").exists(),
        "no failed invocation created a run directory"
    );
}
