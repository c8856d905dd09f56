//! Drawing the demo's images: a class's shape or texture in its own hue on a varied
//! background, supersampled, with grain.

use std::f64::consts::PI;

use image::RgbImage;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{DEMO_CLASSES, DemoConfig};

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
