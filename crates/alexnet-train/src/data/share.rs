//! Contiguous shares of a batch or a split: what each device or rank takes.

use std::ops::Range;

/// The contiguous share of `n` items that part `part` of `parts` takes: the first
/// `n % parts` parts take one more. The shares tile `0..n` in order, so a global batch
/// split this way is the single-process batch.
pub fn share_of(n: usize, part: usize, parts: usize) -> Range<usize> {
    let parts = parts.max(1);
    let base = n / parts;
    let extra = n % parts;
    let start = part * base + part.min(extra);
    start..start + base + usize::from(part < extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_tile_the_batch_in_order() {
        for n in 0..40 {
            for parts in 1..6 {
                let shares: Vec<Range<usize>> =
                    (0..parts).map(|part| share_of(n, part, parts)).collect();
                let mut next = 0;
                for share in &shares {
                    assert_eq!(share.start, next, "{n} in {parts}: {shares:?}");
                    next = share.end;
                }
                assert_eq!(next, n);
                let lens: Vec<usize> = shares.iter().map(ExactSizeIterator::len).collect();
                assert!(lens.windows(2).all(|w| w[0] >= w[1] && w[0] - w[1] <= 1));
            }
        }
        assert_eq!(share_of(9, 0, 2), 0..5);
        assert_eq!(share_of(9, 1, 2), 5..9);
    }
}
