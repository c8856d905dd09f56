//! SGD with momentum, dampening, Nesterov momentum and L2 weight decay, as PyTorch's
//! `torch.optim.SGD` and Burn's `Sgd` compute it, in fewer passes over memory: a Burn
//! [`Optimizer`] over [`alexnet_kernels::sgd_step`] (in place on libtorch).
//! The state is recorded under the same names as Burn's `SgdState` (`momentum.velocity`),
//! so optimizer records of either can be read by the other.
//!
//! ```
//! use alexnet_train::optim::sgd::{Sgd, SgdParams};
//! use burn::optim::ModuleOptimizer;
//!
//! let sgd = Sgd::from(SgdParams { momentum: 0.9, dampening: 0.0, nesterov: true, weight_decay: 5e-4 });
//! let optimizer = ModuleOptimizer::from(sgd);
//! # let _ = optimizer;
//! ```

pub use alexnet_kernels::SgdParams;
use burn::{
    optim::{LearningRate, Optimizer, RecordState, StateSink, StateSource, join_path},
    prelude::*,
};

/// SGD as a Burn optimizer, with PyTorch's hyper-parameters ([`SgdParams`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sgd {
    /// The hyper-parameters.
    pub params: SgdParams,
}

impl From<SgdParams> for Sgd {
    fn from(params: SgdParams) -> Self {
        Self { params }
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
        let (tensor, velocity) =
            alexnet_kernels::sgd_step(&self.params, lr, tensor, grad, velocity);
        (
            tensor,
            velocity.map(|velocity| SgdState {
                velocity: Some(velocity),
            }),
        )
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        SgdState {
            velocity: state.velocity.map(|velocity| velocity.to_device(device)),
        }
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
        tensor::{Distribution, FloatDType, Tolerance},
    };

    fn burns(sgd: Sgd) -> ModuleOptimizer {
        let sgd = sgd.params;
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

    fn sgd(momentum: f64, dampening: f64, nesterov: bool, weight_decay: f64) -> Sgd {
        Sgd::from(SgdParams {
            momentum,
            dampening,
            nesterov,
            weight_decay,
        })
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
            let loss = model.forward(x, FloatDType::F32).powf_scalar(2.0).sum();
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
            sgd(0.9, 0.0, true, 5e-4),
            sgd(0.9, 0.1, false, 0.0),
            sgd(0.0, 0.0, false, 1e-2),
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
        let sgd = sgd(0.9, 0.0, true, 5e-4);
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
