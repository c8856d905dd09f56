//! The store's contract: what a resume may trust.

use std::fs;

use runfiles::{Loaded, Store, StoreError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct State {
    epoch: usize,
}

fn weights(epoch: usize) -> Vec<u8> {
    (0..64).map(|i| (i * epoch) as u8).collect()
}

fn store_with(dir: &std::path::Path, epochs: usize, keep: usize) -> Store {
    let store = Store::new(dir, "epoch-", keep);
    for epoch in 1..=epochs {
        let model = weights(epoch);
        store
            .save(
                epoch,
                &State { epoch },
                &[("model.bin", &model), ("optim.bin", b"o")],
            )
            .unwrap();
    }
    store
}

fn accept(loaded: Loaded<State>) -> Result<Loaded<State>, String> {
    Ok(loaded)
}

#[test]
fn a_damaged_latest_falls_back_to_the_newest_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), 3, 3);
    let damaged = dir.path().join("epoch-0003/model.bin");
    let mut bytes = fs::read(&damaged).unwrap();
    bytes[10] ^= 0xff;
    fs::write(&damaged, bytes).unwrap();
    let error = Store::load::<State>(&dir.path().join("epoch-0003")).unwrap_err();
    assert!(matches!(error, StoreError::Damaged { .. }), "{error}");
    let loaded = store.load_latest(accept).unwrap().unwrap();
    assert_eq!(loaded.state, State { epoch: 2 });
    assert_eq!(loaded.files["model.bin"], weights(2));
    assert_eq!(loaded.files["optim.bin"], b"o");
}

#[test]
fn a_rejected_latest_falls_back_too_and_none_usable_is_an_error_naming_each() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), 2, 2);
    let older = store
        .load_latest(|loaded: Loaded<State>| match loaded.state.epoch {
            2 => Err("rejected by the caller".into()),
            _ => Ok(loaded),
        })
        .unwrap()
        .unwrap();
    assert_eq!(older.state.epoch, 1);
    fs::remove_file(dir.path().join("epoch-0001/model.bin")).unwrap();
    fs::write(dir.path().join("epoch-0002/state.json"), b"{").unwrap();
    let error = store.load_latest(accept).unwrap_err().to_string();
    assert!(
        error.contains("no usable checkpoint") && error.contains("state unreadable"),
        "{error}"
    );
    assert!(error.contains("epoch-0001/model.bin"), "{error}");
}

#[test]
fn the_newest_are_kept_and_another_lines_later_checkpoints_are_never_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), 5, 2);
    let numbers: Vec<usize> = store.list().unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(numbers, [5, 4]);
    // Resumed from epoch 4 and saved epoch 4 again: epoch 5 is another line's.
    store
        .save(4, &State { epoch: 4 }, &[("model.bin", &weights(4))])
        .unwrap();
    let numbers: Vec<usize> = store.list().unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(numbers, [5, 4]);
    assert_eq!(
        store.latest().unwrap().unwrap(),
        dir.path().join("epoch-0004")
    );
    // A fallback never jumps to the other line.
    fs::write(dir.path().join("epoch-0004/model.bin"), b"torn").unwrap();
    assert!(store.load_latest(accept).is_err());
}

#[test]
fn a_state_file_that_records_its_files_inside_the_state_loads() {
    // alexnet-train's state.json before this crate: `files` among the trainer's keys.
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("epoch-0007");
    fs::create_dir(&checkpoint).unwrap();
    fs::write(checkpoint.join("model.bpk"), b"weights").unwrap();
    let crc = crc32(b"weights");
    fs::write(
        checkpoint.join("state.json"),
        format!(r#"{{"format": 1, "epoch": 7, "files": {{"model.bpk": {{"bytes": 7, "crc32": {crc}}}}}}}"#),
    )
    .unwrap();
    let loaded: Loaded<State> = Store::load(&checkpoint).unwrap();
    assert_eq!(loaded.state, State { epoch: 7 });
    assert_eq!(loaded.files["model.bpk"], b"weights");
}

fn crc32(bytes: &[u8]) -> u32 {
    runfiles::FileDigest::of(bytes).crc32
}

#[test]
fn a_missing_folder_is_not_found_and_an_empty_store_has_no_latest() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(&dir.path().join("none"), "epoch-", 1);
    assert!(store.load_latest(accept).unwrap().is_none());
    let error = Store::load::<State>(&dir.path().join("none/epoch-0001")).unwrap_err();
    assert!(error.to_string().ends_with("not found"), "{error}");
}
