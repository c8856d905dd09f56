//! Saving and loading weights in Burn's burnpack format.

use std::path::Path;

use burn::module::Module;
use burn::prelude::*;
use burn::store::ModuleRecord;

use crate::{
    config::AlexNetConfig,
    error::{ModelError, Result},
    model::AlexNet,
};

fn record_error(path: &Path, reason: impl ToString) -> ModelError {
    ModelError::Record {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

impl AlexNet {
    /// Writes the weights (and BatchNorm running statistics) to a burnpack file.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.clone()
            .save_file(path)
            .map_err(|error| record_error(path, error))
    }

    /// Serialises the weights into a [`ModuleRecord`] (for checkpoints holding more).
    pub fn to_record(&self) -> ModuleRecord {
        self.clone().into_record()
    }

    /// Applies a record; an error (not a panic) when it does not fit this network, for
    /// example weights saved for another number of classes.
    pub fn apply_record(self, record: ModuleRecord, source: &Path) -> Result<Self> {
        self.try_load_record(record)
            .map_err(|error| record_error(source, error))
    }
}

impl AlexNetConfig {
    /// Builds the network on `device` and loads its weights from `path`.
    pub fn load(&self, path: &Path, device: &Device) -> Result<AlexNet> {
        let record = ModuleRecord::load(path).map_err(|error| record_error(path, error))?;
        self.init(device)?.apply_record(record, path)
    }
}
