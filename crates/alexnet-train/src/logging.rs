//! Logging to the console and to the run's log file (the same lines), and progress bars
//! that log lines never garble.

use std::{
    fs,
    io::{IsTerminal, Write},
    path::Path,
    sync::{Arc, Mutex, OnceLock},
};

use indicatif::ProgressBar;
use tracing_subscriber::{Layer, filter::LevelFilter, fmt::MakeWriter, layer::SubscriberExt};

use crate::{
    config::LoggingConfig,
    error::{IoContext, Result},
};

/// The bar currently drawn, if any; console log lines are printed around it.
static ACTIVE_BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Put before every console line (`[rank 1] ` in a distributed run, whose ranks share
/// mpirun's console); the log file has none.
static CONSOLE_PREFIX: OnceLock<String> = OnceLock::new();

/// Starts every console log line of this process with `prefix` (set once).
pub fn set_console_prefix(prefix: &str) {
    let _ = CONSOLE_PREFIX.set(prefix.to_string());
}

/// `buf` with the console prefix, if one is set.
fn prefixed(buf: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    match CONSOLE_PREFIX.get() {
        Some(prefix) => {
            let mut line = prefix.as_bytes().to_vec();
            line.extend_from_slice(buf);
            std::borrow::Cow::Owned(line)
        }
        None => std::borrow::Cow::Borrowed(buf),
    }
}

/// Writes to stderr, suspending the active progress bar while it does.
#[derive(Clone, Copy, Default)]
struct ConsoleWriter;

impl Write for ConsoleWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = ACTIVE_BAR.lock().ok().and_then(|bar| bar.clone());
        // The formatter hands over one whole event per call.
        let line = prefixed(buf);
        match bar {
            Some(bar) => bar
                .suspend(|| std::io::stderr().write_all(&line))
                .map(|()| buf.len()),
            None => std::io::stderr().write_all(&line).map(|()| buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for ConsoleWriter {
    type Writer = ConsoleWriter;
    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

/// Appends to a writer shared by the threads that log: the run's log file, or the
/// buffer [`console`] keeps. A poisoned lock drops the line rather than the run.
struct SharedWriter<W>(Arc<Mutex<W>>);

impl<W> Clone for SharedWriter<W> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<W: Write> Write for SharedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock() {
            Ok(mut inner) => inner.write_all(buf).map(|()| buf.len()),
            Err(_) => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.0.lock() {
            Ok(mut inner) => inner.flush(),
            Err(_) => Ok(()),
        }
    }
}

impl<'a, W: Write + Send + 'static> MakeWriter<'a> for SharedWriter<W> {
    type Writer = SharedWriter<W>;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// A layer writing plain lines (no colour, no target) at `level` and above to `writer`.
fn plain_layer<S, W>(writer: SharedWriter<W>, level: LevelFilter) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    W: Write + Send + 'static,
{
    tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_target(false)
        .with_ansi(false)
        .with_filter(level)
}

/// Keeps the logging set up by [`init`] alive.
pub struct LogGuard {
    _scoped: Option<tracing::subscriber::DefaultGuard>,
}

/// The stderr layer: log lines above the progress bar, coloured on a terminal.
fn console_layer<S>(level: LevelFilter) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(ConsoleWriter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(level)
}

/// Installs `subscriber` for the whole process if none is yet, else for the calling
/// thread until the guard is dropped (tests running several runs in one process).
fn install<S>(subscriber: S) -> LogGuard
where
    S: tracing::Subscriber + Send + Sync + 'static,
{
    if tracing::dispatcher::has_been_set() {
        return LogGuard {
            _scoped: Some(tracing::subscriber::set_default(subscriber)),
        };
    }
    // Only a concurrent first call can win this race; its subscriber then serves.
    let _ = tracing::subscriber::set_global_default(subscriber);
    LogGuard { _scoped: None }
}

/// Sends log lines at `config.level` and above to stderr and, when `run_dir` is given,
/// to `run_dir/<config.file>` (appended, so a resumed run keeps the earlier lines).
pub fn init(config: &LoggingConfig, run_dir: Option<&Path>) -> Result<LogGuard> {
    init_after(config, run_dir, &[])
}

/// [`init`], first appending `earlier` (lines already logged) to the log file.
fn init_after(config: &LoggingConfig, run_dir: Option<&Path>, earlier: &[u8]) -> Result<LogGuard> {
    config.validate()?;
    let level = LevelFilter::from_level(config.level_filter()?);
    let file_layer = match run_dir {
        Some(dir) => {
            fs::create_dir_all(dir).at(dir)?;
            let path = dir.join(&config.file);
            let mut file = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .at(&path)?;
            file.write_all(earlier).at(&path)?;
            Some(plain_layer(SharedWriter(Arc::new(Mutex::new(file))), level))
        }
        None => None,
    };
    let subscriber = tracing_subscriber::registry()
        .with(console_layer(level))
        .with(file_layer);
    Ok(install(subscriber))
}

/// Console logging for the checks before a run, which must not create its log file when
/// they fail. What it logs is also kept, so that [`ConsoleLog::into_file`] can write it
/// to the run's log file once the run starts: every warning reaches the file.
pub struct ConsoleLog {
    config: LoggingConfig,
    kept: Arc<Mutex<Vec<u8>>>,
    _scoped: tracing::subscriber::DefaultGuard,
}

/// Console logging for the calling thread until [`ConsoleLog::into_file`] or drop, its
/// lines kept for the log file.
pub fn console(config: &LoggingConfig) -> Result<ConsoleLog> {
    config.validate()?;
    let level = LevelFilter::from_level(config.level_filter()?);
    let kept = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::registry()
        .with(console_layer(level))
        .with(plain_layer(SharedWriter(kept.clone()), level));
    Ok(ConsoleLog {
        config: config.clone(),
        kept,
        _scoped: tracing::subscriber::set_default(subscriber),
    })
}

impl ConsoleLog {
    /// Ends console-only logging and starts [`init`]'s, first appending the lines logged
    /// so far to `run_dir`'s log file.
    pub fn into_file(self, run_dir: &Path) -> Result<LogGuard> {
        let ConsoleLog {
            config,
            kept,
            _scoped,
        } = self;
        drop(_scoped);
        let kept = kept.lock().map(|kept| kept.clone()).unwrap_or_default();
        init_after(&config, Some(run_dir), &kept)
    }
}

/// A progress bar drawn on stderr when it is a terminal (hidden otherwise, so piped
/// output holds only log lines), registered so log lines print above it.
pub fn progress_bar(length: u64, template: &str) -> ProgressBar {
    track(alexnet_prep::styled_progress_bar(length, template, ""))
}

/// Registers `bar` (one made elsewhere, such as prep's) as the one log lines print
/// above, until [`finish_progress`].
pub fn track(bar: ProgressBar) -> ProgressBar {
    if let Ok(mut active) = ACTIVE_BAR.lock() {
        *active = Some(bar.clone());
    }
    bar
}

/// Clears the bar and unregisters it.
pub fn finish_progress(bar: &ProgressBar) {
    bar.finish_and_clear();
    if let Ok(mut active) = ACTIVE_BAR.lock() {
        *active = None;
    }
}
