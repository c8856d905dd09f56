//! [`Trainer::prepare`]: a run checked and loaded in named steps — open the inputs,
//! choose the devices, choose the checkpoint, build the model, restore the trainer's
//! state, agree across ranks — before anything is written.

use std::path::{Path, PathBuf};

use alexnet_model::{AlexNet, AlexNetConfig};
use burn::{
    module::{Module, ModuleVisitor, Param},
    optim::ModuleOptimizer,
    prelude::*,
    tensor::DType,
};

use super::Trainer;
use crate::{
    checkpoint::{Checkpoint, CheckpointStore, TrainerState},
    config::{CheckedConfig, ExperimentConfig, Precision, Resume, TrainConfig},
    device::parse_devices,
    distributed::ProcessGroup,
    error::{IoContext, Result, TrainError, invalid},
    inputs::{Inputs, check_same_classes, class_labels},
    io::write_atomic,
    optim::{LossScaler, OptimizerKind, Schedule},
    step::Stepper,
};

/// The run directory's copy of the resolved config, which a test of the run reads back.
pub const RUN_CONFIG: &str = "config.toml";

impl Trainer {
    /// Checks the inputs against each other and loads everything; writes nothing.
    pub fn prepare(config: &CheckedConfig) -> Result<Self> {
        Self::prepare_in(config, ProcessGroup::local())
    }

    /// [`Trainer::prepare`] for one rank of `group`: every rank must resume from the
    /// same checkpoint, and starts from rank 0's parameters.
    pub fn prepare_in(config: &CheckedConfig, mut group: ProcessGroup) -> Result<Self> {
        let train_config = &config.train;
        let (data_dir, run_dir) = run_paths(train_config)?;
        let inputs = Inputs::open(config, data_dir)?;
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
        let devices = training_devices(train_config)?;
        let train_devices: Vec<Device> = devices.iter().map(|d| d.clone().autodiff()).collect();
        let store = CheckpointStore::new(&run_dir, train_config.keep_last)
            .keeping_steps(train_config.keep_last_steps);
        let checkpoint = choose_checkpoint(&store, &train_config.resume, &run_dir)?;
        if let Some(checkpoint) = &checkpoint {
            check_same_model(checkpoint, &inputs.model_config)?;
        }
        let seed = run_seed(train_config, checkpoint.as_ref());
        let model = init_model(&inputs.model_config, &train_devices[0], seed)?;
        let (mut model, optim, state) = restore(config, &inputs, model, checkpoint.as_ref(), seed)?;
        let schedule =
            Schedule::restore(&train_config.scheduler, train_config.lr, &state.schedule)?;
        if group.size() > 1 {
            agree_on_progress(&mut group, state.progress(), &run_dir)?;
            model = group.broadcast_model(model)?;
        }
        let scaler = (train_config.precision == Precision::F16)
            .then(|| LossScaler::new(&train_config.loss_scale, state.loss_scale.clone()));
        Ok(Trainer {
            config: (**config).clone(),
            run_dir,
            inputs,
            eval_device: devices[0].clone(),
            stepper: Stepper {
                devices: train_devices,
                dtype: train_config.precision.float_dtype(),
                optim,
                scaler,
                check_finite: true,
                group,
                label_smoothing: train_config.label_smoothing,
                clip_grad_norm: train_config.clip_grad_norm,
            },
            model: Some(model),
            state,
            schedule,
            store,
            last_checkpoint: checkpoint.map(|c| c.dir),
            stop: runfiles::StopRequest::new(),
            last_save: std::time::Instant::now(),
        })
    }

    /// Writes the resolved config (the model with its number of classes) into the run
    /// directory, creating it.
    pub(super) fn write_resolved_config(&self) -> Result<()> {
        std::fs::create_dir_all(&self.run_dir).at(&self.run_dir)?;
        let mut resolved = self.config.clone();
        resolved.model = self.inputs.model_config.clone();
        write_atomic(
            &self.run_dir.join(RUN_CONFIG),
            resolved.to_toml()?.as_bytes(),
        )
    }
}

/// The prepared dataset and the run directory, both resolved by now.
fn run_paths(train_config: &TrainConfig) -> Result<(&Path, PathBuf)> {
    let data_dir = train_config.data.as_deref().ok_or_else(|| {
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
    Ok((data_dir, run_dir))
}

/// The configured devices, each checked for the compute precision.
fn training_devices(train_config: &TrainConfig) -> Result<Vec<Device>> {
    let devices = parse_devices(&train_config.device)?;
    let precision = train_config.precision;
    for device in &devices {
        if !device.supports_dtype(DType::from(precision.float_dtype())) {
            return Err(invalid(
                "train.precision",
                format!("{precision:?} is not supported by {device:?}"),
            ));
        }
        if precision != Precision::F32
            && alexnet_kernels::backend(device) == Some(alexnet_kernels::NativeBackend::Flex)
        {
            // gemm has no bf16 kernels and the native kernels are f32 only: on flex,
            // half precision computes the same f32 products plus conversions.
            tracing::warn!(
                "train.precision = {precision:?} on flex is slower than f32: there are no half-precision kernels there (docs/benchmarks.md: bf16 at 0.6x of f32)"
            );
        }
    }
    Ok(devices)
}

/// The checkpoint `resume` asks for: the run's latest, none (refused where the run
/// already holds checkpoints), or the given folder.
fn choose_checkpoint(
    store: &CheckpointStore,
    resume: &Resume,
    run_dir: &Path,
) -> Result<Option<Checkpoint>> {
    match resume {
        Resume::Never => {
            let any = !store.list()?.is_empty() || !store.list_steps()?.is_empty();
            if any || store.latest()?.is_some() {
                return Err(invalid(
                    "train.resume",
                    format!(
                        "is `never` but {} already holds checkpoints; use another --run-dir or --resume auto",
                        run_dir.display()
                    ),
                ));
            }
            Ok(None)
        }
        Resume::Auto => store.load_latest(),
        Resume::Path(path) => Ok(Some(CheckpointStore::load(path)?)),
    }
}

/// The run's seed: a resumed run keeps its checkpoint's, so it continues exactly.
fn run_seed(train_config: &TrainConfig, checkpoint: Option<&Checkpoint>) -> u64 {
    let seed = checkpoint.map_or(train_config.seed, |c| c.state.seed);
    if seed != train_config.seed {
        tracing::warn!(
            "the checkpoint's seed {seed} is kept (config says {}) so the resumed run continues exactly",
            train_config.seed
        );
    }
    seed
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

/// The checkpoint's optimizer must be the configured one: its state (momentum, or
/// AdamW's moments) is what a resume continues.
fn check_same_optimizer(checkpoint: &Checkpoint, configured: OptimizerKind) -> Result<()> {
    if checkpoint.state.optimizer == configured {
        return Ok(());
    }
    Err(invalid(
        "train.optimizer",
        format!(
            "is {configured:?} but {} was trained with {:?}; resume with that optimizer, or start a new run (another --run-dir)",
            checkpoint.dir.display(),
            checkpoint.state.optimizer
        ),
    ))
}

/// Forces lazily initialized parameters to be drawn.
struct Materialize;

impl ModuleVisitor for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// A new network on `device` drawn from `seed`. Parameters are initialized lazily;
/// drawing them all now, in order, ties the initialization to the seed alone.
fn init_model(model_config: &AlexNetConfig, device: &Device, seed: u64) -> Result<AlexNet> {
    device.seed(seed);
    let model = model_config.init(device)?;
    model.visit(&mut Materialize);
    Ok(model)
}

/// The model, optimizer and trainer state to start from: the checkpoint's, or a new
/// run's (from `train.init_from`'s weights where given; a resumed run ignores them).
fn restore(
    config: &ExperimentConfig,
    inputs: &Inputs,
    mut model: AlexNet,
    checkpoint: Option<&Checkpoint>,
    seed: u64,
) -> Result<(AlexNet, ModuleOptimizer, TrainerState)> {
    let train_config = &config.train;
    if let Some(path) = &train_config.init_from {
        match checkpoint {
            Some(checkpoint) => tracing::info!(
                "resuming from {}: train.init_from ({}) is for a new run and is not used",
                checkpoint.dir.display(),
                path.display()
            ),
            None => {
                model = model.load_pytorch(path, train_config.new_classifier)?;
                let fresh = if train_config.new_classifier {
                    ", a new last layer for this dataset's classes"
                } else {
                    ""
                };
                tracing::info!("weights from {}{fresh}", path.display());
            }
        }
    }
    let mut optim = train_config.build_optimizer();
    let mut state = match checkpoint {
        Some(checkpoint) => {
            check_same_optimizer(checkpoint, train_config.optimizer)?;
            model = checkpoint.load_model(model)?;
            optim = checkpoint.load_optimizer(optim)?;
            checkpoint.state.clone()
        }
        None => TrainerState::new(
            seed,
            inputs.model_config.clone(),
            Schedule::new(&train_config.scheduler, train_config.lr)?.state(),
            train_config.loss_scale.initial,
        ),
    };
    let classes = class_labels(&inputs.data);
    if let Some(checkpoint) = checkpoint {
        check_same_classes(
            &checkpoint.dir,
            &state.classes,
            &classes,
            inputs.data.root(),
        )?;
    }
    state.classes = classes;
    state.optimizer = train_config.optimizer;
    let dataset = inputs.data.fingerprint();
    if let (Some(checkpoint), Some(trained)) = (checkpoint, &state.dataset) {
        let changes = dataset.changes_since(trained);
        if !changes.is_empty() {
            return Err(TrainError::Checkpoint {
                path: checkpoint.dir.clone(),
                reason: format!(
                    "trained on another version of {}: {} changed since; resume on the dataset it trained on, or start a new run (another --run-dir)",
                    inputs.data.root().display(),
                    changes.join(", ")
                ),
            });
        }
    }
    state.dataset = Some(dataset);
    Ok((model, optim, state))
}

/// Every rank must start at the same point (epochs done, batches into the next): they
/// read one run directory.
fn agree_on_progress(
    group: &mut ProcessGroup,
    (epoch, batches): (usize, usize),
    run_dir: &Path,
) -> Result<()> {
    // Exact in an f64 for any run shorter than 2^53 / 2^24 epochs.
    let mine = (epoch as f64) * f64::from(1 << 24) + batches as f64;
    let all = group.gather(mine, "the check of the checkpoint resumed")?;
    match all.iter().enumerate().find(|(_, theirs)| **theirs != mine) {
        Some((other, theirs)) => {
            let their_epoch = (theirs / f64::from(1 << 24)).floor();
            let their_batches = theirs - their_epoch * f64::from(1 << 24);
            Err(TrainError::Distributed {
                rank: group.rank(),
                reason: format!(
                    "starts after epoch {epoch} and {batches} batches but rank {other} after epoch {their_epoch} and {their_batches} batches: every rank must read the same run directory {} (a shared file system)",
                    run_dir.display()
                ),
            })
        }
        None => Ok(()),
    }
}
