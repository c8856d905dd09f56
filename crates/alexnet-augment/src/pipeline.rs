//! A validated pipeline and its single fused pass from 8-bit RGB to CHW `f32`: the
//! geometric ops move a [`View`] of the image, the photometric ones compose into one
//! `(raw + offset) · scale` per channel, and each output pixel is written once. The ops'
//! validation is in `step`, the view in `view`.

use std::borrow::Cow;

use image::RgbImage;
use rand::{Rng, RngExt};
use rand_distr::Distribution;

pub use crate::stats::ChannelStats;
use crate::{
    config::OpConfig,
    error::{AugmentError, Result},
    step::{OpCheck, Shape, Step},
    view::{View, random_resized_window},
};

/// A built, validated pipeline. Built once (errors surface then), applied to every
/// image; `Sync`, so loader threads share one.
///
/// ```
/// use alexnet_augment::{AugmentConfig, Pipeline, sample_rng};
///
/// let ops = AugmentConfig::original(227).train;
/// let stats = alexnet_augment::ChannelStats {
///     mean: [123.0, 117.0, 104.0],
///     std: [58.0, 57.0, 57.0],
///     eigenvalues: [1.0, 1.0, 1.0],
///     eigenvectors: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
/// };
/// let pipeline = Pipeline::new("augment.train", &ops, [256, 256], Some(&stats))?;
/// let image = image::RgbImage::new(256, 256);
/// let chw = pipeline.apply(&image, &mut sample_rng(42, 0, 0))?;
/// assert_eq!(chw.len(), 3 * 227 * 227);
/// assert_eq!(chw[0], -123.0);
/// # Ok::<(), alexnet_augment::AugmentError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Pipeline {
    steps: Vec<Step>,
    input: [u32; 2],
    output: [u32; 2],
    crops: usize,
}

impl Pipeline {
    /// Validates `ops` for `[height, width]` inputs and resolves `"dataset"` values from
    /// `stats`. `name` (e.g. `augment.train`) prefixes every error.
    pub fn new(
        name: &str,
        ops: &[OpConfig],
        input: [u32; 2],
        stats: Option<&ChannelStats>,
    ) -> Result<Self> {
        if input[0] == 0 || input[1] == 0 {
            return Err(AugmentError::InvalidPipeline {
                pipeline: name.into(),
                reason: format!("input size {}x{} is empty", input[0], input[1]),
            });
        }
        let mut shape = Shape {
            h: input[0],
            w: input[1],
            crops: 1,
        };
        let steps = ops
            .iter()
            .enumerate()
            .map(|(index, op)| {
                let check = OpCheck {
                    pipeline: name,
                    index,
                    op,
                    stats,
                };
                check.step(&mut shape)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            steps,
            input,
            output: [shape.h, shape.w],
            crops: shape.crops,
        })
    }

    /// `[height, width]` of the images the pipeline takes.
    pub fn input_size(&self) -> [u32; 2] {
        self.input
    }

    /// `[height, width]` of each output crop.
    pub fn output_size(&self) -> [u32; 2] {
        self.output
    }

    /// Outputs per image: 10 with `ten_crop`, else 1.
    pub fn crops(&self) -> usize {
        self.crops
    }

    /// `f32` values written per image: `crops × 3 × height × width`.
    pub fn output_len(&self) -> usize {
        self.crops * 3 * self.output[0] as usize * self.output[1] as usize
    }

    /// Turns one CHW output back into an 8-bit image for display: undoes the
    /// normalization (not the random PCA shift, which stays visible, as the network sees
    /// it) and clamps to 0–255. `chw` is one crop (`3 × height × width` values).
    pub fn to_rgb8(&self, chw: &[f32]) -> Option<RgbImage> {
        let [height, width] = self.output;
        let plane = height as usize * width as usize;
        if chw.len() != 3 * plane {
            return None;
        }
        let mut offset = [0.0f64; 3];
        let mut scale = [1.0f64; 3];
        for step in &self.steps {
            if let Step::Normalize { unit, mean, std } = step {
                for c in 0..3 {
                    offset[c] -= mean[c] / (scale[c] * unit);
                    scale[c] *= unit / std[c];
                }
            }
        }
        Some(RgbImage::from_fn(width, height, |x, y| {
            let i = y as usize * width as usize + x as usize;
            image::Rgb([0, 1, 2].map(|c| {
                (f64::from(chw[c * plane + i]) / scale[c] - offset[c])
                    .round()
                    .clamp(0.0, 255.0) as u8
            }))
        }))
    }

    /// Applies the pipeline to `image`, returning `crops` CHW images back to back.
    pub fn apply(&self, image: &RgbImage, rng: &mut impl Rng) -> Result<Vec<f32>> {
        let mut out = vec![0.0; self.output_len()];
        self.apply_into(image, rng, &mut out)?;
        Ok(out)
    }

    /// Like [`Pipeline::apply`], writing into `out` (for example a slice of a batch buffer).
    pub fn apply_into(&self, image: &RgbImage, rng: &mut impl Rng, out: &mut [f32]) -> Result<()> {
        let (width, height) = image.dimensions();
        if [height, width] != self.input {
            return Err(AugmentError::WrongInputSize {
                expected_h: self.input[0],
                expected_w: self.input[1],
                found_h: height,
                found_w: width,
            });
        }
        if out.len() != self.output_len() {
            return Err(AugmentError::WrongOutputLength {
                expected: self.output_len(),
                found: out.len(),
            });
        }
        let mut view = View::whole(Cow::Borrowed(image));
        // Photometric ops compose into `(raw + offset) · scale` per channel, with the offset
        // in raw pixel units: exact for integer means, and PCA shifts add to it directly.
        let mut offset = [0.0f64; 3];
        let mut scale = [1.0f64; 3];
        let mut ten_crop = None;
        for step in &self.steps {
            match step {
                Step::Normalize { unit, mean, std } => {
                    // ((raw + o)·s·unit − mean) / std = (raw + o − mean/(s·unit)) · s·unit/std
                    for c in 0..3 {
                        offset[c] -= mean[c] / (scale[c] * unit);
                        scale[c] *= unit / std[c];
                    }
                }
                Step::Pca { normal, components } => {
                    let alpha: [f64; 3] = [0, 1, 2].map(|_| normal.sample(rng));
                    for (c, offset) in offset.iter_mut().enumerate() {
                        // The shift is in raw pixel units, whatever normalization came before.
                        *offset += (0..3).map(|i| alpha[i] * components[i][c]).sum::<f64>();
                    }
                }
                Step::TenCrop { h, w } => ten_crop = Some((*h, *w)),
                geometric => move_view(&mut view, geometric, rng)?,
            }
        }
        let offset = offset.map(|v| v as f32);
        let scale = scale.map(|v| v as f32);
        match ten_crop {
            None => view.emit(offset, scale, out),
            Some((h, w)) => emit_ten_crops(&view, [h, w], (offset, scale), out),
        }
        Ok(())
    }
}

/// Applies a geometric step to the view (a photometric or ten-crop step leaves it).
fn move_view(view: &mut View<'_>, step: &Step, rng: &mut impl Rng) -> Result<()> {
    match step {
        Step::Flip { p } => {
            if *p >= 1.0 || (*p > 0.0 && rng.random::<f64>() < *p) {
                view.flipped = !view.flipped;
            }
        }
        Step::RandomCrop { h, w } => {
            let left = rng.random_range(0..=view.w - w);
            let top = rng.random_range(0..=view.h - h);
            view.crop(left, top, *w, *h);
        }
        Step::CenterCrop { h, w } => view.crop((view.w - w) / 2, (view.h - h) / 2, *w, *h),
        Step::Resize { h, w, alg } => view.resize(*w, *h, *alg)?,
        Step::RandomResizedCrop {
            h,
            w,
            scale,
            log_ratio,
            alg,
        } => {
            let (left, top, cw, ch) =
                random_resized_window(view.w, view.h, *scale, *log_ratio, rng);
            view.crop(left, top, cw, ch);
            view.resize(*w, *h, *alg)?;
        }
        Step::Normalize { .. } | Step::Pca { .. } | Step::TenCrop { .. } => {}
    }
    Ok(())
}

/// The paper's ten crops of `view` (corners, centre, then the same mirrored), each
/// written as CHW `(v + offset)·scale` into its chunk of `out`.
fn emit_ten_crops(
    view: &View<'_>,
    [h, w]: [u32; 2],
    (offset, scale): ([f32; 3], [f32; 3]),
    out: &mut [f32],
) {
    let plane = 3 * h as usize * w as usize;
    for (k, chunk) in out.chunks_exact_mut(plane).enumerate() {
        let mut crop = view.clone();
        if k >= 5 {
            crop.flipped = !crop.flipped;
        }
        let (left, top) = match k % 5 {
            0 => (0, 0),
            1 => (crop.w - w, 0),
            2 => (0, crop.h - h),
            3 => (crop.w - w, crop.h - h),
            _ => ((crop.w - w) / 2, (crop.h - h) / 2),
        };
        crop.crop(left, top, w, h);
        crop.emit(offset, scale, chunk);
    }
}
