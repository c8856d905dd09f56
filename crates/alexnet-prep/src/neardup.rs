//! Near-duplicate images across splits: a 64-bit perceptual hash (pHash) and an 8×8
//! grey thumbnail of each written image; pairs whose hashes are within a Hamming
//! distance are found in near-linear time, then confirmed on their thumbnails.
//!
//! Computed here rather than with a perceptual-hash crate because it is a few lines
//! over the image the worker has already cropped and resized (a re-encoded, resized or
//! recompressed copy of a photo crops and resizes to nearly the same pixels), and the
//! confirmation needs the thumbnail beside the hash.

use std::collections::HashMap;

use image::{GrayImage, RgbImage, imageops};
use serde::{Deserialize, Serialize};

use crate::format::Split;

/// Side of the grey image the hash's DCT is taken of.
const DCT_SIDE: usize = 32;

/// The largest mean absolute difference, in grey levels (0–255), between two 8×8
/// thumbnails that confirms a pair. Measured: on the demo's drawings a copy resized
/// ×0.6–×1.5 and recompressed at JPEG quality 40–70 differs by at most 2.05, and
/// distinct drawings whose hashes are within 8 bits by 4.9 or more; a copy of random
/// colour blocks (the hardest case: every edge at full contrast) resized ×0.64 and back
/// differs by 3.6.
pub const MAX_THUMBNAIL_DIFFERENCE: f64 = 4.0;

/// What near duplicates are judged by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    /// The perceptual hash: the signs, against their median, of the 8×8 lowest
    /// frequencies of the DCT of a 32×32 grey version (the DC term's bit is 0).
    pub hash: u64,
    /// The 8×8 grey thumbnail (area averages).
    pub thumbnail: [u8; 64],
}

/// The signature of an image.
pub fn signature(image: &RgbImage) -> Signature {
    let grey = imageops::grayscale(image);
    let small = imageops::thumbnail(&grey, DCT_SIDE as u32, DCT_SIDE as u32);
    let mut thumbnail = [0u8; 64];
    thumbnail.copy_from_slice(imageops::thumbnail(&grey, 8, 8).as_raw());
    Signature {
        hash: dct_hash(&small),
        thumbnail,
    }
}

/// The sign bits of the 8×8 lowest DCT-II frequencies of a `DCT_SIDE` square, against
/// the median of the 63 that are not the DC term.
fn dct_hash(small: &GrayImage) -> u64 {
    let n = DCT_SIDE;
    let basis: Vec<f64> = (0..8 * n)
        .map(|k| {
            let (u, x) = (k / n, k % n);
            (std::f64::consts::PI * (2 * x + 1) as f64 * u as f64 / (2 * n) as f64).cos()
        })
        .collect();
    // rows[y][v] = Σ_x pixel[y][x] · basis[v][x]; coefficients[u][v] = Σ_y basis[u][y] · rows[y][v].
    let pixels = small.as_raw();
    let mut rows = vec![0.0f64; n * 8];
    for y in 0..n {
        for v in 0..8 {
            rows[y * 8 + v] = (0..n)
                .map(|x| f64::from(pixels[y * n + x]) * basis[v * n + x])
                .sum();
        }
    }
    let mut coefficients = [0.0f64; 64];
    for u in 0..8 {
        for v in 0..8 {
            coefficients[u * 8 + v] = (0..n).map(|y| basis[u * n + y] * rows[y * 8 + v]).sum();
        }
    }
    let mut ac: Vec<f64> = coefficients[1..].to_vec();
    ac.sort_by(f64::total_cmp);
    let median = ac[ac.len() / 2];
    coefficients[1..]
        .iter()
        .enumerate()
        .fold(0u64, |hash, (k, &c)| {
            hash | (u64::from(c > median) << (k + 1))
        })
}

/// The mean absolute difference of two thumbnails, in grey levels.
pub fn thumbnail_difference(a: &[u8; 64], b: &[u8; 64]) -> f64 {
    let sum: u32 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| u32::from(x.abs_diff(y)))
        .sum();
    f64::from(sum) / 64.0
}

/// Two images in different splits whose hashes are within the configured distance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NearDuplicate {
    /// The image in the earlier split (train before val before test), relative to the
    /// input folder.
    pub first: String,
    /// Its split.
    pub first_split: Split,
    /// The other image.
    pub second: String,
    /// Its split.
    pub second_split: Split,
    /// Hamming distance of the two hashes (0–64).
    pub distance: u32,
    /// Mean absolute difference of their 8×8 grey thumbnails, in grey levels.
    pub difference: f64,
    /// Whether `second` was removed from its split (`prep.near_duplicates = "drop"`).
    pub dropped: bool,
}

/// Pairs `(i, j, distance)` of `images` (hash and split) in different splits whose
/// hashes differ in at most `max_distance` bits, with `i` in the earlier split, sorted.
///
/// Multi-index hashing: the 64 bits are cut into `max_distance + 1` pieces; two hashes
/// within the distance agree exactly on at least one piece (pigeonhole), so only images
/// that share a piece are compared. With hashes spread as photos' are, that is
/// `O(n log n)`; images that all hash alike (blank frames) meet in one bucket. The
/// candidates still need confirming ([`thumbnail_difference`]).
pub fn cross_split_pairs(images: &[(u64, Split)], max_distance: u32) -> Vec<(usize, usize, u32)> {
    let pieces = max_distance as usize + 1;
    let mut pairs = Vec::new();
    for piece in 0..pieces {
        let (low, high) = (piece * 64 / pieces, (piece + 1) * 64 / pieces);
        let mask = if high - low == 64 {
            u64::MAX
        } else {
            ((1u64 << (high - low)) - 1) << low
        };
        let mut buckets: HashMap<u64, Vec<usize>> = HashMap::new();
        for (index, &(hash, _)) in images.iter().enumerate() {
            buckets.entry(hash & mask).or_default().push(index);
        }
        for members in buckets.values() {
            for (k, &a) in members.iter().enumerate() {
                for &b in &members[k + 1..] {
                    let ((hash_a, split_a), (hash_b, split_b)) = (images[a], images[b]);
                    let distance = (hash_a ^ hash_b).count_ones();
                    if split_a == split_b || distance > max_distance {
                        continue;
                    }
                    let pair = if split_a.index() < split_b.index() {
                        (a, b)
                    } else {
                        (b, a)
                    };
                    pairs.push((pair.0, pair.1, distance));
                }
            }
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_force(images: &[(u64, Split)], max: u32) -> Vec<(usize, usize, u32)> {
        let mut pairs = Vec::new();
        for a in 0..images.len() {
            for b in a + 1..images.len() {
                let distance = (images[a].0 ^ images[b].0).count_ones();
                if images[a].1 != images[b].1 && distance <= max {
                    let pair = if images[a].1.index() < images[b].1.index() {
                        (a, b)
                    } else {
                        (b, a)
                    };
                    pairs.push((pair.0, pair.1, distance));
                }
            }
        }
        pairs.sort_unstable();
        pairs
    }

    #[test]
    fn a_resized_recompressed_copy_keeps_its_signature_and_another_image_does_not() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let cells: Vec<[u8; 3]> = (0..64).map(|_| rng.random()).collect();
        let photo = RgbImage::from_fn(96, 96, |x, y| {
            image::Rgb(cells[((y / 12) * 8 + x / 12) as usize])
        });
        let small = imageops::resize(&photo, 61, 61, imageops::FilterType::CatmullRom);
        let copy = imageops::resize(&small, 96, 96, imageops::FilterType::Triangle);
        let (a, b) = (signature(&photo), signature(&copy));
        let bits = (a.hash ^ b.hash).count_ones();
        assert!(bits <= 4, "{bits}");
        let difference = thumbnail_difference(&a.thumbnail, &b.thumbnail);
        assert!(difference <= MAX_THUMBNAIL_DIFFERENCE, "{difference}");
        let mirrored = signature(&imageops::flip_horizontal(&photo));
        assert!(thumbnail_difference(&a.thumbnail, &mirrored.thumbnail) > MAX_THUMBNAIL_DIFFERENCE);
    }

    #[test]
    fn the_index_finds_what_brute_force_finds() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut images: Vec<(u64, Split)> = Vec::new();
        for i in 0..400 {
            let split = Split::ALL[i % 3];
            let hash = if i % 4 == 0 && i > 0 {
                // A near copy of an earlier image: a few bits flipped.
                let mut hash = images[i - 1].0;
                for _ in 0..rng.random_range(0..6) {
                    hash ^= 1 << rng.random_range(0..64);
                }
                hash
            } else {
                rng.random::<u64>()
            };
            images.push((hash, split));
        }
        for max in 0..=7 {
            assert_eq!(
                cross_split_pairs(&images, max),
                brute_force(&images, max),
                "distance {max}"
            );
        }
        assert!(!cross_split_pairs(&images, 4).is_empty());
    }
}
