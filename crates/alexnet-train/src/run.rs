//! What the example binaries call: resolving the data (building the demo when none is
//! configured), training, and testing a run's checkpoint.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::Arc,
};

use alexnet_augment::OpConfig;
use alexnet_prep::{
    PrepConfig, PrepReport, Preprocessor, ProcessedDataset, REPORT_JSON, Split, generate_demo,
};
use burn::{store::ModuleRecord, tensor::Bytes};

use crate::{
    checkpoint::CheckpointStore,
    config::ExperimentConfig,
    data::{ImageDataset, loader_pool},
    device::parse_device,
    error::{IoContext, Result, TrainError, invalid},
    trainer::{
        EvalOptions, build_pipelines, check_same_classes, class_labels, evaluate, write_atomic,
    },
};

/// The run directory used when none is given: `runs/<name>`.
pub fn default_run_dir(name: &str) -> PathBuf {
    PathBuf::from("runs").join(name)
}

/// The prepared dataset to use: `train.data`, else `prep.output`, else the demo dataset,
/// generated and preprocessed on first use (reused afterwards). Sets `train.data`.
pub fn resolve_data(config: &mut ExperimentConfig, show_progress: bool) -> Result<PathBuf> {
    if let Some(data) = config
        .train
        .data
        .clone()
        .or_else(|| config.prep.output.clone())
    {
        if !data.is_dir() {
            return Err(invalid(
                "train.data",
                format!(
                    "{} does not exist (run preprocess_caltech first, or pass --data)",
                    data.display()
                ),
            ));
        }
        config.train.data = Some(data.clone());
        return Ok(data);
    }
    let raw = config.demo.dir.join("raw");
    let processed = config.demo.dir.join("processed");
    tracing::info!(
        "no dataset configured: using the built-in demo dataset in {}",
        config.demo.dir.display()
    );
    let summary = generate_demo(&raw, &config.demo)?;
    let prep = PrepConfig {
        input: Some(raw.clone()),
        output: Some(processed.clone()),
        ..config.prep.clone()
    };
    let previous: Option<PrepReport> = fs::read_to_string(processed.join(REPORT_JSON))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    let reusable = previous.is_some_and(|report| report.config == prep)
        && ProcessedDataset::open(&processed).is_ok();
    if !reusable {
        let mut preprocessor = Preprocessor::new(prep).overwrite(true);
        if show_progress {
            preprocessor = preprocessor.progress(alexnet_prep::progress_bar("preprocessing demo"));
        }
        let report = preprocessor.run()?;
        tracing::info!(
            "demo dataset: {} images in {} classes ({} generated, {} odd files skipped as a real download's would be)",
            report.counts.written,
            report.counts.classes,
            summary.images,
            report.counts.skipped
        );
    }
    config.train.data = Some(processed.clone());
    Ok(processed)
}

/// The prepared dataset to evaluate a run on: the one given (`train.data` or
/// `prep.output`), else the one the run trained on (its `config.toml`), else the demo
/// dataset, with a warning, as [`resolve_data`] would. Sets `train.data`.
pub fn resolve_test_data(config: &mut ExperimentConfig, run_dir: &Path) -> Result<PathBuf> {
    let given = config.train.data.is_some() || config.prep.output.is_some();
    let recorded = run_dir.join("config.toml");
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
    resolve_data(config, false)
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
    let loaded = match checkpoint {
        Some(path) => CheckpointStore::load(path)?,
        None => store.load_latest()?.ok_or_else(|| TrainError::Checkpoint {
            path: store.dir().to_path_buf(),
            reason: "the run has no checkpoint yet (train it first, or pass --checkpoint)".into(),
        })?,
    };
    let model_config = loaded.state.model.clone();
    if model_config.num_classes != Some(data.num_classes()) {
        return Err(TrainError::Checkpoint {
            path: loaded.dir.clone(),
            reason: format!(
                "has {:?} classes but {} lists {}",
                model_config.num_classes,
                data_dir.join("categories.csv").display(),
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
    let record =
        ModuleRecord::from_bytes(Bytes::from_bytes_vec(loaded.model.clone())).map_err(|error| {
            TrainError::Checkpoint {
                path: loaded.dir.clone(),
                reason: format!("model weights unreadable: {error}"),
            }
        })?;
    let model = model_config
        .init(&device)?
        .apply_record(record, &loaded.dir)?;
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
    let mut csv = String::from("id,label,correct,total,accuracy\n");
    for (category, (correct, total)) in data.categories().iter().zip(&per_class) {
        let accuracy = if *total == 0 {
            0.0
        } else {
            *correct as f64 / *total as f64
        };
        let label = category.label.replace('"', "\"\"");
        csv.push_str(&format!(
            "{},\"{label}\",{correct},{total},{accuracy:.6}\n",
            category.id
        ));
    }
    write_atomic(&csv_path, csv.as_bytes())?;
    Ok(TestReport {
        top1: accumulator.top1(),
        top5: accumulator.top5(),
        loss: accumulator.loss(),
        images: accumulator.count,
        checkpoint: loaded.dir,
        epoch: loaded.state.epoch,
        per_class_csv: csv_path,
    })
}
