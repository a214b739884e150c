//! Dashboard state: the newest frame, the selected face, the history, the frame rate and what
//! the pipeline last reported.
//!
//! `App` changes only through pipeline events, intents and ticks, so that drawing can be a
//! pure function of it and tests can drive it without a terminal.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::KeyEvent;

use super::history::History;
use super::input::{self, Intent};
use crate::pipeline::{Control, FrameReport, PipelineEvent, StageTimings};
use crate::track::TrackedFace;

/// History length used when the configured one is not a positive number of seconds.
pub const DEFAULT_HISTORY_SECONDS: f64 = 30.0;

/// Span of wall-clock time over which the frame rate and the mean stage timings are taken.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// What the dashboard shows about the run, besides the frames.
#[derive(Clone, Debug, PartialEq)]
pub struct DashboardConfig {
    /// The frame source as the user gave it: camera index, file or folder.
    pub source: String,
    /// The device the model runs on, such as `cpu` or `cuda:0`.
    pub device: String,
    /// The model checkpoint or name.
    pub model: String,
    /// Length of the rolling history in seconds of source time.
    pub history_seconds: f64,
}

/// Where the pipeline stands, from the events received so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Frames may still arrive.
    Running,
    /// The source has no more frames, or the pipeline hung up without saying why.
    EndOfInput,
    /// The pipeline stopped on a fatal error with this message.
    Failed(String),
}

/// What is drawn over the dashboard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overlay {
    None,
    Help,
}

/// All dashboard state.
#[derive(Debug)]
pub struct App {
    config: DashboardConfig,
    control: Control,
    report: Option<Box<FrameReport>>,
    selected: Option<u64>,
    history: History,
    /// Arrival time and stage timings of each frame received in the last [`RATE_WINDOW`].
    arrivals: VecDeque<(Instant, StageTimings)>,
    draw_time: Option<Duration>,
    input_errors: u64,
    last_input_error: Option<String>,
    state: RunState,
    overlay: Overlay,
    quit_requested: bool,
}

impl App {
    /// Creates the state for a run; `control` is the pipeline's, used to pause and stop it.
    ///
    /// A `history_seconds` that is not a positive finite number is replaced by
    /// [`DEFAULT_HISTORY_SECONDS`].
    pub fn new(config: DashboardConfig, control: Control) -> Self {
        let mut window = config.history_seconds;
        if !(window.is_finite() && window > 0.0) {
            tracing::warn!(history_seconds = window, "invalid history length, using default");
            window = DEFAULT_HISTORY_SECONDS;
        }
        Self {
            config,
            control,
            report: None,
            selected: None,
            history: History::new(window),
            arrivals: VecDeque::new(),
            draw_time: None,
            input_errors: 0,
            last_input_error: None,
            state: RunState::Running,
            overlay: Overlay::None,
            quit_requested: false,
        }
    }

    /// Applies one pipeline event received now.
    pub fn handle_event(&mut self, event: PipelineEvent) {
        self.handle_event_at(event, Instant::now());
    }

    /// Applies one pipeline event received at `now`.
    pub fn handle_event_at(&mut self, event: PipelineEvent, now: Instant) {
        match event {
            PipelineEvent::Frame(report) => self.handle_frame(report, now),
            PipelineEvent::InputError(message) => {
                self.input_errors += 1;
                self.last_input_error = Some(message);
            }
            PipelineEvent::EndOfInput => {
                if self.state == RunState::Running {
                    tracing::debug!("pipeline reported end of input");
                    self.state = RunState::EndOfInput;
                }
            }
            PipelineEvent::Failed(message) => {
                tracing::debug!(%message, "pipeline reported a fatal error");
                self.state = RunState::Failed(message);
            }
        }
    }

    /// Records that the pipeline closed its channel, which ends the input unless it failed.
    pub fn handle_disconnect(&mut self) {
        if self.state == RunState::Running {
            tracing::debug!("pipeline channel closed without end of input");
            self.state = RunState::EndOfInput;
        }
    }

    /// Maps a key press to its intent and carries it out; returns the intent, if any.
    pub fn handle_key(&mut self, key: KeyEvent) -> Option<Intent> {
        let intent = input::handle_key(key)?;
        self.handle_intent(intent);
        Some(intent)
    }

    /// Carries out one intent.
    pub fn handle_intent(&mut self, intent: Intent) {
        match intent {
            Intent::Quit => {
                self.control.request_stop();
                self.quit_requested = true;
            }
            Intent::TogglePause => self.control.set_paused(!self.control.is_paused()),
            Intent::NextFace => self.select_adjacent(true),
            Intent::PreviousFace => self.select_adjacent(false),
            Intent::ToggleHelp => {
                self.overlay = match self.overlay {
                    Overlay::None => Overlay::Help,
                    Overlay::Help => Overlay::None,
                };
            }
        }
    }

    /// Drops frame arrivals older than the rate window, so that the frame rate falls to 0
    /// while no frames come.
    pub fn on_tick(&mut self, now: Instant) {
        while let Some(&(arrival, _)) = self.arrivals.front() {
            if now.saturating_duration_since(arrival) <= RATE_WINDOW {
                break;
            }
            self.arrivals.pop_front();
        }
    }

    /// Stores how long the last terminal draw took.
    pub fn record_draw_time(&mut self, duration: Duration) {
        self.draw_time = Some(duration);
    }

    fn handle_frame(&mut self, report: Box<FrameReport>, now: Instant) {
        self.arrivals.push_back((now, report.timings));
        self.on_tick(now);
        self.history.record(report.frame.timestamp, &report.faces);
        self.selected = follow_selection(self.selected, &report.faces);
        self.report = Some(report);
    }

    fn select_adjacent(&mut self, forward: bool) {
        let Some(report) = &self.report else {
            return;
        };
        let mut ids: Vec<u64> = report.faces.iter().map(|face| face.id).collect();
        ids.sort_unstable();
        let current = self.selected.filter(|id| ids.contains(id));
        let next = match (current, forward) {
            (Some(id), true) => ids.iter().find(|&&other| other > id).or(ids.first()),
            (Some(id), false) => ids.iter().rev().find(|&&other| other < id).or(ids.last()),
            (None, true) => ids.first(),
            (None, false) => ids.last(),
        };
        if let Some(&id) = next {
            self.selected = Some(id);
        }
    }
}

/// Read access for drawing.
impl App {
    /// Returns the configuration the dashboard was started with.
    pub fn config(&self) -> &DashboardConfig {
        &self.config
    }

    /// Returns the newest frame report, if any frame arrived.
    pub fn report(&self) -> Option<&FrameReport> {
        self.report.as_deref()
    }

    /// Returns the track id of the selected face, which may be absent from the newest frame.
    pub fn selected_id(&self) -> Option<u64> {
        self.selected
    }

    /// Returns the selected face in the newest frame.
    pub fn selected_face(&self) -> Option<&TrackedFace> {
        let id = self.selected?;
        self.report()?.faces.iter().find(|face| face.id == id)
    }

    /// Returns the rolling history of every face.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Returns the pipeline state.
    pub fn state(&self) -> &RunState {
        &self.state
    }

    /// Returns whether frame reading is paused, as the shared pipeline control says.
    pub fn is_paused(&self) -> bool {
        self.control.is_paused()
    }

    /// Returns whether the user asked to quit.
    pub fn is_quit_requested(&self) -> bool {
        self.quit_requested
    }

    /// Returns what is drawn over the dashboard.
    pub fn overlay(&self) -> Overlay {
        self.overlay
    }

    /// Returns the number of frames received in the last second, as of the last tick.
    pub fn fps(&self) -> f64 {
        self.arrivals.len() as f64 / RATE_WINDOW.as_secs_f64()
    }

    /// Returns the mean stage timings of the frames received in the last second, or those of
    /// the newest frame when none arrived in that time.
    pub fn stage_timings(&self) -> Option<StageTimings> {
        let count = u32::try_from(self.arrivals.len()).unwrap_or(u32::MAX);
        if count == 0 {
            return self.report().map(|report| report.timings);
        }
        let mut total = StageTimings::default();
        for (_, timings) in &self.arrivals {
            total.decode += timings.decode;
            total.detect += timings.detect;
            total.classify += timings.classify;
        }
        Some(StageTimings {
            decode: total.decode / count,
            detect: total.detect / count,
            classify: total.classify / count,
        })
    }

    /// Returns how long the last terminal draw took.
    pub fn draw_time(&self) -> Option<Duration> {
        self.draw_time
    }

    /// Returns the number of input errors and the message of the last one.
    pub fn input_errors(&self) -> (u64, Option<&str>) {
        (self.input_errors, self.last_input_error.as_deref())
    }
}

/// Keeps the selected track id while that face is in the frame; otherwise selects the face
/// with the lowest id. A frame without faces keeps the selection, so that a face missed by the
/// detector for a few frames stays selected when it comes back.
fn follow_selection(selected: Option<u64>, faces: &[TrackedFace]) -> Option<u64> {
    if faces.is_empty() {
        return selected;
    }
    match selected {
        Some(id) if faces.iter().any(|face| face.id == id) => Some(id),
        _ => faces.iter().map(|face| face.id).min(),
    }
}
