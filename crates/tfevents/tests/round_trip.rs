//! The writer's files read back by this crate's reader and, where a Python with the
//! `tensorboard` package is given, by TensorBoard's own `EventAccumulator`.

use std::fs;

use image::RgbImage;
use tfevents::{Accumulator, EventWriter, GraphNode, read_event_dir};

#[test]
fn written_events_read_back_and_purge_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut first = EventWriter::create(dir.path(), "test").unwrap();
        first.session_start(0).unwrap();
        for step in 1..=4 {
            first.scalar("loss/train", step as f64, step).unwrap();
        }
        first.text("model", "AlexNet", 0).unwrap();
        first.image("preview", &RgbImage::new(3, 2), 0).unwrap();
        first.flush().unwrap();
    }
    // Two writers back to back get distinct, ordered files.
    let mut second = EventWriter::create(dir.path(), "test").unwrap();
    second.session_start(3).unwrap();
    second.scalar("loss/train", 30.0, 3).unwrap();
    second.scalar("loss/train", 40.0, 4).unwrap();
    second.flush().unwrap();
    let log = read_event_dir(dir.path()).unwrap();
    assert_eq!(
        log.scalars["loss/train"],
        vec![(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]
    );
    assert_eq!(log.texts["model"], vec![(0, "AlexNet".to_string())]);
    assert_eq!(log.images["preview"], vec![0]);
    assert_eq!(log.session_starts, vec![0, 3]);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn a_folder_that_cannot_be_created_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    fs::write(&file, b"x").unwrap();
    let error = EventWriter::create(&file.join("tb"), "test")
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("tensorboard"), "{error}");
}

/// TensorBoard's own reader through the Python in `TFEVENTS_PYTHON` (else
/// `ALEXNET_TENSORBOARD_PYTHON`); `None` with a note when neither is set, unless
/// `ALEXNET_REQUIRE_TENSORBOARD` is (CI sets it).
fn tensorboards_reader() -> Option<Accumulator> {
    let python = std::env::var_os("TFEVENTS_PYTHON")
        .or_else(|| std::env::var_os("ALEXNET_TENSORBOARD_PYTHON"));
    if python.is_none() {
        assert!(
            std::env::var_os("ALEXNET_REQUIRE_TENSORBOARD").is_none(),
            "ALEXNET_REQUIRE_TENSORBOARD is set but no Python with tensorboard is given"
        );
        eprintln!("note: TFEVENTS_PYTHON unset; TensorBoard's own reader not run");
    }
    python.map(Accumulator::new)
}

#[test]
fn tensorboards_own_reader_sees_what_ours_sees() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut first = EventWriter::create(dir.path(), "test").unwrap();
        first.session_start(0).unwrap();
        first.text("model", "AlexNet", 0).unwrap();
        first.image("preview", &RgbImage::new(4, 3), 0).unwrap();
        first
            .graph(&[
                GraphNode {
                    name: "input".into(),
                    op: "Placeholder".into(),
                    inputs: vec![],
                    output_shape: vec![-1, 3, 8, 8],
                    description: "images".into(),
                },
                GraphNode {
                    name: "conv1.conv".into(),
                    op: "Conv2d".into(),
                    inputs: vec!["input".into()],
                    output_shape: vec![-1, 4, 8, 8],
                    description: "3→4, 3×3".into(),
                },
            ])
            .unwrap();
        for step in 1..=5 {
            first.scalar("loss/train", step as f64, step).unwrap();
        }
        first.flush().unwrap();
    }
    // A restart after step 2: the points at 3, 4, 5 are stale.
    let mut second = EventWriter::create(dir.path(), "test").unwrap();
    second.session_start(3).unwrap();
    for step in 3..=4 {
        second
            .scalar("loss/train", 10.0 * step as f64, step)
            .unwrap();
    }
    second.flush().unwrap();
    let ours = read_event_dir(dir.path()).unwrap();
    assert_eq!(
        ours.scalars["loss/train"],
        vec![(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]
    );
    assert_eq!(ours.graph_nodes, vec!["input", "conv1/conv"]);
    let Some(reader) = tensorboards_reader() else {
        return;
    };
    let steps = reader.steps(dir.path()).unwrap();
    assert_eq!(steps["loss/train"], [1, 2, 3, 4]);
    assert_eq!(steps["model"], [0]);
    assert_eq!(steps["preview"], [0]);
    assert_eq!(
        reader.graph_nodes(dir.path()).unwrap(),
        ["input", "conv1/conv"]
    );
}
