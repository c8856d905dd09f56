//! Preprocessing settings: the `[prep]` section of a config file.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{
    error::{PrepError, Result},
    split::SplitRule,
};

#[cfg(feature = "cli")]
fn parse_layout(text: &str) -> std::result::Result<Layout, String> {
    match text {
        "auto" => Ok(Layout::Auto),
        "folders" => Ok(Layout::Folders),
        "presplit" => Ok(Layout::Presplit),
        other => Err(format!("`{other}` is not auto, folders or presplit")),
    }
}

#[cfg(feature = "cli")]
fn parse_near_duplicates(text: &str) -> std::result::Result<NearDuplicates, String> {
    match text {
        "report" => Ok(NearDuplicates::Report),
        "drop" => Ok(NearDuplicates::Drop),
        "off" => Ok(NearDuplicates::Off),
        other => Err(format!("`{other}` is not report, drop or off")),
    }
}

/// How a class label is read from its folder name (the original's `read_class_labels`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabelRule {
    /// Text after the first `.`: `001.ak47` → `ak47`, `n01440764` → `n01440764`.
    #[default]
    AfterFirstDot,
    /// Text after the last `.`, as the original script does: `a.b.c` → `c`.
    AfterLastDot,
    /// The whole folder name.
    FolderName,
}

impl LabelRule {
    /// The label for a class folder name. A name without a dot is its own label.
    pub fn label(self, folder: &str) -> String {
        let label = match self {
            LabelRule::AfterFirstDot => folder.split_once('.').map_or(folder, |(_, rest)| rest),
            LabelRule::AfterLastDot => folder.rsplit_once('.').map_or(folder, |(_, rest)| rest),
            LabelRule::FolderName => folder,
        };
        if label.is_empty() { folder } else { label }.to_string()
    }
}

/// What happens to images in folders nested inside a class folder
/// (Caltech-256 has `056.dog/greg/`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NestedDirs {
    /// Images at any depth below a class folder belong to that class (counted in the
    /// report as `nested_included`).
    #[default]
    Include,
    /// Only images directly in the class folder are used; nested ones are listed in the
    /// report as skipped with reason `nested-folder`.
    Skip,
}

/// The resampling filter used to resize to `size × size`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResizeFilter {
    /// Antialiased bilinear (PIL's `BILINEAR`; OpenCV `INTER_AREA`-like when shrinking).
    Bilinear,
    /// Hamming: bilinear speed with bicubic-like sharpness when shrinking.
    #[default]
    Hamming,
    /// Catmull-Rom bicubic.
    CatmullRom,
    /// Lanczos3: sharpest, slowest.
    Lanczos3,
}

/// How the input folder is laid out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// `presplit` when the input's folders are `train/` and `val/` (and maybe `test/`)
    /// and nothing else, else `folders`. The report says which was used.
    #[default]
    Auto,
    /// One folder per class; the splits are drawn by `prep.val_split`,
    /// `prep.test_split` or `prep.train_per_class`.
    Folders,
    /// `train/<class>/…`, `val/<class>/…` and optionally `test/<class>/…`, kept as given
    /// (`val/` may instead be one flat folder labelled by `prep.val_labels`).
    Presplit,
}

/// What happens to near-duplicate images found across splits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NearDuplicates {
    /// Listed in the report.
    #[default]
    Report,
    /// Listed, and the validation or test copy is removed from its split (a
    /// train–val–test chain loses its val and test copies; a val–test pair its test copy).
    Drop,
    /// Not looked for.
    Off,
}

/// Settings for [`preprocess`](super::preprocess). Defaults are the original post's
/// (`properties.py`): 20% validation split, no test split, center crop, 256×256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrepConfig {
    /// The raw class-per-folder dataset. Required to run.
    pub input: Option<PathBuf>,
    /// Where the processed dataset is written. Required to run.
    pub output: Option<PathBuf>,
    /// How the input is laid out.
    pub layout: Layout,
    /// Fraction of each class that goes to the validation split, in `[0, 1)` (of what
    /// is left after training with `train_per_class`).
    pub val_split: f64,
    /// Fraction of each class that goes to the test split, in `[0, 1)`; training never
    /// reads it.
    pub test_split: f64,
    /// The Caltech protocol: exactly this many training images per class; validation is
    /// carved from the rest by `val_split`, and every other image is test.
    pub train_per_class: Option<usize>,
    /// With the presplit layout and a flat `val/` folder: a CSV of `file,class` rows
    /// (file name with or without its extension, class folder name as in `train/`;
    /// Kaggle's `LOC_val_solution.csv`, whose class is the first word of its second
    /// column, reads as it is).
    pub val_labels: Option<PathBuf>,
    /// Near-duplicate images across splits: report, drop, or off.
    pub near_duplicates: NearDuplicates,
    /// Largest Hamming distance between two images' 64-bit perceptual hashes for them to
    /// be compared as near duplicates, 0–7 (a pair is then confirmed on thumbnails).
    pub near_duplicate_distance: u32,
    /// Side of the square output images, in pixels.
    pub size: u32,
    /// Center crop to a square before resizing (`false`: squash the whole image).
    pub center_crop: bool,
    /// Seed of the split. The same seed and files give the same split on every machine.
    pub seed: u64,
    /// Worker threads; 0 uses every core.
    pub jobs: usize,
    /// How labels are read from folder names.
    pub label: LabelRule,
    /// What happens to images in nested folders.
    pub nested: NestedDirs,
    /// Resampling filter.
    pub filter: ResizeFilter,
    /// JPEG quality of the written images, 1–100.
    pub jpeg_quality: u8,
    /// Colour that transparent pixels are composited over, 0–255 RGB.
    pub alpha_background: [u8; 3],
    /// Images with more pixels than this are skipped (decompression-bomb guard).
    pub max_pixels: u64,
    /// Files larger than this are skipped as `too-large` before they are read. With
    /// `--jobs N`, at most N files are in memory at once, each with its decoded pixels
    /// (see docs/design.md for the bound).
    pub max_file_bytes: u64,
}

/// Values from a command line that replace a [`PrepConfig`]'s; `None` keeps the
/// config's. With the `cli` feature, the `preprocess_caltech` example's flags
/// (`#[command(flatten)]`).
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct PrepOverrides {
    /// The raw dataset: one folder per class (overrides prep.input).
    #[cfg_attr(feature = "cli", arg(long))]
    pub input: Option<PathBuf>,
    /// Where the processed dataset goes (overrides prep.output).
    #[cfg_attr(feature = "cli", arg(long))]
    pub output: Option<PathBuf>,
    /// Side of the square output images in pixels (overrides prep.size).
    #[cfg_attr(feature = "cli", arg(long))]
    pub size: Option<u32>,
    /// Fraction of each class held out for validation (overrides prep.val_split).
    #[cfg_attr(feature = "cli", arg(long))]
    pub val_split: Option<f64>,
    /// Fraction of each class held out for testing (overrides prep.test_split).
    #[cfg_attr(feature = "cli", arg(long))]
    pub test_split: Option<f64>,
    /// Exactly N training images per class, the rest val and test (overrides
    /// prep.train_per_class).
    #[cfg_attr(feature = "cli", arg(long))]
    pub train_per_class: Option<usize>,
    /// auto, folders or presplit (overrides prep.layout).
    #[cfg_attr(feature = "cli", arg(long, value_parser = parse_layout))]
    pub layout: Option<Layout>,
    /// Label CSV of a flat val/ folder (overrides prep.val_labels).
    #[cfg_attr(feature = "cli", arg(long))]
    pub val_labels: Option<PathBuf>,
    /// report, drop or off (overrides prep.near_duplicates).
    #[cfg_attr(feature = "cli", arg(long, value_parser = parse_near_duplicates))]
    pub near_duplicates: Option<NearDuplicates>,
    /// Seed of the split (overrides prep.seed).
    #[cfg_attr(feature = "cli", arg(long))]
    pub seed: Option<u64>,
    /// Resize the whole image to a square instead of center-cropping first (sets
    /// prep.center_crop to false).
    #[cfg_attr(
        feature = "cli",
        arg(long = "no-center-crop", num_args = 0, default_missing_value = "false")
    )]
    pub center_crop: Option<bool>,
    /// Worker threads (overrides prep.jobs; 0 = all cores).
    #[cfg_attr(feature = "cli", arg(long))]
    pub jobs: Option<usize>,
    /// Files larger than this many bytes are skipped unread (overrides
    /// prep.max_file_bytes).
    #[cfg_attr(feature = "cli", arg(long))]
    pub max_file_bytes: Option<u64>,
}

/// The default `prep.max_file_bytes`: 128 MiB, several times a 100-megapixel JPEG.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 128 << 20;

impl Default for PrepConfig {
    fn default() -> Self {
        Self {
            input: None,
            output: None,
            layout: Layout::default(),
            val_split: 0.2,
            test_split: 0.0,
            train_per_class: None,
            val_labels: None,
            near_duplicates: NearDuplicates::default(),
            near_duplicate_distance: 5,
            size: 256,
            center_crop: true,
            seed: 42,
            jobs: 0,
            label: LabelRule::default(),
            nested: NestedDirs::default(),
            filter: ResizeFilter::default(),
            jpeg_quality: 95,
            alpha_background: [255, 255, 255],
            max_pixels: 178_956_970,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
        }
    }
}

impl PrepConfig {
    /// Replaces the values `overrides` sets.
    pub fn apply(&mut self, overrides: &PrepOverrides) {
        let o = overrides.clone();
        self.input = o.input.or(self.input.take());
        self.output = o.output.or(self.output.take());
        self.size = o.size.unwrap_or(self.size);
        self.val_split = o.val_split.unwrap_or(self.val_split);
        self.test_split = o.test_split.unwrap_or(self.test_split);
        self.train_per_class = o.train_per_class.or(self.train_per_class);
        self.layout = o.layout.unwrap_or(self.layout);
        self.val_labels = o.val_labels.or(self.val_labels.take());
        self.near_duplicates = o.near_duplicates.unwrap_or(self.near_duplicates);
        self.seed = o.seed.unwrap_or(self.seed);
        self.center_crop = o.center_crop.unwrap_or(self.center_crop);
        self.jobs = o.jobs.unwrap_or(self.jobs);
        self.max_file_bytes = o.max_file_bytes.unwrap_or(self.max_file_bytes);
    }

    /// Checks every value; the error names the offending key.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field, reason: &str| {
            Err(PrepError::InvalidConfig {
                field,
                reason: reason.to_string(),
            })
        };
        if !(0.0..1.0).contains(&self.val_split) {
            return invalid(
                "prep.val_split",
                &format!("{} is not in [0, 1)", self.val_split),
            );
        }
        if !(0.0..1.0).contains(&self.test_split) {
            return invalid(
                "prep.test_split",
                &format!("{} is not in [0, 1)", self.test_split),
            );
        }
        if self.val_split + self.test_split >= 1.0 {
            return invalid(
                "prep.test_split",
                &format!(
                    "{} with prep.val_split = {} leaves nothing for training",
                    self.test_split, self.val_split
                ),
            );
        }
        if let Some(n) = self.train_per_class {
            if n == 0 {
                return invalid("prep.train_per_class", "must be positive");
            }
            if self.test_split != 0.0 {
                return invalid(
                    "prep.test_split",
                    "cannot be set with prep.train_per_class: every image not trained or validated on is test",
                );
            }
        }
        if self.val_labels.is_some() && self.layout == Layout::Folders {
            return invalid(
                "prep.val_labels",
                "labels a flat val/ folder of a presplit input; prep.layout is \"folders\"",
            );
        }
        if self.near_duplicate_distance > 7 {
            return invalid(
                "prep.near_duplicate_distance",
                &format!("{} is not in 0..=7", self.near_duplicate_distance),
            );
        }
        if self.size == 0 || self.size > 16_384 {
            return invalid("prep.size", &format!("{} is not in 1..=16384", self.size));
        }
        if !(1..=100).contains(&self.jpeg_quality) {
            return invalid(
                "prep.jpeg_quality",
                &format!("{} is not in 1..=100", self.jpeg_quality),
            );
        }
        if self.max_pixels == 0 {
            return invalid("prep.max_pixels", "must be positive");
        }
        if self.max_file_bytes == 0 {
            return invalid("prep.max_file_bytes", "must be positive");
        }
        Ok(())
    }

    /// The rule that splits each class of a one-folder-per-class input.
    pub fn split_rule(&self) -> SplitRule {
        match self.train_per_class {
            Some(train) => SplitRule::TrainPerClass {
                train,
                val: self.val_split,
            },
            None => SplitRule::Fractions {
                val: self.val_split,
                test: self.test_split,
            },
        }
    }

    /// The input folder, or an error naming the missing key.
    pub fn input_dir(&self) -> Result<&PathBuf> {
        self.input.as_ref().ok_or(PrepError::InvalidConfig {
            field: "prep.input",
            reason: "no input folder given (set it in the config or pass --input)".into(),
        })
    }

    /// The output folder, or an error naming the missing key.
    pub fn output_dir(&self) -> Result<&PathBuf> {
        self.output.as_ref().ok_or(PrepError::InvalidConfig {
            field: "prep.output",
            reason: "no output folder given (set it in the config or pass --output)".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_the_rule() {
        assert_eq!(LabelRule::AfterFirstDot.label("001.ak47"), "ak47");
        assert_eq!(LabelRule::AfterFirstDot.label("257.clutter.x"), "clutter.x");
        assert_eq!(LabelRule::AfterLastDot.label("257.clutter.x"), "x");
        assert_eq!(LabelRule::FolderName.label("001.ak47"), "001.ak47");
        assert_eq!(LabelRule::AfterFirstDot.label("n01440764"), "n01440764");
        assert_eq!(LabelRule::AfterFirstDot.label("007."), "007.");
    }

    #[test]
    fn validation_names_the_field() {
        let mut config = PrepConfig {
            val_split: 1.0,
            ..PrepConfig::default()
        };
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("prep.val_split"), "{error}");
        config.val_split = 0.2;
        config.size = 0;
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("prep.size")
        );
        config.size = 256;
        config.jpeg_quality = 0;
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("prep.jpeg_quality")
        );
        config.jpeg_quality = 95;
        assert!(config.validate().is_ok());
        config.test_split = 0.8;
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("prep.test_split"), "{error}");
        config.test_split = 0.1;
        config.train_per_class = Some(30);
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("prep.test_split"), "{error}");
        config.test_split = 0.0;
        assert!(config.validate().is_ok());
    }

    #[test]
    fn toml_rejects_unknown_keys() {
        let error = toml::from_str::<PrepConfig>("val_splitt = 0.1").unwrap_err();
        assert!(error.to_string().contains("val_splitt"), "{error}");
    }
}
