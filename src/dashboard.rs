//! The terminal dashboard: an ASCII preview of the newest frame with its faces, probability
//! bars and a rolling history for the selected face, and status lines.
//!
//! [`run`] owns the terminal and the event loop. State lives in [`App`], key bindings in
//! `input`, drawing in [`render`] and [`Preview`], terminal setup and restore in `terminal`.
//! Frames, faces and scores come from the pipeline, which this module only reads and
//! controls through [`Control`].

mod app;
#[cfg(test)]
mod fixture;
mod history;
mod input;
mod preview;
mod render;
mod terminal;

use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use anyhow::Context;
use ratatui::crossterm::event::{self, Event};

pub use app::{App, DashboardConfig, Overlay, RunState, DEFAULT_HISTORY_SECONDS};
pub use history::History;
pub use input::{Intent, KEY_HELP};
pub use preview::{fit, Preview, CELL_ASPECT, RAMP};
pub use render::{class_color, render, MIN_HEIGHT, MIN_WIDTH};

use crate::pipeline::{Control, PipelineEvent};
use terminal::{TerminalGuard, Tui};

/// Time one loop waits for a key, short enough to pick up frames at camera rate.
const POLL_TIMEOUT: Duration = Duration::from_millis(20);

/// Shortest time between two draws, which caps drawing at about 30 times a second.
const DRAW_INTERVAL: Duration = Duration::from_millis(33);

/// Most pipeline events applied per loop, so that a flood of events cannot starve the keys.
const MAX_EVENTS_PER_LOOP: usize = 256;

/// Takes over the terminal and shows pipeline events until the user quits.
///
/// Quitting, and any other way out of this function, a panic included, requests a pipeline
/// stop. The terminal is restored on every exit path: normal return, error and panic.
///
/// # Errors
///
/// Returns an error when the terminal cannot be set up, drawn on, read from or restored.
pub fn run(
    events: Receiver<PipelineEvent>,
    control: Control,
    config: DashboardConfig,
) -> anyhow::Result<()> {
    let _stop = StopOnDrop(control.clone());
    let mut app = App::new(config, control);
    let mut guard = TerminalGuard::enter().context("failed to set up the terminal")?;
    let result = run_loop(guard.terminal(), &mut app, &events);
    let restored = guard.restore().context("failed to restore the terminal");
    result.and(restored)
}

/// Pipeline control that requests a stop when dropped.
struct StopOnDrop(Control);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.request_stop();
    }
}

fn run_loop(
    terminal: &mut Tui,
    app: &mut App,
    events: &Receiver<PipelineEvent>,
) -> anyhow::Result<()> {
    let mut is_connected = true;
    let mut needs_draw = true;
    let mut last_draw: Option<Instant> = None;
    // SIGTERM (and Ctrl-C outside raw mode) only sets a flag, which ends the loop like `q`.
    while !app.is_quit_requested() && !crate::monitor::is_interrupted() {
        if is_connected {
            let (changed, connected) = drain_events(app, events);
            needs_draw |= changed;
            is_connected = connected;
        }

        let now = Instant::now();
        let fps = app.fps();
        app.on_tick(now);
        needs_draw |= app.fps() != fps;

        let is_due = last_draw.is_none_or(|last| now.duration_since(last) >= DRAW_INTERVAL);
        if needs_draw && is_due {
            let start = Instant::now();
            terminal
                .draw(|frame| render(frame, app))
                .context("failed to draw the dashboard")?;
            app.record_draw_time(start.elapsed());
            last_draw = Some(now);
            needs_draw = false;
        }

        needs_draw |= handle_terminal_events(app)?;
    }
    Ok(())
}

/// Applies the pending pipeline events without waiting. Returns whether any arrived and
/// whether the channel is still open.
fn drain_events(app: &mut App, events: &Receiver<PipelineEvent>) -> (bool, bool) {
    let mut changed = false;
    for _ in 0..MAX_EVENTS_PER_LOOP {
        match events.try_recv() {
            Ok(event) => {
                app.handle_event(event);
                changed = true;
            }
            Err(TryRecvError::Empty) => return (changed, true),
            Err(TryRecvError::Disconnected) => {
                app.handle_disconnect();
                return (true, false);
            }
        }
    }
    (changed, true)
}

/// Waits up to [`POLL_TIMEOUT`] for terminal input and applies all that is pending. Returns
/// whether the screen needs drawing again. Resizes need nothing more, because
/// `Terminal::draw` resizes its buffers to the terminal before each draw.
fn handle_terminal_events(app: &mut App) -> anyhow::Result<bool> {
    let mut changed = false;
    let mut timeout = POLL_TIMEOUT;
    while event::poll(timeout).context("failed to poll terminal input")? {
        match event::read().context("failed to read terminal input")? {
            Event::Key(key) => changed |= app.handle_key(key).is_some(),
            Event::Resize(..) => changed = true,
            _ => {}
        }
        timeout = Duration::ZERO;
    }
    Ok(changed)
}

/// Converts a probability to a whole percentage from 0 to 100, and NaN to 0.
fn percent(probability: f32) -> u32 {
    // `as` maps NaN to 0 and the clamp keeps other values in range.
    (probability * 100.0).round().clamp(0.0, 100.0) as u32
}
