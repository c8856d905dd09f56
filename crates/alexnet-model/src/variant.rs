//! Which AlexNet: the one enum the layer table, the config and the builder read.

use serde::{Deserialize, Serialize};

/// Which AlexNet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// The network of the PyTorch post this project reproduces, exactly as its code
    /// builds it: every conv followed by ReLU then BatchNorm; max-pool and Dropout(0.25)
    /// after conv1, conv2 and conv5; FC layers with BatchNorm, Dropout(0.5) after the
    /// first only; Xavier-normal weights and zero biases.
    #[default]
    Seed,
    /// The 2012 paper's network: Local Response Normalization after conv1 and conv2 (after
    /// ReLU, before max-pool), no BatchNorm, Dropout(0.5) before fc1 and fc2, weights
    /// N(0, 0.01), biases 1 in conv2, conv4, conv5, fc1 and fc2 (0 elsewhere); optionally
    /// the two-tower split (groups of 2 in conv2, conv4 and conv5).
    Paper,
    /// `torchvision.models.alexnet` exactly, the network ImageNet weights exist for:
    /// conv 64-192-384-256-256 (conv1 11×11, stride 4, padding 2), ReLU, max-pools after
    /// conv1, conv2 and conv5, no normalization; Dropout before fc1 and fc2; PyTorch's
    /// default initialization (uniform, bound 1/√fan_in, weights and biases). Its
    /// ImageNet weights expect 224 crops normalized with ImageNet's mean and std
    /// (`configs/caltech256-finetune.toml`).
    Torchvision,
}
