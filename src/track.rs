//! Following faces across frames: identities by box overlap and smoothed probabilities.

use crate::detect::FaceBox;
use crate::emotion::EmotionScores;

/// A face as the rest of the program sees it: a stable id, its box and its scores.
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
