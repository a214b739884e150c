//! `moodscope analyze` end to end on the demo media and on generated bad inputs.

mod common;

use std::fs;
use std::path::Path;

use common::{media, moodscope, read_rows, run, CsvRow};

fn analyze(args: &[&str], inputs: &[&Path], output: &Path) -> (Option<i32>, Vec<CsvRow>) {
    let mut command = moodscope();
    command
        .arg("analyze")
        .args(args)
        .arg("--output")
        .arg(output)
        .args(inputs);
    let status = run(&mut command).status.code();
    (status, read_rows(output))
}

#[test]
fn multi_face_photo_gives_five_faces() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rows.csv");
    let (status, rows) = analyze(&[], &[&media("multi_face.jpg")], &out);
    assert_eq!(status, Some(0));
    // The photo shows five young people side by side, all smiling.
    assert_eq!(rows.len(), 5, "{rows:#?}");
    let mut ids: Vec<u64> = rows.iter().map(|row| row.face_id.unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 5);
    let happy = rows.iter().filter(|row| row.label == "happy").count();
    assert!(happy >= 3, "only {happy} of 5 smiling faces labelled happy");
}

#[test]
fn no_face_clip_gives_only_no_face_rows() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rows.csv");
    let (status, rows) = analyze(&[], &[&media("no_face.mp4")], &out);
    assert_eq!(status, Some(0));
    // The container's header says 98 frames, but its edit list keeps 95, as
    // `ffprobe -count_frames` reads too.
    assert_eq!(rows.len(), 95);
    assert!(rows.iter().all(|row| row.status == "no_face"));
    assert!(rows.iter().all(|row| row.probabilities.is_none()));
}

#[test]
fn single_face_clip_keeps_one_id() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rows.csv");
    let (status, rows) = analyze(&[], &[&media("single_face.mp4")], &out);
    assert_eq!(status, Some(0));
    let faces: Vec<&CsvRow> = rows.iter().filter(|row| row.status == "face").collect();
    // ffprobe counts 72 video frames in the clip.
    assert!(
        faces.len() as f64 >= 0.9 * 72.0,
        "{} face rows",
        faces.len()
    );
    assert!(faces.iter().all(|row| row.face_id == Some(1)));
    let times: Vec<f64> = rows.iter().map(|row| row.source_time.unwrap()).collect();
    assert!(times.windows(2).all(|pair| pair[0] < pair[1]));
}

#[test]
fn sampling_every_nth_and_per_second() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rows.csv");
    let clip = media("no_face.mp4");
    let (_, rows) = analyze(&["--every", "10"], &[&clip], &out);
    // Frames 0, 10, ..., 90 of 95.
    assert_eq!(rows.len(), 10);
    let (_, rows) = analyze(&["--fps", "2"], &[&clip], &out);
    // 3.9 s of video at 2 frames a second.
    assert!((7..=9).contains(&rows.len()), "{} rows", rows.len());
    // A rate above the clip's keeps every frame, however large it is.
    let (_, rows) = analyze(&["--fps", "1e300"], &[&clip], &out);
    assert_eq!(rows.len(), 95);
    // So does the clip's own rate (30 fps, 72 frames), despite rounded frame times.
    let (_, rows) = analyze(&["--fps", "30"], &[&media("single_face.mp4")], &out);
    let mut frames: Vec<u64> = rows.iter().filter_map(|row| row.frame).collect();
    frames.dedup();
    assert_eq!(frames.len(), 72);
}

#[test]
fn outputs_never_overwrite_inputs_or_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    fs::copy(media("no_face.mp4"), &clip).unwrap();
    let before = fs::read(&clip).unwrap();
    let rows = dir.path().join("rows.csv");
    let cases: [(&[&Path], &str); 3] = [
        (&[Path::new("--output"), &clip], "--output"),
        (&[Path::new("--summary"), &clip], "--summary"),
        (
            &[Path::new("--output"), &rows, Path::new("--summary"), &rows],
            "name the same file",
        ),
    ];
    for (options, expected) in cases {
        let mut command = moodscope();
        command.arg("analyze").args(options).arg(&clip);
        let output = run(&mut command);
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{stderr}");
    }
    // A file of a folder input is an input too.
    let mut command = moodscope();
    command
        .args(["analyze", "--output"])
        .arg(&clip)
        .arg(dir.path());
    let output = run(&mut command);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("one of the files of the input folder"),
        "{stderr}"
    );

    assert_eq!(fs::read(&clip).unwrap(), before);
    assert!(!rows.exists());
}

#[test]
fn truncated_video_is_an_error_after_its_frames() {
    let dir = tempfile::tempdir().unwrap();
    // A download cut in half: the index at the front still lists every frame.
    let whole = dir.path().join("whole.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(media("single_face.mp4"))
        .args(["-c", "copy", "-movflags", "+faststart"])
        .arg(&whole)
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = fs::read(&whole).unwrap();
    let cut = dir.path().join("cut.mp4");
    fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();

    let out = dir.path().join("rows.csv");
    let (status, rows) = analyze(&[], &[&cut], &out);
    assert_eq!(status, Some(3));
    let (errors, frames): (Vec<&CsvRow>, Vec<&CsvRow>) =
        rows.iter().partition(|row| row.status == "error");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].error.contains("cut.mp4"), "{}", errors[0].error);
    assert!(
        errors[0].error.contains("of its 72 frames"),
        "{}",
        errors[0].error
    );
    assert!(!errors[0].error.contains(" @ 0x"), "{}", errors[0].error);
    assert!((10..72).contains(&frames.len()), "{} frames", frames.len());
}

#[test]
fn pipe_input_read_whole_and_stoppable() {
    let dir = tempfile::tempdir().unwrap();
    let pipe = dir.path().join("pipe.ts");
    let created = std::process::Command::new("mkfifo")
        .arg(&pipe)
        .status()
        .unwrap();
    assert!(created.success());

    // MPEG-TS written into the pipe: no frame is dropped, since the writer waits for us.
    let feed = format!(
        "ffmpeg -v error -nostdin -i '{}' -c copy -f mpegts - > '{}'",
        media("no_face.mp4").display(),
        pipe.display()
    );
    let mut writer = std::process::Command::new("sh")
        .args(["-c", &feed])
        .spawn()
        .unwrap();
    let out = dir.path().join("rows.csv");
    let (status, rows) = analyze(&[], &[&pipe], &out);
    assert!(writer.wait().unwrap().success());
    assert_eq!(status, Some(0));
    assert!(rows.len() >= 95, "{} rows", rows.len());
    assert!(rows.iter().all(|row| row.status == "no_face"));

    // Without a writer ffmpeg waits for ever; SIGTERM still ends the run with its summary.
    let summary = dir.path().join("summary.csv");
    let mut child = moodscope()
        .args(["analyze", "--output"])
        .arg(&out)
        .arg("--summary")
        .arg(&summary)
        .arg(&pipe)
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let stopped_at = std::time::Instant::now();
    let signal = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(signal.success());
    let status = child.wait().unwrap();
    assert!(
        stopped_at.elapsed().as_secs() < 5,
        "{:?}",
        stopped_at.elapsed()
    );
    assert_eq!(status.code(), Some(0));
    assert!(summary.is_file());
}

#[test]
fn failed_output_still_writes_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rows.csv");
    let summary = dir.path().join("summary.csv");
    // Files may grow to 2 KiB: the rows fill that mid-run, as a full disk would, and the
    // shorter summary still fits. The ignored SIGXFSZ turns the limit into a write error.
    let mut command = std::process::Command::new("sh");
    command
        .args(["-c", "trap '' XFSZ; ulimit -f 4; exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_moodscope"))
        .args(["analyze", "--output"])
        .arg(&out)
        .arg("--summary")
        .arg(&summary)
        .arg(media("no_face.mp4"));
    let output = run(&mut command);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("rows.csv"), "{stderr}");
    // The last row may be cut off where the limit struck.
    let lines = fs::read_to_string(&out).unwrap().lines().count();
    assert!((2..96).contains(&lines), "{lines} lines");
    assert_eq!(stderr.matches("rows.csv").count(), 1, "{stderr}");
    let summary = common::read_summary(&summary);
    assert!(!summary.is_empty());
}

#[test]
fn mixed_folder_reports_bad_files_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("photos");
    fs::create_dir(&folder).unwrap();
    fs::copy(media("single_face.jpg"), folder.join("a_good.jpg")).unwrap();
    fs::write(folder.join("b_empty.jpg"), b"").unwrap();
    fs::write(folder.join("c_text.png"), b"this is not a picture").unwrap();
    let jpeg = fs::read(media("single_face.jpg")).unwrap();
    fs::write(folder.join("d_truncated.jpg"), &jpeg[..jpeg.len() / 3]).unwrap();
    fs::create_dir(folder.join("e_folder.jpg")).unwrap();
    let out = dir.path().join("rows.csv");
    let missing = dir.path().join("missing.mp4");

    let (status, rows) = analyze(&["--recursive"], &[&folder, &missing], &out);
    assert_eq!(status, Some(3), "some inputs failed");
    let good: Vec<&CsvRow> = rows
        .iter()
        .filter(|row| row.source.ends_with("a_good.jpg"))
        .collect();
    assert_eq!(good.len(), 1);
    assert_eq!(good[0].status, "face");
    for name in [
        "b_empty.jpg",
        "c_text.png",
        "d_truncated.jpg",
        "missing.mp4",
    ] {
        // The source column names the bad file itself, not the folder it is in.
        let row = rows.iter().find(|row| row.source.ends_with(name));
        let row = row.unwrap_or_else(|| panic!("no row for {name}: {rows:#?}"));
        assert_eq!(row.status, "error", "{name}");
        assert!(row.error.contains(name), "{name}: {}", row.error);
    }
}

#[test]
fn tight_crop_needs_no_detect() {
    let dir = tempfile::tempdir().unwrap();
    let photo = image::open(media("single_face.jpg")).unwrap();
    let face = moodscope::detect::FaceDetector::new(
        &moodscope::detect::default_detector_model(),
        &moodscope::detect::DetectorSettings::default(),
    )
    .unwrap()
    .detect(&photo.to_rgb8())[0];
    let crop = moodscope::detect::crop_face(&photo.to_rgb8(), &face, 0.2, 48);
    let path = dir.path().join("crop.png");
    crop.save(&path).unwrap();
    let out = dir.path().join("rows.csv");

    let (status, rows) = analyze(&["--no-detect"], &[&path], &out);
    assert_eq!(status, Some(0));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, "face");
    assert_eq!(rows[0].bbox, Some([0, 0, 48, 48]));
    let total: f64 = rows[0].probabilities.unwrap().iter().sum();
    assert!((total - 1.0).abs() < 1e-4);

    // The detector's smallest window is 20 pixels of a 48-pixel crop: it may or may not find
    // the face, but it must say which.
    let (status, rows) = analyze(&[], &[&path], &out);
    assert_eq!(status, Some(0));
    assert_eq!(rows.len(), 1);
    assert!(rows[0].status == "no_face" || rows[0].status == "face");
}

#[test]
fn pixel_formats_give_same_answer() {
    let dir = tempfile::tempdir().unwrap();
    let photo = image::open(media("single_face.jpg")).unwrap();
    let gray = image::DynamicImage::ImageLuma8(photo.to_luma8());
    let variants = [
        ("gray.png", gray.clone()),
        (
            "gray_alpha.png",
            image::DynamicImage::ImageLumaA8(gray.to_luma_alpha8()),
        ),
        ("rgb.png", image::DynamicImage::ImageRgb8(gray.to_rgb8())),
        ("rgba.png", image::DynamicImage::ImageRgba8(gray.to_rgba8())),
        (
            "rgb16.png",
            image::DynamicImage::ImageRgb16(gray.to_rgb16()),
        ),
    ];
    let mut inputs = Vec::new();
    for (name, picture) in &variants {
        let path = dir.path().join(name);
        picture.save(&path).unwrap();
        inputs.push(path);
    }
    let out = dir.path().join("rows.csv");
    let input_refs: Vec<&Path> = inputs.iter().map(|path| path.as_path()).collect();
    let (status, rows) = analyze(&[], &input_refs, &out);
    assert_eq!(status, Some(0));
    assert_eq!(rows.len(), variants.len(), "{rows:#?}");
    let first = rows[0].probabilities.unwrap();
    for row in &rows {
        assert_eq!(row.bbox, rows[0].bbox, "{}", row.source);
        for (value, expected) in row.probabilities.unwrap().iter().zip(first) {
            assert!(
                (value - expected).abs() < 1e-3,
                "{}: {value} vs {expected}",
                row.source
            );
        }
    }
}

#[test]
fn jsonl_output_parses() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rows.jsonl");
    let mut command = moodscope();
    command
        .args(["analyze", "--format", "jsonl", "--output"])
        .arg(&out)
        .arg(media("single_face.jpg"));
    assert!(run(&mut command).status.success());
    let text = fs::read_to_string(&out).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["status"], "face");
    assert_eq!(rows[0]["face_id"], 1);
}

#[test]
fn annotate_writes_boxed_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rows.csv");
    let pictures = dir.path().join("annotated");
    let photo = media("single_face.jpg");
    let mut command = moodscope();
    command
        .args(["analyze", "--annotate"])
        .arg(&pictures)
        .arg("--output")
        .arg(&out)
        .arg(&photo);
    assert!(run(&mut command).status.success());

    let original = image::open(&photo).unwrap().to_rgb8();
    let annotated = image::open(pictures.join("single_face.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!(annotated.dimensions(), original.dimensions());
    // The box's top-left corner is drawn in the box colour.
    let row = &read_rows(&out)[0];
    let [x, y, _, _] = row.bbox.unwrap();
    assert_eq!(annotated.get_pixel(x, y).0, [255, 210, 0]);

    let clip_pictures = dir.path().join("clip");
    let mut command = moodscope();
    command
        .args(["analyze", "--every", "24", "--annotate"])
        .arg(&clip_pictures)
        .arg("--output")
        .arg(&out)
        .arg(media("single_face.mp4"));
    assert!(run(&mut command).status.success());
    // Frames 0, 24 and 48 of 72.
    let frames = fs::read_dir(clip_pictures.join("single_face"))
        .unwrap()
        .count();
    assert_eq!(frames, 3);
}

#[test]
fn annotate_keeps_pictures_of_equal_names() {
    // Two different photos, both called single_face.jpg, in two folders of one input.
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    fs::create_dir_all(photos.join("one")).unwrap();
    fs::create_dir_all(photos.join("two")).unwrap();
    fs::copy(media("single_face.jpg"), photos.join("one/single_face.jpg")).unwrap();
    fs::copy(media("multi_face.jpg"), photos.join("two/single_face.jpg")).unwrap();
    let pictures = dir.path().join("annotated");
    let out = dir.path().join("rows.csv");
    let mut command = moodscope();
    command
        .args(["analyze", "--recursive", "--annotate"])
        .arg(&pictures)
        .arg("--output")
        .arg(&out)
        .arg(&photos);
    assert!(run(&mut command).status.success());

    let mut names: Vec<String> = fs::read_dir(&pictures)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["single_face-2.png", "single_face.png"]);
    let size = |name: &str| image::image_dimensions(pictures.join(name)).unwrap();
    assert_eq!(
        size("single_face.png"),
        image::image_dimensions(media("single_face.jpg")).unwrap()
    );
    assert_eq!(
        size("single_face-2.png"),
        image::image_dimensions(media("multi_face.jpg")).unwrap()
    );
}

#[test]
fn sampling_keeps_every_image() {
    // --fps and --every thin out video frames; a folder's images are all analysed.
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    fs::create_dir(&photos).unwrap();
    for name in ["a.jpg", "b.jpg", "c.jpg"] {
        fs::copy(media("single_face.jpg"), photos.join(name)).unwrap();
    }
    let out = dir.path().join("rows.csv");
    for sampling in [["--fps", "1"], ["--every", "5"]] {
        let (status, rows) = analyze(&sampling, &[&photos], &out);
        assert_eq!(status, Some(0));
        assert_eq!(rows.len(), 3, "{sampling:?}: {rows:#?}");
    }
}

#[test]
fn faces_do_not_carry_over_between_videos() {
    // The same clip twice: its face sits in the same place at the end of the first pass and
    // at the start of the second, but the second pass is another source with a face of its own.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rows.csv");
    let clip = media("single_face.mp4");
    let (status, rows) = analyze(&["--every", "24"], &[&clip, &clip], &out);
    assert_eq!(status, Some(0));
    assert_eq!(rows.len(), 6, "{rows:#?}");
    let ids: Vec<u64> = rows.iter().map(|row| row.face_id.unwrap()).collect();
    assert_eq!(ids, [1, 1, 1, 2, 2, 2]);
}

/// Runs analyze on a photo with `option value`, expecting exit code 1 before any row is
/// written to `out`; returns the standard error.
fn fails_before_writing(option: &str, value: &Path, out: &Path) -> String {
    let mut command = moodscope();
    command
        .args(["analyze", option])
        .arg(value)
        .arg("--output")
        .arg(out)
        .arg(media("multi_face.jpg"));
    let output = run(&mut command);
    assert_eq!(output.status.code(), Some(1));
    assert!(!out.exists(), "{} was created", out.display());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn summary_in_missing_folder_fails_first() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rows.csv");
    let summary = dir.path().join("no/such/folder/summary.csv");
    let stderr = fails_before_writing("--summary", &summary, &out);
    assert!(stderr.contains("summary.csv"), "{stderr}");
    assert!(stderr.contains("folder does not exist"), "{stderr}");
}

#[test]
fn closed_pipe_ends_quietly() {
    // As `moodscope analyze clip.mp4 | head -1` does: read one line, then close the pipe.
    let mut child = moodscope()
        .args(["analyze"])
        .arg(media("WolfgangLanger_Pexels.mp4"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut header = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut header).unwrap();
    assert!(header.starts_with("time_utc,source,"), "{header}");

    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
    assert!(!stderr.contains("frames in"), "{stderr}");
}

#[test]
fn single_bad_input_is_an_error_row() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.jpg");
    fs::write(&empty, b"").unwrap();
    let out = dir.path().join("rows.csv");
    let summary = dir.path().join("summary.csv");
    let mut command = moodscope();
    command
        .args(["analyze", "--output"])
        .arg(&out)
        .arg("--summary")
        .arg(&summary)
        .arg(&empty);
    let output = run(&mut command);
    assert_eq!(output.status.code(), Some(3));
    let rows = read_rows(&out);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, "error");
    assert!(rows[0].error.contains("empty.jpg"), "{}", rows[0].error);
    assert!(summary.is_file());
    // Standard error is not a terminal here, so no progress bar: the message still appears.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("moodscope: "), "{stderr}");
    assert!(stderr.contains("empty.jpg"), "{stderr}");
}

#[test]
fn folder_videos_and_images_all_analysed() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("mixed");
    fs::create_dir(&folder).unwrap();
    fs::copy(media("no_face.mp4"), folder.join("clip.mp4")).unwrap();
    fs::copy(media("single_face.jpg"), folder.join("photo.jpg")).unwrap();
    let out = dir.path().join("rows.csv");
    let summary = dir.path().join("summary.csv");
    let mut command = moodscope();
    command
        .args(["analyze", "--every", "10", "--output"])
        .arg(&out)
        .arg("--summary")
        .arg(&summary)
        .arg(&folder);
    assert!(run(&mut command).status.success());

    let rows = read_rows(&out);
    let video_rows = rows
        .iter()
        .filter(|row| row.source.ends_with("clip.mp4"))
        .count();
    let photo_rows = rows
        .iter()
        .filter(|row| row.source.ends_with("photo.jpg"))
        .count();
    // Frames 0, 10, ..., 90 of the clip's 95, and the photo's one face.
    assert_eq!(video_rows, 10);
    assert_eq!(photo_rows, 1);

    // The overall rows add up the sources and take about as long as they do together.
    let records = common::read_summary(&summary);
    let overall: Vec<_> = records
        .iter()
        .filter(|record| &record[0] == "all")
        .collect();
    assert_eq!(overall.len(), 7);
    assert_eq!(overall[0][1].parse::<u64>().unwrap(), 11);
    let duration: f64 = overall[0][5].parse().unwrap();
    let fps: f64 = overall[0][6].parse().unwrap();
    assert!(duration > 0.01, "overall duration {duration} s");
    assert!(fps < 10_000.0, "overall fps {fps}");
}

#[test]
fn tta_changes_probabilities_not_boxes() {
    let dir = tempfile::tempdir().unwrap();
    let plain_path = dir.path().join("plain.csv");
    let mirrored_path = dir.path().join("mirrored.csv");
    let photo = media("multi_face.jpg");
    let (status, plain) = analyze(&["--tta=off"], &[&photo], &plain_path);
    assert_eq!(status, Some(0));
    // Mirror averaging is the default.
    let (status, mirrored) = analyze(&[], &[&photo], &mirrored_path);
    assert_eq!(status, Some(0));
    assert_eq!(mirrored.len(), plain.len());
    let mut changed = 0;
    for (a, b) in plain.iter().zip(&mirrored) {
        assert_eq!(a.bbox, b.bbox);
        let (a, b) = (a.probabilities.unwrap(), b.probabilities.unwrap());
        assert!((b.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{b:?}");
        if a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 1e-3) {
            changed += 1;
        }
    }
    // A face and its mirror image differ, so the averaged probabilities do too.
    assert_eq!(changed, plain.len());
}

#[test]
fn broken_model_writes_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.json");
    fs::write(&model, b"{ not json").unwrap();
    let out = dir.path().join("rows.csv");
    let stderr = fails_before_writing("--model", &model, &out);
    assert!(stderr.contains("model.json"), "{stderr}");

    // Without --output the rows go to standard output, which stays empty.
    let mut command = moodscope();
    command
        .args(["analyze", "--model"])
        .arg(&model)
        .arg(media("multi_face.jpg"));
    let output = run(&mut command);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty(), "{:?}", output.stdout);
}
