//! A window onto an image that crops and flips move without copying, resampled when an
//! op resizes, and written out once as CHW `f32`; and torchvision's random resized
//! crop window.

use std::{borrow::Cow, cell::RefCell};

use fast_image_resize::{ResizeAlg, ResizeOptions, Resizer, images::CroppedImage};
use image::RgbImage;
use rand::{Rng, RngExt};

use crate::error::{AugmentError, Result};

/// torchvision's `RandomResizedCrop.get_params`: ten tries at a window of random area
/// and log-uniform aspect ratio, then the central window with the ratio clamped.
pub(crate) fn random_resized_window(
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
pub(crate) struct View<'a> {
    base: Cow<'a, RgbImage>,
    x0: u32,
    y0: u32,
    pub w: u32,
    pub h: u32,
    /// Mirrored left to right.
    pub flipped: bool,
}

impl<'a> View<'a> {
    pub(crate) fn whole(base: Cow<'a, RgbImage>) -> Self {
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
    pub(crate) fn crop(&mut self, left: u32, top: u32, w: u32, h: u32) {
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
    pub(crate) fn resize(&mut self, w: u32, h: u32, alg: ResizeAlg) -> Result<()> {
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
    pub(crate) fn emit(&self, offset: [f32; 3], scale: [f32; 3], out: &mut [f32]) {
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
