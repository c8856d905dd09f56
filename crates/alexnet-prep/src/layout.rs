//! What goes into each split: a one-folder-per-class input split by the configured
//! rule, or a presplit input (`train/`, `val/`, maybe `test/`) kept as given, its
//! `val/` possibly one flat folder labelled by a CSV.

use std::{
    collections::{BTreeSet, HashMap},
    fs,
    path::{Path, PathBuf},
};

use crate::{
    config::{Layout, PrepConfig},
    error::{IoContext, PrepError, Result},
    format::Split,
    report::{SkipReason, SkippedFile},
    scan::{ClassFolder, Scan, scan, scan_flat},
    split::{SplitRule, stratified_splits},
};

/// The input listed: its classes, and the split of every file of every class.
pub(crate) struct Listing {
    /// Classes, files and skipped files.
    pub scan: Scan,
    /// `splits[class][file]`: the split of `scan.classes[class].files[file]`.
    pub splits: Vec<Vec<Split>>,
    /// The layout used (`Auto` resolved).
    pub layout: Layout,
    /// Rows of `prep.val_labels` that name no file in `val/`.
    pub labels_without_file: usize,
}

/// Whether `input`'s visible folders are `train` and `val`, and maybe `test`.
fn looks_presplit(input: &Path) -> Result<bool> {
    let mut folders = BTreeSet::new();
    for entry in fs::read_dir(input).at(input)? {
        let entry = entry.at(input)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && entry.path().is_dir() {
            folders.insert(name);
        }
    }
    let has = |name: &str| folders.contains(name);
    Ok(has("train")
        && has("val")
        && folders
            .iter()
            .all(|f| ["train", "val", "test"].contains(&f.as_str())))
}

/// Lists `input` as `config.layout` says (`Auto` detected).
pub(crate) fn list_input(input: &Path, config: &PrepConfig) -> Result<Listing> {
    let layout = match config.layout {
        Layout::Auto if config.val_labels.is_some() || looks_presplit(input)? => Layout::Presplit,
        Layout::Auto => Layout::Folders,
        chosen => chosen,
    };
    if layout == Layout::Presplit {
        // Settings that draw splits would be silently ignored on a presplit input.
        if config.test_split > 0.0 || config.train_per_class.is_some() {
            let field = if config.test_split > 0.0 {
                "prep.test_split"
            } else {
                "prep.train_per_class"
            };
            return Err(PrepError::InvalidConfig {
                field,
                reason: format!(
                    "{} is presplit (train/, val/): its splits are kept as given; unset {field} or set prep.layout = \"folders\"",
                    input.display()
                ),
            });
        }
        return list_presplit(input, config);
    }
    let scan = scan(input, config.nested, config.max_file_bytes)?;
    let splits = split_classes(&scan.classes, config)?;
    Ok(Listing {
        scan,
        splits,
        layout,
        labels_without_file: 0,
    })
}

/// The rule's split of every class; the classes too small for it are one error.
fn split_classes(classes: &[ClassFolder], config: &PrepConfig) -> Result<Vec<Vec<Split>>> {
    let rule = config.split_rule();
    let mut splits = Vec::with_capacity(classes.len());
    let mut too_small = Vec::new();
    for (id, class) in classes.iter().enumerate() {
        // A folder with no candidate at all is reported as an empty class instead.
        if class.files.is_empty() {
            splits.push(Vec::new());
            continue;
        }
        match stratified_splits(class.files.len(), rule, config.seed, id) {
            Ok(class_splits) => splits.push(class_splits),
            Err(needed) => too_small.push(format!(
                "{} has {} of the {needed} needed",
                class.name,
                class.files.len()
            )),
        }
    }
    if too_small.is_empty() {
        return Ok(splits);
    }
    let (names, settings) = match rule {
        SplitRule::Fractions { test, .. } if test > 0.0 => {
            ("train, val and test", "prep.val_split, prep.test_split")
        }
        SplitRule::Fractions { val, .. } if val > 0.0 => ("train and val", "prep.val_split"),
        SplitRule::Fractions { .. } => ("train", "one image"),
        SplitRule::TrainPerClass { .. } => (
            "val and test after prep.train_per_class for training",
            "prep.train_per_class, prep.val_split",
        ),
    };
    let shown = too_small.len().min(10);
    let mut classes = too_small[..shown].join("; ");
    if too_small.len() > shown {
        classes.push_str(&format!("; and {} more", too_small.len() - shown));
    }
    Err(PrepError::TooFewImages {
        splits: names.into(),
        rule: settings.into(),
        classes,
    })
}

/// `train/`, `val/` and maybe `test/`, each a class-per-folder tree (or `val/` flat
/// with `prep.val_labels`), kept as given; classes are `train/`'s.
fn list_presplit(input: &Path, config: &PrepConfig) -> Result<Listing> {
    for needed in ["train", "val"] {
        if !input.join(needed).is_dir() {
            return Err(PrepError::InvalidConfig {
                field: "prep.layout",
                reason: format!(
                    "is presplit but {} has no {needed}/ folder (expected train/, val/ and optionally test/)",
                    input.display()
                ),
            });
        }
    }
    let part = |name: &str| -> Result<Scan> {
        Ok(scan(&input.join(name), config.nested, config.max_file_bytes)?.under(name))
    };
    let mut merged = part("train")?;
    let mut splits: Vec<Vec<Split>> = merged
        .classes
        .iter()
        .map(|c| vec![Split::Train; c.files.len()])
        .collect();
    let mut labels_without_file = 0;
    if let Some(labels) = &config.val_labels {
        let classes: HashMap<&str, usize> = merged
            .classes
            .iter()
            .enumerate()
            .map(|(id, class)| (class.name.as_str(), id))
            .collect();
        let mut flat = Scan::default();
        let files = scan_flat(input, Path::new("val"), config.max_file_bytes, &mut flat)?;
        let (labelled, unused) = label_flat_files(labels, &classes, files, &mut flat)?;
        labels_without_file = unused;
        absorb(&mut merged, flat);
        for (file, class) in labelled {
            merged.classes[class].files.push(file);
            splits[class].push(Split::Val);
        }
    } else {
        add_split(&mut merged, &mut splits, part("val")?, Split::Val)?;
    }
    if input.join("test").is_dir() {
        let test = part("test")?;
        if test.classes.is_empty() {
            tracing::warn!(
                "test/ holds no class folders (unlabelled test images?): it is not used"
            );
            absorb(&mut merged, test);
        } else {
            add_split(&mut merged, &mut splits, test, Split::Test)?;
        }
    }
    merged.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Listing {
        scan: merged,
        splits,
        layout: Layout::Presplit,
        labels_without_file,
    })
}

/// Adds `other`'s counts, skipped and ignored files to `merged`.
fn absorb(merged: &mut Scan, other: Scan) {
    merged.files += other.files;
    merged.nested_skipped += other.nested_skipped;
    merged.skipped.extend(other.skipped);
    merged.ignored_top_level.extend(other.ignored_top_level);
}

/// Appends a split's class folders to `merged`'s; its classes must be `merged`'s.
fn add_split(
    merged: &mut Scan,
    splits: &mut [Vec<Split>],
    mut other: Scan,
    split: Split,
) -> Result<()> {
    let theirs: BTreeSet<&str> = other.classes.iter().map(|c| c.name.as_str()).collect();
    let ours: BTreeSet<&str> = merged.classes.iter().map(|c| c.name.as_str()).collect();
    if theirs != ours {
        let list = |set: Vec<&&str>| {
            let mut text = set
                .iter()
                .take(10)
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            if set.len() > 10 {
                text.push_str(&format!(", … ({} in all)", set.len()));
            }
            text
        };
        let missing: Vec<&&str> = ours.difference(&theirs).collect();
        let extra: Vec<&&str> = theirs.difference(&ours).collect();
        let mut differences = Vec::new();
        if !missing.is_empty() {
            differences.push(format!("{split}/ lacks [{}]", list(missing)));
        }
        if !extra.is_empty() {
            differences.push(format!("train/ lacks [{}]", list(extra)));
        }
        return Err(PrepError::ClassMismatch {
            split,
            differences: differences.join("; "),
        });
    }
    // Both class lists are sorted by name, so they pair up in order.
    for ((class, added), class_splits) in merged
        .classes
        .iter_mut()
        .zip(&mut other.classes)
        .zip(splits)
    {
        class.nested += added.nested;
        class_splits.extend(std::iter::repeat_n(split, added.files.len()));
        class.files.append(&mut added.files);
    }
    absorb(merged, other);
    Ok(())
}

/// The flat `files` matched to their classes by the `labels` CSV (`file,class` rows; a
/// file is named with or without its extension; the class is the first word of the
/// second field, a class folder of `train/`; a first row naming no class is a header).
/// Files without a row are skipped as unlabelled; returns the labelled files and the
/// number of rows that name no file.
fn label_flat_files(
    labels: &Path,
    classes: &HashMap<&str, usize>,
    files: Vec<PathBuf>,
    scan: &mut Scan,
) -> Result<(Vec<(PathBuf, usize)>, usize)> {
    let rows = read_labels(labels, classes)?;
    let mut used = vec![false; rows.len()];
    let index: HashMap<&str, usize> = rows
        .iter()
        .enumerate()
        .map(|(row, (key, _))| (key.as_str(), row))
        .collect();
    let mut labelled = Vec::with_capacity(files.len());
    for file in files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem = Path::new(&name)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned());
        let row = index
            .get(name.as_str())
            .or_else(|| stem.as_deref().and_then(|stem| index.get(stem)));
        match row {
            Some(&row) => {
                used[row] = true;
                labelled.push((file, rows[row].1));
            }
            None => scan.skipped.push(SkippedFile {
                path: file.to_string_lossy().into_owned(),
                reason: SkipReason::Unlabelled(labels.display().to_string()),
            }),
        }
    }
    let unused = used.iter().filter(|&&u| !u).count();
    Ok((labelled, unused))
}

/// `(file key, class id)` rows of a label CSV; errors name the file and line.
fn read_labels(path: &Path, classes: &HashMap<&str, usize>) -> Result<Vec<(String, usize)>> {
    let malformed = |line: u64, reason: String| PrepError::Malformed {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let file = fs::File::open(path).at(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(file);
    let mut rows = Vec::new();
    let mut keys = HashMap::new();
    for (index, record) in reader.records().enumerate() {
        let record = record.map_err(|error| malformed(index as u64 + 1, error.to_string()))?;
        let line = record.position().map_or(index as u64 + 1, |p| p.line());
        let key = record.get(0).unwrap_or_default();
        let class = record
            .get(1)
            .and_then(|field| field.split_whitespace().next());
        let (Some(class), false) = (class, key.is_empty()) else {
            return Err(malformed(line, "expected `file,class`".into()));
        };
        let Some(&id) = classes.get(class) else {
            if index == 0 {
                continue; // a header
            }
            return Err(malformed(
                line,
                format!("class `{class}` is not a class folder of train/"),
            ));
        };
        if let Some(first) = keys.insert(key.to_string(), line) {
            return Err(malformed(
                line,
                format!("`{key}` is labelled twice (first on line {first})"),
            ));
        }
        rows.push((key.to_string(), id));
    }
    Ok(rows)
}
