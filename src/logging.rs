//! Logging set-up: the `tracing` facade, to standard error or to a file.
//!
//! While the dashboard is up nothing may be written to the terminal, so its log goes to a file.

use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use tracing_subscriber::EnvFilter;

use crate::cli::LogArgs;

/// Destination of the log when no `--log-file` is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard error, for commands that do not take over the terminal.
    Stderr,
    /// `moodscope.log` in the temporary folder, for the dashboard.
    DefaultFile,
}

/// Returns the log file the dashboard uses when no `--log-file` is given.
pub fn default_log_file() -> PathBuf {
    std::env::temp_dir().join("moodscope.log")
}

/// Installs the global subscriber: level warn, debug with `--debug`, or the `RUST_LOG` filter.
///
/// # Errors
///
/// Fails when the log file cannot be opened.
pub fn init(args: &LogArgs, target: LogTarget) -> anyhow::Result<()> {
    let default_level = if args.debug { "debug" } else { "warn" };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let file = match (&args.log_file, target) {
        (Some(path), _) => Some(path.clone()),
        (None, LogTarget::DefaultFile) => Some(default_log_file()),
        (None, LogTarget::Stderr) => None,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match file {
        Some(path) => builder
            .with_ansi(false)
            .with_writer(Mutex::new(open_log(&path)?))
            .init(),
        None => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .init(),
    }
    Ok(())
}

fn open_log(path: &Path) -> anyhow::Result<std::fs::File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open log file \"{}\"", path.display()))
}
