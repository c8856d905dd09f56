//! Seeded, stratified train/validation/test splits.

use rand::{SeedableRng, seq::SliceRandom};
use rand_chacha::ChaCha8Rng;

use crate::format::Split;

/// How the images of one class are divided among the splits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SplitRule {
    /// Fractions of each class: `round(count × val)` to validation and `round(count ×
    /// test)` to test, each at least one when its fraction is positive; the rest train.
    Fractions {
        /// `prep.val_split`.
        val: f64,
        /// `prep.test_split`.
        test: f64,
    },
    /// The Caltech protocol: `train` images per class for training, then
    /// `round(rest × val)` of the rest (at least one when `val > 0`) for validation, and
    /// every other image for test.
    TrainPerClass {
        /// `prep.train_per_class`.
        train: usize,
        /// `prep.val_split`, a fraction of what is left after training.
        val: f64,
    },
}

/// How many images of a class go to each split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SplitSizes {
    /// Training images.
    pub train: usize,
    /// Validation images.
    pub val: usize,
    /// Test images.
    pub test: usize,
}

/// At least one image when `fraction > 0`, else none: `round(count × fraction)`.
fn share(count: usize, fraction: f64) -> usize {
    if fraction > 0.0 {
        ((count as f64 * fraction).round() as usize).max(1)
    } else {
        0
    }
}

impl SplitRule {
    /// The sizes for a class of `count` images, or `Err(needed)`: the fewest images a
    /// class must have for every split the rule fills to get at least one.
    pub fn sizes(self, count: usize) -> Result<SplitSizes, usize> {
        match self {
            SplitRule::Fractions { val, test } => {
                let needed = 1 + usize::from(val > 0.0) + usize::from(test > 0.0);
                let sizes = SplitSizes {
                    val: share(count, val),
                    test: share(count, test),
                    train: 0,
                };
                match count.checked_sub(sizes.val + sizes.test) {
                    Some(train) if train > 0 && count >= needed => {
                        Ok(SplitSizes { train, ..sizes })
                    }
                    _ => Err(needed),
                }
            }
            SplitRule::TrainPerClass { train, val } => {
                let needed = train + usize::from(val > 0.0) + 1;
                if count < needed {
                    return Err(needed);
                }
                let rest = count - train;
                let val = share(rest, val).min(rest - 1);
                Ok(SplitSizes {
                    train,
                    val,
                    test: rest - val,
                })
            }
        }
    }
}

/// The split of each of a class's `count` images (in sorted order), or `Err(needed)` as
/// [`SplitRule::sizes`] says.
///
/// Each class is shuffled by its own generator seeded from `(seed, class)`, so a
/// class's split depends only on its own files and the seed, on every machine. The
/// shuffled order is dealt out validation first, then test, then training (training
/// first under [`SplitRule::TrainPerClass`]), so adding a test split to a run keeps its
/// validation images.
pub fn stratified_splits(
    count: usize,
    rule: SplitRule,
    seed: u64,
    class: usize,
) -> Result<Vec<Split>, usize> {
    let sizes = rule.sizes(count)?;
    let mut order: Vec<usize> = (0..count).collect();
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ (class as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    order.shuffle(&mut rng);
    let dealt: Vec<(Split, usize)> = match rule {
        SplitRule::Fractions { .. } => vec![
            (Split::Val, sizes.val),
            (Split::Test, sizes.test),
            (Split::Train, sizes.train),
        ],
        SplitRule::TrainPerClass { .. } => vec![
            (Split::Train, sizes.train),
            (Split::Val, sizes.val),
            (Split::Test, sizes.test),
        ],
    };
    let mut splits = vec![Split::Train; count];
    let mut next = order.into_iter();
    for (split, size) in dealt {
        for index in next.by_ref().take(size) {
            splits[index] = split;
        }
    }
    Ok(splits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VAL_ONLY: SplitRule = SplitRule::Fractions {
        val: 0.2,
        test: 0.0,
    };

    #[test]
    fn fractions_round_and_keep_one_in_each_split() {
        assert_eq!(
            VAL_ONLY.sizes(100),
            Ok(SplitSizes {
                train: 80,
                val: 20,
                test: 0
            })
        );
        assert_eq!(VAL_ONLY.sizes(81).map(|s| s.val), Ok(16));
        assert_eq!(VAL_ONLY.sizes(2).map(|s| (s.train, s.val)), Ok((1, 1)));
        assert_eq!(VAL_ONLY.sizes(1), Err(2));
        let three = SplitRule::Fractions {
            val: 0.1,
            test: 0.1,
        };
        assert_eq!(
            three.sizes(3),
            Ok(SplitSizes {
                train: 1,
                val: 1,
                test: 1
            })
        );
        assert_eq!(three.sizes(2), Err(3));
        let none = SplitRule::Fractions {
            val: 0.0,
            test: 0.0,
        };
        assert_eq!(none.sizes(10).map(|s| s.train), Ok(10));
        assert_eq!(none.sizes(0), Err(1));
        // Fractions that leave nothing for training.
        let greedy = SplitRule::Fractions {
            val: 0.5,
            test: 0.5,
        };
        assert_eq!(greedy.sizes(4), Err(3));
    }

    #[test]
    fn train_per_class_takes_exactly_n() {
        let rule = SplitRule::TrainPerClass {
            train: 30,
            val: 0.1,
        };
        assert_eq!(
            rule.sizes(80),
            Ok(SplitSizes {
                train: 30,
                val: 5,
                test: 45
            })
        );
        assert_eq!(
            rule.sizes(32),
            Ok(SplitSizes {
                train: 30,
                val: 1,
                test: 1
            })
        );
        assert_eq!(rule.sizes(31), Err(32));
        let no_val = SplitRule::TrainPerClass { train: 5, val: 0.0 };
        assert_eq!(no_val.sizes(6).map(|s| (s.val, s.test)), Ok((0, 1)));
    }

    proptest! {
        #[test]
        fn splits_are_seeded_and_sized(count in 0usize..300, val in 0.0f64..0.5, test in 0.0f64..0.4, seed: u64, class in 0usize..1000) {
            let rule = SplitRule::Fractions { val, test };
            match (stratified_splits(count, rule, seed, class), rule.sizes(count)) {
                (Ok(splits), Ok(sizes)) => {
                    prop_assert_eq!(splits.len(), count);
                    let of = |split| splits.iter().filter(|&&s| s == split).count();
                    prop_assert_eq!((of(Split::Train), of(Split::Val), of(Split::Test)), (sizes.train, sizes.val, sizes.test));
                    prop_assert_eq!(&splits, &stratified_splits(count, rule, seed, class).unwrap());
                }
                (Err(a), Err(b)) => prop_assert_eq!(a, b),
                _ => prop_assert!(false, "sizes and splits disagree"),
            }
        }
    }

    #[test]
    fn adding_a_test_split_keeps_the_validation_images() {
        let before = stratified_splits(100, VAL_ONLY, 7, 3).unwrap();
        let with_test = SplitRule::Fractions {
            val: 0.2,
            test: 0.1,
        };
        let after = stratified_splits(100, with_test, 7, 3).unwrap();
        for (a, b) in before.iter().zip(&after) {
            assert_eq!(*a == Split::Val, *b == Split::Val);
        }
    }

    #[test]
    fn different_seeds_give_different_splits() {
        let a = stratified_splits(100, VAL_ONLY, 1, 0).unwrap();
        let b = stratified_splits(100, VAL_ONLY, 2, 0).unwrap();
        assert_ne!(a, b);
    }
}
