//! Decoding any supported file into 8-bit RGB, robustly.
//!
//! Grayscale, grayscale+alpha, RGBA, 16-bit, palette, CMYK/YCCK JPEGs and EXIF-rotated
//! images all come out as upright 8-bit RGB. Anything that is not a whole, decodable
//! image becomes a [`DecodeError`] that says why, so callers can skip and report it.

use std::io::Cursor;

use image::{
    DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage, metadata::Orientation,
};
use serde::{Deserialize, Serialize};
use zune_core::{colorspace::ColorSpace, options::DecoderOptions};

/// Why a file could not be turned into an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", content = "detail", rename_all = "kebab-case")]
pub enum DecodeError {
    /// The file has no bytes.
    #[error("empty file")]
    Empty,
    /// The bytes are not in any supported image format.
    #[error("not an image (unrecognised format)")]
    NotAnImage,
    /// The data ends before the image does.
    #[error("truncated: {0}")]
    Truncated(String),
    /// The data is damaged or not valid for its format.
    #[error("corrupt: {0}")]
    Corrupt(String),
    /// The image is larger than the configured pixel limit.
    #[error("too large: {width}x{height} exceeds {limit} pixels")]
    TooLarge {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// The limit it exceeds.
        limit: u64,
    },
    /// The format is recognised but this variant of it is not supported.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

/// Options for [`decode_rgb8`].
#[derive(Debug, Clone, Copy)]
pub struct DecodeOptions {
    /// Images with more pixels than this are rejected before decoding.
    pub max_pixels: u64,
    /// Colour that transparent pixels are composited over.
    pub alpha_background: [u8; 3],
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            max_pixels: 178_956_970,
            alpha_background: [255, 255, 255],
        }
    }
}

/// A decoded image and, for files that decoded only leniently, what was wrong with them.
#[derive(Debug)]
pub struct Decoded {
    /// The upright 8-bit RGB image.
    pub image: RgbImage,
    /// Set when the file is damaged but still yielded a whole image (for example extra
    /// bytes between JPEG markers, which libjpeg also accepts with a warning).
    pub warning: Option<String>,
}

/// Decodes `bytes` (any supported format, detected from content, not from the file
/// name) into upright 8-bit RGB.
///
/// ```
/// let mut png = Vec::new();
/// image::GrayImage::from_pixel(3, 2, image::Luma([7]))
///     .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
///     .unwrap();
/// let decoded = alexnet_prep::decode_rgb8(&png, &Default::default()).unwrap();
/// assert_eq!(decoded.image.dimensions(), (3, 2));
/// assert_eq!(decoded.image.get_pixel(0, 0).0, [7, 7, 7]);
/// ```
pub fn decode_rgb8(bytes: &[u8], options: &DecodeOptions) -> Result<Decoded, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    match image::guess_format(bytes) {
        Ok(ImageFormat::Jpeg) => decode_jpeg(bytes, options),
        Ok(format) => decode_other(bytes, format, options),
        Err(_) => Err(DecodeError::NotAnImage),
    }
}

fn check_size(width: u32, height: u32, options: &DecodeOptions) -> Result<(), DecodeError> {
    if width == 0 || height == 0 {
        return Err(DecodeError::Corrupt(format!(
            "zero-sized image {width}x{height}"
        )));
    }
    if u64::from(width) * u64::from(height) > options.max_pixels {
        return Err(DecodeError::TooLarge {
            width,
            height,
            limit: options.max_pixels,
        });
    }
    Ok(())
}

/// JPEGs go through zune-jpeg directly: strict first, so a truncated file is an error
/// (as in PIL) rather than a grey-padded image; then leniently for the other spec
/// violations that libjpeg also tolerates, with a warning.
fn decode_jpeg(bytes: &[u8], options: &DecodeOptions) -> Result<Decoded, DecodeError> {
    match decode_jpeg_with(bytes, options, true) {
        Ok(image) => Ok(Decoded {
            image,
            warning: None,
        }),
        Err(JpegFailure::Final(error)) => Err(error),
        Err(JpegFailure::Strict(message)) => {
            let lowered = message.to_ascii_lowercase();
            if lowered.contains("premature end")
                || lowered.contains("no more bytes")
                || lowered.contains("eof")
                || lowered.contains("exhausted")
            {
                return Err(DecodeError::Truncated(message));
            }
            match decode_jpeg_with(bytes, options, false) {
                Ok(image) => Ok(Decoded {
                    image,
                    warning: Some(format!("decoded leniently: {message}")),
                }),
                Err(JpegFailure::Final(error)) => Err(error),
                Err(JpegFailure::Strict(lenient)) => Err(DecodeError::Corrupt(lenient)),
            }
        }
    }
}

enum JpegFailure {
    /// Not worth retrying (too large, unsupported).
    Final(DecodeError),
    /// A decoder error message.
    Strict(String),
}

fn decode_jpeg_with(
    bytes: &[u8],
    options: &DecodeOptions,
    strict: bool,
) -> Result<RgbImage, JpegFailure> {
    let decoder_options = DecoderOptions::default()
        .set_strict_mode(strict)
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX)
        .jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(
        zune_core::bytestream::ZCursor::new(bytes),
        decoder_options,
    );
    decoder
        .decode_headers()
        .map_err(|error| JpegFailure::Strict(error.to_string()))?;
    let (width, height) = decoder
        .dimensions()
        .ok_or_else(|| JpegFailure::Strict("no frame header".into()))?;
    let (width, height) = (width as u32, height as u32);
    check_size(width, height, options).map_err(JpegFailure::Final)?;
    let orientation = decoder
        .exif()
        .and_then(|exif| Orientation::from_exif_chunk(exif))
        .unwrap_or(Orientation::NoTransforms);
    let pixels = decoder
        .decode()
        .map_err(|error| JpegFailure::Strict(error.to_string()))?;
    let out_space = decoder.output_colorspace().unwrap_or(ColorSpace::RGB);
    let image = match out_space.num_components() {
        3 => RgbImage::from_raw(width, height, pixels),
        1 => image::GrayImage::from_raw(width, height, pixels)
            .map(|gray| DynamicImage::ImageLuma8(gray).to_rgb8()),
        n => {
            return Err(JpegFailure::Final(DecodeError::Unsupported(format!(
                "JPEG decoded to {n} components"
            ))));
        }
    }
    .ok_or_else(|| JpegFailure::Strict("decoder returned a short pixel buffer".into()))?;
    Ok(orient(image, orientation))
}

fn orient(image: RgbImage, orientation: Orientation) -> RgbImage {
    if orientation == Orientation::NoTransforms {
        return image;
    }
    let mut dynamic = DynamicImage::ImageRgb8(image);
    dynamic.apply_orientation(orientation);
    dynamic.into_rgb8()
}

fn decode_other(
    bytes: &[u8],
    format: ImageFormat,
    options: &DecodeOptions,
) -> Result<Decoded, DecodeError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    // Room for the largest allowed image at 16 bits × 4 channels, plus decoder slack.
    limits.max_alloc = Some(options.max_pixels.saturating_mul(8).saturating_add(1 << 26));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(classify)?;
    let (width, height) = decoder.dimensions();
    check_size(width, height, options)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(classify)?;
    image.apply_orientation(orientation);
    Ok(Decoded {
        image: to_rgb8(image, options.alpha_background),
        warning: None,
    })
}

fn classify(error: image::ImageError) -> DecodeError {
    use image::ImageError;
    match error {
        ImageError::Unsupported(error) => DecodeError::Unsupported(error.to_string()),
        ImageError::Limits(error) => DecodeError::Unsupported(error.to_string()),
        ImageError::IoError(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
            DecodeError::Truncated(error.to_string())
        }
        other => {
            let message = other.to_string();
            let lowered = message.to_ascii_lowercase();
            if lowered.contains("eof") || lowered.contains("end of") || lowered.contains("truncat")
            {
                DecodeError::Truncated(message)
            } else {
                DecodeError::Corrupt(message)
            }
        }
    }
}

/// Converts any decoded image to 8-bit RGB, compositing transparency over `background`.
fn to_rgb8(image: DynamicImage, background: [u8; 3]) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    let (width, height) = rgba.dimensions();
    let mut out = RgbImage::new(width, height);
    for (dst, src) in out.pixels_mut().zip(rgba.pixels()) {
        let alpha = u32::from(src[3]);
        for c in 0..3 {
            let blended = u32::from(src[c]) * alpha + u32::from(background[c]) * (255 - alpha);
            dst[c] = ((blended + 127) / 255) as u8;
        }
    }
    out
}
