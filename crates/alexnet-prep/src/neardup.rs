//! Near-duplicate images across splits: a 64-bit difference hash of each written image
//! and a search for pairs within a Hamming distance, in near-linear time.
//!
//! The hash is computed here rather than with a perceptual-hash crate because it is a
//! few lines over the image the worker has already cropped and resized: a re-encoded,
//! resized or recompressed copy of a photo crops and resizes to nearly the same pixels.

use std::collections::HashMap;

use image::{RgbImage, imageops};
use serde::{Deserialize, Serialize};

use crate::format::Split;

/// The difference hash ("dHash") of an image: its grey level on a 9×8 grid (area
/// averages), one bit per horizontally adjacent pair, set where the left is brighter.
pub fn difference_hash(image: &RgbImage) -> u64 {
    let grey = imageops::grayscale(image);
    let small = imageops::thumbnail(&grey, 9, 8);
    let mut hash = 0u64;
    for y in 0..8 {
        for x in 0..8 {
            let left = small.get_pixel(x, y).0[0];
            let right = small.get_pixel(x + 1, y).0[0];
            hash = (hash << 1) | u64::from(left > right);
        }
    }
    hash
}

/// Whether a hash says anything about its image: solid colours and smooth gradients
/// hash to (almost) all zeros or all ones, and such images are not compared.
pub fn is_informative(hash: u64) -> bool {
    (4..=60).contains(&hash.count_ones())
}

/// Two images in different splits whose hashes are within the configured distance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Whether `second` was removed from its split (`prep.near_duplicates = "drop"`).
    pub dropped: bool,
}

fn rank(split: Split) -> u8 {
    match split {
        Split::Train => 0,
        Split::Val => 1,
        Split::Test => 2,
    }
}

/// Pairs `(i, j, distance)` of `images` (hash and split) in different splits whose
/// hashes differ in at most `max_distance` bits, with `i` in the earlier split, sorted.
///
/// Multi-index hashing: the 64 bits are cut into `max_distance + 1` pieces; two hashes
/// within the distance agree exactly on at least one piece (pigeonhole), so only images
/// that share a piece are compared. With hashes spread as photos' are, that is
/// `O(n log n)`; images that all hash alike (blank frames) meet in one bucket.
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
                    let pair = if rank(split_a) < rank(split_b) {
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
                    let pair = if rank(images[a].1) < rank(images[b].1) {
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
