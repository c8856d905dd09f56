//! Tests of the network against the original's facts (ORIGINAL-IMPLEMENTATION.md).

use alexnet_model::{AlexNet, AlexNetConfig, LrnConfig, ModelError, Variant};
use burn::{module::Module, prelude::*, tensor::FloatDType};

fn device() -> Device {
    let device = Device::flex();
    device.seed(7);
    device
}

fn images(n: usize, side: usize, device: &Device) -> Tensor<4> {
    Tensor::random(
        [n, 3, side, side],
        burn::tensor::Distribution::Normal(0.0, 50.0),
        device,
    )
}

fn values(tensor: Tensor<2>) -> Vec<f32> {
    tensor.try_to_vec_as::<f32>().unwrap()
}

/// The output shape of the summary's layer `name`.
fn output_of(summary: &alexnet_model::ModelSummary, name: &str) -> Vec<usize> {
    summary
        .layers
        .iter()
        .find(|l| l.name == name)
        .unwrap()
        .output
        .clone()
}

#[test]
fn parameter_counts_match_pytorch() {
    let device = device();
    for (classes, expected) in [(256, 59_349_312), (257, 59_353_409), (10, 58_341_450)] {
        let config = AlexNetConfig::seed(classes);
        assert_eq!(config.summary(227, 227).unwrap().total_params(), expected);
        // Burn's own count includes the 19,136 BatchNorm running statistics.
        assert_eq!(
            config.init(&device).unwrap().num_params(),
            expected + 19_136
        );
        assert_eq!(
            config.init(&device).unwrap().num_trainable_params(),
            expected,
            "{classes} classes"
        );
    }
    // The paper's network: no BatchNorm (19,136 fewer); two towers halve conv2/4/5's weights.
    assert_eq!(
        AlexNetConfig::paper(256)
            .init(&device)
            .unwrap()
            .num_trainable_params(),
        59_330_176
    );
    assert_eq!(
        AlexNetConfig::paper(1000)
            .summary(227, 227)
            .unwrap()
            .total_params(),
        62_378_344
    );
    let towers = AlexNetConfig::paper(256).with_two_tower(true);
    assert_eq!(towers.summary(227, 227).unwrap().total_params(), 57_917_056);
    assert_eq!(
        towers.init(&device).unwrap().num_trainable_params(),
        57_917_056
    );
}

#[test]
fn summary_shapes_follow_the_code_not_the_post() {
    let summary = AlexNetConfig::seed(256).summary(227, 227).unwrap();
    let shape = |name: &str| output_of(&summary, name);
    assert_eq!(shape("conv1.conv"), vec![96, 55, 55]);
    assert_eq!(shape("conv1.pool"), vec![96, 27, 27]);
    assert_eq!(shape("conv2.pool"), vec![256, 13, 13]);
    assert_eq!(shape("conv5.pool"), vec![256, 6, 6]);
    assert_eq!(shape("flatten"), vec![9216]);
    let text = summary.to_string();
    assert!(text.contains("trainable parameters: 59349312"), "{text}");
    assert!(text.contains("BatchNorm1d"));
    let paper = AlexNetConfig::paper(10)
        .summary(227, 227)
        .unwrap()
        .to_string();
    assert!(
        paper.contains("LocalResponseNorm") && !paper.contains("BatchNorm"),
        "{paper}"
    );
}

#[test]
fn output_is_classes_wide_for_any_input_from_67() {
    let device = device();
    let model = AlexNetConfig::seed(5).init(&device).unwrap().valid();
    for side in [227, 224, 67] {
        let out = model
            .forward(images(2, side, &device), FloatDType::F32)
            .unwrap();
        assert_eq!(out.dims(), [2, 5], "input {side}");
    }
    let error = model
        .forward(images(1, 66, &device), FloatDType::F32)
        .unwrap_err();
    assert!(matches!(error, ModelError::InputTooSmall { min: 67, .. }));
    assert!(error.to_string().contains("67x67"), "{error}");
    let wrong = model
        .forward(Tensor::zeros([1, 1, 80, 80], &device), FloatDType::F32)
        .unwrap_err();
    assert!(matches!(wrong, ModelError::WrongChannels(1)));
}

#[test]
fn torchvision_variant_is_torchvisions_alexnet() {
    let device = device();
    // torchvision.models.alexnet(): 61,100,840 parameters; 57,044,810 with 10 classes.
    for (classes, expected) in [(1000, 61_100_840), (10, 57_044_810)] {
        let config = AlexNetConfig::torchvision(classes);
        assert_eq!(config.summary(224, 224).unwrap().total_params(), expected);
        assert_eq!(
            config.init(&device).unwrap().num_trainable_params(),
            expected
        );
    }
    let config = AlexNetConfig::torchvision(5);
    let summary = config.summary(224, 224).unwrap();
    let shape = |name: &str| output_of(&summary, name);
    assert_eq!(shape("conv1.conv"), vec![64, 55, 55]);
    assert_eq!(shape("conv2.pool"), vec![192, 13, 13]);
    assert_eq!(shape("conv5.pool"), vec![256, 6, 6]);
    assert!(summary.layers.iter().all(|l| !l.kind.contains("BatchNorm")));
    // conv1's padding of 2 lets 63 through (15 → 7 → 3 → 1), where the 2012 network needs 67.
    assert_eq!(config.min_input(), 63);
    assert_eq!(AlexNetConfig::seed(5).min_input(), 67);
    let model = config.init(&device).unwrap().valid();
    for side in [224, 63] {
        let out = model
            .forward(images(1, side, &device), FloatDType::F32)
            .unwrap();
        assert_eq!(out.dims(), [1, 5], "input {side}");
    }
    let error = model
        .forward(images(1, 62, &device), FloatDType::F32)
        .unwrap_err();
    assert!(
        matches!(error, ModelError::InputTooSmall { min: 63, .. }),
        "{error}"
    );
    assert_eq!(
        toml::from_str::<AlexNetConfig>("variant = \"torchvision\"")
            .unwrap()
            .variant,
        Variant::Torchvision
    );
}

#[test]
fn outputs_are_log_probabilities() {
    let device = device();
    for config in [AlexNetConfig::seed(7), AlexNetConfig::paper(7)] {
        let model = config.init(&device).unwrap().valid();
        let out = values(
            model
                .forward(images(3, 80, &device), FloatDType::F32)
                .unwrap()
                .exp()
                .sum_dim(1),
        );
        for total in out {
            assert!((total - 1.0).abs() < 1e-4, "{total}");
        }
    }
}

#[test]
fn evaluation_is_deterministic_and_dropout_only_trains() {
    let device = device();
    let train_device = device.clone().autodiff();
    let model = AlexNetConfig::seed(4).init(&train_device).unwrap();
    let x = images(4, 67, &train_device);
    // Training mode on an autodiff device: dropout draws a new mask each time.
    let a = values(model.forward(x.clone(), FloatDType::F32).unwrap());
    let b = values(model.forward(x.clone(), FloatDType::F32).unwrap());
    assert_ne!(a, b);
    // Evaluation: the same input gives the same output.
    let eval = model.valid();
    let x = x.inner();
    let c = values(eval.forward(x.clone(), FloatDType::F32).unwrap());
    let d = values(eval.forward(x, FloatDType::F32).unwrap());
    assert_eq!(c, d);
}

fn std_of(tensor: Tensor<1>) -> f64 {
    let data = tensor.try_to_vec_as::<f32>().unwrap();
    let n = data.len() as f64;
    let mean = data.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    (data
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt()
}

fn flat<const D: usize>(tensor: Tensor<D>) -> Tensor<1> {
    let n = tensor.shape().num_elements();
    tensor.reshape([n])
}

fn all_equal(tensor: Tensor<1>, value: f32) -> bool {
    tensor
        .try_to_vec_as::<f32>()
        .unwrap()
        .iter()
        .all(|&v| v == value)
}

#[test]
fn seed_initialisation_is_xavier_normal_with_zero_biases() {
    let device = device();
    let model: AlexNet = AlexNetConfig::seed(256).init(&device).unwrap();
    let conv1_expected = (2.0f64 / (3.0 * 121.0 + 96.0 * 121.0)).sqrt();
    let conv1 = std_of(flat(model.conv1.conv.weight.val()));
    assert!(
        (conv1 / conv1_expected - 1.0).abs() < 0.05,
        "conv1 std {conv1} vs {conv1_expected}"
    );
    let fc1_expected = (2.0f64 / (9216.0 + 4096.0)).sqrt();
    let fc1 = std_of(flat(model.fc1.weight.val()));
    assert!(
        (fc1 / fc1_expected - 1.0).abs() < 0.05,
        "fc1 std {fc1} vs {fc1_expected}"
    );
    for block in [
        &model.conv1,
        &model.conv2,
        &model.conv3,
        &model.conv4,
        &model.conv5,
    ] {
        assert!(all_equal(block.conv.bias.as_ref().unwrap().val(), 0.0));
        let norm = block.norm.as_ref().unwrap();
        assert!(all_equal(norm.gamma.val(), 1.0) && all_equal(norm.beta.val(), 0.0));
    }
    for linear in [&model.fc1, &model.fc2, &model.fc3] {
        assert!(all_equal(linear.bias.val(), 0.0));
    }
}

#[test]
fn paper_initialisation_follows_the_paper() {
    let device = device();
    let model = AlexNetConfig::paper(10).init(&device).unwrap();
    let std = std_of(flat(model.conv3.conv.weight.val()));
    assert!((std / 0.01 - 1.0).abs() < 0.05, "{std}");
    let bias = |block: &alexnet_model::ConvBlock| block.conv.bias.as_ref().unwrap().val();
    assert!(all_equal(bias(&model.conv1), 0.0) && all_equal(bias(&model.conv3), 0.0));
    assert!(
        all_equal(bias(&model.conv2), 1.0)
            && all_equal(bias(&model.conv4), 1.0)
            && all_equal(bias(&model.conv5), 1.0)
    );
    assert!(all_equal(model.fc1.bias.val(), 1.0));
    assert!(all_equal(model.fc2.bias.val(), 1.0));
    assert!(all_equal(model.fc3.bias.val(), 0.0));
    assert!(model.conv1.norm.is_none() && model.conv1.lrn.is_some() && model.conv3.lrn.is_none());
    assert!(model.dropout0.is_some() && model.norm1.is_none());
}

#[test]
fn forward_backward_smoke_test() {
    let device = device().autodiff();
    for config in [
        AlexNetConfig::seed(3),
        AlexNetConfig::paper(3).with_two_tower(true),
    ] {
        let model = config.init(&device).unwrap();
        let out = model
            .forward(images(2, 67, &device), FloatDType::F32)
            .unwrap();
        let targets = Tensor::<1, Int>::from_data([0, 2], &device);
        let loss = out.gather(1, targets.reshape([2, 1])).mean().neg();
        let grads = loss.backward();
        let grad = model
            .conv1
            .conv
            .weight
            .grad(&grads)
            .expect("conv1 has a gradient");
        let g = grad.try_to_vec_as::<f32>().unwrap();
        assert!(g.iter().all(|v| v.is_finite()) && g.iter().any(|&v| v != 0.0));
        assert!(model.fc3.weight.grad(&grads).is_some());
    }
}

#[test]
fn save_load_round_trip_is_bit_identical() {
    let device = device();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.bpk");
    let config = AlexNetConfig::seed(6);
    let model = config.init(&device).unwrap();
    model.save(&path).unwrap();
    let loaded = config.load(&path, &device).unwrap();
    let x = images(2, 70, &device);
    assert_eq!(
        values(model.valid().forward(x.clone(), FloatDType::F32).unwrap()),
        values(loaded.valid().forward(x, FloatDType::F32).unwrap())
    );
    // Weights for another number of classes are an error, not a panic.
    let error = AlexNetConfig::seed(7).load(&path, &device).unwrap_err();
    assert!(matches!(error, ModelError::Record { .. }), "{error}");
    let missing = config
        .load(&dir.path().join("none.bpk"), &device)
        .unwrap_err();
    assert!(missing.to_string().contains("none.bpk"), "{missing}");
}

#[test]
fn invalid_configs_name_the_field() {
    let device = device();
    let cases = [
        (
            AlexNetConfig {
                conv_dropout: 1.0,
                ..AlexNetConfig::seed(3)
            },
            "model.conv_dropout",
        ),
        (
            AlexNetConfig::seed(3).with_two_tower(true),
            "model.two_tower",
        ),
        (
            AlexNetConfig {
                num_classes: Some(1),
                ..AlexNetConfig::seed(3)
            },
            "model.num_classes",
        ),
        (
            AlexNetConfig {
                num_classes: None,
                ..AlexNetConfig::seed(3)
            },
            "model.num_classes",
        ),
        (
            AlexNetConfig {
                lrn: LrnConfig {
                    size: 0,
                    ..LrnConfig::default()
                },
                ..AlexNetConfig::paper(3)
            },
            "model.lrn.size",
        ),
    ];
    for (config, field) in cases {
        let error = config.init(&device).unwrap_err().to_string();
        assert!(error.contains(field), "{error}");
    }
    let error = toml::from_str::<AlexNetConfig>("variant = \"vgg\"")
        .unwrap_err()
        .to_string();
    assert!(error.contains("vgg"), "{error}");
    let parsed: AlexNetConfig = toml::from_str("variant = \"paper\"\ntwo_tower = true").unwrap();
    assert_eq!(parsed.variant, Variant::Paper);
}

/// Expected values from PyTorch 2.9:
/// `torch.nn.LocalResponseNorm(5, alpha=a*5, beta=0.75, k=2)(x)` with
/// `x = torch.arange(28.).reshape(1, 7, 2, 2) / 3 - 4`.
#[test]
fn local_response_norm_matches_pytorch() {
    let device = device();
    let x = Tensor::<1, Int>::arange(0..28, &device)
        .float()
        .div_scalar(3.0)
        .sub_scalar(4.0)
        .reshape([1, 7, 2, 2]);
    let strong = LrnConfig {
        alpha: 0.1,
        ..LrnConfig::default()
    }
    .init()
    .unwrap();
    let out = strong.forward(x.clone()).try_to_vec_as::<f32>().unwrap();
    let expected = EXPECTED_STRONG;
    for (i, (got, want)) in out.iter().zip(expected).enumerate() {
        assert!((got - want).abs() < 1e-5, "element {i}: {got} vs {want}");
    }
    // And against the paper's formula computed here, with the paper's defaults.
    let paper = LrnConfig::default();
    let out = paper
        .init()
        .unwrap()
        .forward(x.clone())
        .try_to_vec_as::<f32>()
        .unwrap();
    let input = x.try_to_vec_as::<f32>().unwrap();
    for c in 0..7usize {
        for p in 0..4 {
            let sum: f64 = (c.saturating_sub(2)..=(c + 2).min(6))
                .map(|j| f64::from(input[j * 4 + p]).powi(2))
                .sum();
            let want = f64::from(input[c * 4 + p]) / (paper.k + paper.alpha * sum).powf(paper.beta);
            assert!((f64::from(out[c * 4 + p]) - want).abs() < 1e-5);
        }
    }
}

const EXPECTED_STRONG: [f32; 28] = [
    -1.297047, -1.29907, -1.287354, -1.257163, -0.864698, -0.824958, -0.76525, -0.682436,
    -0.419937, -0.336191, -0.235702, -0.121674, 0.0, 0.121674, 0.235702, 0.336191, 0.419937,
    0.486341, 0.536673, 0.573181, 0.864698, 0.888341, 0.89965, 0.901869, 1.297047, 1.285273,
    1.266882, 1.244231,
];

#[test]
fn reduced_precision_forward_keeps_f32_weights_and_gradients() {
    use burn::tensor::{DType, FloatDType};
    let device = device().autodiff();
    // Training mode without dropout: BatchNorm normalizes with batch statistics, so
    // activations stay in a range where the formats' precision is what is measured.
    let config = AlexNetConfig {
        conv_dropout: 0.0,
        fc_dropout: 0.0,
        ..AlexNetConfig::seed(4)
    };
    let model = config.init(&device).unwrap();
    let x = images(4, 67, &device).div_scalar(50.0);
    let reference = values(model.forward(x.clone(), FloatDType::F32).unwrap());
    for dtype in [FloatDType::F16, FloatDType::BF16] {
        let out = model.forward(x.clone(), dtype).unwrap();
        assert_eq!(
            out.dtype(),
            DType::F32,
            "log-probabilities come back in f32"
        );
        let got = values(out.clone());
        let differences: Vec<f32> = got
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .collect();
        let worst = differences.iter().copied().fold(0.0f32, f32::max);
        let mean = differences.iter().sum::<f32>() / differences.len() as f32;
        eprintln!("{dtype:?}: log-probability difference to f32: max {worst}, mean {mean}");
        // f16 keeps ~3 significant digits and bf16 ~2, and Burn's CPU backend sums
        // half-precision products in half precision (fc1 sums 9216 of them, in an order
        // that depends on thread scheduling), so single outputs can be far off; the mean
        // is stable. Measured: f16 mean ~0.03, max 0.07–0.12; bf16 mean ~0.15, max
        // 0.3–0.6. A broken cast gives errors of several units, or NaN.
        let (mean_bound, max_bound) = if dtype == FloatDType::F16 {
            (0.1, 0.5)
        } else {
            (0.4, 1.5)
        };
        assert!(
            mean < mean_bound && worst < max_bound,
            "{dtype:?}: difference to f32: max {worst}, mean {mean}"
        );
        assert!(
            worst > 0.0,
            "{dtype:?}: identical to f32, so nothing ran in reduced precision"
        );
        let grads = out.mean().neg().backward();
        let grad = model
            .conv1
            .conv
            .weight
            .grad(&grads)
            .expect("gradient reaches the f32 weight");
        assert_eq!(grad.dtype(), DType::F32);
        assert!(
            grad.try_to_vec_as::<f32>()
                .unwrap()
                .iter()
                .all(|v| v.is_finite())
        );
    }
}
