//! What the example binaries share: the memory allocator (the integration tests too),
//! and how a failed run ends.
//!
//! Burn allocates every intermediate tensor afresh, tens of megabytes each at 227×227.
//! With glibc's allocator those buffers go back to the kernel when freed and are faulted
//! in, page by page, on the next step; mimalloc keeps and reuses them. See
//! docs/benchmarks.md for the measured effect.

use libmimalloc_sys::{mi_option_get, mi_option_set, mi_option_t};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's option enum (the same index in its v2 and v3).
pub const PURGE_DELAY: mi_option_t = 15;
/// The bundled mimalloc v3's default purge delay, in milliseconds.
pub const DEFAULT_PURGE_DELAY_MS: std::ffi::c_long = 1000;

/// Never returns freed memory to the operating system. mimalloc by default purges memory
/// unused for a second, and a CPU training step takes seconds, so every step would
/// fault its buffers in again (13 % of a flex step in the kernel's page clearing). The
/// process then keeps its peak footprint, which is what a training run holds anyway.
///
/// A `MIMALLOC_PURGE_DELAY` set in the environment wins.
pub fn keep_freed_memory() {
    set_purge_delay(-1);
}

/// Sets mimalloc's purge delay to `ms` (-1: never purge), unless the environment sets
/// `MIMALLOC_PURGE_DELAY`.
fn set_purge_delay(ms: std::ffi::c_long) {
    // SAFETY: reading and setting an integer option has no preconditions; mimalloc reads
    // this one each time it considers a purge.
    unsafe {
        // The default doubles as a check that `PURGE_DELAY` is the option we mean.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none()
            && mi_option_get(PURGE_DELAY) == DEFAULT_PURGE_DELAY_MS
        {
            mi_option_set(PURGE_DELAY, ms);
        }
    }
}

/// Returns freed memory to the operating system at once (mimalloc's purge delay 0), for
/// preprocessing: each job decodes one image at a time into a buffer of up to
/// `3 · prep.max_pixels` bytes and frees it, and a freed 300 MB buffer kept for the
/// default second would raise the peak above the bound docs/design.md states (measured
/// with 100-megapixel JPEGs at `--jobs 2`: 669 MiB with this, 784–902 MiB with the
/// default delay, 978 MiB when freed memory is kept).
///
/// A `MIMALLOC_PURGE_DELAY` set in the environment wins.
#[allow(dead_code)]
pub fn return_freed_memory() {
    set_purge_delay(0);
}

/// Runs an example's `run` with the allocator set to keep freed memory (training and
/// benchmarks); an error is printed as one `error: …` line and exits with status 1.
#[allow(dead_code)] // the integration tests include this module for the allocator only
pub fn main(run: impl FnOnce() -> anyhow::Result<()>) {
    keep_freed_memory();
    finish(run());
}

/// Ends an example: an error is printed as one `error: …` line and exits with status 1.
#[allow(dead_code)]
pub fn finish(result: anyhow::Result<()>) {
    if let Err(error) = result {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}
