//! Capture and detection on the demo media through the library API.
//!
//! The media files are the ones `scripts/setup.sh` unpacks into `media/`.

use std::time::Instant;

use moodscope::assets::{demo_clip, media_dir};
use moodscope::capture::{open_source, CaptureOptions, Frame, FrameSource, SourceSpec};
use moodscope::detect::{default_detector_model, DetectorSettings, FaceBox, FaceDetector};

fn open(input: &str) -> Box<dyn FrameSource> {
    let spec = SourceSpec::from_input(input, false).unwrap();
    open_source(&spec, &CaptureOptions::default()).unwrap()
}

fn read_all(source: &mut dyn FrameSource) -> Vec<Frame> {
    let mut frames = Vec::new();
    while let Some(frame) = source.next_frame().unwrap() {
        frames.push(frame);
    }
    frames
}

fn detect_in(file: &str) -> Vec<FaceBox> {
    let image = moodscope::capture::load_image(&media_dir().join(file)).unwrap();
    let mut detector =
        FaceDetector::new(&default_detector_model(), &DetectorSettings::default()).unwrap();
    detector.detect(&image)
}

#[test]
fn demo_clip_has_all_frames_with_increasing_times() {
    let mut source = open(demo_clip().to_str().unwrap());
    assert!(!source.is_live());
    assert!(
        source.description().contains("(640x360, 23.98 fps)"),
        "{}",
        source.description()
    );
    let frames = read_all(source.as_mut());

    assert_eq!(frames.len(), 472);
    assert!(frames
        .iter()
        .all(|frame| frame.image.dimensions() == (640, 360)));
    assert_eq!(frames[0].timestamp, 0.0);
    for pair in frames.windows(2) {
        assert!(
            pair[1].timestamp > pair[0].timestamp,
            "{} then {}",
            pair[0].timestamp,
            pair[1].timestamp
        );
        assert_eq!(pair[1].index, pair[0].index + 1);
    }
    // 471 frame intervals of 1001/24000 s.
    let last = frames.last().unwrap().timestamp;
    assert!(
        (last - 471.0 * 1001.0 / 24000.0).abs() < 0.01,
        "last frame at {last} s"
    );
}

/// face_noface.mov is HEVC with a variable frame rate (ffprobe: 169 frames, 519168/19667 fps).
#[test]
fn hevc_clip_decodes_with_increasing_times() {
    let mut source = open(media_dir().join("face_noface.mov").to_str().unwrap());
    let frames = read_all(source.as_mut());
    assert_eq!(frames.len(), 169);
    assert!(frames
        .iter()
        .all(|frame| frame.image.dimensions() == (960, 540)));
    assert!(frames
        .windows(2)
        .all(|pair| pair[1].timestamp > pair[0].timestamp));
}

#[test]
fn image_and_folder_sources_open_from_input() {
    let mut image = open(media_dir().join("single_face.jpg").to_str().unwrap());
    let frame = image.next_frame().unwrap().unwrap();
    assert_eq!(frame.image.dimensions(), (572, 562));
    assert!(image.next_frame().unwrap().is_none());

    let folder = tempfile::tempdir().unwrap();
    for name in ["single_face.jpg", "multi_face.jpg"] {
        std::fs::copy(media_dir().join(name), folder.path().join(name)).unwrap();
    }
    let mut source = open(folder.path().to_str().unwrap());
    assert!(
        source.description().contains("2 images"),
        "{}",
        source.description()
    );
    let sizes: Vec<(u32, u32)> = read_all(source.as_mut())
        .iter()
        .map(|frame| frame.image.dimensions())
        .collect();
    assert_eq!(sizes, [(1000, 667), (572, 562)]);
}

/// multi_face.jpg shows five people, all facing the camera.
#[test]
fn multi_face_photo_has_five_faces() {
    let faces = detect_in("multi_face.jpg");
    assert_eq!(faces.len(), 5, "{faces:?}");
    assert!(
        faces.windows(2).all(|pair| pair[0].x <= pair[1].x),
        "not sorted left to right"
    );
    for face in &faces {
        assert!(
            face.x + face.width <= 1000 && face.y + face.height <= 667,
            "{face:?}"
        );
    }
}

#[test]
fn single_face_photo_has_one_face() {
    assert_eq!(detect_in("single_face.jpg").len(), 1);
}

#[test]
fn landscape_picture_has_no_face() {
    assert_eq!(detect_in("free-mountain-vector-01.jpg").len(), 0);
}

/// Samples every second frame of the demo clip to keep the test short. The woman faces the
/// camera throughout, so nearly every frame should have a face.
#[test]
fn demo_clip_has_a_face_in_most_frames() {
    let mut detector =
        FaceDetector::new(&default_detector_model(), &DetectorSettings::default()).unwrap();
    let mut source = open(demo_clip().to_str().unwrap());
    let (mut sampled, mut with_face) = (0, 0);
    while let Some(frame) = source.next_frame().unwrap() {
        if frame.index % 2 == 0 {
            sampled += 1;
            with_face += usize::from(!detector.detect(&frame.image).is_empty());
        }
    }
    assert_eq!(sampled, 236);
    let rate = with_face as f64 / sampled as f64;
    assert!(rate >= 0.9, "a face in {with_face} of {sampled} frames");
}

/// Measures detection time and hit rate on the demo clip for several detection widths and
/// minimum face sizes. Run with
/// `cargo test --release --test capture_detect -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement that takes minutes; it checks nothing"]
fn detector_settings_sweep() {
    let mut source = open(demo_clip().to_str().unwrap());
    let frames: Vec<Frame> = read_all(source.as_mut()).into_iter().step_by(4).collect();
    let cases = [
        (0, 40),
        (640, 40),
        (480, 40),
        (320, 40),
        (240, 40),
        (160, 40),
        (0, 80),
        (0, 120),
    ];
    println!("{} frames (every 4th)", frames.len());
    for (detect_width, min_face_size) in cases {
        let settings = DetectorSettings {
            detect_width,
            min_face_size,
            ..DetectorSettings::default()
        };
        let mut detector = FaceDetector::new(&default_detector_model(), &settings).unwrap();
        let started = Instant::now();
        let hits = frames
            .iter()
            .filter(|frame| !detector.detect(&frame.image).is_empty())
            .count();
        let milliseconds = started.elapsed().as_secs_f64() * 1000.0 / frames.len() as f64;
        let percent = 100.0 * hits as f64 / frames.len() as f64;
        println!("detect_width {detect_width:4} min_face_size {min_face_size:4}: {milliseconds:6.1} ms/frame, face in {percent:5.1}%");
    }
}
