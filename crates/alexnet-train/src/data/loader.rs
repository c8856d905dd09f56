//! Loaders over an [`ImageDataset`]: the training order as a function of (seed, epoch)
//! alone with full batches only (from any batch on, for a resume inside an epoch), file
//! order for evaluation, and a prefetch thread that measures how long the consumer
//! waits for each batch.

use std::{
    ops::ControlFlow,
    sync::{Arc, mpsc},
    time::{Duration, Instant},
};

use burn::{
    data::dataloader::{BatchDataLoader, BatchStrategy, DataLoader, FixBatchStrategy},
    prelude::*,
};
use rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};

use super::{BatchResult, ImageBatch, ImageBatcher, ImageDataset, ImageItem};
use crate::error::{Result, TrainError};

/// Full batches only: the last partial batch of an epoch is dropped (the original's
/// `drop_last=True`), so every step sees `batch_size` images.
#[derive(Debug)]
struct DropLastStrategy {
    items: Vec<ImageItem>,
    batch_size: usize,
}

impl BatchStrategy<ImageItem> for DropLastStrategy {
    fn add(&mut self, item: ImageItem) {
        self.items.push(item);
    }

    fn batch(&mut self, _force: bool) -> Option<Vec<ImageItem>> {
        (self.items.len() >= self.batch_size).then(|| std::mem::take(&mut self.items))
    }

    fn clone_dyn(&self) -> Box<dyn BatchStrategy<ImageItem>> {
        Box::new(DropLastStrategy {
            items: Vec::new(),
            batch_size: self.batch_size,
        })
    }

    fn batch_size(&self) -> Option<usize> {
        Some(self.batch_size)
    }
}

/// Mixes the run seed with the epoch so each epoch's order is fixed by the two alone.
pub fn epoch_seed(seed: u64, epoch: u64) -> u64 {
    let mut rng = alexnet_augment::sample_rng(seed, epoch, u64::MAX);
    rand::RngExt::random(&mut rng)
}

/// The training order of `epoch`: the dataset's items shuffled by `(seed, epoch)`.
pub fn epoch_order(dataset: &ImageDataset, seed: u64, epoch: u64) -> Vec<ImageItem> {
    let mut items = dataset.items().to_vec();
    items.shuffle(&mut StdRng::seed_from_u64(epoch_seed(seed, epoch)));
    items
}

/// The training loader of `epoch` from batch `first_batch` on: the order of
/// [`epoch_order`], full batches only. The batches before `first_batch` are skipped
/// without being read.
pub fn train_loader(
    dataset: &ImageDataset,
    batcher: ImageBatcher,
    batch_size: usize,
    (seed, epoch): (u64, u64),
    first_batch: usize,
    device: &Device,
) -> Arc<dyn DataLoader<BatchResult>> {
    let mut rest = epoch_order(dataset, seed, epoch);
    rest.drain(..first_batch.saturating_mul(batch_size).min(rest.len()));
    Arc::new(BatchDataLoader::new(
        Box::new(DropLastStrategy {
            items: Vec::new(),
            batch_size,
        }),
        Arc::new(ImageDataset::from_items(rest)),
        Arc::new(batcher),
        device.clone(),
        None,
    ))
}

/// An evaluation loader: file order, every image.
pub fn eval_loader(
    dataset: &ImageDataset,
    batcher: ImageBatcher,
    batch_size: usize,
    device: &Device,
) -> Arc<dyn DataLoader<BatchResult>> {
    Arc::new(BatchDataLoader::new(
        Box::new(FixBatchStrategy::new(batch_size)),
        Arc::new(dataset.clone()),
        Arc::new(batcher),
        device.clone(),
        None,
    ))
}

/// Runs `consume` on each batch of `loader` while the next `prefetch` batches are
/// prepared on another thread. `consume` returning an error stops both.
pub fn for_each_batch(
    loader: &Arc<dyn DataLoader<BatchResult>>,
    prefetch: usize,
    mut consume: impl FnMut(usize, ImageBatch) -> Result<()>,
) -> Result<()> {
    for_each_batch_until(loader, prefetch, |index, batch| {
        consume(index, batch).map(|()| ControlFlow::Continue(()))
    })
}

/// [`for_each_batch`] that `consume` can also end early and cleanly, with
/// `ControlFlow::Break` (a benchmark that has measured enough steps).
pub fn for_each_batch_until(
    loader: &Arc<dyn DataLoader<BatchResult>>,
    prefetch: usize,
    mut consume: impl FnMut(usize, ImageBatch) -> Result<ControlFlow<()>>,
) -> Result<()> {
    for_each_timed_batch(loader, prefetch, |index, batch, _| consume(index, batch))
}

/// [`for_each_batch_until`] that also tells `consume` how long it waited for each batch:
/// the time the consumer was idle because the loader was behind.
pub fn for_each_timed_batch(
    loader: &Arc<dyn DataLoader<BatchResult>>,
    prefetch: usize,
    mut consume: impl FnMut(usize, ImageBatch, Duration) -> Result<ControlFlow<()>>,
) -> Result<()> {
    std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::sync_channel(prefetch);
        scope.spawn(move || {
            for batch in loader.iter() {
                // A closed channel means the consumer stopped: stop too.
                if sender.send(batch).is_err() {
                    break;
                }
            }
        });
        for index in 0.. {
            let asked = Instant::now();
            let Ok(batch) = receiver.recv() else {
                break;
            };
            let waited = asked.elapsed();
            let batch = batch.map_err(TrainError::Loader)??;
            if consume(index, batch, waited)?.is_break() {
                break;
            }
        }
        Ok(())
    })
}
