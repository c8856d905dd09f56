//! The native operations on flex: convolutions as one matrix product per image, fused
//! BatchNorm, and max pooling with 32-bit indices.

mod batch_norm;
mod conv;
mod dropout;
mod gemm;
mod im2col;
mod indirect;
mod max_pool;

use burn::{
    backend::{
        Flex,
        autodiff::{grads::Gradients, ops::Ops},
        flex::{FlexTensor, Layout},
    },
    tensor::{Bytes, DType, Shape},
};

/// The values of a contiguous f32 tensor.
pub(crate) fn f32s(tensor: &FlexTensor) -> &[f32] {
    tensor
        .as_slice::<f32>()
        .expect("the caller checked the dtype and made the tensor contiguous")
}

/// A contiguous f32 tensor of `shape` holding `values`.
pub(crate) fn tensor(values: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(shape),
        DType::F32,
    )
}

/// The backward step of an operation with one input: the input's gradient is
/// `input_grad(state, output gradient)`, registered when the input needs one.
pub(crate) fn register_single_input_grad<S>(
    ops: Ops<S, 1>,
    grads: &mut Gradients,
    input_grad: impl FnOnce(S, FlexTensor) -> FlexTensor,
) {
    let grad = grads.consume::<Flex>(&ops.node);
    if let [Some(node)] = ops.parents {
        grads.register::<Flex>(node.id, input_grad(ops.state, grad));
    }
}
