//! Taking a trained model to PyTorch: its weights as safetensors with PyTorch's key
//! names (torchvision's or the original's), and its class labels.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use alexnet_model::KeyLayout;

use crate::{
    checkpoint::CheckpointStore,
    device::{DEFAULT_DEVICE, parse_device},
    error::{Result, invalid},
    io::write_atomic,
};

/// What the `export` example asks for.
#[derive(Debug, Clone)]
pub struct ExportCommand {
    /// The run whose latest checkpoint is exported (`--run-dir`).
    pub run_dir: Option<PathBuf>,
    /// A checkpoint folder instead of the run's latest (`--checkpoint`).
    pub checkpoint: Option<PathBuf>,
    /// The safetensors file to write (`--out`); the labels go beside it
    /// ([`categories_path`]).
    pub out: PathBuf,
}

/// What [`export_command`] wrote.
#[derive(Debug, Clone)]
pub struct ExportReport {
    /// The safetensors file.
    pub weights: PathBuf,
    /// The class labels, one a line in class-id order.
    pub categories: PathBuf,
    /// Whose key names the file uses.
    pub layout: KeyLayout,
    /// The checkpoint's epoch.
    pub epoch: usize,
    /// Number of classes.
    pub classes: usize,
}

impl std::fmt::Display for ExportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "wrote {} ({:?} key names, epoch {}, {} classes) and {}",
            self.weights.display(),
            self.layout,
            self.epoch,
            self.classes,
            self.categories.display()
        )
    }
}

/// Where the labels of an export to `weights` go: `model.safetensors` →
/// `model.categories.txt`.
pub fn categories_path(weights: &Path) -> PathBuf {
    weights.with_extension("categories.txt")
}

/// Writes a checkpoint's weights as safetensors with PyTorch's key names
/// ([`alexnet_model::AlexNet::save_safetensors`]; the header's metadata holds the
/// variant, epoch and labels) and its labels as text. Nothing is replaced: an existing
/// output is an error before anything is written.
pub fn export_command(command: &ExportCommand) -> Result<ExportReport> {
    let weights = command.out.clone();
    let categories = categories_path(&weights);
    for path in [&weights, &categories] {
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(invalid(
                "--out",
                format!("{} already exists (nothing is overwritten)", path.display()),
            ));
        }
    }
    let loaded = match (&command.checkpoint, &command.run_dir) {
        (Some(checkpoint), _) => CheckpointStore::load(checkpoint)?,
        (None, Some(run_dir)) => CheckpointStore::new(run_dir, 1).load_given_or_latest(None)?,
        (None, None) => {
            return Err(invalid(
                "--run-dir",
                "say which model to export: --run-dir R or --checkpoint P",
            ));
        }
    };
    let state = &loaded.state;
    let device = parse_device(DEFAULT_DEVICE)?;
    let model = loaded.load_model(state.model.init(&device)?)?;
    let mut metadata = BTreeMap::new();
    let variant = serde_json::to_value(state.model.variant)
        .ok()
        .and_then(|value| value.as_str().map(str::to_string))
        .unwrap_or_default();
    metadata.insert("alexnet.variant".to_string(), variant);
    metadata.insert("alexnet.epoch".to_string(), state.epoch.to_string());
    metadata.insert(
        "alexnet.categories".to_string(),
        serde_json::to_string(&state.classes).unwrap_or_default(),
    );
    model.save_safetensors(&weights, &metadata)?;
    let labels: String = state
        .classes
        .iter()
        .map(|label| format!("{label}\n"))
        .collect();
    write_atomic(&categories, labels.as_bytes())?;
    Ok(ExportReport {
        weights,
        categories,
        layout: model.key_layout(),
        epoch: state.epoch,
        classes: model.num_classes(),
    })
}
