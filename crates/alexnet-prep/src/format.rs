//! The processed dataset's format: its file names and markers, shared by the writer
//! ([`Preprocessor`](crate::Preprocessor)) and the reader
//! ([`ProcessedDataset`](crate::ProcessedDataset)).

use serde::{Deserialize, Serialize};

/// Marks a folder as written by alexnet-prep; `--overwrite` only ever clears such folders.
pub const MARKER_FILE: &str = ".alexnet-prep";
/// Training images, one file per row of `train.csv`.
pub const TRAIN_DIR: &str = "train";
/// Validation images, one file per row of `val.csv`.
pub const VAL_DIR: &str = "val";
/// Test images, one file per row of `test.csv` (absent from datasets without a test
/// split).
pub const TEST_DIR: &str = "test";
/// `image,class,source` rows of the training split.
pub const TRAIN_CSV: &str = "train.csv";
/// `image,class,source` rows of the validation split.
pub const VAL_CSV: &str = "val.csv";
/// `image,class,source` rows of the test split (absent without a test split).
pub const TEST_CSV: &str = "test.csv";
/// `id,label,folder,count,train,val,test` rows, one per class.
pub const CATEGORIES_CSV: &str = "categories.csv";
/// Channel statistics of the training split.
pub const RGB_MEAN_JSON: &str = "rgb_mean.json";
/// The run's report.
pub const REPORT_JSON: &str = "prep-report.json";

/// Every entry a run writes in its output folder (what `--overwrite` clears).
pub(crate) const OWNED_ENTRIES: [&str; 10] = [
    TRAIN_DIR,
    VAL_DIR,
    TEST_DIR,
    TRAIN_CSV,
    VAL_CSV,
    TEST_CSV,
    CATEGORIES_CSV,
    RGB_MEAN_JSON,
    REPORT_JSON,
    MARKER_FILE,
];

/// The header of `train.csv` and `val.csv`.
pub(crate) const LIST_HEADER: [&str; 3] = ["image", "class", "source"];
/// The header of `categories.csv`.
pub(crate) const CATEGORY_HEADER: [&str; 7] =
    ["id", "label", "folder", "count", "train", "val", "test"];

/// Marker content while a run is writing; readers refuse such a folder.
pub(crate) const MARKER_IN_PROGRESS: &str = "alexnet-prep: in progress\n";
/// Marker content once a run has written everything.
pub(crate) const MARKER_DONE: &str = "alexnet-prep: complete\n";

/// Which split of a processed dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// The training images (`train/`, `train.csv`).
    Train,
    /// The validation images (`val/`, `val.csv`): what a run chooses its best checkpoint
    /// and its schedule on.
    Val,
    /// The test images (`test/`, `test.csv`): never read by training.
    Test,
}

impl Split {
    /// The three splits, in file order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];

    /// The split's position in [`Split::ALL`]: train before val before test.
    pub fn index(self) -> usize {
        match self {
            Split::Train => 0,
            Split::Val => 1,
            Split::Test => 2,
        }
    }

    /// The folder of the split's images.
    pub fn dir(self) -> &'static str {
        match self {
            Split::Train => TRAIN_DIR,
            Split::Val => VAL_DIR,
            Split::Test => TEST_DIR,
        }
    }

    /// The split's list file.
    pub fn csv(self) -> &'static str {
        match self {
            Split::Train => TRAIN_CSV,
            Split::Val => VAL_CSV,
            Split::Test => TEST_CSV,
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        })
    }
}

impl std::str::FromStr for Split {
    type Err = String;
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        match text {
            "train" => Ok(Split::Train),
            "val" => Ok(Split::Val),
            "test" => Ok(Split::Test),
            other => Err(format!(
                "unknown split `{other}` (expected train, val or test)"
            )),
        }
    }
}
