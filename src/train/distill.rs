//! Distillation: soft targets for the training faces from a teacher model.
//!
//! The teacher classifies every training face once, averaged over the views of `--teacher-tta`,
//! and the student learns from a mix of the labels and these probabilities. The aim is to pass
//! what the averaging gains on to a student that runs a single view; models/README.md gives
//! the measured effect. The mirror-averaged views make the targets the same for a face and its
//! mirror image, so they stay valid for the flipped faces of the augmentation.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget};
use tch::{Device, Kind, Tensor};

use super::dataset::{class_names, Dataset};
use crate::model::{Classifier, Tta};

/// File in the run folder that keeps the teacher's probabilities for `--resume`.
pub const TEACHER_FILE: &str = "teacher.safetensors";

/// Name of the probabilities tensor in [`TEACHER_FILE`].
const PROBABILITIES_TENSOR: &str = "probabilities";

/// Views per teacher batch. Larger batches of views run slower on a CPU, because the
/// activations no longer fit the caches.
const TEACHER_BATCH_VIEWS: i64 = 512;

/// Returns the teacher's `[faces, classes]` probabilities for the training faces, on `device`.
///
/// They are read from the run folder when the run computed them before it was stopped and
/// resumed, and computed and saved there otherwise.
///
/// # Errors
///
/// A teacher that cannot be loaded or whose classes differ from the run's, and files that
/// cannot be read or written.
pub fn teacher_probabilities(
    teacher: &Path,
    tta: Tta,
    train: &Dataset,
    out: &Path,
    device: Device,
) -> anyhow::Result<Tensor> {
    let saved = out.join(TEACHER_FILE);
    let shape = [train.len() as i64, train.classes.len() as i64];
    if saved.is_file() {
        let probabilities = read_probabilities(&saved)?;
        if probabilities.size() != shape {
            bail!(
                "{} has probabilities of shape {:?}, expected {shape:?}: delete it to compute \
                 them again",
                saved.display(),
                probabilities.size()
            );
        }
        return Ok(probabilities.to_device(device));
    }

    let classifier = Classifier::load(teacher, device)?;
    let classes = &classifier.description().classes;
    if *classes != train.classes {
        bail!(
            "--teacher model {} has the classes {} but the run trains on {}: pass --classes {}",
            teacher.display(),
            class_names(classes),
            class_names(&train.classes),
            class_names(classes)
        );
    }
    println!(
        "computing the soft targets of {} with {tta} test-time augmentation",
        teacher.display()
    );
    let count = train.len() as i64;
    let batch = (TEACHER_BATCH_VIEWS / tta.view_count() as i64).max(1);
    let started = Instant::now();
    let progress = ProgressBar::new(count as u64);
    if !std::io::stderr().is_terminal() {
        progress.set_draw_target(ProgressDrawTarget::hidden());
    }
    let mut batches = Vec::new();
    for start in (0..count).step_by(batch as usize) {
        let length = batch.min(count - start);
        let pixels = train.images.narrow(0, start, length);
        batches.push(classifier.probabilities(&pixels, tta)?.to_kind(Kind::Float));
        progress.inc(length as u64);
    }
    progress.finish_and_clear();
    let probabilities = Tensor::cat(&batches, 0).to_device(Device::Cpu);
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create run folder {}", out.display()))?;
    println!(
        "soft targets of {count} faces in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let named = [(PROBABILITIES_TENSOR, &probabilities)];
    let temporary = saved.with_extension("safetensors.tmp");
    Tensor::write_safetensors(&named, &temporary)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, &saved)
        .with_context(|| format!("cannot write {}", saved.display()))?;
    Ok(probabilities.to_device(device))
}

fn read_probabilities(path: &Path) -> anyhow::Result<Tensor> {
    let tensors = Tensor::read_safetensors(path)
        .with_context(|| format!("cannot read teacher probabilities {}", path.display()))?;
    tensors
        .into_iter()
        .find(|(name, _)| name == PROBABILITIES_TENSOR)
        .map(|(_, tensor)| tensor)
        .with_context(|| {
            format!(
                "{} has no \"{PROBABILITIES_TENSOR}\" tensor: delete it to compute the teacher's \
                 probabilities again",
                path.display()
            )
        })
}

/// Returns the mean cross-entropy of `logits` against the soft `targets` (rows summing to 1).
pub fn soft_cross_entropy(logits: &Tensor, targets: &Tensor) -> Tensor {
    -(targets * logits.log_softmax(-1, Kind::Float))
        .sum_dim_intlist(-1, false, Kind::Float)
        .mean(Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hot_targets_give_cross_entropy() {
        let logits = Tensor::from_slice(&[2.0f32, 0.5, -1.0, 0.0, 1.0, 3.0]).view([2, 3]);
        let labels = Tensor::from_slice(&[0i64, 2]);
        let one_hot = labels.one_hot(3).to_kind(Kind::Float);
        let soft = soft_cross_entropy(&logits, &one_hot).double_value(&[]);
        let hard = logits.cross_entropy_for_logits(&labels).double_value(&[]);
        assert!((soft - hard).abs() < 1e-6, "soft {soft}, hard {hard}");
    }

    #[test]
    fn uniform_targets_give_mean_log_loss() {
        let logits = Tensor::zeros([4, 7], (Kind::Float, Device::Cpu));
        let uniform = Tensor::full([4, 7], 1.0 / 7.0, (Kind::Float, Device::Cpu));
        let loss = soft_cross_entropy(&logits, &uniform).double_value(&[]);
        assert!((loss - 7f64.ln()).abs() < 1e-6, "{loss}");
    }
}
