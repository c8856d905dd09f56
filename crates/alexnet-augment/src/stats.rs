//! The dataset statistics that `"dataset"` values in ops resolve to.

/// Per-channel statistics of the training images, on the 0–255 scale (what
/// `alexnet-prep` writes to `rgb_mean.json`), used by ops that say `"dataset"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChannelStats {
    /// Per-channel mean (R, G, B).
    pub mean: [f64; 3],
    /// Per-channel standard deviation.
    pub std: [f64; 3],
    /// Eigenvalues of the RGB covariance, largest first.
    pub eigenvalues: [f64; 3],
    /// Unit eigenvectors as rows, paired with `eigenvalues`.
    pub eigenvectors: [[f64; 3]; 3],
}
