//! Logging to the console and to the run's log file (the same lines), and progress bars
//! that log lines never garble.

use std::{
    fs,
    io::{IsTerminal, Write},
    path::Path,
    sync::{Arc, Mutex},
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing_subscriber::{Layer, filter::LevelFilter, fmt::MakeWriter, layer::SubscriberExt};

use crate::{
    config::LoggingConfig,
    error::{IoContext, Result},
};

/// The bar currently drawn, if any; console log lines are printed around it.
static ACTIVE_BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Writes to stderr, suspending the active progress bar while it does.
#[derive(Clone, Copy, Default)]
struct ConsoleWriter;

impl Write for ConsoleWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = ACTIVE_BAR.lock().ok().and_then(|bar| bar.clone());
        match bar {
            Some(bar) => bar
                .suspend(|| std::io::stderr().write_all(buf))
                .map(|()| buf.len()),
            None => std::io::stderr().write_all(buf).map(|()| buf.len()),
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

/// Appends to the log file.
#[derive(Clone)]
struct FileWriter(Arc<Mutex<fs::File>>);

impl Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock() {
            Ok(mut file) => file.write_all(buf).map(|()| buf.len()),
            Err(_) => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.0.lock() {
            Ok(mut file) => file.flush(),
            Err(_) => Ok(()),
        }
    }
}

impl<'a> MakeWriter<'a> for FileWriter {
    type Writer = FileWriter;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
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
    config.validate()?;
    let level = LevelFilter::from_level(config.level_filter()?);
    let file_layer = match run_dir {
        Some(dir) => {
            fs::create_dir_all(dir).at(dir)?;
            let path = dir.join(&config.file);
            let file = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .at(&path)?;
            Some(
                tracing_subscriber::fmt::layer()
                    .with_writer(FileWriter(Arc::new(Mutex::new(file))))
                    .with_target(false)
                    .with_ansi(false)
                    .with_filter(level),
            )
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

/// Appends to a buffer in memory.
#[derive(Clone)]
struct MemoryWriter(Arc<Mutex<Vec<u8>>>);

impl Write for MemoryWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut kept) = self.0.lock() {
            kept.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for MemoryWriter {
    type Writer = MemoryWriter;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Console logging for the calling thread until [`ConsoleLog::into_file`] or drop, its
/// lines kept for the log file.
pub fn console(config: &LoggingConfig) -> Result<ConsoleLog> {
    config.validate()?;
    let level = LevelFilter::from_level(config.level_filter()?);
    let kept = Arc::new(Mutex::new(Vec::new()));
    let memory = tracing_subscriber::fmt::layer()
        .with_writer(MemoryWriter(kept.clone()))
        .with_target(false)
        .with_ansi(false)
        .with_filter(level);
    let subscriber = tracing_subscriber::registry()
        .with(console_layer(level))
        .with(memory);
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
        if !kept.is_empty() {
            fs::create_dir_all(run_dir).at(run_dir)?;
            let path = run_dir.join(&config.file);
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|mut file| file.write_all(&kept))
                .at(&path)?;
        }
        init(&config, Some(run_dir))
    }
}

/// A progress bar drawn on stderr when it is a terminal (hidden otherwise, so piped
/// output holds only log lines), registered so log lines print above it.
pub fn progress_bar(length: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr_with_hz(4));
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
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
