//! What a run reports: its TensorBoard folder (session marks, the model summary, the
//! preview of augmented images, one point per epoch for every curve) and the log line.

use std::{ops::ControlFlow, path::Path, sync::Arc};

use alexnet_augment::Pipeline;
use burn::prelude::*;
use tfevents::EventWriter;

use crate::{
    data::{ImageBatcher, ImageDataset, for_each_batch_until, train_loader},
    error::{Result, TrainError},
    metrics::EpochMetrics,
};

/// Opens a TensorBoard folder of the run for a session starting after `done` points of
/// its x axis (epochs, or steps for the per-step curves).
///
/// Every session opens with a `SessionLog.START` at its first step. TensorBoard takes a
/// run's first one as its beginning and each later one as a restart that drops the
/// points at its step and after: those an interrupted run wrote past its checkpoint, or
/// everything when a run killed before its first checkpoint starts over. A folder
/// written before sessions were marked gets one more, so that this restart is not taken
/// for the beginning.
pub(crate) fn open_tensorboard(dir: &Path, done: u64) -> Result<EventWriter> {
    let earlier_starts = tfevents::session_starts(dir)?;
    let mut board = EventWriter::create(dir, "alexnet")?;
    let first_step = if done == 0 { 0 } else { done + 1 };
    if earlier_starts.is_some_and(|starts| starts.is_empty()) {
        board.session_start(first_step)?;
    }
    board.session_start(first_step)?;
    Ok(board)
}

/// The epoch's log line.
pub(crate) fn log_epoch(metrics: &EpochMetrics, epochs: usize) {
    tracing::info!(
        "epoch {}/{epochs}: loss {:.4}, train acc {:.2}%, val loss {:.4}, val acc {:.2}% (top-5 {:.2}%, mean per class {:.2}%), lr {:.3e}, {:.1} images/s, {:.1}s",
        metrics.epoch,
        metrics.train_loss,
        100.0 * metrics.train_accuracy,
        metrics.val_loss,
        100.0 * metrics.val_top1,
        100.0 * metrics.val_top5,
        100.0 * metrics.val_mean_per_class.unwrap_or(f64::NAN),
        metrics.lr,
        metrics.images_per_sec,
        metrics.seconds
    );
}

/// The epoch's point on every curve (the loss scale and skipped steps under f16 only).
pub(crate) fn write_scalars(
    board: &mut EventWriter,
    metrics: &EpochMetrics,
    loss_scaling: bool,
) -> Result<()> {
    let step = metrics.epoch as u64;
    board.scalar("loss/train", metrics.train_loss, step)?;
    board.scalar("loss/val", metrics.val_loss, step)?;
    board.scalar("accuracy/train", metrics.train_accuracy, step)?;
    board.scalar("accuracy/val", metrics.val_top1, step)?;
    board.scalar("accuracy/val_top5", metrics.val_top5, step)?;
    if let Some(mean) = metrics.val_mean_per_class {
        board.scalar("accuracy/val_mean_per_class", mean, step)?;
    }
    board.scalar("learning_rate", metrics.lr, step)?;
    board.scalar("throughput/images_per_sec", metrics.images_per_sec, step)?;
    if let Some(share) = metrics.data_wait_share {
        board.scalar("throughput/data_wait_share", share, step)?;
    }
    if loss_scaling {
        board.scalar("loss_scale", metrics.loss_scale, step)?;
        board.scalar("skipped_steps", metrics.skipped_steps as f64, step)?;
    }
    Ok(board.flush()?)
}

/// One `summary.csv` row.
#[derive(serde::Serialize)]
struct SummaryRow {
    epoch: usize,
    train_loss: f64,
    train_acc: f64,
    val_loss: f64,
    val_top1: f64,
    val_top5: f64,
    /// Empty for epochs recorded before it was measured.
    val_mean_per_class: Option<f64>,
    lr: f64,
    images_per_s: f64,
    seconds: f64,
    /// Empty for epochs recorded before it was measured.
    data_wait_share: Option<f64>,
}

/// Writes `history` as `summary.csv` (atomically, header included): one row an epoch.
pub(crate) fn write_summary_csv(path: &Path, history: &[EpochMetrics]) -> Result<()> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    if history.is_empty() {
        writer.write_record([
            "epoch",
            "train_loss",
            "train_acc",
            "val_loss",
            "val_top1",
            "val_top5",
            "val_mean_per_class",
            "lr",
            "images_per_s",
            "seconds",
            "data_wait_share",
        ])?;
    }
    for metrics in history {
        writer.serialize(SummaryRow {
            epoch: metrics.epoch,
            train_loss: metrics.train_loss,
            train_acc: metrics.train_accuracy,
            val_loss: metrics.val_loss,
            val_top1: metrics.val_top1,
            val_top5: metrics.val_top5,
            val_mean_per_class: metrics.val_mean_per_class,
            lr: metrics.lr,
            images_per_s: metrics.images_per_sec,
            seconds: metrics.seconds,
            data_wait_share: metrics.data_wait_share,
        })?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|error| TrainError::Csv(error.into_error().into()))?;
    crate::io::write_atomic(path, &bytes)
}

/// A grid of the first `count` training images of epoch 1 as the network sees them
/// (the epoch's shuffled order, augmented, normalization undone): the same images and
/// the same draws as the run's first batch.
pub(crate) fn preview_grid(
    dataset: &ImageDataset,
    pipeline: &Arc<Pipeline>,
    pool: Arc<rayon::ThreadPool>,
    seed: u64,
    count: usize,
    device: &Device,
) -> Result<Option<image::RgbImage>> {
    let count = count.min(dataset.items().len());
    if count == 0 {
        return Ok(None);
    }
    let batcher = ImageBatcher::new(pipeline.clone(), pool, seed, 1);
    let loader = train_loader(dataset, batcher, count, (seed, 1), 0, device);
    let mut pixels = None;
    for_each_batch_until(&loader, 1, |_, batch| {
        let values =
            batch
                .images
                .try_to_vec_as::<f32>()
                .map_err(|source| TrainError::TensorRead {
                    what: "the preview images",
                    source,
                })?;
        pixels = Some(values);
        Ok(ControlFlow::Break(()))
    })?;
    let Some(pixels) = pixels else {
        return Ok(None);
    };
    let [h, w] = pipeline.output_size();
    let columns = (count as f64).sqrt().ceil() as u32;
    let rows = (count as u32).div_ceil(columns);
    let gap = 2;
    let mut grid = image::RgbImage::new(columns * (w + gap) - gap, rows * (h + gap) - gap);
    let per_image = 3 * (h * w) as usize;
    for (k, chw) in pixels.chunks_exact(per_image).enumerate() {
        if let Some(tile) = pipeline.to_rgb8(chw) {
            let (x0, y0) = (
                (k as u32 % columns) * (w + gap),
                (k as u32 / columns) * (h + gap),
            );
            image::imageops::replace(&mut grid, &tile, i64::from(x0), i64::from(y0));
        }
    }
    Ok(Some(grid))
}

/// The network's layers as TensorBoard graph nodes: an `input` placeholder, then each
/// layer of the text summary fed by the one before it.
pub(crate) fn graph_nodes(summary: &alexnet_model::ModelSummary) -> Vec<tfevents::GraphNode> {
    let batch = |shape: &[usize]| {
        std::iter::once(-1)
            .chain(shape.iter().map(|&size| size as i64))
            .collect::<Vec<i64>>()
    };
    let [height, width] = summary.input;
    let mut nodes = vec![tfevents::GraphNode {
        name: "input".into(),
        op: "Placeholder".into(),
        inputs: Vec::new(),
        output_shape: batch(&[3, height, width]),
        description: "images".into(),
    }];
    for layer in &summary.layers {
        let previous = nodes.last().map(|node| node.name.clone());
        nodes.push(tfevents::GraphNode {
            name: layer.name.clone(),
            op: layer
                .kind
                .split_whitespace()
                .next()
                .unwrap_or("Layer")
                .to_string(),
            inputs: previous.into_iter().collect(),
            output_shape: batch(&layer.output),
            description: format!("{}, {} parameters", layer.kind, layer.params),
        });
    }
    nodes
}
