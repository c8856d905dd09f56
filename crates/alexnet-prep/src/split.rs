//! Seeded, stratified train/validation split.

use rand::{SeedableRng, seq::SliceRandom};
use rand_chacha::ChaCha8Rng;

/// How many of `count` images of a class go to validation: `round(count × fraction)`,
/// but never all of them, so every class with an image keeps one for training.
pub fn val_count(count: usize, fraction: f64) -> usize {
    let wanted = (count as f64 * fraction).round() as usize;
    wanted.min(count.saturating_sub(1))
}

/// Marks which of a class's `count` images (in sorted order) go to validation.
///
/// Each class is shuffled by its own generator seeded from `(seed, class)`, so a
/// class's split depends only on its own files and the seed, on every machine.
pub fn stratified_val_mask(count: usize, fraction: f64, seed: u64, class: usize) -> Vec<bool> {
    let mut order: Vec<usize> = (0..count).collect();
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ (class as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    order.shuffle(&mut rng);
    let mut mask = vec![false; count];
    for &index in &order[..val_count(count, fraction)] {
        mask[index] = true;
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn counts_round_and_keep_one_for_training() {
        assert_eq!(val_count(100, 0.2), 20);
        assert_eq!(val_count(81, 0.2), 16);
        assert_eq!(val_count(1, 0.2), 0);
        assert_eq!(val_count(2, 0.9), 1);
        assert_eq!(val_count(0, 0.2), 0);
        assert_eq!(val_count(10, 0.0), 0);
    }

    proptest! {
        #[test]
        fn mask_is_seeded_and_sized(count in 0usize..300, fraction in 0.0f64..1.0, seed: u64, class in 0usize..1000) {
            let mask = stratified_val_mask(count, fraction, seed, class);
            prop_assert_eq!(mask.len(), count);
            prop_assert_eq!(mask.iter().filter(|&&v| v).count(), val_count(count, fraction));
            prop_assert_eq!(&mask, &stratified_val_mask(count, fraction, seed, class));
        }
    }

    #[test]
    fn different_seeds_give_different_splits() {
        let a = stratified_val_mask(100, 0.2, 1, 0);
        let b = stratified_val_mask(100, 0.2, 2, 0);
        assert_ne!(a, b);
    }
}
