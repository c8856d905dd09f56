//! Dropout on flex in one pass each way, its mask recomputed from a seed.
//!
//! Burn's `Dropout` draws a full tensor of Bernoulli samples, one `rand` call per element
//! on one thread, then multiplies twice (mask, then scale), and its backward pass
//! multiplies twice again: about 4 % of AlexNet's training step on flex. Here the keep
//! decision of element `i` is a hash of `(seed, i)` (SplitMix64's finalizer, two
//! elements a hash), so the forward pass is one parallel multiply by `0` or
//! `1 / (1 - p)`, the backward step recomputes the same factors from the seed instead of
//! keeping a mask, and the result does not depend on how the work is split over threads.

use super::{f32s, register_single_input_grad, tensor};
use crate::NativeDropout;
use burn::{
    backend::{
        Autodiff, Flex, TensorMetadata,
        autodiff::{
            checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
            grads::Gradients,
            ops::{Backward, Ops, OpsKind},
        },
        flex::FlexTensor,
        ops::FloatTensorOps,
        tensor::FloatTensor,
    },
    tensor::{DType, FloatDType},
};
use rayon::prelude::*;

/// Elements a rayon task handles (even, so that a hash's two halves stay in one task).
const CHUNK: usize = 1 << 15;

/// The keep decisions of one dropout call: element `i` is kept when the `i % 2` half of
/// `hash(seed, i / 2)` is below `threshold`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct DropoutMask {
    seed: u64,
    /// `(1 - prob) · 2³²`, rounded: the kept share of 32-bit halves.
    threshold: u64,
    /// `1 / (1 - prob)`.
    scale: f32,
}

impl DropoutMask {
    /// The mask of `prob` (the probability of zeroing an element, in `[0, 1)`) and `seed`.
    pub(crate) fn new(prob: f64, seed: u64) -> Self {
        let keep = 1.0 - prob;
        Self {
            seed,
            threshold: (keep * 4_294_967_296.0).round() as u64,
            scale: (1.0 / keep) as f32,
        }
    }

    /// SplitMix64's output function of the pair index `pair` under this seed.
    fn hash(&self, pair: u64) -> u64 {
        let mut z = self
            .seed
            .wrapping_add(pair.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The factors of the pair `pair`'s two elements: `scale` when kept, else 0.
    fn pair_factors(&self, pair: u64) -> [f32; 2] {
        let hash = self.hash(pair);
        [hash & 0xFFFF_FFFF, hash >> 32].map(|half| {
            if half < self.threshold {
                self.scale
            } else {
                0.0
            }
        })
    }

    /// The factor of element `index`.
    #[cfg(test)]
    fn factor(&self, index: usize) -> f32 {
        self.pair_factors(index as u64 / 2)[index % 2]
    }

    /// `values[i] · factor(i)` for every element, in parallel.
    pub(crate) fn apply(&self, values: &[f32]) -> Vec<f32> {
        let mut output = vec![0.0f32; values.len()];
        let tasks = output.par_chunks_mut(CHUNK).zip(values.par_chunks(CHUNK));
        tasks.enumerate().for_each(|(task, (output, values))| {
            let first_pair = (task * CHUNK / 2) as u64;
            let pairs = output.chunks_mut(2).zip(values.chunks(2));
            for (pair, (output, values)) in (first_pair..).zip(pairs) {
                let factors = self.pair_factors(pair);
                for ((o, &v), factor) in output.iter_mut().zip(values).zip(factors) {
                    *o = v * factor;
                }
            }
        });
        output
    }

    /// `tensor · factors`; a half-precision tensor is multiplied in f32 and cast back.
    fn apply_to(&self, values: FlexTensor) -> FlexTensor {
        let dtype = values.dtype();
        let values = match dtype {
            DType::F32 => values.to_contiguous(),
            _ => Flex::float_cast(values, FloatDType::F32).to_contiguous(),
        };
        let output = tensor(self.apply(f32s(&values)), values.shape());
        match dtype {
            DType::F32 => output,
            other => Flex::float_cast(output, other.into()),
        }
    }
}

impl NativeDropout for Flex {
    fn native_dropout(x: FlexTensor, prob: f64, seed: u64) -> FlexTensor {
        DropoutMask::new(prob, seed).apply_to(x)
    }
}

/// Burn's backward step for [`NativeDropout`] on flex: the output gradient times the
/// forward pass's factors, recomputed from the seed.
#[derive(Debug)]
struct FlexDropoutBackward;

impl Backward<Flex, 1> for FlexDropoutBackward {
    type State = DropoutMask;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        register_single_input_grad(ops, grads, |mask, grad| mask.apply_to(grad));
    }
}

impl<C: CheckpointStrategy> NativeDropout for Autodiff<Flex, C> {
    fn native_dropout(x: FloatTensor<Self>, prob: f64, seed: u64) -> FloatTensor<Self> {
        let prep = FlexDropoutBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful();
        let output = Flex::native_dropout(x.into_primitive(), prob, seed);
        match prep {
            OpsKind::Tracked(prep) => prep.finish(DropoutMask::new(prob, seed), output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_its_share_and_scales_what_it_keeps() {
        let values = vec![1.0f32; 1 << 20];
        for prob in [0.25, 0.5, 0.9] {
            let output = DropoutMask::new(prob, 7).apply(&values);
            let kept = output.iter().filter(|&&v| v != 0.0).count() as f64 / values.len() as f64;
            // The share's standard deviation is below 5e-4 at 2^20 elements: 0.005 is
            // ten of them.
            assert!((kept - (1.0 - prob)).abs() < 0.005, "p {prob}: kept {kept}");
            let scale = (1.0 / (1.0 - prob)) as f32;
            assert!(output.iter().all(|&v| v == 0.0 || v == scale), "p {prob}");
        }
    }

    #[test]
    fn the_parallel_pass_is_the_per_element_definition() {
        // Odd and over several chunks, so tasks end mid-pair nowhere but the last.
        let values: Vec<f32> = (0..3 * CHUNK + 1001).map(|i| i as f32 - 5000.0).collect();
        let mask = DropoutMask::new(0.25, 0xDEAD_BEEF);
        let output = mask.apply(&values);
        for (index, (&o, &v)) in output.iter().zip(&values).enumerate() {
            assert_eq!(
                o.to_bits(),
                (v * mask.factor(index)).to_bits(),
                "element {index}"
            );
        }
    }

    #[test]
    fn seeds_give_independent_masks() {
        let values = vec![1.0f32; 1 << 16];
        let [a, b] = [1, 2].map(|seed| DropoutMask::new(0.5, seed).apply(&values));
        let differ = a.iter().zip(&b).filter(|(a, b)| a != b).count() as f64 / a.len() as f64;
        // Two independent masks at p = 0.5 differ in half the elements (σ 0.002).
        assert!((differ - 0.5).abs() < 0.02, "masks differ in {differ}");
    }

    #[test]
    fn a_dropped_nan_stays_nan() {
        let output = DropoutMask::new(0.9, 1).apply(&[f32::NAN; 64]);
        assert!(output.iter().all(|v| v.is_nan()));
    }
}
