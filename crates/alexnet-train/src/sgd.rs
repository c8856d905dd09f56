//! SGD with momentum, dampening, Nesterov momentum and L2 weight decay, as PyTorch's
//! `torch.optim.SGD` and Burn's `Sgd` compute it, in fewer passes over memory.
//!
//! Burn's `Sgd` makes about nine element-wise passes over each parameter per step, three
//! of them into new buffers; PyTorch's makes five, in place. On a libtorch device
//! [`Sgd`] updates the parameter and its velocity in place with libtorch's kernels, in
//! PyTorch's five passes (when Burn holds the only reference to each buffer; otherwise
//! out of place). On other devices it computes the same update with Burn's tensor ops.
//! The state is recorded under the same names as Burn's `SgdState` (`momentum.velocity`),
//! so optimizer records of either can be read by the other.
//!
//! ```
//! use alexnet_train::sgd::Sgd;
//! use burn::optim::ModuleOptimizer;
//!
//! let sgd = Sgd::new(0.9, 0.0, true, 5e-4);
//! let optimizer = ModuleOptimizer::from(sgd);
//! # let _ = optimizer;
//! ```

use burn::{
    optim::{LearningRate, Optimizer, RecordState, StateSink, StateSource, join_path},
    prelude::*,
};

/// SGD's hyper-parameters (PyTorch's meaning: dampening applies to the gradient added to
/// the velocity, weight decay is added to the gradient before momentum).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sgd {
    /// Momentum factor; 0 for plain SGD.
    pub momentum: f64,
    /// Dampening of the gradient added to the velocity.
    pub dampening: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 penalty, added to the gradient as `weight_decay · parameter`.
    pub weight_decay: f64,
}

impl Sgd {
    /// SGD with these settings (validated by the caller's configuration).
    pub fn new(momentum: f64, dampening: f64, nesterov: bool, weight_decay: f64) -> Self {
        Self {
            momentum,
            dampening,
            nesterov,
            weight_decay,
        }
    }
}

/// The velocity of one parameter (absent without momentum or before the first step).
#[derive(Clone)]
pub struct SgdState<const D: usize> {
    /// The momentum buffer.
    pub velocity: Option<Tensor<D>>,
}

/// Burn's `SgdState` keeps the velocity in a nested `momentum` state.
const MOMENTUM: &str = "momentum";
const VELOCITY: &str = "velocity";

impl<const D: usize> RecordState for SgdState<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        if let Some(velocity) = &self.velocity {
            out.push_tensor(
                &join_path(prefix, MOMENTUM),
                VELOCITY,
                velocity.clone().into_data(),
            );
        }
    }

    fn state_unflatten(prefix: &str, src: &mut StateSource, device: &Device) -> Option<Self> {
        let velocity = src
            .take_tensor(&join_path(prefix, MOMENTUM), VELOCITY)
            .map(|data| Tensor::from_data(data, device));
        Some(Self { velocity })
    }
}

impl Optimizer for Sgd {
    type State<const D: usize> = SgdState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let velocity = state.and_then(|state| state.velocity);
        if self.momentum == 0.0 {
            let grad = self.decayed(grad, &tensor);
            return (tensor - grad.mul_scalar(lr), None);
        }
        #[cfg(feature = "tch")]
        let velocity = match velocity {
            Some(velocity)
                if alexnet_model::native::backend(&tensor.device())
                    == Some(alexnet_model::native::NativeBackend::LibTorch) =>
            {
                let (tensor, velocity) = native::momentum_step(self, lr, tensor, grad, velocity);
                let velocity = Some(velocity);
                return (tensor, Some(SgdState { velocity }));
            }
            velocity => velocity,
        };
        let grad = self.decayed(grad, &tensor);
        let velocity = match velocity {
            // The first step: the velocity starts as the (decayed) gradient, undampened.
            None => grad.clone(),
            Some(velocity) => velocity
                .mul_scalar(self.momentum)
                .add(grad.clone().mul_scalar(1.0 - self.dampening)),
        };
        let step = if self.nesterov {
            grad.add(velocity.clone().mul_scalar(self.momentum))
        } else {
            velocity.clone()
        };
        let velocity = Some(velocity);
        (tensor - step.mul_scalar(lr), Some(SgdState { velocity }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        SgdState {
            velocity: state.velocity.map(|velocity| velocity.to_device(device)),
        }
    }
}

impl Sgd {
    /// `grad + weight_decay · tensor`.
    fn decayed<const D: usize>(&self, grad: Tensor<D>, tensor: &Tensor<D>) -> Tensor<D> {
        if self.weight_decay == 0.0 {
            grad
        } else {
            grad.add(tensor.clone().mul_scalar(self.weight_decay))
        }
    }
}

/// The in-place momentum step on libtorch.
#[cfg(feature = "tch")]
mod native {
    // burn-tch is deprecated in favour of CubeCL; it is the libtorch backend we support.
    #![allow(deprecated)]

    use super::Sgd;
    use alexnet_model::native::fresh_copy;
    use burn::{
        backend::tensor::FloatTensor,
        backend::{Backend, Dispatch, LibTorch, backend_extension, libtorch::TchTensor},
        prelude::*,
    };

    /// One SGD step with momentum on one parameter.
    #[backend_extension(LibTorch)]
    pub trait NativeSgd: Backend {
        /// Returns the updated parameter and velocity.
        fn native_sgd_momentum_step(
            param: FloatTensor<Self>,
            grad: FloatTensor<Self>,
            velocity: FloatTensor<Self>,
            lr: f64,
            sgd: Sgd,
        ) -> (FloatTensor<Self>, FloatTensor<Self>);
    }

    impl NativeSgd for LibTorch {
        fn native_sgd_momentum_step(
            param: TchTensor,
            grad: TchTensor,
            velocity: TchTensor,
            lr: f64,
            sgd: Sgd,
        ) -> (TchTensor, TchTensor) {
            // A 0-dimensional tensor scales `addcmul_`'s product: `a += b · s` in one pass.
            let scalar = |value: f64| {
                tch::Tensor::from(value)
                    .to_kind(param.tensor.kind())
                    .to_device(param.tensor.device())
            };
            let in_place = param.can_mut() && grad.can_mut() && velocity.can_mut();
            let (mut p, mut g, mut v) = if in_place {
                (
                    param.tensor.shallow_clone(),
                    grad.tensor.shallow_clone(),
                    velocity.tensor.shallow_clone(),
                )
            } else {
                (
                    fresh_copy(&param.tensor),
                    fresh_copy(&grad.tensor),
                    fresh_copy(&velocity.tensor),
                )
            };
            tch::no_grad(|| {
                if sgd.weight_decay != 0.0 {
                    let _ = g.addcmul_(&p, &scalar(sgd.weight_decay));
                }
                let _ = v.g_mul_scalar_(sgd.momentum);
                if sgd.dampening == 0.0 {
                    let _ = v.g_add_(&g);
                } else {
                    let _ = v.addcmul_(&g, &scalar(1.0 - sgd.dampening));
                }
                if sgd.nesterov {
                    let _ = g.addcmul_(&v, &scalar(sgd.momentum));
                    let _ = p.addcmul_(&g, &scalar(-lr));
                } else {
                    let _ = p.addcmul_(&v, &scalar(-lr));
                }
            });
            if in_place {
                // Same buffers: keep Burn's ownership records.
                (
                    TchTensor {
                        tensor: p,
                        storage: param.storage,
                    },
                    TchTensor {
                        tensor: v,
                        storage: velocity.storage,
                    },
                )
            } else {
                (TchTensor::new(p), TchTensor::new(v))
            }
        }
    }

    /// The step through [`NativeSgd`], for a tensor on libtorch.
    pub(super) fn momentum_step<const D: usize>(
        sgd: &Sgd,
        lr: f64,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        velocity: Tensor<D>,
    ) -> (Tensor<D>, Tensor<D>) {
        let (tensor, velocity) = <Dispatch as NativeSgd>::native_sgd_momentum_step(
            tensor.into_dispatch(),
            grad.into_dispatch(),
            velocity.into_dispatch(),
            lr,
            *sgd,
        );
        (
            Tensor::from_dispatch(tensor),
            Tensor::from_dispatch(velocity),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alexnet_model::Dense;
    use burn::{
        module::Param,
        optim::{
            GradientsParams, ModuleOptimizer, SgdConfig, decay::WeightDecayConfig,
            momentum::MomentumConfig,
        },
        tensor::{Distribution, Tolerance},
    };

    fn burns(sgd: Sgd) -> ModuleOptimizer {
        let config = SgdConfig::new()
            .with_weight_decay(
                (sgd.weight_decay > 0.0).then(|| WeightDecayConfig::new(sgd.weight_decay as f32)),
            )
            .with_momentum((sgd.momentum > 0.0).then(|| {
                MomentumConfig::new()
                    .with_momentum(sgd.momentum)
                    .with_dampening(sgd.dampening)
                    .with_nesterov(sgd.nesterov)
            }));
        config.init()
    }

    fn dense(device: &Device) -> Dense {
        let normal = Distribution::Normal(0.0, 1.0);
        Dense {
            weight: Param::from_tensor(Tensor::random([3, 4], normal, device)),
            bias: Param::from_tensor(Tensor::random([3], normal, device)),
        }
    }

    /// `steps` steps of `optim` on a fixed sequence of batches.
    fn train(optim: &mut ModuleOptimizer, mut model: Dense, steps: usize) -> Dense {
        for step in 0..steps {
            let device = model.weight.device();
            let x = Tensor::<2>::from_data(
                TensorData::new(
                    (0..20)
                        .map(|i| ((i * 7 + step * 3) % 11) as f32 / 5.0 - 1.0)
                        .collect::<Vec<_>>(),
                    [5, 4],
                ),
                &device,
            );
            let loss = model.forward(x).powf_scalar(2.0).sum();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(0.05, model, grads);
        }
        model
    }

    fn assert_same(a: &Dense, b: &Dense) {
        let tolerance = Tolerance::<f32>::absolute(1e-6);
        a.weight
            .val()
            .into_data()
            .assert_approx_eq(&b.weight.val().into_data(), tolerance);
        a.bias
            .val()
            .into_data()
            .assert_approx_eq(&b.bias.val().into_data(), tolerance);
    }

    #[test]
    fn steps_as_burns_sgd() {
        let device = Device::flex().autodiff();
        device.seed(3);
        let model = dense(&device);
        for sgd in [
            Sgd::new(0.9, 0.0, true, 5e-4),
            Sgd::new(0.9, 0.1, false, 0.0),
            Sgd::new(0.0, 0.0, false, 1e-2),
        ] {
            let ours = train(&mut ModuleOptimizer::from(sgd), model.clone(), 4);
            let reference = train(&mut burns(sgd), model.clone(), 4);
            assert_same(&ours, &reference);
        }
    }

    #[test]
    fn reads_and_writes_burns_sgd_records() {
        let device = Device::flex().autodiff();
        device.seed(4);
        let sgd = Sgd::new(0.9, 0.0, true, 5e-4);
        let mut reference = burns(sgd);
        let model = train(&mut reference, dense(&device), 2);
        // Burn's record read by ours: the next steps are Burn's, velocity included.
        let record = reference.clone().into_bytes().unwrap();
        let mut ours = ModuleOptimizer::from(sgd).from_bytes(record).unwrap();
        let ours_model = train(&mut ours, model.clone(), 2);
        assert_same(&ours_model, &train(&mut reference, model, 2));
        // And ours read by Burn's.
        let record = ours.clone().into_bytes().unwrap();
        let mut back = burns(sgd).from_bytes(record).unwrap();
        assert_same(
            &train(&mut back, ours_model.clone(), 1),
            &train(&mut ours, ours_model, 1),
        );
    }
}
