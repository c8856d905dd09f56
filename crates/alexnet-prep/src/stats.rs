//! Exact per-channel statistics of a set of RGB images: mean, covariance and its
//! eigen-decomposition (for the AlexNet paper's PCA colour augmentation).

use serde::{Deserialize, Serialize};

/// Running sums over 8-bit RGB pixels. Integer sums make the result exact and
/// independent of the order in which images (and threads) contribute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RgbAccumulator {
    images: u64,
    pixels: u128,
    sum: [u128; 3],
    /// Σ x_i·x_j for (r,r), (r,g), (r,b), (g,g), (g,b), (b,b).
    cross: [u128; 6],
}

const PAIRS: [(usize, usize); 6] = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)];

impl RgbAccumulator {
    /// Adds one image given as interleaved RGB bytes.
    pub fn add_image(&mut self, rgb: &[u8]) {
        let mut sum = [0u64; 3];
        let mut cross = [0u64; 6];
        // Per-image sums fit in u64 for any image up to 2^32 pixels.
        for px in rgb.chunks_exact(3) {
            let (r, g, b) = (u64::from(px[0]), u64::from(px[1]), u64::from(px[2]));
            sum[0] += r;
            sum[1] += g;
            sum[2] += b;
            cross[0] += r * r;
            cross[1] += r * g;
            cross[2] += r * b;
            cross[3] += g * g;
            cross[4] += g * b;
            cross[5] += b * b;
        }
        self.images += 1;
        self.pixels += (rgb.len() / 3) as u128;
        for (total, part) in self.sum.iter_mut().zip(sum) {
            *total += u128::from(part);
        }
        for (total, part) in self.cross.iter_mut().zip(cross) {
            *total += u128::from(part);
        }
    }

    /// Combines two accumulators (for parallel reduction).
    pub fn merge(mut self, other: Self) -> Self {
        self.images += other.images;
        self.pixels += other.pixels;
        for (total, part) in self.sum.iter_mut().zip(other.sum) {
            *total += part;
        }
        for (total, part) in self.cross.iter_mut().zip(other.cross) {
            *total += part;
        }
        self
    }

    /// Number of images added.
    pub fn images(&self) -> u64 {
        self.images
    }

    /// Mean, covariance and eigen-decomposition; `None` when no pixel was added.
    pub fn finish(&self) -> Option<RgbStats> {
        if self.pixels == 0 {
            return None;
        }
        let n = self.pixels as f64;
        let mean = [0, 1, 2].map(|c| self.sum[c] as f64 / n);
        let mut covariance = [[0.0; 3]; 3];
        for (k, &(i, j)) in PAIRS.iter().enumerate() {
            // E[xy] - E[x]E[y], with the integer parts computed exactly first.
            let exact = self.cross[k] as f64 * n - self.sum[i] as f64 * self.sum[j] as f64;
            let value = exact / (n * n);
            covariance[i][j] = value;
            covariance[j][i] = value;
        }
        let std = [0, 1, 2].map(|c| covariance[c][c].max(0.0).sqrt());
        let (eigenvalues, eigenvectors) = symmetric_eigen3(covariance);
        Some(RgbStats {
            mean,
            std,
            covariance,
            eigenvalues,
            eigenvectors,
            pixels: self.pixels as u64,
            images: self.images,
            scale: "0-255".into(),
            split: "train".into(),
        })
    }
}

/// Channel statistics of the training split, as written to `rgb_mean.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RgbStats {
    /// Per-channel mean (R, G, B) over every pixel of every training image.
    pub mean: [f64; 3],
    /// Per-channel standard deviation (population).
    pub std: [f64; 3],
    /// 3×3 RGB covariance (population).
    pub covariance: [[f64; 3]; 3],
    /// Eigenvalues of the covariance, largest first.
    pub eigenvalues: [f64; 3],
    /// `eigenvectors[i]` is the unit eigenvector (R, G, B) of `eigenvalues[i]`.
    pub eigenvectors: [[f64; 3]; 3],
    /// Pixels the statistics are over.
    pub pixels: u64,
    /// Images the statistics are over.
    pub images: u64,
    /// Value scale of the statistics: always `"0-255"`.
    pub scale: String,
    /// Which split they were computed on: always `"train"`.
    pub split: String,
}

/// Eigen-decomposition of a symmetric 3×3 matrix by cyclic Jacobi rotations.
/// Returns eigenvalues in descending order and the matching unit eigenvectors as rows.
pub fn symmetric_eigen3(matrix: [[f64; 3]; 3]) -> ([f64; 3], [[f64; 3]; 3]) {
    let mut a = matrix;
    let mut v = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    for _sweep in 0..64 {
        let off = a[0][1].powi(2) + a[0][2].powi(2) + a[1][2].powi(2);
        let scale = a[0][0].powi(2) + a[1][1].powi(2) + a[2][2].powi(2) + off;
        if off <= f64::EPSILON * f64::EPSILON * scale.max(f64::MIN_POSITIVE) {
            break;
        }
        for (p, q) in [(0, 1), (0, 2), (1, 2)] {
            if a[p][q] == 0.0 {
                continue;
            }
            let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
            // signum(+0.0) is 1: a zero theta gives the 45° rotation, as it should.
            let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
            let c = 1.0 / (t * t + 1.0).sqrt();
            let s = t * c;
            // a ← Jᵀ a J with J the rotation in the (p, q) plane.
            for row in a.iter_mut() {
                let (akp, akq) = (row[p], row[q]);
                row[p] = c * akp - s * akq;
                row[q] = s * akp + c * akq;
            }
            let (row_p, row_q) = (a[p], a[q]);
            a[p] = [0, 1, 2].map(|k| c * row_p[k] - s * row_q[k]);
            a[q] = [0, 1, 2].map(|k| s * row_p[k] + c * row_q[k]);
            for row in v.iter_mut() {
                let (vkp, vkq) = (row[p], row[q]);
                row[p] = c * vkp - s * vkq;
                row[q] = s * vkp + c * vkq;
            }
        }
    }
    let mut order = [0, 1, 2];
    order.sort_by(|&i, &j| a[j][j].total_cmp(&a[i][i]));
    let eigenvalues = order.map(|i| a[i][i]);
    let eigenvectors = order.map(|i| {
        let mut vector = [v[0][i], v[1][i], v[2][i]];
        // A fixed sign (largest component positive) keeps files stable across runs.
        let largest = vector
            .iter()
            .copied()
            .max_by(|x, y| x.abs().total_cmp(&y.abs()))
            .unwrap_or(1.0);
        if largest < 0.0 {
            vector = vector.map(|x| -x);
        }
        vector
    });
    (eigenvalues, eigenvectors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mat_vec(m: &[[f64; 3]; 3], v: &[f64; 3]) -> [f64; 3] {
        [0, 1, 2].map(|i| (0..3).map(|j| m[i][j] * v[j]).sum())
    }

    #[test]
    fn eigen_decomposition_satisfies_av_equals_lambda_v() {
        let m = [[4.0, 1.0, 0.5], [1.0, 3.0, 0.25], [0.5, 0.25, 2.0]];
        let (values, vectors) = symmetric_eigen3(m);
        assert!(values[0] >= values[1] && values[1] >= values[2]);
        for i in 0..3 {
            let av = mat_vec(&m, &vectors[i]);
            for c in 0..3 {
                assert!((av[c] - values[i] * vectors[i][c]).abs() < 1e-10);
            }
            let norm: f64 = vectors[i].iter().map(|x| x * x).sum();
            assert!((norm - 1.0).abs() < 1e-12);
        }
        let trace: f64 = values.iter().sum();
        assert!((trace - 9.0).abs() < 1e-10);
    }

    #[test]
    fn diagonal_matrix_is_its_own_decomposition() {
        let (values, vectors) =
            symmetric_eigen3([[1.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 3.0]]);
        assert_eq!(values, [5.0, 3.0, 1.0]);
        assert_eq!(vectors, [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]);
    }

    #[test]
    fn statistics_match_a_direct_computation() {
        let a: Vec<u8> = (0..300u32).map(|i| (i * 37 % 256) as u8).collect();
        let b: Vec<u8> = (0..150u32).map(|i| (i * 91 % 256) as u8).collect();
        let mut left = RgbAccumulator::default();
        left.add_image(&a);
        let mut right = RgbAccumulator::default();
        right.add_image(&b);
        let stats = left.merge(right).finish().unwrap();
        let all: Vec<f64> = a.iter().chain(&b).map(|&x| f64::from(x)).collect();
        let n = (all.len() / 3) as f64;
        for c in 0..3 {
            let mean: f64 = all.iter().skip(c).step_by(3).sum::<f64>() / n;
            assert!((stats.mean[c] - mean).abs() < 1e-9);
            let var: f64 = all
                .iter()
                .skip(c)
                .step_by(3)
                .map(|x| (x - mean).powi(2))
                .sum::<f64>()
                / n;
            assert!((stats.covariance[c][c] - var).abs() < 1e-6);
        }
        assert_eq!(stats.images, 2);
        assert_eq!(stats.pixels, 150);
        assert!(RgbAccumulator::default().finish().is_none());
    }
}
