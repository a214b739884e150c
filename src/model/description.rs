//! The JSON description saved beside every model's safetensors weights.
//!
//! The description names the architecture, the input size, the classes in output order, the
//! pixel normalisation, the weights file (relative to the JSON file), how the model was trained
//! and what it measured. [`super::Classifier::load`] reads it first and checks the weights
//! against it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Architecture, ModelError, Tta, INPUT_SIZE};
use crate::emotion::Emotion;

/// Version of the description format; readers reject other versions.
pub const DESCRIPTION_FORMAT: u32 = 1;

/// Pixel standardisation: pixels are scaled to 0..1, then `(x - mean) / std`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalisation {
    pub mean: f32,
    pub std: f32,
}

/// Record of how a model was trained and selected.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingRecord {
    /// Data set the model was trained on, for example "FER-2013 (image folders)".
    pub data: String,
    /// Usage or split the model was fitted on.
    pub train_split: String,
    /// Usage or split the best epoch was selected on.
    pub selection_split: String,
    /// Recipe name and its settings in words.
    pub recipe: String,
    /// Epochs run when these weights were saved.
    pub epochs: usize,
    /// Epoch (1-based) whose weights these are.
    pub best_epoch: usize,
    /// Accuracy on the selection split at the best epoch, from the training loop.
    pub selection_accuracy: f64,
    /// Seed of the run.
    pub seed: u64,
    /// Training wall time up to the best epoch, in seconds.
    pub seconds: f64,
    /// Fields added by hand or by a later version, kept when the file is rewritten.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A measurement of a saved model on a labelled split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvaluationRecord {
    /// Data path and split, for example "FER-2013 PublicTest".
    pub data: String,
    pub split: String,
    /// Views each face's predictions were averaged over; `true` and `false` in older files
    /// read as mirror and off.
    #[serde(deserialize_with = "super::deserialize_tta")]
    pub tta: Tta,
    pub images: usize,
    pub accuracy: f64,
    pub macro_f1: f64,
    /// Command that measured it.
    pub command: String,
    /// Fields added by hand or by a later version, kept when the file is rewritten.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Contents of a model's JSON description file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelDescription {
    /// Always [`DESCRIPTION_FORMAT`].
    pub format: u32,
    /// Architecture name, as accepted by `--arch`.
    pub architecture: String,
    /// Side of the square input in pixels; always 48.
    pub input_size: u32,
    /// Classes in the network's output order.
    pub classes: Vec<Emotion>,
    pub normalisation: Normalisation,
    /// Weights file name, relative to the description's folder.
    pub weights: String,
    /// Number of trainable parameters.
    pub parameters: i64,
    pub training: TrainingRecord,
    /// Measurements by `moodscope eval`, one per split and test-time augmentation.
    #[serde(default)]
    pub evaluations: Vec<EvaluationRecord>,
    /// Fields added by hand or by a later version, kept when `eval --record` rewrites the file.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ModelDescription {
    /// Reads and checks a description file.
    ///
    /// # Errors
    ///
    /// [`ModelError::DescriptionRead`] when the file cannot be read,
    /// [`ModelError::DescriptionInvalid`] when it is empty, not JSON, of another format version
    /// or input size, or lists no or repeated classes, and [`ModelError::UnknownArchitecture`].
    pub fn read(path: &Path) -> Result<ModelDescription, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::DescriptionRead {
            path: path.to_owned(),
            source,
        })?;
        let invalid = |reason: String| ModelError::DescriptionInvalid {
            path: path.to_owned(),
            reason,
        };
        if text.trim().is_empty() {
            return Err(invalid("the file is empty".to_owned()));
        }
        let description: ModelDescription = serde_json::from_str(&text)
            .map_err(|error| invalid(format!("not a model description: {error}")))?;
        description.check(path)?;
        Ok(description)
    }

    fn check(&self, path: &Path) -> Result<(), ModelError> {
        let invalid = |reason: String| ModelError::DescriptionInvalid {
            path: path.to_owned(),
            reason,
        };
        if self.format != DESCRIPTION_FORMAT {
            return Err(invalid(format!(
                "format version {} is not supported, expected {DESCRIPTION_FORMAT}",
                self.format
            )));
        }
        if self.input_size != INPUT_SIZE {
            return Err(invalid(format!(
                "input size {} is not supported, expected {INPUT_SIZE}",
                self.input_size
            )));
        }
        if self.classes.is_empty() {
            return Err(invalid("the class list is empty".to_owned()));
        }
        let mut sorted = self.classes.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != self.classes.len() {
            let names: Vec<String> = self.classes.iter().map(ToString::to_string).collect();
            return Err(invalid(format!(
                "the class list \"{}\" repeats a class",
                names.join(",")
            )));
        }
        let Normalisation { mean, std } = self.normalisation;
        if !(mean.is_finite() && std.is_finite() && std > 0.0) {
            return Err(invalid(format!(
                "normalisation mean {mean} and std {std} must be numbers, the std positive"
            )));
        }
        if self.weights.trim().is_empty() {
            return Err(invalid("the weights file name is empty".to_owned()));
        }
        self.architecture(path).map(|_| ())
    }

    /// Parses the architecture name.
    ///
    /// # Errors
    ///
    /// [`ModelError::UnknownArchitecture`] naming `path`.
    pub fn architecture(&self, path: &Path) -> Result<Architecture, ModelError> {
        self.architecture
            .parse()
            .map_err(|_| ModelError::UnknownArchitecture {
                path: path.to_owned(),
                got: self.architecture.clone(),
                expected: Architecture::NAMES.to_owned(),
            })
    }

    /// Returns the weights path: the `weights` name resolved against the description's folder.
    pub fn weights_path(&self, description_path: &Path) -> PathBuf {
        let folder = description_path.parent().unwrap_or(Path::new("."));
        folder.join(&self.weights)
    }

    /// Writes the description as pretty JSON through a temporary file and a rename.
    ///
    /// # Errors
    ///
    /// [`ModelError::Write`] when the file cannot be written.
    pub fn write(&self, path: &Path) -> Result<(), ModelError> {
        let text = serde_json::to_string_pretty(self).expect("descriptions always serialise");
        write_atomically(path, (text + "\n").as_bytes())
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so that
/// readers never see a half-written file.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    let temporary = temporary_path(path);
    let write_error = |source| ModelError::Write {
        path: path.to_owned(),
        source,
    };
    std::fs::write(&temporary, bytes).map_err(write_error)?;
    std::fs::rename(&temporary, path).map_err(write_error)
}

/// Returns `path` with `.tmp` appended to its file name.
pub(crate) fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    path.with_file_name(name)
}
