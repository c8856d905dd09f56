//! Using a trained model on images: each one through the preprocessing (centre crop and
//! resize to `prep.size`) and the eval pipeline, then the top labels with probabilities.

use std::path::{Path, PathBuf};

use alexnet_augment::Pipeline;
use alexnet_prep::{DecodeOptions, ProcessedDataset, SquareResizer, decode_rgb8};
use burn::{module::Module, prelude::*};

use alexnet_model::AlexNet;

use super::command_config;
use crate::{
    checkpoint::CheckpointStore,
    config::{ExperimentConfig, Overrides},
    data::channel_stats,
    device::parse_device,
    error::{IoContext, LoadCause, Result, TrainError, invalid},
    metrics::average_crops,
    step::to_host,
};

/// What the `classify` example asks for.
#[derive(Debug, Clone)]
pub struct ClassifyCommand<'a> {
    /// `--config`; else as [`command_config`] says (the run directory's `config.toml`).
    pub config: Option<&'a Path>,
    /// `--checkpoint`; else the run's latest.
    pub checkpoint: Option<PathBuf>,
    /// `--weights`: a PyTorch or safetensors file for the config's `[model]` instead of a
    /// checkpoint; needs `labels`.
    pub weights: Option<PathBuf>,
    /// `--labels`: one class name a line, in class-id order (ImageNet's for torchvision's
    /// weights). Default: the checkpoint's classes.
    pub labels: Option<PathBuf>,
    /// How many labels to give per image.
    pub top: usize,
    /// `--run-dir`, `--device`, `--data` (whose statistics a `"dataset"` normalization
    /// uses).
    pub overrides: Overrides,
}

/// One label and its probability.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The class label.
    pub label: String,
    /// Its probability.
    pub probability: f32,
}

/// A model with what it needs to classify raw images.
pub struct Classifier {
    model: AlexNet,
    device: Device,
    labels: Vec<String>,
    resizer_size: u32,
    center_crop: bool,
    filter: alexnet_prep::ResizeFilter,
    pipeline: Pipeline,
    dtype: burn::tensor::FloatDType,
}

/// The image files `paths` name: a file as given, a folder's files (not its
/// subfolders) in name order, so `classify photos/` takes every image in it; a path that
/// does not exist is kept and fails when it is classified.
pub fn image_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(path)
                .at(path)?
                .map(|entry| entry.map(|entry| entry.path()).at(path))
                .collect::<Result<_>>()?;
            inside.retain(|file| file.is_file());
            inside.sort();
            files.extend(inside);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn read_labels(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).at(path)?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect())
}

impl Classifier {
    /// The model, labels and pipelines [`ClassifyCommand`] names; every bad input is an
    /// error here, before any image is read.
    pub fn new(command: &ClassifyCommand) -> Result<Self> {
        if command.top == 0 {
            return Err(invalid("--top", "must be at least 1"));
        }
        let (config, run_dir) = command_config(command.config, &command.overrides, true)?;
        let device = parse_device(config.train.first_device())?;
        let (model, labels) = model_and_labels(command, &config, &run_dir, &device)?;
        // "dataset" normalization values come from the run's dataset, when it is there.
        let data = config.train.data.clone().or(config.prep.output.clone());
        let stats = data
            .filter(|dir| dir.is_dir())
            .map(|dir| ProcessedDataset::open(&dir))
            .transpose()?
            .map(|data| channel_stats(data.stats()));
        let size = config.prep.size;
        let pipeline = Pipeline::new(
            "augment.eval",
            &config.augment.eval,
            [size, size],
            stats.as_ref(),
        )?;
        let [height, width] = pipeline.output_size();
        model
            .config()
            .check_input(height as usize, width as usize)?;
        Ok(Self {
            model: model.valid(),
            device,
            labels,
            resizer_size: size,
            center_crop: config.prep.center_crop,
            filter: config.prep.filter,
            pipeline,
            dtype: config.train.precision.float_dtype(),
        })
    }
}

/// The model `command` names (its weight file, else the run's checkpoint) and its class
/// labels (`--labels`, else the checkpoint's), which must be as many as its classes.
fn model_and_labels(
    command: &ClassifyCommand,
    config: &ExperimentConfig,
    run_dir: &Path,
    device: &Device,
) -> Result<(AlexNet, Vec<String>)> {
    let given_labels = command.labels.as_deref().map(read_labels).transpose()?;
    let (model, labels) = match &command.weights {
        Some(weights) => {
            let labels = given_labels.ok_or_else(|| {
                invalid("--labels", "--weights needs the class names (one a line)")
            })?;
            let model_config = config.model.clone().with_num_classes(labels.len());
            let model = model_config.init(device)?.load_pytorch(weights, false)?;
            (model, labels)
        }
        None => {
            let store = CheckpointStore::new(run_dir, 1);
            let loaded = store.load_given_or_latest(command.checkpoint.as_deref())?;
            let model = loaded.load_model(loaded.state.model.init(device)?)?;
            let labels = match given_labels {
                Some(labels) => labels,
                None if loaded.state.classes.is_empty() => (0..model.num_classes())
                    .map(|class| format!("class {class}"))
                    .collect(),
                None => loaded.state.classes.clone(),
            };
            (model, labels)
        }
    };
    if labels.len() != model.num_classes() {
        return Err(invalid(
            "--labels",
            format!(
                "lists {} classes but the model has {}",
                labels.len(),
                model.num_classes()
            ),
        ));
    }
    Ok((model, labels))
}

impl Classifier {
    /// The `top` most probable labels for the image file `path`, most probable first.
    pub fn classify(&self, path: &Path, top: usize) -> Result<Vec<Prediction>> {
        let failed = |source: LoadCause| TrainError::Image {
            path: path.to_path_buf(),
            source,
        };
        let bytes = std::fs::read(path).map_err(|error| failed(error.into()))?;
        let decoded =
            decode_rgb8(&bytes, &DecodeOptions::default()).map_err(|error| failed(error.into()))?;
        let image = SquareResizer::new(self.resizer_size, self.center_crop, self.filter)
            .resize(&decoded.image)
            .map_err(|error| failed(LoadCause::Resize(error)))?;
        // Evaluation draws nothing at random; the generator is only the pipeline's argument.
        let mut rng = alexnet_augment::sample_rng(0, 0, 0);
        let pixels = self
            .pipeline
            .apply(&image, &mut rng)
            .map_err(|error| failed(error.into()))?;
        let [height, width] = self.pipeline.output_size();
        let crops = self.pipeline.crops();
        let shape = [crops, 3, height as usize, width as usize];
        let images = Tensor::from_data(TensorData::new(pixels, shape), &self.device);
        let log_probs = self.model.forward(images, self.dtype)?;
        let classes = self.labels.len();
        let rows = average_crops(&to_host(log_probs)?, classes, crops);
        if rows.iter().any(|value| !value.is_finite()) {
            return Err(invalid(
                "model",
                format!("the model's output for {} is not finite", path.display()),
            ));
        }
        let mut ranked: Vec<(usize, f32)> = rows.iter().copied().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(ranked
            .into_iter()
            .take(top)
            .map(|(class, log_prob)| Prediction {
                label: self.labels[class].clone(),
                probability: log_prob.exp(),
            })
            .collect())
    }
}
