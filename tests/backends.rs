//! Backends other than the default: each one compiled in is checked against flex on the
//! same weights and batch.

mod common;

/// A tensor's values, row-major, on the host.
fn host<const D: usize>(tensor: alexnet::burn::prelude::Tensor<D>) -> Vec<f32> {
    tensor.into_data().try_to_vec::<f32>().unwrap()
}

/// `a` and `b` agree to 1e-4, relative to `b` (absolute below 1).
fn assert_close(a: Vec<f32>, b: Vec<f32>, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: sizes differ");
    for (a, b) in a.iter().zip(&b) {
        assert!(
            (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
            "{what}: {a} vs {b}"
        );
    }
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
        train::{device::parse_device, trainer::batch_gradients},
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
    // flex differentiates the convolutions with Burn's lowering, libtorch with its own
    // `convolution_backward` (alexnet_model::native): the gradients must agree.
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

/// The native convolution against Burn's own, both on `device` (an autodiff device):
/// outputs and the gradients of input, weight and bias, over strides, padding, dilation
/// and groups, with and without an input that needs its gradient; and the weight
/// gradient alone (`native::conv2d_weight_backward`).
fn native_convolution_matches_burns(device: &str) {
    use alexnet::{
        burn::{
            backend::Dispatch,
            prelude::*,
            tensor::{
                Distribution,
                module::{conv2d, conv2d_weight_backward},
                ops::ConvOptions,
            },
        },
        model::native::{self, NativeConv},
        train::device::parse_device,
    };
    let _serial = common::serial();
    let device = parse_device(device).unwrap().autodiff();
    device.seed(5);
    let close = |a: Tensor<4>, b: Tensor<4>, what: &str| assert_close(host(a), host(b), what);
    for (groups, stride, padding, dilation, input_grad) in [
        (1, 4, 0, 1, false),
        (2, 1, 2, 1, true),
        (1, 1, 1, 1, true),
        (2, 2, 3, 2, true),
    ] {
        let random =
            |shape: [usize; 4]| Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let x = random([2, 4, 15, 15]);
        let w = random([6, 4 / groups, 3, 3]);
        let b = Tensor::<1>::random([6], Distribution::Normal(0.0, 1.0), &device);
        let options = ConvOptions::new([stride; 2], [padding; 2], [dilation; 2], groups);
        let run = |native: bool| {
            let x = if input_grad {
                x.clone().require_grad()
            } else {
                x.clone()
            };
            let (w, b) = (w.clone().require_grad(), b.clone().require_grad());
            let y = if native {
                Tensor::<4>::from_dispatch(<Dispatch as NativeConv>::native_conv2d(
                    x.clone().into_dispatch(),
                    w.clone().into_dispatch(),
                    b.clone().into_dispatch(),
                    options.clone(),
                ))
            } else {
                conv2d(x.clone(), w.clone(), Some(b.clone()), options.clone())
            };
            // A loss whose gradient differs at every output element.
            let grads = (y.clone() * y.clone()).sum().backward();
            (
                y.inner(),
                x.grad(&grads),
                w.grad(&grads).unwrap(),
                b.grad(&grads).unwrap(),
            )
        };
        let (y_native, x_native, w_native, b_native) = run(true);
        let (y_burn, x_burn, w_burn, b_burn) = run(false);
        close(y_native.clone(), y_burn, "output");
        close(w_native, w_burn, "weight gradient");
        close(b_native.unsqueeze(), b_burn.unsqueeze(), "bias gradient");
        match (x_native, x_burn) {
            (Some(native), Some(burn)) => close(native, burn, "input gradient"),
            (None, None) => assert!(!input_grad),
            (native, burn) => panic!(
                "input gradient: native {:?}, Burn {:?}",
                native.is_some(),
                burn.is_some()
            ),
        }
        // The weight gradient alone, for an output gradient that is a strided view.
        let (x, w) = (x.inner(), w.inner());
        let output_grad = y_native.swap_dims(2, 3).sin().swap_dims(2, 3);
        close(
            native::conv2d_weight_backward(
                x.clone(),
                w.clone(),
                output_grad.clone(),
                options.clone(),
            ),
            conv2d_weight_backward(x, w, output_grad, options.clone()),
            "weight gradient alone",
        );
    }
}

#[test]
fn flex_native_convolution_matches_burns() {
    native_convolution_matches_burns("flex");
}

#[cfg(feature = "tch")]
#[test]
fn libtorch_native_convolution_matches_burns() {
    native_convolution_matches_burns("tch-cpu");
}

/// Native BatchNorm against Burn's own, both on `device` (an autodiff device): output,
/// the gradients of input, gamma and beta, and the running statistics, for convolution
/// (`[N, C, H, W]`, also as a strided view) and fully connected (`[N, C]`) activations.
fn native_batch_norm_matches_burns(device: &str) {
    use alexnet::{
        burn::{nn::BatchNormConfig, prelude::*, tensor::Distribution},
        model::native,
        train::device::parse_device,
    };
    let _serial = common::serial();
    let device = parse_device(device).unwrap().autodiff();
    device.seed(8);
    fn check<const D: usize>(x: Tensor<D>, device: &Device) {
        let shape = x.dims();
        let channels = shape[1];
        let mut norm = BatchNormConfig::new(channels).init(device);
        // Non-trivial gamma and beta, so that their gradients and uses are checked.
        let gamma = Tensor::<1>::random([channels], Distribution::Normal(1.0, 0.5), device);
        let beta = Tensor::<1>::random([channels], Distribution::Normal(0.0, 0.5), device);
        norm.gamma = norm.gamma.map(|_| gamma.require_grad());
        norm.beta = norm.beta.map(|_| beta.require_grad());
        let burns = norm.clone();
        let weights = Tensor::<D>::random(shape, Distribution::Normal(0.0, 1.0), device);
        let run = |norm: &alexnet::burn::nn::BatchNorm, native: bool| {
            let x = x.clone().require_grad();
            let y = if native {
                native::batch_norm(norm, x.clone())
            } else {
                norm.forward(x.clone())
            };
            let grads = (y.clone() * weights.clone()).sum().backward();
            (
                host(y.inner()),
                host(x.grad(&grads).unwrap()),
                host(norm.gamma.val().grad(&grads).unwrap()),
                host(norm.beta.val().grad(&grads).unwrap()),
            )
        };
        let native_run = run(&norm, true);
        let burn_run = run(&burns, false);
        assert_close(native_run.0, burn_run.0, "output");
        assert_close(native_run.1, burn_run.1, "input gradient");
        assert_close(native_run.2, burn_run.2, "gamma gradient");
        assert_close(native_run.3, burn_run.3, "beta gradient");
        assert_close(
            host(norm.running_mean.value()),
            host(burns.running_mean.value()),
            "running mean",
        );
        assert_close(
            host(norm.running_var.value()),
            host(burns.running_var.value()),
            "running variance",
        );
    }
    let random =
        |shape: [usize; 4]| Tensor::<4>::random(shape, Distribution::Normal(1.0, 3.0), &device);
    check(random([4, 6, 5, 5]), &device);
    check(random([6, 4, 9, 9]).swap_dims(0, 1), &device);
    check(
        Tensor::<2>::random([8, 6], Distribution::Normal(1.0, 3.0), &device),
        &device,
    );
}

#[test]
fn flex_native_batch_norm_matches_burns() {
    native_batch_norm_matches_burns("flex");
}

#[cfg(feature = "tch")]
#[test]
fn libtorch_native_batch_norm_matches_burns() {
    native_batch_norm_matches_burns("tch-cpu");
}

/// flex's native max pool against Burn's own on flex: output and input gradient, for
/// AlexNet's pool, padding, dilation and a stride below the kernel, on input with ties
/// (both pick the first maximum of a window).
#[test]
fn flex_native_max_pool_matches_burns() {
    use alexnet::{
        burn::{
            nn::{PaddingConfig2d, pool::MaxPool2dConfig},
            prelude::*,
            tensor::Distribution,
        },
        model::native,
        train::device::parse_device,
    };
    let _serial = common::serial();
    let device = parse_device("flex").unwrap().autodiff();
    device.seed(3);
    for (kernel, stride, padding, dilation) in
        [(3, 2, 0, 1), (3, 1, 1, 1), (2, 2, 1, 2), (3, 3, 0, 1)]
    {
        let pool = MaxPool2dConfig::new([kernel; 2])
            .with_strides([stride; 2])
            .with_padding(PaddingConfig2d::Explicit(
                padding, padding, padding, padding,
            ))
            .with_dilation([dilation; 2])
            .init();
        // Small integers: many windows hold their maximum twice.
        let x =
            Tensor::<4>::random([2, 3, 13, 11], Distribution::Uniform(-3.0, 3.0), &device).round();
        let run = |native: bool| {
            let x = x.clone().require_grad();
            let y = if native {
                native::max_pool2d(&pool, x.clone())
            } else {
                pool.forward(x.clone())
            };
            let weights = Tensor::<4>::random(y.dims(), Distribution::Normal(0.0, 1.0), &device);
            let grads = (y.clone() * weights).sum().backward();
            (host(y.inner()), host(x.grad(&grads).unwrap()))
        };
        device.seed(4);
        let (y_native, grad_native) = run(true);
        device.seed(4);
        let (y_burn, grad_burn) = run(false);
        let what =
            format!("kernel {kernel}, stride {stride}, padding {padding}, dilation {dilation}");
        assert_close(y_native, y_burn, &format!("output, {what}"));
        assert_close(grad_native, grad_burn, &format!("input gradient, {what}"));
    }
}

/// The SGD step libtorch runs in place (alexnet_train::sgd) against the same optimizer's
/// tensor-op path on flex, over four steps with and without Nesterov momentum.
#[cfg(feature = "tch")]
#[test]
fn libtorch_in_place_sgd_steps_as_on_flex() {
    use alexnet::{
        burn::{
            module::{Module, Param},
            optim::{GradientsParams, ModuleOptimizer},
            prelude::*,
            tensor::Distribution,
        },
        model::Dense,
        train::{device::parse_device, sgd::Sgd},
    };
    let _serial = common::serial();
    let flex = parse_device("flex").unwrap().autodiff();
    let torch = parse_device("tch-cpu").unwrap().autodiff();
    flex.seed(9);
    let normal = Distribution::Normal(0.0, 1.0);
    let model = Dense {
        weight: Param::from_tensor(Tensor::random([16, 8], normal, &flex)),
        bias: Param::from_tensor(Tensor::random([16], normal, &flex)),
    };
    let x = Tensor::<2>::random([6, 8], normal, &flex);
    for sgd in [
        Sgd::new(0.9, 0.0, true, 5e-4),
        Sgd::new(0.9, 0.1, false, 0.0),
    ] {
        let run = |device: &Device| {
            let mut optim = ModuleOptimizer::from(sgd);
            let mut model = model.clone().fork(device);
            let x = x.clone().to_device(device);
            for _ in 0..4 {
                let loss = model.forward(x.clone()).powf_scalar(2.0).sum();
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(0.05, model, grads);
            }
            (host(model.weight.val()), host(model.bias.val()))
        };
        let (on_flex, on_torch) = (run(&flex), run(&torch));
        assert_close(on_torch.0, on_flex.0, "weight");
        assert_close(on_torch.1, on_flex.1, "bias");
    }
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
