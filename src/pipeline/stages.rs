//! The bodies of the pipeline threads: decode, detect, and classify-track-record.
//!
//! Stages pass work down bounded channels, so a slow stage holds back the one before it. For
//! live sources, and for files played in real time, the decode stage drops a frame rather than
//! wait, so that what is shown never falls behind the camera.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, SyncSender, TrySendError};
use std::thread::sleep;
use std::time::{Duration, Instant};

use image::GrayImage;

use super::StageTimings;
use super::{Control, FrameReport, PipelineConfig, PipelineEvent, PipelineOutcome, Sampling};
use crate::annotate::Annotator;
use crate::capture::{open_source, CaptureOptions, Frame, SourceSpec};
use crate::detect::{crop_face, FaceBox, FaceDetector};
use crate::model::{Classifier, Tta};
use crate::record::summary::SourceSummary;
use crate::record::{RecordError, Recorder};
use crate::track::{FaceTemplate, Tracker};

/// Share of the face box added on each side before cropping: the detector's boxes are tighter
/// than the FER-2013 crops, which show the forehead and the chin.
pub const CROP_MARGIN: f32 = 0.2;

/// How long a paused stage sleeps between looks at the pause flag.
const PAUSE_POLL: Duration = Duration::from_millis(20);

/// Work passed from the decode stage to the detect stage, and on to the classify stage.
pub(super) enum Work<F> {
    Frame {
        source: usize,
        frame: F,
    },
    /// One unreadable item of a source (a bad file in a folder); the source goes on.
    InputError {
        source: usize,
        /// The file that could not be read, when the source is made of files.
        item: Option<PathBuf>,
        message: String,
    },
    /// A source that could not be opened or broke off.
    SourceFailed {
        source: usize,
        message: String,
    },
    End,
}

/// A decoded frame with the time it took.
pub(super) struct Decoded {
    frame: Frame,
    decode: Duration,
}

/// A frame with its faces found and cropped.
pub(super) struct Detected {
    frame: Frame,
    faces: Vec<FaceBox>,
    crops: Vec<GrayImage>,
    timings: StageTimings,
}

/// Reads every source in turn (again and again when looping) and sends its frames on.
pub(super) fn run_decode(
    config: &PipelineConfig,
    control: &Control,
    sender: SyncSender<Work<Decoded>>,
) {
    let capture = CaptureOptions {
        cancel: Some(control.stop_flag()),
        ..config.capture.clone()
    };
    loop {
        for (index, spec) in config.sources.iter().enumerate() {
            if control.is_stop_requested() {
                break;
            }
            if !decode_source(config, &capture, control, index, spec, &sender) {
                return;
            }
        }
        if !config.looping || control.is_stop_requested() {
            break;
        }
    }
    let _ = sender.send(Work::End);
}

/// Sends the frames of one source; returns false when the next stage has gone away.
fn decode_source(
    config: &PipelineConfig,
    capture: &CaptureOptions,
    control: &Control,
    index: usize,
    spec: &SourceSpec,
    sender: &SyncSender<Work<Decoded>>,
) -> bool {
    let mut source = match open_source(spec, capture) {
        Ok(source) => source,
        // A stop ends ffmpeg, which then looks like a failed input.
        Err(_) if control.is_stop_requested() => return true,
        Err(error) => {
            let message = error.to_string();
            return sender
                .send(Work::SourceFailed {
                    source: index,
                    message,
                })
                .is_ok();
        }
    };
    tracing::info!("reading {}", source.description());
    let drop_when_busy = config.real_time || source.is_live();
    let mut pacer = Pacer::new(config.real_time && !source.is_live());
    let mut sampler = Sampler::new(config.sampling);
    loop {
        if !wait_while_paused(control, &mut pacer) {
            return true;
        }
        let started = Instant::now();
        let frame = match source.next_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => return true,
            Err(_) if control.is_stop_requested() => return true,
            Err(error) => {
                let message = error.to_string();
                let work = if error.is_recoverable() {
                    Work::InputError {
                        source: index,
                        item: error.item_path().map(PathBuf::from),
                        message,
                    }
                } else {
                    Work::SourceFailed {
                        source: index,
                        message,
                    }
                };
                let recoverable = error.is_recoverable();
                if sender.send(work).is_err() {
                    return false;
                }
                if recoverable {
                    continue;
                }
                return true;
            }
        };
        let decode = started.elapsed();
        if !sampler.accepts(&frame) {
            continue;
        }
        pacer.wait_for(frame.timestamp);
        let work = Work::Frame {
            source: index,
            frame: Decoded { frame, decode },
        };
        if drop_when_busy {
            match sender.try_send(work) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => control.add_dropped_frame(),
                Err(TrySendError::Disconnected(_)) => return false,
            }
        } else if sender.send(work).is_err() {
            return false;
        }
    }
}

/// Sleeps while the run is paused; returns false when a stop is requested.
fn wait_while_paused(control: &Control, pacer: &mut Pacer) -> bool {
    let paused_at = Instant::now();
    while control.is_paused() && !control.is_stop_requested() {
        sleep(PAUSE_POLL);
    }
    let pause = paused_at.elapsed();
    pacer.shift(pause);
    control.add_pause(pause);
    !control.is_stop_requested()
}

/// Holds frames back until their source time has come, for playing files in real time.
struct Pacer {
    enabled: bool,
    /// Wall time and source time of the first frame.
    origin: Option<(Instant, f64)>,
}

impl Pacer {
    fn new(enabled: bool) -> Pacer {
        Pacer {
            enabled,
            origin: None,
        }
    }

    fn wait_for(&mut self, timestamp: f64) {
        if !self.enabled {
            return;
        }
        let (start, first) = *self.origin.get_or_insert((Instant::now(), timestamp));
        let due = Duration::from_secs_f64((timestamp - first).max(0.0));
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            sleep(wait);
        }
    }

    /// Moves the origin later by a pause, so that playback resumes where it stopped.
    fn shift(&mut self, pause: Duration) {
        if let Some((start, _)) = &mut self.origin {
            *start += pause;
        }
    }
}

/// Picks the frames to analyse according to [`Sampling`].
struct Sampler {
    sampling: Sampling,
    seen: u64,
    next_time: Option<f64>,
}

impl Sampler {
    fn new(sampling: Sampling) -> Sampler {
        Sampler {
            sampling,
            seen: 0,
            next_time: None,
        }
    }

    /// Returns true when `frame` is to be analysed. Still images (frames with a file path) are
    /// unrelated to each other and all share timestamp 0, so sampling applies to videos only.
    fn accepts(&mut self, frame: &Frame) -> bool {
        if frame.path.is_some() {
            return true;
        }
        let position = self.seen;
        self.seen += 1;
        match self.sampling {
            Sampling::EveryFrame => true,
            Sampling::EveryNth(step) => position.is_multiple_of(u64::from(step.max(1))),
            Sampling::PerSecond(rate) => {
                let period = 1.0 / rate;
                // Container times are rounded (Matroska's to the millisecond), so a frame a
                // little before its due time still counts: at the video's own rate, every
                // frame is kept.
                let slack = period / 4.0;
                let next = self.next_time.get_or_insert(frame.timestamp);
                if frame.timestamp + slack < *next {
                    return false;
                }
                // Step from the due time, not the frame's, so the rate holds on average, over
                // every period that has begun by this frame at once.
                let begun = ((frame.timestamp + slack - *next) / period).floor() + 1.0;
                *next += begun * period;
                true
            }
        }
    }
}

/// Finds and crops the faces of each frame; builds the detector inside this thread because
/// rustface's detector is not `Send`.
pub(super) fn run_detect(
    config: &PipelineConfig,
    control: &Control,
    receiver: Receiver<Work<Decoded>>,
    sender: SyncSender<Work<Detected>>,
    ready: SyncSender<anyhow::Result<()>>,
) {
    let mut detector = if config.no_detect {
        None
    } else {
        match FaceDetector::new(&config.detector_model, &config.detector) {
            Ok(detector) => Some(detector),
            Err(error) => {
                let _ = ready.send(Err(error.into()));
                return;
            }
        }
    };
    let _ = ready.send(Ok(()));
    let mut finder = FaceFinder {
        known: Vec::new(),
        frames_since_detection: 0,
    };
    for work in receiver {
        if control.is_stop_requested() {
            return;
        }
        let next = match work {
            Work::Frame { source, frame } => {
                let detected = finder.find(config, detector.as_mut(), frame);
                Work::Frame {
                    source,
                    frame: detected,
                }
            }
            Work::InputError {
                source,
                item,
                message,
            } => Work::InputError {
                source,
                item,
                message,
            },
            Work::SourceFailed { source, message } => Work::SourceFailed { source, message },
            Work::End => Work::End,
        };
        if sender.send(next).is_err() {
            return;
        }
    }
}

/// Decides when to run the detector and when to follow the faces found last.
struct FaceFinder {
    /// Each known face's appearance at its last detection, with its box in the last frame.
    known: Vec<(FaceTemplate, FaceBox)>,
    frames_since_detection: u32,
}

impl FaceFinder {
    fn find(
        &mut self,
        config: &PipelineConfig,
        detector: Option<&mut FaceDetector>,
        decoded: Decoded,
    ) -> Detected {
        let Decoded { frame, decode } = decoded;
        let started = Instant::now();
        let faces = match detector {
            None => vec![whole_image_box(&frame)],
            Some(detector) => self.find_with(config, detector, &frame),
        };
        let input_size = crate::model::INPUT_SIZE;
        let margin = if config.no_detect { 0.0 } else { CROP_MARGIN };
        let crops = faces
            .iter()
            .map(|face| crop_face(&frame.image, face, margin, input_size))
            .collect();
        let timings = StageTimings {
            decode,
            detect: started.elapsed(),
            classify: Duration::ZERO,
        };
        Detected {
            frame,
            faces,
            crops,
            timings,
        }
    }

    /// Runs a full detection when one is due, and otherwise follows each known face by its
    /// appearance near its last box. A face that cannot be followed triggers a full detection
    /// of the same frame.
    fn find_with(
        &mut self,
        config: &PipelineConfig,
        detector: &mut FaceDetector,
        frame: &Frame,
    ) -> Vec<FaceBox> {
        let is_still = frame.path.is_some();
        let is_due = self.frames_since_detection + 1 >= config.detect_every.max(1);
        if !(is_still || is_due || self.known.is_empty()) {
            let followed: Option<Vec<FaceBox>> = self
                .known
                .iter()
                .map(|(template, last)| template.follow(&frame.image, last).map(|found| found.face))
                .collect();
            if let Some(faces) = followed {
                self.frames_since_detection += 1;
                for ((_, last), face) in self.known.iter_mut().zip(&faces) {
                    *last = *face;
                }
                return faces;
            }
        }
        let faces = detector.detect(&frame.image);
        self.frames_since_detection = 0;
        self.known = faces
            .iter()
            .map(|face| (FaceTemplate::capture(&frame.image, face), *face))
            .collect();
        faces
    }
}

fn whole_image_box(frame: &Frame) -> FaceBox {
    let (width, height) = frame.image.dimensions();
    FaceBox {
        x: 0,
        y: 0,
        width,
        height,
        score: 0.0,
    }
}

/// The last stage: classifies the crops, follows the faces, records rows and reports events.
pub(super) struct ClassifyStage {
    pub recorder: Option<Recorder>,
    pub events: Sender<PipelineEvent>,
    pub outcome: SyncSender<PipelineOutcome>,
}

impl ClassifyStage {
    pub(super) fn run(
        mut self,
        config: &PipelineConfig,
        control: &Control,
        receiver: Receiver<Work<Detected>>,
        ready: SyncSender<anyhow::Result<()>>,
    ) {
        let model = &config.classifier_model;
        let classifier =
            match Classifier::load_with_precision(model, config.device, config.precision) {
                Ok(classifier) => classifier,
                Err(error) => {
                    let _ = ready.send(Err(error.into()));
                    return;
                }
            };
        let _ = ready.send(Ok(()));
        let mut state = ClassifyState {
            tracker: Tracker::new(config.tracker),
            summaries: config
                .sources
                .iter()
                .map(|spec| SourceSummary::new(&source_label(spec)))
                .collect(),
            tta: config.tta,
            frames_seen: 0,
            annotator: config.annotate.clone().map(Annotator::new),
            output_closed: false,
            last_frame: None,
            failure: None,
            last_activity: Instant::now(),
        };
        for work in receiver {
            if control.is_stop_requested() {
                break;
            }
            let source = match &work {
                Work::Frame { source, .. }
                | Work::InputError { source, .. }
                | Work::SourceFailed { source, .. } => Some(*source),
                Work::End => None,
            };
            if let Some(index) = source {
                let summary = &mut state.summaries[index];
                let pause_total = control.paused_total();
                summary.begin_at(state.last_activity, pause_total);
                summary.set_pause_total(pause_total);
            }
            let result = self.handle(config, &classifier, &mut state, work);
            state.last_activity = Instant::now();
            if let Err(message) = result {
                state.failure = Some(message.clone());
                let _ = self.events.send(PipelineEvent::Failed(message));
                control.request_stop();
                break;
            }
            if state.output_closed {
                control.request_stop();
                break;
            }
        }
        if let (Some(recorder), false) = (&mut self.recorder, state.output_closed) {
            if let Err(error) = recorder.flush() {
                state.failure = Some(error.to_string());
                let _ = self.events.send(PipelineEvent::Failed(error.to_string()));
            }
        }
        let outcome = PipelineOutcome {
            sources: state.summaries,
            dropped_frames: control.dropped_frames(),
            output_closed: state.output_closed,
            failure: state.failure,
        };
        let _ = self.outcome.send(outcome);
    }

    /// Handles one piece of work; an error message means the run cannot go on.
    fn handle(
        &mut self,
        config: &PipelineConfig,
        classifier: &Classifier,
        state: &mut ClassifyState,
        work: Work<Detected>,
    ) -> Result<(), String> {
        match work {
            Work::Frame { source, frame } => {
                state.follow_source(source, frame.frame.index);
                let report = state.classify(classifier, frame)?;
                state.summaries[source].add_frame(&report);
                if let Some(recorder) = &mut self.recorder {
                    let label = row_label(&config.sources[source], &report.frame);
                    let written = recorder.write_frame(&label, &report, config.no_face_rows);
                    state.check_written(written)?;
                }
                if let Some(annotator) = &mut state.annotator {
                    let label = row_label(&config.sources[source], &report.frame);
                    annotator
                        .save(&label, &report)
                        .map_err(|error| error.to_string())?;
                }
                let _ = self.events.send(PipelineEvent::Frame(Box::new(report)));
            }
            Work::InputError {
                source,
                item,
                message,
            } => {
                let label = item.map(|path| path.display().to_string());
                self.record_error(config, state, source, label, &message)?;
                let _ = self.events.send(PipelineEvent::InputError(message));
            }
            Work::SourceFailed { source, message } => {
                self.record_error(config, state, source, None, &message)?;
                // The live monitor has nothing left to show without its one input.
                if config.stop_on_source_failure && state.frames_seen == 0 {
                    return Err(message);
                }
                let _ = self.events.send(PipelineEvent::InputError(message));
            }
            Work::End => {
                let _ = self.events.send(PipelineEvent::EndOfInput);
            }
        }
        Ok(())
    }

    fn record_error(
        &mut self,
        config: &PipelineConfig,
        state: &mut ClassifyState,
        source: usize,
        item: Option<String>,
        message: &str,
    ) -> Result<(), String> {
        // The event reader reports the error to the user, so the log line is for the log file.
        tracing::info!("input error: {message}");
        state.summaries[source].add_error();
        if let Some(recorder) = &mut self.recorder {
            let label = item.unwrap_or_else(|| source_label(&config.sources[source]));
            state.check_written(recorder.write_input_error(&label, message))?;
        }
        Ok(())
    }
}

struct ClassifyState {
    tracker: Tracker,
    summaries: Vec<SourceSummary>,
    /// Views of each face whose probabilities are averaged.
    tta: Tta,
    frames_seen: u64,
    /// Saves the annotated pictures of `analyze --annotate`.
    annotator: Option<Annotator>,
    /// Set when the reader of the rows on standard output has closed it.
    output_closed: bool,
    /// Source index and frame index of the last frame classified.
    last_frame: Option<(usize, u64)>,
    failure: Option<String>,
    /// When the last piece of work was done: the start of the next source's work.
    last_activity: Instant,
}

impl ClassifyState {
    /// Forgets the tracks when the next frame comes from another source, or from an earlier
    /// point of the same one (a looped video), so that no face carries its id and smoothed
    /// probabilities over to an unrelated face. Ids stay unique within the run.
    fn follow_source(&mut self, source: usize, frame_index: u64) {
        let continues = matches!(self.last_frame,
            Some((last_source, last_index)) if last_source == source && last_index < frame_index);
        if !continues {
            self.tracker.reset();
        }
        self.last_frame = Some((source, frame_index));
    }

    /// Turns a failed write of rows into the message that stops the run, unless the reader
    /// of a pipe has closed it (`analyze | head`): then the run ends quietly.
    fn check_written(&mut self, written: Result<(), RecordError>) -> Result<(), String> {
        match written {
            Err(error) if error.is_closed_pipe() => {
                self.output_closed = true;
                Ok(())
            }
            Err(error) => Err(error.to_string()),
            Ok(()) => Ok(()),
        }
    }

    fn classify(
        &mut self,
        classifier: &Classifier,
        detected: Detected,
    ) -> Result<FrameReport, String> {
        let Detected {
            frame,
            faces,
            crops,
            mut timings,
        } = detected;
        let started = Instant::now();
        let scores = classifier
            .classify_with(&crops, self.tta)
            .map_err(|error| error.to_string())?;
        timings.classify = started.elapsed();
        // Still images are unrelated to each other: their faces start new tracks.
        if frame.path.is_some() {
            self.tracker.reset();
        }
        let faces = self.tracker.update(&faces, &scores);
        self.frames_seen += 1;
        Ok(FrameReport {
            frame,
            faces,
            timings,
        })
    }
}

/// Returns the name that rows and summaries give an input.
pub fn source_label(spec: &SourceSpec) -> String {
    match spec {
        SourceSpec::Camera { index } => format!("camera:{index}"),
        SourceSpec::Video(location) => location.clone(),
        SourceSpec::Image(path) => path.display().to_string(),
        SourceSpec::Folder { path, .. } => path.display().to_string(),
    }
}

/// Returns the source column of a frame's rows: the image file for folder inputs.
fn row_label(spec: &SourceSpec, frame: &Frame) -> String {
    match &frame.path {
        Some(path) => path.display().to_string(),
        None => source_label(spec),
    }
}
