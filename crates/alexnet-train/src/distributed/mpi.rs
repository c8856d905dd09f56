//! [`Collective`] over MPI (rsmpi on the system's Open MPI or MPICH).
//!
//! Every exchange is two non-blocking steps polled against one time limit:
//! 1. a roll call: each rank sends every other rank the exchange's sequence number and
//!    waits for theirs, so a rank that died or hangs is named (and a rank at another
//!    exchange, which would be a bug, is caught rather than summed with the wrong data);
//! 2. the all-reduce itself (`MPI_Iallreduce`).
//!
//! Past the limit the rank prints one error line naming what it waited for and calls
//! `MPI_Abort`, which ends the job on every rank. A rank that is killed outright is
//! usually noticed first by `mpirun` itself, which then ends the others and names it.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use mpi::{
    Threading,
    collective::SystemOperation,
    environment::Universe,
    request::{Request, Scope},
    topology::SimpleCommunicator,
    traits::*,
};

use super::Collective;
use crate::error::{Result, TrainError};

/// The message tag of the roll call.
const ROLL_CALL_TAG: i32 = 0x616c;

/// MPI's environment: dropping it finalizes MPI, which waits for the other ranks. It is
/// kept here rather than in [`MpiCollective`] so that a rank that fails is not stuck in
/// `MPI_Finalize` while the others wait for it: [`finish`] finalizes after a success,
/// [`abort_job`] ends the job after a failure.
static UNIVERSE: Mutex<Option<Universe>> = Mutex::new(None);

/// A rank of the job `mpirun` started.
pub(super) struct MpiCollective {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    timeout: Duration,
    /// Exchanges so far (the roll call's token).
    sequence: u64,
    /// The receive buffers of the all-reduce, kept between exchanges.
    received: Vec<Vec<f32>>,
}

/// Finalizes MPI (every rank finished its run), if it was initialized.
pub(super) fn finish() {
    let universe = UNIVERSE.lock().ok().and_then(|mut held| held.take());
    drop(universe);
}

/// Ends the job on every rank with `code`, if MPI was initialized (else returns).
pub(super) fn abort_job(code: i32) {
    let initialized = UNIVERSE.lock().is_ok_and(|held| held.is_some());
    if initialized {
        // SAFETY: MPI is initialized and not finalized (the universe is still held);
        // MPI_Abort on the world communicator has no other precondition.
        unsafe {
            mpi::ffi::MPI_Abort(mpi::ffi::RSMPI_COMM_WORLD, code);
        }
        std::process::exit(code);
    }
}

impl MpiCollective {
    /// Initializes MPI (MPI calls come from the thread that runs the training loop only).
    pub(super) fn init(timeout: Duration) -> Result<Self> {
        let (universe, _threading) = mpi::initialize_with_threading(Threading::Funneled)
            .ok_or_else(|| TrainError::Distributed {
                rank: 0,
                reason: "MPI was already initialized in this process".into(),
            })?;
        let world = universe.world();
        let rank = usize::try_from(world.rank()).unwrap_or(0);
        let size = usize::try_from(world.size()).unwrap_or(1);
        if let Ok(mut held) = UNIVERSE.lock() {
            *held = Some(universe);
        }
        Ok(Self {
            world,
            rank,
            size,
            timeout,
            sequence: 0,
            received: Vec::new(),
        })
    }

    /// Prints why this rank gives up and ends the job on every rank.
    fn give_up(&self, reason: &str) -> ! {
        eprintln!(
            "error: rank {}: {reason}; ending the job on every rank",
            self.rank
        );
        self.world.abort(1)
    }

    /// Polls `pending` until every request completes; past `deadline`, gives up naming
    /// what is still pending through `describe`.
    fn complete<'a, B: ?Sized + 'a, S: Scope<'a>>(
        &self,
        mut pending: Vec<(usize, Request<'a, B, S>)>,
        deadline: Instant,
        describe: impl Fn(&[usize]) -> String,
    ) {
        let mut spins = 0u32;
        while !pending.is_empty() {
            pending = pending
                .into_iter()
                .filter_map(|(peer, request)| request.test().err().map(|r| (peer, r)))
                .collect();
            if pending.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                let peers: Vec<usize> = pending.iter().map(|(peer, _)| *peer).collect();
                self.give_up(&describe(&peers));
            }
            // Spin briefly (MPI progresses the transfer inside `test`), then back off so a
            // rank waiting for a slow one does not burn its core.
            spins = spins.saturating_add(1);
            if spins < 20_000 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }

    /// Step 1 of an exchange: every rank hears from every other one within the limit.
    fn roll_call(&mut self, what: &str) {
        self.sequence += 1;
        let token = self.sequence;
        let deadline = Instant::now() + self.timeout;
        let peers: Vec<usize> = (0..self.size).filter(|&p| p != self.rank).collect();
        let mut heard = vec![0u64; peers.len()];
        let timeout = self.timeout.as_secs_f64();
        mpi::request::scope(|scope| {
            let sends: Vec<_> = peers
                .iter()
                .map(|&peer| {
                    let process = self.world.process_at_rank(peer as i32);
                    (
                        peer,
                        process.immediate_send_with_tag(scope, &token, ROLL_CALL_TAG),
                    )
                })
                .collect();
            let receives: Vec<_> = peers
                .iter()
                .zip(heard.iter_mut())
                .map(|(&peer, slot)| {
                    let process = self.world.process_at_rank(peer as i32);
                    (
                        peer,
                        process.immediate_receive_into_with_tag(scope, slot, ROLL_CALL_TAG),
                    )
                })
                .collect();
            self.complete(receives, deadline, |missing| {
                format!(
                    "no word from {} within {timeout} s at exchange #{token} ({what}): it died or hangs",
                    rank_list(missing)
                )
            });
            self.complete(sends, deadline, |missing| {
                format!(
                    "{} did not take this rank's message within {timeout} s at exchange #{token} ({what}): it died or hangs",
                    rank_list(missing)
                )
            });
        });
        if let Some((peer, seen)) = peers.iter().zip(&heard).find(|(_, seen)| **seen != token) {
            self.give_up(&format!(
                "rank {peer} is at exchange #{seen} while this rank is at #{token} ({what}): the ranks disagree on what to exchange"
            ));
        }
    }
}

/// `rank 1` or `ranks 1, 3`.
fn rank_list(ranks: &[usize]) -> String {
    let list: Vec<String> = ranks.iter().map(usize::to_string).collect();
    match ranks.len() {
        1 => format!("rank {}", list[0]),
        _ => format!("ranks {}", list.join(", ")),
    }
}

impl Collective for MpiCollective {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn all_reduce_f32(&mut self, buffers: &mut [Vec<f32>], what: &str) -> Result<()> {
        if self.size == 1 {
            return Ok(());
        }
        self.roll_call(what);
        let deadline = Instant::now() + self.timeout;
        let mut received = std::mem::take(&mut self.received);
        received.resize_with(buffers.len(), Vec::new);
        for (into, from) in received.iter_mut().zip(buffers.iter()) {
            into.resize(from.len(), 0.0);
        }
        let timeout = self.timeout.as_secs_f64();
        let token = self.sequence;
        mpi::request::scope(|scope| {
            // Every buffer's reduction is in flight at once.
            let requests: Vec<_> = buffers
                .iter()
                .zip(received.iter_mut())
                .enumerate()
                .map(|(k, (send, into))| {
                    (
                        k,
                        self.world.immediate_all_reduce_into(
                            scope,
                            &send[..],
                            &mut into[..],
                            SystemOperation::sum(),
                        ),
                    )
                })
                .collect();
            self.complete(requests, deadline, |_| {
                format!(
                    "{what} (exchange #{token}) did not complete within {timeout} s although every rank reached it"
                )
            });
        });
        for (buffer, into) in buffers.iter_mut().zip(received.iter_mut()) {
            std::mem::swap(buffer, into);
        }
        self.received = received;
        Ok(())
    }

    fn all_reduce_f64(&mut self, values: &mut [f64], what: &str) -> Result<()> {
        if self.size == 1 {
            return Ok(());
        }
        self.roll_call(what);
        let deadline = Instant::now() + self.timeout;
        let mut sums = vec![0.0f64; values.len()];
        let timeout = self.timeout.as_secs_f64();
        let token = self.sequence;
        mpi::request::scope(|scope| {
            let request = self.world.immediate_all_reduce_into(
                scope,
                &values[..],
                &mut sums[..],
                SystemOperation::sum(),
            );
            self.complete(vec![(0, request)], deadline, |_| {
                format!(
                    "{what} (exchange #{token}) did not complete within {timeout} s although every rank reached it"
                )
            });
        });
        values.copy_from_slice(&sums);
        Ok(())
    }
}
