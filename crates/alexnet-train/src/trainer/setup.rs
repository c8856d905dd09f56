//! A run checked and loaded before anything is written: the dataset, the pipelines, the
//! devices, the model and optimizer, and the checkpoint to resume from.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use alexnet_augment::Pipeline;
use alexnet_model::{AlexNet, AlexNetConfig};
use alexnet_prep::{CATEGORIES_CSV, DemoPrepOptions, ProcessedDataset, Split, prepare_demo};
use burn::{
    module::{Module, ModuleVisitor, Param},
    optim::ModuleOptimizer,
    prelude::*,
    tensor::DType,
};

use crate::{
    checkpoint::{Checkpoint, CheckpointStore, TrainerState},
    config::{ExperimentConfig, Precision, Resume},
    data::{ImageDataset, channel_stats},
    device::parse_devices,
    distributed::ProcessGroup,
    error::{IoContext, Result, TrainError, invalid},
    io::write_atomic,
    loss_scale::LossScaler,
    schedule::Schedule,
    sgd::Sgd,
    step::Stepper,
};

/// The run directory's copy of the resolved config, which a test of the run reads back.
pub const RUN_CONFIG: &str = "config.toml";

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
    tracing::info!(
        "no dataset configured: using the built-in demo dataset in {}",
        config.demo.dir.display()
    );
    let options = DemoPrepOptions {
        reuse: true,
        overwrite: true,
        progress: show_progress.then(|| alexnet_prep::progress_bar("preprocessing demo")),
    };
    let demo = prepare_demo(&config.demo, &config.prep, options)?;
    if let Some(report) = &demo.report {
        tracing::info!(
            "demo dataset: {} images in {} classes ({} generated, {} odd files skipped as a real download's would be)",
            report.counts.written,
            report.counts.classes,
            demo.summary.images,
            report.counts.skipped
        );
    }
    let processed = demo.processed;
    config.train.data = Some(processed.clone());
    Ok(processed)
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
                data.root().join(CATEGORIES_CSV).display()
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
    let size = data.image_size()?;
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
            data_dir.join(CATEGORIES_CSV).display(),
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

/// Forces lazily initialized parameters to be drawn.
struct Materialize;

impl ModuleVisitor for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// What a run reads: the dataset and its two pipelines.
pub(crate) struct Inputs {
    pub data: ProcessedDataset,
    /// The model config, its number of classes resolved from the dataset.
    pub model_config: AlexNetConfig,
    pub train_pipeline: Arc<Pipeline>,
    pub eval_pipeline: Arc<Pipeline>,
    pub train_set: ImageDataset,
    pub val_set: ImageDataset,
}

/// A run that has been checked and loaded (data, pipelines, devices, model, optimizer,
/// the checkpoint to resume from) before anything is written: every bad input is an
/// error here, with the run directory untouched. [`Session::run`] trains it.
pub struct Session {
    pub(crate) config: ExperimentConfig,
    pub(crate) run_dir: PathBuf,
    pub(crate) inputs: Inputs,
    /// The first device, plain: evaluation and the preview run there.
    pub(crate) eval_device: Device,
    /// The training devices, the optimizer and the loss scale.
    pub(crate) stepper: Stepper,
    /// The model, on the first training device; `None` only while a step holds it.
    pub(crate) model: Option<AlexNet>,
    pub(crate) state: TrainerState,
    pub(crate) schedule: Schedule,
    pub(crate) store: CheckpointStore,
    pub(crate) last_checkpoint: Option<PathBuf>,
}

impl Session {
    /// The run directory.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The model (an error only after a failed step lost it).
    pub(crate) fn model(&self) -> Result<&AlexNet> {
        self.model.as_ref().ok_or(TrainError::ModelLost)
    }

    /// Epochs already done (from the checkpoint resumed).
    pub fn epochs_done(&self) -> usize {
        self.state.epoch
    }

    /// Checks and loads everything; writes nothing.
    pub fn prepare(config: &ExperimentConfig) -> Result<Self> {
        Self::prepare_in(config, ProcessGroup::local())
    }

    /// [`Session::prepare`] for one rank of `group`: every rank must resume from the
    /// same checkpoint, and starts from rank 0's parameters.
    pub fn prepare_in(config: &ExperimentConfig, mut group: ProcessGroup) -> Result<Self> {
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
        if group.size() > train_config.batch_size {
            return Err(invalid(
                "train.batch_size",
                format!(
                    "{} is smaller than the {} ranks: each rank needs at least one image of every batch",
                    train_config.batch_size,
                    group.size()
                ),
            ));
        }
        let devices = parse_devices(&train_config.device)?;
        let dtype = train_config.precision.float_dtype();
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
            if train_config.precision != Precision::F32
                && alexnet_kernels::backend(device) == Some(alexnet_kernels::NativeBackend::Flex)
            {
                // gemm has no bf16 kernels and the native kernels are f32 only: on flex,
                // half precision computes the same f32 products plus conversions.
                tracing::warn!(
                    "train.precision = {:?} on flex is slower than f32: there are no half-precision kernels there (docs/benchmarks.md: bf16 at 0.6x of f32)",
                    train_config.precision
                );
            }
        }
        let train_devices: Vec<Device> = devices.iter().map(|d| d.clone().autodiff()).collect();
        let main = &train_devices[0];

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
        let mut model = model_config.init(main)?;
        model.visit(&mut Materialize);
        if let Some(path) = &train_config.init_from {
            if let Some(checkpoint) = &checkpoint {
                tracing::info!(
                    "resuming from {}: train.init_from ({}) is for a new run and is not used",
                    checkpoint.dir.display(),
                    path.display()
                );
            } else {
                model = model.load_pytorch(path, train_config.new_classifier)?;
                let fresh = if train_config.new_classifier {
                    ", a new last layer for this dataset's classes"
                } else {
                    ""
                };
                tracing::info!("weights from {}{fresh}", path.display());
            }
        }
        let mut optim = ModuleOptimizer::from(Sgd::from(config.train.sgd()));
        let mut state = match &checkpoint {
            Some(checkpoint) => {
                model = checkpoint.load_model(model)?;
                optim = checkpoint.load_optimizer(optim)?;
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
        if group.size() > 1 {
            let epochs = group.gather(state.epoch as f64, "the check of the checkpoint resumed")?;
            if let Some((other, theirs)) = epochs
                .iter()
                .enumerate()
                .find(|(_, epoch)| **epoch != state.epoch as f64)
            {
                return Err(TrainError::Distributed {
                    rank: group.rank(),
                    reason: format!(
                        "starts after epoch {} but rank {other} after epoch {theirs}: every rank must read the same run directory {} (a shared file system)",
                        state.epoch,
                        run_dir.display()
                    ),
                });
            }
            model = group.broadcast_model(model)?;
        }
        let last_checkpoint = checkpoint.as_ref().map(|c| c.dir.clone());
        Ok(Session {
            config: config.clone(),
            run_dir,
            inputs: Inputs {
                data,
                model_config,
                train_pipeline,
                eval_pipeline,
                train_set,
                val_set,
            },
            eval_device: devices[0].clone(),
            stepper: Stepper {
                devices: train_devices,
                dtype,
                optim,
                scaler: (train_config.precision == Precision::F16)
                    .then(|| LossScaler::new(&train_config.loss_scale, state.loss_scale.clone())),
                check_finite: true,
                group,
            },
            model: Some(model),
            state,
            schedule,
            store,
            last_checkpoint,
        })
    }

    /// Writes the resolved config (the model with its number of classes) into the run
    /// directory, creating it.
    pub(crate) fn write_resolved_config(&self) -> Result<()> {
        std::fs::create_dir_all(&self.run_dir).at(&self.run_dir)?;
        let mut resolved = self.config.clone();
        resolved.model = self.inputs.model_config.clone();
        write_atomic(
            &self.run_dir.join(RUN_CONFIG),
            resolved.to_toml()?.as_bytes(),
        )
    }
}

impl ImageDataset {
    pub(crate) fn len_items(&self) -> usize {
        self.items().len()
    }
}
