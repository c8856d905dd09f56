//! The `[distributed]` section, beside the module it configures.

use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};

/// How a run spreads over processes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DistributedBackend {
    /// One process (its devices may still be several: `train.device`).
    #[default]
    None,
    /// One process per rank, started by `mpirun`, gradients all-reduced through MPI.
    Mpi,
}

impl std::str::FromStr for DistributedBackend {
    type Err = String;
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        match text {
            "none" => Ok(Self::None),
            "mpi" => Ok(Self::Mpi),
            other => Err(format!(
                "unknown distributed backend `{other}` (expected none or mpi)"
            )),
        }
    }
}

/// The `[distributed]` section: data-parallel training over several processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DistributedConfig {
    /// `none` or `mpi`.
    pub backend: DistributedBackend,
    /// Seconds a rank waits at an exchange for the others (a rank that died or hangs)
    /// before it ends the job on every rank. It must exceed the longest time one rank
    /// works alone: rank 0 writing a checkpoint or, at start-up, the demo dataset.
    pub timeout_secs: f64,
    /// Gradients are all-reduced in fused buffers of about this many MiB: a buffer is
    /// closed once it holds at least this much, so it can exceed it by its last
    /// parameter (a large parameter is not split, nor given a buffer of its own).
    pub bucket_mib: usize,
}

impl Default for DistributedConfig {
    fn default() -> Self {
        Self {
            backend: DistributedBackend::None,
            timeout_secs: 600.0,
            bucket_mib: 64,
        }
    }
}

impl DistributedConfig {
    /// Checks the values; errors name the key.
    pub fn validate(&self) -> Result<()> {
        if !(self.timeout_secs.is_finite() && self.timeout_secs > 0.0) {
            return Err(invalid(
                "distributed.timeout_secs",
                format!("{} is not a positive number of seconds", self.timeout_secs),
            ));
        }
        if self.bucket_mib == 0 {
            return Err(invalid("distributed.bucket_mib", "must be at least 1"));
        }
        Ok(())
    }
}
