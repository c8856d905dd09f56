//! A Caltech-shaped demo dataset, drawn procedurally, so everything runs on a fresh
//! machine with no download.
//!
//! Each class is a shape (circle, star, ...) or a texture (stripes, checker, ...) in a
//! hue of its own (jittered, with random saturation and brightness), at random sizes,
//! positions and rotations on varied backgrounds, written as
//! real JPEG files in `NNN.label/NNN_XXXX.jpg`. The same seed gives the same bytes.
//! With `oddities` on, the folder also holds what real downloads hold: a stray
//! non-image file, a nested folder, a truncated JPEG, and grayscale, RGBA-PNG and
//! CMYK images.

use std::{
    f64::consts::PI,
    fs,
    path::{Path, PathBuf},
};

use image::{GrayImage, ImageFormat, RgbImage, RgbaImage};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{
    error::{IoContext, PrepError, Result},
    preprocess::write_atomic,
    transform::encode_jpeg,
};

/// The drawable classes, in class-id order.
pub const DEMO_CLASSES: [&str; 12] = [
    "circle", "square", "triangle", "star", "cross", "ring", "hexagon", "crescent", "stripes",
    "checker", "dots", "grid",
];

const MARKER: &str = "demo.json";

/// Settings of the demo dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    /// Where tools put the demo: `<dir>/raw` (generated) and `<dir>/processed`.
    /// [`generate_demo`] itself writes to the folder it is given.
    pub dir: PathBuf,
    /// Number of classes, 2 to 12.
    pub classes: usize,
    /// Images drawn per class.
    pub images_per_class: usize,
    /// Smallest width or height of a drawn image.
    pub min_size: u32,
    /// Largest width or height of a drawn image.
    pub max_size: u32,
    /// Seed: the same seed gives byte-identical files.
    pub seed: u64,
    /// Add the messy files of a real download (see the module docs).
    pub oddities: bool,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("data/demo"),
            classes: 10,
            images_per_class: 120,
            min_size: 96,
            max_size: 160,
            seed: 7,
            oddities: true,
        }
    }
}

impl DemoConfig {
    /// Checks every value; the error names the offending key.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field, reason: String| Err(PrepError::InvalidConfig { field, reason });
        if !(2..=DEMO_CLASSES.len()).contains(&self.classes) {
            return invalid(
                "demo.classes",
                format!("{} is not in 2..={}", self.classes, DEMO_CLASSES.len()),
            );
        }
        if self.images_per_class == 0 {
            return invalid("demo.images_per_class", "must be positive".into());
        }
        if self.min_size < 16 || self.min_size > self.max_size || self.max_size > 4096 {
            return invalid(
                "demo.min_size",
                format!(
                    "need 16 <= min_size <= max_size <= 4096, got {}..{}",
                    self.min_size, self.max_size
                ),
            );
        }
        Ok(())
    }

    /// The folder name of class `id`, Caltech style: `001.circle`.
    pub fn folder(id: usize) -> String {
        format!("{:03}.{}", id + 1, DEMO_CLASSES[id])
    }
}

/// What [`generate_demo`] produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DemoSummary {
    /// The configuration it was generated with.
    pub config: DemoConfig,
    /// Clean images written.
    pub images: usize,
    /// Paths (relative) of the odd files added.
    pub oddities: Vec<String>,
}

/// Writes the demo dataset into `dir`. A folder already holding the same demo is
/// reused as it is; a folder holding anything else is refused.
pub fn generate_demo(dir: &Path, config: &DemoConfig) -> Result<DemoSummary> {
    config.validate()?;
    let marker = dir.join(MARKER);
    let existing = fs::read_to_string(&marker)
        .ok()
        .and_then(|text| serde_json::from_str::<DemoSummary>(&text).ok());
    if let Some(summary) = existing.filter(|summary| summary.config == *config) {
        return Ok(summary);
    }
    if dir.exists() && fs::read_dir(dir).at(dir)?.next().is_some() {
        if !marker.exists() {
            return Err(PrepError::OutputNotEmpty(dir.to_path_buf()));
        }
        // An earlier demo with other settings: replace it.
        for id in 0..DEMO_CLASSES.len() {
            let class_dir = dir.join(DemoConfig::folder(id));
            if class_dir.is_dir() {
                fs::remove_dir_all(&class_dir).at(&class_dir)?;
            }
        }
        fs::remove_file(&marker).at(&marker)?;
    }
    for id in 0..config.classes {
        let class_dir = dir.join(DemoConfig::folder(id));
        fs::create_dir_all(&class_dir).at(&class_dir)?;
    }
    let jobs: Vec<(usize, usize)> = (0..config.classes)
        .flat_map(|class| (0..config.images_per_class).map(move |index| (class, index)))
        .collect();
    jobs.par_iter().try_for_each(|&(class, index)| {
        let image = draw(config, class, index as u64);
        let path = dir.join(DemoConfig::folder(class)).join(format!(
            "{:03}_{:04}.jpg",
            class + 1,
            index + 1
        ));
        write_jpeg(&path, &image)
    })?;
    let oddities = if config.oddities {
        write_oddities(dir, config)?
    } else {
        Vec::new()
    };
    let summary = DemoSummary {
        config: config.clone(),
        images: jobs.len(),
        oddities,
    };
    let text = serde_json::to_vec_pretty(&summary).map_err(|error| PrepError::InvalidConfig {
        field: "demo",
        reason: error.to_string(),
    })?;
    write_atomic(&marker, &text)?;
    Ok(summary)
}

fn write_jpeg(path: &Path, image: &RgbImage) -> Result<()> {
    let mut bytes = Vec::new();
    encode_jpeg(image, 92, &mut bytes).map_err(|reason| PrepError::InvalidConfig {
        field: "demo.max_size",
        reason,
    })?;
    write_atomic(path, &bytes)
}

/// The files a real download holds besides clean images; a class gets one only if the
/// demo has that many classes.
fn write_oddities(dir: &Path, config: &DemoConfig) -> Result<Vec<String>> {
    let mut written = Vec::new();
    let extra = config.images_per_class as u64 + 1000;
    let class_file = |class: usize, name: &str| -> (PathBuf, String) {
        let rel = format!("{}/{name}", DemoConfig::folder(class));
        (dir.join(&rel), rel)
    };
    let mut add = |rel: String| written.push(rel);

    // A stray non-image, as Caltech-256's 198.spider/RENAME2.
    let (path, rel) = class_file(0, "RENAME2");
    write_atomic(&path, b"rename these files\n")?;
    add(rel);
    // A nested folder, as Caltech-256's 056.dog/greg/.
    let nested = dir.join(DemoConfig::folder(1)).join("greg");
    fs::create_dir_all(&nested).at(&nested)?;
    for k in 0..2 {
        let path = nested.join(format!("greg_{k}.jpg"));
        write_jpeg(&path, &draw(config, 1, extra + k))?;
        add(format!("{}/greg/greg_{k}.jpg", DemoConfig::folder(1)));
    }
    if config.classes > 2 {
        // A download cut short.
        let (path, rel) = class_file(2, "003_truncated.jpg");
        let mut bytes = Vec::new();
        encode_jpeg(&draw(config, 2, extra), 92, &mut bytes).map_err(|reason| {
            PrepError::InvalidConfig {
                field: "demo",
                reason,
            }
        })?;
        bytes.truncate(bytes.len() / 2);
        write_atomic(&path, &bytes)?;
        add(rel);
    }
    if config.classes > 3 {
        let (path, rel) = class_file(3, "004_gray.jpg");
        let gray: GrayImage = image::DynamicImage::ImageRgb8(draw(config, 3, extra)).to_luma8();
        let mut bytes = Vec::new();
        jpeg_encoder::Encoder::new(&mut bytes, 92)
            .encode(
                gray.as_raw(),
                gray.width() as u16,
                gray.height() as u16,
                jpeg_encoder::ColorType::Luma,
            )
            .map_err(|error| PrepError::InvalidConfig {
                field: "demo",
                reason: error.to_string(),
            })?;
        write_atomic(&path, &bytes)?;
        add(rel);
    }
    if config.classes > 4 {
        let (path, rel) = class_file(4, "005_alpha.png");
        let rgb = draw(config, 4, extra);
        let rgba = RgbaImage::from_fn(rgb.width(), rgb.height(), |x, y| {
            let [r, g, b] = rgb.get_pixel(x, y).0;
            image::Rgba([r, g, b, if x < 4 { 0 } else { 255 }])
        });
        let mut bytes = std::io::Cursor::new(Vec::new());
        rgba.write_to(&mut bytes, ImageFormat::Png)
            .map_err(|error| PrepError::InvalidConfig {
                field: "demo",
                reason: error.to_string(),
            })?;
        write_atomic(&path, bytes.get_ref())?;
        add(rel);
    }
    if config.classes > 5 {
        let (path, rel) = class_file(5, "006_cmyk.jpg");
        let rgb = draw(config, 5, extra);
        let cmyk: Vec<u8> = rgb
            .pixels()
            .flat_map(|p| {
                let [r, g, b] = p.0.map(f64::from);
                let k = 255.0 - r.max(g).max(b);
                let scale = if k >= 255.0 { 0.0 } else { 255.0 / (255.0 - k) };
                let c = |v: f64| ((255.0 - v - k) * scale).round().clamp(0.0, 255.0) as u8;
                [c(r), c(g), c(b), k.round() as u8]
            })
            .collect();
        let mut bytes = Vec::new();
        jpeg_encoder::Encoder::new(&mut bytes, 95)
            .encode(
                &cmyk,
                rgb.width() as u16,
                rgb.height() as u16,
                jpeg_encoder::ColorType::Cmyk,
            )
            .map_err(|error| PrepError::InvalidConfig {
                field: "demo",
                reason: error.to_string(),
            })?;
        write_atomic(&path, &bytes)?;
        add(rel);
    }
    Ok(written)
}

/// Draws image `index` of `class`; deterministic in `(config.seed, class, index)`.
pub fn draw(config: &DemoConfig, class: usize, index: u64) -> RgbImage {
    let mut rng = ChaCha8Rng::seed_from_u64(
        config.seed ^ ((class as u64 + 1) << 40) ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    let width = rng.random_range(config.min_size..=config.max_size);
    let height = rng.random_range(config.min_size..=config.max_size);
    let paint = Paint::random(&mut rng, class, width, height);
    let noise_seed: u64 = rng.random();
    RgbImage::from_fn(width, height, |x, y| {
        // 2×2 supersampling for smooth edges.
        let mut acc = [0.0f64; 3];
        for (dx, dy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
            let colour = paint.colour(f64::from(x) + dx, f64::from(y) + dy);
            for c in 0..3 {
                acc[c] += colour[c] / 4.0;
            }
        }
        let grain = (hash(noise_seed, x, y) % 17) as f64 - 8.0;
        image::Rgb(acc.map(|v| (v + grain).round().clamp(0.0, 255.0) as u8))
    })
}

fn hash(seed: u64, x: u32, y: u32) -> u64 {
    let mut h = seed ^ (u64::from(x) << 32 | u64::from(y));
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

type Colour = [f64; 3];

/// A muted background colour (any hue, low saturation), so the saturated class ink
/// stands out as the object's colour does in a photo.
fn random_colour(rng: &mut ChaCha8Rng) -> Colour {
    hsv(
        rng.random_range(0.0..360.0),
        rng.random_range(0.0..0.35),
        rng.random_range(0.15..0.95),
    )
}

fn luminance(c: &Colour) -> f64 {
    0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]
}

fn hsv(hue: f64, saturation: f64, value: f64) -> Colour {
    let h = hue.rem_euclid(360.0) / 60.0;
    let c = value * saturation;
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = value - c;
    [r, g, b].map(|v| (v + m) * 255.0)
}

/// The class's ink: a hue of its own (jittered), like the typical colours of real
/// categories, so both shape and colour carry the class.
fn class_ink(rng: &mut ChaCha8Rng, class_hue: f64, background: &Colour) -> Colour {
    for _ in 0..64 {
        let colour = hsv(
            class_hue + rng.random_range(-10.0..10.0),
            rng.random_range(0.7..1.0),
            rng.random_range(0.45..1.0),
        );
        if (luminance(&colour) - luminance(background)).abs() >= 60.0 {
            return colour;
        }
    }
    // A background too close in brightness: the inverse brightness still reads clearly.
    let flipped = 255.0 - luminance(background);
    hsv(class_hue, 0.8, (flipped / 255.0).clamp(0.2, 1.0))
}

enum Background {
    Solid(Colour),
    Gradient {
        from: Colour,
        to: Colour,
        dir: (f64, f64),
        extent: f64,
    },
    Blobs {
        base: Colour,
        other: Colour,
        freq: f64,
        phase: (f64, f64),
    },
}

impl Background {
    fn random(rng: &mut ChaCha8Rng, width: u32, height: u32) -> Self {
        let base = random_colour(rng);
        match rng.random_range(0..3) {
            0 => Background::Solid(base),
            1 => {
                let angle = rng.random_range(0.0..2.0 * PI);
                Background::Gradient {
                    from: base,
                    to: random_colour(rng),
                    dir: (angle.cos(), angle.sin()),
                    extent: f64::from(width.max(height)),
                }
            }
            _ => Background::Blobs {
                base,
                other: random_colour(rng),
                freq: rng.random_range(0.03..0.08),
                phase: (rng.random_range(0.0..10.0), rng.random_range(0.0..10.0)),
            },
        }
    }

    fn mid(&self) -> Colour {
        match self {
            Background::Solid(c) => *c,
            Background::Gradient { from, to, .. }
            | Background::Blobs {
                base: from,
                other: to,
                ..
            } => [0, 1, 2].map(|i| (from[i] + to[i]) / 2.0),
        }
    }

    fn colour(&self, x: f64, y: f64) -> Colour {
        match self {
            Background::Solid(c) => *c,
            Background::Gradient {
                from,
                to,
                dir,
                extent,
            } => {
                let t = ((x * dir.0 + y * dir.1) / extent).rem_euclid(1.0);
                [0, 1, 2].map(|i| from[i] + (to[i] - from[i]) * t)
            }
            Background::Blobs {
                base,
                other,
                freq,
                phase,
            } => {
                let t = 0.5 + 0.25 * ((x * freq + phase.0).sin() + (y * freq + phase.1).cos());
                [0, 1, 2].map(|i| base[i] + (other[i] - base[i]) * t)
            }
        }
    }
}

/// Everything needed to colour a pixel of one image.
struct Paint {
    kind: &'static str,
    background: Background,
    ink: Colour,
    centre: (f64, f64),
    radius: f64,
    cos: f64,
    sin: f64,
    period: f64,
}

impl Paint {
    fn random(rng: &mut ChaCha8Rng, class: usize, width: u32, height: u32) -> Self {
        let kind = DEMO_CLASSES[class];
        let background = Background::random(rng, width, height);
        // Hues spread evenly around the colour wheel (12 classes: 30 degrees apart).
        let class_hue = class as f64 * 360.0 / DEMO_CLASSES.len() as f64;
        let ink = class_ink(rng, class_hue, &background.mid());
        let side = f64::from(width.min(height));
        let radius = side * rng.random_range(0.28..0.45);
        // Keep the shape inside the center square that preprocessing crops to.
        let slack = (side / 2.0 - radius).max(0.0);
        let centre = (
            f64::from(width) / 2.0 + rng.random_range(-slack..=slack) * 0.6,
            f64::from(height) / 2.0 + rng.random_range(-slack..=slack) * 0.6,
        );
        let angle = rng.random_range(0.0..2.0 * PI);
        Self {
            kind,
            background,
            ink,
            centre,
            radius,
            cos: angle.cos(),
            sin: angle.sin(),
            period: side * rng.random_range(0.12..0.22),
        }
    }

    fn colour(&self, x: f64, y: f64) -> Colour {
        let (dx, dy) = (x - self.centre.0, y - self.centre.1);
        // Shape-local coordinates: rotated, in units of the radius.
        let u = (dx * self.cos + dy * self.sin) / self.radius;
        let v = (-dx * self.sin + dy * self.cos) / self.radius;
        // Texture coordinates: rotated, in units of the period.
        let (s, t) = (
            (dx * self.cos + dy * self.sin) / self.period,
            (-dx * self.sin + dy * self.cos) / self.period,
        );
        let inside = match self.kind {
            "circle" => u * u + v * v <= 0.81,
            "square" => regular_polygon(u, v, 4, 0.95),
            "triangle" => regular_polygon(u, v, 3, 1.0),
            "star" => star(u, v),
            "cross" => (u.abs() <= 0.28 && v.abs() <= 0.95) || (v.abs() <= 0.28 && u.abs() <= 0.95),
            "ring" => (0.3..=0.9).contains(&(u * u + v * v)),
            "hexagon" => regular_polygon(u, v, 6, 0.95),
            "crescent" => u * u + v * v <= 0.9 && (u - 0.45).powi(2) + v * v > 0.55,
            "stripes" => s.rem_euclid(1.0) < 0.5,
            "checker" => (s.floor() + t.floor()).rem_euclid(2.0) < 1.0,
            "dots" => (s.rem_euclid(1.0) - 0.5).powi(2) + (t.rem_euclid(1.0) - 0.5).powi(2) < 0.09,
            "grid" => s.rem_euclid(1.0) < 0.2 || t.rem_euclid(1.0) < 0.2,
            _ => false,
        };
        if inside {
            self.ink
        } else {
            self.background.colour(x, y)
        }
    }
}

/// Inside a regular `n`-gon of circumradius `r` centred at the origin.
fn regular_polygon(u: f64, v: f64, n: u32, r: f64) -> bool {
    let apothem = r * (PI / f64::from(n)).cos();
    (0..n).all(|k| {
        let angle = (2.0 * f64::from(k) + 1.0) * PI / f64::from(n);
        u * angle.cos() + v * angle.sin() <= apothem
    })
}

/// Inside a five-pointed star of outer radius 1.
fn star(u: f64, v: f64) -> bool {
    let rho = (u * u + v * v).sqrt();
    let sector = 2.0 * PI / 5.0;
    let phi = v.atan2(u).rem_euclid(sector) - sector / 2.0;
    // Edge from the tip (radius 1, angle 0 after folding) to the valley (radius 0.42).
    let (outer, inner) = (1.0, 0.42);
    let (tip_x, tip_y) = (outer * (sector / 2.0).cos(), outer * (sector / 2.0).sin());
    let (valley_x, valley_y) = (inner, 0.0);
    let (px, py) = (rho * phi.cos(), rho * phi.abs().sin());
    // Point is inside when it lies on the origin's side of the tip-valley edge.
    let cross = |ax: f64, ay: f64, bx: f64, by: f64, cx: f64, cy: f64| {
        (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
    };
    cross(valley_x, valley_y, tip_x, tip_y, px, py).signum()
        == cross(valley_x, valley_y, tip_x, tip_y, 0.0, 0.0).signum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawing_is_deterministic_and_sized() {
        let config = DemoConfig::default();
        let a = draw(&config, 3, 5);
        let b = draw(&config, 3, 5);
        assert_eq!(a, b);
        assert!((config.min_size..=config.max_size).contains(&a.width()));
        assert_ne!(draw(&config, 3, 6), a);
    }

    #[test]
    fn shapes_cover_part_of_the_image() {
        for (class, name) in DEMO_CLASSES.iter().enumerate() {
            let mut rng = ChaCha8Rng::seed_from_u64(class as u64);
            let paint = Paint::random(&mut rng, class, 128, 128);
            let inside = (0..128 * 128)
                .filter(|i| paint.colour(f64::from(i % 128), f64::from(i / 128)) == paint.ink)
                .count();
            let fraction = inside as f64 / (128.0 * 128.0);
            assert!((0.03..0.8).contains(&fraction), "{name}: {fraction}");
        }
    }
}
