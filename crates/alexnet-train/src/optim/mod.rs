//! How parameters move: SGD with PyTorch's semantics, the learning-rate schedule, and
//! dynamic loss scaling for f16 — each with its config section and saved state.

pub mod loss_scale;
pub mod schedule;
pub mod sgd;

pub use loss_scale::{LossScaleConfig, LossScaleState, LossScaler, MIN_LOSS_SCALE};
pub use schedule::{Schedule, ScheduleState, SchedulerConfig};
pub use sgd::Sgd;
