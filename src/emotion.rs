//! The seven FER-2013 emotion classes and per-face probability scores.
//!
//! Label numbers follow the original `fer2013.csv`: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad,
//! 5 surprise, 6 neutral. Every score vector in the program uses this order, also for models
//! trained on a subset of the classes, whose missing classes score 0.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Number of FER-2013 emotion classes.
pub const CLASS_COUNT: usize = 7;

/// One FER-2013 emotion class.
///
/// Written in lower case; read without regard to case, as on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum Emotion {
    Angry,
    Disgust,
    Fear,
    Happy,
    Sad,
    Surprise,
    Neutral,
}

impl Emotion {
    /// All classes in FER-2013 label order.
    pub const ALL: [Emotion; CLASS_COUNT] = [
        Emotion::Angry,
        Emotion::Disgust,
        Emotion::Fear,
        Emotion::Happy,
        Emotion::Sad,
        Emotion::Surprise,
        Emotion::Neutral,
    ];

    /// Returns the FER-2013 label number (0..7).
    pub fn label(self) -> usize {
        self as usize
    }

    /// Returns the class for a FER-2013 label number.
    pub fn from_label(label: usize) -> Option<Emotion> {
        Emotion::ALL.get(label).copied()
    }

    /// Returns the lower-case class name, as used in folder names, CSV headers and the UI.
    pub fn name(self) -> &'static str {
        match self {
            Emotion::Angry => "angry",
            Emotion::Disgust => "disgust",
            Emotion::Fear => "fear",
            Emotion::Happy => "happy",
            Emotion::Sad => "sad",
            Emotion::Surprise => "surprise",
            Emotion::Neutral => "neutral",
        }
    }
}

impl fmt::Display for Emotion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error for a class name that is not one of the seven FER-2013 classes.
#[derive(Debug, thiserror::Error)]
#[error("unknown emotion class \"{0}\": expected one of angry, disgust, fear, happy, sad, surprise, neutral")]
pub struct UnknownEmotion(pub String);

impl FromStr for Emotion {
    type Err = UnknownEmotion;

    /// Parses a class name without regard to case ("Happy", "happy", "HAPPY").
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let lower = text.trim().to_ascii_lowercase();
        Emotion::ALL
            .into_iter()
            .find(|emotion| emotion.name() == lower)
            .ok_or_else(|| UnknownEmotion(text.to_owned()))
    }
}

impl TryFrom<String> for Emotion {
    type Error = UnknownEmotion;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

/// Probabilities of the seven classes for one face, in FER-2013 label order, summing to 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EmotionScores(pub [f32; CLASS_COUNT]);

impl EmotionScores {
    /// Returns the probability of one class.
    pub fn get(&self, emotion: Emotion) -> f32 {
        self.0[emotion.label()]
    }

    /// Returns the most probable class; ties go to the lower label number.
    pub fn dominant(&self) -> Emotion {
        let mut best = 0;
        for (index, &value) in self.0.iter().enumerate() {
            if value > self.0[best] {
                best = index;
            }
        }
        Emotion::ALL[best]
    }

    /// Iterates over (class, probability) pairs in label order.
    pub fn iter(&self) -> impl Iterator<Item = (Emotion, f32)> + '_ {
        Emotion::ALL.into_iter().zip(self.0.iter().copied())
    }

    /// Returns the sum of the probabilities, 1 up to rounding for a valid score vector.
    pub fn total(&self) -> f32 {
        self.0.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip() {
        for emotion in Emotion::ALL {
            assert_eq!(Emotion::from_label(emotion.label()), Some(emotion));
            assert_eq!(emotion.name().parse::<Emotion>().unwrap(), emotion);
        }
        assert_eq!(Emotion::from_label(7), None);
    }

    #[test]
    fn names_parse_without_case() {
        assert_eq!("Happy".parse::<Emotion>().unwrap(), Emotion::Happy);
        assert_eq!(" SURPRISE ".parse::<Emotion>().unwrap(), Emotion::Surprise);
        assert!("contempt".parse::<Emotion>().is_err());
        let read: Vec<Emotion> = serde_json::from_str(r#"["Happy", "sad"]"#).unwrap();
        assert_eq!(read, [Emotion::Happy, Emotion::Sad]);
        assert_eq!(serde_json::to_string(&read).unwrap(), r#"["happy","sad"]"#);
        assert!(serde_json::from_str::<Emotion>(r#""contempt""#).is_err());
    }

    #[test]
    fn dominant_picks_highest() {
        let scores = EmotionScores([0.1, 0.0, 0.1, 0.5, 0.2, 0.05, 0.05]);
        assert_eq!(scores.dominant(), Emotion::Happy);
        assert!((scores.total() - 1.0).abs() < 1e-6);
    }
}
