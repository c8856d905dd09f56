//! How parameters move: SGD with PyTorch's semantics or AdamW (`choice`), the learning-rate schedule,
//! dynamic loss scaling for f16 — each with its config section and saved state — and
//! when the run stops improving (`stopping`).

pub mod choice;
pub mod loss_scale;
pub mod schedule;
pub mod sgd;
pub mod stopping;

pub use choice::{AdamWParams, OptimizerKind, sgd_optimizer};
pub use loss_scale::{LossScaleConfig, LossScaleState, LossScaler, MIN_LOSS_SCALE};
pub use schedule::{Schedule, ScheduleState, SchedulerConfig};
pub use sgd::Sgd;
pub use stopping::{EarlyStop, EarlyStoppingConfig};
