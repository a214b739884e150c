//! Rolling history of each tracked face's smoothed scores, kept by source time.
//!
//! Source time (the frame timestamp) drives the window, not the wall clock, so a paused
//! pipeline or a video file processed faster or slower than real time still shows the last
//! `window` seconds of the video itself. Drawing is left to `render`.

use std::collections::{HashMap, VecDeque};

use crate::emotion::{EmotionScores, CLASS_COUNT};
use crate::track::TrackedFace;

/// One face's smoothed scores at one source time.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Sample {
    time: f64,
    scores: EmotionScores,
}

/// Smoothed scores of every face seen in the last `window` seconds of source time.
#[derive(Debug)]
pub struct History {
    window: f64,
    tracks: HashMap<u64, VecDeque<Sample>>,
    latest_time: Option<f64>,
}

impl History {
    /// Creates an empty history covering `window` seconds of source time.
    ///
    /// `window` must be positive and finite, which `App::new` ensures.
    pub fn new(window: f64) -> Self {
        Self {
            window,
            tracks: HashMap::new(),
            latest_time: None,
        }
    }

    /// Returns the length of the window in seconds.
    pub fn window(&self) -> f64 {
        self.window
    }

    /// Adds the faces of one frame at source time `time` and drops samples that left the window.
    ///
    /// A time earlier than the latest one means that the source started over (a looped file or
    /// a reopened camera), so the history is cleared first.
    pub fn record(&mut self, time: f64, faces: &[TrackedFace]) {
        if !time.is_finite() {
            return;
        }
        if self.latest_time.is_some_and(|latest| time < latest) {
            self.tracks.clear();
        }
        self.latest_time = Some(time);

        for face in faces {
            let sample = Sample {
                time,
                scores: face.scores,
            };
            self.tracks.entry(face.id).or_default().push_back(sample);
        }

        let start = time - self.window;
        self.tracks.retain(|_, samples| {
            while samples.front().is_some_and(|sample| sample.time < start) {
                samples.pop_front();
            }
            !samples.is_empty()
        });
    }

    /// Averages one face's scores into `count` equal time slices of the window, oldest first.
    ///
    /// The window ends at the newest frame of any face. A slice without samples of this face is
    /// `None`. Scores of a slice are the mean of its samples.
    pub fn columns(&self, id: u64, count: usize) -> Vec<Option<EmotionScores>> {
        let (Some(end), Some(samples)) = (self.latest_time, self.tracks.get(&id)) else {
            return vec![None; count];
        };
        if count == 0 {
            return Vec::new();
        }
        let mut sums = vec![([0.0_f32; CLASS_COUNT], 0_u32); count];

        let start = end - self.window;
        let slice = self.window / count as f64;
        for sample in samples {
            // The newest sample sits exactly at `end`, so clamp it into the last slice.
            let column = (((sample.time - start) / slice) as usize).min(count - 1);
            let (sum, n) = &mut sums[column];
            for (total, value) in sum.iter_mut().zip(sample.scores.0) {
                *total += value;
            }
            *n += 1;
        }

        sums.into_iter()
            .map(|(sum, n)| (n > 0).then(|| EmotionScores(sum.map(|total| total / n as f32))))
            .collect()
    }

    /// Returns the number of samples kept for one face.
    pub fn len(&self, id: u64) -> usize {
        self.tracks.get(&id).map_or(0, VecDeque::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::FaceBox;

    fn face(id: u64, scores: [f32; CLASS_COUNT]) -> TrackedFace {
        let face = FaceBox {
            x: 0,
            y: 0,
            width: 10,
            height: 10,
            score: 1.0,
        };
        let scores = EmotionScores(scores);
        TrackedFace {
            id,
            face,
            scores,
            raw: scores,
        }
    }

    const HAPPY: [f32; CLASS_COUNT] = [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0];
    const SAD: [f32; CLASS_COUNT] = [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0];

    #[test]
    fn samples_leave_window_by_source_time() {
        let mut history = History::new(10.0);
        for second in 0..30 {
            history.record(f64::from(second), &[face(1, HAPPY)]);
        }

        // Seconds 19 to 29 are inside a 10 s window ending at 29.
        assert_eq!(history.len(1), 11);
    }

    #[test]
    fn columns_average_their_samples() {
        let mut history = History::new(4.0);
        history.record(0.0, &[face(1, SAD)]);
        history.record(0.5, &[face(1, HAPPY)]);
        history.record(4.0, &[face(1, HAPPY)]);

        let columns = history.columns(1, 4);
        assert_eq!(columns.len(), 4);
        let first = columns[0].expect("first slice has the samples at 0.0 s and 0.5 s");
        assert!((first.0[3] - 0.5).abs() < 1e-6);
        assert!((first.0[4] - 0.5).abs() < 1e-6);
        assert_eq!(columns[1], None);
        assert_eq!(columns[2], None);
        assert_eq!(columns[3], Some(EmotionScores(HAPPY)));
    }

    #[test]
    fn earlier_time_clears_history() {
        let mut history = History::new(30.0);
        history.record(12.0, &[face(1, HAPPY)]);
        history.record(0.0, &[face(2, SAD)]);

        assert_eq!(history.len(1), 0);
        assert_eq!(history.len(2), 1);
    }

    #[test]
    fn unknown_face_has_empty_columns() {
        let mut history = History::new(30.0);
        history.record(1.0, &[face(1, HAPPY)]);

        assert_eq!(history.columns(7, 3), vec![None, None, None]);
        assert!(history.columns(1, 0).is_empty());
    }
}
