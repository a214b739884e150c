//! Drawing: every function here reads `App` and draws into a frame, and none changes state.
//!
//! Layout, top to bottom: the preview beside the probability bars, the history strips, then
//! three status lines. Below [`MIN_WIDTH`] x [`MIN_HEIGHT`] cells only a message is drawn.

use std::time::Duration;

use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::symbols;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, LineGauge, Paragraph, Wrap};
use ratatui::Frame;

use super::app::{App, Overlay, RunState};
use super::input::KEY_HELP;
use super::percent;
use super::preview::Preview;
use crate::emotion::{Emotion, EmotionScores};

/// Narrowest terminal the dashboard draws in: the bars need 30 columns beside a preview of
/// at least as many.
pub const MIN_WIDTH: u16 = 60;

/// Lowest terminal the dashboard draws in: 9 rows of bars, 9 of history and 3 status lines.
pub const MIN_HEIGHT: u16 = 21;

/// Rows of the history panel: one per class and the two borders.
const HISTORY_HEIGHT: u16 = 9;

/// Columns of a class name in the bars and the history: a marker, a space and "surprise".
const NAME_WIDTH: u16 = 10;

/// Sparkline levels from a probability of 0 to 1.
const LEVELS: [&str; 8] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"];

/// Key hint at the right of the last status line.
const KEY_HINT: &str = "? help  q quit";

/// Draws the whole dashboard for the current state of `app`.
pub fn render(frame: &mut Frame, app: &App) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        render_too_small(frame, area);
        return;
    }

    let [body, status] = Layout::vertical([Constraint::Fill(1), Constraint::Length(3)]).areas(area);
    let [top, history] =
        Layout::vertical([Constraint::Fill(1), Constraint::Length(HISTORY_HEIGHT)]).areas(body);
    let bars_width = (area.width / 3).clamp(30, 48);
    let [preview, bars] =
        Layout::horizontal([Constraint::Fill(1), Constraint::Length(bars_width)]).areas(top);

    render_preview(frame, app, preview);
    render_bars(frame, app, bars);
    render_history(frame, app, history);
    render_status(frame, app, status);
    if app.overlay() == Overlay::Help {
        render_help(frame, area);
    }
}

/// Returns the colour that stands for `emotion` in the bars and the history.
pub fn class_color(emotion: Emotion) -> Color {
    match emotion {
        Emotion::Angry => Color::Red,
        Emotion::Disgust => Color::Green,
        Emotion::Fear => Color::Magenta,
        Emotion::Happy => Color::Yellow,
        Emotion::Sad => Color::LightBlue,
        Emotion::Surprise => Color::Cyan,
        Emotion::Neutral => Color::Gray,
    }
}

fn render_too_small(frame: &mut Frame, area: Rect) {
    if area.is_empty() {
        return;
    }
    let text = vec![
        Line::from(format!("terminal too small: {}x{}", area.width, area.height)),
        Line::from(format!("resize to at least {MIN_WIDTH}x{MIN_HEIGHT}")),
    ];
    let paragraph = Paragraph::new(text).alignment(Alignment::Center).wrap(Wrap { trim: true });
    let height = u16::try_from(paragraph.line_count(area.width)).unwrap_or(u16::MAX);
    let height = height.min(area.height);
    let y = area.y + (area.height - height) / 2;
    frame.render_widget(paragraph, Rect::new(area.x, y, area.width, height));
}

fn render_preview(frame: &mut Frame, app: &App, area: Rect) {
    let block = Block::bordered().title(" preview ");
    let inner = block.inner(area);
    frame.render_widget(block, area);

    let Some(report) = app.report() else {
        let waiting = Paragraph::new("waiting for frames").alignment(Alignment::Center);
        frame.render_widget(waiting, centre_row(inner));
        return;
    };
    let preview = Preview::new(&report.frame.image, &report.faces, app.selected_id());
    frame.render_widget(preview, inner);
}

fn render_bars(frame: &mut Frame, app: &App, area: Rect) {
    let face = app.selected_face();
    let title = match face {
        Some(face) => format!(" face #{} ", face.id),
        None => " no face ".to_owned(),
    };
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);

    let scores = face.map(|face| face.scores);
    let dominant = scores.map(|scores| scores.dominant());
    for (row, emotion) in inner.rows().zip(Emotion::ALL) {
        let probability = scores.map(|scores| scores.get(emotion));
        render_bar(frame, row, emotion, probability, dominant == Some(emotion));
    }
}

/// Draws one class row: marker and name, bar, percentage. `None` draws an empty bar.
fn render_bar(frame: &mut Frame, row: Rect, emotion: Emotion, probability: Option<f32>, is_dominant: bool) {
    let [name, bar, value] = Layout::horizontal([
        Constraint::Length(NAME_WIDTH),
        Constraint::Fill(1),
        Constraint::Length(5),
    ])
    .areas(row);
    let color = class_color(emotion);
    let emphasis = if is_dominant { Modifier::BOLD } else { Modifier::empty() };

    frame.render_widget(class_label(emotion, is_dominant), name);
    let ratio = probability.map_or(0.0, |p| f64::from(p).clamp(0.0, 1.0));
    let ratio = if ratio.is_nan() { 0.0 } else { ratio };
    let gauge = LineGauge::default()
        .ratio(ratio)
        .label("")
        .line_set(symbols::line::THICK)
        .filled_style(Style::new().fg(color).add_modifier(emphasis))
        .unfilled_style(Style::new().fg(Color::DarkGray));
    frame.render_widget(gauge, bar);
    if let Some(probability) = probability {
        let text = format!("{:>4}%", percent(probability));
        frame.render_widget(Span::styled(text, Style::new().add_modifier(emphasis)), value);
    }
}

/// Returns a class name in its colour, marked and bold when it is the dominant class.
fn class_label(emotion: Emotion, is_dominant: bool) -> Line<'static> {
    let style = Style::new().fg(class_color(emotion));
    if is_dominant {
        Line::from(vec![Span::styled("▶ ", style), Span::styled(emotion.name(), style.bold())])
    } else {
        Line::from(vec![Span::raw("  "), Span::styled(emotion.name(), style)])
    }
}

fn render_history(frame: &mut Frame, app: &App, area: Rect) {
    let window = app.history().window();
    let title = match app.selected_id() {
        Some(id) => format!(" history of face #{id} "),
        None => " history: no face ".to_owned(),
    };
    let block = Block::bordered()
        .title(title)
        .title_bottom(Line::from(format!(" -{} s ", format_seconds(window))).left_aligned())
        .title_bottom(Line::from(" now ").right_aligned());
    let inner = block.inner(area);
    frame.render_widget(block, area);

    let strip_width = inner.width.saturating_sub(NAME_WIDTH);
    let columns = match app.selected_id() {
        Some(id) => app.history().columns(id, usize::from(strip_width)),
        None => vec![None; usize::from(strip_width)],
    };
    for (row, emotion) in inner.rows().zip(Emotion::ALL) {
        frame.render_widget(class_label(emotion, false), row);
        render_strip(frame, row, emotion, &columns);
    }
}

/// Draws one class's probability over time as a sparkline right of its name; a slice without
/// samples stays blank.
fn render_strip(frame: &mut Frame, row: Rect, emotion: Emotion, columns: &[Option<EmotionScores>]) {
    let style = Style::new().fg(class_color(emotion));
    let buf = frame.buffer_mut();
    let start = row.x + NAME_WIDTH;
    for (x, scores) in (start..row.right()).zip(columns) {
        let Some(scores) = scores else {
            continue;
        };
        let probability = scores.get(emotion).clamp(0.0, 1.0);
        let level = if probability.is_nan() { 0 } else { (probability * 7.0).round() as usize };
        buf[(x, row.y)].set_symbol(LEVELS[level]).set_style(style);
    }
}

fn render_status(frame: &mut Frame, app: &App, area: Rect) {
    let [run, rates, timings] = Layout::vertical([Constraint::Length(1); 3]).areas(area);
    let config = app.config();
    let label = Style::new().fg(Color::DarkGray);
    let line = Line::from(vec![
        Span::styled("source: ", label),
        Span::raw(config.source.as_str()),
        Span::styled("  device: ", label),
        Span::raw(config.device.as_str()),
        Span::styled("  model: ", label),
        Span::raw(config.model.as_str()),
    ]);
    frame.render_widget(line, run);
    frame.render_widget(state_line(app), rates);

    let [times, hint] = Layout::horizontal([
        Constraint::Fill(1),
        Constraint::Length(KEY_HINT.len() as u16),
    ])
    .areas(timings);
    frame.render_widget(timing_line(app), times);
    frame.render_widget(Line::styled(KEY_HINT, label).right_aligned(), hint);
}

/// Returns the run state, frame rate, face count, frame position and input errors.
fn state_line(app: &App) -> Line<'_> {
    let mut spans = vec![state_span(app)];
    spans.push(Span::raw(format!("  fps: {:.0}", app.fps())));
    match app.report() {
        Some(report) => {
            spans.push(Span::raw(format!("  faces: {}", report.faces.len())));
            let frame = &report.frame;
            spans.push(Span::raw(format!("  frame: {} at {:.2} s", frame.index, frame.timestamp)));
        }
        None => spans.push(Span::raw("  no frame yet")),
    }
    let (count, last) = app.input_errors();
    if count > 0 {
        let text = format!("  input errors: {count}, last: {}", last.unwrap_or_default());
        spans.push(Span::styled(text, Style::new().fg(Color::Yellow)));
    }
    Line::from(spans)
}

fn state_span(app: &App) -> Span<'_> {
    match app.state() {
        RunState::Failed(message) => Span::styled(format!("failed: {message}"), Style::new().red().bold()),
        RunState::EndOfInput => Span::styled("end of input", Style::new().cyan().bold()),
        RunState::Running if app.is_paused() => Span::styled("paused", Style::new().yellow().bold()),
        RunState::Running => Span::styled("running", Style::new().green()),
    }
}

/// Returns the mean milliseconds per frame of each pipeline stage and of the last draw.
fn timing_line(app: &App) -> Line<'static> {
    let timings = app.stage_timings();
    let stages = [
        ("decode", timings.map(|t| t.decode)),
        ("detect", timings.map(|t| t.detect)),
        ("classify", timings.map(|t| t.classify)),
        ("draw", app.draw_time()),
    ];
    let mut spans = vec![Span::styled("ms: ", Style::new().fg(Color::DarkGray))];
    for (name, duration) in stages {
        spans.push(Span::raw(format!("{name} {}  ", format_millis(duration))));
    }
    Line::from(spans)
}

fn render_help(frame: &mut Frame, area: Rect) {
    let key_width = KEY_HELP.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    let mut lines: Vec<Line> = KEY_HELP
        .iter()
        .map(|(key, action)| Line::from(format!(" {key:<key_width$}  {action}")))
        .collect();
    lines.push(Line::from(""));
    lines.push(Line::from(format!(" needs a terminal of {MIN_WIDTH}x{MIN_HEIGHT} or more")));

    let width = lines.iter().map(Line::width).max().unwrap_or(0) as u16 + 3;
    let height = lines.len() as u16 + 2;
    let popup = Rect::new(
        area.x + area.width.saturating_sub(width) / 2,
        area.y + area.height.saturating_sub(height) / 2,
        width.min(area.width),
        height.min(area.height),
    );
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).block(Block::bordered().title(" keys ")), popup);
}

/// Returns the middle row of `area`, or an empty rect for an empty area.
fn centre_row(area: Rect) -> Rect {
    Rect::new(area.x, area.y + area.height / 2, area.width, area.height.min(1))
}

fn format_millis(duration: Option<Duration>) -> String {
    match duration {
        Some(duration) => format!("{:.1}", duration.as_secs_f64() * 1000.0),
        None => "-".to_owned(),
    }
}

/// Formats seconds without decimals from 10 s up and with one below.
fn format_seconds(seconds: f64) -> String {
    if seconds >= 10.0 { format!("{seconds:.0}") } else { format!("{seconds:.1}") }
}
