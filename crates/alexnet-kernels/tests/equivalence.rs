//! Each native operation against Burn's own on the same device: outputs and gradients
//! agree to 1e-4 (flex always; libtorch with the `tch` feature).

#![cfg(feature = "flex")]

use burn::prelude::*;
use std::sync::{Mutex, MutexGuard};

/// One test at a time: `set_enabled` and the devices' seeds are process-wide.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// libtorch on the CPU.
#[cfg(feature = "tch")]
fn libtorch_cpu() -> Device {
    #[allow(deprecated)]
    Device::libtorch()
}

/// A tensor's values, row-major, on the host.
fn host<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
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

/// The native convolution against Burn's own, both on `device` (an autodiff device):
/// outputs and the gradients of input, weight and bias, over strides, padding, dilation
/// and groups, with and without an input that needs its gradient; and the weight and
/// input gradients alone (`native::conv2d_weight_backward`, `native::conv2d_x_backward`).
fn native_convolution_matches_burns(device: Device) {
    use alexnet_kernels::{self as native, NativeConv};
    use burn::{
        backend::Dispatch,
        prelude::*,
        tensor::{
            Distribution,
            module::{conv2d, conv2d_weight_backward},
            ops::ConvOptions,
        },
    };
    let _serial = serial();
    let device = device.autodiff();
    device.seed(5);
    let close = |a: Tensor<4>, b: Tensor<4>, what: &str| assert_close(host(a), host(b), what);
    // The last case has enough input channels for flex's native input gradient.
    for (channels_in, side, groups, stride, padding, dilation, input_grad) in [
        (4, 15, 1, 4, 0, 1, false),
        (4, 15, 2, 1, 2, 1, true),
        (4, 15, 1, 1, 1, 1, true),
        (4, 15, 2, 2, 3, 2, true),
        (256, 6, 1, 1, 1, 1, true),
    ] {
        let random =
            |shape: [usize; 4]| Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let x = random([2, channels_in, side, side]);
        // At a fan-in initialisation's scale, so that outputs and gradients stay of
        // order one and `assert_close`'s bound holds at 256 input channels too.
        let fan_in = (channels_in / groups * 9) as f32;
        let w = random([6, channels_in / groups, 3, 3]) / fan_in.sqrt();
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
            (Some(native), Some(burn)) => {
                close(native, burn.clone(), "input gradient");
                // The input gradient alone, for the loss's output gradient 2y.
                let alone = native::conv2d_x_backward(
                    x.clone().inner(),
                    w.clone().inner(),
                    y_native.clone() * 2.0,
                    options.clone(),
                );
                close(alone, burn, "input gradient alone");
            }
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
    native_convolution_matches_burns(Device::flex());
}

#[cfg(feature = "tch")]
#[test]
fn libtorch_native_convolution_matches_burns() {
    native_convolution_matches_burns(libtorch_cpu());
}

/// Native BatchNorm against Burn's own, both on `device` (an autodiff device): output,
/// the gradients of input, gamma and beta, and the running statistics, for convolution
/// (`[N, C, H, W]`, also as a strided view) and fully connected (`[N, C]`) activations.
fn native_batch_norm_matches_burns(device: Device) {
    use alexnet_kernels as native;
    use burn::{nn::BatchNormConfig, prelude::*, tensor::Distribution};
    let _serial = serial();
    let device = device.autodiff();
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
        let run = |norm: &burn::nn::BatchNorm, native: bool| {
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
    native_batch_norm_matches_burns(Device::flex());
}

#[cfg(feature = "tch")]
#[test]
fn libtorch_native_batch_norm_matches_burns() {
    native_batch_norm_matches_burns(libtorch_cpu());
}

/// flex's native max pool against Burn's own on flex: output and input gradient, for
/// AlexNet's pool, padding, dilation and a stride below the kernel, on input with ties
/// (both pick the first maximum of a window).
#[test]
fn flex_native_max_pool_matches_burns() {
    use alexnet_kernels as native;
    use burn::{
        nn::{PaddingConfig2d, pool::MaxPool2dConfig},
        prelude::*,
        tensor::Distribution,
    };
    let _serial = serial();
    let device = Device::flex().autodiff();
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

/// Native dropout on flex: the output is the input times 0 or `1 / (1 - p)`, kept in
/// about `1 - p` of the elements, the input gradient is the output gradient times the same
/// factors, the same seed gives the same mask and the next call a new one; in evaluation
/// mode it is the identity.
#[test]
fn flex_native_dropout_keeps_its_mask_for_the_gradient() {
    use alexnet_kernels as native;
    use burn::{nn::DropoutConfig, tensor::Distribution};
    let _serial = serial();
    let device = Device::flex().autodiff();
    let layer = DropoutConfig::new(0.25).init();
    let x = Tensor::<4>::random([4, 8, 16, 16], Distribution::Uniform(1.0, 2.0), &device);
    let run = || {
        let x = x.clone().require_grad();
        let y = native::dropout(&layer, x.clone());
        let weights = Tensor::<4>::random(y.dims(), Distribution::Normal(0.0, 1.0), &device);
        let grads = (y.clone() * weights.clone()).sum().backward();
        (
            host(y.inner()),
            host(x.grad(&grads).unwrap()),
            host(weights.inner()),
        )
    };
    device.seed(5);
    let (y, grad, weights) = run();
    let x_host = host(x.clone().inner());
    let mut kept = 0;
    for (((y, grad), weight), x) in y.iter().zip(&grad).zip(&weights).zip(&x_host) {
        let factor = y / x;
        assert!(
            factor == 0.0 || (factor - 4.0 / 3.0).abs() < 1e-6,
            "factor {factor}"
        );
        assert!(
            (grad - weight * factor).abs() <= 1e-6 * (1.0 + grad.abs()),
            "{grad} vs {weight} x {factor}"
        );
        kept += usize::from(factor != 0.0);
    }
    // 8,192 elements: the kept share's standard deviation is 0.005.
    let share = kept as f64 / y.len() as f64;
    assert!((share - 0.75).abs() < 0.05, "kept {share}");
    let (again, _, _) = run();
    assert_ne!(again, y, "the next call draws a new mask");
    device.seed(5);
    assert_eq!(run().0, y, "the same seed gives the same mask");
    let mut eval = layer.clone();
    eval.training = eval.training.with_value(false);
    assert_eq!(host(native::dropout(&eval, x.clone()).inner()), x_host);
}

/// The SGD step libtorch runs in place against the same step in Burn's tensor ops on
/// flex, over four steps with and without Nesterov momentum and dampening.
#[cfg(feature = "tch")]
#[test]
fn libtorch_in_place_sgd_steps_as_on_flex() {
    use alexnet_kernels::{SgdParams, sgd_step};
    use burn::tensor::Distribution;
    let _serial = serial();
    let flex = Device::flex();
    flex.seed(9);
    let normal = Distribution::Normal(0.0, 1.0);
    let param = Tensor::<2>::random([16, 8], normal, &flex);
    let grads: Vec<Tensor<2>> = (0..4)
        .map(|_| Tensor::random([16, 8], normal, &flex))
        .collect();
    for sgd in [
        SgdParams {
            momentum: 0.9,
            dampening: 0.0,
            nesterov: true,
            weight_decay: 5e-4,
        },
        SgdParams {
            momentum: 0.9,
            dampening: 0.1,
            nesterov: false,
            weight_decay: 0.0,
        },
    ] {
        let run = |device: &Device| {
            let mut param = param.clone().to_device(device);
            let mut velocity = None;
            for grad in &grads {
                (param, velocity) =
                    sgd_step(&sgd, 0.05, param, grad.clone().to_device(device), velocity);
            }
            (
                host(param),
                host(velocity.expect("momentum keeps a velocity")),
            )
        };
        let (on_flex, on_torch) = (run(&flex), run(&libtorch_cpu()));
        assert_close(on_torch.0, on_flex.0, "parameter");
        assert_close(on_torch.1, on_flex.1, "velocity");
    }
}
