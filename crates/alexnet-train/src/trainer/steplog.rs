//! [`StepLog`]: the view inside an epoch. Every `logging.every_steps` steps the mean
//! training loss, the learning rate, images/s and the share of the time the steps waited
//! for data go to the log and to TensorBoard, at the run's step; at the epoch's end the
//! log says how much of it was spent waiting for data and, when that is large, which
//! setting to raise.
//!
//! The per-step curves live in their own TensorBoard folder, `tensorboard/steps`: a
//! restart marks the step it resumes from there (dropping points an interrupted session
//! wrote past its checkpoint), and that mark must not touch the per-epoch curves, whose
//! x axis is the epoch.

use std::path::Path;

use tfevents::EventWriter;

use super::steps::StepAt;
use crate::{error::Result, metrics::TrainingSums, report::open_tensorboard};

/// The share of an epoch spent waiting for data above which the log suggests a remedy.
pub const DATA_WAIT_WARNING: f64 = 0.1;

/// The folder of the per-step curves, inside the run's TensorBoard folder.
pub const STEPS_DIR: &str = "steps";

/// What the log records of one step.
#[derive(Debug, Clone, Copy)]
pub(super) struct Logged {
    /// The step's loss; `None` when it was skipped as an f16 overflow.
    pub loss: Option<f32>,
    /// The global gradient norm before clipping, where `train.clip_grad_norm` is set.
    pub grad_norm: Option<f64>,
}

/// The steps since the last point.
#[derive(Debug, Default)]
struct Window {
    /// Steps, skipped ones included.
    batches: usize,
    /// Applied steps, whose losses are summed.
    steps: usize,
    loss_sum: f64,
    /// The applied steps' gradient norms, where measured.
    grad_norm_sum: Option<f64>,
    seconds: f64,
    waited: f64,
}

/// The per-step log and curves of one session of a run.
pub(super) struct StepLog {
    every: usize,
    batch_size: usize,
    board: Option<EventWriter>,
    window: Window,
}

impl StepLog {
    /// The log of a session starting after the run's step `steps_done`, writing to
    /// `<tensorboard>/steps` when `writes` (rank 0); `every == 0` logs nothing.
    pub fn open(
        tensorboard: &Path,
        steps_done: usize,
        every: usize,
        batch_size: usize,
        writes: bool,
    ) -> Result<Self> {
        let board = if writes && every > 0 {
            Some(open_tensorboard(
                &tensorboard.join(STEPS_DIR),
                steps_done as u64,
            )?)
        } else {
            None
        };
        Ok(Self {
            every,
            batch_size,
            board,
            window: Window::default(),
        })
    }

    /// Records the step `at`, `logged`, which took `seconds`, of which it `waited` for
    /// its batch.
    pub fn step(
        &mut self,
        at: StepAt,
        logged: Logged,
        lr: f64,
        seconds: f64,
        waited: f64,
    ) -> Result<()> {
        if self.every == 0 {
            return Ok(());
        }
        let window = &mut self.window;
        window.batches += 1;
        if let Some(loss) = logged.loss {
            window.steps += 1;
            window.loss_sum += f64::from(loss);
        }
        if let Some(norm) = logged.grad_norm {
            *window.grad_norm_sum.get_or_insert(0.0) += norm;
        }
        window.seconds += seconds;
        window.waited += waited;
        if !at.run_step.is_multiple_of(self.every) {
            return Ok(());
        }
        let window = std::mem::take(&mut self.window);
        let loss = window.loss_sum / window.steps.max(1) as f64;
        let images_per_sec = (window.batches * self.batch_size) as f64 / window.seconds.max(1e-9);
        let wait_share = window.waited / window.seconds.max(1e-9);
        let grad_norm = window
            .grad_norm_sum
            .map(|sum| sum / window.steps.max(1) as f64);
        tracing::info!(
            "epoch {} step {} (run step {}): loss {loss:.4}{}, lr {lr:.3e}, {images_per_sec:.1} images/s, waiting for data {:.0}% of the time",
            at.epoch,
            at.index + 1,
            at.run_step,
            grad_norm.map_or(String::new(), |norm| format!(", gradient norm {norm:.3}")),
            100.0 * wait_share
        );
        if let Some(board) = self.board.as_mut() {
            let step = at.run_step as u64;
            board.scalar("step/loss_train", loss, step)?;
            board.scalar("step/learning_rate", lr, step)?;
            board.scalar("step/images_per_sec", images_per_sec, step)?;
            board.scalar("step/data_wait_share", wait_share, step)?;
            if let Some(norm) = grad_norm {
                board.scalar("step/grad_norm", norm, step)?;
            }
            board.flush()?;
        }
        Ok(())
    }

    /// Flushes the curves (a stop writes them out before the process exits).
    pub fn flush(&mut self) -> Result<()> {
        if let Some(board) = self.board.as_mut() {
            board.flush()?;
        }
        Ok(())
    }
}

/// The epoch's line on waiting for data, a warning naming what to raise when the
/// steps waited more than [`DATA_WAIT_WARNING`] of the time.
pub(super) fn log_data_wait(
    epoch: usize,
    sums: &TrainingSums,
    loader_threads: usize,
    prefetch: usize,
) {
    let share = sums.data_wait_share();
    let line = format!(
        "epoch {epoch}: the steps waited for data {:.1}s of {:.1}s of training ({:.0}%)",
        sums.data_wait_seconds,
        sums.train_seconds,
        100.0 * share
    );
    if share <= DATA_WAIT_WARNING {
        tracing::info!("{line}");
        return;
    }
    let threads = if loader_threads == 0 {
        "train.loader_threads is 0 (every core) already: the cores are busy decoding; prepare smaller images (prep.resize) or use a machine with more cores".to_string()
    } else {
        format!("raise train.loader_threads (now {loader_threads}, 0 uses every core)")
    };
    tracing::warn!(
        "{line}: the input pipeline is slower than the step; {threads}, or train.prefetch (now {prefetch}) if loading is uneven"
    );
}
