//! The frame pipeline: decoding, detection, classification and tracking on worker threads,
//! reporting each processed frame as a [`PipelineEvent`] over one channel.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::capture::Frame;
use crate::track::TrackedFace;

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

/// What the pipeline sends to the dashboard or the recorder.
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

/// Flags shared between the pipeline threads and whoever drives them.
#[derive(Clone, Debug, Default)]
pub struct Control {
    stop: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
}

impl Control {
    /// Asks every pipeline thread to finish.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    pub fn is_stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Pauses or resumes reading frames.
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }
}
