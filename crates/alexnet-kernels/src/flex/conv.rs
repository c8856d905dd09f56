//! Convolutions on flex as one matrix product per image, forward and for the weight
//! gradient.
//!
//! Burn's lowering computes the weight gradient as a convolution of the input with its
//! batch and channel axes swapped, the output gradient as a dilated kernel (55 × 55 for
//! AlexNet's first layer): flex runs it through its forward convolution, whose im2col
//! tiles are built for small kernels, at 1.6–1.8× the forward pass's time. Written out
//! as PyTorch's CPU kernels do, it is `dW += dY_n · col(x_n)ᵀ` for each image `n`, where
//! `col(x_n)` is the image's im2col matrix: the forward pass's arithmetic, in one matrix
//! product per image. The forward pass is the same product the other way round,
//! `Y_n = W · col(x_n)`, which lands directly in the NCHW output (flex's own converts
//! the input to NHWC and the output back). The input gradient of the wide stride-1
//! layers is that forward product again, of the output gradient with the flipped kernel
//! ([`ConvGeometry::input_grad`]); the others are `dcol = Wᵀ · dY` and col2im
//! (`im2col.rs`). On CPUs with AVX2 but without AVX-512, the forward product is the
//! indirect one of `indirect.rs`, which writes no im2col matrix.
//! The matrix products themselves are in `gemm.rs`; the tests check every product
//! against a direct definition, over strides, padding, dilation and groups.

use super::{
    f32s,
    gemm::{Layout, Matrix, gemm_add},
    indirect, tensor,
};
use crate::{NativeConv, extension::untracked_conv_gradient};
use burn::{
    backend::{
        Autodiff, Flex, TensorMetadata,
        autodiff::{
            checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
            grads::Gradients,
            ops::{Backward, Ops, OpsKind},
        },
        flex::FlexTensor,
        ops::ModuleOps,
        tensor::FloatTensor,
    },
    tensor::{DType, Shape, ops::ConvOptions},
};
use rayon::prelude::*;

impl NativeConv for Flex {
    fn native_conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        let geometry = ConvGeometry::of(&x, &weight, &options)
            .filter(|_| [x.dtype(), weight.dtype(), bias.dtype()] == [DType::F32; 3]);
        let Some(geometry) = geometry.filter(|g| bias.shape().as_slice() == [g.channels_out])
        else {
            // Half precision and shapes this kernel does not cover: flex's own.
            return Flex::conv2d(x, weight, Some(bias), options);
        };
        let [x, weight, bias] = [&x, &weight, &bias].map(FlexTensor::to_contiguous);
        let output = geometry.forward(f32s(&x), f32s(&weight), f32s(&bias));
        let [output_h, output_w] = geometry.output;
        let shape = [geometry.batch, geometry.channels_out, output_h, output_w];
        tensor(output, Shape::from(shape.to_vec()))
    }

    fn native_conv2d_weight_backward(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        let Some(geometry) = ConvGeometry::of_backward(&x, &weight, &output_grad, &options) else {
            // Half precision and shapes this kernel does not cover: Burn's lowering.
            return Flex::conv2d_weight_backward(x, weight, output_grad, options);
        };
        let [x, output_grad] = [&x, &output_grad].map(FlexTensor::to_contiguous);
        let grad = geometry.weight_grad(f32s(&x), f32s(&output_grad));
        tensor(grad, weight.shape())
    }

    fn native_conv2d_x_backward(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        let geometry = ConvGeometry::of_backward(&x, &weight, &output_grad, &options);
        let grad = geometry.and_then(|geometry| {
            let [weight, output_grad] = [&weight, &output_grad].map(FlexTensor::to_contiguous);
            geometry.input_grad_native(f32s(&weight), f32s(&output_grad))
        });
        match grad {
            Some(grad) => tensor(grad, x.shape()),
            // Half precision, and strided, dilated or grouped convolutions on CPUs
            // without AVX-512: flex's transposed convolution.
            None => Flex::conv2d_x_backward(x, weight, output_grad, options),
        }
    }
}

/// The fewest input channels for which the backward step computes the input gradient
/// as a forward convolution through im2col ([`ConvGeometry::input_grad`]). That product
/// reuses each packed im2col block once per input channel; with fewer (AlexNet's 5 × 5
/// layer has 96), packing the `C_out · k²`-row im2col matrix costs more than the
/// transposed product takes (Zen 5: 93–115 ms against flex's 80–86 there, 23–37 against
/// 29–48 on the 3 × 3 layers with 256 and 384; docs/benchmarks.md).
const FLIPPED_MIN_CHANNELS_IN: usize = 256;

/// The shapes of one convolution, as the kernels here read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvGeometry {
    pub batch: usize,
    pub channels_in: usize,
    pub input: [usize; 2],
    pub channels_out: usize,
    pub kernel: [usize; 2],
    pub output: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
}

impl ConvGeometry {
    /// The geometry of `conv2d(x, weight)` with `options` (symmetric padding), or `None`
    /// when the shapes do not fit together.
    fn of(x: &FlexTensor, weight: &FlexTensor, options: &ConvOptions<2>) -> Option<Self> {
        let dims = |tensor: &FlexTensor| -> Option<[usize; 4]> {
            tensor.layout().shape().as_slice().try_into().ok()
        };
        let [batch, channels_in, height, width] = dims(x)?;
        let [channels_out, group_in, kernel_h, kernel_w] = dims(weight)?;
        let symmetric = !options.is_asymmetric();
        let groups = options.groups;
        let fits = symmetric
            && groups > 0
            && channels_in == group_in * groups
            && channels_out % groups == 0;
        let mut geometry = Self {
            batch,
            channels_in,
            input: [height, width],
            channels_out,
            kernel: [kernel_h, kernel_w],
            output: [0, 0],
            stride: options.stride,
            padding: options.padding_begin(),
            dilation: options.dilation,
            groups,
        };
        geometry.output = [geometry.output_side(0)?, geometry.output_side(1)?];
        fits.then_some(geometry)
    }

    /// The geometry of a backward step of `conv2d(x, weight)` with `options` for
    /// `output_grad`, or `None` when the shapes do not fit together or a tensor is not
    /// f32.
    fn of_backward(
        x: &FlexTensor,
        weight: &FlexTensor,
        output_grad: &FlexTensor,
        options: &ConvOptions<2>,
    ) -> Option<Self> {
        Self::of(x, weight, options).filter(|g| {
            let [output_h, output_w] = g.output;
            output_grad.shape().as_slice() == [g.batch, g.channels_out, output_h, output_w]
                && [x.dtype(), weight.dtype(), output_grad.dtype()] == [DType::F32; 3]
        })
    }

    /// The output's side along `axis` that the input, kernel and options give.
    fn output_side(&self, axis: usize) -> Option<usize> {
        let padded = self.input[axis] + 2 * self.padding[axis];
        let reach = self.dilation[axis] * (self.kernel[axis].checked_sub(1)?) + 1;
        let stride = self.stride[axis];
        (stride > 0 && padded >= reach).then(|| (padded - reach) / stride + 1)
    }

    pub(super) fn group_in(&self) -> usize {
        self.channels_in / self.groups
    }

    pub(super) fn group_out(&self) -> usize {
        self.channels_out / self.groups
    }

    /// Rows of one group's im2col matrix: its input channels × the kernel's positions.
    pub(super) fn col_rows(&self) -> usize {
        self.group_in() * self.kernel[0] * self.kernel[1]
    }

    /// The input channel and kernel position `(c, i, j)` of row `row` of a group's im2col
    /// matrix (the weight's own order).
    pub(super) fn kernel_row(&self, row: usize) -> [usize; 3] {
        let [kernel_h, kernel_w] = self.kernel;
        [
            row / (kernel_h * kernel_w),
            row / kernel_w % kernel_h,
            row % kernel_w,
        ]
    }

    pub(super) fn output_positions(&self) -> usize {
        self.output[0] * self.output[1]
    }

    pub(super) fn image_in(&self) -> usize {
        self.channels_in * self.input[0] * self.input[1]
    }

    pub(super) fn image_out(&self) -> usize {
        self.channels_out * self.output_positions()
    }

    /// Images per rayon task: one contiguous range per thread. With fewer images than
    /// threads, one task whose matrix products use all threads (`true`).
    pub(super) fn images_per_task(&self) -> (usize, bool) {
        let threads = rayon::current_num_threads().max(1);
        (self.batch.div_ceil(threads).max(1), self.batch < threads)
    }

    /// `conv2d(x, weight) + bias` of the contiguous input, weight and bias: per image
    /// and group, `out = W · col(x)` (the output already `[C_out, H_out · W_out]`, NCHW)
    /// on top of the bias. On CPUs with AVX2 but not AVX-512, the indirect product
    /// ([`Self::forward_indirect`]) instead.
    pub(crate) fn forward(&self, x: &[f32], weight: &[f32], bias: &[f32]) -> Vec<f32> {
        if indirect::preferred()
            && let Some(output) = self.forward_indirect(x, weight, bias)
        {
            return output;
        }
        let (rows, positions) = (self.col_rows(), self.output_positions());
        let (per_task, parallel_gemm) = self.images_per_task();
        let mut output = vec![0.0f32; self.batch * self.image_out()];
        let image_in = self.image_in();
        let group_in_len = self.group_in() * self.input[0] * self.input[1];
        let tasks = output.par_chunks_mut((per_task * self.image_out()).max(1));
        tasks.enumerate().for_each(|(task, output)| {
            let mut col = vec![0.0f32; rows * positions];
            for (index, output) in output.chunks_mut(self.image_out()).enumerate() {
                let image = task * per_task + index;
                let x = &x[image * image_in..(image + 1) * image_in];
                let groups = output.chunks_mut(self.group_out() * positions);
                for (group, output) in groups.enumerate() {
                    self.im2col(
                        &x[group * group_in_len..(group + 1) * group_in_len],
                        &mut col,
                    );
                    let channels = group * self.group_out()..(group + 1) * self.group_out();
                    for (row, &b) in output.chunks_mut(positions).zip(&bias[channels.clone()]) {
                        row.fill(b);
                    }
                    let weight = &weight[channels.start * rows..channels.end * rows];
                    gemm_add(
                        output,
                        Layout::RowMajor,
                        Matrix::row_major(weight, self.group_out(), rows),
                        Matrix::row_major(&col, rows, positions),
                        parallel_gemm,
                    );
                }
            }
        });
        output
    }

    /// The weight gradient `[channels_out, channels_in / groups, kh, kw]`, flattened, of
    /// the contiguous input `x` and output gradient: per image and group,
    /// `grad += dY · col(x)ᵀ`. Each rayon task sums its images into its own buffer, and
    /// the buffers are added at the end.
    ///
    /// The buffers hold each group's gradient transposed (`[rows, channels]`), written
    /// column-major by gemm, and are transposed once at the end: gemm then packs the small
    /// `dY` rather than the large `col(x)` across its rows (on Zen 5, 68–82 ms against
    /// 85–109 for the 5 × 5 layer at batch 32, docs/benchmarks.md).
    pub(crate) fn weight_grad(&self, x: &[f32], output_grad: &[f32]) -> Vec<f32> {
        let (rows, positions) = (self.col_rows(), self.output_positions());
        let size = self.channels_out * rows;
        let (per_task, parallel_gemm) = self.images_per_task();
        let (image_in, image_out) = (self.image_in(), self.image_out());
        let group_in_len = self.group_in() * self.input[0] * self.input[1];
        let group_out_len = self.group_out() * positions;
        let group_grad_len = self.group_out() * rows;
        let partial_sums = (0..self.batch.div_ceil(per_task))
            .into_par_iter()
            .map(|task| {
                let mut grad_t = vec![0.0f32; size];
                let mut col = vec![0.0f32; rows * positions];
                let images = task * per_task..((task + 1) * per_task).min(self.batch);
                for image in images {
                    let x = &x[image * image_in..(image + 1) * image_in];
                    let output_grad = &output_grad[image * image_out..(image + 1) * image_out];
                    for (group, grad_t) in grad_t.chunks_mut(group_grad_len).enumerate() {
                        self.im2col(
                            &x[group * group_in_len..(group + 1) * group_in_len],
                            &mut col,
                        );
                        let output_grad =
                            &output_grad[group * group_out_len..(group + 1) * group_out_len];
                        gemm_add(
                            grad_t,
                            Layout::ColumnMajor,
                            Matrix::row_major(output_grad, self.group_out(), positions),
                            Matrix::row_major(&col, rows, positions).transposed(),
                            parallel_gemm,
                        );
                    }
                }
                grad_t
            });
        let grad_t = partial_sums
            .reduce_with(|mut total, part| {
                total.iter_mut().zip(&part).for_each(|(t, p)| *t += p);
                total
            })
            .unwrap_or_else(|| vec![0.0; size]);
        let mut grad = vec![0.0f32; size];
        let groups = grad
            .chunks_mut(group_grad_len)
            .zip(grad_t.chunks(group_grad_len));
        for (grad, grad_t) in groups {
            for (channel, grad) in grad.chunks_mut(rows).enumerate() {
                let column = grad_t[channel..].iter().step_by(self.group_out());
                grad.iter_mut().zip(column).for_each(|(g, t)| *g = *t);
            }
        }
        grad
    }

    /// The input gradient of the contiguous weight and output gradient by the fastest of
    /// our products for this geometry and CPU, `None` where flex's transposed convolution
    /// is faster: the flipped forward product ([`Self::input_grad`]) where it applies and
    /// pays, else `dcol = Wᵀ · dY` and col2im ([`Self::input_grad_col2im`]) except on CPUs
    /// where the forward product is the indirect one (AVX2 without AVX-512), where
    /// col2im was not measured faster than flex's (docs/benchmarks.md).
    pub(crate) fn input_grad_native(
        &self,
        weight: &[f32],
        output_grad: &[f32],
    ) -> Option<Vec<f32>> {
        if self.input_grad_pays()
            && let Some(grad) = self.input_grad(weight, output_grad)
        {
            return Some(grad);
        }
        (!indirect::preferred()).then(|| self.input_grad_col2im(weight, output_grad))
    }

    /// Whether [`Self::input_grad`] is faster than flex's transposed convolution for
    /// this geometry (where it applies at all): always where the forward product is the
    /// indirect one, which packs no im2col matrix (AVX2 kernels on Zen 5, 5 × 5 layer:
    /// 126–127 ms against flex's 144–146, docs/benchmarks.md).
    fn input_grad_pays(&self) -> bool {
        indirect::preferred() || self.channels_in >= FLIPPED_MIN_CHANNELS_IN
    }

    /// The input gradient of the contiguous weight and output gradient for a stride-1,
    /// undilated, ungrouped convolution with padding below its kernel, `None` for any
    /// other: the forward convolution ([`Self::forward`]) of the output gradient with the
    /// kernel flipped in space and its channel axes swapped, padded by
    /// `kernel − 1 − padding`.
    pub(crate) fn input_grad(&self, weight: &[f32], output_grad: &[f32]) -> Option<Vec<f32>> {
        let [kernel_h, kernel_w] = self.kernel;
        let padding = [
            kernel_h.checked_sub(1 + self.padding[0])?,
            kernel_w.checked_sub(1 + self.padding[1])?,
        ];
        let plain = self.stride == [1, 1] && self.dilation == [1, 1] && self.groups == 1;
        if !plain {
            return None;
        }
        let flipped_geometry = Self {
            channels_in: self.channels_out,
            input: self.output,
            channels_out: self.channels_in,
            output: self.input,
            padding,
            ..*self
        };
        let kernel_len = kernel_h * kernel_w;
        let mut flipped = vec![0.0f32; weight.len()];
        let filters = weight.chunks_exact(self.channels_in * kernel_len);
        for (channel_out, filters) in filters.enumerate() {
            for (channel_in, filter) in filters.chunks_exact(kernel_len).enumerate() {
                let at = (channel_in * self.channels_out + channel_out) * kernel_len;
                let target = &mut flipped[at..at + kernel_len];
                target
                    .iter_mut()
                    .zip(filter.iter().rev())
                    .for_each(|(t, w)| *t = *w);
            }
        }
        let zero_bias = vec![0.0f32; self.channels_in];
        Some(flipped_geometry.forward(output_grad, &flipped, &zero_bias))
    }
}

/// Burn's backward step for [`NativeConv`] on flex: the weight gradient is
/// [`ConvGeometry::weight_grad`], the input gradient
/// [`ConvGeometry::input_grad_native`]'s choice, the bias gradient flex's own.
#[derive(Debug)]
struct FlexConvBackward;

/// What the backward step reads: the input, the weight, the bias and the options.
#[derive(Debug, Clone)]
struct FlexConvState {
    x: FlexTensor,
    weight: FlexTensor,
    bias: FlexTensor,
    options: ConvOptions<2>,
}

impl Backward<Flex, 3> for FlexConvBackward {
    type State = FlexConvState;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let FlexConvState {
            x,
            weight,
            bias,
            options,
        } = ops.state;
        if let Some(node) = node_x {
            let x_grad = Flex::native_conv2d_x_backward(
                x.clone(),
                weight.clone(),
                grad.clone(),
                options.clone(),
            );
            grads.register::<Flex>(node.id, x_grad);
        }
        if let Some(node) = node_weight {
            let weight_grad =
                Flex::native_conv2d_weight_backward(x.clone(), weight, grad.clone(), options);
            grads.register::<Flex>(node.id, weight_grad);
        }
        if let Some(node) = node_bias {
            grads.register::<Flex>(node.id, Flex::conv2d_bias_backward(x, bias, grad));
        }
    }
}

impl<C: CheckpointStrategy> NativeConv for Autodiff<Flex, C> {
    fn native_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let prep = FlexConvBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful();
        let [x, weight, bias] = [x, weight, bias].map(|input| input.into_primitive());
        match prep {
            OpsKind::Tracked(prep) => {
                let output =
                    Flex::native_conv2d(x.clone(), weight.clone(), bias.clone(), options.clone());
                let state = FlexConvState {
                    x,
                    weight,
                    bias,
                    options,
                };
                prep.finish(state, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::native_conv2d(x, weight, bias, options)),
        }
    }

    fn native_conv2d_weight_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let gradient = Flex::native_conv2d_weight_backward;
        untracked_conv_gradient::<Flex, C>([x, weight, output_grad], options, gradient)
    }

    fn native_conv2d_x_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let gradient = Flex::native_conv2d_x_backward;
        untracked_conv_gradient::<Flex, C>([x, weight, output_grad], options, gradient)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random sequence in [-1, 1).
    fn values(count: usize, seed: u64) -> Vec<f32> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..count)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Every multiply-add of the convolution by its definition, as (input, weight,
    /// output) indices into the flattened NCHW tensors; padding contributes none.
    fn multiply_adds(g: &ConvGeometry) -> Vec<[usize; 3]> {
        let (gi, go) = (g.group_in(), g.group_out());
        let mut taps = Vec::new();
        for n in 0..g.batch {
            for co in 0..g.channels_out {
                for c in 0..gi {
                    let ci = co / go * gi + c;
                    for i in 0..g.kernel[0] {
                        for j in 0..g.kernel[1] {
                            let w = ((co * gi + c) * g.kernel[0] + i) * g.kernel[1] + j;
                            for oh in 0..g.output[0] {
                                for ow in 0..g.output[1] {
                                    let ih = (oh * g.stride[0] + i * g.dilation[0])
                                        .checked_sub(g.padding[0])
                                        .filter(|&ih| ih < g.input[0]);
                                    let iw = (ow * g.stride[1] + j * g.dilation[1])
                                        .checked_sub(g.padding[1])
                                        .filter(|&iw| iw < g.input[1]);
                                    let (Some(ih), Some(iw)) = (ih, iw) else {
                                        continue;
                                    };
                                    let x = ((n * g.channels_in + ci) * g.input[0] + ih)
                                        * g.input[1]
                                        + iw;
                                    let y = ((n * g.channels_out + co) * g.output[0] + oh)
                                        * g.output[1]
                                        + ow;
                                    taps.push([x, w, y]);
                                }
                            }
                        }
                    }
                }
            }
        }
        taps
    }

    /// The convolution by its definition: `y[o] = bias + Σ x[i] · w[k]`, in f64.
    fn reference_forward(g: &ConvGeometry, x: &[f32], w: &[f32], bias: &[f32]) -> Vec<f32> {
        let positions = g.output_positions();
        let mut out: Vec<f64> = (0..g.batch * g.image_out())
            .map(|o| f64::from(bias[o / positions % g.channels_out]))
            .collect();
        for [xi, wi, yi] in multiply_adds(g) {
            out[yi] += f64::from(x[xi]) * f64::from(w[wi]);
        }
        out.into_iter().map(|v| v as f32).collect()
    }

    /// The weight gradient by its definition: `dw[k] = Σ x[i] · dy[o]`, in f64.
    fn reference_weight_grad(g: &ConvGeometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
        let mut grad = vec![0.0f64; g.channels_out * g.col_rows()];
        for [xi, wi, yi] in multiply_adds(g) {
            grad[wi] += f64::from(x[xi]) * f64::from(dy[yi]);
        }
        grad.into_iter().map(|v| v as f32).collect()
    }

    /// Geometries covering strides, padding, dilation, groups, 1 × 1 and non-square
    /// kernels and inputs, and a batch of one (the single-task path).
    fn geometries() -> Vec<ConvGeometry> {
        // (batch, in, out, input h/w, kernel h/w, stride, padding, dilation, groups)
        let cases = [
            (2, 3, 4, [11, 11], [3, 3], [1, 1], [1, 1], [1, 1], 1),
            (3, 3, 5, [23, 19], [11, 5], [4, 3], [0, 2], [1, 1], 1),
            (1, 4, 6, [9, 10], [3, 2], [2, 1], [2, 0], [2, 3], 2),
            (5, 6, 4, [7, 7], [5, 5], [1, 1], [2, 2], [1, 1], 2),
            (4, 2, 2, [5, 6], [1, 1], [2, 2], [0, 0], [1, 1], 1),
            (2, 1, 3, [4, 4], [3, 3], [3, 3], [3, 3], [1, 1], 1),
            (3, 5, 7, [8, 6], [5, 3], [1, 1], [2, 0], [1, 1], 1),
            (2, 4, 3, [6, 7], [2, 2], [1, 1], [1, 1], [1, 1], 1),
            // More than one tile of channels (16) with a short last one, over groups.
            (2, 6, 36, [7, 5], [3, 3], [1, 2], [1, 1], [1, 1], 2),
        ];
        cases
            .into_iter()
            .map(
                |(
                    batch,
                    channels_in,
                    channels_out,
                    input,
                    kernel,
                    stride,
                    padding,
                    dilation,
                    groups,
                )| {
                    let mut geometry = ConvGeometry {
                        batch,
                        channels_in,
                        input,
                        channels_out,
                        kernel,
                        output: [0, 0],
                        stride,
                        padding,
                        dilation,
                        groups,
                    };
                    geometry.output = [0, 1].map(|axis| geometry.output_side(axis).unwrap());
                    geometry
                },
            )
            .collect()
    }

    fn assert_close(actual: &[f32], expected: &[f32], what: &str) {
        assert_eq!(actual.len(), expected.len(), "{what}: sizes");
        for (index, (a, e)) in actual.iter().zip(expected).enumerate() {
            assert!(
                (a - e).abs() <= 1e-4 * (1.0 + e.abs()),
                "{what}, element {index}: {a} against {e}"
            );
        }
    }

    /// Both forward products, im2col and gemm and (where the CPU has AVX2 and FMA) the
    /// indirect one, whichever `forward` chooses here.
    #[test]
    fn forward_matches_the_definition() {
        let indirect = indirect::available();
        if !indirect {
            eprintln!("this CPU lacks AVX2 or FMA: the indirect product does not run here");
        }
        for (seed, g) in geometries().into_iter().enumerate() {
            let seed = seed as u64;
            let x = values(g.batch * g.image_in(), seed);
            let w = values(g.channels_out * g.col_rows(), seed + 10);
            let bias = values(g.channels_out, seed + 20);
            let expected = reference_forward(&g, &x, &w, &bias);
            assert_close(&g.forward(&x, &w, &bias), &expected, &format!("{g:?}"));
            if indirect {
                let actual = g
                    .forward_indirect(&x, &w, &bias)
                    .expect("AVX2 and FMA are here");
                assert_close(&actual, &expected, &format!("indirect, {g:?}"));
            }
        }
    }

    /// The input gradient by its definition: `dx[i] = Σ w[k] · dy[o]`, in f64.
    fn reference_input_grad(g: &ConvGeometry, w: &[f32], dy: &[f32]) -> Vec<f32> {
        let mut grad = vec![0.0f64; g.batch * g.image_in()];
        for [xi, wi, yi] in multiply_adds(g) {
            grad[xi] += f64::from(w[wi]) * f64::from(dy[yi]);
        }
        grad.into_iter().map(|v| v as f32).collect()
    }

    #[test]
    fn input_grad_matches_the_definition_where_it_applies() {
        let mut covered = 0;
        for (seed, g) in geometries().into_iter().enumerate() {
            let seed = seed as u64;
            let w = values(g.channels_out * g.col_rows(), seed + 10);
            let dy = values(g.batch * g.image_out(), seed + 100);
            let expected = reference_input_grad(&g, &w, &dy);
            let col2im = g.input_grad_col2im(&w, &dy);
            assert_close(&col2im, &expected, &format!("col2im, {g:?}"));
            let applies = g.stride == [1, 1] && g.dilation == [1, 1] && g.groups == 1;
            match g.input_grad(&w, &dy) {
                Some(grad) => {
                    assert!(applies, "{g:?}: a gradient where none applies");
                    assert_close(&grad, &expected, &format!("flipped, {g:?}"));
                    covered += 1;
                }
                None => assert!(!applies, "{g:?}: no gradient"),
            }
        }
        assert!(
            covered >= 3,
            "{covered} geometries with a flipped input gradient"
        );
    }

    #[test]
    fn weight_grad_matches_the_definition() {
        for (seed, g) in geometries().into_iter().enumerate() {
            let seed = seed as u64;
            let x = values(g.batch * g.image_in(), seed);
            let dy = values(g.batch * g.image_out(), seed + 100);
            let expected = reference_weight_grad(&g, &x, &dy);
            assert_close(&g.weight_grad(&x, &dy), &expected, &format!("{g:?}"));
        }
    }
}
