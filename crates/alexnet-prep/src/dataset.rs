//! Reading a processed dataset back: the format [`preprocess`](super::preprocess) writes.

use std::{
    collections::HashSet,
    fs,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{
    error::{IoContext, PrepError, Result},
    fingerprint::DatasetFingerprint,
    format::{
        CATEGORIES_CSV, MARKER_FILE, MARKER_IN_PROGRESS, RGB_MEAN_JSON, Split, TEST_CSV, TRAIN_CSV,
        VAL_CSV,
    },
    stats::RgbStats,
};

/// One labelled image of a split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Full path of the image file.
    pub path: PathBuf,
    /// Class id, an index into [`ProcessedDataset::categories`].
    pub class: usize,
}

/// One class of the dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    /// Class id (its row in `categories.csv`, from 0).
    pub id: usize,
    /// Human-readable label.
    pub label: String,
    /// The source folder it came from.
    #[serde(default)]
    pub folder: String,
    /// Images of the class in both splits.
    #[serde(default)]
    pub count: usize,
}

/// A processed dataset folder, validated on open.
///
/// ```no_run
/// use alexnet_prep::{ProcessedDataset, Split};
/// let data = ProcessedDataset::open("processed")?;
/// println!("{} classes, mean {:?}", data.num_classes(), data.stats().mean);
/// for item in data.items(Split::Train).iter().take(3) {
///     println!("{} → {}", item.path.display(), data.categories()[item.class].label);
/// }
/// # Ok::<(), alexnet_prep::PrepError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ProcessedDataset {
    root: PathBuf,
    categories: Vec<Category>,
    train: Vec<Item>,
    val: Vec<Item>,
    /// `None` when the dataset has no `test.csv`.
    test: Option<Vec<Item>>,
    stats: RgbStats,
}

fn malformed(path: &Path, line: u64, reason: impl Into<String>) -> PrepError {
    PrepError::Malformed {
        path: path.to_path_buf(),
        line,
        reason: reason.into(),
    }
}

/// Whether `name` is a plain file name that stays inside its folder.
fn is_safe_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && !name.contains(':')
        && Path::new(name).components().count() == 1
}

fn open_csv(path: &Path) -> Result<csv::Reader<fs::File>> {
    let file = fs::File::open(path).at(path)?;
    Ok(csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(file))
}

fn check_header(path: &Path, reader: &mut csv::Reader<fs::File>, expected: &[&str]) -> Result<()> {
    let header = reader
        .headers()
        .map_err(|error| malformed(path, 1, error.to_string()))?;
    let found: Vec<&str> = header.iter().collect();
    if found.len() < expected.len() || found[..expected.len()] != *expected {
        return Err(malformed(
            path,
            1,
            format!(
                "header is `{}`, expected it to start with `{}`",
                found.join(","),
                expected.join(",")
            ),
        ));
    }
    Ok(())
}

fn line_of(record: &csv::StringRecord, fallback: u64) -> u64 {
    record.position().map_or(fallback, |p| p.line())
}

impl ProcessedDataset {
    /// Opens and validates the processed dataset in `dir`: every CSV row is checked
    /// (class id in range, safe image name, file present), and errors name the file
    /// and line.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let root = dir.as_ref().to_path_buf();
        if !root.is_dir() {
            return Err(PrepError::MissingInput(root));
        }
        let marker = root.join(MARKER_FILE);
        if fs::read_to_string(&marker).is_ok_and(|text| text == MARKER_IN_PROGRESS) {
            return Err(malformed(
                &marker,
                0,
                "preprocessing of this folder did not finish; run it again with --overwrite",
            ));
        }
        for required in [CATEGORIES_CSV, TRAIN_CSV, VAL_CSV, RGB_MEAN_JSON] {
            if !root.join(required).is_file() {
                return Err(malformed(
                    &root.join(required),
                    0,
                    "missing: this is not a processed dataset folder (run preprocess_caltech first)",
                ));
            }
        }
        let categories = read_categories(&root.join(CATEGORIES_CSV))?;
        let train = read_split(&root, Split::Train, categories.len())?;
        let val = read_split(&root, Split::Val, categories.len())?;
        let test = if root.join(TEST_CSV).is_file() {
            Some(read_split(&root, Split::Test, categories.len())?)
        } else {
            None
        };
        let stats_path = root.join(RGB_MEAN_JSON);
        let stats_text = fs::read_to_string(&stats_path).at(&stats_path)?;
        let stats: RgbStats = serde_json::from_str(&stats_text)
            .map_err(|error| malformed(&stats_path, error.line() as u64, error.to_string()))?;
        if stats
            .mean
            .iter()
            .any(|m| !m.is_finite() || !(0.0..=255.0).contains(m))
        {
            return Err(malformed(
                &stats_path,
                0,
                format!("mean {:?} is not on the 0-255 scale", stats.mean),
            ));
        }
        Ok(Self {
            root,
            categories,
            train,
            val,
            test,
            stats,
        })
    }

    /// The folder the dataset was opened from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The classes, indexed by id.
    pub fn categories(&self) -> &[Category] {
        &self.categories
    }

    /// Number of classes (rows of `categories.csv`).
    pub fn num_classes(&self) -> usize {
        self.categories.len()
    }

    /// The items of a split, in file order.
    pub fn items(&self, split: Split) -> &[Item] {
        match split {
            Split::Train => &self.train,
            Split::Val => &self.val,
            Split::Test => self.test.as_deref().unwrap_or_default(),
        }
    }

    /// Whether the dataset has the split with at least one image (a dataset prepared
    /// without `prep.test_split` has no test split).
    pub fn has(&self, split: Split) -> bool {
        !self.items(split).is_empty()
    }

    /// The fingerprint of the dataset's classes and split lists, as
    /// [`DatasetFingerprint::of`] computes it.
    pub fn fingerprint(&self) -> DatasetFingerprint {
        let labels: Vec<&str> = self.categories.iter().map(|c| c.label.as_str()).collect();
        let name = |item: &Item| {
            item.path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let lists = Split::ALL.map(|split| {
            self.items(split)
                .iter()
                .map(|item| (name(item), item.class))
                .collect::<Vec<_>>()
        });
        DatasetFingerprint::of(&labels, &lists)
    }

    /// Channel statistics of the training split (`rgb_mean.json`).
    pub fn stats(&self) -> &RgbStats {
        &self.stats
    }

    /// `[height, width]` of the dataset's images (all one size, as written), read from
    /// the header of its first image.
    pub fn image_size(&self) -> Result<[u32; 2]> {
        let first = self
            .train
            .first()
            .or_else(|| self.val.first())
            .ok_or_else(|| {
                malformed(&self.root.join(TRAIN_CSV), 0, "the dataset lists no images")
            })?;
        let (width, height) =
            image::image_dimensions(&first.path).map_err(|error| PrepError::Image {
                path: first.path.clone(),
                source: error,
            })?;
        Ok([height, width])
    }
}

fn read_categories(path: &Path) -> Result<Vec<Category>> {
    let mut reader = open_csv(path)?;
    check_header(path, &mut reader, &["id", "label"])?;
    let mut categories = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let record = record.map_err(|error| {
            malformed(
                path,
                error.position().map_or(0, |p| p.line()),
                error.to_string(),
            )
        })?;
        let line = line_of(&record, index as u64 + 2);
        let id: usize = record
            .get(0)
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| malformed(path, line, "id is not a non-negative integer"))?;
        if id != categories.len() {
            return Err(malformed(
                path,
                line,
                format!("id {id} out of order (expected {})", categories.len()),
            ));
        }
        let label = record.get(1).unwrap_or_default().to_string();
        if label.is_empty() {
            return Err(malformed(path, line, "empty label"));
        }
        let folder = record.get(2).unwrap_or_default().to_string();
        let count = record
            .get(3)
            .and_then(|text| text.parse().ok())
            .unwrap_or(0);
        categories.push(Category {
            id,
            label,
            folder,
            count,
        });
    }
    if categories.is_empty() {
        return Err(malformed(path, 0, "no classes listed"));
    }
    Ok(categories)
}

fn read_split(root: &Path, split: Split, num_classes: usize) -> Result<Vec<Item>> {
    let path = root.join(split.csv());
    let image_dir = root.join(split.dir());
    let mut reader = open_csv(&path)?;
    check_header(&path, &mut reader, &["image", "class"])?;
    let mut seen = HashSet::new();
    let mut items = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let record = record.map_err(|error| {
            malformed(
                &path,
                error.position().map_or(0, |p| p.line()),
                error.to_string(),
            )
        })?;
        let line = line_of(&record, index as u64 + 2);
        if record.len() < 2 {
            return Err(malformed(
                &path,
                line,
                format!("expected `image,class`, found {} field(s)", record.len()),
            ));
        }
        let name = &record[0];
        if !is_safe_file_name(name) {
            return Err(malformed(
                &path,
                line,
                format!(
                    "image name `{name}` is not a plain file name inside {}",
                    split.dir()
                ),
            ));
        }
        let class: usize = record[1].parse().map_err(|_| {
            malformed(
                &path,
                line,
                format!("class `{}` is not a non-negative integer", &record[1]),
            )
        })?;
        if class >= num_classes {
            return Err(malformed(
                &path,
                line,
                format!("class {class} is not in categories.csv ({num_classes} classes)"),
            ));
        }
        if !seen.insert(name.to_string()) {
            return Err(malformed(
                &path,
                line,
                format!("image `{name}` is listed twice"),
            ));
        }
        let image = image_dir.join(name);
        if !image.is_file() {
            return Err(malformed(
                &path,
                line,
                format!("image {} does not exist", image.display()),
            ));
        }
        items.push(Item { path: image, class });
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_are_safe() {
        assert!(is_safe_file_name("001.ak47__001_0001.jpg"));
        for bad in [
            "",
            ".",
            "..",
            "../x.jpg",
            "/etc/passwd",
            "a/b.jpg",
            "a\\b.jpg",
            "c:x.jpg",
            "x\0.jpg",
        ] {
            assert!(!is_safe_file_name(bad), "{bad:?}");
        }
    }
}
