//! The state of a training run saved after every epoch, from which `--resume` continues.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::args::{TrainArgs, TrainConfig};
use super::schedule::Plateau;

/// File names inside a run folder.
pub const STATE_FILE: &str = "state.json";
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
pub const BEST_DESCRIPTION_FILE: &str = "best.json";
pub const BEST_WEIGHTS_FILE: &str = "best.safetensors";
pub const EPOCH_LOG_FILE: &str = "epochs.csv";
pub const CURVES_FILE: &str = "curves.png";

/// Name of the scalar tensor in the checkpoint that records its epoch, so that a checkpoint
/// written after state.json was last saved is detected.
pub const CHECKPOINT_EPOCH_TENSOR: &str = "run.epoch";

/// Measurements of one epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub val_macro_f1: f64,
    pub seconds: f64,
    /// Validation accuracy of the last weights when the val_ fields describe the averaged
    /// weights (see `--average-from`).
    #[serde(default)]
    pub last_val_accuracy: Option<f64>,
}

/// Everything needed to continue a run exactly where it stopped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Epochs completed.
    pub epoch: usize,
    /// Optimizer steps completed.
    pub step: i64,
    /// Learning rate of the plateau schedule (the last rate used for the others).
    pub lr: f64,
    pub best_accuracy: f64,
    /// Epoch of the best weights, 0 before the first epoch.
    pub best_epoch: usize,
    /// Epochs since the last gain of at least 5e-5 in validation accuracy.
    pub epochs_without_gain: usize,
    pub plateau: Plateau,
    /// Seed of the run; epoch e seeds its shuffling and augmentation with seed + e.
    pub seed: u64,
    /// Training seconds, summed over all sessions of the run.
    pub seconds: f64,
    pub stopped_early: bool,
    /// Epochs folded into the weight average kept in the checkpoint.
    #[serde(default)]
    pub averaged_epochs: usize,
    pub args: TrainArgs,
    pub config: TrainConfig,
    /// Faces per class in the training and validation sets, so that a resumed run can tell
    /// that its --data is the data it started on. Runs saved before this was kept lack it.
    #[serde(default)]
    pub data: Option<DataCounts>,
    pub history: Vec<EpochRecord>,
}

/// Faces per class, in the order of the model's classes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataCounts {
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
}

impl RunState {
    /// Reads `DIR/state.json`.
    ///
    /// # Errors
    ///
    /// When the file is missing or not a run state.
    pub fn read(folder: &Path) -> anyhow::Result<RunState> {
        let path = folder.join(STATE_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {}: is \"{}\" a run folder made by moodscope train?",
                path.display(),
                folder.display()
            )
        })?;
        let state: RunState = serde_json::from_str(&text)
            .with_context(|| format!("invalid run state {}", path.display()))?;
        state
            .check()
            .map_err(|reason| anyhow::anyhow!("invalid run state {}: {reason}", path.display()))?;
        Ok(state)
    }

    /// Checks that the counters agree with each other, as a run writes them.
    fn check(&self) -> Result<(), String> {
        if self.step < 0 {
            return Err(format!("step {} is negative", self.step));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!(
                "learning rate {} is not a positive number",
                self.lr
            ));
        }
        if !(0.0..=1.0).contains(&self.best_accuracy) {
            return Err(format!(
                "best accuracy {} is not in 0..1",
                self.best_accuracy
            ));
        }
        if self.best_epoch > self.epoch {
            return Err(format!(
                "best epoch {} comes after epoch {}",
                self.best_epoch, self.epoch
            ));
        }
        if self.history.len() != self.epoch {
            return Err(format!(
                "epoch {} but {} epochs in the history",
                self.epoch,
                self.history.len()
            ));
        }
        Ok(())
    }

    /// Writes `DIR/state.json` through a temporary file and a rename.
    ///
    /// # Errors
    ///
    /// When the file cannot be written.
    pub fn write(&self, folder: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)? + "\n";
        crate::model::write_atomically(&folder.join(STATE_FILE), text.as_bytes())?;
        Ok(())
    }

    /// Writes the per-epoch log `DIR/epochs.csv` from the history.
    ///
    /// # Errors
    ///
    /// When the file cannot be written.
    pub fn write_epoch_log(&self, folder: &Path) -> anyhow::Result<PathBuf> {
        let path = folder.join(EPOCH_LOG_FILE);
        let mut text = String::from(
            "epoch,lr,train_loss,train_acc,val_loss,val_acc,val_macro_f1,seconds,last_val_acc\n",
        );
        for record in &self.history {
            text.push_str(&format!(
                "{},{:.3e},{:.4},{:.4},{:.4},{:.4},{:.4},{:.1},{}\n",
                record.epoch,
                record.lr,
                record.train_loss,
                record.train_accuracy,
                record.val_loss,
                record.val_accuracy,
                record.val_macro_f1,
                record.seconds,
                record
                    .last_val_accuracy
                    .map(|accuracy| format!("{accuracy:.4}"))
                    .unwrap_or_default()
            ));
        }
        crate::model::write_atomically(&path, text.as_bytes())?;
        Ok(path)
    }
}
