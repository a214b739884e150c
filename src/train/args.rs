//! Options of `moodscope train` and `moodscope eval`, and the settings a recipe resolves to.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::schedule::ScheduleKind;
use crate::model::{Architecture, DeviceRequest, Normalisation, PrecisionRequest, Tta};

/// Options that a run saves and `--resume` takes from the run folder.
const SAVED_OPTIONS: [&str; 28] = [
    "out",
    "init",
    "teacher",
    "teacher_tta",
    "distill_weight",
    "arch",
    "recipe",
    "train_split",
    "val_split",
    "val_fraction",
    "classes",
    "batch_size",
    "lr",
    "optimizer",
    "weight_decay",
    "schedule",
    "warmup_epochs",
    "augment",
    "no_augment",
    "label_smoothing",
    "class_weights",
    "early_stop",
    "plateau_patience",
    "average_from",
    "seed",
    "device",
    "train_limit",
    "val_limit",
];

/// Options of `moodscope train`.
#[derive(clap::Args, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainArgs {
    /// FER-2013 data: a folder holding one folder per split (Training, PublicTest), each with
    /// one folder per class, or the original CSV file (emotion,pixels,Usage)
    #[arg(long, value_name = "PATH", required_unless_present = "resume")]
    pub data: Option<PathBuf>,

    /// Run folder for checkpoints, the best model (best.json), epochs.csv and curves.png
    #[arg(long, value_name = "DIR", required_unless_present = "resume")]
    pub out: Option<PathBuf>,

    /// Continue the run in DIR from its last checkpoint with its saved options; only
    /// --epochs, --threads and --data (the same data in another place) may change. A longer
    /// cosine or one-cycle schedule is stretched to the new length, so the rate jumps up when
    /// it resumes
    #[arg(long, value_name = "DIR", conflicts_with_all = SAVED_OPTIONS)]
    #[serde(skip)]
    pub resume: Option<PathBuf>,

    /// Start from the weights of this saved model (.json) instead of random ones, to fine-tune
    /// it. Its architecture must match --arch and its classes the training classes
    #[arg(long, value_name = "MODEL")]
    pub init: Option<PathBuf>,

    /// Learn from this saved model's probabilities as well as from the labels (distillation).
    /// Its classes must be the training classes
    #[arg(long, value_name = "MODEL")]
    pub teacher: Option<PathBuf>,

    /// Views the teacher averages for each training face
    #[arg(long, value_enum, default_value = "crops", requires = "teacher")]
    #[serde(default, deserialize_with = "crate::model::deserialize_tta")]
    pub teacher_tta: Tta,

    /// Share of the loss that comes from the teacher's probabilities, 0..1 [default: 0.5 with
    /// --teacher]
    #[arg(long, value_name = "W", requires = "teacher")]
    pub distill_weight: Option<f64>,

    /// Network: "moodnet" (default), "moodnet-wN" (base width N) or "vggface" (reference)
    #[arg(long, default_value = "moodnet")]
    pub arch: String,

    /// Training recipe [default: reference for vggface, improved otherwise]
    #[arg(long, value_enum)]
    pub recipe: Option<Recipe>,

    /// Split (folder name or CSV Usage) to train on
    #[arg(long, default_value = "Training")]
    pub train_split: String,

    /// Split to validate on and select the best epoch by
    #[arg(long, default_value = "PublicTest", conflicts_with = "val_fraction")]
    pub val_split: String,

    /// Validate on a stratified, seeded fraction F (0..1) of the training split instead of
    /// --val-split
    #[arg(long, value_name = "F")]
    pub val_fraction: Option<f64>,

    /// Train on these classes only, comma-separated (for example happy,sad,neutral)
    #[arg(long, value_name = "LIST")]
    pub classes: Option<String>,

    /// Number of epochs [default: 100 reference, 40 improved]
    #[arg(long)]
    pub epochs: Option<usize>,

    /// Faces per optimizer step [default: 32 reference, 64 improved]
    #[arg(long)]
    pub batch_size: Option<usize>,

    /// Peak learning rate [default: 1e-3 reference, 2e-3 improved]
    #[arg(long)]
    pub lr: Option<f64>,

    /// Optimizer [default: adam reference, adamw improved]
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerKind>,

    /// Weight decay of the conv and dense weights [default: 0 reference, 0.01 improved]
    #[arg(long)]
    pub weight_decay: Option<f64>,

    /// Learning-rate schedule [default: plateau reference, cosine improved]
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleKind>,

    /// Linear warm-up of the cosine and constant schedules, in epochs [default: 1]
    #[arg(long)]
    pub warmup_epochs: Option<f64>,

    /// Augment training batches (shift, scale, rotation, flip, brightness, contrast)
    /// [default: off reference, on improved]
    #[arg(long, conflicts_with = "no_augment")]
    pub augment: bool,

    /// Do not augment training batches
    #[arg(long)]
    pub no_augment: bool,

    /// Label smoothing of the cross-entropy loss, 0..1 [default: 0 reference, 0.1 improved]
    #[arg(long)]
    pub label_smoothing: Option<f64>,

    /// Weight the loss of each class by the square root of its inverse frequency, which
    /// raises the weight of the rare disgust class
    #[arg(long)]
    pub class_weights: bool,

    /// Stop after N epochs without a validation-accuracy gain of 5e-5 and keep the best
    /// weights; 0 disables [default: 11 reference, 0 improved]
    #[arg(long, value_name = "N")]
    pub early_stop: Option<usize>,

    /// Epochs without gain before the plateau schedule halves the learning rate [default: 7]
    #[arg(long, value_name = "N")]
    pub plateau_patience: Option<usize>,

    /// Average the weights of every epoch from epoch N on (stochastic weight averaging). From
    /// then on the averaged weights are validated, selected and saved as the best model
    #[arg(long, value_name = "N")]
    pub average_from: Option<usize>,

    /// Seed of weight initialisation, shuffling, augmentation and dropout
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// libtorch intra-op threads (and 1 inter-op thread) [default: libtorch's choice]
    #[arg(long, value_name = "N")]
    #[serde(skip)]
    pub threads: Option<usize>,

    /// Device: cpu, cuda or cuda:N
    #[arg(long, default_value = "cpu", value_parser = device_value)]
    pub device: String,

    /// Train on a stratified sample of about N faces of the training split (for quick checks)
    #[arg(long, value_name = "N")]
    pub train_limit: Option<usize>,

    /// Validate on a stratified sample of about N faces (for quick checks)
    #[arg(long, value_name = "N")]
    pub val_limit: Option<usize>,
}

/// Options of `moodscope eval`.
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct EvalArgs {
    /// Model description (.json) to evaluate
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,

    /// FER-2013 data: a split folder root or the original CSV file
    #[arg(long, value_name = "PATH")]
    pub data: PathBuf,

    /// Split (folder name or CSV Usage) to evaluate on
    #[arg(long, default_value = "PublicTest")]
    pub split: String,

    /// Average each face's probabilities over several views of it: `--tta` (or
    /// `--tta=mirror`) with its mirror image, `--tta=crops` over 14 mirrored, shifted and
    /// zoomed views [default: off, the network on the face alone]
    #[arg(
        long,
        value_enum,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "mirror",
        default_value = "off",
        hide_default_value = true
    )]
    pub tta: Tta,

    /// Write accuracy, macro-F1, per-class metrics and the confusion matrix as JSON
    #[arg(long, value_name = "PATH.json")]
    pub report: Option<PathBuf>,

    /// Draw the confusion matrix as a PNG heat map
    #[arg(long, value_name = "PATH.png")]
    pub heatmap: Option<PathBuf>,

    /// Record the result in the model's description (its "evaluations" list)
    #[arg(long)]
    pub record: bool,

    /// Device: cpu, cuda or cuda:N
    #[arg(long, default_value = "cpu", value_parser = device_value)]
    pub device: String,

    /// Number format of the network: f32, bf16, or auto (bf16 for two or more views on a CPU
    /// with AVX-512 bfloat16 instructions). Recorded results are always measured in f32
    #[arg(long, value_enum, default_value = "f32")]
    pub precision: PrecisionRequest,

    /// libtorch intra-op threads [default: libtorch's choice]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// Checks a --device value when the options are parsed, keeping it as written.
fn device_value(text: &str) -> Result<String, String> {
    text.parse::<DeviceRequest>()
        .map(|_| text.to_owned())
        .map_err(|error| error.to_string())
}

/// A training recipe: defaults for every option not given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Recipe {
    /// The reference: Adam 1e-3, batch 32, halve the rate after 7 epochs without gain (floor
    /// 1e-7), stop after 11, no augmentation
    Reference,
    /// AdamW 2e-3 with weight decay 0.01, batch 64, cosine schedule, augmentation, label
    /// smoothing 0.1
    Improved,
}

/// Adam with L2 regularisation folded into the gradient, or AdamW's decoupled weight decay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Adam,
    Adamw,
}

/// Every training setting, after applying the recipe's defaults to the options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub architecture: String,
    pub recipe: Recipe,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub optimizer: OptimizerKind,
    pub adam_eps: f64,
    pub weight_decay: f64,
    pub schedule: ScheduleKind,
    pub warmup_epochs: f64,
    pub plateau_patience: usize,
    pub augment: bool,
    pub label_smoothing: f64,
    pub class_weights: bool,
    pub early_stop: usize,
    pub normalisation: Normalisation,
    /// First epoch folded into the weight average, if averaging.
    #[serde(default)]
    pub average_from: Option<usize>,
    /// Share of the loss from the teacher's probabilities (0 without a teacher).
    #[serde(default)]
    pub distill_weight: f64,
}

impl TrainConfig {
    /// Applies the recipe's defaults to the options and checks the ranges.
    ///
    /// # Errors
    ///
    /// A message naming the option whose value is out of range.
    pub fn resolve(args: &TrainArgs) -> Result<TrainConfig, String> {
        let architecture: Architecture = args.arch.parse()?;
        let reference_default = if architecture == Architecture::VggFace {
            Recipe::Reference
        } else {
            Recipe::Improved
        };
        let recipe = args.recipe.unwrap_or(reference_default);
        let reference = recipe == Recipe::Reference;
        let pick = |value: Option<f64>, reference_value: f64, improved_value: f64| {
            value.unwrap_or(if reference {
                reference_value
            } else {
                improved_value
            })
        };
        let config = TrainConfig {
            architecture: architecture.to_string(),
            recipe,
            epochs: args.epochs.unwrap_or(if reference { 100 } else { 40 }),
            batch_size: args.batch_size.unwrap_or(if reference { 32 } else { 64 }),
            lr: pick(args.lr, 1e-3, 2e-3),
            optimizer: args.optimizer.unwrap_or(if reference {
                OptimizerKind::Adam
            } else {
                OptimizerKind::Adamw
            }),
            // Keras's Adam epsilon for the reference, torch's otherwise.
            adam_eps: if reference { 1e-7 } else { 1e-8 },
            weight_decay: pick(args.weight_decay, 0.0, 0.01),
            schedule: args.schedule.unwrap_or(if reference {
                ScheduleKind::Plateau
            } else {
                ScheduleKind::Cosine
            }),
            warmup_epochs: args.warmup_epochs.unwrap_or(1.0),
            plateau_patience: args.plateau_patience.unwrap_or(7),
            augment: if args.augment || args.no_augment {
                args.augment
            } else {
                !reference
            },
            label_smoothing: pick(args.label_smoothing, 0.0, 0.1),
            class_weights: args.class_weights,
            early_stop: args.early_stop.unwrap_or(if reference { 11 } else { 0 }),
            // The reference scales pixels to 0..1 only; ours centres them too.
            normalisation: if reference {
                Normalisation {
                    mean: 0.0,
                    std: 1.0,
                }
            } else {
                Normalisation {
                    mean: 0.5,
                    std: 0.25,
                }
            },
            average_from: args.average_from,
            distill_weight: match &args.teacher {
                Some(_) => args.distill_weight.unwrap_or(0.5),
                None => 0.0,
            },
        };
        config.check(args)?;
        Ok(config)
    }

    fn check(&self, args: &TrainArgs) -> Result<(), String> {
        let checks = [
            (
                self.epochs >= 1,
                format!("--epochs \"{}\" must be at least 1", self.epochs),
            ),
            (
                self.batch_size >= 2,
                format!("--batch-size \"{}\" must be at least 2", self.batch_size),
            ),
            (
                self.lr > 0.0 && self.lr < 1.0,
                format!("--lr \"{}\" must be in (0, 1)", self.lr),
            ),
            (
                (0.0..1.0).contains(&self.weight_decay),
                format!("--weight-decay \"{}\" must be in [0, 1)", self.weight_decay),
            ),
            (
                (0.0..1.0).contains(&self.label_smoothing),
                format!(
                    "--label-smoothing \"{}\" must be in [0, 1)",
                    self.label_smoothing
                ),
            ),
            (
                (0.0..=self.epochs as f64).contains(&self.warmup_epochs),
                format!(
                    "--warmup-epochs \"{}\" must be from 0 to --epochs ({})",
                    self.warmup_epochs, self.epochs
                ),
            ),
            (
                self.plateau_patience >= 1,
                "--plateau-patience must be at least 1".to_owned(),
            ),
            (
                args.val_fraction.is_none_or(|f| f > 0.0 && f < 1.0),
                format!(
                    "--val-fraction \"{}\" must be in (0, 1)",
                    args.val_fraction.unwrap_or_default()
                ),
            ),
            (
                self.average_from
                    .is_none_or(|first| (1..=self.epochs).contains(&first)),
                format!(
                    "--average-from \"{}\" must be an epoch from 1 to --epochs ({})",
                    self.average_from.unwrap_or_default(),
                    self.epochs
                ),
            ),
            (
                (0.0..=1.0).contains(&self.distill_weight),
                format!(
                    "--distill-weight \"{}\" must be in [0, 1]",
                    self.distill_weight
                ),
            ),
            (
                args.train_limit.is_none_or(|limit| limit >= 1),
                "--train-limit must be at least 1".to_owned(),
            ),
            (
                args.val_limit.is_none_or(|limit| limit >= 1),
                "--val-limit must be at least 1".to_owned(),
            ),
            (
                args.threads.is_none_or(|n| (1..=256).contains(&n)),
                format!(
                    "invalid --threads \"{}\": expected 1 to 256",
                    args.threads.unwrap_or_default()
                ),
            ),
        ];
        match checks.into_iter().find(|(ok, _)| !ok) {
            Some((_, message)) => Err(message),
            None => Ok(()),
        }
    }

    /// Describes the recipe in one line for the model description.
    pub fn summary(&self) -> String {
        let optimizer = match self.optimizer {
            OptimizerKind::Adam => "Adam",
            OptimizerKind::Adamw => "AdamW",
        };
        let schedule = match self.schedule {
            ScheduleKind::Plateau => {
                format!("plateau schedule (patience {})", self.plateau_patience)
            }
            kind if self.warmup_epochs == 1.0 => format!("{kind} schedule (1 warm-up epoch)"),
            kind => format!("{kind} schedule ({} warm-up epochs)", self.warmup_epochs),
        };
        let mut parts = vec![
            format!(
                "{} recipe: {optimizer} lr {:e} (eps {:e})",
                self.recipe, self.lr, self.adam_eps
            ),
            format!("weight decay {}", self.weight_decay),
            format!("batch {}", self.batch_size),
            schedule,
            (if self.augment {
                "augmentation"
            } else {
                "no augmentation"
            })
            .to_owned(),
            format!("label smoothing {}", self.label_smoothing),
        ];
        if self.class_weights {
            parts.push("class weights".to_owned());
        }
        if self.distill_weight > 0.0 {
            parts.push(format!("distillation weight {}", self.distill_weight));
        }
        if let Some(first) = self.average_from {
            parts.push(format!("weights averaged from epoch {first}"));
        }
        if self.early_stop > 0 {
            parts.push(format!("early stop after {} epochs", self.early_stop));
        }
        parts.join(", ")
    }
}

impl fmt::Display for Recipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Recipe::Reference => "reference",
            Recipe::Improved => "improved",
        })
    }
}
