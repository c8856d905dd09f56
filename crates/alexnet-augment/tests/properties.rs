//! Property tests of the pipeline ops.

use alexnet_augment::{
    AugmentConfig, AugmentError, ChannelStats, ChannelValues, OpConfig, Pipeline, Scale, sample_rng,
};
use image::{Rgb, RgbImage};
use proptest::prelude::*;

/// Pixel (x, y) holds (x, y, x ^ y): every window is recognisable.
fn coordinates(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| Rgb([x as u8, y as u8, (x ^ y) as u8]))
}

fn zero_mean() -> OpConfig {
    OpConfig::Normalize {
        mean: ChannelValues::Values([0.0; 3]),
        std: None,
        scale: Scale::Byte,
    }
}

fn run(ops: &[OpConfig], image: &RgbImage, seed: u64) -> Vec<f32> {
    let (w, h) = image.dimensions();
    Pipeline::new("test", ops, [h, w], Some(&stats()))
        .unwrap()
        .apply(image, &mut sample_rng(seed, 0, 0))
        .unwrap()
}

fn stats() -> ChannelStats {
    ChannelStats {
        mean: [100.0, 110.0, 120.0],
        std: [50.0, 60.0, 70.0],
        eigenvalues: [900.0, 100.0, 25.0],
        eigenvectors: [[0.6, 0.6, 0.52], [-0.7, 0.1, 0.7], [0.38, -0.79, 0.48]],
    }
}

/// The CHW values of `image` unchanged.
fn chw(image: &RgbImage) -> Vec<f32> {
    (0..3)
        .flat_map(|c| image.pixels().map(move |p| f32::from(p[c])))
        .collect()
}

/// Pixel (x, y) of a CHW buffer of width `w` and plane size `plane`.
fn at(buffer: &[f32], w: usize, plane: usize, x: usize, y: usize) -> [f32; 3] {
    [0, 1, 2].map(|c| buffer[c * plane + y * w + x])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn flipping_twice_is_the_identity(w in 1u32..40, h in 1u32..40, seed: u64) {
        let image = coordinates(w, h);
        let flip = OpConfig::HorizontalFlip { p: 1.0 };
        prop_assert_eq!(run(&[flip.clone(), flip, zero_mean()], &image, seed), chw(&image));
        let once = run(&[OpConfig::HorizontalFlip { p: 1.0 }], &image, seed);
        prop_assert_eq!(at(&once, w as usize, (w * h) as usize, 0, 0)[0], (w - 1) as f32);
    }

    #[test]
    fn crops_are_windows_of_the_requested_size(
        w in 1u32..60, h in 1u32..60, cw_frac in 0.01f64..1.0, ch_frac in 0.01f64..1.0,
        flip in any::<bool>(), center in any::<bool>(), seed: u64,
    ) {
        let (cw, ch) = (((w as f64 * cw_frac).ceil() as u32).max(1), ((h as f64 * ch_frac).ceil() as u32).max(1));
        let image = coordinates(w, h);
        let crop = if center { OpConfig::CenterCrop { size: [ch, cw] } } else { OpConfig::RandomCrop { size: [ch, cw] } };
        let mut ops = vec![];
        if flip { ops.push(OpConfig::HorizontalFlip { p: 1.0 }); }
        ops.push(crop);
        let out = run(&ops, &image, seed);
        let (cw, ch) = (cw as usize, ch as usize);
        prop_assert_eq!(out.len(), 3 * cw * ch);
        let plane = cw * ch;
        let first = at(&out, cw, plane, 0, 0);
        let (x0, y0) = (first[0] as i64, first[1] as i64);
        let step: i64 = if flip { -1 } else { 1 };
        for y in 0..ch {
            for x in 0..cw {
                let px = at(&out, cw, plane, x, y);
                let (sx, sy) = (x0 + step * x as i64, y0 + y as i64);
                prop_assert!(sx >= 0 && sx < w as i64 && sy >= 0 && sy < h as i64);
                prop_assert_eq!(px, [sx as f32, sy as f32, (sx ^ sy) as f32]);
            }
        }
        if center && !flip {
            prop_assert_eq!((x0, y0), (((w as usize - cw) / 2) as i64, ((h as usize - ch) / 2) as i64));
        }
    }

    #[test]
    fn ten_crop_centre_is_center_crop_and_mirrors_follow(w in 2u32..50, h in 2u32..50, frac in 0.1f64..1.0) {
        let (cw, ch) = (((w as f64 * frac) as u32).max(1), ((h as f64 * frac) as u32).max(1));
        let image = coordinates(w, h);
        let ten = run(&[OpConfig::TenCrop { size: [ch, cw] }], &image, 0);
        let plane = 3 * (cw * ch) as usize;
        prop_assert_eq!(ten.len(), 10 * plane);
        let centre = run(&[OpConfig::CenterCrop { size: [ch, cw] }], &image, 0);
        prop_assert_eq!(&ten[4 * plane..5 * plane], &centre[..]);
        // The last five are crops of the mirrored image: each is the mirror of a first-five crop.
        let mirrored_centre = run(&[OpConfig::HorizontalFlip { p: 1.0 }, OpConfig::CenterCrop { size: [ch, cw] }], &image, 0);
        prop_assert_eq!(&ten[9 * plane..], &mirrored_centre[..]);
        let top_right = &ten[plane..2 * plane];
        let mirrored_top_left = &ten[5 * plane..6 * plane];
        let (cw, ch) = (cw as usize, ch as usize);
        for y in 0..ch {
            for x in 0..cw {
                prop_assert_eq!(at(top_right, cw, cw * ch, x, y), at(mirrored_top_left, cw, cw * ch, cw - 1 - x, y));
            }
        }
    }

    #[test]
    fn normalizing_the_mean_image_gives_zero(r: u8, g: u8, b: u8, w in 1u32..20, h in 1u32..20) {
        let image = RgbImage::from_pixel(w, h, Rgb([r, g, b]));
        let mean = ChannelValues::Values([f64::from(r), f64::from(g), f64::from(b)]);
        for std in [None, Some(ChannelValues::Values([3.0, 4.0, 5.0]))] {
            let out = run(&[OpConfig::Normalize { mean, std, scale: Scale::Byte }], &image, 0);
            prop_assert!(out.iter().all(|&v| v == 0.0));
        }
        let unit = ChannelValues::Values([f64::from(r) / 255.0, f64::from(g) / 255.0, f64::from(b) / 255.0]);
        let out = run(&[OpConfig::Normalize { mean: unit, std: None, scale: Scale::Unit }], &image, 0);
        prop_assert!(out.iter().all(|&v| v.abs() < 1e-6));
    }

    #[test]
    fn pca_lighting_shifts_every_pixel_by_one_vector(w in 1u32..30, h in 1u32..30, seed: u64, before in any::<bool>()) {
        let image = coordinates(w, h);
        let identity = run(&[OpConfig::PcaLighting { std: 0.0, eigenvalues: None, eigenvectors: None }], &image, seed);
        prop_assert_eq!(&identity, &chw(&image));
        let pca = OpConfig::PcaLighting { std: 0.1, eigenvalues: None, eigenvectors: None };
        let normalize = OpConfig::Normalize { mean: ChannelValues::Dataset, std: Some(ChannelValues::Dataset), scale: Scale::Byte };
        let ops = if before { vec![pca, normalize] } else { vec![normalize, pca] };
        let out = run(&ops, &image, seed);
        let plane = (w * h) as usize;
        let plain = chw(&image);
        let shift: Vec<f32> = (0..3).map(|c| out[c * plane] - (plain[c * plane] - stats().mean[c] as f32) / stats().std[c] as f32).collect();
        for c in 0..3 {
            for i in 0..plane {
                let expected = (plain[c * plane + i] - stats().mean[c] as f32) / stats().std[c] as f32 + shift[c];
                prop_assert!((out[c * plane + i] - expected).abs() < 1e-4);
            }
        }
        prop_assert!(shift.iter().any(|s| s.abs() > 0.0));
    }

    #[test]
    fn random_resized_crop_has_the_requested_size(w in 8u32..64, h in 8u32..64, seed: u64) {
        let image = RgbImage::from_pixel(w, h, Rgb([10, 20, 30]));
        let op = OpConfig::RandomResizedCrop { size: [17, 23], scale: [0.08, 1.0], ratio: [0.75, 4.0 / 3.0], filter: Default::default() };
        let out = run(&[op], &image, seed);
        prop_assert_eq!(out.len(), 3 * 17 * 23);
        // Resampling a constant image keeps it constant.
        prop_assert!(out[..17 * 23].iter().all(|&v| (v - 10.0).abs() < 1.0));
    }
}

#[test]
fn same_sample_same_augmentation() {
    let image = coordinates(64, 64);
    let mut ops = AugmentConfig::original(48).train;
    ops.push(OpConfig::PcaLighting {
        std: 0.1,
        eigenvalues: None,
        eigenvectors: None,
    });
    let pipeline = Pipeline::new("t", &ops, [64, 64], Some(&stats())).unwrap();
    let a = pipeline.apply(&image, &mut sample_rng(1, 2, 3)).unwrap();
    let b = pipeline.apply(&image, &mut sample_rng(1, 2, 3)).unwrap();
    assert_eq!(a, b);
    let differs = (0..20).any(|i| pipeline.apply(&image, &mut sample_rng(1, 2, i)).unwrap() != a);
    assert!(differs);
}

#[test]
fn the_original_eval_pipeline_squashes() {
    let image = RgbImage::from_pixel(64, 64, Rgb([100, 110, 120]));
    let eval = Pipeline::new(
        "augment.eval",
        &AugmentConfig::original(48).eval,
        [64, 64],
        Some(&stats()),
    )
    .unwrap();
    let out = eval.apply(&image, &mut sample_rng(0, 0, 0)).unwrap();
    assert_eq!(out.len(), 3 * 48 * 48);
    assert!(
        out.iter().all(|&v| v.abs() < 1e-4),
        "mean-subtracted constant image is zero"
    );
}

fn build_error(toml_ops: &str, input: [u32; 2]) -> String {
    let config: AugmentConfig = match toml::from_str(toml_ops) {
        Ok(config) => config,
        Err(error) => return error.to_string(),
    };
    Pipeline::new("augment.train", &config.train, input, Some(&stats()))
        .unwrap_err()
        .to_string()
}

#[test]
fn bad_ops_are_named_at_build_time() {
    let cases = [
        (
            "train = [{ op = \"random_crop\", size = [300, 300] }]",
            "augment.train[0] (random_crop): `size` [300, 300] is larger than the 256x256",
        ),
        (
            "train = [{ op = \"horizontal_flip\", p = 1.5 }]",
            "augment.train[0] (horizontal_flip): `p` 1.5 is not in [0, 1]",
        ),
        (
            "train = [{ op = \"normalize\", std = [1.0, 0.0, 1.0] }]",
            "(normalize): `std`",
        ),
        (
            "train = [{ op = \"ten_crop\", size = [8, 8] }, { op = \"horizontal_flip\" }]",
            "[1] (horizontal_flip): `op` only normalize and pca_lighting may follow ten_crop",
        ),
        (
            "train = [{ op = \"random_resized_crop\", size = [8, 8], scale = [0.5, 0.1] }]",
            "`scale`",
        ),
        (
            "train = [{ op = \"pca_lighting\", std = -1.0 }]",
            "(pca_lighting): `std`",
        ),
    ];
    for (ops, expected) in cases {
        let error = build_error(ops, [256, 256]);
        assert!(error.contains(expected), "{ops}\n{error}");
    }
    let parse = [
        ("train = [{ op = \"rotate\" }]", "rotate"),
        (
            "train = [{ op = \"normalize\", mean = [1.0, 2.0] }]",
            "expected 3 values (R, G, B), found 2",
        ),
        (
            "train = [{ op = \"normalize\", mean = \"imagenet\" }]",
            "expected \"dataset\"",
        ),
        (
            "train = [{ op = \"random_crop\", size = [8, 8], pad = 2 }]",
            "pad",
        ),
    ];
    for (ops, expected) in parse {
        let error = toml::from_str::<AugmentConfig>(ops)
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{ops}\n{error}");
    }
    let no_stats = Pipeline::new(
        "augment.eval",
        &AugmentConfig::original(8).eval,
        [16, 16],
        None,
    )
    .unwrap_err();
    assert!(
        no_stats
            .to_string()
            .contains("\"dataset\" but no dataset statistics"),
        "{no_stats}"
    );
}

#[test]
fn images_of_the_wrong_size_are_errors_not_panics() {
    let pipeline = Pipeline::new(
        "t",
        &AugmentConfig::original(8).train,
        [16, 16],
        Some(&stats()),
    )
    .unwrap();
    let error = pipeline
        .apply(&RgbImage::new(10, 16), &mut sample_rng(0, 0, 0))
        .unwrap_err();
    assert!(matches!(error, AugmentError::WrongInputSize { .. }));
    let mut short = vec![0.0; 5];
    assert!(matches!(
        pipeline.apply_into(&RgbImage::new(16, 16), &mut sample_rng(0, 0, 0), &mut short),
        Err(AugmentError::WrongOutputLength { .. })
    ));
}

#[test]
fn outputs_turn_back_into_the_image_they_came_from() {
    let image = coordinates(40, 30);
    let ops = [
        OpConfig::Normalize {
            mean: ChannelValues::Dataset,
            std: Some(ChannelValues::Dataset),
            scale: Scale::Unit,
        },
        OpConfig::CenterCrop { size: [30, 30] },
    ];
    let pipeline = Pipeline::new("t", &ops, [30, 40], Some(&stats())).unwrap();
    let chw = pipeline.apply(&image, &mut sample_rng(0, 0, 0)).unwrap();
    let back = pipeline.to_rgb8(&chw).unwrap();
    assert_eq!(back.get_pixel(0, 0).0, image.get_pixel(5, 0).0);
    assert_eq!(back.get_pixel(29, 29).0, image.get_pixel(34, 29).0);
    assert!(pipeline.to_rgb8(&chw[1..]).is_none());
}
