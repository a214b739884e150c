//! `moodscope bench`: per-stage latency and end-to-end throughput on the demo clip, each beside
//! a baseline measured in the same run, printed as a table and optionally written as JSON.
//!
//! The baseline is the plain way of doing the job: every frame decoded, detected at full
//! resolution and classified, one stage after the other on one thread.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use image::{GrayImage, RgbImage};
use serde::Serialize;

use crate::capture::{open_source, CaptureOptions, SourceSpec};
use crate::cli::{usage, DetectionArgs, InferenceArgs};
use crate::dashboard::{render, App, DashboardConfig};
use crate::detect::{crop_face, default_detector_model, DetectorSettings, FaceBox, FaceDetector};
use crate::emotion::EmotionScores;
use crate::model::{resolve_precision, Classifier, Precision, Tta, INPUT_SIZE};
use crate::monitor::{drain_headless, RunStatus};
use crate::pipeline::{Pipeline, PipelineConfig, PipelineEvent, Sampling, CROP_MARGIN};
use crate::track::{FaceTemplate, Tracker, TrackerSettings};

/// Options of `moodscope bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Video to measure on; defaults to the demo clip.
    #[arg(long, value_name = "PATH")]
    pub input: Option<String>,
    /// Frames of the clip used for the per-stage figures.
    #[arg(long, value_name = "N", default_value_t = 120)]
    pub frames: usize,
    /// Repetitions of each classifier measurement.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub repeats: usize,
    /// Loop the clip headless for this many seconds and report resident memory at the start
    /// and the end.
    #[arg(long, value_name = "SECONDS")]
    pub soak: Option<u64>,
    /// Write the figures as JSON too.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub inference: InferenceArgs,
    #[command(flatten)]
    pub detection: DetectionArgs,
}

/// Median and 95th percentile of one measurement, in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Latency {
    pub median_ms: f64,
    pub p95_ms: f64,
    pub samples: usize,
}

impl Latency {
    /// Summarises a set of durations; an empty set gives zeros.
    pub fn from_samples(samples: &[Duration]) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        let mut millis: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        millis.sort_by(f64::total_cmp);
        let at = |quantile: f64| millis[((millis.len() - 1) as f64 * quantile).round() as usize];
        Latency {
            median_ms: at(0.5),
            p95_ms: at(0.95),
            samples: millis.len(),
        }
    }
}

/// One figure beside its baseline.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub name: String,
    pub value: Latency,
    pub baseline: Option<Latency>,
}

/// Everything `moodscope bench` measures.
#[derive(Debug, Default, Serialize)]
pub struct BenchReport {
    pub machine: String,
    pub device: String,
    pub input: String,
    pub stages: Vec<Comparison>,
    pub headless_fps: f64,
    pub dashboard_fps: f64,
    pub baseline_fps: f64,
    pub soak: Option<SoakReport>,
}

/// Resident memory over a long headless loop.
#[derive(Clone, Debug, Serialize)]
pub struct SoakReport {
    pub seconds: u64,
    pub frames: u64,
    pub start_rss_mib: f64,
    pub end_rss_mib: f64,
}

/// Runs every measurement and prints the table.
///
/// # Errors
///
/// Fails when the clip, the detector or the model cannot be loaded.
pub fn run(args: &BenchArgs) -> anyhow::Result<RunStatus> {
    // Following a face needs a frame after the one it was detected in.
    if args.frames < 2 {
        return Err(usage!(
            "invalid --frames \"{}\": expected 2 or more",
            args.frames
        ));
    }
    if args.repeats == 0 {
        return Err(usage!("invalid --repeats \"0\": expected 1 or more"));
    }
    args.inference.validate()?;
    let settings = args.detection.settings()?;
    let (device, precision) = args.inference.resolve()?;
    crate::pipeline::set_torch_threads(args.inference.threads);
    let input = args
        .input
        .clone()
        .unwrap_or_else(|| crate::assets::demo_clip().display().to_string());
    let classifier =
        Classifier::load_with_precision(&args.inference.model_path(), device, precision)?;

    let mut report = BenchReport {
        machine: describe_machine(),
        device: format!("{device:?} {precision}").to_lowercase(),
        input: input.clone(),
        ..BenchReport::default()
    };
    let frames = decode_frames(&input, args.frames, &mut report)?;
    let faces = measure_detection(&frames, &settings, &mut report)?;
    let crops = measure_crops(&frames, &faces, &mut report);
    let baseline = match precision {
        Precision::F32 => None,
        _ => Some(Classifier::load(&args.inference.model_path(), device)?),
    };
    measure_classifier(
        &classifier,
        baseline.as_ref(),
        &crops,
        (args.repeats, args.inference.averaging.tta),
        &mut report,
    )?;
    measure_smoothing(&faces, &mut report);
    report.baseline_fps = sequential_fps(&input, &classifier, &mut report)?;
    report.headless_fps = pipeline_fps(args, &input, settings.clone(), device)?;
    report.dashboard_fps = dashboard_fps(args, &input, settings.clone(), device, &mut report)?;
    if let Some(seconds) = args.soak {
        report.soak = Some(soak(args, &input, settings, device, seconds)?);
    }
    print!("{}", render_table(&report));
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json)
            .with_context(|| format!("cannot write \"{}\"", path.display()))?;
    }
    Ok(RunStatus::Complete)
}

fn describe_machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|name| name.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown processor".to_owned());
    format!("{cores} cores, {cpu}")
}

fn push(report: &mut BenchReport, name: &str, value: Latency, baseline: Option<Latency>) {
    report.stages.push(Comparison {
        name: name.to_owned(),
        value,
        baseline,
    });
}

/// Decodes the first `count` frames, timing each.
fn decode_frames(
    input: &str,
    count: usize,
    report: &mut BenchReport,
) -> anyhow::Result<Vec<RgbImage>> {
    let spec = SourceSpec::from_input(input, false)?;
    let mut source = open_source(&spec, &CaptureOptions::default())?;
    let mut frames = Vec::with_capacity(count);
    let mut times = Vec::with_capacity(count);
    while frames.len() < count {
        let started = Instant::now();
        let Some(frame) = source.next_frame()? else {
            break;
        };
        times.push(started.elapsed());
        frames.push(frame.image);
    }
    anyhow::ensure!(!frames.is_empty(), "\"{input}\" has no frames");
    push(
        report,
        "decode (per frame)",
        Latency::from_samples(&times),
        None,
    );
    Ok(frames)
}

/// Times detection with the chosen settings and at full resolution; returns the faces found.
fn measure_detection(
    frames: &[RgbImage],
    settings: &DetectorSettings,
    report: &mut BenchReport,
) -> anyhow::Result<Vec<Vec<FaceBox>>> {
    let full = DetectorSettings {
        detect_width: 0,
        ..settings.clone()
    };
    let mut detector = FaceDetector::new(&default_detector_model(), settings)?;
    let mut baseline_detector = FaceDetector::new(&default_detector_model(), &full)?;
    let mut times = Vec::new();
    let mut baseline_times = Vec::new();
    let mut faces = Vec::new();
    for frame in frames {
        let started = Instant::now();
        faces.push(detector.detect(frame));
        times.push(started.elapsed());
        let started = Instant::now();
        baseline_detector.detect(frame);
        baseline_times.push(started.elapsed());
    }
    let value = Latency::from_samples(&times);
    push(
        report,
        "detect (per frame)",
        value,
        Some(Latency::from_samples(&baseline_times)),
    );

    // Following each face by its appearance into the next frame, as the pipeline does between
    // full detections. The template is taken beforehand, because the pipeline takes it when it
    // detects. The baseline is a full detection with the same settings.
    let mut follow_times = Vec::new();
    for (pair, previous) in frames.windows(2).zip(&faces) {
        for face in previous {
            let template = FaceTemplate::capture(&pair[0], face);
            let started = Instant::now();
            template.best_match(&pair[1], face);
            follow_times.push(started.elapsed());
        }
    }
    let follow = Latency::from_samples(&follow_times);
    push(
        report,
        "follow a known face (per face)",
        follow,
        Some(value),
    );
    Ok(faces)
}

fn measure_crops(
    frames: &[RgbImage],
    faces: &[Vec<FaceBox>],
    report: &mut BenchReport,
) -> Vec<GrayImage> {
    let mut times = Vec::new();
    let mut crops = Vec::new();
    for (frame, boxes) in frames.iter().zip(faces) {
        for face in boxes {
            let started = Instant::now();
            crops.push(crop_face(frame, face, CROP_MARGIN, INPUT_SIZE));
            times.push(started.elapsed());
        }
    }
    push(
        report,
        "crop and preprocess (per face)",
        Latency::from_samples(&times),
        None,
    );
    crops
}

/// Times the classifier at batch 1, 8 and 32, per face, and at batch 1 with `tta` unless
/// that is off. When it computes in another format than f32, `baseline` is the same model in
/// f32, timed in alternation with it.
fn measure_classifier(
    classifier: &Classifier,
    baseline: Option<&Classifier>,
    crops: &[GrayImage],
    (repeats, tta): (usize, Tta),
    report: &mut BenchReport,
) -> anyhow::Result<()> {
    anyhow::ensure!(!crops.is_empty(), "no face found in the measured frames");
    let mut rows = vec![(1usize, Tta::Off), (8, Tta::Off), (32, Tta::Off)];
    if tta != Tta::Off {
        rows.push((1, tta));
    }
    for (batch, views) in rows {
        let faces: Vec<GrayImage> = crops.iter().cycle().take(batch).cloned().collect();
        let time = |model: &Classifier, times: &mut Vec<Duration>| -> anyhow::Result<()> {
            let started = Instant::now();
            model.classify_with(&faces, views)?;
            times.push(started.elapsed() / batch as u32);
            Ok(())
        };
        classifier.classify_with(&faces, views)?;
        if let Some(baseline) = baseline {
            baseline.classify_with(&faces, views)?;
        }
        let mut times = Vec::with_capacity(repeats);
        let mut baseline_times = Vec::with_capacity(repeats);
        for _ in 0..repeats.max(1) {
            time(classifier, &mut times)?;
            if let Some(baseline) = baseline {
                time(baseline, &mut baseline_times)?;
            }
        }
        let precision = classifier.precision_for(batch, views);
        let name = match views {
            Tta::Off => format!("classify {precision}, batch {batch} (per face)"),
            views => format!(
                "classify {precision}, batch {batch}, {views} TTA ({} views)",
                views.view_count()
            ),
        };
        let baseline = baseline.map(|_| Latency::from_samples(&baseline_times));
        push(report, &name, Latency::from_samples(&times), baseline);
    }
    Ok(())
}

fn measure_smoothing(faces: &[Vec<FaceBox>], report: &mut BenchReport) {
    let mut tracker = Tracker::new(TrackerSettings::default());
    let mut times = Vec::new();
    for boxes in faces {
        let scores = vec![EmotionScores([1.0 / 7.0; 7]); boxes.len()];
        let started = Instant::now();
        tracker.update(boxes, &scores);
        times.push(started.elapsed());
    }
    push(
        report,
        "track and smooth (per frame)",
        Latency::from_samples(&times),
        None,
    );
}

/// The baseline: the whole clip decoded, detected at full resolution and classified on one
/// thread; returns frames per second.
fn sequential_fps(
    input: &str,
    classifier: &Classifier,
    report: &mut BenchReport,
) -> anyhow::Result<f64> {
    let spec = SourceSpec::from_input(input, false)?;
    let mut source = open_source(&spec, &CaptureOptions::default())?;
    let full = DetectorSettings {
        detect_width: 0,
        ..DetectorSettings::default()
    };
    let mut detector = FaceDetector::new(&default_detector_model(), &full)?;
    let started = Instant::now();
    let mut frames = 0u32;
    let mut per_frame = Vec::new();
    while let Some(frame) = source.next_frame()? {
        let frame_started = Instant::now();
        let faces = detector.detect(&frame.image);
        let crops: Vec<GrayImage> = faces
            .iter()
            .map(|face| crop_face(&frame.image, face, CROP_MARGIN, INPUT_SIZE))
            .collect();
        classifier.classify(&crops)?;
        per_frame.push(frame_started.elapsed());
        frames += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    push(
        report,
        "baseline frame (detect full + classify)",
        Latency::from_samples(&per_frame),
        None,
    );
    Ok(f64::from(frames) / seconds)
}

fn pipeline_config(
    args: &BenchArgs,
    input: &str,
    settings: DetectorSettings,
    device: tch::Device,
    looping: bool,
) -> anyhow::Result<PipelineConfig> {
    Ok(PipelineConfig {
        sources: vec![SourceSpec::from_input(input, false)?],
        capture: CaptureOptions::default(),
        detector: settings,
        detector_model: default_detector_model(),
        classifier_model: args.inference.model_path(),
        device,
        precision: resolve_precision(args.inference.precision, device),
        tta: args.inference.averaging.tta,
        tracker: args.inference.tracker_settings(),
        detect_every: args
            .detection
            .detect_every_or(crate::monitor::LIVE_DETECT_EVERY),
        sampling: Sampling::EveryFrame,
        real_time: false,
        looping,
        no_detect: false,
        no_face_rows: false,
        stop_on_source_failure: true,
        annotate: None,
    })
}

/// Frames per second of the threaded pipeline over the whole clip, headless.
fn pipeline_fps(
    args: &BenchArgs,
    input: &str,
    settings: DetectorSettings,
    device: tch::Device,
) -> anyhow::Result<f64> {
    let config = pipeline_config(args, input, settings, device, false)?;
    let started = Instant::now();
    let (pipeline, events) = Pipeline::start(config, None)?;
    drain_headless(&pipeline, events);
    let outcome = pipeline.finish();
    let frames: u64 = outcome.sources.iter().map(|summary| summary.frames).sum();
    Ok(frames as f64 / started.elapsed().as_secs_f64())
}

/// Frames per second of the pipeline with every frame drawn by the dashboard into an
/// off-screen 120x40 terminal, and the drawing time per frame.
fn dashboard_fps(
    args: &BenchArgs,
    input: &str,
    settings: DetectorSettings,
    device: tch::Device,
    report: &mut BenchReport,
) -> anyhow::Result<f64> {
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    let config = pipeline_config(args, input, settings, device, false)?;
    let started = Instant::now();
    let (pipeline, events) = Pipeline::start(config, None)?;
    let dashboard_config = DashboardConfig {
        source: input.to_owned(),
        device: report.device.clone(),
        model: args.inference.model_path().display().to_string(),
        history_seconds: 20.0,
    };
    let mut app = App::new(dashboard_config, pipeline.control.clone());
    let mut terminal = Terminal::new(TestBackend::new(120, 40))?;
    let mut draw_times = Vec::new();
    let mut frames = 0u32;
    for event in events.iter() {
        let is_end = matches!(event, PipelineEvent::EndOfInput | PipelineEvent::Failed(_));
        let is_frame = matches!(event, PipelineEvent::Frame(_));
        app.handle_event(event);
        if is_end {
            break;
        }
        if is_frame {
            frames += 1;
            let draw_started = Instant::now();
            terminal.draw(|frame| render(frame, &app))?;
            draw_times.push(draw_started.elapsed());
        }
    }
    let fps = f64::from(frames) / started.elapsed().as_secs_f64();
    pipeline.finish();
    push(
        report,
        "draw dashboard 120x40 (per frame)",
        Latency::from_samples(&draw_times),
        None,
    );
    Ok(fps)
}

/// Loops the clip headless for `seconds` and reads resident memory at the start and the end.
fn soak(
    args: &BenchArgs,
    input: &str,
    settings: DetectorSettings,
    device: tch::Device,
    seconds: u64,
) -> anyhow::Result<SoakReport> {
    let config = pipeline_config(args, input, settings, device, true)?;
    let (pipeline, events) = Pipeline::start(config, None)?;
    let started = Instant::now();
    let mut frames = 0u64;
    let mut start_rss = None;
    while started.elapsed() < Duration::from_secs(seconds) {
        if let Ok(PipelineEvent::Frame(_)) = events.recv_timeout(Duration::from_millis(200)) {
            frames += 1;
            // Read after the first few seconds, once the allocators have warmed up.
            if start_rss.is_none() && started.elapsed() > Duration::from_secs(5) {
                start_rss = Some(resident_mib());
            }
        }
    }
    let end_rss = resident_mib();
    drop(events);
    pipeline.finish();
    Ok(SoakReport {
        seconds,
        frames,
        start_rss_mib: start_rss.unwrap_or(end_rss),
        end_rss_mib: end_rss,
    })
}

/// Returns this process's resident memory in MiB, from /proc/self/status.
fn resident_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Formats the report as a text table, ratios to the baseline where there is one.
pub fn render_table(report: &BenchReport) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "machine: {}\ndevice: {}\ninput: {}",
        report.machine, report.device, report.input
    );
    // The stage column is as wide as the longest name, so that long names keep the numbers
    // aligned.
    let width = report
        .stages
        .iter()
        .map(|stage| stage.name.len())
        .max()
        .unwrap_or(0)
        .max(42);
    let _ = writeln!(
        text,
        "{:<width$} {:>10} {:>10} {:>14} {:>8}",
        "stage", "median ms", "p95 ms", "baseline ms", "ratio"
    );
    for stage in &report.stages {
        let (baseline, ratio) = match stage.baseline {
            Some(baseline) if stage.value.median_ms > 0.0 => (
                format!("{:.3}", baseline.median_ms),
                format!("{:.2}x", baseline.median_ms / stage.value.median_ms),
            ),
            _ => (String::from("-"), String::from("-")),
        };
        let _ = writeln!(
            text,
            "{:<width$} {:>10.3} {:>10.3} {:>14} {:>8}",
            stage.name, stage.value.median_ms, stage.value.p95_ms, baseline, ratio
        );
    }
    let _ = writeln!(
        text,
        "baseline: detection at full resolution for the detect and follow rows, the same model \
         in f32 for the classify rows"
    );
    let speedup = if report.baseline_fps > 0.0 {
        report.headless_fps / report.baseline_fps
    } else {
        0.0
    };
    let _ = writeln!(
        text,
        "end to end, headless: {:.1} fps (baseline {:.1} fps, {:.2}x)",
        report.headless_fps, report.baseline_fps, speedup
    );
    let _ = writeln!(
        text,
        "end to end, with the dashboard drawn: {:.1} fps",
        report.dashboard_fps
    );
    if let Some(soak) = &report.soak {
        let _ = writeln!(
            text,
            "resident memory over {} s ({} frames): {:.1} MiB at the start, {:.1} MiB at the end",
            soak.seconds, soak.frames, soak.start_rss_mib, soak.end_rss_mib
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_quantiles() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let latency = Latency::from_samples(&samples);
        assert!((latency.median_ms - 51.0).abs() < 1.01);
        assert!((latency.p95_ms - 95.0).abs() < 1.01);
        assert_eq!(latency.samples, 100);
        assert_eq!(Latency::from_samples(&[]).samples, 0);
    }
}
