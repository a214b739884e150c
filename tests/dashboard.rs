//! Dashboard through the library API: pipeline events in, a drawn 80x24 screen out.

use std::time::Duration;

use image::{Rgb, RgbImage};
use moodscope::capture::Frame;
use moodscope::dashboard::{render, App, DashboardConfig, Intent};
use moodscope::detect::FaceBox;
use moodscope::emotion::EmotionScores;
use moodscope::pipeline::{Control, FrameReport, PipelineEvent, StageTimings};
use moodscope::track::TrackedFace;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn frame_event(index: u64, faces: Vec<TrackedFace>) -> PipelineEvent {
    let image = RgbImage::from_fn(320, 240, |x, _| Rgb([(x * 255 / 319) as u8; 3]));
    let frame = Frame {
        index,
        timestamp: index as f64 / 25.0,
        path: None,
        image,
    };
    let timings = StageTimings {
        decode: Duration::from_millis(2),
        detect: Duration::from_millis(9),
        classify: Duration::from_millis(5),
    };
    PipelineEvent::Frame(Box::new(FrameReport {
        frame,
        faces,
        timings,
    }))
}

fn screen(app: &App) -> String {
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("test backend");
    terminal
        .draw(|frame| render(frame, app))
        .expect("draw into test backend");
    let buffer = terminal.backend().buffer();
    let area = buffer.area;
    (0..area.height)
        .map(|y| {
            (0..area.width)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn dashboard_follows_pipeline_events() {
    let control = Control::default();
    let config = DashboardConfig {
        source: "0".to_owned(),
        device: "cpu".to_owned(),
        model: "fer.pt".to_owned(),
        history_seconds: 10.0,
    };
    let mut app = App::new(config, control.clone());
    let scores = EmotionScores([0.02, 0.01, 0.02, 0.05, 0.03, 0.81, 0.06]);
    let face = TrackedFace {
        id: 4,
        face: FaceBox {
            x: 100,
            y: 60,
            width: 90,
            height: 100,
            score: 0.97,
        },
        scores,
        raw: scores,
    };

    for index in 0..50 {
        app.handle_event(frame_event(index, vec![face.clone()]));
    }
    let running = screen(&app);
    assert!(running.contains("#4 surprise 81%"));
    assert!(running.contains("faces: 1"));
    assert!(running.contains("device: cpu"));

    app.handle_intent(Intent::TogglePause);
    assert!(control.is_paused());
    assert!(screen(&app).contains("paused"));

    app.handle_event(PipelineEvent::EndOfInput);
    let ended = screen(&app);
    assert!(ended.contains("end of input"));
    assert!(ended.contains("#4 surprise 81%"));

    app.handle_intent(Intent::Quit);
    assert!(control.is_stop_requested());
}
