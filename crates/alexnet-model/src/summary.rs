//! A text summary of the network: layers, output shapes and parameter counts.

use std::fmt;

use crate::{
    config::{AlexNetConfig, Variant},
    error::Result,
    layers::{ConvLayer, conv_layers, window_out},
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
        let mut rows = Rows {
            config: self,
            layers: Vec::new(),
            shape: [3, height, width],
        };
        let names = ["conv1", "conv2", "conv3", "conv4", "conv5"];
        for (name, layer) in names.into_iter().zip(conv_layers(self.variant)) {
            rows.conv_stage(name, layer);
        }
        rows.classifier(classes);
        Ok(ModelSummary {
            variant: self.variant,
            input: [height, width],
            layers: rows.layers,
        })
    }
}

/// The summary's rows as they are built, with the shape flowing through the network.
struct Rows<'a> {
    config: &'a AlexNetConfig,
    layers: Vec<LayerSummary>,
    /// Channels, height, width of the last row's output.
    shape: [usize; 3],
}

impl Rows<'_> {
    fn push(&mut self, name: String, kind: String, output: Vec<usize>, params: usize) {
        self.layers.push(LayerSummary {
            name,
            kind,
            output,
            params,
        });
    }

    /// A row that keeps the current feature map's shape.
    fn same_shape(&mut self, name: String, kind: String, params: usize) {
        let output = self.shape.to_vec();
        self.push(name, kind, output, params);
    }

    /// One convolutional stage: conv, ReLU, then BatchNorm (`Seed`) or LRN (`Paper`),
    /// then max pool (and `Seed`'s dropout) where the table says.
    fn conv_stage(&mut self, name: &str, layer: &ConvLayer) {
        let config = self.config;
        let seed = config.variant == Variant::Seed;
        let [c, h, w] = self.shape;
        let [_, out] = layer.channels;
        let (kernel, stride, padding) = (layer.kernel, layer.stride, layer.padding);
        let groups = if layer.grouped && config.two_tower {
            2
        } else {
            1
        };
        let group_text = if groups > 1 { ", groups 2" } else { "" };
        self.shape = [
            out,
            conv_out(h, kernel, stride, padding),
            conv_out(w, kernel, stride, padding),
        ];
        self.same_shape(
            format!("{name}.conv"),
            format!(
                "Conv2d {c}→{out}, {kernel}×{kernel}, stride {stride}, padding {padding}{group_text}"
            ),
            c / groups * out * kernel * kernel + out,
        );
        self.same_shape(format!("{name}.relu"), "ReLU".into(), 0);
        if seed {
            self.same_shape(format!("{name}.norm"), "BatchNorm2d".into(), 2 * out);
        } else if layer.lrn && config.variant == Variant::Paper {
            let l = &config.lrn;
            let kind = format!(
                "LocalResponseNorm size {}, α {}, β {}, k {}",
                l.size, l.alpha, l.beta, l.k
            );
            self.same_shape(format!("{name}.lrn"), kind, 0);
        }
        if layer.pool {
            let [c, h, w] = self.shape;
            self.shape = [c, conv_out(h, 3, 2, 0), conv_out(w, 3, 2, 0)];
            self.same_shape(format!("{name}.pool"), "MaxPool2d 3×3, stride 2".into(), 0);
            if seed {
                let kind = format!("Dropout {}", config.conv_dropout);
                self.same_shape(format!("{name}.dropout"), kind, 0);
            }
        }
    }

    /// Average pool, flatten and the three fully connected layers with what follows them.
    fn classifier(&mut self, classes: usize) {
        let config = self.config;
        let seed = config.variant == Variant::Seed;
        let c = self.shape[0];
        self.push(
            "avgpool".into(),
            "AdaptiveAvgPool2d 6×6".into(),
            vec![c, 6, 6],
            0,
        );
        let flat = c * 36;
        self.push("flatten".into(), "Flatten".into(), vec![flat], 0);
        let dropout = format!("Dropout {}", config.fc_dropout);
        if !seed {
            self.push("dropout0".into(), dropout.clone(), vec![flat], 0);
        }
        for (n, (d_in, d_out)) in [(1, (flat, 4096)), (2, (4096, 4096))] {
            let kind = format!("Linear {d_in}→{d_out}");
            self.push(format!("fc{n}"), kind, vec![d_out], d_in * d_out + d_out);
            self.push(format!("fc{n}.relu"), "ReLU".into(), vec![d_out], 0);
            if seed {
                let kind = "BatchNorm1d".into();
                self.push(format!("norm{n}"), kind, vec![d_out], 2 * d_out);
            }
            if n == 1 {
                self.push("dropout1".into(), dropout.clone(), vec![d_out], 0);
            }
        }
        let kind = format!("Linear 4096→{classes}");
        self.push("fc3".into(), kind, vec![classes], 4096 * classes + classes);
        self.push("log_softmax".into(), "LogSoftmax".into(), vec![classes], 0);
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
