//! Per-source and overall statistics of a run: frames, faces, speed, and for each class the
//! mean probability and the share of faces where it was the dominant emotion.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::RecordError;
use crate::emotion::{Emotion, CLASS_COUNT};
use crate::pipeline::FrameReport;

/// Running statistics of one source, or of all sources together.
#[derive(Clone, Debug)]
pub struct SourceSummary {
    pub source: String,
    /// Frames (or images) analysed.
    pub frames: u64,
    /// Frames with at least one face.
    pub frames_with_face: u64,
    /// Face observations, one per face per frame: the number of `face` rows.
    pub faces: u64,
    /// Inputs or frames that could not be read.
    pub errors: u64,
    probability_sums: [f64; CLASS_COUNT],
    dominant_counts: [u64; CLASS_COUNT],
    /// When work on this source began; sources read one after another begin when the one
    /// before ends.
    started: Instant,
    has_begun: bool,
    /// The run's total pause time when work on this source began.
    paused_before: Duration,
    /// Time paused since work on this source began, left out of its duration.
    paused: Duration,
    elapsed: Duration,
}

impl SourceSummary {
    pub fn new(source: &str) -> SourceSummary {
        SourceSummary {
            source: source.to_owned(),
            frames: 0,
            frames_with_face: 0,
            faces: 0,
            errors: 0,
            probability_sums: [0.0; CLASS_COUNT],
            dominant_counts: [0; CLASS_COUNT],
            started: Instant::now(),
            has_begun: false,
            paused_before: Duration::ZERO,
            paused: Duration::ZERO,
            elapsed: Duration::ZERO,
        }
    }

    /// Marks when work on this source began and the run's total pause time then, the first
    /// time only.
    pub fn begin_at(&mut self, when: Instant, pause_total: Duration) {
        if !self.has_begun {
            self.started = when;
            self.paused_before = pause_total;
            self.has_begun = true;
        }
    }

    /// Takes the run's total pause time so far, so that pauses since this source began are
    /// left out of its duration and frame rate.
    pub fn set_pause_total(&mut self, pause_total: Duration) {
        self.paused = pause_total.saturating_sub(self.paused_before);
    }

    /// Returns the time since work on this source began, pauses left out.
    fn active_time(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.paused)
    }

    /// Returns true once [`Self::begin_at`] has been called.
    pub fn has_begun(&self) -> bool {
        self.has_begun
    }

    /// Counts one processed frame and its faces' unsmoothed scores.
    pub fn add_frame(&mut self, report: &FrameReport) {
        self.frames += 1;
        if !report.faces.is_empty() {
            self.frames_with_face += 1;
        }
        for face in &report.faces {
            self.faces += 1;
            for (sum, &value) in self.probability_sums.iter_mut().zip(face.raw.0.iter()) {
                *sum += f64::from(value);
            }
            self.dominant_counts[face.raw.dominant().label()] += 1;
        }
        self.elapsed = self.active_time();
    }

    /// Counts one input that could not be read.
    pub fn add_error(&mut self) {
        self.errors += 1;
        self.elapsed = self.active_time();
    }

    /// Adds another summary's counts and duration, for the overall figures of sources read
    /// one after another.
    pub fn merge(&mut self, other: &SourceSummary) {
        self.frames += other.frames;
        self.frames_with_face += other.frames_with_face;
        self.faces += other.faces;
        self.errors += other.errors;
        for index in 0..CLASS_COUNT {
            self.probability_sums[index] += other.probability_sums[index];
            self.dominant_counts[index] += other.dominant_counts[index];
        }
        self.elapsed += other.elapsed;
    }

    /// Returns the wall time from the start of work on this source to its last update, pauses
    /// left out.
    pub fn duration(&self) -> Duration {
        self.elapsed
    }

    /// Returns analysed frames per second of wall time.
    pub fn frames_per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.frames as f64 / seconds
        } else {
            0.0
        }
    }

    /// Returns the mean probability of a class over all face observations, 0 without faces.
    pub fn mean_probability(&self, emotion: Emotion) -> f64 {
        if self.faces == 0 {
            return 0.0;
        }
        self.probability_sums[emotion.label()] / self.faces as f64
    }

    /// Returns the share of face observations in which a class was the dominant one.
    pub fn dominant_share(&self, emotion: Emotion) -> f64 {
        if self.faces == 0 {
            return 0.0;
        }
        self.dominant_counts[emotion.label()] as f64 / self.faces as f64
    }
}

/// One line of the summary CSV.
#[derive(Serialize)]
struct SummaryRow<'a> {
    source: &'a str,
    frames: u64,
    frames_with_face: u64,
    faces: u64,
    errors: u64,
    duration_s: f64,
    fps: f64,
    class: &'static str,
    mean_probability: f64,
    dominant_share: f64,
}

/// Writes one row per source and class, then the overall rows (named `all` by the caller),
/// when given.
///
/// # Errors
///
/// Returns a [`RecordError`] naming the path.
pub fn write_summary_csv(
    path: &Path,
    sources: &[SourceSummary],
    overall: Option<&SourceSummary>,
) -> Result<(), RecordError> {
    let write_error = |source: std::io::Error| RecordError::Write {
        path: path.to_owned(),
        source,
    };
    let mut writer = csv::Writer::from_path(path).map_err(|error| RecordError::Create {
        path: path.to_owned(),
        source: error.into(),
    })?;
    for summary in sources.iter().chain(overall) {
        for emotion in Emotion::ALL {
            let row = SummaryRow {
                source: &summary.source,
                frames: summary.frames,
                frames_with_face: summary.frames_with_face,
                faces: summary.faces,
                errors: summary.errors,
                duration_s: summary.duration().as_secs_f64(),
                fps: summary.frames_per_second(),
                class: emotion.name(),
                mean_probability: summary.mean_probability(emotion),
                dominant_share: summary.dominant_share(emotion),
            };
            writer
                .serialize(&row)
                .map_err(|error| write_error(error.into()))?;
        }
    }
    writer.flush().map_err(write_error)
}

/// Formats a summary as a short text table for the terminal.
pub fn render_text(summary: &SourceSummary) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{}: {} frames in {:.1} s ({:.1} fps), {} with a face, {} faces, {} errors",
        summary.source,
        summary.frames,
        summary.duration().as_secs_f64(),
        summary.frames_per_second(),
        summary.frames_with_face,
        summary.faces,
        summary.errors,
    );
    let _ = writeln!(text, "  {:<9} {:>9} {:>9}", "class", "mean", "dominant");
    for emotion in Emotion::ALL {
        let _ = writeln!(
            text,
            "  {:<9} {:>8.1}% {:>8.1}%",
            emotion.name(),
            100.0 * summary.mean_probability(emotion),
            100.0 * summary.dominant_share(emotion),
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Frame;
    use crate::detect::FaceBox;
    use crate::emotion::EmotionScores;
    use crate::pipeline::StageTimings;
    use crate::track::TrackedFace;

    fn report(scores: &[EmotionScores]) -> FrameReport {
        let faces = scores
            .iter()
            .enumerate()
            .map(|(index, &raw)| TrackedFace {
                id: index as u64 + 1,
                face: FaceBox {
                    x: 0,
                    y: 0,
                    width: 10,
                    height: 10,
                    score: 1.0,
                },
                scores: raw,
                raw,
            })
            .collect();
        let frame = Frame {
            index: 0,
            timestamp: 0.0,
            path: None,
            image: image::RgbImage::new(1, 1),
        };
        FrameReport {
            frame,
            faces,
            timings: StageTimings::default(),
        }
    }

    #[test]
    fn means_and_dominant_shares() {
        let happy = EmotionScores([0.0, 0.0, 0.0, 0.8, 0.2, 0.0, 0.0]);
        let sad = EmotionScores([0.0, 0.0, 0.0, 0.4, 0.6, 0.0, 0.0]);
        let mut summary = SourceSummary::new("clip");
        summary.add_frame(&report(&[happy, sad]));
        summary.add_frame(&report(&[happy]));
        summary.add_frame(&report(&[]));
        assert_eq!(summary.frames, 3);
        assert_eq!(summary.frames_with_face, 2);
        assert_eq!(summary.faces, 3);
        assert!((summary.mean_probability(Emotion::Happy) - 2.0 / 3.0).abs() < 1e-6);
        assert!((summary.dominant_share(Emotion::Happy) - 2.0 / 3.0).abs() < 1e-9);
        assert!((summary.dominant_share(Emotion::Sad) - 1.0 / 3.0).abs() < 1e-9);
        let shares: f64 = Emotion::ALL
            .iter()
            .map(|&e| summary.dominant_share(e))
            .sum();
        assert!((shares - 1.0).abs() < 1e-9);
    }

    #[test]
    fn duration_leaves_out_pauses() {
        let mut summary = SourceSummary::new("camera");
        let began = Instant::now() - Duration::from_secs(10);
        // The run had been paused for 3 s before this source began, and 6 s more since.
        summary.begin_at(began, Duration::from_secs(3));
        summary.set_pause_total(Duration::from_secs(9));
        summary.add_frame(&report(&[]));
        let seconds = summary.duration().as_secs_f64();
        assert!((4.0..4.5).contains(&seconds), "{seconds} s");
        assert!((summary.frames_per_second() - 1.0 / seconds).abs() < 1e-9);
    }

    #[test]
    fn merge_adds_counts() {
        let happy = EmotionScores([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
        let mut first = SourceSummary::new("a");
        first.add_frame(&report(&[happy]));
        let mut second = SourceSummary::new("b");
        second.add_frame(&report(&[]));
        second.add_error();
        let mut overall = SourceSummary::new("all");
        overall.merge(&first);
        overall.merge(&second);
        assert_eq!((overall.frames, overall.faces, overall.errors), (2, 1, 1));
    }

    #[test]
    fn summary_csv_has_row_per_class() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.csv");
        let summary = SourceSummary::new("clip");
        write_summary_csv(&path, std::slice::from_ref(&summary), Some(&summary)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1 + 2 * CLASS_COUNT);
        assert!(text.starts_with("source,frames,frames_with_face,faces,errors,duration_s,fps,"));
    }

    #[test]
    fn text_lists_every_class() {
        let text = render_text(&SourceSummary::new("clip"));
        for emotion in Emotion::ALL {
            assert!(text.contains(emotion.name()));
        }
    }
}
