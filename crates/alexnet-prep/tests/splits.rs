//! Splits: three of them, the N-per-class protocol, presplit inputs (class folders or a
//! flat val/ with a label CSV), near duplicates across splits, and the fingerprint.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

use alexnet_prep::{
    Layout, NearDuplicates, PrepConfig, PrepError, Preprocessor, ProcessedDataset, Split,
};
use image::{Rgb, RgbImage, imageops};
use rand::{RngExt, SeedableRng};

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

fn jpeg(image: &RgbImage, quality: u8) -> Vec<u8> {
    let mut bytes = Vec::new();
    alexnet_prep::encode_jpeg(image, quality, &mut bytes).unwrap();
    bytes
}

/// A textured image of random blocks, different for every `seed`.
fn blocks(seed: u64, width: u32, height: u32) -> RgbImage {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let cells: Vec<[u8; 3]> = (0..64).map(|_| rng.random()).collect();
    RgbImage::from_fn(width, height, |x, y| {
        let cell = (y * 8 / height) * 8 + x * 8 / width;
        Rgb(cells[cell as usize])
    })
}

/// `per_class[i]` textured images in class folder `c{i}` under `root/<prefix>`.
fn dataset(root: &Path, prefix: &str, per_class: &[usize], seed: u64) {
    for (class, &count) in per_class.iter().enumerate() {
        for i in 0..count {
            let image = blocks(seed * 1_000_003 + (class * 1000 + i) as u64, 48, 40);
            write(
                root,
                &format!("{prefix}c{class}/{i:03}.jpg"),
                &jpeg(&image, 95),
            );
        }
    }
}

/// Every file under `root` with its bytes.
fn snapshot(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push((path.clone(), fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

fn config(input: &Path, output: &Path) -> PrepConfig {
    PrepConfig {
        input: Some(input.to_path_buf()),
        output: Some(output.to_path_buf()),
        size: 32,
        jobs: 2,
        ..PrepConfig::default()
    }
}

fn counts_per_class(data: &ProcessedDataset, split: Split) -> Vec<usize> {
    let mut counts = vec![0; data.num_classes()];
    for item in data.items(split) {
        counts[item.class] += 1;
    }
    counts
}

/// The source paths (relative to the input) of a split, from its CSV.
fn sources(out: &Path, split: Split) -> BTreeSet<String> {
    let mut reader = csv::Reader::from_path(out.join(split.csv())).unwrap();
    reader
        .records()
        .map(|record| record.unwrap()[2].to_string())
        .collect()
}

#[test]
fn train_per_class_gives_exact_counts_and_the_rest_is_test() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, out) = (dir.path().join("raw"), dir.path().join("out"));
    dataset(&raw, "", &[40, 35, 52], 1);
    let mut cfg = config(&raw, &out);
    cfg.train_per_class = Some(30);
    cfg.val_split = 0.2;
    let report = Preprocessor::new(cfg.clone()).run().unwrap();
    let data = ProcessedDataset::open(&out).unwrap();
    assert_eq!(counts_per_class(&data, Split::Train), [30, 30, 30]);
    // round(rest × 0.2): 10 → 2, 5 → 1, 22 → 4.
    assert_eq!(counts_per_class(&data, Split::Val), [2, 1, 4]);
    assert_eq!(counts_per_class(&data, Split::Test), [8, 4, 18]);
    assert_eq!(report.counts.test, 30);
    let categories = fs::read_to_string(out.join("categories.csv")).unwrap();
    assert!(
        categories.starts_with("id,label,folder,count,train,val,test\n0,c0,c0,40,30,2,8\n"),
        "{categories}"
    );
    // The splits are disjoint and cover every image.
    let all: Vec<BTreeSet<String>> = Split::ALL.iter().map(|&s| sources(&out, s)).collect();
    assert_eq!(all.iter().map(BTreeSet::len).sum::<usize>(), 127);
    assert_eq!(all.iter().flatten().collect::<BTreeSet<_>>().len(), 127);
    // Seeded: the same seed, the same split; another seed, another.
    let again = dir.path().join("again");
    Preprocessor::new(PrepConfig {
        output: Some(again.clone()),
        ..cfg.clone()
    })
    .run()
    .unwrap();
    assert_eq!(sources(&again, Split::Test), all[2]);
    let other = dir.path().join("other");
    Preprocessor::new(PrepConfig {
        output: Some(other.clone()),
        seed: 9,
        ..cfg
    })
    .run()
    .unwrap();
    assert_ne!(sources(&other, Split::Test), all[2]);
}

#[test]
fn three_splits_by_fraction_and_a_class_too_small_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, out) = (dir.path().join("raw"), dir.path().join("out"));
    dataset(&raw, "", &[20, 10], 2);
    let mut cfg = config(&raw, &out);
    cfg.test_split = 0.1;
    Preprocessor::new(cfg.clone()).run().unwrap();
    let data = ProcessedDataset::open(&out).unwrap();
    assert_eq!(counts_per_class(&data, Split::Val), [4, 2]);
    assert_eq!(counts_per_class(&data, Split::Test), [2, 1]);
    assert_eq!(counts_per_class(&data, Split::Train), [14, 7]);

    // A class of two images cannot have one in each of three splits.
    dataset(&raw, "", &[0, 0, 2], 3);
    let error = Preprocessor::new(PrepConfig {
        output: Some(dir.path().join("x")),
        ..cfg
    })
    .run()
    .unwrap_err();
    assert!(matches!(error, PrepError::TooFewImages { .. }));
    let message = error.to_string();
    assert!(message.contains("c2 has 2 of the 3 needed"), "{message}");
    assert!(!message.contains("c0"), "{message}");
    assert!(
        !dir.path().join("x").exists(),
        "nothing is written on an error"
    );
}

#[test]
fn a_presplit_tree_is_kept_as_given() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, out) = (dir.path().join("raw"), dir.path().join("out"));
    dataset(&raw, "train/", &[6, 5], 4);
    dataset(&raw, "val/", &[2, 3], 5);
    dataset(&raw, "test/", &[1, 2], 6);
    let before = snapshot(&raw);
    let report = Preprocessor::new(config(&raw, &out)).run().unwrap();
    assert_eq!(snapshot(&raw), before, "the input was modified");
    assert_eq!(report.layout, Layout::Presplit, "detected");
    let data = ProcessedDataset::open(&out).unwrap();
    assert_eq!(data.num_classes(), 2);
    assert_eq!(counts_per_class(&data, Split::Train), [6, 5]);
    assert_eq!(counts_per_class(&data, Split::Val), [2, 3]);
    assert_eq!(counts_per_class(&data, Split::Test), [1, 2]);
    for split in Split::ALL {
        assert!(
            sources(&out, split)
                .iter()
                .all(|s| s.starts_with(&format!("{split}/"))),
            "{split}"
        );
    }
    // Settings that draw splits are refused, not ignored.
    let mut cfg = config(&raw, &dir.path().join("o2"));
    cfg.test_split = 0.1;
    let error = Preprocessor::new(cfg).run().unwrap_err().to_string();
    assert!(
        error.contains("prep.test_split") && error.contains("presplit"),
        "{error}"
    );
}

#[test]
fn a_class_missing_from_val_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    dataset(&raw, "train/", &[3, 3, 3], 7);
    dataset(&raw, "val/", &[1, 1], 8);
    write(&raw, "val/c9/x.jpg", &jpeg(&blocks(1, 40, 40), 90));
    let mut cfg = config(&raw, &dir.path().join("out"));
    cfg.layout = Layout::Presplit;
    let error = Preprocessor::new(cfg).run().unwrap_err();
    assert_eq!(
        error.to_string(),
        "val/ and train/ hold different classes: val/ lacks [c2]; train/ lacks [c9]"
    );
}

#[test]
fn a_flat_val_folder_is_labelled_by_a_kaggle_style_csv() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, out) = (dir.path().join("raw"), dir.path().join("out"));
    dataset(&raw, "train/", &[3, 3], 9);
    for i in 0..4 {
        let name = format!("val/ILSVRC2012_val_{i:08}.JPEG");
        write(&raw, &name, &jpeg(&blocks(100 + i, 40, 40), 90));
    }
    write(&raw, "val/unlisted.jpg", &jpeg(&blocks(200, 40, 40), 90));
    let labels = dir.path().join("LOC_val_solution.csv");
    fs::write(
        &labels,
        "ImageId,PredictionString\n\
         ILSVRC2012_val_00000000,c1 10 20 30 40 c1 1 2 3 4\n\
         ILSVRC2012_val_00000001,c0 1 2 3 4\n\
         ILSVRC2012_val_00000002.JPEG,c0 1 2 3 4\n\
         ILSVRC2012_val_00000003,c1 5 6 7 8\n\
         ILSVRC2012_val_00000099,c1 5 6 7 8\n",
    )
    .unwrap();
    let mut cfg = config(&raw, &out);
    cfg.val_labels = Some(labels.clone());
    let before = snapshot(&raw);
    let report = Preprocessor::new(cfg.clone()).run().unwrap();
    assert_eq!(snapshot(&raw), before, "the input was modified");
    assert_eq!(report.layout, Layout::Presplit);
    assert_eq!(report.labels_without_file, 1);
    assert!(report.skipped.iter().any(|s| s.path == "val/unlisted.jpg"));
    let data = ProcessedDataset::open(&out).unwrap();
    assert_eq!(counts_per_class(&data, Split::Val), [2, 2]);
    let classes: Vec<(String, usize)> = data
        .items(Split::Val)
        .iter()
        .map(|item| {
            (
                item.path
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                item.class,
            )
        })
        .collect();
    assert!(
        classes.contains(&("val__ILSVRC2012_val_00000000.jpg".into(), 1)),
        "{classes:?}"
    );
    assert!(
        classes.contains(&("val__ILSVRC2012_val_00000002.jpg".into(), 0)),
        "{classes:?}"
    );

    // A label that is not a class of train/ names the file and line.
    fs::write(
        &labels,
        "ILSVRC2012_val_00000000,c0\nILSVRC2012_val_00000001,dog\n",
    )
    .unwrap();
    cfg.output = Some(dir.path().join("o2"));
    let error = Preprocessor::new(cfg).run().unwrap_err().to_string();
    assert!(
        error.contains("LOC_val_solution.csv:2") && error.contains("`dog`"),
        "{error}"
    );
}

#[test]
fn a_resized_reencoded_copy_across_splits_is_found_and_can_be_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    dataset(&raw, "train/", &[8, 8], 10);
    dataset(&raw, "val/", &[3, 3], 11);
    dataset(&raw, "test/", &[3, 3], 12);
    // A 1.5× larger, recompressed copy of a training image, planted in test.
    let original = image::load_from_memory(&fs::read(raw.join("train/c1/004.jpg")).unwrap())
        .unwrap()
        .to_rgb8();
    let larger = imageops::resize(&original, 72, 60, imageops::FilterType::CatmullRom);
    write(&raw, "test/c1/copy.jpg", &jpeg(&larger, 60));
    let run = |name: &str, mode: NearDuplicates| {
        let out = dir.path().join(name);
        let mut cfg = config(&raw, &out);
        cfg.near_duplicates = mode;
        (Preprocessor::new(cfg).run().unwrap(), out)
    };
    let (report, out) = run("report", NearDuplicates::Report);
    assert_eq!(
        report.near_duplicates.len(),
        1,
        "{:?}",
        report.near_duplicates
    );
    let pair = &report.near_duplicates[0];
    assert_eq!(
        (pair.first.as_str(), pair.first_split),
        ("train/c1/004.jpg", Split::Train)
    );
    assert_eq!(
        (pair.second.as_str(), pair.second_split),
        ("test/c1/copy.jpg", Split::Test)
    );
    assert!(sources(&out, Split::Test).contains("test/c1/copy.jpg"));
    let json = fs::read_to_string(out.join("prep-report.json")).unwrap();
    assert!(json.contains("\"second\": \"test/c1/copy.jpg\""), "{json}");

    let (dropped, out) = run("drop", NearDuplicates::Drop);
    assert_eq!(dropped.counts.dropped_duplicates, 1);
    assert!(!sources(&out, Split::Test).contains("test/c1/copy.jpg"));
    assert_eq!(
        ProcessedDataset::open(&out)
            .unwrap()
            .items(Split::Test)
            .len(),
        6
    );
    assert_eq!(
        fs::read_dir(out.join("test")).unwrap().count(),
        6,
        "the file is gone too"
    );
}

#[test]
fn the_fingerprint_in_the_report_is_the_datasets() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, out) = (dir.path().join("raw"), dir.path().join("out"));
    dataset(&raw, "", &[6, 6], 13);
    let mut cfg = config(&raw, &out);
    cfg.test_split = 0.2;
    let report = Preprocessor::new(cfg.clone()).run().unwrap();
    let data = ProcessedDataset::open(&out).unwrap();
    assert_eq!(report.fingerprint.as_ref(), Some(&data.fingerprint()));
    let reseeded: PathBuf = dir.path().join("reseeded");
    Preprocessor::new(PrepConfig {
        output: Some(reseeded.clone()),
        seed: 3,
        ..cfg
    })
    .run()
    .unwrap();
    let changes = ProcessedDataset::open(&reseeded)
        .unwrap()
        .fingerprint()
        .changes_since(&data.fingerprint());
    assert!(
        !changes.is_empty() && changes.iter().all(|c| c.contains("split")),
        "{changes:?}"
    );
}

#[test]
fn presplit_without_val_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    dataset(&raw, "train/", &[3, 3], 14);
    let mut cfg = config(&raw, &dir.path().join("out"));
    cfg.layout = Layout::Presplit;
    let error = Preprocessor::new(cfg).run().unwrap_err().to_string();
    assert!(
        error.contains("prep.layout") && error.contains("no val/"),
        "{error}"
    );
}
