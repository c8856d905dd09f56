//! What the trainer keeps of each epoch: the schedule's step, the state, the best model
//! (highest validation top-1), a checkpoint every `train.checkpoint_interval` epochs and
//! at the last, and whether `train.early_stopping` ends the run. The checkpoint store
//! ([`crate::checkpoint`]) decides how they are written and how many are kept; this is
//! when.

use alexnet_model::AlexNet;

use super::Trainer;
use crate::{
    checkpoint::BestMetric,
    error::{Result, TrainError},
    metrics::EpochMetrics,
};

impl Trainer {
    /// Records the finished epoch: schedule, state, the best model, a checkpoint every
    /// `train.checkpoint_interval` epochs and at the last; returns whether it wrote a
    /// checkpoint. Every rank keeps the same state; rank 0 alone writes the files.
    pub(super) fn keep(&mut self, metrics: &EpochMetrics) -> Result<bool> {
        let train_config = &self.config.train;
        let stepper = &self.stepper;
        let writes = stepper.group.is_first();
        let model = self.model.as_ref().ok_or(TrainError::ModelLost)?;
        let epoch = metrics.epoch;
        self.schedule.step(metrics);
        let state = &mut self.state;
        state.epoch = epoch;
        state.schedule = self.schedule.state();
        if let Some(scaler) = &stepper.scaler {
            state.loss_scale = scaler.state().clone();
        }
        state.history.push(metrics.clone());
        let improved = state
            .best
            .as_ref()
            .is_none_or(|best| metrics.val_top1 > best.val_top1);
        if improved {
            state.best = Some(BestMetric {
                epoch,
                val_top1: metrics.val_top1,
            });
            if writes {
                self.store.save_best(state, &model_bytes(model)?)?;
            }
        }
        // The epoch an early stop ends on is checkpointed, so a resume finds it done.
        let checkpoint = epoch.is_multiple_of(train_config.checkpoint_interval)
            || epoch == train_config.epochs
            || train_config.early_stop(&state.history).is_some();
        if checkpoint {
            self.save_epoch()?;
        }
        Ok(checkpoint)
    }

    /// Writes the checkpoint of the epochs done (rank 0; the others note its folder),
    /// which removes the step checkpoints it supersedes.
    pub(super) fn save_epoch(&mut self) -> Result<()> {
        let epoch = self.state.epoch;
        if self.stepper.group.is_first() {
            let model = self.model.as_ref().ok_or(TrainError::ModelLost)?;
            let optimizer = optimizer_bytes(&self.stepper.optim)?;
            let step = self.run_step(epoch + 1, 0);
            let dir = self
                .store
                .save(&self.state, &model_bytes(model)?, &optimizer, step)?;
            tracing::info!("checkpoint {}", dir.display());
        }
        self.last_checkpoint = Some(self.store.epoch_dir(epoch));
        self.last_save = std::time::Instant::now();
        Ok(())
    }
}

/// The optimizer's state as burnpack bytes.
pub(super) fn optimizer_bytes(optim: &burn::optim::ModuleOptimizer) -> Result<burn::tensor::Bytes> {
    optim.into_bytes().map_err(|source| TrainError::Record {
        what: "the optimizer state",
        source,
    })
}

/// The model's weights as burnpack bytes.
pub(super) fn model_bytes(model: &AlexNet) -> Result<burn::tensor::Bytes> {
    model
        .to_record()
        .into_bytes()
        .map_err(|source| TrainError::Record {
            what: "the model weights",
            source,
        })
}
