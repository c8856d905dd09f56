//! Backends other than the default: each one compiled in is checked against flex on the
//! same weights and batch.

mod common;

/// A tensor's values, row-major, on the host.
#[cfg(feature = "tch")]
fn host<const D: usize>(tensor: alexnet::burn::prelude::Tensor<D>) -> Vec<f32> {
    tensor.into_data().try_to_vec::<f32>().unwrap()
}

/// One training batch's loss, log-probabilities and convolution weight gradients on
/// flex and on libtorch, from the same weights and batch.
#[cfg(feature = "tch")]
fn compare_flex_and_libtorch(
    config: alexnet::model::AlexNetConfig,
    [batch, side]: [usize; 2],
    gradient_tolerance: f32,
) {
    use alexnet::{
        burn::{prelude::*, tensor::FloatDType},
        train::{
            device::parse_device,
            step::{GradientOptions, batch_gradients},
        },
    };
    let _serial = common::serial();
    let flex = parse_device("flex").unwrap().autodiff();
    let torch = parse_device("tch-cpu").unwrap().autodiff();
    flex.seed(11);
    let model = config.init(&flex).unwrap();
    let images = Tensor::<4>::random(
        [batch, 3, side, side],
        alexnet::burn::tensor::Distribution::Normal(0.0, 30.0),
        &flex,
    );
    let targets: Vec<i64> = (0..batch as i64).map(|i| i * 3 % 4).collect();
    let targets = Tensor::<1, Int>::from_data(targets.as_slice(), &flex);
    let on_flex = batch_gradients(
        &model,
        std::slice::from_ref(&flex),
        images.clone(),
        targets.clone(),
        &GradientOptions::new(FloatDType::F32),
    )
    .unwrap();
    let replica = model.clone().fork(&torch);
    let on_torch = batch_gradients(
        &replica,
        std::slice::from_ref(&torch),
        images.to_device(&torch),
        targets.to_device(&torch),
        &GradientOptions::new(FloatDType::F32),
    )
    .unwrap();
    assert!(
        (on_flex.loss - on_torch.loss).abs() < 1e-3,
        "{} vs {}",
        on_flex.loss,
        on_torch.loss
    );
    for (a, b) in on_flex.log_probs.iter().zip(&on_torch.log_probs) {
        assert!((a - b).abs() < 1e-3, "{a} vs {b}");
    }
    // flex differentiates the convolutions with Burn's lowering, libtorch with its own
    // `convolution_backward` (alexnet-kernels): the gradients must agree.
    let blocks = [
        &model.conv1,
        &model.conv2,
        &model.conv3,
        &model.conv4,
        &model.conv5,
    ];
    for (layer, block) in blocks.into_iter().enumerate() {
        let id = block.conv.weight.id;
        let a = host(on_flex.grads.get::<4>(id).unwrap());
        let b = host(on_torch.grads.get::<4>(id).unwrap());
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = a
            .iter()
            .zip(&b)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            scale > 0.0 && worst <= gradient_tolerance * scale,
            "conv{} weight gradient: max difference {worst}, largest value {scale}",
            layer + 1
        );
    }
}

/// The paper's network, two towers: grouped convolutions go through libtorch's native
/// backward too. No dropout, so the two backends see the same function.
#[cfg(feature = "tch")]
#[test]
fn libtorch_cpu_computes_what_flex_computes() {
    compare_flex_and_libtorch(
        alexnet::model::AlexNetConfig {
            fc_dropout: 0.0,
            ..alexnet::model::AlexNetConfig::paper(4).with_two_tower(true)
        },
        [3, 67],
        1e-3,
    );
}

/// The post's network: BatchNorm in training mode (batch statistics) goes through
/// libtorch's native BatchNorm, and through flex's own on flex. No dropout. Batch
/// statistics of few, small images amplify rounding (ReLU zeros leave channels with
/// almost no variance): with 3 images of 67 × 67, flex's native kernels and Burn's
/// lowerings on flex alone differed by 4.8 % of the largest conv4 weight gradient, with
/// 8 images of 99 × 99 by at most 0.22 %, hence this batch. With it flex and libtorch
/// agree to 0.05 % (measured); the tolerance is 0.5 %.
#[cfg(feature = "tch")]
#[test]
fn libtorch_cpu_computes_what_flex_computes_with_batch_norm() {
    compare_flex_and_libtorch(
        alexnet::model::AlexNetConfig {
            fc_dropout: 0.0,
            conv_dropout: 0.0,
            ..alexnet::model::AlexNetConfig::seed(4)
        },
        [8, 99],
        5e-3,
    );
}

#[cfg(feature = "tch")]
#[test]
fn training_runs_on_libtorch() {
    use alexnet::train::config::Precision;
    let _serial = common::serial();
    // bf16 too: the native convolutions then record bf16 graphs in libtorch's autograd.
    for precision in [Precision::F32, Precision::Bf16] {
        let run = tempfile::tempdir().unwrap();
        let mut config = common::tiny_config(run.path());
        config.train.device = "tch-cpu".into();
        config.train.precision = precision;
        config.train.epochs = 2;
        let summary = alexnet::train::trainer::train(&config, &mut |_| true).unwrap();
        for metrics in &summary.history {
            assert!(
                metrics.train_loss.is_finite() && metrics.val_loss.is_finite(),
                "{precision:?}: {metrics:?}"
            );
        }
    }
}

#[cfg(feature = "tch")]
#[test]
fn a_cuda_device_libtorch_does_not_see_is_a_one_line_error() {
    use alexnet::{
        burn::{prelude::Device, tensor::DeviceType},
        train::device::parse_devices,
    };
    // One past the last GPU libtorch sees (0 on a machine without one): an error, not a
    // panic from inside libtorch at the first tensor.
    let available = Device::enumerate(DeviceType::LibTorch).len();
    let spec = format!("tch-cuda:{available}");
    let error = parse_devices(&spec).unwrap_err().to_string();
    assert!(
        error.contains(&format!("libtorch sees {available} CUDA device")) && !error.contains('\n'),
        "{error}"
    );
}

/// Without the feature the device is refused with the feature to enable.
#[cfg(not(feature = "tch"))]
#[test]
fn libtorch_devices_name_the_missing_feature() {
    let error = alexnet::train::device::parse_devices("tch-cpu")
        .unwrap_err()
        .to_string();
    assert!(error.contains("--features tch"), "{error}");
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_devices_name_the_missing_feature() {
    let error = alexnet::train::device::parse_devices("cuda:0,cuda:1")
        .unwrap_err()
        .to_string();
    assert!(error.contains("--features cuda"), "{error}");
}
