//! Drawing: every function here reads `App` and draws into a frame, and none changes state.
//!
//! Layout, top to bottom: the preview beside the probability bars, the history strips, then
//! three status lines. Below [`MIN_WIDTH`] x [`MIN_HEIGHT`] cells only a message is drawn.

use std::time::Duration;

use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::symbols;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::app::{App, Overlay, RunState};
use super::input::KEY_HELP;
use super::percent;
use super::preview::Preview;
use crate::emotion::{Emotion, EmotionScores};
use crate::track::TrackedFace;

/// Narrowest terminal the dashboard draws in: the bars need 30 columns beside a preview of
/// at least as many.
pub const MIN_WIDTH: u16 = 60;

/// Shortest terminal the dashboard draws in: 9 rows of bars, 9 of history and 3 status lines.
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

/// Returns the colour of `emotion` in the bars, the history and the face list.
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
    let text = [
        format!("terminal too small: {}x{}", area.width, area.height),
        format!("resize to at least {MIN_WIDTH}x{MIN_HEIGHT}"),
    ];
    // Rows after wrapping at word boundaries, estimated by length, which is close enough to
    // centre two short lines.
    let rows: usize = text
        .iter()
        .map(|line| line.len().div_ceil(usize::from(area.width)))
        .sum();
    let height = u16::try_from(rows).unwrap_or(u16::MAX).min(area.height);
    let y = area.y + (area.height - height) / 2;
    let lines: Vec<Line> = text.into_iter().map(Line::from).collect();
    let paragraph = Paragraph::new(lines)
        .alignment(Alignment::Center)
        .wrap(Wrap { trim: true });
    frame.render_widget(
        paragraph,
        Rect::new(area.x, y, area.width, area.height - (y - area.y)),
    );
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
        Some(face) => format!(
            " face #{}, detection score {:.1} ",
            face.id, face.face.score
        ),
        None => " no face ".to_owned(),
    };
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);

    let scores = face.map(|face| face.scores);
    let dominant = scores.map(|scores| scores.dominant());
    let mut rows = inner.rows();
    // `Emotion::ALL` goes first so that `zip` takes no row beyond the seventh.
    for (emotion, row) in Emotion::ALL.into_iter().zip(rows.by_ref()) {
        let probability = scores.map(|scores| scores.get(emotion));
        render_bar(frame, row, emotion, probability, dominant == Some(emotion));
    }

    // Below the bars, where the panel is tall enough: this frame's raw result, then every face.
    let details = face.map(face_details);
    let faces = app.report().into_iter().flat_map(|report| &report.faces);
    let face_lines = faces.map(|face| face_line(face, app.selected_id() == Some(face.id)));
    let lines = std::iter::once(Line::default())
        .chain(details)
        .chain(face_lines);
    for (row, line) in rows.zip(lines) {
        frame.render_widget(line, row);
    }
}

/// Draws one class row: marker and name, bar, percentage. `None` draws an empty bar.
fn render_bar(
    frame: &mut Frame,
    row: Rect,
    emotion: Emotion,
    probability: Option<f32>,
    is_dominant: bool,
) {
    let [name, bar, value] = Layout::horizontal([
        Constraint::Length(NAME_WIDTH),
        Constraint::Fill(1),
        Constraint::Length(5),
    ])
    .areas(row);
    let emphasis = if is_dominant {
        Modifier::BOLD
    } else {
        Modifier::empty()
    };
    let filled = Style::new().fg(class_color(emotion)).add_modifier(emphasis);

    frame.render_widget(class_label(emotion, is_dominant), name);
    render_meter(frame.buffer_mut(), bar, probability.unwrap_or(0.0), filled);
    if let Some(probability) = probability {
        let text = format!("{:>4}%", percent(probability));
        frame.render_widget(
            Span::styled(text, Style::new().add_modifier(emphasis)),
            value,
        );
    }
}

/// Draws a horizontal bar filled to `probability` in half cells, with a space before it.
///
/// The filled part is heavy and coloured, the rest a thin grey line, so the bar still reads
/// without colour. `Gauge` is not used because ratatui 0.29 leaves a blank cell in the middle
/// of it when the label is empty, and `LineGauge` draws both parts with the same character.
fn render_meter(buf: &mut Buffer, area: Rect, probability: f32, filled: Style) {
    let track = area.width.saturating_sub(1);
    let ratio = if probability.is_nan() {
        0.0
    } else {
        probability.clamp(0.0, 1.0)
    };
    let halves = (ratio * f32::from(track) * 2.0).round() as u16;
    let empty = Style::new().fg(Color::DarkGray);
    for (offset, x) in (area.x + 1..area.right()).enumerate() {
        let half_cells = halves.saturating_sub(2 * offset as u16);
        let (symbol, style) = match half_cells {
            0 => (symbols::line::HORIZONTAL, empty),
            1 => ("╸", filled),
            _ => (symbols::line::THICK_HORIZONTAL, filled),
        };
        buf[(x, area.y)].set_symbol(symbol).set_style(style);
    }
}

/// Returns the dominant class of the selected face's unsmoothed scores for this frame.
fn face_details(face: &TrackedFace) -> Line<'static> {
    let emotion = face.raw.dominant();
    let probability = percent(face.raw.get(emotion));
    let text = format!(" this frame: {} {probability}%", emotion.name());
    Line::styled(text, Style::new().fg(Color::DarkGray))
}

/// Returns `#id emotion 87%` for a face, marked when it is selected.
fn face_line(face: &TrackedFace, is_selected: bool) -> Line<'static> {
    let emotion = face.scores.dominant();
    let marker = if is_selected { "▶" } else { " " };
    let probability = percent(face.scores.get(emotion));
    let text = format!("{marker}#{} {} {probability}%", face.id, emotion.name());
    let style = Style::new().fg(class_color(emotion));
    Line::styled(text, if is_selected { style.bold() } else { style })
}

/// Returns a class name in its colour, marked and bold when it is the dominant class.
fn class_label(emotion: Emotion, is_dominant: bool) -> Line<'static> {
    let style = Style::new().fg(class_color(emotion));
    if is_dominant {
        Line::from(vec![
            Span::styled("▶ ", style),
            Span::styled(emotion.name(), style.bold()),
        ])
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

/// Draws one class's probability over time as a sparkline right of its name. A slice without
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
        let level = if probability.is_nan() {
            0
        } else {
            (probability * 7.0).round() as usize
        };
        buf[(x, row.y)].set_symbol(LEVELS[level]).set_style(style);
    }
}

fn render_status(frame: &mut Frame, app: &App, area: Rect) {
    let [run, rates, timings] = Layout::vertical([Constraint::Length(1); 3]).areas(area);
    let config = app.config();
    let label = Style::new().fg(Color::DarkGray);
    // Long source and model paths are cut at the start, because their file names matter most.
    let fixed = "source:   device:   model: ".len() + config.device.chars().count();
    let room = usize::from(run.width).saturating_sub(fixed);
    let (source_length, model_length) =
        (config.source.chars().count(), config.model.chars().count());
    // The model keeps at least a third of the width and the source gets the rest.
    let source_width = source_length.min(room.saturating_sub(model_length.min(room / 3)));
    let model = keep_end(&config.model, room - source_width);
    let source = keep_end(&config.source, source_width);
    let line = Line::from(vec![
        Span::styled("source: ", label),
        Span::raw(source),
        Span::styled("  device: ", label),
        Span::raw(config.device.as_str()),
        Span::styled("  model: ", label),
        Span::raw(model),
    ]);
    frame.render_widget(line, run);
    frame.render_widget(state_line(app), rates);

    let timing = timing_line(app);
    let hint_width = KEY_HINT.len() as u16;
    let fits = timing.width() + usize::from(hint_width) < usize::from(timings.width);
    frame.render_widget(timing, timings);
    if fits {
        frame.render_widget(Line::styled(KEY_HINT, label).right_aligned(), timings);
    }
}

/// Returns `text`, or its last `width - 1` characters after an ellipsis when it is longer than
/// `width` characters.
fn keep_end(text: &str, width: usize) -> String {
    let length = text.chars().count();
    if length <= width {
        return text.to_owned();
    }
    let tail: String = text.chars().skip(length + 1 - width.max(1)).collect();
    format!("…{tail}")
}

/// Returns the run state, frame rate, face count, frame position, frames dropped to keep up
/// with a live source, and input errors.
fn state_line(app: &App) -> Line<'_> {
    let mut spans = vec![state_span(app)];
    // Once the input has ended the rate of the last second is 0, so the run's mean is shown.
    let rate = match (app.state(), app.mean_fps()) {
        (RunState::Running, _) | (_, None) => format!("  fps: {:.0}", app.fps()),
        (_, Some(mean)) => format!("  mean fps: {mean:.1}"),
    };
    spans.push(Span::raw(rate));
    match app.report() {
        Some(report) => {
            spans.push(Span::raw(format!("  faces: {}", report.faces.len())));
            let frame = &report.frame;
            spans.push(Span::raw(format!(
                "  frame: {} at {:.2} s",
                frame.index, frame.timestamp
            )));
        }
        None => spans.push(Span::raw("  no frame yet")),
    }
    let dropped = app.dropped_frames();
    if dropped > 0 {
        spans.push(Span::raw(format!("  dropped: {dropped}")));
    }
    let (count, last) = app.input_errors();
    if count > 0 {
        let last = single_line(last.unwrap_or_default());
        let text = format!("  input errors: {count}, last: {last}");
        spans.push(Span::styled(text, Style::new().fg(Color::Yellow)));
    }
    Line::from(spans)
}

fn state_span(app: &App) -> Span<'_> {
    match app.state() {
        RunState::Failed(message) => {
            let text = format!("failed: {}", single_line(message));
            Span::styled(text, Style::new().red().bold())
        }
        RunState::EndOfInput => Span::styled("end of input", Style::new().cyan().bold()),
        RunState::Running if app.is_paused() => {
            Span::styled("paused", Style::new().yellow().bold())
        }
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
    lines.push(Line::from(format!(
        " needs a terminal of {MIN_WIDTH}x{MIN_HEIGHT} or more"
    )));

    let width = lines.iter().map(Line::width).max().unwrap_or(0) as u16 + 3;
    let height = lines.len() as u16 + 2;
    let popup = Rect::new(
        area.x + area.width.saturating_sub(width) / 2,
        area.y + area.height.saturating_sub(height) / 2,
        width.min(area.width),
        height.min(area.height),
    );
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" keys ")),
        popup,
    );
}

/// Returns the middle row of `area`, or an empty rect for an empty area.
fn centre_row(area: Rect) -> Rect {
    Rect::new(
        area.x,
        area.y + area.height / 2,
        area.width,
        area.height.min(1),
    )
}

/// Replaces line breaks, tabs and other control characters with spaces, because a status
/// line has one row and the terminal would act on them.
fn single_line(message: &str) -> String {
    message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn format_millis(duration: Option<Duration>) -> String {
    match duration {
        Some(duration) => format!("{:.1}", duration.as_secs_f64() * 1000.0),
        None => "-".to_owned(),
    }
}

/// Formats seconds without decimals from 10 s up and with one below.
fn format_seconds(seconds: f64) -> String {
    if seconds >= 10.0 {
        format!("{seconds:.0}")
    } else {
        format!("{seconds:.1}")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::fixture::{self, draw, frame_event, lines, text, two_faces};
    use super::*;
    use crate::dashboard::Intent;
    use crate::pipeline::PipelineEvent;

    /// Returns the characters of `row` in the columns `range`.
    fn cells(row: &str, range: std::ops::Range<usize>) -> String {
        row.chars().skip(range.start).take(range.len()).collect()
    }

    /// Returns the text of the buffer row that contains `needle`.
    fn row_with<'a>(rows: &'a [String], needle: &str) -> &'a str {
        rows.iter()
            .find(|row| row.contains(needle))
            .map_or("", String::as_str)
    }

    fn app_with_two_faces() -> App {
        let (mut app, _control) = fixture::app();
        app.handle_event_at(frame_event(41, 1.37, two_faces()), Instant::now());
        app
    }

    #[test]
    fn dashboard_shows_classes_and_status() {
        let app = app_with_two_faces();
        let screen = text(&draw(&app, 120, 40));

        for emotion in Emotion::ALL {
            assert!(
                screen.contains(emotion.name()),
                "missing class {}",
                emotion.name()
            );
        }
        assert!(screen.contains(" 72%"), "missing dominant percentage");
        assert!(screen.contains("━"), "missing filled bar");
        assert!(screen.contains("source: clips/demo.mp4"));
        assert!(screen.contains("device: cuda:0"));
        assert!(screen.contains("model: models/fer_resnet.pt"));
        assert!(screen.contains("fps: 1"));
        assert!(screen.contains("faces: 2"));
        assert!(screen.contains("frame: 41 at 1.37 s"));
        assert!(screen.contains("decode 3.1"));
        assert!(screen.contains("detect 12.0"));
        assert!(screen.contains("classify 4.2"));
        assert!(screen.contains("running"));
        assert!(!screen.contains("dropped"));
    }

    #[test]
    fn status_counts_dropped_frames() {
        let (mut app, control) = fixture::app();
        app.handle_event_at(frame_event(41, 1.37, two_faces()), Instant::now());
        for _ in 0..3 {
            control.add_dropped_frame();
        }
        let screen = text(&draw(&app, 120, 40));
        assert!(
            screen.contains("frame: 41 at 1.37 s  dropped: 3"),
            "{screen}"
        );
    }

    #[test]
    fn dominant_bar_fills_its_share() {
        let app = app_with_two_faces();
        let rows = lines(&draw(&app, 120, 40));
        let happy = row_with(&rows, "▶ happy");

        // Bars panel 40 wide, 38 inside: 10 for the name, 5 for the value, a 22-cell track
        // after one space. 72 % of 44 half cells rounds to 32, so 16 heavy cells.
        assert_eq!(happy.matches('━').count(), 16);
        assert_eq!(happy.matches('╸').count(), 0);
        assert!(happy.contains(" 72%"));
        let angry = row_with(&rows, "  angry ");
        assert_eq!(angry.matches('━').count(), 0);
        assert_eq!(angry.matches('╸').count(), 1);
    }

    #[test]
    fn preview_boxes_sit_at_expected_cells() {
        let app = app_with_two_faces();
        let buffer = draw(&app, 120, 40);

        // Preview inside its border: x 1..79, y 1..27. A 640x360 frame fits as 78x22 cells at
        // (1, 3). Face 1 (320,90 160x180) covers cells 39..=58 and 5..=16 of the frame.
        assert_eq!(buffer[(40, 8)].symbol(), "╔");
        assert_eq!(buffer[(59, 8)].symbol(), "╗");
        assert_eq!(buffer[(40, 19)].symbol(), "╚");
        assert_eq!(buffer[(59, 19)].symbol(), "╝");
        assert_eq!(buffer[(40, 8)].fg, Color::Yellow);
        let label: String = (40..52).map(|x| buffer[(x, 7)].symbol()).collect();
        assert_eq!(label, "#1 happy 72%");

        // Face 2 (40,60 120x120) covers cells 4..=19 and 3..=10 of the frame.
        assert_eq!(buffer[(5, 6)].symbol(), "┌");
        assert_eq!(buffer[(20, 13)].symbol(), "┘");
        assert_eq!(buffer[(5, 6)].fg, Color::Cyan);
        let label: String = (5..15).map(|x| buffer[(x, 5)].symbol()).collect();
        assert_eq!(label, "#2 sad 55%");
    }

    #[test]
    fn preview_keeps_aspect_ratio() {
        let app = app_with_two_faces();
        let rows = lines(&draw(&app, 120, 40));

        // The gradient is '@' from about 90 % of the width on, so the rows that contain '@' are
        // the rows the frame covers. The 78 columns inside the border then need 22 rows, because
        // 78 / 22 = 3.5 is closest to 640 / 360 times a cell aspect of 2, which is 3.6.
        let shows_frame = |row: &String| cells(row, 0..80).contains('@');
        let frame_rows = rows[1..27].iter().filter(|row| shows_frame(row)).count();
        assert_eq!(frame_rows, 22);
        let first = rows.iter().position(shows_frame).unwrap_or(0);
        assert_eq!(first, 3);
    }

    #[test]
    fn no_face_shows_empty_bars() {
        let (mut app, _control) = fixture::app();
        app.handle_event_at(frame_event(0, 0.0, Vec::new()), Instant::now());
        let rows = lines(&draw(&app, 120, 40));
        let screen = rows.join("\n");

        assert!(screen.contains("no face"));
        assert!(screen.contains("faces: 0"));
        assert!(!screen.contains('━'));
        for emotion in Emotion::ALL {
            let row = row_with(&rows, &format!("  {} ", emotion.name()));
            assert!(row.contains("────"), "no empty bar for {}", emotion.name());
            let bars = cells(row, 80..120);
            assert!(
                !bars.contains('%'),
                "percentage shown for {}",
                emotion.name()
            );
        }
    }

    #[test]
    fn small_terminal_shows_minimum_size() {
        let app = app_with_two_faces();
        let screen = text(&draw(&app, 30, 8));

        assert!(screen.contains("too small"));
        assert!(screen.contains("60x21"));
        assert!(!screen.contains("preview"));
        assert!(!screen.contains("happy"));
    }

    #[test]
    fn size_limits_switch_layout() {
        let app = app_with_two_faces();

        assert!(text(&draw(&app, MIN_WIDTH - 1, MIN_HEIGHT)).contains("too small"));
        assert!(text(&draw(&app, MIN_WIDTH, MIN_HEIGHT - 1)).contains("too small"));
        let smallest = text(&draw(&app, MIN_WIDTH, MIN_HEIGHT));
        assert!(!smallest.contains("too small"));
        assert!(smallest.contains("neutral"));
        assert!(smallest.contains("faces: 2"));
    }

    #[test]
    fn tiny_areas_do_not_panic() {
        let app = app_with_two_faces();
        let (empty, _control) = fixture::app();
        for (width, height) in [(0, 0), (1, 1), (0, 5), (5, 0), (2, 1), (59, 1), (1, 30)] {
            draw(&app, width, height);
            draw(&empty, width, height);
        }
    }

    #[test]
    fn help_overlay_toggles() {
        let (mut app, _control) = fixture::app();

        assert!(!text(&draw(&app, 80, 24)).contains("select next face"));
        app.handle_intent(Intent::ToggleHelp);
        let screen = text(&draw(&app, 80, 24));
        for (key, action) in KEY_HELP {
            assert!(screen.contains(key), "help misses key {key}");
            assert!(screen.contains(action), "help misses action {action}");
        }
        app.handle_intent(Intent::ToggleHelp);
        assert!(!text(&draw(&app, 80, 24)).contains("select next face"));
    }

    #[test]
    fn end_of_input_keeps_last_frame() {
        let mut app = app_with_two_faces();
        app.handle_event(PipelineEvent::EndOfInput);
        let screen = text(&draw(&app, 120, 40));

        assert!(screen.contains("end of input"));
        assert!(screen.contains("#1 happy 72%"));
        assert!(screen.contains("frame: 41 at 1.37 s"));
    }

    #[test]
    fn end_of_input_shows_mean_rate() {
        let (mut app, _control) = fixture::app();
        let start = Instant::now();
        for index in 0..11 {
            let arrival = start + Duration::from_millis(100 * index);
            app.handle_event_at(frame_event(index, 0.1 * index as f64, two_faces()), arrival);
        }
        app.handle_event(PipelineEvent::EndOfInput);
        app.on_tick(start + Duration::from_secs(5));
        let screen = text(&draw(&app, 120, 40));

        assert!(screen.contains("mean fps: 10.0"), "{screen}");
        assert!(!screen.contains("  fps: 0"), "{screen}");
    }

    #[test]
    fn mean_rate_leaves_out_pauses() {
        let (mut app, control) = fixture::app();
        let start = Instant::now();
        // Ten frames a second for half a second, a 4 s pause, then half a second more.
        for index in 0..11 {
            if index == 6 {
                control.add_pause(Duration::from_secs(4));
            }
            let pause = if index >= 6 { 4000 } else { 0 };
            let arrival = start + Duration::from_millis(100 * index + pause);
            app.handle_event_at(frame_event(index, 0.1 * index as f64, two_faces()), arrival);
        }
        app.handle_event(PipelineEvent::EndOfInput);
        let screen = text(&draw(&app, 120, 40));

        assert!(screen.contains("mean fps: 10.0"), "{screen}");
    }

    #[test]
    fn long_paths_keep_their_ends() {
        let mut config = fixture::config();
        config.source = format!(
            "/media/{}/WolfgangLanger_Pexels.mp4",
            "recordings/".repeat(8)
        );
        config.model = format!("/opt/{}/moodnet7.json", "moodscope/models".repeat(4));
        let app = App::new(config, crate::pipeline::Control::default());
        let screen = lines(&draw(&app, 120, 40));
        let status = screen
            .iter()
            .find(|line| line.contains("source: "))
            .expect("a status line");

        assert!(status.contains("WolfgangLanger_Pexels.mp4"), "{status}");
        assert!(status.contains("device: cuda:0"), "{status}");
        assert!(status.contains("moodnet7.json"), "{status}");
        assert!(status.contains('…'), "{status}");
    }

    #[test]
    fn face_title_labels_detection_score() {
        let app = app_with_two_faces();
        let screen = text(&draw(&app, 120, 40));
        assert!(screen.contains("face #1, detection score"), "{screen}");
    }

    #[test]
    fn failure_shows_message_and_frame() {
        let mut app = app_with_two_faces();
        let message = "camera \"/dev/video0\" disconnected\ncaused by: no such device";
        app.handle_event(PipelineEvent::Failed(message.into()));
        app.handle_disconnect();
        let screen = text(&draw(&app, 120, 40));

        assert!(screen.contains("failed: camera \"/dev/video0\" disconnected caused by"));
        assert!(!screen.contains("end of input"));
        assert!(screen.contains("#1 happy 72%"));
    }

    #[test]
    fn status_shows_pause_and_input_errors() {
        let (mut app, control) = fixture::app();
        app.handle_event(PipelineEvent::InputError("cannot decode \"a.png\"".into()));
        app.handle_event(PipelineEvent::InputError("cannot decode \"b.png\"".into()));
        control.set_paused(true);
        let screen = text(&draw(&app, 120, 40));

        assert!(screen.contains("paused"));
        assert!(screen.contains("input errors: 2, last: cannot decode \"b.png\""));
        assert!(screen.contains("waiting for frames"));
    }

    #[test]
    fn history_draws_selected_face() {
        let (mut app, _control) = fixture::app();
        let now = Instant::now();
        for index in 0..300_u32 {
            let time = f64::from(index) / 10.0;
            app.handle_event_at(frame_event(u64::from(index), time, two_faces()), now);
        }
        let rows = lines(&draw(&app, 120, 40));
        let happy = row_with(&rows[28..37], "happy");
        let angry = row_with(&rows[28..37], "angry");

        // 30 s at 10 frames a second leave no gap in the 108 columns (118 inside the border,
        // 10 for the name). Happy at 0.72 is level 5 of 0..=7, angry at 0.03 is level 0.
        assert!(row_with(&rows, "history of").contains("history of face #1"));
        assert_eq!(happy.matches('▆').count(), 108);
        assert_eq!(angry.matches('▁').count(), 108);
    }
}
