//! The training loop.
//!
//! A hand-written loop rather than burn-train's `Learner`: the original steps
//! ReduceLROnPlateau once per epoch on an epoch metric (burn-train steps schedulers per
//! iteration, without metrics), and a run here must resume exactly (data order, random
//! streams, scheduler), write checkpoints atomically with a fallback, stop on a NaN
//! naming the batch, scale f16 losses, and purge TensorBoard curves on resume — none of
//! which burn-train's hooks offer. Burn provides everything below the loop: modules,
//! autodiff, the SGD optimizer and its state records, the data loader, schedulers.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use alexnet_augment::{Pipeline, sample_rng};
use alexnet_model::{AlexNet, AlexNetConfig};
use alexnet_prep::{ProcessedDataset, Split};
use burn::{
    module::{Module, ModuleVisitor, Param, RunningState},
    nn::BatchNorm,
    optim::{GradientsParams, ModuleOptimizer},
    prelude::*,
    store::ModuleRecord,
    tensor::{Bytes, DType, FloatDType},
};

use crate::{
    checkpoint::{BestMetric, Checkpoint, CheckpointStore, LossScaleState, TrainerState},
    config::{ExperimentConfig, MIN_LOSS_SCALE, Precision, Resume},
    data::{
        ImageBatch, ImageBatcher, ImageDataset, channel_stats, epoch_seed, eval_loader,
        for_each_batch, loader_pool, train_loader,
    },
    device::parse_devices,
    error::{IoContext, Result, TrainError, invalid},
    logging::{finish_progress, progress_bar},
    metrics::{Accumulator, EpochMetrics, average_crops},
    schedule::Schedule,
    sgd::Sgd,
    tensorboard::TensorBoard,
};

/// What a finished (or stopped) run reports.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The TensorBoard folder.
    pub tensorboard_dir: PathBuf,
    /// The last checkpoint written or resumed from.
    pub checkpoint: Option<PathBuf>,
    /// Every epoch's metrics, resumed ones included.
    pub history: Vec<EpochMetrics>,
    /// Trainable parameters of the model.
    pub parameters: usize,
    /// Whether the run was stopped by the observer before its last epoch.
    pub interrupted: bool,
}

/// Called after every epoch; returning `false` stops the run at once, as a kill would
/// (no further checkpoint).
pub type EpochObserver<'a> = dyn FnMut(&EpochMetrics) -> bool + 'a;

fn float_dtype(precision: Precision) -> FloatDType {
    match precision {
        Precision::F32 => FloatDType::F32,
        Precision::F16 => FloatDType::F16,
        Precision::Bf16 => FloatDType::BF16,
    }
}

fn backend(error: impl std::fmt::Display) -> TrainError {
    TrainError::Backend(error.to_string())
}

fn to_host(tensor: Tensor<2>) -> Result<Vec<f32>> {
    tensor.try_to_vec_as::<f32>().map_err(backend)
}

/// The side of the square images of a prepared dataset, read from its first image.
fn image_size(data: &ProcessedDataset) -> Result<[u32; 2]> {
    let first = data
        .items(Split::Train)
        .first()
        .or_else(|| data.items(Split::Val).first())
        .ok_or_else(|| {
            invalid(
                "train.data",
                format!("{} holds no images", data.root().display()),
            )
        })?;
    let (width, height) =
        image::image_dimensions(&first.path).map_err(|error| TrainError::Image {
            path: first.path.clone(),
            reason: error.to_string(),
        })?;
    Ok([height, width])
}

/// The model config with the number of classes from `categories.csv`; a configured
/// number that disagrees is an error.
pub fn resolve_model(config: &AlexNetConfig, data: &ProcessedDataset) -> Result<AlexNetConfig> {
    let classes = data.num_classes();
    match config.num_classes {
        Some(configured) if configured != classes => Err(invalid(
            "model.num_classes",
            format!(
                "is {configured} but {} lists {classes} classes",
                data.root().join("categories.csv").display()
            ),
        )),
        _ => Ok(config.clone().with_num_classes(classes)),
    }
}

/// Builds the two pipelines for a dataset of `[h, w]` images and checks them against
/// the model's minimum input.
pub fn build_pipelines(
    config: &ExperimentConfig,
    data: &ProcessedDataset,
    model: &AlexNetConfig,
) -> Result<(Arc<Pipeline>, Arc<Pipeline>)> {
    let size = image_size(data)?;
    let stats = channel_stats(data.stats());
    let train = Pipeline::new("augment.train", &config.augment.train, size, Some(&stats))?;
    let eval = Pipeline::new("augment.eval", &config.augment.eval, size, Some(&stats))?;
    if train.crops() != 1 {
        return Err(invalid("augment.train", "ten_crop is for evaluation only"));
    }
    for pipeline in [&train, &eval] {
        let [h, w] = pipeline.output_size();
        model.check_input(h as usize, w as usize)?;
    }
    Ok((Arc::new(train), Arc::new(eval)))
}

fn sgd(config: &ExperimentConfig) -> ModuleOptimizer {
    ModuleOptimizer::from(Sgd::from(config.train.sgd()))
}

/// Negative log-likelihood of `targets` under `log_probs` (mean over the batch).
pub fn nll_loss(log_probs: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let [n, _] = log_probs.dims();
    log_probs.gather(1, targets.reshape([n, 1])).mean().neg()
}

/// Combines per-device gradients into one set on the main device: a weighted sum, then
/// divided by the loss scale. Also sums every gradient value (read back once): the sum is
/// finite exactly when every gradient is (short of a sum past `f32::MAX`, itself a
/// divergence), at the cost of one read of the gradients.
struct GradientCombiner<'a> {
    shards: Vec<(GradientsParams, f64)>,
    out: GradientsParams,
    device: &'a Device,
    unscale: f64,
    total: Option<Tensor<1>>,
    check: bool,
}

impl ModuleVisitor for GradientCombiner<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let mut total: Option<Tensor<D>> = None;
        for (grads, weight) in self.shards.iter_mut() {
            if let Some(grad) = grads.remove::<D>(param.id) {
                let grad = grad.to_device(self.device);
                let grad = if *weight == 1.0 {
                    grad
                } else {
                    grad.mul_scalar(*weight)
                };
                total = Some(match total {
                    Some(sum) => sum + grad,
                    None => grad,
                });
            }
        }
        if let Some(mut grad) = total {
            if self.unscale != 1.0 {
                grad = grad.mul_scalar(self.unscale);
            }
            if self.check {
                add_to(&mut self.total, grad.clone().sum());
            }
            self.out.register(param.id, grad);
        }
    }
}

/// Adds `value` to the running `total` (the first value starts it).
fn add_to(total: &mut Option<Tensor<1>>, value: Tensor<1>) {
    *total = Some(match total.take() {
        Some(sum) => sum + value,
        None => value,
    });
}

/// Whether a sum built by [`add_to`] is finite (read back once); no sum is finite.
fn sum_is_finite(total: Option<Tensor<1>>) -> Result<bool> {
    match total {
        Some(total) => Ok(total.try_into_scalar::<f32>().map_err(backend)?.is_finite()),
        None => Ok(true),
    }
}

/// Sums every float value of a module (parameters and BatchNorm statistics).
struct ValueSum(Option<Tensor<1>>);

impl ModuleVisitor for ValueSum {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        add_to(&mut self.0, param.val().sum());
    }
}

/// Whether every parameter and BatchNorm statistic of `model` is finite.
fn all_finite(model: &AlexNet) -> Result<bool> {
    let mut sum = ValueSum(None);
    model.visit(&mut sum);
    sum_is_finite(sum.0)
}

/// Forces lazily initialized parameters to be drawn.
struct Materialize;

impl ModuleVisitor for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// A replica whose BatchNorm running statistics are its own: its updates are discarded.
/// `Clone` shares them (Burn's `RunningState` is behind an `Arc`), so without this every
/// shard would update the model's statistics (see [`batch_gradients_with`]).
fn with_private_statistics(mut replica: AlexNet) -> AlexNet {
    let detach = |norm: &mut BatchNorm| {
        norm.running_mean = RunningState::new(norm.running_mean.value());
        norm.running_var = RunningState::new(norm.running_var.value());
    };
    for block in [
        &mut replica.conv1,
        &mut replica.conv2,
        &mut replica.conv3,
        &mut replica.conv4,
        &mut replica.conv5,
    ] {
        if let Some(norm) = block.norm.as_mut() {
            detach(norm);
        }
    }
    for norm in [replica.norm1.as_mut(), replica.norm2.as_mut()]
        .into_iter()
        .flatten()
    {
        detach(norm);
    }
    replica
}

/// One optimizer step's outcome.
struct StepOutcome {
    loss: f32,
    log_probs: Vec<f32>,
    applied: bool,
    /// Some gradient was NaN or infinite (the step was not applied).
    non_finite_grads: bool,
}

/// Everything the loop carries from step to step.
struct Engine {
    devices: Vec<Device>,
    dtype: FloatDType,
    optim: ModuleOptimizer,
    scale: LossScaleState,
    scaling: bool,
    growth_factor: f32,
    backoff_factor: f32,
    growth_interval: u64,
    max_overflows_at_min: u64,
    classes: usize,
}

/// The gradients of one batch, possibly computed on several devices.
pub struct BatchGradients {
    /// The gradients of the mean loss over the whole batch, on the first device,
    /// divided by the loss scale.
    pub grads: GradientsParams,
    /// The mean loss over the batch (unscaled).
    pub loss: f32,
    /// The model's log-probabilities, row-major `[n, classes]`, on the host.
    pub log_probs: Vec<f32>,
    /// Whether any gradient is NaN or infinite (only looked at when asked for).
    pub non_finite: bool,
}

/// Where the shards of a batch run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShardThreads {
    /// Shards on distinct devices run on threads of their own; shards on handles of one
    /// device (`flex,flex`) take turns on the calling thread, which keeps dropout draws
    /// from that device's one generator in a fixed order.
    #[default]
    PerDevice,
    /// Every shard after the first on a thread of its own, even on one device: the
    /// multi-device path on a CPU (for tests). Dropout draws from one device's generator
    /// then race, so runs with dropout are not reproducible this way.
    PerShard,
}

/// How [`batch_gradients_with`] computes a batch's gradients.
#[derive(Debug, Clone, Copy)]
pub struct GradientOptions {
    /// Compute precision.
    pub dtype: FloatDType,
    /// The loss is multiplied by this before the backward pass, the gradients divided
    /// by it after (f16 loss scaling; 1 otherwise).
    pub loss_scale: f32,
    /// Whether to look for non-finite gradients ([`BatchGradients::non_finite`]).
    pub check_finite: bool,
    /// Where the shards run.
    pub threads: ShardThreads,
}

/// [`batch_gradients_with`] with shards on threads per device.
pub fn batch_gradients(
    model: &AlexNet,
    devices: &[Device],
    images: Tensor<4>,
    targets: Tensor<1, Int>,
    dtype: FloatDType,
    loss_scale: f32,
    check_finite: bool,
) -> Result<BatchGradients> {
    let options = GradientOptions {
        dtype,
        loss_scale,
        check_finite,
        threads: ShardThreads::PerDevice,
    };
    batch_gradients_with(model, devices, images, targets, &options)
}

/// Forward and backward of `images`/`targets` split into contiguous shares across
/// `devices` (data parallelism), the shares' gradients weighted by their size and summed
/// on the first device: the gradient of the mean loss over the whole batch.
///
/// BatchNorm running statistics follow PyTorch `DataParallel`'s rule: the first shard
/// (on the first device, run on the calling thread) updates them from its own batch
/// statistics, once per step; the other shards' updates are discarded. Burn commits a
/// thread's pending update when the same thread updates again, so the calling thread,
/// which lives for the whole run, keeps them a per-step moving average.
pub fn batch_gradients_with(
    model: &AlexNet,
    devices: &[Device],
    images: Tensor<4>,
    targets: Tensor<1, Int>,
    options: &GradientOptions,
) -> Result<BatchGradients> {
    let &GradientOptions {
        dtype,
        loss_scale,
        check_finite,
        threads,
    } = options;
    let [n] = targets.dims();
    let shards = devices.len().clamp(1, n.max(1));
    let base = n / shards;
    let mut start = 0;
    let jobs: Vec<(usize, usize, Device)> = (0..shards)
        .map(|k| {
            let len = base + usize::from(k < n % shards);
            let job = (start, len, devices[k].clone());
            start += len;
            job
        })
        .collect();
    let run_shard = |replica: &AlexNet,
                     images: Tensor<4>,
                     targets: Tensor<1, Int>|
     -> Result<(GradientsParams, f32, Vec<f32>)> {
        let log_probs = replica.forward_in(images, dtype)?;
        let loss = nll_loss(log_probs.clone(), targets);
        let loss_value = loss.clone().try_into_scalar::<f32>().map_err(backend)?;
        let grads = if loss_scale == 1.0 {
            loss.backward()
        } else {
            loss.mul_scalar(loss_scale).backward()
        };
        let grads = GradientsParams::from_grads(grads, replica);
        Ok((grads, loss_value, to_host(log_probs.detach())?))
    };
    let shard_of = |(start, len, device): &(usize, usize, Device)| {
        (
            images.clone().narrow(0, *start, *len).to_device(device),
            targets.clone().narrow(0, *start, *len).to_device(device),
        )
    };
    let replica_for = |device: &Device| with_private_statistics(model.clone()).fork(device);
    let mut results = Vec::with_capacity(shards);
    let one_device = jobs.iter().all(|(_, _, device)| *device == devices[0]);
    if shards == 1 {
        results.push(run_shard(model, images, targets)?);
    } else if one_device && threads == ShardThreads::PerDevice {
        for (k, job) in jobs.iter().enumerate() {
            let (images, targets) = shard_of(job);
            if k == 0 {
                results.push(run_shard(model, images, targets)?);
            } else {
                results.push(run_shard(&replica_for(&job.2), images, targets)?);
            }
        }
    } else {
        // The other shards on their own threads (Burn's ops on one device are not blocked
        // by another's); the first on this one.
        let outputs = std::thread::scope(|scope| {
            let handles: Vec<_> = jobs[1..]
                .iter()
                .map(|job| {
                    let (images, targets) = shard_of(job);
                    let replica = replica_for(&job.2);
                    let run_shard = &run_shard;
                    scope.spawn(move || run_shard(&replica, images, targets))
                })
                .collect();
            let (images, targets) = shard_of(&jobs[0]);
            let mut outputs = vec![run_shard(model, images, targets)];
            outputs.extend(handles.into_iter().map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(backend("a device thread panicked")))
            }));
            outputs
        });
        for output in outputs {
            results.push(output?);
        }
    }
    let mut loss = 0.0f64;
    let mut log_probs = Vec::new();
    let mut weighted = Vec::with_capacity(results.len());
    for ((grads, shard_loss, shard_log_probs), (_, len, _)) in results.into_iter().zip(&jobs) {
        let weight = *len as f64 / n as f64;
        loss += f64::from(shard_loss) * weight;
        log_probs.extend(shard_log_probs);
        weighted.push((grads, weight));
    }
    let mut combiner = GradientCombiner {
        shards: weighted,
        out: GradientsParams::new(),
        device: &devices[0],
        unscale: 1.0 / f64::from(loss_scale),
        total: None,
        check: check_finite,
    };
    model.visit(&mut combiner);
    let non_finite = !sum_is_finite(combiner.total.take())?;
    Ok(BatchGradients {
        grads: combiner.out,
        loss: loss as f32,
        log_probs,
        non_finite,
    })
}

impl Engine {
    /// Gradients over the devices, then one SGD step. A step whose loss or gradients are
    /// not finite is not applied: under f16 it is an overflow (the scale backs off, down
    /// to [`MIN_LOSS_SCALE`], where overflows are counted); in f32 the caller stops.
    fn step(
        &mut self,
        model: AlexNet,
        batch: ImageBatch,
        lr: f64,
    ) -> Result<(AlexNet, StepOutcome)> {
        let scale = if self.scaling { self.scale.scale } else { 1.0 };
        let BatchGradients {
            grads,
            loss,
            log_probs,
            non_finite,
        } = batch_gradients(
            &model,
            &self.devices,
            batch.images,
            batch.targets,
            self.dtype,
            scale,
            true,
        )?;
        if non_finite || !loss.is_finite() {
            if self.scaling {
                if scale <= MIN_LOSS_SCALE {
                    self.scale.overflows_at_min += 1;
                }
                self.scale.scale = (scale * self.backoff_factor).max(MIN_LOSS_SCALE);
                self.scale.good_steps = 0;
            }
            let outcome = StepOutcome {
                loss,
                log_probs,
                applied: false,
                non_finite_grads: non_finite,
            };
            return Ok((model, outcome));
        }
        let model = self.optim.step(lr, model, grads);
        if self.scaling {
            self.scale.overflows_at_min = 0;
            self.scale.good_steps += 1;
            if self.scale.good_steps >= self.growth_interval {
                self.scale.scale *= self.growth_factor;
                self.scale.good_steps = 0;
            }
        }
        Ok((
            model,
            StepOutcome {
                loss,
                log_probs,
                applied: true,
                non_finite_grads: false,
            },
        ))
    }
}

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

/// Evaluates `model` on `dataset` with `pipeline`: loss, top-1, top-5 and per-class
/// counts (`(correct, total)` per class). Ten-crop pipelines average in probability space.
pub fn evaluate(
    model: &AlexNet,
    dataset: &ImageDataset,
    pipeline: Arc<Pipeline>,
    options: &EvalOptions,
) -> Result<(Accumulator, Vec<(usize, usize)>)> {
    let model = model.valid();
    let classes = model.num_classes();
    let batcher = ImageBatcher::new(pipeline, options.pool.clone(), 0, 0);
    let loader = eval_loader(dataset, batcher, options.batch_size, &options.device);
    let mut accumulator = Accumulator::default();
    let mut per_class = vec![(0usize, 0usize); classes];
    let dtype = float_dtype(options.precision);
    for_each_batch(&loader, options.prefetch, |_, batch| {
        let crops = batch.crops;
        let rows = to_host(model.forward_in(batch.images, dtype)?)?;
        let rows = average_crops(&rows, classes, crops);
        accumulator.add_log_probs(&rows, classes, &batch.classes);
        for (row, &class) in rows.chunks_exact(classes).zip(&batch.classes) {
            per_class[class].1 += 1;
            per_class[class].0 += usize::from(crate::metrics::rank_of(row, class) == 0);
        }
        Ok(())
    })?;
    Ok((accumulator, per_class))
}

/// A grid of the first `count` augmented training images of epoch 1, as the network
/// sees them (normalization undone).
fn preview_grid(
    dataset: &ImageDataset,
    pipeline: &Pipeline,
    seed: u64,
    count: usize,
) -> Result<Option<image::RgbImage>> {
    let items: Vec<_> = dataset.items().iter().take(count).collect();
    if items.is_empty() {
        return Ok(None);
    }
    let [h, w] = pipeline.output_size();
    let columns = (items.len() as f64).sqrt().ceil() as u32;
    let rows = (items.len() as u32).div_ceil(columns);
    let gap = 2;
    let mut grid = image::RgbImage::new(columns * (w + gap) - gap, rows * (h + gap) - gap);
    for (k, item) in items.iter().enumerate() {
        let bytes = std::fs::read(&item.path).at(&item.path)?;
        let decoded = alexnet_prep::decode_rgb8(&bytes, &Default::default()).map_err(|error| {
            TrainError::Image {
                path: item.path.clone(),
                reason: error.to_string(),
            }
        })?;
        let chw = pipeline.apply(&decoded.image, &mut sample_rng(seed, 1, item.index as u64))?;
        if let Some(tile) = pipeline.to_rgb8(&chw[..3 * (h * w) as usize]) {
            let (x0, y0) = (
                (k as u32 % columns) * (w + gap),
                (k as u32 / columns) * (h + gap),
            );
            image::imageops::replace(&mut grid, &tile, i64::from(x0), i64::from(y0));
        }
    }
    Ok(Some(grid))
}

fn model_bytes(model: &AlexNet) -> Result<Vec<u8>> {
    Ok(model.to_record().into_bytes().map_err(backend)?.to_vec())
}

/// The class labels of a prepared dataset, in id order.
pub fn class_labels(data: &ProcessedDataset) -> Vec<String> {
    data.categories()
        .iter()
        .map(|category| category.label.clone())
        .collect()
}

/// A checkpoint that records its classes is used only with a dataset of the same
/// classes; the error names the first that differ on both sides.
pub fn check_same_classes(
    checkpoint: &Path,
    trained: &[String],
    data: &[String],
    data_dir: &Path,
) -> Result<()> {
    if trained.is_empty() || trained == data {
        return Ok(());
    }
    let shown = |labels: &[String]| {
        let mut text = labels
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if labels.len() > 5 {
            text.push_str(&format!(", … ({} in all)", labels.len()));
        }
        text
    };
    Err(TrainError::Checkpoint {
        path: checkpoint.to_path_buf(),
        reason: format!(
            "was trained on the classes [{}] but {} lists [{}]",
            shown(trained),
            data_dir.join("categories.csv").display(),
            shown(data)
        ),
    })
}

/// Compares the checkpoint's network with the configured one; a difference is an error
/// naming the fields.
fn check_same_model(checkpoint: &Checkpoint, model: &AlexNetConfig) -> Result<()> {
    if checkpoint.state.model == *model {
        return Ok(());
    }
    let saved = toml::to_string(&checkpoint.state.model).unwrap_or_default();
    let current = toml::to_string(model).unwrap_or_default();
    let differences: Vec<String> = saved
        .lines()
        .zip(current.lines())
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("checkpoint has `{a}`, config has `{b}`"))
        .collect();
    Err(TrainError::Checkpoint {
        path: checkpoint.dir.clone(),
        reason: format!(
            "was trained with a different model config: {}",
            differences.join("; ")
        ),
    })
}

/// A run that has been checked and loaded (data, pipelines, devices, model, optimizer,
/// the checkpoint to resume from) before anything is written: every bad input is an
/// error here, with the run directory untouched.
pub struct Session {
    config: ExperimentConfig,
    run_dir: PathBuf,
    data: ProcessedDataset,
    model_config: AlexNetConfig,
    train_pipeline: Arc<Pipeline>,
    eval_pipeline: Arc<Pipeline>,
    train_set: ImageDataset,
    val_set: ImageDataset,
    devices: Vec<Device>,
    train_devices: Vec<Device>,
    main: Device,
    model: AlexNet,
    optim: ModuleOptimizer,
    state: TrainerState,
    schedule: Schedule,
    store: CheckpointStore,
    last_checkpoint: Option<PathBuf>,
    seed: u64,
    dtype: FloatDType,
}

/// Trains as `config` says (its data path and run directory must be resolved; see
/// [`crate::run::resolve_data`]), calling `observer` after each epoch.
pub fn train(config: &ExperimentConfig, observer: &mut EpochObserver<'_>) -> Result<TrainSummary> {
    Session::prepare(config)?.run(observer)
}

impl Session {
    /// The run directory.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// Epochs already done (from the checkpoint resumed).
    pub fn epochs_done(&self) -> usize {
        self.state.epoch
    }

    /// Checks and loads everything; writes nothing.
    pub fn prepare(config: &ExperimentConfig) -> Result<Self> {
        config.validate()?;
        let train_config = &config.train;
        let data_dir = train_config.data.as_ref().ok_or_else(|| {
            invalid(
                "train.data",
                "no prepared dataset given (set it or pass --data)",
            )
        })?;
        let run_dir = train_config.run_dir.clone().ok_or_else(|| {
            invalid(
                "train.run_dir",
                "no run directory given (set it or pass --run-dir)",
            )
        })?;
        let data = ProcessedDataset::open(data_dir)?;
        let model_config = resolve_model(&config.model, &data)?;
        let (train_pipeline, eval_pipeline) = build_pipelines(config, &data, &model_config)?;
        let train_set = ImageDataset::new(&data, Split::Train);
        let val_set = ImageDataset::new(&data, Split::Val);
        if train_config.batch_size > train_set.len_items() {
            return Err(invalid(
                "train.batch_size",
                format!(
                    "{} is larger than the {} training images; the last partial batch is dropped, so no batch would be formed",
                    train_config.batch_size,
                    train_set.len_items()
                ),
            ));
        }
        let devices = parse_devices(&train_config.device)?;
        let dtype = float_dtype(train_config.precision);
        for device in &devices {
            if !device.supports_dtype(DType::from(dtype)) {
                return Err(invalid(
                    "train.precision",
                    format!(
                        "{:?} is not supported by {device:?}",
                        train_config.precision
                    ),
                ));
            }
        }
        let main = devices[0].clone().autodiff();
        let train_devices: Vec<Device> = devices.iter().map(|d| d.clone().autodiff()).collect();

        // Where to start from.
        let store = CheckpointStore::new(&run_dir, train_config.keep_last);
        let checkpoint = match &train_config.resume {
            Resume::Never => {
                if !store.list()?.is_empty() || store.latest()?.is_some() {
                    return Err(invalid(
                        "train.resume",
                        format!(
                            "is `never` but {} already holds checkpoints; use another --run-dir or --resume auto",
                            run_dir.display()
                        ),
                    ));
                }
                None
            }
            Resume::Auto => store.load_latest()?,
            Resume::Path(path) => Some(CheckpointStore::load(path)?),
        };
        if let Some(checkpoint) = &checkpoint {
            check_same_model(checkpoint, &model_config)?;
        }
        let seed = checkpoint
            .as_ref()
            .map_or(train_config.seed, |c| c.state.seed);
        if seed != train_config.seed {
            tracing::warn!(
                "the checkpoint's seed {seed} is kept (config says {}) so the resumed run continues exactly",
                train_config.seed
            );
        }
        main.seed(seed);
        // Parameters are initialized lazily; drawing them all now, in order, ties the
        // initialization to the seed alone.
        let mut model = model_config.init(&main)?;
        model.visit(&mut Materialize);
        let mut optim = sgd(config);
        let mut state = match &checkpoint {
            Some(checkpoint) => {
                let record =
                    ModuleRecord::from_bytes(Bytes::from_bytes_vec(checkpoint.model.clone()))
                        .map_err(|error| TrainError::Checkpoint {
                            path: checkpoint.dir.clone(),
                            reason: format!("model weights unreadable: {error}"),
                        })?;
                model = model.apply_record(record, &checkpoint.dir)?;
                let optimizer =
                    checkpoint
                        .optimizer
                        .clone()
                        .ok_or_else(|| TrainError::Checkpoint {
                            path: checkpoint.dir.clone(),
                            reason: "has no optimizer state (is it a best-model folder?)".into(),
                        })?;
                optim = optim
                    .from_bytes(Bytes::from_bytes_vec(optimizer))
                    .map_err(|error| TrainError::Checkpoint {
                        path: checkpoint.dir.clone(),
                        reason: format!("optimizer state unreadable: {error}"),
                    })?;
                checkpoint.state.clone()
            }
            None => TrainerState::new(
                seed,
                model_config.clone(),
                Schedule::new(&train_config.scheduler, train_config.lr)?.state(),
                train_config.loss_scale.initial,
            ),
        };
        let classes = class_labels(&data);
        if let Some(checkpoint) = &checkpoint {
            check_same_classes(&checkpoint.dir, &state.classes, &classes, data.root())?;
        }
        state.classes = classes;
        let schedule =
            Schedule::restore(&train_config.scheduler, train_config.lr, &state.schedule)?;
        let last_checkpoint = checkpoint.as_ref().map(|c| c.dir.clone());
        Ok(Session {
            config: config.clone(),
            run_dir,
            data,
            model_config,
            train_pipeline,
            eval_pipeline,
            train_set,
            val_set,
            devices,
            train_devices,
            main,
            model,
            optim,
            state,
            schedule,
            store,
            last_checkpoint,
            seed,
            dtype,
        })
    }

    /// Trains, calling `observer` after each epoch.
    pub fn run(self, observer: &mut EpochObserver<'_>) -> Result<TrainSummary> {
        let Session {
            config,
            run_dir,
            data,
            model_config,
            train_pipeline,
            eval_pipeline,
            train_set,
            val_set,
            devices,
            train_devices,
            main,
            mut model,
            optim,
            mut state,
            mut schedule,
            store,
            mut last_checkpoint,
            seed,
            dtype,
        } = self;
        let config = &config;
        let train_config = &config.train;
        if let Some(dir) = &last_checkpoint {
            tracing::info!("resuming from {} (epoch {})", dir.display(), state.epoch);
        }
        // The run directory: the resolved config, then TensorBoard.
        std::fs::create_dir_all(&run_dir).at(&run_dir)?;
        let mut resolved = config.clone();
        resolved.model = model_config.clone();
        write_atomic(&run_dir.join("config.toml"), resolved.to_toml()?.as_bytes())?;
        let tensorboard_dir = run_dir.join("tensorboard");
        let earlier_starts = crate::tensorboard::session_starts(&tensorboard_dir)?;
        let mut board = TensorBoard::create(&tensorboard_dir)?;
        // Every session opens with a `SessionLog.START` at its first step. TensorBoard
        // takes a run's first one as its beginning and each later one as a restart that
        // drops the points at its step and after: those an interrupted run wrote past
        // its checkpoint, or everything when a run killed before its first checkpoint
        // starts over. A folder written before sessions were marked gets one more, so
        // that this restart is not taken for the beginning.
        let first_step = if state.epoch == 0 {
            0
        } else {
            state.epoch as u64 + 1
        };
        if earlier_starts.is_some_and(|starts| starts.is_empty()) {
            board.session_start(first_step)?;
        }
        board.session_start(first_step)?;
        let parameters = model.num_trainable_params();
        let [h, w] = train_pipeline.output_size();
        let summary = model_config.summary(h as usize, w as usize)?;
        tracing::info!(
            "AlexNet ({:?}), {parameters} trainable parameters, {} classes, input {h}x{w}; {} training / {} validation images; device {}, {:?}",
            model_config.variant,
            data.num_classes(),
            train_set.len_items(),
            val_set.len_items(),
            train_config.device,
            train_config.precision
        );
        let pool = loader_pool(train_config.loader_threads)?;
        if state.epoch == 0 {
            board.text("model/summary", &format!("```\n{summary}\n```"), 0)?;
            if let Some(grid) = preview_grid(
                &train_set,
                &train_pipeline,
                seed,
                train_config.preview_images,
            )? {
                board.image("augmented_training_images", &grid, 0)?;
            }
        }
        board.flush()?;

        let mut engine = Engine {
            devices: train_devices,
            dtype,
            optim,
            scale: state.loss_scale.clone(),
            scaling: train_config.precision == Precision::F16,
            growth_factor: train_config.loss_scale.growth_factor,
            backoff_factor: train_config.loss_scale.backoff_factor,
            growth_interval: train_config.loss_scale.growth_interval,
            max_overflows_at_min: train_config.loss_scale.max_overflows_at_min_scale,
            classes: data.num_classes(),
        };
        let batches = train_set.len_items() / train_config.batch_size;
        let eval_options = EvalOptions {
            batch_size: train_config.eval_batch_size,
            precision: train_config.precision,
            device: devices[0].clone(),
            prefetch: train_config.prefetch,
            pool: pool.clone(),
        };
        let mut interrupted = false;
        if state.epoch >= train_config.epochs {
            tracing::info!(
                "training already complete: {} of {} epochs done",
                state.epoch,
                train_config.epochs
            );
        }
        for epoch in state.epoch + 1..=train_config.epochs {
            let started = Instant::now();
            let lr = schedule.lr();
            // Dropout draws from the device generator; reseeding per epoch makes each epoch's
            // masks independent of how the run got there (fresh or resumed).
            // Each device has its own generator; the first is also the loader's device.
            for (k, device) in distinct(&engine.devices).into_iter().enumerate() {
                device.seed(epoch_seed(seed, epoch as u64).wrapping_add(k as u64));
            }
            let loader = train_loader(
                &train_set,
                ImageBatcher::new(train_pipeline.clone(), pool.clone(), seed, epoch as u64),
                train_config.batch_size,
                seed,
                epoch as u64,
                &main,
            );
            let bar = progress_bar(
                batches as u64,
                "{msg} [{bar:25}] {pos}/{len} {per_sec} ETA {eta}",
            );
            bar.set_message(format!("epoch {epoch}/{}", train_config.epochs));
            let mut train_acc = Accumulator::default();
            let mut loss_sum = 0.0f64;
            let mut skipped = 0u64;
            let mut applied = 0u64;
            let last_good = last_checkpoint.clone();
            let global_step = &mut state.global_step;
            let stop = |what: String, batch: usize, step: u64| TrainError::NonFinite {
                what,
                epoch,
                batch,
                step,
                last_checkpoint: last_good
                    .as_ref()
                    .map_or("none (no checkpoint yet)".into(), |p| {
                        p.display().to_string()
                    }),
            };
            // The step takes the model by value: with no other handle on its parameters
            // the optimizer updates them in place instead of allocating new ones.
            let mut current = Some(model);
            let lost = || backend("the model was lost by a failed step");
            let result = for_each_batch(&loader, train_config.prefetch, |index, batch| {
                let classes = batch.classes.clone();
                let taken = current.take().ok_or_else(lost)?;
                let (updated, outcome) = engine.step(taken, batch, lr)?;
                current = Some(updated);
                // Under f16 a non-finite step is an overflow, skipped and retried with a
                // smaller scale, until even the smallest scale keeps overflowing; in f32
                // it is divergence.
                if engine.scaling {
                    if engine.scale.overflows_at_min >= engine.max_overflows_at_min {
                        return Err(stop(
                            format!(
                                "f16 steps overflowed {} times in a row at the smallest loss scale ({MIN_LOSS_SCALE}), the last loss {}",
                                engine.scale.overflows_at_min, outcome.loss
                            ),
                            index + 1,
                            *global_step + 1,
                        ));
                    }
                } else if !outcome.loss.is_finite() {
                    return Err(stop(
                        format!("loss became {}", outcome.loss),
                        index + 1,
                        *global_step + 1,
                    ));
                } else if outcome.non_finite_grads {
                    return Err(stop(
                        "gradients became non-finite (NaN or infinite)".into(),
                        index + 1,
                        *global_step + 1,
                    ));
                }
                if outcome.applied {
                    *global_step += 1;
                    applied += 1;
                    loss_sum += f64::from(outcome.loss) * classes.len() as f64;
                    train_acc.add_log_probs(&outcome.log_probs, engine.classes, &classes);
                } else {
                    skipped += 1;
                }
                bar.inc(1);
                bar.set_message(format!(
                    "epoch {epoch}/{} loss {:.4} train acc {:.2}% lr {lr:.3e}",
                    train_config.epochs,
                    loss_sum / train_acc.count.max(1) as f64,
                    100.0 * train_acc.top1()
                ));
                Ok(())
            });
            finish_progress(&bar);
            result?;
            model = current.ok_or_else(lost)?;
            // Nothing non-finite is evaluated, logged or saved.
            if applied == 0 {
                return Err(stop(
                    format!(
                        "no optimizer step completed in the epoch ({skipped} skipped as f16 overflows, the loss scale now {}; a smaller train.loss_scale.initial takes fewer steps to fit)",
                        engine.scale.scale
                    ),
                    batches,
                    state.global_step,
                ));
            }
            if !all_finite(&model)? {
                return Err(stop(
                    "parameters or BatchNorm statistics became non-finite".into(),
                    batches,
                    state.global_step,
                ));
            }
            let train_seconds = started.elapsed().as_secs_f64();
            let (val, _) = evaluate(&model, &val_set, eval_pipeline.clone(), &eval_options)?;
            if !val.loss().is_finite() {
                return Err(stop(
                    format!(
                        "validation loss is {} (the model's validation outputs are not finite)",
                        val.loss()
                    ),
                    batches,
                    state.global_step,
                ));
            }
            let metrics = EpochMetrics {
                epoch,
                train_loss: loss_sum / train_acc.count as f64,
                train_accuracy: train_acc.top1(),
                val_loss: val.loss(),
                val_top1: val.top1(),
                val_top5: val.top5(),
                lr,
                images_per_sec: (batches * train_config.batch_size) as f64
                    / train_seconds.max(1e-9),
                seconds: started.elapsed().as_secs_f64(),
                skipped_steps: skipped,
                loss_scale: if engine.scaling {
                    f64::from(engine.scale.scale)
                } else {
                    1.0
                },
            };
            tracing::info!(
                "epoch {epoch}/{}: loss {:.4}, train acc {:.2}%, val loss {:.4}, val acc {:.2}% (top-5 {:.2}%), lr {lr:.3e}, {:.1} images/s, {:.1}s",
                train_config.epochs,
                metrics.train_loss,
                100.0 * metrics.train_accuracy,
                metrics.val_loss,
                100.0 * metrics.val_top1,
                100.0 * metrics.val_top5,
                metrics.images_per_sec,
                metrics.seconds
            );
            let step = epoch as u64;
            board.scalar("loss/train", metrics.train_loss, step)?;
            board.scalar("loss/val", metrics.val_loss, step)?;
            board.scalar("accuracy/train", metrics.train_accuracy, step)?;
            board.scalar("accuracy/val", metrics.val_top1, step)?;
            board.scalar("accuracy/val_top5", metrics.val_top5, step)?;
            board.scalar("learning_rate", lr, step)?;
            board.scalar("throughput/images_per_sec", metrics.images_per_sec, step)?;
            if engine.scaling {
                board.scalar("loss_scale", metrics.loss_scale, step)?;
                board.scalar("skipped_steps", skipped as f64, step)?;
            }
            board.flush()?;
            crate::checkpoint::pause_point("epoch-logged", epoch);
            schedule.step(&metrics);
            state.epoch = epoch;
            state.schedule = schedule.state();
            state.loss_scale = engine.scale.clone();
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
                store.save_best(&state, &model_bytes(&model)?)?;
            }
            if epoch % train_config.checkpoint_interval == 0 || epoch == train_config.epochs {
                let optimizer = engine.optim.into_bytes().map_err(backend)?;
                let dir = store.save(&state, &model_bytes(&model)?, &optimizer)?;
                tracing::info!("checkpoint {}", dir.display());
                last_checkpoint = Some(dir);
            }
            if !observer(&metrics) {
                interrupted = epoch < train_config.epochs;
                break;
            }
        }
        Ok(TrainSummary {
            run_dir,
            tensorboard_dir,
            checkpoint: last_checkpoint,
            history: state.history,
            parameters,
            interrupted,
        })
    }
}

/// The distinct devices of `devices`, in first-seen order.
fn distinct(devices: &[Device]) -> Vec<&Device> {
    let mut seen: Vec<&Device> = Vec::new();
    for device in devices {
        if !seen.contains(&device) {
            seen.push(device);
        }
    }
    seen
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).at(&tmp)?;
    std::fs::rename(&tmp, path).at(path)
}

impl ImageDataset {
    fn len_items(&self) -> usize {
        self.items().len()
    }
}
