//! Fault injection for the kill and hang tests, compiled only with the `fault-injection`
//! feature (which the tests turn on): without it [`pause_point`] is empty and reads no
//! environment variable.

/// With the `fault-injection` feature: when `ALEXNET_TEST_PAUSE_AT` is `<point>@<epoch>`,
/// the process says so on stderr (with its pid) and sleeps there for
/// `ALEXNET_TEST_PAUSE_MS` (default 60 s), so that a test can SIGKILL it at that moment,
/// or watch the other ranks of a distributed run time out on it. With
/// `ALEXNET_TEST_PAUSE_RANK` only that rank pauses.
#[cfg(feature = "fault-injection")]
pub fn pause_point<P: std::fmt::Display>(point: P, epoch: usize) {
    let Ok(at) = std::env::var("ALEXNET_TEST_PAUSE_AT") else {
        return;
    };
    let other_rank = std::env::var("ALEXNET_TEST_PAUSE_RANK")
        .ok()
        .and_then(|rank| rank.parse::<usize>().ok())
        .is_some_and(|rank| Some(rank) != crate::launcher::launcher_rank());
    if !other_rank && at == format!("{point}@{epoch}") {
        let ms = std::env::var("ALEXNET_TEST_PAUSE_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(60_000);
        eprintln!("paused at {point}@{epoch} (pid {})", std::process::id());
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// Without the `fault-injection` feature: nothing (a `format_args!` point is never
/// formatted, so the training step pays nothing).
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn pause_point<P: std::fmt::Display>(_point: P, _epoch: usize) {}

/// With the `fault-injection` feature: the delay `ALEXNET_TEST_LOADER_DELAY_MS` puts on
/// every batch a loader prepares, so that a test can see the data-wait figure rise.
#[cfg(feature = "fault-injection")]
pub fn loader_delay() {
    let delay = std::env::var("ALEXNET_TEST_LOADER_DELAY_MS")
        .ok()
        .and_then(|ms| ms.parse().ok());
    if let Some(ms) = delay {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// Without the `fault-injection` feature: nothing.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn loader_delay() {}
