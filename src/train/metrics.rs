//! Confusion matrix, accuracy and per-class precision, recall and F1.

use std::fmt;

use serde::Serialize;

use crate::emotion::Emotion;

/// Counts of (true class, predicted class) pairs; rows are true classes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfusionMatrix {
    pub classes: Vec<Emotion>,
    pub counts: Vec<Vec<u64>>,
}

/// Precision, recall and F1 of one class.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ClassMetrics {
    pub class: Emotion,
    pub support: u64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl ConfusionMatrix {
    /// Creates an empty matrix over `classes`.
    pub fn new(classes: &[Emotion]) -> ConfusionMatrix {
        ConfusionMatrix {
            classes: classes.to_vec(),
            counts: vec![vec![0; classes.len()]; classes.len()],
        }
    }

    /// Counts one prediction; both are indices into the class list.
    pub fn add(&mut self, truth: usize, predicted: usize) {
        self.counts[truth][predicted] += 1;
    }

    /// Returns the number of predictions counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Returns the share of correct predictions (0 when empty).
    pub fn accuracy(&self) -> f64 {
        let correct: u64 = (0..self.classes.len()).map(|i| self.counts[i][i]).sum();
        ratio(correct, self.total())
    }

    /// Returns precision, recall and F1 of every class, in class order.
    pub fn per_class(&self) -> Vec<ClassMetrics> {
        (0..self.classes.len())
            .map(|i| {
                let hits = self.counts[i][i];
                let support: u64 = self.counts[i].iter().sum();
                let predicted: u64 = self.counts.iter().map(|row| row[i]).sum();
                let precision = ratio(hits, predicted);
                let recall = ratio(hits, support);
                let f1 = if precision + recall > 0.0 {
                    2.0 * precision * recall / (precision + recall)
                } else {
                    0.0
                };
                ClassMetrics {
                    class: self.classes[i],
                    support,
                    precision,
                    recall,
                    f1,
                }
            })
            .collect()
    }

    /// Returns the unweighted mean F1 over the classes.
    pub fn macro_f1(&self) -> f64 {
        let metrics = self.per_class();
        metrics.iter().map(|m| m.f1).sum::<f64>() / metrics.len().max(1) as f64
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

impl fmt::Display for ConfusionMatrix {
    /// Writes the matrix (rows true, columns predicted) and the per-class metrics as text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>10}", "true\\pred")?;
        for class in &self.classes {
            write!(f, "{:>9}", class.name())?;
        }
        writeln!(
            f,
            "{:>9}{:>11}{:>8}{:>8}",
            "support", "precision", "recall", "f1"
        )?;
        for (row, metrics) in self.counts.iter().zip(self.per_class()) {
            write!(f, "{:>10}", metrics.class.name())?;
            for count in row {
                write!(f, "{count:>9}")?;
            }
            writeln!(
                f,
                "{:>9}{:>11.3}{:>8.3}{:>8.3}",
                metrics.support, metrics.precision, metrics.recall, metrics.f1
            )?;
        }
        write!(
            f,
            "accuracy {:.4}, macro-F1 {:.4}, {} images",
            self.accuracy(),
            self.macro_f1(),
            self.total()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_match_hand_computation() {
        let mut matrix = ConfusionMatrix::new(&[Emotion::Happy, Emotion::Sad]);
        // 3 happy faces: 2 right, 1 called sad; 1 sad face called happy.
        for (truth, predicted) in [(0, 0), (0, 0), (0, 1), (1, 0)] {
            matrix.add(truth, predicted);
        }
        assert_eq!(matrix.total(), 4);
        assert!((matrix.accuracy() - 0.5).abs() < 1e-12);
        let happy = matrix.per_class()[0];
        assert!((happy.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((happy.recall - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(matrix.per_class()[1].f1, 0.0);
        assert!((matrix.macro_f1() - 1.0 / 3.0).abs() < 1e-12);
        assert!(matrix.to_string().contains("accuracy 0.5000"));
    }
}
