//! The five convolutional stages of each variant, as one table that the builder, the
//! summary and the input-size check all read.

use crate::variant::Variant;

/// One convolutional stage.
pub(crate) struct ConvLayer {
    /// Input and output channels.
    pub channels: [usize; 2],
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    /// Split in two groups with `two_tower` (the paper's GPU split).
    pub grouped: bool,
    /// The paper's bias of 1 (the post's biases are all 0).
    pub paper_bias_one: bool,
    /// LRN after the ReLU (`Paper`).
    pub lrn: bool,
    /// Max pool 3×3, stride 2 (and, in `Seed`, dropout) after it.
    pub pool: bool,
}

/// conv1 … conv5 of the post's and the paper's network (the paper's Figure 2).
#[rustfmt::skip] // one row per layer, as a table
const ALEXNET_2012: [ConvLayer; 5] = [
    ConvLayer { channels: [3, 96],    kernel: 11, stride: 4, padding: 0, grouped: false, paper_bias_one: false, lrn: true,  pool: true  },
    ConvLayer { channels: [96, 256],  kernel: 5,  stride: 1, padding: 2, grouped: true,  paper_bias_one: true,  lrn: true,  pool: true  },
    ConvLayer { channels: [256, 384], kernel: 3,  stride: 1, padding: 1, grouped: false, paper_bias_one: false, lrn: false, pool: false },
    ConvLayer { channels: [384, 384], kernel: 3,  stride: 1, padding: 1, grouped: true,  paper_bias_one: true,  lrn: false, pool: false },
    ConvLayer { channels: [384, 256], kernel: 3,  stride: 1, padding: 1, grouped: true,  paper_bias_one: true,  lrn: false, pool: true  },
];

/// conv1 … conv5 of `torchvision.models.alexnet` (the "one weird trick" network:
/// 64-192-384-256-256, conv1 padded by 2).
#[rustfmt::skip]
const TORCHVISION: [ConvLayer; 5] = [
    ConvLayer { channels: [3, 64],    kernel: 11, stride: 4, padding: 2, grouped: false, paper_bias_one: false, lrn: false, pool: true  },
    ConvLayer { channels: [64, 192],  kernel: 5,  stride: 1, padding: 2, grouped: false, paper_bias_one: false, lrn: false, pool: true  },
    ConvLayer { channels: [192, 384], kernel: 3,  stride: 1, padding: 1, grouped: false, paper_bias_one: false, lrn: false, pool: false },
    ConvLayer { channels: [384, 256], kernel: 3,  stride: 1, padding: 1, grouped: false, paper_bias_one: false, lrn: false, pool: false },
    ConvLayer { channels: [256, 256], kernel: 3,  stride: 1, padding: 1, grouped: false, paper_bias_one: false, lrn: false, pool: true  },
];

/// The convolutional stages of `variant`.
pub(crate) fn conv_layers(variant: Variant) -> &'static [ConvLayer; 5] {
    match variant {
        Variant::Seed | Variant::Paper => &ALEXNET_2012,
        Variant::Torchvision => &TORCHVISION,
    }
}

/// Output side of a convolution or pool; `None` when the window does not fit.
pub(crate) fn window_out(
    size: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Option<usize> {
    (size + 2 * padding)
        .checked_sub(kernel)
        .map(|room| room / stride + 1)
}

/// Side of the feature map after conv5's pool for an input side `size`, `None` when a
/// stage has nothing left.
pub(crate) fn features_side(variant: Variant, size: usize) -> Option<usize> {
    conv_layers(variant).iter().try_fold(size, |side, layer| {
        let side = window_out(side, layer.kernel, layer.stride, layer.padding)?;
        if layer.pool {
            window_out(side, 3, 2, 0)
        } else {
            Some(side)
        }
    })
}

/// The smallest input side `variant` accepts (67 for the 2012 network, 63 for
/// torchvision's, whose conv1 is padded).
pub(crate) fn min_input(variant: Variant) -> usize {
    (1..)
        .find(|&side| features_side(variant, side).is_some_and(|s| s >= 1))
        .unwrap_or(usize::MAX)
}
