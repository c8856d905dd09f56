//! Evaluation: a model on a split with a pipeline (loss, top-1, top-5, per class; ten-crop
//! averaged in probability space), and testing a run's checkpoint.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::Arc,
};

use alexnet_augment::{OpConfig, Pipeline};
use alexnet_model::AlexNet;
use alexnet_prep::{CATEGORIES_CSV, Category, ProcessedDataset, Split};
use burn::{module::Module, prelude::*};

use crate::{
    checkpoint::CheckpointStore,
    config::{ExperimentConfig, Overrides, Precision},
    data::{ImageBatcher, ImageDataset, eval_loader, for_each_batch, loader_pool},
    device::parse_device,
    error::{IoContext, Result, TrainError, invalid},
    io::write_atomic,
    metrics::{Accumulator, average_crops},
    session::{RUN_CONFIG, build_pipelines, check_same_classes, class_labels, default_run_dir},
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

/// The prepared dataset to evaluate a run on: the one given (`train.data` or
/// `prep.output`), else the one the run trained on (its `config.toml`), else the demo
/// dataset, with a warning, as [`resolve_data`](crate::session::resolve_data) would. Sets `train.data`.
pub fn resolve_test_data(config: &mut ExperimentConfig, run_dir: &Path) -> Result<PathBuf> {
    let given = config.train.data.is_some() || config.prep.output.is_some();
    let recorded = run_dir.join(RUN_CONFIG);
    if !given && recorded.is_file() {
        let trained = ExperimentConfig::load(&recorded)?;
        if let Some(data) = trained.train.data {
            tracing::info!(
                "evaluating on the dataset the run trained on, {} (from {})",
                data.display(),
                recorded.display()
            );
            config.train.data = Some(data);
        }
    }
    if config.train.data.is_none() && config.prep.output.is_none() {
        tracing::warn!(
            "no dataset given and {} records none: evaluating on the built-in demo dataset",
            recorded.display()
        );
    }
    crate::session::resolve_data(config, false)
}

/// What the `test_caltech` example asks for.
#[derive(Debug, Clone)]
pub struct TestCommand<'a> {
    /// `--config`; else the run directory's `config.toml`, else `demo_config`.
    pub config: Option<&'a Path>,
    /// The built-in demo's TOML text and the name it is known by.
    pub demo_config: (&'a str, &'a Path),
    /// `--run-dir`; else `runs/<config file stem>` (`runs/demo` without a config).
    pub run_dir: Option<PathBuf>,
    /// `--checkpoint`; else the run's latest.
    pub checkpoint: Option<PathBuf>,
    /// The split to evaluate.
    pub split: Split,
    /// How images are presented.
    pub view: TestView,
    /// `--data`, `--device`.
    pub overrides: Overrides,
}

/// What the `test_caltech` example calls: the config resolved as [`TestCommand`] says,
/// the dataset as [`resolve_test_data`] finds it, then [`test`].
pub fn test_command(command: &TestCommand) -> Result<TestReport> {
    let (mut config, run_dir) = run_config(
        command.config,
        command.demo_config,
        command.run_dir.clone(),
        &command.overrides,
    )?;
    if !run_dir.is_dir() && command.checkpoint.is_none() {
        return Err(invalid(
            "--run-dir",
            format!(
                "run directory {} does not exist (train first, or pass --run-dir / --checkpoint)",
                run_dir.display()
            ),
        ));
    }
    let _log = crate::logging::init(&config.logging, None)?;
    resolve_test_data(&mut config, &run_dir)?;
    test(
        &config,
        &run_dir,
        command.checkpoint.as_deref(),
        command.split,
        command.view,
    )
}

/// The config and run directory a command on a trained run uses: `config` (`--config`),
/// else the run directory's `config.toml` (what training used), else `demo_config`; the
/// run directory is `run_dir`, else `runs/<config file stem>` (`runs/demo` without a
/// config). `overrides` (the command's flags) are applied.
pub(crate) fn run_config(
    config: Option<&Path>,
    demo_config: (&str, &Path),
    run_dir: Option<PathBuf>,
    overrides: &Overrides,
) -> Result<(ExperimentConfig, PathBuf)> {
    let name = config
        .and_then(|path| path.file_stem())
        .map_or("demo".to_string(), |s| s.to_string_lossy().into_owned());
    let run_dir = run_dir.unwrap_or_else(|| default_run_dir(&name));
    let recorded = run_dir.join(RUN_CONFIG);
    let file = config.or_else(|| recorded.is_file().then_some(recorded.as_path()));
    let mut config = ExperimentConfig::load_or(file, Some(demo_config))?;
    config.apply(overrides);
    Ok((config, run_dir))
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
    let model_config = loaded.state.model.clone();
    if model_config.num_classes != Some(data.num_classes()) {
        return Err(TrainError::Checkpoint {
            path: loaded.dir.clone(),
            reason: format!(
                "has {:?} classes but {} lists {}",
                model_config.num_classes,
                data_dir.join(CATEGORIES_CSV).display(),
                data.num_classes()
            ),
        });
    }
    check_same_classes(
        &loaded.dir,
        &loaded.state.classes,
        &class_labels(&data),
        &data_dir,
    )?;
    let mut config = config.clone();
    let [height, width] = {
        let (_, eval) = build_pipelines(&config, &data, &model_config)?;
        eval.output_size()
    };
    let photometric: Vec<OpConfig> = config
        .augment
        .eval
        .iter()
        .filter(|op| matches!(op, OpConfig::Normalize { .. }))
        .cloned()
        .collect();
    let geometric = match view {
        TestView::Config => None,
        TestView::CenterCrop => Some(OpConfig::CenterCrop {
            size: [height, width],
        }),
        TestView::TenCrop => Some(OpConfig::TenCrop {
            size: [height, width],
        }),
    };
    if let Some(op) = geometric {
        config.augment.eval = std::iter::once(op).chain(photometric).collect();
    }
    let (_, pipeline) = build_pipelines(&config, &data, &model_config)?;
    let device = parse_device(config.train.device.split(',').next().unwrap_or_default())?;
    let model = loaded.load_model(model_config.init(&device)?)?;
    let dataset = ImageDataset::new(&data, split);
    let pool = loader_pool(config.train.loader_threads)?;
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
        pool,
    };
    let (accumulator, per_class) = evaluate(&model, &dataset, Arc::clone(&pipeline), &options)?;
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
    let view_name = match view {
        TestView::Config => "config",
        TestView::CenterCrop => "center",
        TestView::TenCrop => "tencrop",
    };
    let csv_path = eval_dir.join(format!(
        "{split}-epoch-{:04}-{view_name}.csv",
        loaded.state.epoch
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
