//! Backends other than the default: each one compiled in is checked against flex on the
//! same weights and batch.

mod common;

#[cfg(feature = "tch")]
#[test]
fn libtorch_cpu_computes_what_flex_computes() {
    use alexnet::{
        burn::{prelude::*, tensor::FloatDType},
        model::AlexNetConfig,
        train::{device::parse_device, trainer::batch_gradients},
    };
    let _serial = common::serial();
    let flex = parse_device("flex").unwrap().autodiff();
    let torch = parse_device("tch-cpu").unwrap().autodiff();
    flex.seed(11);
    // No BatchNorm running state and no dropout: the two backends see the same function.
    let config = AlexNetConfig {
        fc_dropout: 0.0,
        ..AlexNetConfig::paper(4)
    };
    let model = config.init(&flex).unwrap();
    let images = Tensor::<4>::random(
        [3, 3, 67, 67],
        alexnet::burn::tensor::Distribution::Normal(0.0, 30.0),
        &flex,
    );
    let targets = Tensor::<1, Int>::from_data([0, 3, 1], &flex);
    let on_flex = batch_gradients(
        &model,
        std::slice::from_ref(&flex),
        images.clone(),
        targets.clone(),
        FloatDType::F32,
        1.0,
        false,
    )
    .unwrap();
    let replica = model.clone().fork(&torch);
    let on_torch = batch_gradients(
        &replica,
        std::slice::from_ref(&torch),
        images.to_device(&torch),
        targets.to_device(&torch),
        FloatDType::F32,
        1.0,
        false,
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
}

#[cfg(feature = "tch")]
#[test]
fn training_runs_on_libtorch() {
    let _serial = common::serial();
    let run = tempfile::tempdir().unwrap();
    let mut config = common::tiny_config(run.path());
    config.train.device = "tch-cpu".into();
    config.train.epochs = 2;
    let summary = alexnet::train::trainer::train(&config, &mut |_| true).unwrap();
    assert!(summary.history.iter().all(|m| m.train_loss.is_finite()));
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
