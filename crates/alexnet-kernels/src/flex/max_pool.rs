//! Max pooling on flex with the window's bounds worked out per row and column.
//!
//! flex's own max pool walks a 3-D window for every output element, recomputing the
//! window's valid ranges each time, and stores 64-bit indices that Burn's autodiff then
//! converts to its integer type in another pass: 4.5 % of AlexNet's training step. Here
//! the valid kernel columns of every output column are computed once per call, and the
//! indices are 32-bit positions within the plane, kept by the backward step itself.

use super::{f32s, register_single_input_grad, tensor};
use crate::NativeMaxPool;
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
    tensor::{DType, Shape},
};
use rayon::prelude::*;
use std::ops::Range;

/// Index of an output element whose window lies wholly in the padding (no input).
const NO_INPUT: u32 = u32::MAX;

/// The shapes of one max pool (symmetric padding, floor rounding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolGeometry {
    pub planes: usize,
    pub input: [usize; 2],
    pub output: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
}

impl PoolGeometry {
    /// The geometry of pooling an `[N, C, H, W]` tensor of `shape`, or `None` when the
    /// settings give no output or the plane is too large for 32-bit indices.
    pub(crate) fn new(
        shape: &Shape,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
    ) -> Option<Self> {
        let [batch, channels, height, width]: [usize; 4] = shape.as_slice().try_into().ok()?;
        let side = |axis: usize, input: usize| {
            let reach = dilation[axis] * kernel[axis].checked_sub(1)? + 1;
            let padded = input + 2 * padding[axis];
            (stride[axis] > 0 && padded >= reach).then(|| (padded - reach) / stride[axis] + 1)
        };
        let output = [side(0, height)?, side(1, width)?];
        (u32::try_from(height * width).is_ok_and(|size| size < NO_INPUT)).then_some(Self {
            planes: batch * channels,
            input: [height, width],
            output,
            kernel,
            stride,
            padding,
            dilation,
        })
    }

    fn input_plane(&self) -> usize {
        self.input[0] * self.input[1]
    }

    fn output_plane(&self) -> usize {
        self.output[0] * self.output[1]
    }

    /// The kernel positions along `axis` whose input lies inside the plane, for output
    /// position `out`.
    fn valid(&self, axis: usize, out: usize) -> Range<usize> {
        let start = out * self.stride[axis];
        let dilation = self.dilation[axis];
        let padding = self.padding[axis];
        // Kernel position k reads input start + k·dilation − padding.
        let first = padding.saturating_sub(start).div_ceil(dilation);
        let limit = self.input[axis] + padding;
        let last = if limit > start {
            ((limit - start - 1) / dilation + 1).min(self.kernel[axis])
        } else {
            0
        };
        first.min(last)..last
    }

    /// The pooled planes and, per output element, the position of its maximum in its
    /// input plane (the last NaN wins, as in PyTorch), of the contiguous input `x`.
    pub(crate) fn forward(&self, x: &[f32]) -> (Vec<f32>, Vec<u32>) {
        let columns: Vec<Range<usize>> = (0..self.output[1]).map(|ow| self.valid(1, ow)).collect();
        let rows: Vec<Range<usize>> = (0..self.output[0]).map(|oh| self.valid(0, oh)).collect();
        let mut output = vec![0.0f32; self.planes * self.output_plane()];
        let mut indices = vec![NO_INPUT; output.len()];
        let [_, width] = self.input;
        let planes = output
            .par_chunks_mut(self.output_plane())
            .zip(indices.par_chunks_mut(self.output_plane()))
            .zip(x.par_chunks(self.input_plane()));
        planes.for_each(|((output, indices), x)| {
            let mut out = output.iter_mut().zip(indices.iter_mut());
            for (oh, kernel_rows) in rows.iter().enumerate() {
                let top = oh * self.stride[0];
                for (ow, kernel_columns) in columns.iter().enumerate() {
                    let left = ow * self.stride[1];
                    let (mut best, mut best_index) = (f32::NEG_INFINITY, NO_INPUT);
                    for i in kernel_rows.clone() {
                        let ih = top + i * self.dilation[0] - self.padding[0];
                        for j in kernel_columns.clone() {
                            let index = ih * width + left + j * self.dilation[1] - self.padding[1];
                            let value = x[index];
                            if best_index == NO_INPUT || value > best || value.is_nan() {
                                best = value;
                                best_index = index as u32;
                            }
                        }
                    }
                    if let Some((o, i)) = out.next() {
                        *o = best;
                        *i = best_index;
                    }
                }
            }
        });
        (output, indices)
    }

    /// The input gradient: each output element's gradient added at its maximum.
    pub(crate) fn backward(&self, indices: &[u32], output_grad: &[f32]) -> Vec<f32> {
        let mut grad = vec![0.0f32; self.planes * self.input_plane()];
        grad.par_chunks_mut(self.input_plane())
            .zip(indices.par_chunks(self.output_plane()))
            .zip(output_grad.par_chunks(self.output_plane()))
            .for_each(|((grad, indices), output_grad)| {
                for (&index, &g) in indices.iter().zip(output_grad) {
                    if let Some(slot) = grad.get_mut(index as usize) {
                        *slot += g;
                    }
                }
            });
        grad
    }

    fn output_shape(&self, shape: &Shape) -> Shape {
        let dims = shape.as_slice();
        Shape::from(vec![dims[0], dims[1], self.output[0], self.output[1]])
    }
}

/// The geometry when the native kernel covers this input (f32, `[N, C, H, W]`).
fn covered(
    x: &FlexTensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
) -> Option<PoolGeometry> {
    let geometry = PoolGeometry::new(&x.shape(), kernel, stride, padding, dilation)?;
    (x.dtype() == DType::F32).then_some(geometry)
}

impl NativeMaxPool for Flex {
    fn native_max_pool2d(
        x: FlexTensor,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
    ) -> FlexTensor {
        let Some(geometry) = covered(&x, kernel, stride, padding, dilation) else {
            return Flex::max_pool2d(x, kernel, stride, padding, dilation, false);
        };
        let x = x.to_contiguous();
        let (output, _) = geometry.forward(f32s(&x));
        tensor(output, geometry.output_shape(&x.shape()))
    }
}

/// What the backward step reads: the geometry, the input's shape and the indices.
#[derive(Debug, Clone)]
struct PoolState {
    geometry: PoolGeometry,
    input_shape: Shape,
    indices: Vec<u32>,
}

/// Burn's backward step for [`NativeMaxPool`] on flex.
#[derive(Debug)]
struct FlexPoolBackward;

impl Backward<Flex, 1> for FlexPoolBackward {
    type State = PoolState;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        register_single_input_grad(ops, grads, |state, grad| {
            let grad = grad.to_contiguous();
            let input_grad = state.geometry.backward(&state.indices, f32s(&grad));
            tensor(input_grad, state.input_shape)
        });
    }
}

impl<C: CheckpointStrategy> NativeMaxPool for Autodiff<Flex, C> {
    fn native_max_pool2d(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
    ) -> FloatTensor<Self> {
        let shape = x.shape();
        let geometry = PoolGeometry::new(&shape, kernel, stride, padding, dilation);
        let Some(geometry) = geometry.filter(|_| x.dtype() == DType::F32) else {
            // Burn's own, differentiated by Burn.
            return Self::max_pool2d(x, kernel, stride, padding, dilation, false);
        };
        let prep = FlexPoolBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful();
        let x = x.into_primitive().to_contiguous();
        let (output, indices) = geometry.forward(f32s(&x));
        let output = tensor(output, geometry.output_shape(&shape));
        match prep {
            OpsKind::Tracked(prep) => {
                let state = PoolState {
                    geometry,
                    input_shape: shape,
                    indices,
                };
                prep.finish(state, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_kernel_positions_stay_inside_the_plane() {
        for (input, kernel, stride, padding, dilation) in [
            (55, 3, 2, 0, 1),
            (7, 3, 1, 1, 1),
            (9, 3, 2, 2, 2),
            (4, 2, 3, 1, 1),
        ] {
            let geometry = PoolGeometry::new(
                &Shape::new([1, 1, input, input]),
                [kernel; 2],
                [stride; 2],
                [padding; 2],
                [dilation; 2],
            )
            .unwrap();
            for out in 0..geometry.output[0] {
                let range = geometry.valid(0, out);
                for k in 0..kernel {
                    let position = (out * stride + k * dilation) as isize - padding as isize;
                    let inside = position >= 0 && position < input as isize;
                    assert_eq!(range.contains(&k), inside, "{geometry:?}, out {out}, k {k}");
                }
            }
        }
    }

    #[test]
    fn nan_wins_its_window_and_the_last_nan_is_the_index() {
        let geometry =
            PoolGeometry::new(&Shape::new([1, 1, 1, 4]), [1, 4], [1, 1], [0, 0], [1, 1]).unwrap();
        let (output, indices) = geometry.forward(&[1.0, f32::NAN, 3.0, f32::NAN]);
        assert!(output[0].is_nan());
        assert_eq!(indices, [3]);
        let (output, indices) = geometry.forward(&[2.0, 5.0, 5.0, -1.0]);
        assert_eq!((output[0], indices[0]), (5.0, 1));
        assert_eq!(geometry.backward(&indices, &[0.5]), [0.0, 0.5, 0.0, 0.0]);
    }
}
