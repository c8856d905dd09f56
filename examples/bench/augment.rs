//! `bench augment`: the original's training augmentation on one thread.

use std::time::Instant;

use alexnet::augment::{AugmentConfig, OpConfig, Pipeline, sample_rng};
use anyhow::Result;
use image::RgbImage;

use crate::report;

pub fn bench_augment(n: usize, reps: usize) -> Result<()> {
    // As torch_reference.py: 64 random 256×256 images and the mean (123, 117, 104).
    let images: Vec<RgbImage> = (0..64u32)
        .map(|k| {
            RgbImage::from_fn(256, 256, |x, y| {
                image::Rgb([(x * 7 + k) as u8, (y * 13 + k) as u8, (x ^ y ^ k) as u8])
            })
        })
        .collect();
    let stats = alexnet::augment::ChannelStats {
        mean: [123.0, 117.0, 104.0],
        std: [58.0, 57.0, 57.0],
        eigenvalues: [4000.0, 300.0, 60.0],
        eigenvectors: [[0.58, 0.58, 0.57], [-0.71, 0.0, 0.70], [0.41, -0.82, 0.41]],
    };
    let original = AugmentConfig::original(227).train;
    let mut with_pca = original.clone();
    with_pca.push(OpConfig::PcaLighting {
        std: 0.1,
        eigenvalues: None,
        eigenvectors: None,
    });
    // One thread, as the reference's single process.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    for (name, ops) in [("augment-pca", with_pca), ("augment", original)] {
        let pipeline = Pipeline::new("bench", &ops, [256, 256], Some(&stats))?;
        let mut out = vec![0.0f32; pipeline.output_len()];
        let mut rates = Vec::new();
        pool.install(|| -> Result<()> {
            for rep in 0..=reps {
                let started = Instant::now();
                for i in 0..n {
                    pipeline.apply_into(
                        &images[i % 64],
                        &mut sample_rng(0, rep as u64, i as u64),
                        &mut out,
                    )?;
                }
                if rep > 0 {
                    rates.push(n as f64 / started.elapsed().as_secs_f64());
                }
            }
            Ok(())
        })?;
        std::hint::black_box(&out);
        report(name, rates);
    }
    Ok(())
}
