//! [`StopRequest`]: a graceful stop asked for by SIGINT (Ctrl-C) or SIGTERM (what SLURM,
//! Kubernetes and cloud preemption send before SIGKILL), polled by a long-running loop
//! at a point where it can save and leave.
//!
//! The first signal only sets the request; the loop finishes what it is doing, writes
//! what a restart needs and exits with [`StopRequest::exit_code`] (130 for SIGINT, 143
//! for SIGTERM: 128 plus the signal number, as a shell reports a process killed by it).
//! A second signal while the request stands exits at once with that code: what a
//! [`crate::Store`] has on disk is consistent at every moment, so nothing is lost that
//! the first stop had not yet saved.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

/// SIGINT's number (Ctrl-C).
pub const SIGINT: i32 = 2;
/// SIGTERM's number.
pub const SIGTERM: i32 = 15;

/// A request to stop: set by a signal once [`StopRequest::on_signals`] is installed, or
/// by [`StopRequest::request`]. Clones share the request.
#[derive(Debug, Clone, Default)]
pub struct StopRequest {
    requested: Arc<AtomicBool>,
    signal: Arc<AtomicUsize>,
}

impl StopRequest {
    /// A request nobody has made yet, that no signal sets.
    pub fn new() -> Self {
        Self::default()
    }

    /// A request that SIGINT and SIGTERM set; a second one while it stands ends the
    /// process at once with 128 + its number. Installs process-wide handlers: call it
    /// once, from a program's `main` (the examples do), not from a library.
    pub fn on_signals() -> std::io::Result<Self> {
        let stop = Self::new();
        for signal in [SIGINT, SIGTERM] {
            // The shutdown first: it sees the flag as it was before this signal.
            signal_hook::flag::register_conditional_shutdown(
                signal,
                128 + signal,
                stop.requested.clone(),
            )?;
            signal_hook::flag::register_usize(signal, stop.signal.clone(), signal as usize)?;
            signal_hook::flag::register(signal, stop.requested.clone())?;
        }
        Ok(stop)
    }

    /// Asks for a stop as `signal` would.
    pub fn request(&self, signal: i32) {
        self.signal.store(signal as usize, Ordering::SeqCst);
        self.requested.store(true, Ordering::SeqCst);
    }

    /// The signal a stop was asked for with, if one was.
    pub fn requested(&self) -> Option<i32> {
        self.requested
            .load(Ordering::SeqCst)
            .then(|| self.signal.load(Ordering::SeqCst) as i32)
    }

    /// The conventional exit status after a stop for `signal`: 128 + its number.
    pub fn exit_code(signal: i32) -> i32 {
        128 + signal
    }

    /// The signal's name (`SIGINT`, `SIGTERM`, else `signal N`).
    pub fn signal_name(signal: i32) -> String {
        match signal {
            SIGINT => "SIGINT".into(),
            SIGTERM => "SIGTERM".into(),
            other => format!("signal {other}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_shared_by_clones_and_names_its_signal() {
        let stop = StopRequest::new();
        let clone = stop.clone();
        assert_eq!(clone.requested(), None);
        stop.request(SIGTERM);
        assert_eq!(clone.requested(), Some(SIGTERM));
        assert_eq!(StopRequest::exit_code(SIGTERM), 143);
        assert_eq!(StopRequest::exit_code(SIGINT), 130);
        assert_eq!(StopRequest::signal_name(SIGINT), "SIGINT");
    }
}
