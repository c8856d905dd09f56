//! PyTorch weights in and out: torchvision's `alexnet` state_dict, the original's
//! checkpoints (its `model.py` `nn.Sequential` keys, inside the dict its `train.py`
//! saves), and safetensors files with either's key names.
//!
//! The file's tensors are read with burn-store (`PytorchStore` for `torch.save` files,
//! `SafetensorsStore`) and renamed here, so that every mismatch names the file's own key.

use std::{
    collections::{BTreeMap, HashMap},
    io::Read,
    path::Path,
};

use burn::store::{
    BurnToPyTorchAdapter, FloatCastAdapter, KeyRemapper, ModuleAdapter, ModuleSnapshot,
    ModuleStore, PathFilter, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
    burn_pack::Tensor as Packed,
};
use burn::tensor::DType;

use crate::{
    config::Variant,
    error::{ModelError, Result},
    model::AlexNet,
};

/// Whose key names a weight file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLayout {
    /// `torchvision.models.alexnet`: `features.0.weight` … `classifier.6.bias`.
    Torchvision,
    /// The original's `AlexNetModel`: one `nn.Sequential` named `model`, so
    /// `model.0.weight` (conv1) … `model.29.bias` (the last layer), BatchNorm layers
    /// with PyTorch's `weight`, `bias`, `running_mean`, `running_var`.
    Original,
    /// This crate's own module paths (`conv1.conv.weight`, `conv1.norm.gamma`): the
    /// paper's network, which has no PyTorch counterpart.
    Burn,
}

/// (our module path, the file's prefix) for each layer with weights.
#[rustfmt::skip]
const TORCHVISION_KEYS: [(&str, &str); 8] = [
    ("conv1.conv", "features.0"), ("conv2.conv", "features.3"), ("conv3.conv", "features.6"),
    ("conv4.conv", "features.8"), ("conv5.conv", "features.10"),
    ("fc1", "classifier.1"), ("fc2", "classifier.4"), ("fc3", "classifier.6"),
];

/// The original's `nn.Sequential` indices (AlexNet/model.py: conv, ReLU, BatchNorm,
/// max-pool, Dropout, …, Flatten, Linear, ReLU, BatchNorm1d, Dropout, …).
#[rustfmt::skip]
const ORIGINAL_KEYS: [(&str, &str); 15] = [
    ("conv1.conv", "model.0"), ("conv1.norm", "model.2"),
    ("conv2.conv", "model.5"), ("conv2.norm", "model.7"),
    ("conv3.conv", "model.10"), ("conv3.norm", "model.12"),
    ("conv4.conv", "model.13"), ("conv4.norm", "model.15"),
    ("conv5.conv", "model.16"), ("conv5.norm", "model.18"),
    ("fc1", "model.22"), ("norm1", "model.24"),
    ("fc2", "model.26"), ("norm2", "model.28"),
    ("fc3", "model.29"),
];

/// Keys a PyTorch BatchNorm writes that hold no weight (its update counter).
const IGNORED_SUFFIX: &str = ".num_batches_tracked";

/// Where a checkpoint dict keeps the model: the original's `train.py` saves
/// `{"epoch", "model_state_dict", "optimizer_state_dict", "scheduler"}`.
const STATE_DICT_ENTRIES: [&str; 2] = ["model_state_dict", "state_dict"];

impl KeyLayout {
    /// The layout PyTorch users have for `variant`'s network.
    pub fn of(variant: Variant) -> Self {
        match variant {
            Variant::Seed => Self::Original,
            Variant::Torchvision => Self::Torchvision,
            Variant::Paper => Self::Burn,
        }
    }

    fn prefixes(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Torchvision => &TORCHVISION_KEYS,
            Self::Original => &ORIGINAL_KEYS,
            Self::Burn => &[],
        }
    }

    /// The file's key for one of our module paths after the PyTorch adapter (BatchNorm's
    /// `gamma`/`beta` already `weight`/`bias`).
    pub fn file_key(self, module_path: &str) -> String {
        rename(module_path, self.prefixes().iter().copied())
    }

    /// Our module path for a file key (`module.` from `nn.DataParallel` dropped), or the
    /// key itself when no layer claims it.
    fn module_path(self, file_key: &str) -> String {
        let key = file_key.strip_prefix("module.").unwrap_or(file_key);
        rename(
            key,
            self.prefixes().iter().map(|&(ours, theirs)| (theirs, ours)),
        )
    }
}

/// `path` with the first matching `from.` prefix replaced by `to.`.
fn rename<'a>(path: &str, pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    for (from, to) in pairs {
        if let Some(rest) = path
            .strip_prefix(from)
            .and_then(|rest| rest.strip_prefix('.'))
        {
            return format!("{to}.{rest}");
        }
    }
    path.to_string()
}

fn weights_error(path: &Path, reason: impl ToString) -> ModelError {
    ModelError::Weights {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// What kind of weight file `path` is, from its first bytes.
enum FileKind {
    /// `torch.save` (a zip archive, or the legacy pickle).
    Torch,
    Safetensors,
}

fn sniff(path: &Path) -> Result<FileKind> {
    let mut head = [0u8; 9];
    let mut file = std::fs::File::open(path).map_err(|error| weights_error(path, error))?;
    let read = file
        .read(&mut head)
        .map_err(|error| weights_error(path, error))?;
    match head[..read] {
        [b'P', b'K', ..] | [0x80, ..] => Ok(FileKind::Torch),
        // safetensors: an 8-byte little-endian header length, then the JSON header.
        [_, _, _, _, _, _, _, _, b'{'] => Ok(FileKind::Safetensors),
        _ => Err(weights_error(
            path,
            "is neither a PyTorch file (torch.save) nor safetensors",
        )),
    }
}

/// The file's tensors by key, the model's state dict picked out of a checkpoint dict.
fn read_tensors(path: &Path) -> Result<Vec<Packed>> {
    let tensors = match sniff(path)? {
        FileKind::Torch => {
            let open = |entry: Option<&str>| {
                let store = PytorchStore::from_file(path).map_indices_contiguous(false);
                match entry {
                    Some(entry) => store.with_top_level_key(entry),
                    None => store,
                }
            };
            let mut store = open(None);
            let keys = store.keys().map_err(|error| weights_error(path, error))?;
            let entry = STATE_DICT_ENTRIES
                .into_iter()
                .find(|entry| keys.iter().any(|key| key.starts_with(&format!("{entry}."))));
            if entry.is_some() {
                store = open(entry);
            }
            store
                .get_all_tensors()
                .map_err(|error| weights_error(path, error))?
                .values()
                .cloned()
                .collect::<Vec<_>>()
        }
        FileKind::Safetensors => SafetensorsStore::from_file(path)
            .map_indices_contiguous(false)
            .get_all_tensors()
            .map_err(|error| weights_error(path, error))?
            .values()
            .cloned()
            .collect(),
    };
    if tensors.is_empty() {
        return Err(weights_error(path, "holds no tensors"));
    }
    Ok(tensors)
}

/// Dims as PyTorch prints them.
fn dims(shape: &[usize]) -> String {
    let inner: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("[{}]", inner.join(", "))
}

impl AlexNet {
    /// The key names this network's weights have in PyTorch.
    pub fn key_layout(&self) -> KeyLayout {
        KeyLayout::of(self.config().variant)
    }

    /// Loads weights written by PyTorch (`torch.save` of a state_dict or of a checkpoint
    /// dict holding `model_state_dict`, or safetensors) with [`Self::key_layout`]'s key
    /// names: torchvision's for [`Variant::Torchvision`], the original's for
    /// [`Variant::Seed`]. Every weight must be in the file with this network's shape,
    /// and every tensor of the file must be a weight (as PyTorch's strict
    /// `load_state_dict`); the error names the file's key and both shapes.
    ///
    /// With `new_classifier`, the last layer keeps its fresh initialization and the
    /// file's last layer (of any class count) is left out: fine-tuning on other classes.
    pub fn load_pytorch(mut self, path: &Path, new_classifier: bool) -> Result<Self> {
        let layout = self.key_layout();
        let mut file_keys = HashMap::new();
        let tensors: Vec<Packed> = read_tensors(path)?
            .into_iter()
            .filter(|tensor| !tensor.name.ends_with(IGNORED_SUFFIX))
            .map(|mut tensor| {
                let module_path = layout.module_path(&tensor.name);
                file_keys.insert(module_path.clone(), tensor.name.clone());
                tensor.name = module_path;
                tensor
            })
            .collect();
        let file_key = |module_path: &str| {
            file_keys
                .get(module_path)
                .cloned()
                .unwrap_or_else(|| layout.file_key(module_path))
        };
        let filter = new_classifier
            .then(|| PathFilter::new().with_predicate(|path, _| !path.starts_with("fc3.")));
        let adapter: Box<dyn ModuleAdapter> =
            Box::new(PyTorchToBurnAdapter.chain(FloatCastAdapter::to(DType::F32)));
        let result = self.apply(tensors, filter, Some(adapter), false);
        if let Some(error) = result.errors.first() {
            let reason = match error {
                burn::store::ApplyError::ShapeMismatch {
                    path: module_path,
                    expected,
                    found,
                } => {
                    let hint = if module_path.starts_with("fc3.") {
                        " (another number of classes: replace the last layer with new_classifier)"
                    } else {
                        ""
                    };
                    format!(
                        "`{}` has shape {} but this {:?} network's needs {}{hint}",
                        file_key(module_path),
                        dims(found.as_slice()),
                        self.config().variant,
                        dims(expected.as_slice())
                    )
                }
                other => other.to_string(),
            };
            return Err(weights_error(path, reason));
        }
        if let Some((module_path, _)) = result.missing.first() {
            return Err(weights_error(
                path,
                format!(
                    "`{}` is missing ({} of this {:?} network's weights are not in the file; is it a {:?} checkpoint?)",
                    file_key(module_path),
                    result.missing.len(),
                    self.config().variant,
                    layout
                ),
            ));
        }
        if let Some(module_path) = result.unused.first() {
            return Err(weights_error(
                path,
                format!(
                    "`{}` is not a weight of the {:?} network ({} such tensors in the file)",
                    file_key(module_path),
                    self.config().variant,
                    result.unused.len()
                ),
            ));
        }
        Ok(self)
    }

    /// Writes the weights (BatchNorm running statistics included) as safetensors with
    /// PyTorch's key names ([`Self::key_layout`]), loadable with
    /// `model.load_state_dict(safetensors.torch.load_file(path))`, strict. `metadata`
    /// goes into the file's header (the categories, the variant). Refuses to replace an
    /// existing file.
    pub fn save_safetensors(&self, path: &Path, metadata: &BTreeMap<String, String>) -> Result<()> {
        // The adapter renames BatchNorm's gamma/beta; the remapper then the layers. Our
        // paths are plain `[a-z0-9.]`, so escaping the dots makes them literal patterns.
        let patterns = self
            .key_layout()
            .prefixes()
            .iter()
            .map(|&(ours, theirs)| {
                (
                    format!("^{}\\.", ours.replace('.', "\\.")),
                    format!("{theirs}."),
                )
            })
            .collect();
        let remapper =
            KeyRemapper::from_patterns(patterns).map_err(|error| weights_error(path, error))?;
        let mut store = SafetensorsStore::from_file(path)
            .overwrite(false)
            .with_to_adapter(BurnToPyTorchAdapter)
            .remap(remapper);
        for (key, value) in metadata {
            store = store.metadata(key.clone(), value.clone());
        }
        self.save_into(&mut store)
            .map_err(|error| weights_error(path, error))
    }
}
