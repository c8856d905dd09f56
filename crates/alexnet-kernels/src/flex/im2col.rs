//! The im2col matrix of one image and its inverse, col2im, and the input gradient they
//! give: `dcol_n = Wᵀ · dY_n`, summed back onto the input positions each column read.
//!
//! Row `(c, i, j)` of a group's im2col matrix holds, for every output position, the
//! input value under kernel position `(i, j)` of channel `c` (zero in the padding). col2im
//! walks the same rows and positions and adds instead of copying, so the two share how a
//! row finds its input ([`ColRow`]).

use super::{
    conv::ConvGeometry,
    gemm::{Layout, Matrix, gemm_set},
};
use rayon::prelude::*;

/// Where one im2col row reads its input: channel `channel`, kernel row `i`; output
/// columns `first..last` lie inside the image, the first of them at input column `start`.
struct ColRow {
    channel: usize,
    i: usize,
    first: usize,
    last: usize,
    start: usize,
}

impl ConvGeometry {
    /// Where row `row` of a group's im2col matrix reads its input.
    fn col_row(&self, row: usize) -> ColRow {
        let [channel, i, j] = self.kernel_row(row);
        let (stride_w, pad_w) = (self.stride[1], self.padding[1]);
        let offset_w = j * self.dilation[1];
        let first = pad_w.saturating_sub(offset_w).div_ceil(stride_w);
        let last = (self.input[1] + pad_w)
            .checked_sub(offset_w + 1)
            .map_or(0, |end| (end / stride_w + 1).min(self.output[1]));
        let first = first.min(last);
        ColRow {
            channel,
            i,
            first,
            last,
            // Only read when first < last, where it does not underflow.
            start: (first * stride_w + offset_w).wrapping_sub(pad_w),
        }
    }

    /// The input line output line `oh` of `row` reads, `None` in the padding or where no
    /// column of the row lies inside the image.
    fn input_line(&self, row: &ColRow, oh: usize) -> Option<usize> {
        let ih = (oh * self.stride[0] + row.i * self.dilation[0]).wrapping_sub(self.padding[0]);
        (ih < self.input[0] && row.first < row.last).then_some(ih)
    }

    /// One group of one image's im2col matrix into `col` (`[col_rows, positions]`).
    pub(super) fn im2col(&self, x: &[f32], col: &mut [f32]) {
        let [height, width] = self.input;
        let stride_w = self.stride[1];
        let rows = col.chunks_exact_mut(self.output_positions());
        for (index, col_row) in rows.enumerate() {
            let row = self.col_row(index);
            let plane = &x[row.channel * height * width..(row.channel + 1) * height * width];
            let (first, last) = (row.first, row.last);
            for (oh, out) in col_row.chunks_exact_mut(self.output[1]).enumerate() {
                let Some(ih) = self.input_line(&row, oh) else {
                    out.fill(0.0);
                    continue;
                };
                let line = &plane[ih * width + row.start..(ih + 1) * width];
                out[..first].fill(0.0);
                out[last..].fill(0.0);
                let out = &mut out[first..last];
                if stride_w == 1 {
                    out.copy_from_slice(&line[..out.len()]);
                } else {
                    let values = line.iter().step_by(stride_w);
                    out.iter_mut().zip(values).for_each(|(o, v)| *o = *v);
                }
            }
        }
    }

    /// Adds one group's `dcol` (`[col_rows, positions]`) onto the input positions its
    /// entries were read from: the adjoint of [`Self::im2col`].
    fn col2im(&self, dcol: &[f32], grad: &mut [f32]) {
        let [height, width] = self.input;
        let stride_w = self.stride[1];
        let rows = dcol.chunks_exact(self.output_positions());
        for (index, dcol_row) in rows.enumerate() {
            let row = self.col_row(index);
            let plane = &mut grad[row.channel * height * width..(row.channel + 1) * height * width];
            for (oh, values) in dcol_row.chunks_exact(self.output[1]).enumerate() {
                let Some(ih) = self.input_line(&row, oh) else {
                    continue;
                };
                let line = &mut plane[ih * width + row.start..(ih + 1) * width];
                let values = &values[row.first..row.last];
                if stride_w == 1 {
                    let line = &mut line[..values.len()];
                    line.iter_mut().zip(values).for_each(|(g, v)| *g += v);
                } else {
                    let targets = line.iter_mut().step_by(stride_w);
                    targets.zip(values).for_each(|(g, v)| *g += v);
                }
            }
        }
    }

    /// The input gradient of the contiguous weight and output gradient, any geometry:
    /// per image and group, `dcol = Wᵀ · dY` and col2im. flex's transposed convolution
    /// computes the same through NHWC copies of both tensors.
    pub(crate) fn input_grad_col2im(&self, weight: &[f32], output_grad: &[f32]) -> Vec<f32> {
        let (rows, positions) = (self.col_rows(), self.output_positions());
        let (group_in, group_out) = (self.group_in(), self.group_out());
        let (per_task, parallel_gemm) = self.images_per_task();
        let (image_in, image_out) = (self.image_in(), self.image_out());
        let group_in_len = group_in * self.input[0] * self.input[1];
        let mut grad = vec![0.0f32; self.batch * image_in];
        let tasks = grad.par_chunks_mut((per_task * image_in).max(1));
        tasks.enumerate().for_each(|(task, grad)| {
            let mut dcol = vec![0.0f32; rows * positions];
            for (index, grad) in grad.chunks_mut(image_in.max(1)).enumerate() {
                let image = task * per_task + index;
                let output_grad = &output_grad[image * image_out..(image + 1) * image_out];
                for (group, grad) in grad.chunks_mut(group_in_len.max(1)).enumerate() {
                    let channels = group * group_out..(group + 1) * group_out;
                    let weight = &weight[channels.start * rows..channels.end * rows];
                    let output_grad =
                        &output_grad[channels.start * positions..channels.end * positions];
                    gemm_set(
                        &mut dcol,
                        Layout::RowMajor,
                        Matrix::row_major(weight, group_out, rows).transposed(),
                        Matrix::row_major(output_grad, group_out, positions),
                        parallel_gemm,
                    );
                    self.col2im(&dcol, grad);
                }
            }
        });
        grad
    }
}
