//! The processed dataset's format: its file names and markers, shared by the writer
//! ([`Preprocessor`](crate::Preprocessor)) and the reader
//! ([`ProcessedDataset`](crate::ProcessedDataset)).

/// Marks a folder as written by alexnet-prep; `--overwrite` only ever clears such folders.
pub const MARKER_FILE: &str = ".alexnet-prep";
/// Training images, one file per row of `train.csv`.
pub const TRAIN_DIR: &str = "train";
/// Validation images, one file per row of `val.csv`.
pub const VAL_DIR: &str = "val";
/// `image,class,source` rows of the training split.
pub const TRAIN_CSV: &str = "train.csv";
/// `image,class,source` rows of the validation split.
pub const VAL_CSV: &str = "val.csv";
/// `id,label,folder,count,train,val` rows, one per class.
pub const CATEGORIES_CSV: &str = "categories.csv";
/// Channel statistics of the training split.
pub const RGB_MEAN_JSON: &str = "rgb_mean.json";
/// The run's report.
pub const REPORT_JSON: &str = "prep-report.json";

/// Every entry a run writes in its output folder (what `--overwrite` clears).
pub(crate) const OWNED_ENTRIES: [&str; 8] = [
    TRAIN_DIR,
    VAL_DIR,
    TRAIN_CSV,
    VAL_CSV,
    CATEGORIES_CSV,
    RGB_MEAN_JSON,
    REPORT_JSON,
    MARKER_FILE,
];

/// The header of `train.csv` and `val.csv`.
pub(crate) const LIST_HEADER: [&str; 3] = ["image", "class", "source"];
/// The header of `categories.csv`.
pub(crate) const CATEGORY_HEADER: [&str; 6] = ["id", "label", "folder", "count", "train", "val"];

/// Marker content while a run is writing; readers refuse such a folder.
pub(crate) const MARKER_IN_PROGRESS: &str = "alexnet-prep: in progress\n";
/// Marker content once a run has written everything.
pub(crate) const MARKER_DONE: &str = "alexnet-prep: complete\n";
