//! From a prepared dataset to batches of tensors: a Burn `Dataset` of labelled files, a
//! `Batcher` that decodes and augments a batch in parallel straight into the batch
//! buffer, and Burn's `BatchDataLoader` for seeded shuffling, driven from a prefetch
//! thread.
//!
//! Why not Burn's multi-threaded loader: it hands each worker a fixed slice of the data
//! and yields batches in the order workers finish, so the batch order (and with it the
//! whole run) changes from one run to the next. Here the order is a function of
//! (seed, epoch) alone, the augmentation of each image of (seed, epoch, index), and
//! parallelism comes from decoding a batch's images on a thread pool.

use std::{path::PathBuf, sync::Arc};

use alexnet_augment::{ChannelStats, Pipeline, sample_rng};
use alexnet_prep::{DecodeOptions, ProcessedDataset, RgbStats, Split, decode_rgb8};
use burn::{
    data::{
        dataloader::batcher::Batcher,
        dataset::{Dataset, DatasetError},
    },
    prelude::*,
};
use rayon::prelude::*;

mod loader;
mod share;

pub use loader::{
    epoch_order, epoch_seed, eval_loader, for_each_batch, for_each_batch_until,
    for_each_timed_batch, train_loader,
};
pub use share::share_of;

use crate::error::{LoadCause, Result, TrainError};

/// One labelled image file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageItem {
    /// The image file.
    pub path: PathBuf,
    /// Class id.
    pub class: usize,
    /// Position in the split (drives the per-sample random stream).
    pub index: usize,
}

/// A split of a prepared dataset as a Burn [`Dataset`].
#[derive(Debug, Clone)]
pub struct ImageDataset {
    items: Vec<ImageItem>,
}

impl ImageDataset {
    /// The items of `split`.
    pub fn new(data: &ProcessedDataset, split: Split) -> Self {
        let items = data
            .items(split)
            .iter()
            .enumerate()
            .map(|(index, item)| ImageItem {
                path: item.path.clone(),
                class: item.class,
                index,
            })
            .collect();
        Self { items }
    }

    /// A dataset of `items` as they are (each keeps its index).
    pub fn from_items(items: Vec<ImageItem>) -> Self {
        Self { items }
    }

    /// The items, in file order.
    pub fn items(&self) -> &[ImageItem] {
        &self.items
    }

    /// Share `part` of `parts` of the items ([`share_of`]), each keeping its index: a
    /// rank's part of a split that the ranks evaluate together.
    pub fn share(&self, part: usize, parts: usize) -> Self {
        Self {
            items: self.items[share_of(self.items.len(), part, parts)].to_vec(),
        }
    }
}

impl Dataset<ImageItem> for ImageDataset {
    fn get(&self, index: usize) -> Result<ImageItem, DatasetError> {
        self.items.get(index).cloned().ok_or_else(|| {
            DatasetError::new(std::io::Error::other(format!(
                "index {index} is out of bounds ({} items)",
                self.items.len()
            )))
        })
    }

    fn len(&self) -> usize {
        self.items.len()
    }
}

/// A batch: images `[n · crops, 3, h, w]` (crops of one image adjacent) and targets `[n]`.
#[derive(Debug, Clone)]
pub struct ImageBatch {
    /// The images, `f32`.
    pub images: Tensor<4>,
    /// Class ids on the device.
    pub targets: Tensor<1, Int>,
    /// Class ids on the host.
    pub classes: Vec<usize>,
    /// Dataset positions of the images.
    pub indices: Vec<usize>,
    /// Crops per image (10 for ten-crop evaluation).
    pub crops: usize,
}

/// An image that could not be loaded into a batch.
#[derive(Debug)]
pub struct LoadError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub cause: LoadCause,
}

impl From<LoadError> for TrainError {
    fn from(error: LoadError) -> Self {
        TrainError::Image {
            path: error.path,
            source: error.cause,
        }
    }
}

/// What a loader yields.
pub type BatchResult = std::result::Result<ImageBatch, LoadError>;

/// Decodes and augments a batch in parallel on its own thread pool.
#[derive(Clone)]
pub struct ImageBatcher {
    pipeline: Arc<Pipeline>,
    pool: Arc<rayon::ThreadPool>,
    seed: u64,
    epoch: u64,
    /// `(part, parts)`: only this contiguous share of each batch is loaded.
    share: (usize, usize),
}

impl ImageBatcher {
    /// A batcher applying `pipeline`, with sample randomness from `(seed, epoch, index)`.
    pub fn new(
        pipeline: Arc<Pipeline>,
        pool: Arc<rayon::ThreadPool>,
        seed: u64,
        epoch: u64,
    ) -> Self {
        Self {
            pipeline,
            pool,
            seed,
            epoch,
            share: (0, 1),
        }
    }

    /// Loads only share `part` of `parts` of each batch ([`share_of`]): a rank of a
    /// distributed run reads and augments its own images of the global batch, which
    /// every rank draws in the same order.
    pub fn with_share(mut self, part: usize, parts: usize) -> Self {
        self.share = (part, parts.max(1));
        self
    }

    fn load(&self, items: &[ImageItem]) -> std::result::Result<Vec<f32>, LoadError> {
        let per_image = self.pipeline.output_len();
        let mut buffer = vec![0.0f32; per_image * items.len()];
        self.pool.install(|| {
            buffer
                .par_chunks_mut(per_image)
                .zip(items.par_iter())
                .try_for_each(|(out, item)| {
                    let failed = |cause: LoadCause| LoadError {
                        path: item.path.clone(),
                        cause,
                    };
                    let bytes = std::fs::read(&item.path).map_err(|error| failed(error.into()))?;
                    let decoded = decode_rgb8(&bytes, &DecodeOptions::default())
                        .map_err(|error| failed(error.into()))?;
                    let mut rng = sample_rng(self.seed, self.epoch, item.index as u64);
                    self.pipeline
                        .apply_into(&decoded.image, &mut rng, out)
                        .map_err(|error| failed(error.into()))
                })
        })?;
        Ok(buffer)
    }
}

impl Batcher<ImageItem, BatchResult> for ImageBatcher {
    fn batch(&self, items: Vec<ImageItem>, device: &Device) -> BatchResult {
        let (part, parts) = self.share;
        let items = &items[share_of(items.len(), part, parts)];
        crate::faults::loader_delay();
        let buffer = self.load(items)?;
        let [height, width] = self.pipeline.output_size();
        let crops = self.pipeline.crops();
        let shape = [items.len() * crops, 3, height as usize, width as usize];
        let images = Tensor::from_data(TensorData::new(buffer, shape), device);
        let classes: Vec<usize> = items.iter().map(|item| item.class).collect();
        let targets = Tensor::from_data(
            TensorData::new(
                classes.iter().map(|&c| c as i64).collect::<Vec<_>>(),
                [items.len()],
            ),
            device,
        );
        Ok(ImageBatch {
            images,
            targets,
            classes,
            indices: items.iter().map(|item| item.index).collect(),
            crops,
        })
    }
}

/// The augmentation statistics of a prepared dataset.
pub fn channel_stats(stats: &RgbStats) -> ChannelStats {
    ChannelStats {
        mean: stats.mean,
        std: stats.std,
        eigenvalues: stats.eigenvalues,
        eigenvectors: stats.eigenvectors,
    }
}

/// A thread pool for decoding; `threads == 0` uses every core.
pub fn loader_pool(threads: usize) -> Result<Arc<rayon::ThreadPool>> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("alexnet-loader-{i}"))
        .build()
        .map(Arc::new)
        .map_err(|error| crate::error::invalid("train.loader_threads", error.to_string()))
}
