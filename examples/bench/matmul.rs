//! `bench matmul`: the device's square matrix product, for the machine's peak against
//! which the step's FLOPs are read (docs/repro/matmul_peak.py is PyTorch's `torch.mm`).

use std::time::Instant;

use alexnet::burn::{
    prelude::*,
    tensor::{DType, Distribution},
};
use anyhow::{Context, Result};

use crate::{MatmulArgs, median};
use alexnet::train::device::parse_devices;

/// GFLOP/s (2·n³ a product) of `a · b` for each `--sizes` entry, in `--precision`.
/// `RESULT` is the largest size's figure.
pub fn bench_matmul(args: MatmulArgs, reps: usize) -> Result<()> {
    let device = parse_devices(&args.device)?
        .into_iter()
        .next()
        .context("--device names no device")?;
    let dtype = args.precision.float_dtype();
    let precision = format!("{:?}", args.precision).to_lowercase();
    let mut last = None;
    for &n in &args.sizes {
        let normal = Distribution::Normal(0.0, 1.0);
        let a = Tensor::<2>::random([n, n], normal, &device).cast(dtype);
        let b = Tensor::<2>::random([n, n], normal, &device).cast(dtype);
        // Reading one value back waits for asynchronous backends.
        let product = || {
            a.clone()
                .matmul(b.clone())
                .slice([0..1, 0..1])
                .cast(DType::F32)
                .into_scalar::<f32>()
        };
        product();
        let gflops = median(
            (0..reps)
                .map(|_| {
                    let started = Instant::now();
                    std::hint::black_box(product());
                    2.0 * (n as f64).powi(3) / started.elapsed().as_secs_f64() / 1e9
                })
                .collect(),
        );
        eprintln!("# matmul {n}x{n} {precision}: {gflops:.0} GFLOP/s");
        last = Some((n, gflops));
    }
    let (n, gflops) = last.context("--sizes is empty")?;
    println!("RESULT matmul-{}-{precision}-{n} {gflops:.1}", args.device);
    Ok(())
}
