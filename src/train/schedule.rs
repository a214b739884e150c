//! Learning-rate schedules: cosine and one-cycle (per step), and halving on a plateau of the
//! validation accuracy (per epoch).

use std::f64::consts::PI;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The schedule kind, as given to `--schedule`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// Linear warm-up, then cosine decay to 1/1000 of the peak by the last epoch.
    Cosine,
    /// One cycle: rise from peak/25 to the peak over the first 30% of steps, then cosine decay
    /// to peak/10000.
    Onecycle,
    /// Linear warm-up, then constant (for fine-tuning with weight averaging).
    Constant,
    /// Constant, halved after `patience` epochs without validation-accuracy gain.
    Plateau,
}

impl fmt::Display for ScheduleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ScheduleKind::Cosine => "cosine",
            ScheduleKind::Onecycle => "onecycle",
            ScheduleKind::Plateau => "plateau",
            ScheduleKind::Constant => "constant",
        };
        f.write_str(name)
    }
}

impl FromStr for ScheduleKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        <ScheduleKind as clap::ValueEnum>::from_str(text, true).map_err(|_| {
            format!("unknown schedule \"{text}\": expected cosine, onecycle, plateau or constant")
        })
    }
}

/// Learning rate at an optimizer step for the step-wise schedules.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepSchedule {
    pub kind: ScheduleKind,
    pub peak: f64,
    pub total_steps: i64,
    pub warmup_steps: i64,
}

impl StepSchedule {
    /// Returns the learning rate for step `step` (0-based); plateau returns the peak.
    pub fn rate(&self, step: i64) -> f64 {
        let total = self.total_steps.max(1) as f64;
        let step = step as f64;
        match self.kind {
            ScheduleKind::Plateau => self.peak,
            ScheduleKind::Constant => self.peak * self.warmup_fraction(step),
            ScheduleKind::Cosine => {
                let warmup = self.warmup_steps as f64;
                if step < warmup {
                    return self.peak * self.warmup_fraction(step);
                }
                let progress = ((step - warmup) / (total - warmup).max(1.0)).min(1.0);
                cosine_between(self.peak, self.peak * 1e-3, progress)
            }
            ScheduleKind::Onecycle => {
                let rise = 0.3 * total;
                if step < rise {
                    cosine_between(self.peak, self.peak / 25.0, 1.0 - step / rise)
                } else {
                    let progress = ((step - rise) / (total - rise).max(1.0)).min(1.0);
                    cosine_between(self.peak, self.peak / 1e4, progress)
                }
            }
        }
    }
}

impl StepSchedule {
    /// Returns the share of the peak rate reached by the linear warm-up at `step`: 1 after it.
    fn warmup_fraction(&self, step: f64) -> f64 {
        let warmup = self.warmup_steps as f64;
        if step < warmup {
            (step + 1.0) / warmup
        } else {
            1.0
        }
    }
}

/// Cosine interpolation from `start` (progress 0) to `end` (progress 1).
fn cosine_between(start: f64, end: f64, progress: f64) -> f64 {
    end + (start - end) * 0.5 * (1.0 + (PI * progress).cos())
}

/// Halving of the learning rate after `patience` epochs without gain, as Keras's
/// ReduceLROnPlateau(factor 0.5, min_delta 1e-4) does.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plateau {
    pub patience: usize,
    pub floor: f64,
    pub best: f64,
    pub epochs_without_gain: usize,
}

impl Plateau {
    /// Records an epoch's validation accuracy and returns the learning rate for the next.
    pub fn update(&mut self, accuracy: f64, lr: f64) -> f64 {
        if accuracy > self.best + 1e-4 {
            self.best = accuracy;
            self.epochs_without_gain = 0;
            return lr;
        }
        self.epochs_without_gain += 1;
        if self.epochs_without_gain >= self.patience {
            self.epochs_without_gain = 0;
            return (lr * 0.5).max(self.floor);
        }
        lr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_warms_up_then_decays() {
        let schedule = StepSchedule {
            kind: ScheduleKind::Cosine,
            peak: 1e-3,
            total_steps: 1000,
            warmup_steps: 100,
        };
        assert!((schedule.rate(99) - 1e-3).abs() < 1e-12);
        assert!(schedule.rate(0) < 2e-5);
        assert!((schedule.rate(550) - 0.5005e-3).abs() < 1e-6);
        assert!((schedule.rate(999) - 1e-6).abs() < 1e-7);
    }

    #[test]
    fn constant_warms_up_then_holds() {
        let schedule = StepSchedule {
            kind: ScheduleKind::Constant,
            peak: 1e-4,
            total_steps: 1000,
            warmup_steps: 10,
        };
        assert!((schedule.rate(0) - 1e-5).abs() < 1e-12);
        assert!((schedule.rate(9) - 1e-4).abs() < 1e-12);
        assert_eq!(schedule.rate(500), 1e-4);
        assert_eq!(schedule.rate(5000), 1e-4);
    }

    #[test]
    fn onecycle_peaks_at_thirty_percent() {
        let schedule = StepSchedule {
            kind: ScheduleKind::Onecycle,
            peak: 1e-2,
            total_steps: 1000,
            warmup_steps: 0,
        };
        assert!((schedule.rate(0) - 4e-4).abs() < 1e-9);
        assert!((schedule.rate(300) - 1e-2).abs() < 1e-9);
        assert!(schedule.rate(1000) < 1.1e-6);
    }

    #[test]
    fn plateau_halves_after_patience() {
        let mut plateau = Plateau {
            patience: 2,
            floor: 1e-7,
            best: 0.0,
            epochs_without_gain: 0,
        };
        assert_eq!(plateau.update(0.5, 1e-3), 1e-3);
        assert_eq!(plateau.update(0.5, 1e-3), 1e-3);
        assert_eq!(plateau.update(0.50005, 1e-3), 5e-4);
        assert_eq!(plateau.update(0.6, 5e-4), 5e-4);
        let mut low = Plateau {
            patience: 1,
            floor: 1e-7,
            best: 1.0,
            epochs_without_gain: 0,
        };
        assert_eq!(low.update(0.0, 1.5e-7), 1e-7);
    }
}
