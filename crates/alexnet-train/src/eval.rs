//! Evaluation: a model on a split with a pipeline (loss, top-1, top-5, per class; ten-crop
//! averaged in probability space), and testing a run's checkpoint.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::Arc,
};

use alexnet_augment::{OpConfig, Pipeline};
use alexnet_model::{AlexNet, AlexNetConfig};
use alexnet_prep::{CATEGORIES_CSV, Category, ProcessedDataset, Split};
use burn::{module::Module, prelude::*};

use crate::{
    checkpoint::{Checkpoint, CheckpointStore},
    config::{ExperimentConfig, Precision},
    data::{ImageBatcher, ImageDataset, eval_loader, for_each_batch, loader_pool},
    device::parse_device,
    error::{IoContext, Result, TrainError, invalid},
    inputs::{build_pipelines, check_same_classes, class_labels},
    io::write_atomic,
    metrics::{Accumulator, average_crops},
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
    let dtype = options.precision.float_dtype();
    for_each_batch(&loader, options.prefetch, |_, batch| {
        let crops = batch.crops;
        let rows = to_host(model.forward(batch.images, dtype)?)?;
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

/// What [`test`] measured.
#[derive(Debug, Clone)]
pub struct TestReport {
    /// Top-1 accuracy, a fraction.
    pub top1: f64,
    /// Top-5 accuracy, a fraction.
    pub top5: f64,
    /// Mean negative log-likelihood.
    pub loss: f64,
    /// Images evaluated.
    pub images: usize,
    /// The checkpoint evaluated.
    pub checkpoint: PathBuf,
    /// Epoch of that checkpoint.
    pub epoch: usize,
    /// The per-class accuracy CSV written.
    pub per_class_csv: PathBuf,
    /// The split evaluated.
    pub split: Split,
}

impl std::fmt::Display for TestReport {
    /// Two lines: what was evaluated, then `top1=… top5=… images=…`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "checkpoint {} (epoch {}), {} split: loss {:.4}; per-class accuracy in {}",
            self.checkpoint.display(),
            self.epoch,
            self.split,
            self.loss,
            self.per_class_csv.display()
        )?;
        write!(
            f,
            "top1={:.4} top5={:.4} images={}",
            self.top1, self.top5, self.images
        )
    }
}

/// How test images are presented to the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestView {
    /// The config's `augment.eval` pipeline (the original's 227 squash by default).
    Config,
    /// One central crop of the eval output size.
    CenterCrop,
    /// The paper's ten crops (corners, centre and mirrors), outputs averaged.
    TenCrop,
}

impl TestView {
    /// The view that `--ten-crop` and `--center-crop` ask for (ten-crop first).
    pub fn from_flags(ten_crop: bool, center_crop: bool) -> Self {
        match (ten_crop, center_crop) {
            (true, _) => Self::TenCrop,
            (false, true) => Self::CenterCrop,
            (false, false) => Self::Config,
        }
    }

    /// The view's name in the per-class CSV's file name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::CenterCrop => "center",
            Self::TenCrop => "tencrop",
        }
    }
}

/// Evaluates a run's checkpoint (`checkpoint`, else the run's latest) on `split`.
pub fn test(
    config: &ExperimentConfig,
    run_dir: &Path,
    checkpoint: Option<&Path>,
    split: Split,
    view: TestView,
) -> Result<TestReport> {
    let data_dir = config.train.data.clone().ok_or_else(|| {
        invalid(
            "train.data",
            "no prepared dataset given (set it or pass --data)",
        )
    })?;
    let data = ProcessedDataset::open(&data_dir)?;
    let store = CheckpointStore::new(run_dir, config.train.keep_last);
    let loaded = store.load_given_or_latest(checkpoint)?;
    check_checkpoint_fits(&loaded, &data)?;
    let model_config = loaded.state.model.clone();
    let pipeline = view_pipeline(config, &data, &model_config, view)?;
    let device = parse_device(config.train.first_device())?;
    let model = loaded.load_model(model_config.init(&device)?)?;
    let batch_size = if view == TestView::TenCrop {
        config.train.eval_batch_size.div_ceil(10).max(1)
    } else {
        config.train.eval_batch_size
    };
    let options = EvalOptions {
        batch_size,
        precision: config.train.precision,
        device,
        prefetch: config.train.prefetch,
        pool: loader_pool(config.train.loader_threads)?,
    };
    let dataset = ImageDataset::new(&data, split);
    let (accumulator, per_class) = evaluate(&model, &dataset, pipeline, &options)?;
    if !accumulator.loss().is_finite() {
        return Err(TrainError::Checkpoint {
            path: loaded.dir.clone(),
            reason: format!(
                "its outputs on {split} are not finite (loss {}): no accuracy is reported for a diverged model",
                accumulator.loss()
            ),
        });
    }
    let eval_dir = run_dir.join("eval");
    fs::create_dir_all(&eval_dir).at(&eval_dir)?;
    let csv_path = eval_dir.join(format!(
        "{split}-epoch-{:04}-{}.csv",
        loaded.state.epoch,
        view.name()
    ));
    write_atomic(&csv_path, &per_class_csv(data.categories(), &per_class)?)?;
    Ok(TestReport {
        top1: accumulator.top1(),
        top5: accumulator.top5(),
        loss: accumulator.loss(),
        images: accumulator.count,
        checkpoint: loaded.dir,
        epoch: loaded.state.epoch,
        per_class_csv: csv_path,
        split,
    })
}

/// A checkpoint is tested only on a dataset of its classes.
fn check_checkpoint_fits(loaded: &Checkpoint, data: &ProcessedDataset) -> Result<()> {
    let model_config = &loaded.state.model;
    if model_config.num_classes != Some(data.num_classes()) {
        return Err(TrainError::Checkpoint {
            path: loaded.dir.clone(),
            reason: format!(
                "has {:?} classes but {} lists {}",
                model_config.num_classes,
                data.root().join(CATEGORIES_CSV).display(),
                data.num_classes()
            ),
        });
    }
    check_same_classes(
        &loaded.dir,
        &loaded.state.classes,
        &class_labels(data),
        data.root(),
    )
}

/// The eval pipeline `view` asks for: the config's, or its photometric ops behind one
/// central crop or the ten crops, of the config's eval output size.
fn view_pipeline(
    config: &ExperimentConfig,
    data: &ProcessedDataset,
    model_config: &AlexNetConfig,
    view: TestView,
) -> Result<Arc<Pipeline>> {
    let (_, configured) = build_pipelines(config, data, model_config)?;
    let size = configured.output_size();
    let geometric = match view {
        TestView::Config => return Ok(configured),
        TestView::CenterCrop => OpConfig::CenterCrop { size },
        TestView::TenCrop => OpConfig::TenCrop { size },
    };
    let photometric = config
        .augment
        .eval
        .iter()
        .filter(|op| matches!(op, OpConfig::Normalize { .. }))
        .cloned();
    let mut config = config.clone();
    config.augment.eval = std::iter::once(geometric).chain(photometric).collect();
    let (_, pipeline) = build_pipelines(&config, data, model_config)?;
    Ok(pipeline)
}

/// One row of the per-class accuracy CSV.
#[derive(serde::Serialize)]
struct ClassRow<'a> {
    id: usize,
    label: &'a str,
    correct: usize,
    total: usize,
    accuracy: String,
}

/// `id,label,correct,total,accuracy` rows, one per class.
fn per_class_csv(categories: &[Category], per_class: &[(usize, usize)]) -> Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for (category, &(correct, total)) in categories.iter().zip(per_class) {
        let accuracy = if total == 0 {
            0.0
        } else {
            correct as f64 / total as f64
        };
        writer.serialize(ClassRow {
            id: category.id,
            label: &category.label,
            correct,
            total,
            accuracy: format!("{accuracy:.6}"),
        })?;
    }
    writer
        .into_inner()
        .map_err(|error| TrainError::Csv(error.into_error().into()))
}
