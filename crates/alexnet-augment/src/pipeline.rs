//! A validated pipeline and its single fused pass from 8-bit RGB to CHW `f32`.
//!
//! Over 400 lines: the fused pass is the point (one walk over each output pixel for
//! every op), so the ops' geometry, photometry and validation live together.

use std::{borrow::Cow, cell::RefCell};

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer, images::CroppedImage};
use image::RgbImage;
use rand::{Rng, RngExt};
use rand_distr::{Distribution, Normal};

use crate::{
    config::{ChannelValues, Filter, OpConfig, Scale},
    error::{AugmentError, Result},
};

/// Per-channel statistics of the training images, on the 0–255 scale (what
/// `alexnet-prep` writes to `rgb_mean.json`), used by ops that say `"dataset"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChannelStats {
    /// Per-channel mean (R, G, B).
    pub mean: [f64; 3],
    /// Per-channel standard deviation.
    pub std: [f64; 3],
    /// Eigenvalues of the RGB covariance, largest first.
    pub eigenvalues: [f64; 3],
    /// Unit eigenvectors as rows, paired with `eigenvalues`.
    pub eigenvectors: [[f64; 3]; 3],
}

/// A resolved op, ready to run.
#[derive(Debug, Clone)]
enum Step {
    Flip {
        p: f64,
    },
    RandomCrop {
        h: u32,
        w: u32,
    },
    CenterCrop {
        h: u32,
        w: u32,
    },
    Resize {
        h: u32,
        w: u32,
        alg: ResizeAlg,
    },
    RandomResizedCrop {
        h: u32,
        w: u32,
        scale: [f64; 2],
        log_ratio: [f64; 2],
        alg: ResizeAlg,
    },
    /// `v ↦ (v·unit − mean) / std` on the current value scale.
    Normalize {
        unit: f64,
        mean: [f64; 3],
        std: [f64; 3],
    },
    /// Adds `Σ αᵢ·components[i]` (raw pixel units), αᵢ ~ N(0, std).
    Pca {
        normal: Normal<f64>,
        components: [[f64; 3]; 3],
    },
    TenCrop {
        h: u32,
        w: u32,
    },
}

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

fn algorithm(filter: Filter) -> ResizeAlg {
    match filter {
        Filter::Bilinear => ResizeAlg::Convolution(FilterType::Bilinear),
        Filter::BilinearFixed => ResizeAlg::Interpolation(FilterType::Bilinear),
        Filter::CatmullRom => ResizeAlg::Convolution(FilterType::CatmullRom),
        Filter::Lanczos3 => ResizeAlg::Convolution(FilterType::Lanczos3),
    }
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
        let mut steps = Vec::with_capacity(ops.len());
        let [mut h, mut w] = input;
        let mut crops = 1;
        for (index, op) in ops.iter().enumerate() {
            let invalid = |field: &'static str, reason: String| AugmentError::InvalidOp {
                pipeline: name.into(),
                index,
                op: op.name(),
                field,
                reason,
            };
            if crops > 1
                && !matches!(
                    op,
                    OpConfig::Normalize { .. } | OpConfig::PcaLighting { .. }
                )
            {
                return Err(invalid(
                    "op",
                    "only normalize and pca_lighting may follow ten_crop".into(),
                ));
            }
            let check_size = |size: [u32; 2], fits: Option<(u32, u32)>| -> Result<()> {
                if size[0] == 0 || size[1] == 0 || size[0] > 16_384 || size[1] > 16_384 {
                    return Err(invalid("size", format!("{size:?} is not in 1..=16384")));
                }
                if let Some((h, w)) = fits
                    && (size[0] > h || size[1] > w)
                {
                    return Err(invalid(
                        "size",
                        format!("{size:?} is larger than the {h}x{w} image it applies to"),
                    ));
                }
                Ok(())
            };
            let resolve = |values: ChannelValues,
                           field: &'static str,
                           from_stats: fn(&ChannelStats) -> [f64; 3]| {
                match values {
                    ChannelValues::Values(values) => Ok(values),
                    ChannelValues::Dataset => stats.map(from_stats).ok_or_else(|| {
                        invalid(
                            field,
                            "is \"dataset\" but no dataset statistics were given".into(),
                        )
                    }),
                }
            };
            let step = match *op {
                OpConfig::HorizontalFlip { p } => {
                    if !(0.0..=1.0).contains(&p) {
                        return Err(invalid("p", format!("{p} is not in [0, 1]")));
                    }
                    Step::Flip { p }
                }
                OpConfig::RandomCrop { size } => {
                    check_size(size, Some((h, w)))?;
                    [h, w] = size;
                    Step::RandomCrop { h, w }
                }
                OpConfig::CenterCrop { size } => {
                    check_size(size, Some((h, w)))?;
                    [h, w] = size;
                    Step::CenterCrop { h, w }
                }
                OpConfig::TenCrop { size } => {
                    check_size(size, Some((h, w)))?;
                    [h, w] = size;
                    crops = 10;
                    Step::TenCrop { h, w }
                }
                OpConfig::Resize { size, filter } => {
                    check_size(size, None)?;
                    [h, w] = size;
                    Step::Resize {
                        h,
                        w,
                        alg: algorithm(filter),
                    }
                }
                OpConfig::RandomResizedCrop {
                    size,
                    scale,
                    ratio,
                    filter,
                } => {
                    check_size(size, None)?;
                    if !(scale[0] > 0.0 && scale[0] <= scale[1] && scale[1] <= 1.0) {
                        return Err(invalid(
                            "scale",
                            format!("{scale:?} is not 0 < low <= high <= 1"),
                        ));
                    }
                    if !(ratio[0] > 0.0 && ratio[0] <= ratio[1] && ratio[1].is_finite()) {
                        return Err(invalid(
                            "ratio",
                            format!("{ratio:?} is not 0 < low <= high"),
                        ));
                    }
                    [h, w] = size;
                    Step::RandomResizedCrop {
                        h,
                        w,
                        scale,
                        log_ratio: [ratio[0].ln(), ratio[1].ln()],
                        alg: algorithm(filter),
                    }
                }
                OpConfig::Normalize { mean, std, scale } => {
                    let unit = match scale {
                        Scale::Byte => 1.0,
                        Scale::Unit => 1.0 / 255.0,
                    };
                    // Dataset statistics are on 0–255; bring them to the op's scale.
                    let mean = match mean {
                        ChannelValues::Dataset => {
                            resolve(mean, "mean", |s| s.mean)?.map(|m| m * unit)
                        }
                        given => resolve(given, "mean", |s| s.mean)?,
                    };
                    let std = match std {
                        None => [1.0; 3],
                        Some(ChannelValues::Dataset) => {
                            resolve(ChannelValues::Dataset, "std", |s| s.std)?.map(|s| s * unit)
                        }
                        Some(given) => resolve(given, "std", |s| s.std)?,
                    };
                    if mean.iter().any(|m| !m.is_finite()) {
                        return Err(invalid("mean", format!("{mean:?} is not finite")));
                    }
                    if std.iter().any(|s| !s.is_finite() || *s <= 0.0) {
                        return Err(invalid("std", format!("{std:?} must be positive")));
                    }
                    Step::Normalize { unit, mean, std }
                }
                OpConfig::PcaLighting {
                    std,
                    eigenvalues,
                    eigenvectors,
                } => {
                    let normal = Normal::new(0.0, std)
                        .ok()
                        .filter(|_| std.is_finite() && std >= 0.0)
                        .ok_or_else(|| {
                            invalid("std", format!("{std} is not a finite non-negative number"))
                        })?;
                    let values = match eigenvalues {
                        Some(values) => values,
                        None => stats.map(|s| s.eigenvalues).ok_or_else(|| {
                            invalid("eigenvalues", "not given and no dataset statistics".into())
                        })?,
                    };
                    let vectors = match eigenvectors {
                        Some(vectors) => vectors,
                        None => stats.map(|s| s.eigenvectors).ok_or_else(|| {
                            invalid("eigenvectors", "not given and no dataset statistics".into())
                        })?,
                    };
                    if values.iter().any(|v| !v.is_finite() || *v < 0.0) {
                        return Err(invalid(
                            "eigenvalues",
                            format!("{values:?} must be finite and non-negative"),
                        ));
                    }
                    if vectors.iter().flatten().any(|v| !v.is_finite()) {
                        return Err(invalid("eigenvectors", "must be finite".into()));
                    }
                    Step::Pca {
                        normal,
                        components: [0, 1, 2].map(|i| vectors[i].map(|p| p * values[i].sqrt())),
                    }
                }
            };
            steps.push(step);
        }
        Ok(Self {
            steps,
            input,
            output: [h, w],
            crops,
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
            }
        }
        let offset = offset.map(|v| v as f32);
        let scale = scale.map(|v| v as f32);
        match ten_crop {
            None => view.emit(offset, scale, out),
            Some((h, w)) => {
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
        }
        Ok(())
    }
}

/// torchvision's `RandomResizedCrop.get_params`: ten tries at a window of random area
/// and log-uniform aspect ratio, then the central window with the ratio clamped.
fn random_resized_window(
    width: u32,
    height: u32,
    scale: [f64; 2],
    log_ratio: [f64; 2],
    rng: &mut impl Rng,
) -> (u32, u32, u32, u32) {
    let area = f64::from(width) * f64::from(height);
    for _ in 0..10 {
        let target = area * rng.random_range(scale[0]..=scale[1]);
        let ratio = rng.random_range(log_ratio[0]..=log_ratio[1]).exp();
        let w = (target * ratio).sqrt().round() as u32;
        let h = (target / ratio).sqrt().round() as u32;
        if w > 0 && h > 0 && w <= width && h <= height {
            return (
                rng.random_range(0..=width - w),
                rng.random_range(0..=height - h),
                w,
                h,
            );
        }
    }
    let in_ratio = f64::from(width) / f64::from(height);
    let (w, h) = if in_ratio < log_ratio[0].exp() {
        (
            width,
            ((f64::from(width) / log_ratio[0].exp()).round() as u32).clamp(1, height),
        )
    } else if in_ratio > log_ratio[1].exp() {
        (
            ((f64::from(height) * log_ratio[1].exp()).round() as u32).clamp(1, width),
            height,
        )
    } else {
        (width, height)
    };
    ((width - w) / 2, (height - h) / 2, w, h)
}

thread_local! {
    static RESIZER: RefCell<Resizer> = RefCell::new(Resizer::new());
}

/// A window of an image, possibly mirrored; crops and flips only move the window.
#[derive(Clone)]
struct View<'a> {
    base: Cow<'a, RgbImage>,
    x0: u32,
    y0: u32,
    w: u32,
    h: u32,
    flipped: bool,
}

impl<'a> View<'a> {
    fn whole(base: Cow<'a, RgbImage>) -> Self {
        let (w, h) = base.dimensions();
        Self {
            base,
            x0: 0,
            y0: 0,
            w,
            h,
            flipped: false,
        }
    }

    /// Crops `[left, left + w) × [top, top + h)` in view coordinates.
    fn crop(&mut self, left: u32, top: u32, w: u32, h: u32) {
        self.x0 += if self.flipped {
            self.w - left - w
        } else {
            left
        };
        self.y0 += top;
        self.w = w;
        self.h = h;
    }

    /// Resamples the window to `w × h`. Mirroring commutes with resampling, so the flag
    /// carries over and is applied when emitting.
    fn resize(&mut self, w: u32, h: u32, alg: ResizeAlg) -> Result<()> {
        if (w, h) == (self.w, self.h) {
            return Ok(());
        }
        let mut resized = RgbImage::new(w, h);
        let options = ResizeOptions::new().resize_alg(alg);
        let base: &RgbImage = &self.base;
        let window = CroppedImage::new(base, self.x0, self.y0, self.w, self.h)
            .map_err(|error| AugmentError::Resize(error.to_string()))?;
        RESIZER
            .with(|resizer| resizer.borrow_mut().resize(&window, &mut resized, &options))
            .map_err(|error| AugmentError::Resize(error.to_string()))?;
        let flipped = self.flipped;
        *self = View::whole(Cow::Owned(resized));
        self.flipped = flipped;
        Ok(())
    }

    /// Writes the window as CHW `(v + offset)·scale` into `out` (length `3·w·h`).
    fn emit(&self, offset: [f32; 3], scale: [f32; 3], out: &mut [f32]) {
        let (w, h) = (self.w as usize, self.h as usize);
        let stride = self.base.width() as usize * 3;
        let raw = self.base.as_raw();
        let (r_plane, rest) = out.split_at_mut(w * h);
        let (g_plane, b_plane) = rest.split_at_mut(w * h);
        for y in 0..h {
            let start = (self.y0 as usize + y) * stride + self.x0 as usize * 3;
            let row = &raw[start..start + 3 * w];
            let range = y * w..(y + 1) * w;
            let (r, g, b) = (
                &mut r_plane[range.clone()],
                &mut g_plane[range.clone()],
                &mut b_plane[range],
            );
            if self.flipped {
                for (x, px) in row.chunks_exact(3).rev().enumerate() {
                    r[x] = (f32::from(px[0]) + offset[0]) * scale[0];
                    g[x] = (f32::from(px[1]) + offset[1]) * scale[1];
                    b[x] = (f32::from(px[2]) + offset[2]) * scale[2];
                }
            } else {
                for (x, px) in row.chunks_exact(3).enumerate() {
                    r[x] = (f32::from(px[0]) + offset[0]) * scale[0];
                    g[x] = (f32::from(px[1]) + offset[1]) * scale[1];
                    b[x] = (f32::from(px[2]) + offset[2]) * scale[2];
                }
            }
        }
    }
}
