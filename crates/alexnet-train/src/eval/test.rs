//! `test`: a run's checkpoint scored on a split it was not chosen on, on the dataset it
//! trained on, with the confusion matrix and the mistakes written beside the numbers.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use alexnet_augment::{OpConfig, Pipeline};
use alexnet_model::AlexNetConfig;
use alexnet_prep::{CATEGORIES_CSV, ProcessedDataset, Split};

use super::{
    EvalOptions, evaluate,
    outputs::{EvalFiles, write_eval_files},
};
use crate::{
    checkpoint::{Checkpoint, CheckpointStore},
    config::ExperimentConfig,
    data::{ImageDataset, loader_pool},
    device::parse_device,
    error::{Result, TrainError, invalid},
    inputs::{SELECTION_SPLIT, build_pipelines, check_same_classes, class_labels},
};

/// What [`test`] measured.
#[derive(Debug, Clone)]
pub struct TestReport {
    /// Top-1 accuracy, a fraction.
    pub top1: f64,
    /// Top-5 accuracy, a fraction.
    pub top5: f64,
    /// Mean per-class accuracy, a fraction (classes without an image left out).
    pub mean_per_class: f64,
    /// Mean negative log-likelihood.
    pub loss: f64,
    /// Images evaluated.
    pub images: usize,
    /// The checkpoint evaluated.
    pub checkpoint: PathBuf,
    /// Epoch of that checkpoint.
    pub epoch: usize,
    /// The split evaluated.
    pub split: Split,
    /// Whether the run chose its checkpoint and schedule on this split (its numbers are
    /// then not a test result).
    pub selected_on: bool,
    /// What was written: the per-class CSV, the confusion matrix, the most-confused pairs
    /// and the worst classes.
    pub files: EvalFiles,
}

impl std::fmt::Display for TestReport {
    /// What was evaluated and written, the most-confused pairs and worst classes, then
    /// `top1=… top5=… mean_per_class=… images=… split=…` as the last line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "checkpoint {} (epoch {}), {} split: loss {:.4}",
            self.checkpoint.display(),
            self.epoch,
            self.split,
            self.loss,
        )?;
        write!(f, "{}", self.files)?;
        if self.selected_on {
            writeln!(
                f,
                "note: the run chose this checkpoint and its schedule on the {} split: these are validation numbers, not a test result (prepare a test split: prep.test_split or prep.train_per_class)",
                self.split
            )?;
        }
        write!(
            f,
            "top1={:.4} top5={:.4} mean_per_class={:.4} images={} split={}",
            self.top1, self.top5, self.mean_per_class, self.images, self.split
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

/// What to test.
#[derive(Debug, Clone, Default)]
pub struct TestRequest<'a> {
    /// A checkpoint folder; `None`: the run's latest.
    pub checkpoint: Option<&'a Path>,
    /// The split; `None`: test when the dataset has one, else val (reported as such).
    pub split: Option<Split>,
    /// How images are presented.
    pub view: Option<TestView>,
    /// Score a dataset other than the one the checkpoint trained on (its fingerprint
    /// differs) instead of refusing.
    pub other_dataset: bool,
}

/// The split a request scores: the one asked for (which must have images), else test
/// where the dataset has one, else val.
fn choose_split(data: &ProcessedDataset, asked: Option<Split>) -> Result<Split> {
    match asked {
        Some(split) if !data.has(split) => Err(invalid(
            "--split",
            format!(
                "{} has no {split} split{}",
                data.root().display(),
                if split == Split::Test {
                    " (prepare it with prep.test_split or prep.train_per_class)"
                } else {
                    ""
                }
            ),
        )),
        Some(split) => Ok(split),
        None if data.has(Split::Test) => Ok(Split::Test),
        None => {
            tracing::warn!(
                "{} has no test split: scoring val, which chose the checkpoint",
                data.root().display()
            );
            Ok(Split::Val)
        }
    }
}

/// Evaluates a run's checkpoint (the request's, else the run's latest) on a split, as
/// [`TestRequest`] says; writes the per-class accuracy, the confusion matrix and the
/// most-confused pairs under `<run>/eval/`, and the matrix and a grid of mistakes to
/// TensorBoard under `<run>/tensorboard/eval-<split>/`.
pub fn test(
    config: &ExperimentConfig,
    run_dir: &Path,
    request: &TestRequest,
) -> Result<TestReport> {
    let data_dir = config.train.data.clone().ok_or_else(|| {
        invalid(
            "train.data",
            "no prepared dataset given (set it or pass --data)",
        )
    })?;
    let data = ProcessedDataset::open(&data_dir)?;
    let split = choose_split(&data, request.split)?;
    let store = CheckpointStore::new(run_dir, config.train.keep_last);
    let loaded = store.load_given_or_latest(request.checkpoint)?;
    check_checkpoint_fits(&loaded, &data)?;
    check_same_dataset(&loaded, &data, request.other_dataset)?;
    let model_config = loaded.state.model.clone();
    let view = request.view.unwrap_or(TestView::Config);
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
    let evaluation = evaluate(&model, &dataset, pipeline, &options)?;
    let metrics = &evaluation.metrics;
    let mean_per_class = metrics.mean_per_class().filter(|m| m.is_finite());
    let (true, Some(mean_per_class)) = (metrics.loss().is_finite(), mean_per_class) else {
        return Err(TrainError::Checkpoint {
            path: loaded.dir.clone(),
            reason: format!(
                "its outputs on {split} are not finite (loss {}): no accuracy is reported for a diverged model",
                metrics.loss()
            ),
        });
    };
    let stem = format!("{split}-epoch-{:04}-{}", loaded.state.epoch, view.name());
    let files = write_eval_files(
        run_dir,
        &stem,
        &data,
        &dataset,
        &evaluation,
        loaded.state.epoch,
    )?;
    Ok(TestReport {
        top1: metrics.top1(),
        top5: metrics.top5(),
        mean_per_class,
        loss: metrics.loss(),
        images: metrics.count,
        checkpoint: loaded.dir,
        epoch: loaded.state.epoch,
        split,
        selected_on: split == SELECTION_SPLIT,
        files,
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

/// A checkpoint that records its dataset is scored on that dataset: one re-split since
/// would put images it trained or chose on into the split scored. `other` allows a
/// different dataset on purpose.
fn check_same_dataset(loaded: &Checkpoint, data: &ProcessedDataset, other: bool) -> Result<()> {
    let Some(trained) = &loaded.state.dataset else {
        return Ok(());
    };
    let changes = data.fingerprint().changes_since(trained);
    if changes.is_empty() {
        return Ok(());
    }
    if other {
        tracing::warn!(
            "scoring {} although the checkpoint trained on another dataset ({} differ)",
            data.root().display(),
            changes.join(", ")
        );
        return Ok(());
    }
    Err(TrainError::Checkpoint {
        path: loaded.dir.clone(),
        reason: format!(
            "trained on another version of {}: {} changed since, so its splits may hold images the run trained or chose its checkpoint on (pass --other-dataset to score it anyway)",
            data.root().display(),
            changes.join(", ")
        ),
    })
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
