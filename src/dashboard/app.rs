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

/// Run details shown in the status lines.
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

/// Pipeline state, as the events received so far report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Frames may still arrive.
    Running,
    /// The source has no more frames, or the pipeline closed its channel without a reason.
    EndOfInput,
    /// The pipeline stopped on a fatal error with this message.
    Failed(String),
}

/// Overlay drawn on top of the dashboard.
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
    /// Frames received in the whole run, and the times of the first and the last.
    frames_received: u64,
    /// When the first and the newest frame arrived, each with the time paused until then.
    first_arrival: Option<(Instant, Duration)>,
    last_arrival: Option<(Instant, Duration)>,
    draw_time: Option<Duration>,
    input_errors: u64,
    last_input_error: Option<String>,
    state: RunState,
    overlay: Overlay,
    quit_requested: bool,
}

impl App {
    /// Creates the state for a run. `control` is the pipeline's, used to pause and stop it.
    ///
    /// A `history_seconds` that is not a positive finite number is replaced by
    /// [`DEFAULT_HISTORY_SECONDS`].
    pub fn new(config: DashboardConfig, control: Control) -> Self {
        let mut window = config.history_seconds;
        if !(window.is_finite() && window > 0.0) {
            tracing::warn!(
                history_seconds = window,
                "invalid history length, using default"
            );
            window = DEFAULT_HISTORY_SECONDS;
        }
        Self {
            config,
            control,
            report: None,
            selected: None,
            history: History::new(window),
            arrivals: VecDeque::new(),
            frames_received: 0,
            first_arrival: None,
            last_arrival: None,
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

    /// Maps a key press to its intent and carries it out. Returns the intent, if any.
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
        self.frames_received += 1;
        let paused = self.control.paused_total();
        self.first_arrival.get_or_insert((now, paused));
        self.last_arrival = Some((now, paused));
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

    /// Returns whether frame reading is paused, read from the shared pipeline control.
    pub fn is_paused(&self) -> bool {
        self.control.is_paused()
    }

    /// Returns the number of frames of a live source dropped so far to keep up with it.
    pub fn dropped_frames(&self) -> u64 {
        self.control.dropped_frames()
    }

    /// Returns whether the user asked to quit.
    pub fn is_quit_requested(&self) -> bool {
        self.quit_requested
    }

    /// Returns the overlay drawn on top of the dashboard.
    pub fn overlay(&self) -> Overlay {
        self.overlay
    }

    /// Returns the number of frames received in the last second, as of the last tick.
    pub fn fps(&self) -> f64 {
        self.arrivals.len() as f64 / RATE_WINDOW.as_secs_f64()
    }

    /// Returns the mean frame rate from the first frame received to the last, pauses left out,
    /// or `None` before two frames have arrived.
    pub fn mean_fps(&self) -> Option<f64> {
        let ((first, paused_before), (last, paused_by_end)) =
            (self.first_arrival?, self.last_arrival?);
        let pauses = paused_by_end.saturating_sub(paused_before);
        let seconds = last
            .saturating_duration_since(first)
            .saturating_sub(pauses)
            .as_secs_f64();
        (self.frames_received >= 2 && seconds > 0.0)
            .then(|| (self.frames_received - 1) as f64 / seconds)
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

/// Keeps the selected track id while that face is in the frame, and otherwise selects the
/// face with the lowest id. A frame without faces keeps the selection, so that a face missed by the
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

#[cfg(test)]
mod tests {
    use ratatui::crossterm::event::{KeyCode, KeyModifiers};

    use super::super::fixture::{self, face, frame_event, HAPPY_SCORES, SAD_SCORES};
    use super::*;
    use crate::detect::FaceBox;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn faces(ids: &[u64]) -> Vec<TrackedFace> {
        ids.iter()
            .map(|&id| {
                let x = 100 * u32::try_from(id).unwrap_or(0);
                let face_box = FaceBox {
                    x,
                    y: 50,
                    width: 80,
                    height: 80,
                    score: 0.9,
                };
                face(
                    id,
                    face_box,
                    if id % 2 == 0 {
                        SAD_SCORES
                    } else {
                        HAPPY_SCORES
                    },
                )
            })
            .collect()
    }

    fn timings(milliseconds: u64) -> StageTimings {
        let duration = Duration::from_millis(milliseconds);
        StageTimings {
            decode: duration,
            detect: 2 * duration,
            classify: 3 * duration,
        }
    }

    #[test]
    fn tab_cycles_selection_by_id() {
        let (mut app, _control) = fixture::app();
        app.handle_event(frame_event(0, 0.0, faces(&[5, 2, 3])));
        assert_eq!(app.selected_id(), Some(2));

        let mut order = Vec::new();
        for _ in 0..4 {
            assert_eq!(app.handle_key(key(KeyCode::Tab)), Some(Intent::NextFace));
            order.push(app.selected_id());
        }
        assert_eq!(order, [Some(3), Some(5), Some(2), Some(3)]);

        app.handle_key(key(KeyCode::BackTab));
        assert_eq!(app.selected_id(), Some(2));
        app.handle_key(key(KeyCode::BackTab));
        assert_eq!(app.selected_id(), Some(5));
    }

    #[test]
    fn selection_follows_id_across_frames() {
        let (mut app, _control) = fixture::app();
        app.handle_event(frame_event(0, 0.0, faces(&[1, 2, 3])));
        app.handle_intent(Intent::NextFace);
        app.handle_intent(Intent::NextFace);
        assert_eq!(app.selected_id(), Some(3));

        // Same ids in another order, and a new face: the selection stays on track 3.
        app.handle_event(frame_event(1, 0.1, faces(&[4, 3, 1, 2])));
        assert_eq!(app.selected_id(), Some(3));
        assert_eq!(app.selected_face().map(|face| face.id), Some(3));
    }

    #[test]
    fn selection_falls_back_when_face_leaves() {
        let (mut app, _control) = fixture::app();
        app.handle_event(frame_event(0, 0.0, faces(&[4, 7])));
        app.handle_intent(Intent::NextFace);
        assert_eq!(app.selected_id(), Some(7));

        app.handle_event(frame_event(1, 0.1, faces(&[9, 4])));
        assert_eq!(app.selected_id(), Some(4));
    }

    #[test]
    fn empty_frame_keeps_selection() {
        let (mut app, _control) = fixture::app();
        app.handle_event(frame_event(0, 0.0, faces(&[1, 2])));
        app.handle_intent(Intent::NextFace);
        app.handle_event(frame_event(1, 0.1, Vec::new()));

        assert_eq!(app.selected_id(), Some(2));
        assert!(app.selected_face().is_none());
        app.handle_event(frame_event(2, 0.2, faces(&[1, 2])));
        assert_eq!(app.selected_face().map(|face| face.id), Some(2));
    }

    #[test]
    fn tab_without_faces_does_nothing() {
        let (mut app, _control) = fixture::app();
        app.handle_intent(Intent::NextFace);
        assert_eq!(app.selected_id(), None);

        app.handle_event(frame_event(0, 0.0, Vec::new()));
        app.handle_intent(Intent::PreviousFace);
        assert_eq!(app.selected_id(), None);
    }

    #[test]
    fn space_toggles_pause() {
        let (mut app, control) = fixture::app();

        app.handle_key(key(KeyCode::Char(' ')));
        assert!(control.is_paused());
        assert!(app.is_paused());
        app.handle_key(key(KeyCode::Char(' ')));
        assert!(!control.is_paused());
    }

    #[test]
    fn quit_keys_request_stop() {
        let quit_keys = [
            key(KeyCode::Char('q')),
            key(KeyCode::Esc),
            KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL),
        ];
        for quit_key in quit_keys {
            let (mut app, control) = fixture::app();
            assert!(!control.is_stop_requested());

            assert_eq!(app.handle_key(quit_key), Some(Intent::Quit));
            assert!(
                control.is_stop_requested(),
                "{quit_key:?} did not stop the pipeline"
            );
            assert!(app.is_quit_requested(), "{quit_key:?} did not quit");
        }
    }

    #[test]
    fn question_mark_toggles_help() {
        let (mut app, control) = fixture::app();

        app.handle_key(key(KeyCode::Char('?')));
        assert_eq!(app.overlay(), Overlay::Help);
        app.handle_key(key(KeyCode::Char('?')));
        assert_eq!(app.overlay(), Overlay::None);
        assert!(!control.is_stop_requested());
    }

    #[test]
    fn fps_counts_last_second() {
        let (mut app, _control) = fixture::app();
        let start = Instant::now();
        for (index, offset) in [0, 400, 800].into_iter().enumerate() {
            let now = start + Duration::from_millis(offset);
            app.handle_event_at(frame_event(index as u64, 0.0, Vec::new()), now);
        }
        assert_eq!(app.fps(), 3.0);

        app.on_tick(start + Duration::from_millis(1_500));
        assert_eq!(app.fps(), 1.0);
        app.on_tick(start + Duration::from_millis(3_000));
        assert_eq!(app.fps(), 0.0);
    }

    #[test]
    fn stage_timings_average_last_second() {
        let (mut app, _control) = fixture::app();
        let start = Instant::now();
        for (index, milliseconds) in [2, 4].into_iter().enumerate() {
            let mut event = frame_event(index as u64, 0.0, Vec::new());
            if let PipelineEvent::Frame(report) = &mut event {
                report.timings = timings(milliseconds);
            }
            app.handle_event_at(event, start);
        }
        assert_eq!(app.stage_timings(), Some(timings(3)));

        // With no frame in the last second the newest frame's timings remain.
        app.on_tick(start + Duration::from_secs(5));
        assert_eq!(app.stage_timings(), Some(timings(4)));
    }

    #[test]
    fn disconnect_ends_input_unless_failed() {
        let (mut app, _control) = fixture::app();
        app.handle_disconnect();
        assert_eq!(app.state(), &RunState::EndOfInput);

        let (mut failed, _control) = fixture::app();
        failed.handle_event(PipelineEvent::Failed("model file truncated".into()));
        failed.handle_disconnect();
        failed.handle_event(PipelineEvent::EndOfInput);
        assert_eq!(
            failed.state(),
            &RunState::Failed("model file truncated".into())
        );
    }

    #[test]
    fn input_errors_are_counted() {
        let (mut app, _control) = fixture::app();
        app.handle_event(PipelineEvent::InputError("first".into()));
        app.handle_event(PipelineEvent::InputError("second".into()));

        assert_eq!(app.input_errors(), (2, Some("second")));
        assert_eq!(app.state(), &RunState::Running);
    }

    #[test]
    fn invalid_history_length_uses_default() {
        for seconds in [f64::NAN, 0.0, -5.0, f64::INFINITY] {
            let config = DashboardConfig {
                history_seconds: seconds,
                ..fixture::config()
            };
            let app = App::new(config, Control::default());
            assert_eq!(app.history().window(), DEFAULT_HISTORY_SECONDS);
        }
    }
}
