//! Center crop and resize to a square, and JPEG encoding: the per-image work.

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer, images::CroppedImage};
use image::RgbImage;

use crate::config::ResizeFilter;

impl ResizeFilter {
    fn algorithm(self) -> ResizeAlg {
        ResizeAlg::Convolution(match self {
            ResizeFilter::Bilinear => FilterType::Bilinear,
            ResizeFilter::Hamming => FilterType::Hamming,
            ResizeFilter::CatmullRom => FilterType::CatmullRom,
            ResizeFilter::Lanczos3 => FilterType::Lanczos3,
        })
    }
}

/// Reusable per-thread state for [`SquareResizer::resize`]: the SIMD resizer's buffers.
pub struct SquareResizer {
    resizer: Resizer,
    size: u32,
    center_crop: bool,
    filter: ResizeFilter,
}

/// The integer center-crop box `(left, top, side)` of a `width × height` image, as
/// the original (`(w - s) // 2`).
pub fn center_square(width: u32, height: u32) -> (u32, u32, u32) {
    let side = width.min(height);
    ((width - side) / 2, (height - side) / 2, side)
}

impl SquareResizer {
    /// A resizer to `size × size`, center-cropping first when `center_crop` is set.
    pub fn new(size: u32, center_crop: bool, filter: ResizeFilter) -> Self {
        Self {
            resizer: Resizer::new(),
            size,
            center_crop,
            filter,
        }
    }

    /// Center crops (when configured) and resizes `image` to `size × size`.
    pub fn resize(&mut self, image: &RgbImage) -> Result<RgbImage, String> {
        let (width, height) = image.dimensions();
        let options = ResizeOptions::new().resize_alg(self.filter.algorithm());
        let mut out = RgbImage::new(self.size, self.size);
        let result = if self.center_crop {
            // A cropped view (not a crop box) so the filter never reads outside the square.
            let (left, top, side) = center_square(width, height);
            let view = CroppedImage::new(image, left, top, side, side)
                .map_err(|error| format!("crop failed: {error}"))?;
            self.resizer.resize(&view, &mut out, &options)
        } else {
            self.resizer.resize(image, &mut out, &options)
        };
        result.map_err(|error| format!("resize failed: {error}"))?;
        Ok(out)
    }
}

/// Encodes an RGB image as a baseline JPEG (4:2:0, as libjpeg's default).
pub fn encode_jpeg(image: &RgbImage, quality: u8, out: &mut Vec<u8>) -> Result<(), String> {
    out.clear();
    let (width, height) = image.dimensions();
    let (width, height) = (
        u16::try_from(width).map_err(|_| format!("width {width} too large for JPEG"))?,
        u16::try_from(height).map_err(|_| format!("height {height} too large for JPEG"))?,
    );
    let encoder = jpeg_encoder::Encoder::new(&mut *out, quality);
    encoder
        .encode(image.as_raw(), width, height, jpeg_encoder::ColorType::Rgb)
        .map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn center_square_is_centered() {
        assert_eq!(center_square(300, 200), (50, 0, 200));
        assert_eq!(center_square(200, 301), (0, 50, 200));
        assert_eq!(center_square(64, 64), (0, 0, 64));
    }

    #[test]
    fn resize_gives_the_requested_square() {
        let image = RgbImage::from_fn(301, 157, |x, y| image::Rgb([x as u8, y as u8, 7]));
        for center_crop in [true, false] {
            let out = SquareResizer::new(64, center_crop, ResizeFilter::default())
                .resize(&image)
                .unwrap();
            assert_eq!(out.dimensions(), (64, 64));
        }
    }

    #[test]
    fn crop_keeps_the_center_content() {
        // Left and right thirds red, middle green: the crop of a 3:1 image is all green.
        let image = RgbImage::from_fn(300, 100, |x, _| {
            if (100..200).contains(&x) {
                image::Rgb([0, 255, 0])
            } else {
                image::Rgb([255, 0, 0])
            }
        });
        let out = SquareResizer::new(32, true, ResizeFilter::Bilinear)
            .resize(&image)
            .unwrap();
        assert!(out.pixels().all(|p| p.0 == [0, 255, 0]));
        let squashed = SquareResizer::new(32, false, ResizeFilter::Bilinear)
            .resize(&image)
            .unwrap();
        assert_eq!(squashed.get_pixel(0, 16).0, [255, 0, 0]);
    }
}
