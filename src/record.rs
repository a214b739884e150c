//! Recording results: one row per face per analysed frame as CSV or JSON Lines, flushed at
//! least once a second, and the per-source summaries in [`summary`].

pub mod summary;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::emotion::EmotionScores;
use crate::pipeline::FrameReport;

/// How often buffered rows reach the file, at the latest.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// File format of the per-face rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RowFormat {
    #[default]
    Csv,
    /// One JSON object a line.
    Jsonl,
}

/// Error writing the rows or the summary.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot create \"{path}\": {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write to \"{path}\": {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl RecordError {
    /// Returns true when a write failed because the reader of a pipe closed it.
    pub fn is_closed_pipe(&self) -> bool {
        matches!(self, RecordError::Write { source, .. }
            if source.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// Checks before a run that a file it writes at the end can be created at `path`: the folder
/// exists and the path is not a folder.
///
/// # Errors
///
/// Returns a [`RecordError::Create`] naming the path.
pub fn check_output_path(path: &Path) -> Result<(), RecordError> {
    let problem = |message: &str| RecordError::Create {
        path: path.to_owned(),
        source: std::io::Error::other(message.to_owned()),
    };
    // A path that ends with a separator names a folder, whether or not it exists.
    let names_folder = path
        .as_os_str()
        .to_string_lossy()
        .ends_with(std::path::MAIN_SEPARATOR);
    if path.is_dir() || names_folder {
        return Err(problem("it is a folder"));
    }
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    if !folder.is_dir() {
        return Err(problem("its folder does not exist"));
    }
    Ok(())
}

/// Checks that no output names an input or another output, which writing it would destroy.
/// `outputs` pairs each option with its path; paths are compared where they lead, through
/// links and `..`.
///
/// # Errors
///
/// A message naming the option and the path.
pub fn check_outputs_apart(outputs: &[(&str, &Path)], inputs: &[&Path]) -> Result<(), String> {
    for (position, (option, path)) in outputs.iter().enumerate() {
        let place = resolved(path);
        if inputs.iter().any(|input| resolved(input) == place) {
            return Err(format!(
                "{option} {} is also an input, which the output would overwrite",
                path.display()
            ));
        }
        let earlier = outputs[..position]
            .iter()
            .find(|(_, other)| resolved(other) == place);
        if let Some((other, _)) = earlier {
            return Err(format!(
                "{other} and {option} name the same file, {}",
                path.display()
            ));
        }
    }
    Ok(())
}

/// Returns where a path leads, through links and `..`, also for a file that does not exist
/// yet (its folder's real path with its name).
fn resolved(path: &Path) -> PathBuf {
    if let Ok(real) = std::fs::canonicalize(path) {
        return real;
    }
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    match (std::fs::canonicalize(folder), path.file_name()) {
        (Ok(folder), Some(name)) => folder.join(name),
        _ => path.to_owned(),
    }
}

/// Kind of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowStatus {
    /// A classified face.
    Face,
    /// An analysed frame or image in which no face was found.
    NoFace,
    /// An input that could not be read, with the reason in `error`.
    Error,
}

/// The CSV header, in the field order of [`Row`].
pub const COLUMNS: [&str; 19] = [
    "time_utc",
    "source",
    "frame",
    "source_time",
    "status",
    "face_id",
    "x",
    "y",
    "width",
    "height",
    "angry",
    "disgust",
    "fear",
    "happy",
    "sad",
    "surprise",
    "neutral",
    "label",
    "error",
];

/// One output row; the fields are the CSV columns in order.
#[derive(Debug, Serialize)]
struct Row<'a> {
    time_utc: String,
    source: &'a str,
    frame: Option<u64>,
    source_time: Option<f64>,
    status: RowStatus,
    face_id: Option<u64>,
    x: Option<u32>,
    y: Option<u32>,
    width: Option<u32>,
    height: Option<u32>,
    angry: Option<f32>,
    disgust: Option<f32>,
    fear: Option<f32>,
    happy: Option<f32>,
    sad: Option<f32>,
    surprise: Option<f32>,
    neutral: Option<f32>,
    label: Option<&'static str>,
    error: Option<&'a str>,
}

impl<'a> Row<'a> {
    fn new(source: &'a str, status: RowStatus) -> Row<'a> {
        Row {
            time_utc: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            source,
            frame: None,
            source_time: None,
            status,
            face_id: None,
            x: None,
            y: None,
            width: None,
            height: None,
            angry: None,
            disgust: None,
            fear: None,
            happy: None,
            sad: None,
            surprise: None,
            neutral: None,
            label: None,
            error: None,
        }
    }

    fn set_scores(&mut self, scores: &EmotionScores) {
        let [angry, disgust, fear, happy, sad, surprise, neutral] = scores.0;
        self.angry = Some(angry);
        self.disgust = Some(disgust);
        self.fear = Some(fear);
        self.happy = Some(happy);
        self.sad = Some(sad);
        self.surprise = Some(surprise);
        self.neutral = Some(neutral);
        self.label = Some(scores.dominant().name());
    }
}

type Output = BufWriter<Box<dyn Write + Send>>;

enum Sink {
    Csv(Box<csv::Writer<Output>>),
    Jsonl(Output),
}

/// Writes result rows to a file and flushes them at least once a second.
///
/// The scores written are those of the frame alone, before smoothing, so that the file can be
/// re-analysed with any smoothing. Rows are flushed when the recorder is dropped too.
pub struct Recorder {
    path: PathBuf,
    sink: Sink,
    last_flush: Instant,
    rows: u64,
    /// Set once a write has failed, which the caller reports; dropping then writes no more.
    failed: bool,
}

impl Recorder {
    /// Creates (or truncates) the output file; a CSV gets its header at once.
    ///
    /// # Errors
    ///
    /// Returns [`RecordError::Create`] naming the path when the file cannot be created.
    pub fn create(path: &Path, format: RowFormat) -> Result<Recorder, RecordError> {
        let file = File::create(path).map_err(|source| RecordError::Create {
            path: path.to_owned(),
            source,
        })?;
        Recorder::from_writer(Box::new(file), path, format)
    }

    /// Writes the rows to any output, such as standard output; `name` stands for it in errors.
    ///
    /// # Errors
    ///
    /// Returns [`RecordError::Write`] when the CSV header cannot be written.
    pub fn from_writer(
        output: Box<dyn Write + Send>,
        name: &Path,
        format: RowFormat,
    ) -> Result<Recorder, RecordError> {
        let path = name;
        let buffered = BufWriter::new(output);
        let sink = match format {
            RowFormat::Csv => Sink::Csv(Box::new(
                csv::WriterBuilder::new()
                    .has_headers(false)
                    .from_writer(buffered),
            )),
            RowFormat::Jsonl => Sink::Jsonl(buffered),
        };
        let mut recorder = Recorder {
            path: path.to_owned(),
            sink,
            last_flush: Instant::now(),
            rows: 0,
            failed: false,
        };
        if let Sink::Csv(writer) = &mut recorder.sink {
            // Written at once, so that a run that finds nothing still leaves a well-formed CSV.
            let result = writer
                .write_record(COLUMNS)
                .and_then(|()| Ok(writer.flush()?));
            result.map_err(|error| recorder.write_error(error.into()))?;
        }
        Ok(recorder)
    }

    /// Returns the number of rows written so far, the header not counted.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes one row per face of a processed frame, or one `no_face` row when
    /// `with_no_face_rows` is set and the frame has none.
    ///
    /// # Errors
    ///
    /// Returns [`RecordError::Write`] naming the file.
    pub fn write_frame(
        &mut self,
        source: &str,
        report: &FrameReport,
        with_no_face_rows: bool,
    ) -> Result<(), RecordError> {
        let frame = &report.frame;
        if report.faces.is_empty() && with_no_face_rows {
            let mut row = Row::new(source, RowStatus::NoFace);
            row.frame = Some(frame.index);
            row.source_time = Some(frame.timestamp);
            self.write_row(&row)?;
        }
        for tracked in &report.faces {
            let mut row = Row::new(source, RowStatus::Face);
            row.frame = Some(frame.index);
            row.source_time = Some(frame.timestamp);
            row.face_id = Some(tracked.id);
            row.x = Some(tracked.face.x);
            row.y = Some(tracked.face.y);
            row.width = Some(tracked.face.width);
            row.height = Some(tracked.face.height);
            row.set_scores(&tracked.raw);
            self.write_row(&row)?;
        }
        self.flush_if_due()
    }

    /// Writes an `error` row for an input that could not be read.
    ///
    /// # Errors
    ///
    /// Returns [`RecordError::Write`] naming the file.
    pub fn write_input_error(&mut self, source: &str, message: &str) -> Result<(), RecordError> {
        let mut row = Row::new(source, RowStatus::Error);
        row.error = Some(message);
        self.write_row(&row)?;
        self.flush()
    }

    /// Pushes every buffered row to the file.
    ///
    /// # Errors
    ///
    /// Returns [`RecordError::Write`] naming the file.
    pub fn flush(&mut self) -> Result<(), RecordError> {
        self.last_flush = Instant::now();
        let result = match &mut self.sink {
            Sink::Csv(writer) => writer.flush(),
            Sink::Jsonl(writer) => writer.flush(),
        };
        result.map_err(|error| self.write_error(error))
    }

    fn flush_if_due(&mut self) -> Result<(), RecordError> {
        if self.last_flush.elapsed() >= FLUSH_INTERVAL {
            self.flush()?;
        }
        Ok(())
    }

    fn write_row(&mut self, row: &Row<'_>) -> Result<(), RecordError> {
        let result = match &mut self.sink {
            Sink::Csv(writer) => writer.serialize(row).map_err(csv_io_error),
            Sink::Jsonl(writer) => serde_json::to_writer(&mut *writer, row)
                .map_err(std::io::Error::from)
                .and_then(|()| writer.write_all(b"\n")),
        };
        result.map_err(|error| self.write_error(error))?;
        self.rows += 1;
        Ok(())
    }

    fn write_error(&mut self, source: std::io::Error) -> RecordError {
        self.failed = true;
        RecordError::Write {
            path: self.path.clone(),
            source,
        }
    }
}

/// Wraps a CSV error as an I/O error of the same kind, so that a closed pipe stays one.
fn csv_io_error(error: csv::Error) -> std::io::Error {
    let kind = match error.kind() {
        csv::ErrorKind::Io(source) => source.kind(),
        _ => std::io::ErrorKind::Other,
    };
    std::io::Error::new(kind, error)
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if self.failed {
            return;
        }
        match self.flush() {
            Err(error) if !error.is_closed_pipe() => tracing::error!("{error}"),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::capture::Frame;
    use crate::detect::FaceBox;
    use crate::pipeline::StageTimings;
    use crate::track::TrackedFace;

    fn report(faces: usize) -> FrameReport {
        let scores = EmotionScores([0.1, 0.0, 0.1, 0.6, 0.1, 0.05, 0.05]);
        let face = |id| TrackedFace {
            id,
            face: FaceBox {
                x: 10,
                y: 20,
                width: 30,
                height: 40,
                score: 3.0,
            },
            scores,
            raw: scores,
        };
        FrameReport {
            frame: Frame {
                index: 7,
                timestamp: 0.25,
                path: None::<Arc<Path>>,
                image: image::RgbImage::new(4, 4),
            },
            faces: (1..=faces as u64).map(face).collect(),
            timings: StageTimings::default(),
        }
    }

    #[test]
    fn header_matches_row_fields() {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer
            .serialize(Row::new("clip.mp4", RowStatus::Face))
            .unwrap();
        let text = String::from_utf8(writer.into_inner().unwrap()).unwrap();
        assert_eq!(text.lines().next().unwrap(), COLUMNS.join(","));
    }

    #[test]
    fn csv_rows_per_face_and_no_face() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.csv");
        let mut recorder = Recorder::create(&path, RowFormat::Csv).unwrap();
        recorder.write_frame("clip.mp4", &report(2), true).unwrap();
        recorder.write_frame("clip.mp4", &report(0), true).unwrap();
        recorder.write_frame("clip.mp4", &report(0), false).unwrap();
        recorder
            .write_input_error("bad.jpg", "not an image")
            .unwrap();
        assert_eq!(recorder.rows(), 4);
        drop(recorder);

        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5);
        assert!(lines[1].contains(",clip.mp4,7,0.25,face,1,10,20,30,40,0.1,0.0,0.1,0.6,"));
        assert!(lines[1].ends_with(",happy,"));
        assert!(lines[3].contains(",no_face,"));
        assert!(lines[4].contains(",bad.jpg,,,error,"));
        assert!(lines[4].ends_with(",not an image"));
    }

    #[test]
    fn header_reaches_file_before_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.csv");
        let _recorder = Recorder::create(&path, RowFormat::Csv).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim_end(), COLUMNS.join(","));
    }

    #[test]
    fn jsonl_rows_parse() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        let mut recorder = Recorder::create(&path, RowFormat::Jsonl).unwrap();
        recorder.write_frame("clip.mp4", &report(1), true).unwrap();
        drop(recorder);
        let text = std::fs::read_to_string(&path).unwrap();
        let row: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(row["status"], "face");
        assert_eq!(row["face_id"], 1);
        assert_eq!(row["label"], "happy");
    }

    #[test]
    fn missing_folder_names_path() {
        let error = Recorder::create(Path::new("/no/such/folder/rows.csv"), RowFormat::Csv)
            .err()
            .unwrap();
        assert!(error.to_string().contains("/no/such/folder/rows.csv"));
    }

    #[test]
    fn outputs_keep_apart_from_inputs_and_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let clip = dir.path().join("clip.mp4");
        std::fs::write(&clip, b"frames").unwrap();
        let rows = dir.path().join("rows.csv");
        // The same file spelt another way, before it exists.
        let rows_again = dir.path().join(".").join("rows.csv");
        let summary = dir.path().join("summary.csv");
        let apart = [("-o", rows.as_path()), ("--summary", summary.as_path())];
        assert!(check_outputs_apart(&apart, &[&clip]).is_ok());

        let onto_input = check_outputs_apart(&[("-o", &clip)], &[&clip]).unwrap_err();
        assert!(onto_input.contains("-o"), "{onto_input}");
        assert!(onto_input.contains("also an input"), "{onto_input}");
        let same = [("-o", rows.as_path()), ("--summary", rows_again.as_path())];
        let message = check_outputs_apart(&same, &[&clip]).unwrap_err();
        assert!(
            message.contains("-o and --summary name the same file"),
            "{message}"
        );
    }

    #[test]
    fn output_path_needs_a_file_in_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_output_path(&dir.path().join("summary.csv")).is_ok());
        assert!(check_output_path(Path::new("summary.csv")).is_ok());
        let folder_error = |path: &Path| check_output_path(path).unwrap_err().to_string();
        assert!(folder_error(dir.path()).contains("it is a folder"));
        let missing = dir.path().join("missing").join("");
        assert!(folder_error(&missing).contains("it is a folder"));
        let deeper = dir.path().join("missing/summary.csv");
        assert!(folder_error(&deeper).contains("its folder does not exist"));
    }
}
