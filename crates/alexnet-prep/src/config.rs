//! Preprocessing settings: the `[prep]` section of a config file.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{PrepError, Result};

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

/// Settings for [`preprocess`](super::preprocess). Defaults are the original post's
/// (`properties.py`): 20% validation split, center crop, 256×256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrepConfig {
    /// The raw class-per-folder dataset. Required to run.
    pub input: Option<PathBuf>,
    /// Where the processed dataset is written. Required to run.
    pub output: Option<PathBuf>,
    /// Fraction of each class that goes to the validation split, in `[0, 1)`.
    pub val_split: f64,
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
            val_split: 0.2,
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
    }

    #[test]
    fn toml_rejects_unknown_keys() {
        let error = toml::from_str::<PrepConfig>("val_splitt = 0.1").unwrap_err();
        assert!(error.to_string().contains("val_splitt"), "{error}");
    }
}
