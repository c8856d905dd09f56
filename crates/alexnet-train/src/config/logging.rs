//! The `[logging]` section.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};

/// The `[logging]` section (the original's LOGFILE / LOGLEVEL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// Log file name inside the run directory.
    pub file: String,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
    /// Every this many training steps, the loss, learning rate, images/s and the time
    /// spent waiting for data go to the log and to TensorBoard (`tensorboard/steps`);
    /// 0 turns it off.
    pub every_steps: usize,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            file: "train.log".into(),
            level: "info".into(),
            every_steps: 50,
        }
    }
}

impl LoggingConfig {
    /// The level as a tracing filter; an error names the key.
    pub fn level_filter(&self) -> Result<tracing::Level> {
        self.level.parse().map_err(|_| {
            invalid(
                "logging.level",
                format!(
                    "`{}` is not one of error, warn, info, debug, trace",
                    self.level
                ),
            )
        })
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        self.level_filter()?;
        let plain = Path::new(&self.file).components().count() == 1
            && !self.file.is_empty()
            && self.file != "..";
        if !plain {
            return Err(invalid(
                "logging.file",
                format!(
                    "`{}` must be a plain file name (it goes in the run directory)",
                    self.file
                ),
            ));
        }
        Ok(())
    }
}
