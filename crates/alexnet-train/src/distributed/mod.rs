//! Data-parallel training over several processes (ranks): each rank computes the
//! gradients of its contiguous share of every global batch, the gradients are summed
//! across ranks in a few fused buffers, and every rank takes the same optimizer step.
//!
//! The exchange itself sits behind [`Collective`], so that a transport other than MPI
//! (NCCL for GPU devices, see docs/design.md) can be added without touching the training
//! loop. [`ProcessGroup`] builds what the loop needs on top of it: batch shares, the
//! gradient all-reduce, rank 0's parameters and BatchNorm statistics on every rank, and
//! summed metrics.
//!
//! ```no_run
//! use alexnet_train::distributed::{DistributedConfig, ProcessGroup};
//!
//! // One process: a group of size 1 whose exchanges do nothing.
//! let group = ProcessGroup::connect(&DistributedConfig::default())?;
//! assert_eq!((group.rank(), group.size()), (0, 1));
//! assert_eq!(group.share(9), 0..9);
//! # Ok::<(), alexnet_train::TrainError>(())
//! ```

#[cfg(feature = "mpi")]
mod mpi;

mod config;
mod fused;
mod group;
#[cfg(test)]
mod tests;

pub use config::{DistributedBackend, DistributedConfig};
pub use group::{ProcessGroup, ReducedGradients};

use crate::error::{Result, invalid};

/// The exchanges data-parallel training needs between ranks. Every rank calls the same
/// methods in the same order with buffers of the same lengths.
///
/// An implementation that cannot complete an exchange because a rank died or hangs ends
/// the job on every rank within its time limit, naming the rank; it does not return.
pub trait Collective {
    /// This process's rank, from 0.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn size(&self) -> usize;
    /// Replaces every buffer by its element-wise sum over the ranks. `what` names the
    /// exchange in a time-out message.
    fn all_reduce_f32(&mut self, buffers: &mut [Vec<f32>], what: &str) -> Result<()>;
    /// [`Collective::all_reduce_f32`] for a few `f64` values (counts and sums).
    fn all_reduce_f64(&mut self, values: &mut [f64], what: &str) -> Result<()>;
}

/// One process: every exchange is the identity.
#[derive(Debug, Default, Clone, Copy)]
pub struct Local;

impl Collective for Local {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn all_reduce_f32(&mut self, _buffers: &mut [Vec<f32>], _what: &str) -> Result<()> {
        Ok(())
    }

    fn all_reduce_f64(&mut self, _values: &mut [f64], _what: &str) -> Result<()> {
        Ok(())
    }
}

/// Ends this rank's part of a distributed job (one process: returns `result`). After a
/// success MPI is finalized; a failure is printed as one `error: rank N: …` line and
/// ends the job on every rank at once (`MPI_Abort`), rather than leaving the others to
/// wait for this rank until their time limit.
pub fn finish<T>(rank: usize, result: Result<T>) -> Result<T> {
    #[cfg(feature = "mpi")]
    match &result {
        Ok(_) => mpi::finish(),
        Err(error) => {
            let message = error.to_string();
            if message.starts_with("rank ") {
                eprintln!("error: {message}");
            } else {
                eprintln!("error: rank {rank}: {message}");
            }
            mpi::abort_job(1);
        }
    }
    let _ = rank;
    result
}

pub use crate::launcher::launcher_rank;

#[cfg(feature = "mpi")]
pub(crate) fn connect_mpi(config: &DistributedConfig) -> Result<Box<dyn Collective>> {
    if launcher_rank().is_none() {
        return Err(invalid(
            "--distributed",
            "`mpi` runs one process per rank, started by mpirun: mpirun -np N target/release/examples/train_caltech --distributed mpi ...",
        ));
    }
    Ok(Box::new(mpi::MpiCollective::init(
        std::time::Duration::from_secs_f64(config.timeout_secs),
    )?))
}

#[cfg(not(feature = "mpi"))]
pub(crate) fn connect_mpi(_config: &DistributedConfig) -> Result<Box<dyn Collective>> {
    Err(invalid(
        "--distributed",
        "`mpi` needs a build with the `mpi` feature: cargo build --release --features mpi --example train_caltech (Open MPI installed: apt-get install libopenmpi-dev openmpi-bin libclang-dev)",
    ))
}
