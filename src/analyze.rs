//! `moodscope analyze`: the pipeline over any mix of videos, images and folders, without the
//! dashboard, writing rows and per-source summaries.
//!
//! Bad inputs never stop the run: each gets an `error` row and a message naming it, and the
//! exit code says that some inputs failed.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::capture::{
    collect_files, has_image_extension, has_video_extension, video_length, SourceSpec,
};
use crate::cli::{usage, AnalyzeArgs};
use crate::detect::default_detector_model;
use crate::model::Classifier;
use crate::monitor::{install_interrupt_handler, is_interrupted, RunStatus};
use crate::pipeline::{Pipeline, PipelineConfig, PipelineEvent, Sampling};
use crate::record::summary::{render_text, write_summary_csv, SourceSummary};
use crate::record::Recorder;
use crate::record::{check_output_path, check_outputs_apart};

/// Runs the analysis.
///
/// # Errors
///
/// Fails on invalid options, an output that cannot be written, a model that cannot be loaded,
/// or CUDA asked for but absent. Unreadable inputs are not errors of the run.
pub fn run(args: &AnalyzeArgs) -> anyhow::Result<RunStatus> {
    args.inference.validate()?;
    let detector = args.detection.settings()?;
    let sampling = sampling(args)?;
    let (device, precision) = args.inference.resolve()?;
    crate::pipeline::set_torch_threads(args.inference.threads);
    // A model that cannot be loaded stops the run before the output file or the CSV header
    // is written. Loading on the CPU reads the same files the pipeline reads.
    Classifier::load(&args.inference.model_path(), tch::Device::Cpu)?;
    check_outputs(args)?;
    let mut recorder = open_output(args)?;

    // Inputs that do not exist get their error row now; the rest go through the pipeline.
    let mut unreadable = Vec::new();
    let mut sources = Vec::new();
    for input in &args.inputs {
        match SourceSpec::from_input(input, args.recursive) {
            Ok(SourceSpec::Folder { path, recursive }) => {
                sources.extend(expand_folder(&path, recursive));
            }
            Ok(spec) => sources.push(spec),
            Err(error) => {
                eprintln!("moodscope: {error}");
                recorder.write_input_error(input, &error.to_string())?;
                let mut summary = SourceSummary::new(input);
                summary.add_error();
                unreadable.push(summary);
            }
        }
    }
    let mut dropped_frames = 0;
    let mut failure = None;
    // Set when the rows went to a pipe whose reader stopped reading (`analyze | head`).
    let mut output_closed = false;
    let mut summaries = if sources.is_empty() {
        Vec::new()
    } else {
        let show_progress = std::io::stderr().is_terminal();
        // Probing every video takes a moment per file, so it runs beside the analysis.
        let (length_sender, length) = mpsc::channel();
        if show_progress {
            let sources = sources.clone();
            std::thread::spawn(move || {
                let _ = length_sender.send(expected_frames(&sources, sampling));
            });
        }
        let config = PipelineConfig {
            sources,
            capture: Default::default(),
            detector,
            detector_model: default_detector_model(),
            classifier_model: args.inference.model_path(),
            device,
            precision,
            tta: args.inference.averaging.tta,
            tracker: args.inference.tracker_settings(),
            detect_every: args.detection.detect_every_or(1),
            sampling,
            real_time: false,
            looping: false,
            no_detect: args.no_detect,
            no_face_rows: true,
            stop_on_source_failure: false,
            annotate: args.annotate.clone(),
        };
        install_interrupt_handler();
        let (pipeline, events) = Pipeline::start(config, Some(recorder))?;
        follow_progress(&pipeline, events, show_progress, length);
        let outcome = pipeline.finish();
        failure = outcome.failure;
        dropped_frames = outcome.dropped_frames;
        output_closed = outcome.output_closed;
        outcome.sources
    };
    summaries.extend(unreadable);
    let reported = report(args, &summaries, dropped_frames, output_closed);
    // A run that could not go on still reports what it analysed before the failure.
    if let Some(failure) = failure {
        if let Err(error) = reported {
            eprintln!("moodscope: {error:#}");
        }
        anyhow::bail!("{failure}");
    }
    reported
}

/// Checks the outputs before any work: the summary's folder exists, the annotation folder
/// can be made, and no output overwrites an input or another output.
fn check_outputs(args: &AnalyzeArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.summary {
        check_output_path(path)?;
    }
    let mut outputs = Vec::new();
    if let Some(path) = &args.output {
        outputs.push(("--output", path.as_path()));
    }
    if let Some(path) = &args.summary {
        outputs.push(("--summary", path.as_path()));
    }
    if let Some(folder) = &args.annotate {
        outputs.push(("--annotate", folder.as_path()));
    }
    let inputs: Vec<&Path> = args.inputs.iter().map(Path::new).collect();
    check_outputs_apart(&outputs, &inputs).map_err(|message| usage!("{message}"))?;
    for (option, path) in &outputs {
        let folder = inputs
            .iter()
            .find(|input| is_folder_member(path, input, args.recursive));
        if let Some(folder) = folder {
            return Err(usage!(
                "{option} {} is one of the files of the input folder {}, which the output \
                 would overwrite",
                path.display(),
                folder.display()
            ));
        }
    }
    if let Some(folder) = &args.annotate {
        if folder.exists() && !folder.is_dir() {
            return Err(usage!(
                "--annotate {} is a file, not a folder",
                folder.display()
            ));
        }
        std::fs::create_dir_all(folder)
            .with_context(|| format!("cannot create the --annotate folder {}", folder.display()))?;
    }
    Ok(())
}

/// Returns true when `path` is an existing image or video that the folder input `folder`
/// contributes: a file in it, or below it when `recursive`.
fn is_folder_member(path: &Path, folder: &Path, recursive: bool) -> bool {
    if !(has_video_extension(path) || has_image_extension(path)) {
        return false;
    }
    let (Ok(file), Ok(folder)) = (path.canonicalize(), folder.canonicalize()) else {
        return false;
    };
    if !folder.is_dir() {
        return false;
    }
    file.parent() == Some(folder.as_path()) || (recursive && file.starts_with(&folder))
}

/// Splits a folder input into its videos, each a source of its own in sorted order, followed by
/// the folder itself for its images, unless it contains videos and no image.
///
/// A folder that cannot be listed becomes a folder source, which reports the error.
fn expand_folder(path: &Path, recursive: bool) -> Vec<SourceSpec> {
    let mut files = Vec::new();
    let is_media = |file: &Path| has_video_extension(file) || has_image_extension(file);
    let _ = collect_files(path, recursive, &is_media, &mut files);
    files.sort();
    let mut sources: Vec<SourceSpec> = files
        .iter()
        .filter(|file| has_video_extension(file))
        .map(|file| SourceSpec::Video(file.display().to_string()))
        .collect();
    let has_images = files.iter().any(|file| has_image_extension(file));
    if has_images || sources.is_empty() {
        sources.push(SourceSpec::Folder {
            path: path.to_owned(),
            recursive,
        });
    }
    sources
}

fn sampling(args: &AnalyzeArgs) -> anyhow::Result<Sampling> {
    match (args.every, args.fps) {
        (Some(0), _) => Err(usage!("invalid --every \"0\": expected 1 or more")),
        (Some(step), _) => Ok(Sampling::EveryNth(step)),
        (None, Some(rate)) if !(rate.is_finite() && rate > 0.0) => Err(usage!(
            "invalid --fps \"{rate}\": expected a number of frames per second above 0"
        )),
        (None, Some(rate)) => Ok(Sampling::PerSecond(rate)),
        (None, None) => Ok(Sampling::EveryFrame),
    }
}

fn open_output(args: &AnalyzeArgs) -> anyhow::Result<Recorder> {
    let recorder = match &args.output {
        Some(path) => Recorder::create(path, args.format)?,
        None => Recorder::from_writer(
            Box::new(std::io::stdout()),
            Path::new("stdout"),
            args.format,
        )?,
    };
    Ok(recorder)
}

/// Estimates how many frames the pipeline will analyse, for the progress bar's time left.
///
/// Returns `None` when any source has no known length: a stream, or a video whose container
/// stores neither its frame count nor its duration and rate. Folders are counted by their image
/// files, and sampling by `--fps` is assumed to keep its rate exactly, so the figure is an
/// estimate.
fn expected_frames(sources: &[SourceSpec], sampling: Sampling) -> Option<u64> {
    let mut total = 0;
    for source in sources {
        let (frames, rate) = match source {
            SourceSpec::Camera { .. } => return None,
            SourceSpec::Video(input) => {
                let length = video_length(input)?;
                (length.frames?, length.frame_rate)
            }
            SourceSpec::Image(_) => (1, None),
            SourceSpec::Folder { path, recursive } => {
                let mut files = Vec::new();
                let _ = collect_files(path, *recursive, &has_image_extension, &mut files);
                (files.len() as u64, None)
            }
        };
        // Sampling applies to video frames only; every image is analysed.
        let sampled = if matches!(source, SourceSpec::Video(_)) {
            sampling
        } else {
            Sampling::EveryFrame
        };
        total += match sampled {
            Sampling::EveryFrame => frames,
            Sampling::EveryNth(step) => frames.div_ceil(u64::from(step.max(1))),
            Sampling::PerSecond(per_second) => match rate {
                Some(rate) if rate > per_second => {
                    (frames as f64 * per_second / rate).ceil() as u64
                }
                _ => frames,
            },
        };
    }
    Some(total)
}

/// Shows a progress line on standard error when `visible`, until the input ends: a spinner,
/// which becomes a bar with the time left once `length` delivers the number of frames.
fn follow_progress(
    pipeline: &Pipeline,
    events: Receiver<PipelineEvent>,
    visible: bool,
    length: Receiver<Option<u64>>,
) {
    let progress = if visible {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    set_template(
        &progress,
        "{spinner} {pos} frames, {per_sec}, {elapsed} {msg}",
    );
    loop {
        if let Ok(Some(frames)) = length.try_recv() {
            progress.set_length(frames);
            set_template(
                &progress,
                "{bar:30} {pos}/{len} frames, {per_sec}, {elapsed}, about {eta} left {msg}",
            );
        }
        if is_interrupted() {
            print_above(
                &progress,
                "interrupted: stopping and writing what was analysed",
            );
            pipeline.control.request_stop();
            break;
        }
        match events.recv_timeout(Duration::from_millis(100)) {
            Ok(PipelineEvent::Frame(_)) => progress.inc(1),
            Ok(PipelineEvent::InputError(message)) => {
                print_above(&progress, &format!("moodscope: {message}"));
            }
            Ok(PipelineEvent::EndOfInput | PipelineEvent::Failed(_)) => break,
            Err(RecvTimeoutError::Timeout) => progress.tick(),
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    progress.finish_and_clear();
}

fn set_template(progress: &ProgressBar, template: &str) {
    let style =
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner());
    progress.set_style(style);
}

/// Prints a line on standard error above the progress bar, or plainly when the bar is hidden
/// (a hidden bar drops the lines given to it).
fn print_above(progress: &ProgressBar, line: &str) {
    if progress.is_hidden() {
        eprintln!("{line}");
    } else {
        progress.println(line);
    }
}

/// Prints the summary tables, writes the summary CSV and chooses the exit status.
///
/// `dropped_frames` counts the frames of live streams that arrived while the analysis was
/// still busy with earlier ones. They have no rows, so the tables report their number.
/// After the reader of the rows closed its pipe, as `head` does, the tables are left out.
fn report(
    args: &AnalyzeArgs,
    summaries: &[SourceSummary],
    dropped_frames: u64,
    output_closed: bool,
) -> anyhow::Result<RunStatus> {
    let mut overall = SourceSummary::new("all");
    for summary in summaries {
        overall.merge(summary);
    }
    let mut text = String::new();
    for summary in summaries {
        text.push_str(&render_text(summary));
    }
    if summaries.len() > 1 {
        text.push_str(&render_text(&overall));
    }
    if dropped_frames > 0 {
        text.push_str(&format!(
            "{dropped_frames} frames dropped to keep up with live input\n"
        ));
    }
    // Rows on standard output must stay machine-readable, so the tables go to standard error.
    if args.output.is_some() {
        print!("{text}");
    } else if !output_closed {
        eprint!("{text}");
    }
    if let Some(path) = &args.summary {
        write_summary_csv(path, summaries, Some(&overall))
            .with_context(|| format!("cannot write the summary \"{}\"", path.display()))?;
    }
    if overall.errors > 0 {
        return Ok(RunStatus::SomeInputsFailed);
    }
    Ok(RunStatus::Complete)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo_clip() -> SourceSpec {
        SourceSpec::Video(crate::assets::demo_clip().display().to_string())
    }

    #[test]
    fn expected_frames_follow_sampling() {
        // The demo clip's container stores 472 frames at 24000/1001 fps.
        let clip = [demo_clip()];
        assert_eq!(expected_frames(&clip, Sampling::EveryFrame), Some(472));
        assert_eq!(expected_frames(&clip, Sampling::EveryNth(10)), Some(48));
        assert_eq!(expected_frames(&clip, Sampling::PerSecond(5.0)), Some(99));
        assert_eq!(expected_frames(&clip, Sampling::PerSecond(60.0)), Some(472));
    }

    #[test]
    fn expected_frames_count_folder_images() {
        let folder = tempfile::tempdir().unwrap();
        for name in ["a.png", "b.jpg", "c.JPG", "notes.txt"] {
            std::fs::write(folder.path().join(name), b"x").unwrap();
        }
        let sources = [
            SourceSpec::Folder {
                path: folder.path().to_owned(),
                recursive: false,
            },
            SourceSpec::Image(folder.path().join("a.png")),
            demo_clip(),
        ];
        assert_eq!(
            expected_frames(&sources, Sampling::EveryFrame),
            Some(3 + 1 + 472)
        );
        // Sampling thins out the video only.
        assert_eq!(
            expected_frames(&sources, Sampling::EveryNth(10)),
            Some(3 + 1 + 48)
        );
    }

    #[test]
    fn expected_frames_unknown_for_streams() {
        let sources = [
            demo_clip(),
            SourceSpec::Video("rtsp://127.0.0.1:1/live".into()),
        ];
        assert_eq!(expected_frames(&sources, Sampling::EveryFrame), None);
        let missing = [SourceSpec::Video("no/such/clip.mp4".into())];
        assert_eq!(expected_frames(&missing, Sampling::EveryFrame), None);
    }
}
