//! `bench conv`: the post's five convolutions alone, Burn's weight and input gradients
//! against the native ones, each pass also in GFLOP/s.

use std::time::Instant;

use alexnet::burn::{
    prelude::*,
    tensor::{
        Distribution,
        module::{conv_transpose2d, conv2d, conv2d_weight_backward},
        ops::{ConvOptions, ConvTransposeOptions},
    },
};
use anyhow::{Context, Result};

use crate::{ConvArgs, median};
use alexnet::train::device::parse_devices;

/// Burn's weight gradient for each of the post's convolutions, next to the forward pass
/// and, where the device has one, the native weight gradient (checked against Burn's).
/// `RESULT` is images/s through the five weight gradients together: the native ones
/// where the device has them, otherwise Burn's.
pub fn bench_conv(args: ConvArgs, reps: usize) -> Result<()> {
    // (in, out, kernel, stride, padding, input side), as docs/repro/conv_weight_grad.py.
    const LAYERS: [(usize, usize, usize, usize, usize, usize); 5] = [
        (3, 96, 11, 4, 0, 227),
        (96, 256, 5, 1, 2, 27),
        (256, 384, 3, 1, 1, 13),
        (384, 384, 3, 1, 1, 13),
        (384, 256, 3, 1, 1, 13),
    ];
    let device = parse_devices(&args.device)?
        .into_iter()
        .next()
        .context("--device names no device")?;
    let n = args.batch_size;
    let median_ms = |job: &dyn Fn() -> f32| {
        job();
        median(
            (0..reps)
                .map(|_| {
                    let started = Instant::now();
                    std::hint::black_box(job());
                    started.elapsed().as_secs_f64() * 1e3
                })
                .collect(),
        )
    };
    let native = alexnet::kernels::backend(&device).is_some();
    let (mut burn_total, mut native_total) = (0.0, 0.0);
    for (cin, cout, k, stride, padding, side) in LAYERS {
        let normal = Distribution::Normal(0.0, 1.0);
        let x = Tensor::<4>::random([n, cin, side, side], normal, &device);
        let weight = Tensor::<4>::random([cout, cin, k, k], normal, &device);
        let options = ConvOptions::new([stride; 2], [padding; 2], [1, 1], 1);
        let output = conv2d(x.clone(), weight.clone(), None, options.clone());
        let output_grad = Tensor::<4>::random(output.dims(), normal, &device);
        // Forward, weight gradient and input gradient each take 2·N·Cout·Cin·k²·Ho²
        // FLOPs; GFLOP/s at a pass's median time, to compare with `bench matmul`.
        let out_side = output.dims()[2];
        let gflop = 2.0 * (n * cout * cin * k * k * out_side * out_side) as f64 / 1e9;
        let rate = |ms: f64| gflop / (ms / 1e3);
        // Reading one value back waits for asynchronous backends.
        let first = |t: Tensor<4>| t.slice([0..1, 0..1, 0..1, 0..1]).into_scalar::<f32>();
        let forward =
            median_ms(&|| first(conv2d(x.clone(), weight.clone(), None, options.clone())));
        let burn_grad = || {
            conv2d_weight_backward(
                x.clone(),
                weight.clone(),
                output_grad.clone(),
                options.clone(),
            )
        };
        let burn_ms = median_ms(&|| first(burn_grad()));
        burn_total += burn_ms;
        // Burn's input gradient is this transposed convolution (the stride-1 layers
        // need no output padding; the first layer's input gradient is never needed).
        let burn_input_grad = || {
            let options = ConvTransposeOptions::new([stride; 2], [padding; 2], [0, 0], [1, 1], 1);
            conv_transpose2d(output_grad.clone(), weight.clone(), None, options)
        };
        let input_ms = median_ms(&|| first(burn_input_grad()));
        eprintln!(
            "# conv {cin}->{cout} k{k} s{stride} ({gflop:.1} GFLOP a pass), Burn's: forward {forward:.0} ms ({:.0} GFLOP/s), input gradient {input_ms:.0} ms ({:.0} GFLOP/s), weight gradient {burn_ms:.0} ms ({:.0} GFLOP/s)",
            rate(forward),
            rate(input_ms),
            rate(burn_ms)
        );
        if native {
            use alexnet::kernels as native;
            let bias = Tensor::<1>::zeros([cout], &device);
            let native_forward = median_ms(&|| {
                first(native::conv2d(
                    x.clone(),
                    weight.clone(),
                    Some(bias.clone()),
                    options.clone(),
                ))
            });
            let native_grad = || {
                native::conv2d_weight_backward(
                    x.clone(),
                    weight.clone(),
                    output_grad.clone(),
                    options.clone(),
                )
            };
            let native_ms = median_ms(&|| first(native_grad()));
            native_total += native_ms;
            // Largest difference, relative to the largest gradient element.
            let expected = burn_grad();
            let scale = expected.clone().abs().max().into_scalar::<f32>();
            let error = (native_grad() - expected).abs().max().into_scalar::<f32>();
            // The input gradient: the first layer's is never needed, as above.
            let native_input = || {
                native::conv2d_x_backward(
                    x.clone(),
                    weight.clone(),
                    output_grad.clone(),
                    options.clone(),
                )
            };
            let native_input_ms = median_ms(&|| first(native_input()));
            let expected = burn_input_grad();
            let input_scale = expected.clone().abs().max().into_scalar::<f32>();
            let input_error = (native_input() - expected).abs().max().into_scalar::<f32>();
            eprintln!(
                "#   native: forward (with bias) {native_forward:.0} ms ({:.0} GFLOP/s), weight gradient {native_ms:.0} ms ({:.0} GFLOP/s; relative difference to Burn's {:.1e}), input gradient {native_input_ms:.0} ms ({:.0} GFLOP/s; {:.1e})",
                rate(native_forward),
                rate(native_ms),
                error / scale,
                rate(native_input_ms),
                input_error / input_scale
            );
        }
    }
    eprintln!("# the five weight gradients: Burn's {burn_total:.0} ms");
    let images_per_s = |total: f64| n as f64 / (total / 1e3);
    println!(
        "RESULT conv-weight-grad-{}-b{n} {:.2}",
        args.device,
        images_per_s(burn_total)
    );
    if native {
        eprintln!("# the five weight gradients: native {native_total:.0} ms");
        println!(
            "RESULT conv-weight-grad-native-{}-b{n} {:.2}",
            args.device,
            images_per_s(native_total)
        );
    }
    Ok(())
}
