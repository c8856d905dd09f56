//! Pipeline descriptions: the `[augment]` section of a config file.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where a per-channel value comes from: the dataset's `rgb_mean.json`, or given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ChannelValues {
    /// Taken from the dataset statistics the pipeline is built with.
    Dataset,
    /// Given explicitly (R, G, B).
    Values([f64; 3]),
}

impl Serialize for ChannelValues {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ChannelValues::Dataset => serializer.serialize_str("dataset"),
            ChannelValues::Values(values) => values.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for ChannelValues {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ChannelValues;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"dataset\" or a list of 3 numbers (R, G, B)")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
                if text == "dataset" {
                    Ok(ChannelValues::Dataset)
                } else {
                    Err(E::custom(format!(
                        "expected \"dataset\" or a list of 3 numbers, found \"{text}\""
                    )))
                }
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut values = Vec::new();
                while let Some(value) = seq.next_element::<f64>()? {
                    values.push(value);
                }
                <[f64; 3]>::try_from(values.as_slice())
                    .map(ChannelValues::Values)
                    .map_err(|_| {
                        serde::de::Error::custom(format!(
                            "expected 3 values (R, G, B), found {}",
                            values.len()
                        ))
                    })
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The value range pixel values are brought to before `mean` and `std` apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scale {
    /// Pixels stay 0–255 (the original: mean subtraction only, no division).
    #[default]
    #[serde(rename = "0-255")]
    Byte,
    /// Pixels are divided by 255 first; `mean`/`std` are then in 0–1 units.
    #[serde(rename = "0-1")]
    Unit,
}

/// Resampling filter of `resize` and `random_resized_crop`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Filter {
    /// Antialiased bilinear.
    #[default]
    Bilinear,
    /// Bilinear on a fixed 2×2 neighbourhood, as OpenCV's `INTER_LINEAR`.
    BilinearFixed,
    /// Catmull-Rom bicubic.
    CatmullRom,
    /// Lanczos3.
    Lanczos3,
}

/// One augmentation op. In a TOML file: `{ op = "random_crop", size = [227, 227] }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum OpConfig {
    /// Mirror left-right with probability `p`.
    HorizontalFlip {
        /// Probability of mirroring, in [0, 1].
        #[serde(default = "half")]
        p: f64,
    },
    /// A uniformly placed `[height, width]` window.
    RandomCrop {
        /// `[height, width]` of the crop.
        size: [u32; 2],
    },
    /// The central `[height, width]` window.
    CenterCrop {
        /// `[height, width]` of the crop.
        size: [u32; 2],
    },
    /// Resize to `[height, width]` (the original's validation squash 256 → 227).
    Resize {
        /// `[height, width]` of the output.
        size: [u32; 2],
        /// Resampling filter.
        #[serde(default)]
        filter: Filter,
    },
    /// A random window of `scale` × the area and aspect ratio in `ratio`, resized to
    /// `size` (Inception-style; torchvision's `RandomResizedCrop`).
    RandomResizedCrop {
        /// `[height, width]` of the output.
        size: [u32; 2],
        /// Range of the window's area as a fraction of the input's.
        #[serde(default = "default_scale")]
        scale: [f64; 2],
        /// Range of the window's width / height.
        #[serde(default = "default_ratio")]
        ratio: [f64; 2],
        /// Resampling filter.
        #[serde(default)]
        filter: Filter,
    },
    /// `(pixel - mean) / std`, per channel, after bringing pixels to `scale`.
    Normalize {
        /// Subtracted per channel: `"dataset"` (the training split's mean) or `[r, g, b]`
        /// in `scale` units.
        #[serde(default = "dataset")]
        mean: ChannelValues,
        /// Divided per channel, if given: `"dataset"` or `[r, g, b]` in `scale` units.
        #[serde(default)]
        std: Option<ChannelValues>,
        /// `"0-255"` (default, the original) or `"0-1"`.
        #[serde(default)]
        scale: Scale,
    },
    /// The AlexNet paper's PCA colour augmentation: adds Σ αᵢ·√λᵢ·pᵢ to every pixel, with
    /// αᵢ ~ N(0, `std`) drawn per image and (λᵢ, pᵢ) the eigenvalues and eigenvectors of the
    /// training set's RGB covariance (0–255 units). √λᵢ (the spread along each component)
    /// keeps the shift in pixel units whatever scale the statistics use.
    PcaLighting {
        /// Standard deviation of the αᵢ (the paper: 0.1).
        #[serde(default = "pca_std")]
        std: f64,
        /// Eigenvalues; the dataset's when absent.
        #[serde(default)]
        eigenvalues: Option<[f64; 3]>,
        /// Eigenvectors as rows, paired with `eigenvalues`; the dataset's when absent.
        #[serde(default)]
        eigenvectors: Option<[[f64; 3]; 3]>,
    },
    /// The paper's test-time ten crops: four corners and the centre, and their mirror
    /// images. The pipeline then yields 10 outputs per image; average the model's outputs.
    TenCrop {
        /// `[height, width]` of each crop.
        size: [u32; 2],
    },
}

fn half() -> f64 {
    0.5
}
fn default_scale() -> [f64; 2] {
    [0.08, 1.0]
}
fn default_ratio() -> [f64; 2] {
    [3.0 / 4.0, 4.0 / 3.0]
}
fn dataset() -> ChannelValues {
    ChannelValues::Dataset
}
fn pca_std() -> f64 {
    0.1
}

impl OpConfig {
    /// The op's name as written in config files.
    pub fn name(&self) -> &'static str {
        match self {
            OpConfig::HorizontalFlip { .. } => "horizontal_flip",
            OpConfig::RandomCrop { .. } => "random_crop",
            OpConfig::CenterCrop { .. } => "center_crop",
            OpConfig::Resize { .. } => "resize",
            OpConfig::RandomResizedCrop { .. } => "random_resized_crop",
            OpConfig::Normalize { .. } => "normalize",
            OpConfig::PcaLighting { .. } => "pca_lighting",
            OpConfig::TenCrop { .. } => "ten_crop",
        }
    }

    /// Whether the op draws random numbers.
    pub fn is_random(&self) -> bool {
        matches!(
            self,
            OpConfig::HorizontalFlip { .. }
                | OpConfig::RandomCrop { .. }
                | OpConfig::RandomResizedCrop { .. }
                | OpConfig::PcaLighting { .. }
        )
    }
}

/// The `[augment]` section: one op list for training, one for evaluation. The defaults
/// are the original's (`transformation.py`): mean subtraction, flip, random 227 crop for
/// training; mean subtraction and a 227 squash for evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentConfig {
    /// Ops applied to training images, in order.
    pub train: Vec<OpConfig>,
    /// Ops applied to validation and test images, in order.
    pub eval: Vec<OpConfig>,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self::original(227)
    }
}

impl AugmentConfig {
    /// The original's pipelines for `crop × crop` network inputs.
    pub fn original(crop: u32) -> Self {
        let normalize = OpConfig::Normalize {
            mean: ChannelValues::Dataset,
            std: None,
            scale: Scale::Byte,
        };
        Self {
            train: vec![
                normalize.clone(),
                OpConfig::HorizontalFlip { p: 0.5 },
                OpConfig::RandomCrop { size: [crop, crop] },
            ],
            eval: vec![
                normalize,
                OpConfig::Resize {
                    size: [crop, crop],
                    filter: Filter::Bilinear,
                },
            ],
        }
    }
}
