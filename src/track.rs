//! Following faces across frames: identities by box overlap and smoothed probabilities.

mod follow;

pub use follow::{FaceTemplate, FollowedFace, LOST_DIFFERENCE, SEARCH_CELLS, TEMPLATE_CELLS};

use crate::detect::FaceBox;
use crate::emotion::EmotionScores;

/// A followed face: a stable id, its box and its scores.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackedFace {
    /// Identity that stays the same while the face is followed, starting at 1.
    pub id: u64,
    pub face: FaceBox,
    /// Probabilities smoothed over time with an exponential moving average.
    pub scores: EmotionScores,
    /// Probabilities of this frame alone.
    pub raw: EmotionScores,
}

/// Settings for matching faces across frames and smoothing their scores.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrackerSettings {
    /// Weight of the newest frame in the exponential moving average, in (0, 1]; 1 turns
    /// smoothing off.
    pub smoothing: f32,
    /// Smallest intersection-over-union for a detection to continue a track, in (0, 1).
    pub min_overlap: f32,
    /// Frames a track survives without a matching detection before its id is retired.
    pub max_missed: u32,
}

impl Default for TrackerSettings {
    fn default() -> Self {
        // At 24-30 fps a weight of 0.3 settles within about a third of a second, enough to
        // hide frame-to-frame flicker without hiding a change of expression.
        TrackerSettings {
            smoothing: 0.3,
            min_overlap: 0.3,
            max_missed: 12,
        }
    }
}

/// Error for tracker settings outside their valid ranges.
#[derive(Debug, thiserror::Error)]
pub enum TrackerSettingsError {
    #[error("invalid smoothing weight \"{0}\": expected a number in (0, 1], where 1 turns smoothing off")]
    Smoothing(f32),
    #[error("invalid minimum overlap \"{0}\": expected a number in (0, 1)")]
    Overlap(f32),
}

impl TrackerSettings {
    /// Checks that every setting is in range.
    ///
    /// # Errors
    ///
    /// Returns the first setting that is out of range.
    pub fn validate(&self) -> Result<(), TrackerSettingsError> {
        if !(self.smoothing > 0.0 && self.smoothing <= 1.0) {
            return Err(TrackerSettingsError::Smoothing(self.smoothing));
        }
        if !(self.min_overlap > 0.0 && self.min_overlap < 1.0) {
            return Err(TrackerSettingsError::Overlap(self.min_overlap));
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
struct Track {
    face: TrackedFace,
    missed: u32,
}

/// Assigns stable ids to faces by box overlap and smooths their scores over time.
#[derive(Debug)]
pub struct Tracker {
    settings: TrackerSettings,
    tracks: Vec<Track>,
    next_id: u64,
}

impl Tracker {
    pub fn new(settings: TrackerSettings) -> Tracker {
        Tracker {
            settings,
            tracks: Vec::new(),
            next_id: 1,
        }
    }

    /// Matches this frame's faces to the existing tracks and returns the faces seen in it,
    /// in the order of `faces`.
    ///
    /// Pairs are matched greedily from the largest overlap down. A face that matches no track
    /// starts a new one; a track that matches no face is kept for `max_missed` frames.
    ///
    /// # Panics
    ///
    /// Panics if `faces` and `scores` differ in length, which is a bug in the caller.
    pub fn update(&mut self, faces: &[FaceBox], scores: &[EmotionScores]) -> Vec<TrackedFace> {
        assert_eq!(faces.len(), scores.len(), "one score vector per face");
        let assignment = self.match_faces(faces);
        let mut matched_tracks = vec![false; self.tracks.len()];
        let mut seen = Vec::with_capacity(faces.len());
        for (face_index, track_index) in assignment.into_iter().enumerate() {
            let (face, raw) = (faces[face_index], scores[face_index]);
            let tracked = match track_index {
                Some(index) => {
                    matched_tracks[index] = true;
                    let track = &mut self.tracks[index];
                    track.missed = 0;
                    track.face.face = face;
                    track.face.raw = raw;
                    track.face.scores = blend(&track.face.scores, &raw, self.settings.smoothing);
                    track.face.clone()
                }
                None => self.start_track(face, raw),
            };
            seen.push(tracked);
        }
        self.age_unmatched(&matched_tracks);
        seen
    }

    /// Returns the faces currently followed, also those missed in the latest frames.
    pub fn tracks(&self) -> impl Iterator<Item = &TrackedFace> {
        self.tracks.iter().map(|track| &track.face)
    }

    /// Forgets every track, as after a jump in the input.
    pub fn reset(&mut self) {
        self.tracks.clear();
    }

    /// Returns, for each face, the index of the track it continues, if any.
    fn match_faces(&self, faces: &[FaceBox]) -> Vec<Option<usize>> {
        let mut pairs = Vec::new();
        for (face_index, face) in faces.iter().enumerate() {
            for (track_index, track) in self.tracks.iter().enumerate() {
                let overlap = intersection_over_union(face, &track.face.face);
                if overlap >= self.settings.min_overlap {
                    pairs.push((overlap, face_index, track_index));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut assignment = vec![None; faces.len()];
        let mut track_taken = vec![false; self.tracks.len()];
        for (_, face_index, track_index) in pairs {
            if assignment[face_index].is_none() && !track_taken[track_index] {
                assignment[face_index] = Some(track_index);
                track_taken[track_index] = true;
            }
        }
        assignment
    }

    fn start_track(&mut self, face: FaceBox, raw: EmotionScores) -> TrackedFace {
        let tracked = TrackedFace {
            id: self.next_id,
            face,
            scores: raw,
            raw,
        };
        self.next_id += 1;
        self.tracks.push(Track {
            face: tracked.clone(),
            missed: 0,
        });
        tracked
    }

    fn age_unmatched(&mut self, matched: &[bool]) {
        let max_missed = self.settings.max_missed;
        let mut index = 0;
        self.tracks.retain_mut(|track| {
            let was_matched = matched.get(index).copied().unwrap_or(true);
            index += 1;
            if !was_matched {
                track.missed += 1;
            }
            track.missed <= max_missed
        });
    }
}

/// Returns the exponential moving average step `old + weight * (new - old)`.
fn blend(old: &EmotionScores, new: &EmotionScores, weight: f32) -> EmotionScores {
    let mut blended = *old;
    for (value, &latest) in blended.0.iter_mut().zip(new.0.iter()) {
        *value += weight * (latest - *value);
    }
    blended
}

/// Returns the intersection over union of two boxes, 0 for disjoint or empty boxes.
pub fn intersection_over_union(a: &FaceBox, b: &FaceBox) -> f32 {
    let left = a.x.max(b.x);
    let top = a.y.max(b.y);
    let right = (a.x + a.width).min(b.x + b.width);
    let bottom = (a.y + a.height).min(b.y + b.height);
    if right <= left || bottom <= top {
        return 0.0;
    }
    let intersection = f64::from(right - left) * f64::from(bottom - top);
    let area = |face: &FaceBox| f64::from(face.width) * f64::from(face.height);
    let union = area(a) + area(b) - intersection;
    (intersection / union) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(x: u32, y: u32, size: u32) -> FaceBox {
        FaceBox {
            x,
            y,
            width: size,
            height: size,
            score: 5.0,
        }
    }

    fn scores(label: usize) -> EmotionScores {
        let mut values = [0.0; 7];
        values[label] = 1.0;
        EmotionScores(values)
    }

    #[test]
    fn overlap_of_known_boxes() {
        assert_eq!(
            intersection_over_union(&face(0, 0, 10), &face(20, 20, 10)),
            0.0
        );
        assert!((intersection_over_union(&face(0, 0, 10), &face(0, 0, 10)) - 1.0).abs() < 1e-6);
        // Two 10x10 boxes shifted by 5 in x share 50 of 150 pixels.
        let shifted = FaceBox {
            x: 5,
            ..face(0, 0, 10)
        };
        assert!((intersection_over_union(&face(0, 0, 10), &shifted) - 1.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn ids_follow_moving_faces() {
        let mut tracker = Tracker::new(TrackerSettings::default());
        let first = tracker.update(&[face(0, 0, 50), face(200, 0, 50)], &[scores(3), scores(4)]);
        assert_eq!(first.iter().map(|f| f.id).collect::<Vec<_>>(), [1, 2]);
        // Both faces move a little, and arrive in the other order.
        let second = tracker.update(&[face(205, 3, 50), face(4, 2, 50)], &[scores(4), scores(3)]);
        assert_eq!(second.iter().map(|f| f.id).collect::<Vec<_>>(), [2, 1]);
    }

    #[test]
    fn new_face_gets_new_id() {
        let mut tracker = Tracker::new(TrackerSettings::default());
        tracker.update(&[face(0, 0, 50)], &[scores(3)]);
        let seen = tracker.update(&[face(0, 0, 50), face(300, 0, 50)], &[scores(3), scores(6)]);
        assert_eq!(seen[1].id, 2);
    }

    #[test]
    fn missed_tracks_retire_after_limit() {
        let settings = TrackerSettings {
            max_missed: 2,
            ..TrackerSettings::default()
        };
        let mut tracker = Tracker::new(settings);
        tracker.update(&[face(0, 0, 50)], &[scores(3)]);
        for _ in 0..2 {
            tracker.update(&[], &[]);
        }
        assert_eq!(tracker.tracks().count(), 1);
        assert_eq!(tracker.update(&[face(1, 1, 50)], &[scores(3)])[0].id, 1);
        for _ in 0..3 {
            tracker.update(&[], &[]);
        }
        assert_eq!(tracker.tracks().count(), 0);
        assert_eq!(tracker.update(&[face(1, 1, 50)], &[scores(3)])[0].id, 2);
    }

    #[test]
    fn smoothing_moves_toward_new_scores() {
        let settings = TrackerSettings {
            smoothing: 0.25,
            ..TrackerSettings::default()
        };
        let mut tracker = Tracker::new(settings);
        tracker.update(&[face(0, 0, 50)], &[scores(3)]);
        let seen = tracker.update(&[face(0, 0, 50)], &[scores(4)]);
        assert!((seen[0].scores.get(crate::emotion::Emotion::Happy) - 0.75).abs() < 1e-6);
        assert!((seen[0].scores.get(crate::emotion::Emotion::Sad) - 0.25).abs() < 1e-6);
        assert!((seen[0].scores.total() - 1.0).abs() < 1e-6);
        assert_eq!(seen[0].raw, scores(4));
    }

    #[test]
    fn settings_reject_out_of_range() {
        let bad_smoothing = TrackerSettings {
            smoothing: 0.0,
            ..TrackerSettings::default()
        };
        assert!(bad_smoothing.validate().is_err());
        let bad_overlap = TrackerSettings {
            min_overlap: 1.5,
            ..TrackerSettings::default()
        };
        assert!(bad_overlap.validate().is_err());
        assert!(TrackerSettings::default().validate().is_ok());
    }
}
