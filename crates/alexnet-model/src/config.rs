//! `AlexNetConfig`: the `[model]` section of a config file.

use serde::{Deserialize, Serialize};

pub use crate::variant::Variant;
use crate::{
    error::{ModelError, Result},
    layers,
    lrn::LrnConfig,
};

/// Settings of the model. Defaults are the post's network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlexNetConfig {
    /// Which network.
    pub variant: Variant,
    /// Number of classes. Optional in a config file (the trainer fills it in from the
    /// dataset's `categories.csv`); required by [`AlexNetConfig::init`].
    pub num_classes: Option<usize>,
    /// Dropout after each max-pool (`Seed` only; the original uses 0.25).
    pub conv_dropout: f64,
    /// Dropout in the classifier: after fc1 for `Seed`, before fc1 and fc2 for `Paper`
    /// and `Torchvision`.
    pub fc_dropout: f64,
    /// The paper's two-tower split (groups of 2 in conv2, conv4, conv5); `Paper` only.
    pub two_tower: bool,
    /// Local Response Normalization settings (`Paper` only).
    pub lrn: LrnConfig,
    /// BatchNorm momentum, PyTorch's meaning (`Seed` only).
    pub batch_norm_momentum: f64,
    /// BatchNorm epsilon (`Seed` only).
    pub batch_norm_epsilon: f64,
}

impl Default for AlexNetConfig {
    fn default() -> Self {
        Self {
            variant: Variant::Seed,
            num_classes: None,
            conv_dropout: 0.25,
            fc_dropout: 0.5,
            two_tower: false,
            lrn: LrnConfig::default(),
            batch_norm_momentum: 0.1,
            batch_norm_epsilon: 1e-5,
        }
    }
}

/// The smallest input side the post's and the paper's network accept: conv1 (k11, s4, no
/// padding) and the three 3/2 max-pools leave 15 → 7 → 3 → 1 at 67. Torchvision's, with
/// conv1 padded, takes 63 ([`AlexNetConfig::min_input`]).
pub const MIN_INPUT: usize = 67;

/// The input side of the original network.
pub const DEFAULT_INPUT: usize = 227;

impl AlexNetConfig {
    /// The post's network for `num_classes` classes.
    pub fn seed(num_classes: usize) -> Self {
        Self {
            num_classes: Some(num_classes),
            ..Self::default()
        }
    }

    /// The 2012 paper's network for `num_classes` classes.
    pub fn paper(num_classes: usize) -> Self {
        Self {
            variant: Variant::Paper,
            num_classes: Some(num_classes),
            ..Self::default()
        }
    }

    /// `torchvision.models.alexnet` for `num_classes` classes.
    pub fn torchvision(num_classes: usize) -> Self {
        Self {
            variant: Variant::Torchvision,
            num_classes: Some(num_classes),
            ..Self::default()
        }
    }

    /// The smallest input side this network accepts.
    pub fn min_input(&self) -> usize {
        layers::min_input(self.variant)
    }

    /// Sets the number of classes.
    pub fn with_num_classes(mut self, num_classes: usize) -> Self {
        self.num_classes = Some(num_classes);
        self
    }

    /// Sets the two-tower split.
    pub fn with_two_tower(mut self, two_tower: bool) -> Self {
        self.two_tower = two_tower;
        self
    }

    /// The number of classes, or an error saying it must be set.
    pub fn classes(&self) -> Result<usize> {
        self.num_classes.ok_or(ModelError::InvalidConfig {
            field: "model.num_classes",
            reason: "not set (the trainer sets it from categories.csv)".into(),
        })
    }

    /// Checks every value; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field, reason: String| Err(ModelError::InvalidConfig { field, reason });
        if let Some(classes) = self.num_classes.filter(|&classes| classes < 2) {
            return invalid("model.num_classes", format!("{classes} is less than 2"));
        }
        for (field, p) in [
            ("model.conv_dropout", self.conv_dropout),
            ("model.fc_dropout", self.fc_dropout),
        ] {
            if !p.is_finite() || !(0.0..1.0).contains(&p) {
                return invalid(field, format!("{p} is not in [0, 1)"));
            }
        }
        if self.two_tower && self.variant != Variant::Paper {
            return invalid(
                "model.two_tower",
                "only the paper variant has two towers".into(),
            );
        }
        if !(0.0..=1.0).contains(&self.batch_norm_momentum) {
            return invalid(
                "model.batch_norm_momentum",
                format!("{} is not in [0, 1]", self.batch_norm_momentum),
            );
        }
        if !self.batch_norm_epsilon.is_finite() || self.batch_norm_epsilon <= 0.0 {
            return invalid(
                "model.batch_norm_epsilon",
                format!("{} is not positive", self.batch_norm_epsilon),
            );
        }
        self.lrn.validate()
    }

    /// Checks that an input of `height × width` fits the network.
    pub fn check_input(&self, height: usize, width: usize) -> Result<()> {
        let min = self.min_input();
        if height < min || width < min {
            return Err(ModelError::InputTooSmall { height, width, min });
        }
        Ok(())
    }
}
