//! Evaluation: a model on a split with a pipeline (loss, top-1, top-5, mean per-class
//! accuracy, the confusion matrix; ten-crop averaged in probability space), and testing
//! a run's checkpoint (`test`), with what it writes (`outputs`).

mod outputs;
mod test;

use std::sync::Arc;

use alexnet_augment::Pipeline;
use alexnet_model::AlexNet;
use burn::{module::Module, prelude::*};

pub use test::{TestReport, TestRequest, TestView, test};

use crate::{
    config::Precision,
    confusion::{ConfusionMatrix, argmax},
    data::{ImageBatcher, ImageDataset, eval_loader, for_each_batch},
    error::Result,
    metrics::{Accumulator, average_crops, rank_of},
    step::to_host,
};

/// How [`evaluate`] runs.
#[derive(Clone)]
pub struct EvalOptions {
    /// Images per batch.
    pub batch_size: usize,
    /// Compute precision.
    pub precision: Precision,
    /// The device (a plain one; evaluation needs no autodiff).
    pub device: Device,
    /// Batches prepared ahead.
    pub prefetch: usize,
    /// Decoding threads.
    pub pool: Arc<rayon::ThreadPool>,
}

/// An image the network got wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mistake {
    /// Its position in the dataset evaluated.
    pub index: usize,
    /// Its class.
    pub truth: usize,
    /// The network's top class.
    pub predicted: usize,
}

/// What [`evaluate`] measured.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Loss, top-1, top-5 and per-class counts.
    pub metrics: Accumulator,
    /// True class against top-1 prediction (images without a finite output are not in
    /// it; they count as wrong in `metrics`).
    pub confusion: ConfusionMatrix,
    /// The images whose top-1 prediction is wrong, in dataset order.
    pub mistakes: Vec<Mistake>,
}

/// Evaluates `model` on `dataset` with `pipeline`: loss, top-1, top-5, per-class counts,
/// the confusion matrix and the mistakes. Ten-crop pipelines average in probability
/// space.
pub fn evaluate(
    model: &AlexNet,
    dataset: &ImageDataset,
    pipeline: Arc<Pipeline>,
    options: &EvalOptions,
) -> Result<Evaluation> {
    let model = model.valid();
    let classes = model.num_classes();
    let batcher = ImageBatcher::new(pipeline, options.pool.clone(), 0, 0);
    let loader = eval_loader(dataset, batcher, options.batch_size, &options.device);
    let mut evaluation = Evaluation {
        metrics: Accumulator::with_classes(classes),
        confusion: ConfusionMatrix::new(classes),
        mistakes: Vec::new(),
    };
    let dtype = options.precision.float_dtype();
    for_each_batch(&loader, options.prefetch, |_, batch| {
        let crops = batch.crops;
        let rows = to_host(model.forward(batch.images, dtype)?)?;
        let rows = average_crops(&rows, classes, crops);
        evaluation
            .metrics
            .add_log_probs(&rows, classes, &batch.classes);
        let images = rows.chunks_exact(classes).zip(&batch.classes);
        for ((row, &truth), &index) in images.zip(&batch.indices) {
            // A right answer is the truth even on a tie, as top-1 counts it, so the
            // matrix's trace is the top-1 count.
            let right = rank_of(row, truth) == 0;
            let Some(predicted) = (if right { Some(truth) } else { argmax(row) }) else {
                continue;
            };
            evaluation.confusion.add(truth, predicted);
            if predicted != truth {
                evaluation.mistakes.push(Mistake {
                    index,
                    truth,
                    predicted,
                });
            }
        }
        Ok(())
    })?;
    Ok(evaluation)
}
