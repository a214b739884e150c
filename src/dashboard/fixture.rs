//! Frames, faces and apps for the dashboard tests, and a helper to read a drawn buffer.

use std::time::Duration;

use image::{Rgb, RgbImage};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::Terminal;

use super::app::{App, DashboardConfig};
use super::render::render;
use crate::capture::Frame;
use crate::detect::FaceBox;
use crate::emotion::EmotionScores;
use crate::pipeline::{Control, FrameReport, PipelineEvent, StageTimings};
use crate::track::TrackedFace;

/// Scores of face 1: happy at 72 %.
pub const HAPPY_SCORES: [f32; 7] = [0.03, 0.01, 0.04, 0.72, 0.05, 0.05, 0.10];

/// Scores of face 2: sad at 55 %.
pub const SAD_SCORES: [f32; 7] = [0.10, 0.02, 0.08, 0.05, 0.55, 0.05, 0.15];

/// Returns the configuration shown in the status line of every test.
pub fn config() -> DashboardConfig {
    DashboardConfig {
        source: "clips/demo.mp4".to_owned(),
        device: "cuda:0".to_owned(),
        model: "models/fer_resnet.pt".to_owned(),
        history_seconds: 30.0,
    }
}

/// Returns an app with the test configuration and its pipeline control.
pub fn app() -> (App, Control) {
    let control = Control::default();
    (App::new(config(), control.clone()), control)
}

/// Returns a 640x360 frame: a left-to-right grey gradient with a bright square where the face
/// of id 1 sits.
pub fn gradient_image() -> RgbImage {
    RgbImage::from_fn(640, 360, |x, y| {
        if (320..480).contains(&x) && (90..270).contains(&y) {
            Rgb([250, 250, 250])
        } else {
            let level = (x * 255 / 639) as u8;
            Rgb([level, level, level])
        }
    })
}

/// Returns a tracked face with the same smoothed and raw scores.
pub fn face(id: u64, face: FaceBox, scores: [f32; 7]) -> TrackedFace {
    TrackedFace {
        id,
        face,
        scores: EmotionScores(scores),
        raw: EmotionScores(scores),
    }
}

/// Returns face 1 (happy, box at 320,90 160x180) and face 2 (sad, box at 40,60 120x120).
pub fn two_faces() -> Vec<TrackedFace> {
    vec![
        face(
            1,
            FaceBox {
                x: 320,
                y: 90,
                width: 160,
                height: 180,
                score: 0.98,
            },
            HAPPY_SCORES,
        ),
        face(
            2,
            FaceBox {
                x: 40,
                y: 60,
                width: 120,
                height: 120,
                score: 0.91,
            },
            SAD_SCORES,
        ),
    ]
}

/// Returns a frame event with the gradient image and `faces`.
pub fn frame_event(index: u64, timestamp: f64, faces: Vec<TrackedFace>) -> PipelineEvent {
    let frame = Frame {
        index,
        timestamp,
        path: None,
        image: gradient_image(),
    };
    let timings = StageTimings {
        decode: Duration::from_micros(3_100),
        detect: Duration::from_micros(12_000),
        classify: Duration::from_micros(4_200),
    };
    PipelineEvent::Frame(Box::new(FrameReport {
        frame,
        faces,
        timings,
    }))
}

/// Draws `app` into a `width` x `height` test terminal and returns the buffer.
pub fn draw(app: &App, width: u16, height: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test backend");
    terminal
        .draw(|frame| render(frame, app))
        .expect("draw into test backend");
    terminal.backend().buffer().clone()
}

/// Returns the symbols of each buffer row joined into one string per row.
pub fn lines(buffer: &Buffer) -> Vec<String> {
    let area = buffer.area;
    (area.top()..area.bottom())
        .map(|y| {
            (area.left()..area.right())
                .map(|x| buffer[(x, y)].symbol())
                .collect()
        })
        .collect()
}

/// Returns the whole buffer as text, rows separated by newlines.
pub fn text(buffer: &Buffer) -> String {
    lines(buffer).join("\n")
}
