//! The live monitor's headless mode end to end: the real binary, detector and model on the
//! demo clip, and its errors on bad input.

mod common;

use std::fs;

use common::{media, moodscope, read_rows, read_summary, run, CLASSES};

/// Frames in the demo clip, as ffprobe counts them.
const DEMO_FRAMES: usize = 472;

#[test]
fn headless_demo_run_records_every_face() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("faces.csv");
    let summary = dir.path().join("summary.csv");
    let output = run(moodscope()
        .arg("--headless")
        .arg("--demo")
        .arg("--csv")
        .arg(&csv)
        .arg("--summary")
        .arg(&summary));
    assert!(output.status.success(), "exit status {:?}", output.status);

    let rows = read_rows(&csv);
    let mut frames_with_face: Vec<u64> = rows.iter().filter_map(|row| row.frame).collect();
    frames_with_face.dedup();
    let share = frames_with_face.len() as f64 / DEMO_FRAMES as f64;
    assert!(
        share >= 0.9,
        "a face in only {:.1}% of the frames",
        100.0 * share
    );

    for row in &rows {
        let total: f64 = row
            .probabilities
            .expect("face rows have probabilities")
            .iter()
            .sum();
        assert!(
            (total - 1.0).abs() < 1e-4,
            "frame {:?} sums to {total}",
            row.frame
        );
        assert_eq!(row.status, "face");
    }

    // The summary counts one face per row.
    let summary_rows = read_summary(&summary);
    assert_eq!(summary_rows.len(), CLASSES.len());
    let faces: usize = summary_rows[0][3].parse().unwrap();
    let frames: usize = summary_rows[0][1].parse().unwrap();
    assert_eq!(faces, rows.len());
    assert_eq!(frames, DEMO_FRAMES);
}

#[test]
fn headless_demo_ends_happy() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("faces.csv");
    let output = run(moodscope()
        .args(["--headless", "--demo", "--csv"])
        .arg(&csv));
    assert!(output.status.success());
    let rows = read_rows(&csv);
    let last_time = rows
        .iter()
        .filter_map(|row| row.source_time)
        .fold(0.0, f64::max);

    // The woman in the clip laughs in its last fifth.
    let mut counts = [0usize; 7];
    for row in rows
        .iter()
        .filter(|row| row.source_time.unwrap() >= 0.8 * last_time)
    {
        counts[CLASSES
            .iter()
            .position(|class| *class == row.label)
            .unwrap()] += 1;
    }
    let happy = counts[3];
    for (class, count) in CLASSES.iter().zip(counts) {
        if *class != "happy" {
            assert!(
                happy > count,
                "happy {happy} vs {class} {count} in {counts:?}"
            );
        }
    }
}

#[test]
fn cuda_without_gpu_fails_naming_cuda() {
    if tch::Cuda::is_available() {
        eprintln!("skipped: this machine has a CUDA device");
        return;
    }
    let output = run(moodscope().args(["--headless", "--demo", "--cuda"]));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CUDA"), "{stderr}");
}

#[test]
fn missing_input_fails_naming_it() {
    let output = run(moodscope().args(["--headless", "--input", "no/such/clip.mp4"]));
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no/such/clip.mp4"));
}

#[test]
fn corrupt_model_fails_naming_file() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path();
    let shipped = moodscope::model::default_model_path();
    let description = fs::read_to_string(&shipped).unwrap();
    let json: serde_json::Value = serde_json::from_str(&description).unwrap();
    let weights_name = json["weights"]
        .as_str()
        .expect("the description names its weights");
    let weights = fs::read(shipped.with_file_name(weights_name)).unwrap();
    fs::write(model_dir.join("model.json"), &description).unwrap();
    fs::write(model_dir.join(weights_name), &weights[..weights.len() / 2]).unwrap();

    let output = run(moodscope()
        .args(["--headless", "--demo", "--model"])
        .arg(model_dir.join("model.json")));
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(weights_name), "{stderr}");
}

#[test]
fn dashboard_refuses_non_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("moodscope.log");
    let output = run(moodscope().arg("--demo").arg("--log-file").arg(&log));
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--headless"));
}

#[test]
fn bad_detector_setting_is_rejected() {
    let video = media("single_face.mp4");
    let output = run(moodscope()
        .args(["--headless", "--min-face", "5", "--input"])
        .arg(video));
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--min-face \"5\""), "{stderr}");
}

#[test]
fn sigterm_keeps_rows_and_writes_summary() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("faces.csv");
    let summary = dir.path().join("summary.csv");
    let child = moodscope()
        .args(["--headless", "--demo", "--loop", "--csv"])
        .arg(&csv)
        .arg("--summary")
        .arg(&summary)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Long enough to load the model and process some frames.
    std::thread::sleep(std::time::Duration::from_secs(6));
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = child.wait_with_output().unwrap();
    eprintln!("stderr:\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "exit status {:?}", output.status);

    let rows = read_rows(&csv);
    assert!(!rows.is_empty(), "no rows kept");
    let summary_rows = read_summary(&summary);
    let faces: usize = summary_rows[0][3].parse().unwrap();
    assert_eq!(faces, rows.len());
    assert!(String::from_utf8_lossy(&output.stdout).contains("frames in"));
}

#[test]
fn no_camera_message_suggests_input() {
    if !moodscope::capture::list_cameras()
        .unwrap_or_default()
        .is_empty()
    {
        eprintln!("skipped: this machine has a camera");
        return;
    }
    let output = run(moodscope().arg("--headless"));
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no camera"), "{stderr}");
    assert!(stderr.contains("--input"), "{stderr}");
}
