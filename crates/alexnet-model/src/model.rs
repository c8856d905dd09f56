//! The AlexNet module: its layers, their table, initialization and the one forward
//! pass (f32 or mixed precision). Both variants share one builder and one forward pass;
//! the config, summary, LRN and store are modules of their own.

use burn::{
    module::{Module, ModuleVisitor, Param, RunningState},
    nn::{
        BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Initializer, LocalResponseNorm,
        PaddingConfig2d, Relu,
        conv::{Conv2d, Conv2dConfig},
        pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig},
    },
    prelude::*,
    tensor::{DType, FloatDType, activation::log_softmax, ops::ConvOptions},
};

use crate::{
    config::{AlexNetConfig, Variant},
    error::{ModelError, Result},
    layers::{ConvLayer, conv_layers},
};
use alexnet_kernels::{batch_norm, conv2d, dropout as native_dropout, max_pool2d};

/// Side of the feature map the classifier expects (256 × 6 × 6 = 9216 inputs).
const POOLED: usize = 6;

/// A fully connected layer whose weight is stored `[out, in]`, PyTorch's layout, and
/// applied as `(W · xᵀ)ᵀ + b`. Computed that way the large weight is the left,
/// contiguous operand of every matrix product of the forward and backward passes, which
/// Burn's CPU matrix multiply runs about three times faster for AlexNet's fc1 at small
/// batches than `x · W` with Burn's `Linear` (see docs/benchmarks.md).
#[derive(Module, Debug)]
pub struct Dense {
    /// Weight, `[out, in]`.
    pub weight: Param<Tensor<2>>,
    /// Bias, `[out]`.
    pub bias: Param<Tensor<1>>,
}

impl Dense {
    /// `x · Wᵀ + b` for `x` of shape `[n, in]`, computed in `dtype` with the weights cast
    /// on the fly (no cast in f32).
    pub fn forward(&self, x: Tensor<2>, dtype: FloatDType) -> Tensor<2> {
        let out = in_dtype(self.weight.val(), dtype)
            .matmul(x.transpose())
            .transpose();
        out + in_dtype(self.bias.val(), dtype).unsqueeze_dim(0)
    }
}

/// `x` in `dtype`; the same tensor when it already is.
fn in_dtype<const D: usize>(x: Tensor<D>, dtype: FloatDType) -> Tensor<D> {
    if x.dtype() == DType::from(dtype) {
        x
    } else {
        x.cast(dtype)
    }
}

/// One convolutional stage: conv → ReLU → (BatchNorm | LRN) → max-pool → dropout, each
/// after the conv optional.
#[derive(Module, Debug)]
pub struct ConvBlock {
    /// The convolution.
    pub conv: Conv2d,
    /// BatchNorm after the ReLU (`Seed`).
    pub norm: Option<BatchNorm>,
    /// Local Response Normalization after the ReLU (`Paper`, conv1 and conv2).
    pub lrn: Option<LocalResponseNorm>,
    /// Overlapping 3×3, stride 2 max-pool (conv1, conv2, conv5).
    pub pool: Option<MaxPool2d>,
    /// Dropout after the pool (`Seed`).
    pub dropout: Option<Dropout>,
    activation: Relu,
}

fn conv(conv: &Conv2d, x: Tensor<4>, dtype: FloatDType) -> Tensor<4> {
    // The blocks are built with explicit padding only.
    let (top, left, bottom, right) = match conv.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) => (top, left, bottom, right),
        _ => (0, 0, 0, 0),
    };
    let options = ConvOptions::new_with_padding(
        conv.stride,
        [(top, bottom), (left, right)],
        conv.dilation,
        conv.groups,
    );
    let weight = in_dtype(conv.weight.val(), dtype);
    let bias = conv.bias.as_ref().map(|bias| in_dtype(bias.val(), dtype));
    conv2d(x, weight, bias, options)
}

impl ConvBlock {
    /// The stage in `dtype`; BatchNorm and LRN run in f32.
    fn forward(&self, x: Tensor<4>, dtype: FloatDType) -> Tensor<4> {
        let mut x = self.activation.forward(conv(&self.conv, x, dtype));
        if let Some(norm) = &self.norm {
            x = in_dtype(batch_norm(norm, in_dtype(x, FloatDType::F32)), dtype);
        }
        if let Some(lrn) = &self.lrn {
            x = in_dtype(lrn.forward(in_dtype(x, FloatDType::F32)), dtype);
        }
        if let Some(pool) = &self.pool {
            x = max_pool2d(pool, x);
        }
        if let Some(dropout) = &self.dropout {
            x = native_dropout(dropout, x);
        }
        x
    }
}

/// AlexNet; see [`Variant`] for the three networks. [`AlexNet::forward`] returns
/// **log-probabilities** (log-softmax over classes), as the original: train it with the
/// negative log-likelihood, and take `exp` for probabilities.
#[derive(Module, Debug)]
pub struct AlexNet {
    /// conv1: 3 → 96, 11×11, stride 4, no padding (torchvision: 3 → 64, padding 2).
    pub conv1: ConvBlock,
    /// conv2: 96 → 256, 5×5, padding 2 (torchvision: 64 → 192).
    pub conv2: ConvBlock,
    /// conv3: 256 → 384, 3×3, padding 1 (torchvision: 192 → 384).
    pub conv3: ConvBlock,
    /// conv4: 384 → 384, 3×3, padding 1 (torchvision: 384 → 256).
    pub conv4: ConvBlock,
    /// conv5: 384 → 256, 3×3, padding 1 (torchvision: 256 → 256).
    pub conv5: ConvBlock,
    /// Adaptive average pool to 6×6 (the identity at 227×227 input).
    pub avgpool: AdaptiveAvgPool2d,
    /// Dropout before fc1 (`Paper`, `Torchvision`).
    pub dropout0: Option<Dropout>,
    /// fc1: 9216 → 4096.
    pub fc1: Dense,
    /// BatchNorm after fc1's ReLU (`Seed`).
    pub norm1: Option<BatchNorm>,
    /// Dropout after fc1 (both variants: before fc2).
    pub dropout1: Dropout,
    /// fc2: 4096 → 4096.
    pub fc2: Dense,
    /// BatchNorm after fc2's ReLU (`Seed`).
    pub norm2: Option<BatchNorm>,
    /// fc3: 4096 → classes.
    pub fc3: Dense,
    activation: Relu,
    #[module(skip)]
    config: AlexNetConfig,
}

struct Builder<'a> {
    config: &'a AlexNetConfig,
    device: &'a Device,
}

impl Builder<'_> {
    fn weight_init(&self) -> Initializer {
        match self.config.variant {
            Variant::Seed => Initializer::XavierNormal { gain: 1.0 },
            Variant::Paper => Initializer::Normal {
                mean: 0.0,
                std: 0.01,
            },
            // PyTorch's default, kaiming_uniform(a = √5): bound √(1/3) · √(3 / fan_in).
            Variant::Torchvision => Initializer::KaimingUniform {
                gain: 1.0 / 3f64.sqrt(),
                fan_out_only: false,
            },
        }
    }

    /// The bias of a layer with `fan_in` inputs: the paper's `paper_bias` (1 or 0),
    /// zero in the post, PyTorch's default U(±1/√fan_in) in torchvision's network.
    fn bias_init(&self, paper_bias: f64, fan_in: usize) -> Initializer {
        let constant = match self.config.variant {
            Variant::Seed => 0.0,
            Variant::Paper => paper_bias,
            Variant::Torchvision => {
                let bound = 1.0 / (fan_in as f64).sqrt();
                return Initializer::Uniform {
                    min: -bound,
                    max: bound,
                };
            }
        };
        if constant == 0.0 {
            Initializer::Zeros
        } else {
            Initializer::Constant { value: constant }
        }
    }

    fn batch_norm(&self, features: usize) -> Option<BatchNorm> {
        (self.config.variant == Variant::Seed).then(|| {
            BatchNormConfig::new(features)
                .with_momentum(self.config.batch_norm_momentum)
                .with_epsilon(self.config.batch_norm_epsilon)
                .init(self.device)
        })
    }

    fn conv(&self, layer: &ConvLayer) -> Result<ConvBlock> {
        let ConvLayer {
            channels,
            kernel,
            stride,
            padding,
            ..
        } = *layer;
        let groups = if layer.grouped && self.config.two_tower {
            2
        } else {
            1
        };
        let mut conv = Conv2dConfig::new(channels, [kernel, kernel])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(
                padding, padding, padding, padding,
            ))
            .with_groups(groups)
            .with_initializer(self.weight_init())
            .init(self.device);
        let seed = self.config.variant == Variant::Seed;
        let paper = self.config.variant == Variant::Paper;
        // Burn's initializer also draws the bias, with its own bound; set it as the
        // originals do.
        let paper_bias = if layer.paper_bias_one { 1.0 } else { 0.0 };
        let fan_in = channels[0] / groups * kernel * kernel;
        conv.bias = Some(
            self.bias_init(paper_bias, fan_in)
                .init([channels[1]], self.device),
        );
        Ok(ConvBlock {
            conv,
            norm: self.batch_norm(channels[1]),
            lrn: if layer.lrn && paper {
                Some(self.config.lrn.init()?)
            } else {
                None
            },
            // Burn's pool stride defaults to the kernel; AlexNet's pools overlap (3, stride 2).
            pool: layer
                .pool
                .then(|| MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).init()),
            dropout: (layer.pool && seed)
                .then(|| DropoutConfig::new(self.config.conv_dropout).init()),
            activation: Relu::new(),
        })
    }

    fn linear(&self, d_input: usize, d_output: usize, paper_bias: f64) -> Dense {
        Dense {
            weight: self.weight_init().init_with(
                [d_output, d_input],
                Some(d_input),
                Some(d_output),
                self.device,
            ),
            bias: self
                .bias_init(paper_bias, d_input)
                .init([d_output], self.device),
        }
    }
}

impl AlexNetConfig {
    /// Builds the network on `device` (an autodiff device for training).
    ///
    /// ```
    /// use alexnet_model::AlexNetConfig;
    /// use burn::{prelude::*, tensor::FloatDType};
    ///
    /// let device = Device::flex();
    /// let model = AlexNetConfig::seed(10).init(&device)?;
    /// let log_probs = model.forward(Tensor::zeros([2, 3, 67, 67], &device), FloatDType::F32)?;
    /// assert_eq!(log_probs.dims(), [2, 10]);
    /// # Ok::<(), alexnet_model::ModelError>(())
    /// ```
    pub fn init(&self, device: &Device) -> Result<AlexNet> {
        self.validate()?;
        let classes = self.classes()?;
        let b = Builder {
            config: self,
            device,
        };
        // The post puts its only classifier dropout after fc1; the paper and torchvision
        // drop out before fc1 and before fc2.
        let dropout_before_fc1 = self.variant != Variant::Seed;
        // The paper's bias of 1 in conv2, conv4, conv5 and the hidden FC layers gives the
        // ReLUs positive inputs early on (bias_init applies it to the paper only).
        let [conv1, conv2, conv3, conv4, conv5] = conv_layers(self.variant);
        Ok(AlexNet {
            conv1: b.conv(conv1)?,
            conv2: b.conv(conv2)?,
            conv3: b.conv(conv3)?,
            conv4: b.conv(conv4)?,
            conv5: b.conv(conv5)?,
            avgpool: AdaptiveAvgPool2dConfig::new([POOLED, POOLED]).init(),
            dropout0: dropout_before_fc1.then(|| DropoutConfig::new(self.fc_dropout).init()),
            fc1: b.linear(conv5.channels[1] * POOLED * POOLED, 4096, 1.0),
            norm1: b.batch_norm(4096),
            dropout1: DropoutConfig::new(self.fc_dropout).init(),
            fc2: b.linear(4096, 4096, 1.0),
            norm2: b.batch_norm(4096),
            fc3: b.linear(4096, classes, 0.0),
            activation: Relu::new(),
            config: self.clone(),
        })
    }
}

impl AlexNet {
    /// The configuration the network was built from.
    pub fn config(&self) -> &AlexNetConfig {
        &self.config
    }

    /// Every BatchNorm layer of the network. A norm layer added to [`AlexNet`] must be
    /// listed here, or [`AlexNet::with_private_statistics`] misses it (a test checks
    /// that no running statistic escapes).
    pub fn batch_norms_mut(&mut self) -> impl Iterator<Item = &mut BatchNorm> {
        [
            &mut self.conv1,
            &mut self.conv2,
            &mut self.conv3,
            &mut self.conv4,
            &mut self.conv5,
        ]
        .into_iter()
        .filter_map(|block| block.norm.as_mut())
        .chain(self.norm1.as_mut())
        .chain(self.norm2.as_mut())
    }

    /// This network with BatchNorm running statistics of its own: its updates no longer
    /// reach the network it was cloned from. `Clone` shares them (Burn's `RunningState`
    /// is behind an `Arc`), so a replica that computes part of a batch on another device
    /// would otherwise update the model's statistics too.
    pub fn with_private_statistics(mut self) -> Self {
        for norm in self.batch_norms_mut() {
            norm.running_mean = RunningState::new(norm.running_mean.value());
            norm.running_var = RunningState::new(norm.running_var.value());
        }
        self
    }

    /// Trainable parameters, as PyTorch's `sum(p.numel() for p in model.parameters())`
    /// counts them: Burn's `num_params` also counts BatchNorm running statistics.
    pub fn num_trainable_params(&self) -> usize {
        let mut counter = TrainableCounter::default();
        self.visit(&mut counter);
        counter.total
    }

    /// Number of classes of the output.
    pub fn num_classes(&self) -> usize {
        self.fc3.weight.dims()[0]
    }

    /// Log-probabilities `[N, classes]` for images `[N, 3, H, W]` (H, W ≥ [`AlexNetConfig::min_input`]), with
    /// convolutions and matrix products computed in `dtype`: `F32`, or `F16`/`BF16` for
    /// mixed precision, where the weights stay `f32` and each is cast on the fly (a
    /// differentiable cast, so gradients reach the `f32` weights), and BatchNorm, LRN and
    /// the log-softmax run in `f32`, as PyTorch's autocast does.
    ///
    /// Dropout and BatchNorm train only when the input is on an autodiff device and the
    /// module is in training mode; use [`Module::valid`] for evaluation.
    pub fn forward(&self, images: Tensor<4>, dtype: FloatDType) -> Result<Tensor<2>> {
        let [_, channels, height, width] = images.dims();
        if channels != 3 {
            return Err(ModelError::WrongChannels(channels));
        }
        self.config.check_input(height, width)?;
        let mut x = in_dtype(images, dtype);
        for block in [
            &self.conv1,
            &self.conv2,
            &self.conv3,
            &self.conv4,
            &self.conv5,
        ] {
            x = block.forward(x, dtype);
        }
        let x = self.avgpool.forward(x);
        let mut x: Tensor<2> = x.flatten(1, 3);
        if let Some(dropout) = &self.dropout0 {
            x = native_dropout(dropout, x);
        }
        let f32 = FloatDType::F32;
        let mut x = self.activation.forward(self.fc1.forward(x, dtype));
        if let Some(norm) = &self.norm1 {
            x = in_dtype(batch_norm(norm, in_dtype(x, f32)), dtype);
        }
        let x = native_dropout(&self.dropout1, x);
        let mut x = self.activation.forward(self.fc2.forward(x, dtype));
        if let Some(norm) = &self.norm2 {
            x = in_dtype(batch_norm(norm, in_dtype(x, f32)), dtype);
        }
        Ok(log_softmax(in_dtype(self.fc3.forward(x, dtype), f32), 1))
    }
}

/// Counts float parameters except BatchNorm's running statistics (buffers, not parameters).
#[derive(Default)]
struct TrainableCounter {
    path: Vec<String>,
    total: usize,
}

impl ModuleVisitor for TrainableCounter {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let buffer = self
            .path
            .last()
            .is_some_and(|name| name == "running_mean" || name == "running_var");
        if !buffer {
            self.total += param.lazy_shape().num_elements();
        }
    }
}
