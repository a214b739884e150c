//! The frame pipeline: decoding, detection, classification and tracking on worker threads,
//! reporting each processed frame as a [`PipelineEvent`] over one channel.

mod stages;

pub use stages::{source_label, CROP_MARGIN};

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::capture::{CaptureOptions, Frame, SourceSpec};
use crate::detect::DetectorSettings;
use crate::model::{Precision, Tta};
use crate::record::summary::SourceSummary;
use crate::record::Recorder;
use crate::track::{TrackedFace, TrackerSettings};

/// Time spent on one frame in each stage.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageTimings {
    pub decode: Duration,
    pub detect: Duration,
    pub classify: Duration,
}

/// One processed frame with its faces.
#[derive(Clone, Debug)]
pub struct FrameReport {
    pub frame: Frame,
    pub faces: Vec<TrackedFace>,
    pub timings: StageTimings,
}

/// Event sent by the pipeline to the dashboard or to a headless loop.
#[derive(Debug)]
pub enum PipelineEvent {
    Frame(Box<FrameReport>),
    /// A recoverable problem with one input item (an unreadable file in a folder); the run
    /// goes on.
    InputError(String),
    /// The source has no more frames.
    EndOfInput,
    /// The run cannot go on; the message names the cause.
    Failed(String),
}

/// Stop and pause flags shared between the pipeline threads and the code that drives them.
#[derive(Clone, Debug, Default)]
pub struct Control {
    stop: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    /// Total time spent paused, in nanoseconds.
    paused_nanos: Arc<AtomicU64>,
    /// Frames of live sources dropped because the stages were still busy.
    dropped_frames: Arc<AtomicU64>,
}

impl Control {
    /// Asks every pipeline thread to finish.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    pub fn is_stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Returns the flag that a stop request sets, for sources that end blocking reads.
    pub(crate) fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Pauses or resumes reading frames.
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// Adds the length of a pause to the total time paused.
    pub fn add_pause(&self, pause: Duration) {
        let nanos = u64::try_from(pause.as_nanos()).unwrap_or(u64::MAX);
        self.paused_nanos.fetch_add(nanos, Ordering::SeqCst);
    }

    /// Returns the total time the run has spent paused so far.
    pub fn paused_total(&self) -> Duration {
        Duration::from_nanos(self.paused_nanos.load(Ordering::SeqCst))
    }

    /// Counts a frame of a live source that was dropped because the stages were busy.
    pub fn add_dropped_frame(&self) {
        self.dropped_frames.fetch_add(1, Ordering::SeqCst);
    }

    /// Returns the number of frames dropped so far.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped_frames.load(Ordering::SeqCst)
    }
}

/// Everything the pipeline threads need to run.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Inputs, read one after the other.
    pub sources: Vec<SourceSpec>,
    pub capture: CaptureOptions,
    pub detector: DetectorSettings,
    pub detector_model: PathBuf,
    pub classifier_model: PathBuf,
    pub device: tch::Device,
    pub precision: Precision,
    /// Views of each face whose probabilities are averaged.
    pub tta: Tta,
    pub tracker: TrackerSettings,
    /// Run the detector on every Nth frame of a video or camera, following the faces found in
    /// between; images are always detected. A frame without a face is always followed by a
    /// detection.
    pub detect_every: u32,
    /// Selection rule for the frames of a video to analyse.
    pub sampling: Sampling,
    /// Play files at their own frame rate and drop frames that the stages cannot keep up with,
    /// as a camera does, instead of processing every frame as fast as possible.
    pub real_time: bool,
    /// Start the inputs over when they end.
    pub looping: bool,
    /// Treat each image as one face that is already cropped (no detection).
    pub no_detect: bool,
    /// Record a `no_face` row for each analysed frame without a face.
    pub no_face_rows: bool,
    /// End the run when an input cannot be opened before any frame was read, as the live
    /// monitor does. Otherwise the input is counted as an error and the run goes on.
    pub stop_on_source_failure: bool,
    /// Folder for annotated pictures of every analysed frame.
    pub annotate: Option<PathBuf>,
}

/// Selection of frames to analyse from a video.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Sampling {
    #[default]
    EveryFrame,
    /// Every Nth frame, starting with the first.
    EveryNth(u32),
    /// At most this many frames per second of source time.
    PerSecond(f64),
}

/// A running pipeline: the handle to stop it and collect its results.
pub struct Pipeline {
    pub control: Control,
    threads: Vec<JoinHandle<()>>,
    outcome: Receiver<PipelineOutcome>,
}

/// Results of a finished pipeline.
#[derive(Debug)]
pub struct PipelineOutcome {
    /// One summary per input, in input order.
    pub sources: Vec<SourceSummary>,
    /// Frames a live source delivered while the stages were still busy with earlier ones.
    pub dropped_frames: u64,
    /// True when the rows went to a pipe whose reader closed it, which ended the run early.
    pub output_closed: bool,
    /// Reason the run stopped early, when it could not go on.
    pub failure: Option<String>,
}

impl Pipeline {
    /// Starts the decode, detect and classify threads and waits until the detector and the
    /// classifier are loaded; returns the pipeline and the receiver of its events.
    ///
    /// Per-face rows go to `recorder` as frames are classified. The event channel is unbounded,
    /// so the receiver must be drained (or dropped) while the pipeline runs.
    ///
    /// # Errors
    ///
    /// Returns the detector's or the classifier's load error, naming the file.
    pub fn start(
        config: PipelineConfig,
        recorder: Option<Recorder>,
    ) -> anyhow::Result<(Pipeline, Receiver<PipelineEvent>)> {
        let control = Control::default();
        let (frame_sender, frame_receiver) = sync_channel(2);
        let (detected_sender, detected_receiver) = sync_channel(2);
        let (event_sender, events) = channel();
        let (outcome_sender, outcome) = sync_channel(1);
        let (ready_sender, ready) = sync_channel(2);
        let config = Arc::new(config);

        let mut threads = Vec::new();
        let detect_ready = ready_sender.clone();
        let detect_config = Arc::clone(&config);
        let detect_control = control.clone();
        threads.push(spawn("detect", move || {
            stages::run_detect(
                &detect_config,
                &detect_control,
                frame_receiver,
                detected_sender,
                detect_ready,
            )
        })?);
        let classify_config = Arc::clone(&config);
        let classify_control = control.clone();
        threads.push(spawn("classify", move || {
            let stage = stages::ClassifyStage {
                recorder,
                events: event_sender,
                outcome: outcome_sender,
            };
            stage.run(
                &classify_config,
                &classify_control,
                detected_receiver,
                ready_sender,
            )
        })?);
        for _ in 0..2 {
            match ready.recv() {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    control.request_stop();
                    return Err(error);
                }
                Err(_) => anyhow::bail!("a pipeline thread ended while loading its model"),
            }
        }
        let decode_config = Arc::clone(&config);
        let decode_control = control.clone();
        threads.push(spawn("decode", move || {
            stages::run_decode(&decode_config, &decode_control, frame_sender)
        })?);
        Ok((
            Pipeline {
                control,
                threads,
                outcome,
            },
            events,
        ))
    }

    /// Stops the threads (if they are still running), waits for them and returns the
    /// summaries. Rows already recorded are flushed by then.
    pub fn finish(self) -> PipelineOutcome {
        self.control.request_stop();
        for thread in self.threads {
            if thread.join().is_err() {
                tracing::error!("a pipeline thread panicked");
            }
        }
        self.outcome.recv().unwrap_or_else(|_| PipelineOutcome {
            sources: Vec::new(),
            dropped_frames: 0,
            output_closed: false,
            failure: Some("the pipeline ended without a result".to_owned()),
        })
    }
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> anyhow::Result<JoinHandle<()>> {
    let handle = std::thread::Builder::new()
        .name(format!("moodscope-{name}"))
        .spawn(body)
        .map_err(|error| anyhow::anyhow!("cannot start the {name} thread: {error}"))?;
    Ok(handle)
}

/// Sets libtorch's intra-op thread count, and one inter-op thread.
///
/// The stages already keep the cores busy with decoding and detection; a forward pass that
/// also spreads over every core makes them wait on each other, and an oversubscribed libtorch
/// pass can be many times slower than a single-threaded one.
pub fn set_torch_threads(threads: u32) {
    tch::set_num_threads(threads.try_into().unwrap_or(1));
    tch::set_num_interop_threads(1);
    tracing::info!("libtorch uses {threads} intra-op thread(s) and 1 inter-op thread");
}
