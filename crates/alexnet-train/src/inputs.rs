//! What a run reads, checked against each other: the prepared dataset, the model config
//! with the dataset's classes, the two augmentation pipelines, and a checkpoint's classes.
//! Training, evaluation and classification share these checks.

use std::{path::Path, sync::Arc};

use alexnet_augment::Pipeline;
use alexnet_model::AlexNetConfig;
use alexnet_prep::{CATEGORIES_CSV, ProcessedDataset, Split};

use crate::{
    config::ExperimentConfig,
    data::{ImageDataset, channel_stats},
    error::{Result, TrainError, invalid},
};

/// The split a run chooses its best checkpoint and its schedule (ReduceLROnPlateau) on.
/// Training never reads the test split, so test numbers are of images nothing was
/// chosen on.
pub const SELECTION_SPLIT: Split = Split::Val;

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

/// What a run reads: the dataset and its two pipelines.
pub(crate) struct Inputs {
    /// The dataset.
    pub data: ProcessedDataset,
    /// The model config, its number of classes resolved from the dataset.
    pub model_config: AlexNetConfig,
    /// Training augmentation.
    pub train_pipeline: Arc<Pipeline>,
    /// Evaluation pipeline.
    pub eval_pipeline: Arc<Pipeline>,
    /// The training split.
    pub train_set: ImageDataset,
    /// The validation split.
    pub val_set: ImageDataset,
}

impl Inputs {
    /// Opens the prepared dataset `data_dir` and builds what a run of `config` reads from
    /// it; a batch size the training split cannot fill is an error.
    pub(crate) fn open(config: &ExperimentConfig, data_dir: &Path) -> Result<Self> {
        let data = ProcessedDataset::open(data_dir)?;
        let model_config = resolve_model(&config.model, &data)?;
        let (train_pipeline, eval_pipeline) = build_pipelines(config, &data, &model_config)?;
        let train_set = ImageDataset::new(&data, Split::Train);
        let val_set = ImageDataset::new(&data, SELECTION_SPLIT);
        let batch_size = config.train.batch_size;
        if batch_size > train_set.items().len() {
            return Err(invalid(
                "train.batch_size",
                format!(
                    "{batch_size} is larger than the {} training images; the last partial batch is dropped, so no batch would be formed",
                    train_set.items().len()
                ),
            ));
        }
        Ok(Self {
            data,
            model_config,
            train_pipeline,
            eval_pipeline,
            train_set,
            val_set,
        })
    }
}
