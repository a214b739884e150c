//! The `moodscope` binary: parses arguments, sets up logging, runs the command and maps the
//! result to an exit code (0 success, 1 failure, 2 invalid arguments, 3 some inputs failed).

use std::process::ExitCode;

use clap::Parser;

use moodscope::cli::{tta_value_spelling, Cli, Command, UsageError};
use moodscope::logging::{self, LogTarget};
use moodscope::monitor::{self, RunStatus};

fn main() -> ExitCode {
    // Arguments that are not UTF-8 (file names, say) are read lossily for this check only.
    let words: Vec<String> = std::env::args_os()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    if let Some(spelling) = tta_value_spelling(&words) {
        eprintln!("moodscope: write {spelling}: the value of --tta must follow an equals sign");
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    let target = match &cli.command {
        None if !cli.monitor.headless && !cli.monitor.list_cameras => LogTarget::DefaultFile,
        _ => LogTarget::Stderr,
    };
    let logs_to_file = cli.logging.log_file.is_some() || target == LogTarget::DefaultFile;
    if let Err(error) = logging::init(&cli.logging, target) {
        eprintln!("moodscope: {error:#}");
        return ExitCode::FAILURE;
    }
    let result = match &cli.command {
        None => monitor::run(&cli.monitor),
        Some(Command::Analyze(args)) => moodscope::analyze::run(args),
        Some(Command::Bench(args)) => moodscope::bench::run(args),
        Some(Command::Train(args)) => {
            moodscope::train::run_train(args).map(|()| RunStatus::Complete)
        }
        Some(Command::Eval(args)) => moodscope::train::run_eval(args).map(|()| RunStatus::Complete),
    };
    match result {
        Ok(RunStatus::Complete) => ExitCode::SUCCESS,
        Ok(RunStatus::SomeInputsFailed) => ExitCode::from(3),
        Err(error) => {
            let message = describe(&error);
            // Logged only where the log is a file: on standard error it would repeat the line.
            if logs_to_file {
                tracing::error!("{message}");
            }
            eprintln!("moodscope: {message}");
            if error.downcast_ref::<UsageError>().is_some() {
                return ExitCode::from(2);
            }
            ExitCode::FAILURE
        }
    }
}

/// Joins an error and its causes with ": ", leaving out a cause whose text the message already
/// contains, as typed errors often include their source's text in their own.
fn describe(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}
