//! The live monitor, the default command: one source through the pipeline, shown on the
//! dashboard or run headless, with optional CSV rows and summary.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Once;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::capture::{check_camera_exists, list_cameras, SourceSpec};
use crate::cli::{usage, MonitorArgs};
use crate::dashboard::{self, DashboardConfig};
use crate::detect::default_detector_model;
use crate::model::Tta;
use crate::pipeline::{
    source_label, Pipeline, PipelineConfig, PipelineEvent, PipelineOutcome, Sampling,
};
use crate::record::summary::{render_text, write_summary_csv, SourceSummary};
use crate::record::{check_output_path, check_outputs_apart};
use crate::record::{Recorder, RowFormat};

/// Frames per detection in the live monitor. Between detections each face is followed by its
/// appearance, and a face that cannot be followed triggers a detection at once. So a
/// detection every 5 frames (a sixth of a second at 30 fps) mainly serves to find new faces.
/// Detection is the most expensive stage: on the demo clip, headless, 5 instead of 3 raised
/// the rate from 56 to 71 fps in one benchmark run.
pub const LIVE_DETECT_EVERY: u32 = 5;

/// Set by Ctrl-C or SIGTERM; headless loops poll it and stop cleanly, keeping what was written.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs the Ctrl-C and SIGTERM handler once per process.
pub fn install_interrupt_handler() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        if let Err(error) = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst)) {
            tracing::warn!("cannot install the Ctrl-C handler: {error}");
        }
    });
}

/// Returns true once Ctrl-C or SIGTERM has arrived.
pub fn is_interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Outcome of a finished run, for the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    /// Every input was read.
    Complete,
    /// Some inputs or items could not be read; the rest were processed.
    SomeInputsFailed,
}

/// Runs the live monitor.
///
/// # Errors
///
/// Fails on invalid options, a missing camera or input, a model that cannot be loaded, CUDA
/// asked for but absent, or a pipeline that could not go on.
pub fn run(args: &MonitorArgs) -> anyhow::Result<RunStatus> {
    args.validate()?;
    if args.list_cameras {
        return print_cameras();
    }
    let source = args.source()?;
    // Said before the dashboard takes over the terminal, rather than shown on it.
    if let SourceSpec::Camera { index } = source {
        check_camera_exists(index)?;
    }

    if !args.headless && !std::io::stdout().is_terminal() {
        bail!(
            "the dashboard needs a terminal on standard output: use --headless to run without it"
        );
    }
    let (device, precision) = args.inference.resolve()?;
    crate::pipeline::set_torch_threads(args.inference.threads);
    if let Some(path) = &args.summary {
        check_output_path(path)?;
    }
    check_outputs(args, &source)?;
    let recorder = match &args.csv {
        Some(path) => Some(Recorder::create(path, RowFormat::Csv)?),
        None => None,
    };

    let config = PipelineConfig {
        sources: vec![source.clone()],
        capture: args.capture_options(),
        detector: args.detection.settings()?,
        detector_model: default_detector_model(),
        classifier_model: args.inference.model_path(),
        device,
        precision,
        tta: args.inference.averaging.tta,
        tracker: args.inference.tracker_settings(),
        detect_every: args.detection.detect_every_or(LIVE_DETECT_EVERY),
        sampling: Sampling::EveryFrame,
        real_time: !args.headless && !args.no_real_time,
        looping: args.looping,
        no_detect: false,
        no_face_rows: false,
        stop_on_source_failure: true,
        annotate: None,
    };

    install_interrupt_handler();
    let (pipeline, events) = Pipeline::start(config, recorder)?;
    if args.headless {
        drain_headless(&pipeline, events);
    } else {
        let dashboard_config = DashboardConfig {
            source: source_label(&source),
            device: match args.inference.averaging.tta {
                Tta::Off => format!("{device:?} {precision}").to_lowercase(),
                tta => format!("{device:?} {precision}, {tta} tta").to_lowercase(),
            },
            model: args.inference.model_path().display().to_string(),
            history_seconds: args.history,
        };
        dashboard::run(events, pipeline.control.clone(), dashboard_config)?;
    }
    let outcome = pipeline.finish();
    report_outcome(args, &source, outcome)
}

/// Checks that neither --csv nor --summary overwrites the input or the other.
fn check_outputs(args: &MonitorArgs, source: &SourceSpec) -> anyhow::Result<()> {
    let mut outputs = Vec::new();
    if let Some(path) = &args.csv {
        outputs.push(("--csv", path.as_path()));
    }
    if let Some(path) = &args.summary {
        outputs.push(("--summary", path.as_path()));
    }
    let input = match source {
        SourceSpec::Camera { .. } => None,
        SourceSpec::Video(input) => Some(Path::new(input)),
        SourceSpec::Image(path) | SourceSpec::Folder { path, .. } => Some(path.as_path()),
    };
    let inputs: Vec<&Path> = input.into_iter().collect();
    check_outputs_apart(&outputs, &inputs).map_err(|message| usage!("{message}"))
}

fn print_cameras() -> anyhow::Result<RunStatus> {
    let cameras = list_cameras()?;
    if cameras.is_empty() {
        println!("no camera found");
    }
    for camera in cameras {
        println!("{camera}");
    }
    Ok(RunStatus::Complete)
}

/// Consumes events until the input ends, the run fails or Ctrl-C arrives.
pub fn drain_headless(pipeline: &Pipeline, events: Receiver<PipelineEvent>) {
    loop {
        if is_interrupted() {
            eprintln!("interrupted: stopping and writing what was processed");
            pipeline.control.request_stop();
            return;
        }
        match events.recv_timeout(Duration::from_millis(100)) {
            Ok(PipelineEvent::EndOfInput | PipelineEvent::Failed(_)) => return,
            Ok(PipelineEvent::InputError(message)) => eprintln!("moodscope: {message}"),
            Ok(PipelineEvent::Frame(_)) => {}
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Writes the summary files and text, then turns a failure into an error.
fn report_outcome(
    args: &MonitorArgs,
    source: &SourceSpec,
    outcome: PipelineOutcome,
) -> anyhow::Result<RunStatus> {
    let summary = outcome
        .sources
        .into_iter()
        .next()
        .unwrap_or_else(|| SourceSummary::new(&source_label(source)));
    if let Some(path) = &args.summary {
        write_summary_csv(path, std::slice::from_ref(&summary), None)
            .with_context(|| format!("cannot write the summary \"{}\"", path.display()))?;
    }
    print!("{}", render_text(&summary));
    if outcome.dropped_frames > 0 {
        println!(
            "{} frames dropped to keep up with the live input",
            outcome.dropped_frames
        );
    }
    if let Some(failure) = outcome.failure {
        bail!("{failure}");
    }
    if summary.errors > 0 {
        return Ok(RunStatus::SomeInputsFailed);
    }
    Ok(RunStatus::Complete)
}
