//! One flex binary for every x86-64 CPU: the `flex` feature compiles gemm's AVX-512
//! kernels (`x86-v4`) into it, and gemm must choose them at run time only, so the same
//! binary still runs, and computes the same, on a CPU without AVX-512.
//!
//! Valgrind's virtual CPU has AVX2 but no AVX-512 (its CPUID says so, and it stops on an
//! AVX-512 instruction with SIGILL), so the test runs its own matrix products again under
//! `valgrind --tool=none`. A build that assumed AVX-512 at compile time (`-C
//! target-feature=+avx512f`) fails it. Without valgrind the test says so and passes,
//! unless `ALEXNET_REQUIRE_VALGRIND` is set (as CI does). On that CPU the native
//! convolution runs alexnet-kernels' own AVX2 micro-kernel, chosen at run time too.

#![cfg(all(feature = "flex", target_arch = "x86_64"))]

use burn::{
    prelude::*,
    tensor::{TensorData, ops::ConvOptions},
};
use std::process::Command;

/// Set in the child that runs under valgrind.
const CHILD: &str = "ALEXNET_PORTABLE_CHILD";

/// Deterministic values in [-1, 1), without a random-number generator.
fn values(len: usize, salt: usize) -> Vec<f32> {
    (0..len)
        .map(|i| (((i * 7919 + salt * 104_729) % 2003) as f32 / 1001.5) - 1.0)
        .collect()
}

/// The largest difference between `got` and `expected`, relative to the largest
/// expected magnitude.
fn relative_error(got: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(got.len(), expected.len());
    let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
    let error = got
        .iter()
        .zip(expected)
        .fold(0f32, |m, (g, e)| m.max((g - e).abs()));
    error / scale
}

/// `a · b` for row-major `[m, k]` and `[k, n]`, in f64.
fn reference_matmul(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let sum: f64 = (0..k)
                .map(|p| a[i * k + p] as f64 * b[p * n + j] as f64)
                .sum();
            out[i * n + j] = sum as f32;
        }
    }
    out
}

/// A stride-1, `pad`-padded convolution of `[n, cin, side, side]` by
/// `[cout, cin, k, k]`, in f64.
fn reference_conv(
    x: &[f32],
    w: &[f32],
    [n, cin, side]: [usize; 3],
    [cout, k, pad]: [usize; 3],
) -> Vec<f32> {
    let out_side = side + 2 * pad - k + 1;
    let mut out = vec![0f32; n * cout * out_side * out_side];
    for b in 0..n {
        for o in 0..cout {
            for y in 0..out_side {
                for xo in 0..out_side {
                    let mut sum = 0f64;
                    for c in 0..cin {
                        for ky in 0..k {
                            for kx in 0..k {
                                let (iy, ix) = (y + ky, xo + kx);
                                if iy < pad || ix < pad || iy - pad >= side || ix - pad >= side {
                                    continue;
                                }
                                let input = x[((b * cin + c) * side + iy - pad) * side + ix - pad];
                                let weight = w[((o * cin + c) * k + ky) * k + kx];
                                sum += input as f64 * weight as f64;
                            }
                        }
                    }
                    out[((b * cout + o) * out_side + y) * out_side + xo] = sum as f32;
                }
            }
        }
    }
    out
}

/// flex's matrix product (Burn's, through gemm) and the native convolution agree with
/// plain loops on this CPU, whichever kernels gemm chose. The convolution is gemm's
/// im2col product where the CPU has AVX-512, and our AVX2 indirect product where it has
/// not (valgrind's CPU).
#[test]
fn flex_matrix_products_are_right_on_this_cpu() {
    let device = Device::flex();
    // Large enough for gemm's packed micro-kernels, not its small-size paths.
    let (m, k, n) = (96, 160, 112);
    let (a, b) = (values(m * k, 1), values(k * n, 2));
    let product = Tensor::<2>::from_data(TensorData::new(a.clone(), [m, k]), &device).matmul(
        Tensor::<2>::from_data(TensorData::new(b.clone(), [k, n]), &device),
    );
    let product = product
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32 product");
    let error = relative_error(&product, &reference_matmul(&a, &b, m, k, n));
    assert!(error < 1e-5, "flex matmul: relative error {error:e}");

    let (batch, cin, side, cout, kernel, pad) = (2, 16, 14, 48, 3, 1);
    let (x, w) = (
        values(batch * cin * side * side, 3),
        values(cout * cin * kernel * kernel, 4),
    );
    let output = alexnet_kernels::conv2d(
        Tensor::<4>::from_data(
            TensorData::new(x.clone(), [batch, cin, side, side]),
            &device,
        ),
        Tensor::<4>::from_data(
            TensorData::new(w.clone(), [cout, cin, kernel, kernel]),
            &device,
        ),
        Some(Tensor::<1>::zeros([cout], &device)),
        ConvOptions::new([1, 1], [pad, pad], [1, 1], 1),
    );
    let output = output.into_data().try_to_vec::<f32>().expect("f32 output");
    let expected = reference_conv(&x, &w, [batch, cin, side], [cout, kernel, pad]);
    let error = relative_error(&output, &expected);
    assert!(error < 1e-5, "native convolution: relative error {error:e}");
    println!(
        "avx512f={} matrix products right",
        std::arch::is_x86_feature_detected!("avx512f")
    );
}

/// The test above, run by this same test binary on valgrind's CPU without AVX-512.
#[test]
fn the_same_binary_runs_on_a_cpu_without_avx512() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    if Command::new("valgrind").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("ALEXNET_REQUIRE_VALGRIND").is_none(),
            "ALEXNET_REQUIRE_VALGRIND is set but valgrind is not on PATH"
        );
        eprintln!("SKIPPED: valgrind is not on PATH; the AVX2-only run needs it");
        return;
    }
    let test_binary = std::env::current_exe().expect("the test binary's path");
    let run = Command::new("valgrind")
        .args(["--tool=none", "--quiet"])
        .arg(&test_binary)
        .args([
            "flex_matrix_products_are_right_on_this_cpu",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .expect("valgrind runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "under valgrind (no AVX-512) the test binary failed ({}):\n{stdout}\n{stderr}",
        run.status
    );
    // Proof that the child ran the products, on a CPU that reported no AVX-512.
    assert!(
        stdout.contains("avx512f=false matrix products right"),
        "the child did not report its products on a CPU without AVX-512:\n{stdout}\n{stderr}"
    );
}
