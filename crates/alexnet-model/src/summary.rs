//! A text summary of the network: layers, output shapes and parameter counts.

use std::fmt;

use crate::{
    config::{AlexNetConfig, Variant},
    error::Result,
    layers::{conv_layers, window_out},
};

/// One row of a [`ModelSummary`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSummary {
    /// Layer name as in the module (`conv1.conv`, `fc1`, ...).
    pub name: String,
    /// What it is, with its settings.
    pub kind: String,
    /// Output shape without the batch dimension.
    pub output: Vec<usize>,
    /// Trainable parameters.
    pub params: usize,
}

/// Layers, output shapes and parameter counts for one input size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSummary {
    /// Which network.
    pub variant: Variant,
    /// Input side.
    pub input: [usize; 2],
    /// The layers in order.
    pub layers: Vec<LayerSummary>,
}

impl ModelSummary {
    /// Total trainable parameters (BatchNorm running statistics not counted).
    pub fn total_params(&self) -> usize {
        self.layers.iter().map(|layer| layer.params).sum()
    }
}

/// `check_input` has made sure every window fits.
fn conv_out(size: usize, kernel: usize, stride: usize, padding: usize) -> usize {
    window_out(size, kernel, stride, padding).unwrap_or(0)
}

impl AlexNetConfig {
    /// The summary for `height × width` inputs.
    pub fn summary(&self, height: usize, width: usize) -> Result<ModelSummary> {
        self.validate()?;
        self.check_input(height, width)?;
        let classes = self.classes()?;
        let seed = self.variant == Variant::Seed;
        let paper = self.variant == Variant::Paper;
        let one_tower = !self.two_tower;
        let mut layers = Vec::new();
        let (mut h, mut w, mut c) = (height, width, 3usize);
        let mut push = |name: String, kind: String, output: Vec<usize>, params: usize| {
            layers.push(LayerSummary {
                name,
                kind,
                output,
                params,
            });
        };
        let names = ["conv1", "conv2", "conv3", "conv4", "conv5"];
        for (name, layer) in names.into_iter().zip(conv_layers(self.variant)) {
            let [_, out] = layer.channels;
            let (kernel, stride, padding, grouped) =
                (layer.kernel, layer.stride, layer.padding, layer.grouped);
            let (lrn, pool) = (layer.lrn && paper, layer.pool);
            let groups = if grouped && !one_tower { 2 } else { 1 };
            h = conv_out(h, kernel, stride, padding);
            w = conv_out(w, kernel, stride, padding);
            let params = c / groups * out * kernel * kernel + out;
            let group_text = if groups > 1 { ", groups 2" } else { "" };
            push(
                format!("{name}.conv"),
                format!(
                    "Conv2d {c}→{out}, {kernel}×{kernel}, stride {stride}, padding {padding}{group_text}"
                ),
                vec![out, h, w],
                params,
            );
            c = out;
            push(format!("{name}.relu"), "ReLU".into(), vec![c, h, w], 0);
            if seed {
                push(
                    format!("{name}.norm"),
                    "BatchNorm2d".into(),
                    vec![c, h, w],
                    2 * c,
                );
            } else if lrn {
                let l = &self.lrn;
                push(
                    format!("{name}.lrn"),
                    format!(
                        "LocalResponseNorm size {}, α {}, β {}, k {}",
                        l.size, l.alpha, l.beta, l.k
                    ),
                    vec![c, h, w],
                    0,
                );
            }
            if pool {
                h = conv_out(h, 3, 2, 0);
                w = conv_out(w, 3, 2, 0);
                push(
                    format!("{name}.pool"),
                    "MaxPool2d 3×3, stride 2".into(),
                    vec![c, h, w],
                    0,
                );
                if seed {
                    push(
                        format!("{name}.dropout"),
                        format!("Dropout {}", self.conv_dropout),
                        vec![c, h, w],
                        0,
                    );
                }
            }
        }
        push(
            "avgpool".into(),
            "AdaptiveAvgPool2d 6×6".into(),
            vec![c, 6, 6],
            0,
        );
        let flat = c * 36;
        push("flatten".into(), "Flatten".into(), vec![flat], 0);
        if !seed {
            push(
                "dropout0".into(),
                format!("Dropout {}", self.fc_dropout),
                vec![flat],
                0,
            );
        }
        for (index, (d_in, d_out)) in [(flat, 4096), (4096, 4096)].into_iter().enumerate() {
            let n = index + 1;
            push(
                format!("fc{n}"),
                format!("Linear {d_in}→{d_out}"),
                vec![d_out],
                d_in * d_out + d_out,
            );
            push(format!("fc{n}.relu"), "ReLU".into(), vec![d_out], 0);
            if seed {
                push(
                    format!("norm{n}"),
                    "BatchNorm1d".into(),
                    vec![d_out],
                    2 * d_out,
                );
            }
            if n == 1 {
                push(
                    "dropout1".into(),
                    format!("Dropout {}", self.fc_dropout),
                    vec![d_out],
                    0,
                );
            }
        }
        push(
            "fc3".into(),
            format!("Linear 4096→{classes}"),
            vec![classes],
            4096 * classes + classes,
        );
        push("log_softmax".into(), "LogSoftmax".into(), vec![classes], 0);
        Ok(ModelSummary {
            variant: self.variant,
            input: [height, width],
            layers,
        })
    }
}

impl fmt::Display for ModelSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let variant = match self.variant {
            Variant::Seed => "seed (the post's BatchNorm AlexNet)",
            Variant::Paper => "paper (2012, LRN)",
            Variant::Torchvision => "torchvision (torchvision.models.alexnet)",
        };
        writeln!(
            f,
            "AlexNet, {variant}, input 3×{}×{}",
            self.input[0], self.input[1]
        )?;
        writeln!(
            f,
            "{:<14} {:<58} {:>16} {:>12}",
            "layer", "kind", "output", "params"
        )?;
        for layer in &self.layers {
            let shape = layer
                .output
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join("×");
            writeln!(
                f,
                "{:<14} {:<58} {:>16} {:>12}",
                layer.name, layer.kind, shape, layer.params
            )?;
        }
        write!(f, "trainable parameters: {}", self.total_params())
    }
}
