//! The forward convolution as an indirect matrix product (Dukhan, "The Indirect
//! Convolution Algorithm", 2019), with a micro-kernel of our own for x86-64 CPUs with AVX2
//! and FMA.
//!
//! The im2col product ([`ConvGeometry::forward`]) writes each image's im2col matrix (7 MB
//! for AlexNet's 5 × 5 layer) and gemm then reads it again to pack it. Here nothing is
//! written but a zero-padded copy of the input: a tile of 16 output channels × 6 output
//! positions sums, over the kernel's rows `(c, i, j)`, the packed weights of its 16
//! channels times the input value under each of its 6 positions, read straight from the
//! padded input at `position base + row offset`. With AVX2 only, gemm's micro-kernel and
//! this one run at the same rate; the im2col matrix is the difference (docs/benchmarks.md).
//!
//! gemm is the crate we use for matrix products, and it has no convolution: this file is
//! ours because the indirect product is a convolution, not a matrix product.

use super::conv::ConvGeometry;
use rayon::prelude::*;

/// Output channels in one tile: two AVX2 vectors.
const TILE_CHANNELS: usize = 16;
/// Output positions in one tile: 6 × 2 accumulators, 2 weight vectors and a broadcast
/// fill 15 of the 16 AVX2 registers.
const TILE_POSITIONS: usize = 6;
/// Kernel rows summed between two writes of a tile: one tile row's weights for this many
/// rows (64 KiB) stay in the L2 cache while the tile walks the positions.
const DEPTH_BLOCK: usize = 1024;

/// Whether this CPU runs the micro-kernel: AVX2 and FMA.
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        has!("avx2") && has!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether the forward products should run here rather than through im2col and gemm: on
/// CPUs with AVX2 and FMA but without AVX-512. With AVX-512, gemm's AVX-512 micro-kernel
/// runs the im2col product 1.6× faster than this AVX2 one, and an AVX-512 version of this
/// kernel was no faster than gemm's (Zen 5, docs/benchmarks.md).
pub(crate) fn preferred() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        available() && !std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

impl ConvGeometry {
    /// Height and width of the zero-padded input.
    fn padded(&self) -> [usize; 2] {
        [0, 1].map(|axis| self.input[axis] + 2 * self.padding[axis])
    }

    /// `conv2d(x, weight) + bias` of the contiguous input, weight and bias by the indirect
    /// product, or `None` where the CPU lacks AVX2 and FMA or a tensor is empty. Same
    /// result as [`Self::forward`], summed in another order.
    pub(crate) fn forward_indirect(
        &self,
        x: &[f32],
        weight: &[f32],
        bias: &[f32],
    ) -> Option<Vec<f32>> {
        let empty = [
            self.channels_in,
            self.channels_out,
            self.output_positions(),
            self.batch,
        ];
        if !available() || empty.contains(&0) {
            return None;
        }
        let [padded_h, padded_w] = self.padded();
        let plane = padded_h * padded_w;
        let padded_image = self.channels_in * plane;
        let mut padded = vec![0.0f32; self.batch * padded_image];
        padded
            .par_chunks_mut(padded_image.max(1))
            .zip(x.par_chunks(self.image_in().max(1)))
            .for_each(|(padded, x)| self.pad(x, padded));

        let (group_in, group_out, rows) = (self.group_in(), self.group_out(), self.col_rows());
        // Where row (c, i, j) of a group's im2col matrix lies from a position's base.
        let offsets: Vec<usize> = (0..rows)
            .map(|row| {
                let [c, i, j] = self.kernel_row(row);
                c * plane + i * self.dilation[0] * padded_w + j * self.dilation[1]
            })
            .collect();
        let positions = self.output_positions();
        // Where output position (oh, ow)'s window starts in a padded plane.
        let bases: Vec<usize> = (0..positions)
            .map(|p| {
                let (oh, ow) = (p / self.output[1], p % self.output[1]);
                oh * self.stride[0] * padded_w + ow * self.stride[1]
            })
            .collect();
        let packed = PackedWeights::new(weight, self.groups, group_out, rows);

        let mut output = vec![0.0f32; self.batch * self.image_out()];
        // One task per tile row of channels (image, group, first channel); together they
        // cover the output in order.
        let mut tasks = Vec::new();
        let mut rest = output.as_mut_slice();
        for image in 0..self.batch {
            for group in 0..self.groups {
                for first in (0..group_out).step_by(TILE_CHANNELS) {
                    let channels = TILE_CHANNELS.min(group_out - first);
                    let (task, tail) = rest.split_at_mut(channels * positions);
                    rest = tail;
                    tasks.push((image, group, first, channels, task));
                }
            }
        }
        tasks
            .into_par_iter()
            .for_each(|(image, group, first, channels, output)| {
                let bias = &bias[group * group_out + first..];
                for (row, &b) in output.chunks_exact_mut(positions).zip(bias) {
                    row.fill(b);
                }
                let input = &padded[image * padded_image + group * group_in * plane..];
                let weights = packed.panel(group, first / TILE_CHANNELS);
                Tiles {
                    input,
                    offsets: &offsets,
                    bases: &bases,
                    weights,
                    channels,
                }
                .sum_into(output);
            });
        Some(output)
    }

    /// Copies one image into the middle of its zero-padded planes.
    fn pad(&self, x: &[f32], padded: &mut [f32]) {
        let [height, width] = self.input;
        let [padded_h, padded_w] = self.padded();
        let [pad_h, pad_w] = self.padding;
        let planes = padded.chunks_exact_mut(padded_h * padded_w);
        for (padded, plane) in planes.zip(x.chunks_exact(height * width)) {
            for (h, line) in plane.chunks_exact(width).enumerate() {
                let at = (h + pad_h) * padded_w + pad_w;
                padded[at..at + width].copy_from_slice(line);
            }
        }
    }
}

/// The weight `[C_out, rows]` of each group in panels of [`TILE_CHANNELS`] channels, each
/// `[rows, 16]` (a group's last panel's missing channels zero): one tile reads its
/// channels' weights of a row contiguously.
struct PackedWeights {
    data: Vec<f32>,
    panel_len: usize,
    panels_per_group: usize,
}

impl PackedWeights {
    fn new(weight: &[f32], groups: usize, group_out: usize, rows: usize) -> Self {
        let panels_per_group = group_out.div_ceil(TILE_CHANNELS);
        let panel_len = rows * TILE_CHANNELS;
        let mut data = vec![0.0f32; groups * panels_per_group * panel_len];
        for (channel, filter) in weight
            .chunks_exact(rows)
            .enumerate()
            .take(groups * group_out)
        {
            let (group, channel) = (channel / group_out, channel % group_out);
            let panel = group * panels_per_group + channel / TILE_CHANNELS;
            let lane = channel % TILE_CHANNELS;
            let panel = &mut data[panel * panel_len..(panel + 1) * panel_len];
            for (row, &w) in filter.iter().enumerate() {
                panel[row * TILE_CHANNELS + lane] = w;
            }
        }
        Self {
            data,
            panel_len,
            panels_per_group,
        }
    }

    /// Panel `panel` of group `group`.
    fn panel(&self, group: usize, panel: usize) -> &[f32] {
        let at = (group * self.panels_per_group + panel) * self.panel_len;
        &self.data[at..at + self.panel_len]
    }
}

/// One row of tiles: `channels` (at most 16) output channels of one image and group, over
/// every output position.
struct Tiles<'a> {
    /// The group's first padded input plane, and the image's planes after it.
    input: &'a [f32],
    offsets: &'a [usize],
    bases: &'a [usize],
    weights: &'a [f32],
    channels: usize,
}

impl Tiles<'_> {
    /// Adds every tile's sums to `output` (`[channels, positions]`).
    fn sum_into(&self, output: &mut [f32]) {
        let positions = self.bases.len();
        // The bounds the micro-kernel's loads rely on, checked once for every tile.
        let reach = self.bases.iter().max().copied().unwrap_or(0)
            + self.offsets.iter().max().copied().unwrap_or(0);
        assert!(
            available()
                && reach < self.input.len()
                && self.weights.len() == self.offsets.len() * TILE_CHANNELS
        );
        let mut tile = [0.0f32; TILE_CHANNELS * TILE_POSITIONS];
        for start in (0..self.offsets.len()).step_by(DEPTH_BLOCK) {
            let end = (start + DEPTH_BLOCK).min(self.offsets.len());
            let offsets = &self.offsets[start..end];
            let weights = &self.weights[start * TILE_CHANNELS..end * TILE_CHANNELS];
            for first in (0..positions).step_by(TILE_POSITIONS) {
                // A short last tile repeats its last position; those sums are not kept.
                let inputs: [&[f32]; TILE_POSITIONS] = std::array::from_fn(|r| {
                    &self.input[self.bases[(first + r).min(positions - 1)]..]
                });
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the assertion above: the CPU has AVX2 and FMA, every input slice
                // starts at a base and reaches past the largest offset, and `weights` holds
                // 16 values per offset.
                unsafe {
                    avx2::tile_sums(offsets, weights, &inputs, &mut tile)
                };
                let kept = TILE_POSITIONS.min(positions - first);
                for (channel, row) in output
                    .chunks_exact_mut(positions)
                    .enumerate()
                    .take(self.channels)
                {
                    for (r, out) in row[first..first + kept].iter_mut().enumerate() {
                        *out += tile[r * TILE_CHANNELS + channel];
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{TILE_CHANNELS, TILE_POSITIONS};
    use std::arch::x86_64::*;

    /// `tile[r · 16 + c] = Σ_k weights[k · 16 + c] · inputs[r][offsets[k]]`: two 8-lane
    /// weight vectors per kernel row, times each of the 6 positions' input value, into 12
    /// accumulators.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; `weights` holds 16 values per offset and every input is
    /// longer than the largest offset.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile_sums(
        offsets: &[usize],
        weights: &[f32],
        inputs: &[&[f32]; TILE_POSITIONS],
        tile: &mut [f32; TILE_CHANNELS * TILE_POSITIONS],
    ) {
        let [p0, p1, p2, p3, p4, p5] = inputs.map(|input| input.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 2 * TILE_POSITIONS];
        let mut w = weights.as_ptr();
        for &offset in offsets {
            // SAFETY: the caller's bounds; the loads are unaligned ones.
            unsafe {
                let w0 = _mm256_loadu_ps(w);
                let w1 = _mm256_loadu_ps(w.add(8));
                let x = _mm256_set1_ps(*p0.add(offset));
                acc[0] = _mm256_fmadd_ps(x, w0, acc[0]);
                acc[1] = _mm256_fmadd_ps(x, w1, acc[1]);
                let x = _mm256_set1_ps(*p1.add(offset));
                acc[2] = _mm256_fmadd_ps(x, w0, acc[2]);
                acc[3] = _mm256_fmadd_ps(x, w1, acc[3]);
                let x = _mm256_set1_ps(*p2.add(offset));
                acc[4] = _mm256_fmadd_ps(x, w0, acc[4]);
                acc[5] = _mm256_fmadd_ps(x, w1, acc[5]);
                let x = _mm256_set1_ps(*p3.add(offset));
                acc[6] = _mm256_fmadd_ps(x, w0, acc[6]);
                acc[7] = _mm256_fmadd_ps(x, w1, acc[7]);
                let x = _mm256_set1_ps(*p4.add(offset));
                acc[8] = _mm256_fmadd_ps(x, w0, acc[8]);
                acc[9] = _mm256_fmadd_ps(x, w1, acc[9]);
                let x = _mm256_set1_ps(*p5.add(offset));
                acc[10] = _mm256_fmadd_ps(x, w0, acc[10]);
                acc[11] = _mm256_fmadd_ps(x, w1, acc[11]);
                w = w.add(TILE_CHANNELS);
            }
        }
        for (index, acc) in acc.iter().enumerate() {
            // SAFETY: `tile` holds 12 vectors of 8.
            unsafe { _mm256_storeu_ps(tile.as_mut_ptr().add(8 * index), *acc) };
        }
    }
}
