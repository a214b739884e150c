//! The training loop: data loading, epochs, checkpoints, the best model and resuming.
//!
//! Every epoch ends with `DIR/checkpoint.safetensors` (weights, Adam moments and the epoch),
//! then `DIR/state.json` (counters, schedule and history), each written to a temporary file
//! and renamed. state.json is written last, so it never points past the checkpoint.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Reduction, Tensor};

use super::args::{OptimizerKind, TrainArgs, TrainConfig};
use super::augment::Augmentation;
use super::average::WeightAverage;
use super::dataset::{self, Dataset};
use super::distill::{soft_cross_entropy, teacher_probabilities, TEACHER_FILE};
use super::evaluate::{evaluate_network, Evaluation};
use super::optimizer::{Adam, AdamConfig};
use super::plot;
use super::run_state::*;
use super::schedule::{Plateau, ScheduleKind, StepSchedule};
use crate::model::{
    self, copy_variables, init_he_normal, parameter_counts, resolve_device, Architecture,
    DeviceRequest, ModelDescription, Network, TrainingRecord, Tta, DESCRIPTION_FORMAT, INPUT_SIZE,
};

/// Smallest validation-accuracy gain that resets the early-stop counter.
const EARLY_STOP_MIN_DELTA: f64 = 5e-5;

/// Trains a network as `args` describe, or continues the run named by `--resume`.
///
/// # Errors
///
/// Invalid options, unreadable data, libtorch failures and files that cannot be written.
pub fn run_train(args: &TrainArgs) -> anyhow::Result<()> {
    let (args, state) = match &args.resume {
        Some(folder) => resumed_args(args, folder)?,
        None => (args.clone(), None),
    };
    if let (Some(out), None) = (&args.out, &state) {
        check_new_run_folder(out)?;
    }
    let config = TrainConfig::resolve(&args).map_err(|message| crate::cli::usage!("{message}"))?;
    if let Some(threads) = args.threads {
        super::set_threads(threads);
    }
    let request: DeviceRequest = args.device.parse()?;
    let device = resolve_device(request)?;
    let (train, val) = load_data(&args)?;
    println!(
        "training on {} faces ({}), validating on {}",
        train.len(),
        class_list(&train),
        val.len()
    );
    let resuming = state.is_some();
    let mut session = Session::new(args, config, device, train, val, resuming)?;
    if let Some(state) = state {
        session.restore(state)?;
    }
    session.run()
}

/// Rejects an --out folder that is a file or already contains a run's files, which a new run
/// would overwrite.
fn check_new_run_folder(out: &Path) -> anyhow::Result<()> {
    if out.exists() && !out.is_dir() {
        bail!("--out {} is a file, not a folder", out.display());
    }
    if out.join(STATE_FILE).exists() {
        bail!(
            "run folder {} already contains a run: pass --resume {} to continue it, or choose \
             another --out",
            out.display(),
            out.display()
        );
    }
    let run_files = [
        CHECKPOINT_FILE,
        BEST_DESCRIPTION_FILE,
        BEST_WEIGHTS_FILE,
        EPOCH_LOG_FILE,
        CURVES_FILE,
        TEACHER_FILE,
    ];
    if let Some(name) = run_files.iter().find(|name| out.join(name).exists()) {
        bail!(
            "run folder {} already holds {name} from an earlier run, which a new run would \
             overwrite: choose another --out, or move the old files away",
            out.display()
        );
    }
    Ok(())
}

/// Reads a run's saved options, applying the --epochs, --threads and --data given now.
fn resumed_args(args: &TrainArgs, folder: &Path) -> anyhow::Result<(TrainArgs, Option<RunState>)> {
    let mut state = RunState::read(folder)?;
    if let Some(data) = &args.data {
        if !data.exists() {
            bail!("--data {} does not exist", data.display());
        }
        state.args.data = Some(data.clone());
    }
    if let Some(data) = state.args.data.as_ref().filter(|data| !data.exists()) {
        bail!(
            "the data of run {}, {} (as state.json records it), does not exist from here: pass \
             --data with the FER-2013 location",
            folder.display(),
            data.display()
        );
    }
    if let Some(epochs) = args.epochs {
        state.args.epochs = Some(epochs);
    }
    let mut saved = state.args.clone();
    saved.out = Some(folder.to_owned());
    saved.threads = args.threads;
    println!("resuming {} after epoch {}", folder.display(), state.epoch);
    Ok((saved, Some(state)))
}

fn class_list(dataset: &Dataset) -> String {
    let counts = dataset.class_counts();
    let parts: Vec<String> = dataset
        .classes
        .iter()
        .zip(counts)
        .map(|(class, count)| format!("{class} {count}"))
        .collect();
    parts.join(", ")
}

/// Loads the training and validation data, applying --classes, --val-fraction and the limits.
fn load_data(args: &TrainArgs) -> anyhow::Result<(Dataset, Dataset)> {
    let data = args.data.as_deref().context("--data is required")?;
    let classes = args
        .classes
        .as_deref()
        .map(dataset::parse_classes)
        .transpose()
        .map_err(|error| crate::cli::usage!("{error}"))?;
    let (mut train, mut val) = match args.val_fraction {
        Some(fraction) => {
            let mut loaded = dataset::load_splits(data, &[&args.train_split])?;
            report_unused(data, &loaded.unused);
            loaded
                .datasets
                .remove(0)
                .stratified_split(fraction, args.seed)
        }
        None => {
            let loaded = dataset::load_splits(data, &[&args.train_split, &args.val_split])?;
            report_unused(data, &loaded.unused);
            let [train, val]: [Dataset; 2] = loaded
                .datasets
                .try_into()
                .map_err(|_| anyhow::anyhow!("expected two splits of {}", data.display()))?;
            (train, val)
        }
    };
    if let Some(classes) = &classes {
        train = train.select_classes(classes);
        val = val.select_classes(classes);
    }
    if let Some(limit) = args.train_limit {
        train = train.stratified_sample(limit, args.seed);
    }
    if let Some(limit) = args.val_limit {
        val = val.stratified_sample(limit, args.seed);
    }
    if let Some(position) = train.class_counts().iter().position(|&count| count == 0) {
        let options_given: Vec<&str> = [
            ("--classes", args.classes.is_some()),
            ("--val-fraction", args.val_fraction.is_some()),
            ("--train-limit", args.train_limit.is_some()),
        ]
        .into_iter()
        .filter_map(|(option, given)| given.then_some(option))
        .collect();
        bail!(
            "no training faces of class \"{}\" are left: check --data{}",
            train.classes[position],
            options_given
                .iter()
                .map(|option| format!(", {option}"))
                .collect::<String>()
        );
    }
    if val.is_empty() {
        bail!("no validation faces: check --val-split or --val-fraction");
    }
    Ok((train, val))
}

/// Names the splits of the data that the run leaves out.
fn report_unused(data: &Path, unused: &[String]) {
    if !unused.is_empty() {
        println!(
            "not used from {}: {} (the run reads --train-split, and --val-split unless \
             --val-fraction is given)",
            data.display(),
            unused.join(", ")
        );
    }
}

/// One training run in memory.
struct Session {
    args: TrainArgs,
    config: TrainConfig,
    architecture: Architecture,
    device: Device,
    out: PathBuf,
    train: Dataset,
    val: Dataset,
    vs: VarStore,
    network: Network,
    adam: Adam,
    parameters: i64,
    class_weights: Option<Tensor>,
    /// The running mean of the weights, from `--average-from` on.
    average: Option<WeightAverage>,
    /// The teacher's `[faces, classes]` probabilities for the training faces.
    teacher: Option<Tensor>,
    state: RunState,
}

impl Session {
    fn new(
        args: TrainArgs,
        config: TrainConfig,
        device: Device,
        train: Dataset,
        val: Dataset,
        resuming: bool,
    ) -> anyhow::Result<Session> {
        let architecture: Architecture = config.architecture.parse().map_err(anyhow::Error::msg)?;
        let out = args.out.clone().context("--out is required")?;

        tch::manual_seed(args.seed as i64);
        let mut vs = VarStore::new(device);
        let classes = train.classes.len() as i64;
        let network = Network::new(&vs.root(), architecture, classes);
        if architecture == Architecture::VggFace {
            init_he_normal(&vs);
        }
        // A resumed run takes its weights from the checkpoint, so the --init model may be gone.
        if let Some(init) = args.init.as_ref().filter(|_| !resuming) {
            load_initial_weights(&mut vs, init, architecture, &train)?;
            println!("starting from the weights of {}", init.display());
        }
        let average = config
            .average_from
            .map(|_| WeightAverage::new(architecture, classes, device));
        let teacher = match &args.teacher {
            Some(path) => Some(teacher_probabilities(
                path,
                args.teacher_tta,
                &train,
                &out,
                device,
            )?),
            None => None,
        };
        // Created only now, so that a rejected --init or --teacher leaves no empty folder.
        std::fs::create_dir_all(&out)
            .with_context(|| format!("cannot create run folder {}", out.display()))?;
        let (parameters, total) = parameter_counts(&vs);
        println!(
            "{architecture}: {parameters} trainable parameters, {total} with batch-norm statistics"
        );

        let adam = Adam::new(&vs, adam_config(&config));
        let class_weights = config
            .class_weights
            .then(|| balanced_weights(&train).to_device(device));
        let state = fresh_state(&args, &config, data_counts(&train, &val));
        Ok(Session {
            args,
            config,
            architecture,
            device,
            out,
            train,
            val,
            vs,
            network,
            adam,
            parameters,
            class_weights,
            average,
            teacher,
            state,
        })
    }

    /// Loads the checkpoint of a resumed run and takes over its counters.
    fn restore(&mut self, state: RunState) -> anyhow::Result<()> {
        let path = self.out.join(CHECKPOINT_FILE);
        if !path.is_file() {
            bail!(
                "checkpoint {} is missing: the run cannot be continued; start a new one with \
                 another --out",
                path.display()
            );
        }
        // The header check names what is wrong with a truncated or foreign file, in words.
        model::read_safetensors_header(&path)?;
        let tensors: HashMap<String, Tensor> = Tensor::read_safetensors(&path)
            .with_context(|| format!("cannot read checkpoint {}", path.display()))?
            .into_iter()
            .collect();
        let epoch = tensors
            .get(CHECKPOINT_EPOCH_TENSOR)
            .filter(|tensor| tensor.numel() == 1)
            .and_then(|tensor| tensor.reshape([1]).f_int64_value(&[0]).ok());
        if epoch != Some(state.epoch as i64) {
            let found = epoch.map_or("no epoch".to_owned(), |epoch| format!("epoch {epoch}"));
            bail!(
                "checkpoint {} holds {found} but state.json says epoch {}: the two files do not \
                 belong together (a run stopped while saving, or files copied from different \
                 epochs), so the run cannot be continued; best.json keeps the best model so far",
                path.display(),
                state.epoch
            );
        }
        copy_variables(&self.vs, &tensors, "", &path)?;
        self.adam
            .load_state(&tensors, state.step)
            .map_err(|reason| anyhow::anyhow!("invalid checkpoint {}: {reason}", path.display()))?;
        if let Some(average) = &mut self.average {
            if state.averaged_epochs > 0 {
                average.restore(&tensors, state.averaged_epochs, &path)?;
            }
        }
        let counts = data_counts(&self.train, &self.val);
        if let Some(saved) = state.data.as_ref().filter(|&saved| *saved != counts) {
            bail!(
                "the data found now ({}) differs from the data run {} started on ({}): pass the \
                 --data it was trained on, or start a new run",
                describe_counts(&counts),
                self.out.display(),
                describe_counts(saved)
            );
        }
        self.state = RunState {
            config: self.config.clone(),
            data: Some(counts),
            ..state
        };
        Ok(())
    }

    fn run(&mut self) -> anyhow::Result<()> {
        if self.state.epoch >= self.config.epochs && !self.state.stopped_early {
            println!(
                "the run has already reached epoch {} (--epochs {}): pass --epochs above {} to \
                 train on",
                self.state.epoch, self.config.epochs, self.state.epoch
            );
        }
        let schedule = self.step_schedule();
        while self.state.epoch < self.config.epochs && !self.state.stopped_early {
            let epoch = self.state.epoch + 1;
            let started = Instant::now();
            let (train_loss, train_accuracy) = self.train_epoch(epoch, &schedule)?;
            let spinner = validation_spinner(epoch, self.config.epochs, self.val.len());
            let last = evaluate_network(
                &self.network,
                self.config.normalisation,
                self.device,
                &self.val,
                Tta::Off,
            )?;
            let (evaluation, last_val_accuracy) = match self.averaged_evaluation(epoch)? {
                Some(averaged) => (averaged, Some(last.matrix.accuracy())),
                None => (last, None),
            };
            spinner.finish_and_clear();
            let seconds = started.elapsed().as_secs_f64();
            let record = EpochRecord {
                epoch,
                lr: self.state.lr,
                train_loss,
                train_accuracy,
                val_loss: evaluation.loss,
                val_accuracy: evaluation.matrix.accuracy(),
                val_macro_f1: evaluation.matrix.macro_f1(),
                seconds,
                last_val_accuracy,
            };
            self.finish_epoch(record, &evaluation)?;
        }
        self.report_end()
    }

    /// Folds this epoch's weights into the average once averaging has begun, and validates
    /// the averaged weights; returns `None` before.
    fn averaged_evaluation(&mut self, epoch: usize) -> anyhow::Result<Option<Evaluation>> {
        let (Some(average), Some(first)) = (&mut self.average, self.config.average_from) else {
            return Ok(None);
        };
        if epoch < first {
            return Ok(None);
        }
        average.add(&self.vs)?;
        average.refresh_batch_norm(&self.train, self.config.normalisation, self.device)?;
        let evaluation = evaluate_network(
            &average.network,
            self.config.normalisation,
            self.device,
            &self.val,
            Tta::Off,
        )?;
        Ok(Some(evaluation))
    }

    /// Returns the weights that the epoch's validation scores describe: the average once
    /// averaging has begun, the trained weights before.
    fn selected_weights(&self) -> &VarStore {
        match &self.average {
            Some(average) if average.count > 0 => &average.vs,
            _ => &self.vs,
        }
    }

    fn step_schedule(&self) -> StepSchedule {
        let steps_per_epoch = self.train.len().div_ceil(self.config.batch_size) as f64;
        StepSchedule {
            kind: self.config.schedule,
            peak: self.config.lr,
            total_steps: (steps_per_epoch * self.config.epochs as f64) as i64,
            warmup_steps: (steps_per_epoch * self.config.warmup_epochs) as i64,
        }
    }

    /// Runs one epoch of optimizer steps and returns the mean training loss and accuracy.
    fn train_epoch(&mut self, epoch: usize, schedule: &StepSchedule) -> anyhow::Result<(f64, f64)> {
        // Seeding every epoch from the run's seed lets a resumed run draw what it would have.
        let epoch_seed = self.args.seed.wrapping_add(epoch as u64);
        tch::manual_seed(epoch_seed as i64);
        let mut rng = StdRng::seed_from_u64(epoch_seed);
        let mut order: Vec<i64> = (0..self.train.len() as i64).collect();
        order.shuffle(&mut rng);

        let batches: Vec<&[i64]> = order
            .chunks(self.config.batch_size)
            .filter(|batch| batch.len() >= 2)
            .collect();
        let progress = progress_bar(batches.len() as u64, epoch, self.config.epochs);
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0i64, 0usize);
        for batch in batches {
            if schedule.kind != ScheduleKind::Plateau {
                self.state.lr = schedule.rate(self.state.step);
            }
            let (loss, hits) = self.train_step(batch, &mut rng)?;
            self.state.step += 1;
            loss_sum += loss * batch.len() as f64;
            correct += hits;
            seen += batch.len();
            progress.inc(1);
            progress.set_message(format!(
                "loss {:.3} acc {:.3}",
                loss_sum / seen as f64,
                correct as f64 / seen as f64
            ));
        }
        progress.finish_and_clear();

        Ok((
            loss_sum / seen.max(1) as f64,
            correct as f64 / seen.max(1) as f64,
        ))
    }

    /// Makes one optimizer step on the faces at `indices`; returns the loss and correct count.
    fn train_step(&mut self, indices: &[i64], rng: &mut StdRng) -> anyhow::Result<(f64, i64)> {
        let index = Tensor::from_slice(indices);
        let mut pixels = self
            .train
            .images
            .index_select(0, &index)
            .to_kind(Kind::Float);
        if self.config.augment {
            // The augmentation ops are small; split across threads they spend more time
            // waiting at OpenMP barriers than computing, by 50x on a busy two-core machine.
            let threads = tch::get_num_threads();
            tch::set_num_threads(1);
            pixels = Augmentation::default().apply(&pixels, rng);
            tch::set_num_threads(threads);
        }
        let inputs =
            model::normalise_pixels(&pixels, self.config.normalisation)?.to_device(self.device);
        let labels: Vec<i64> = indices
            .iter()
            .map(|&i| self.train.labels[i as usize])
            .collect();
        let targets = Tensor::from_slice(&labels).to_device(self.device);

        let logits = self.network.forward_t(&inputs, true);
        let mut loss = logits.f_cross_entropy_loss(
            &targets,
            self.class_weights.as_ref(),
            Reduction::Mean,
            -100,
            self.config.label_smoothing,
        )?;
        if let Some(teacher) = &self.teacher {
            let weight = self.config.distill_weight;
            let soft = teacher.index_select(0, &index.to_device(self.device));
            loss = loss * (1.0 - weight) + soft_cross_entropy(&logits, &soft) * weight;
        }
        self.adam.zero_grad();
        loss.backward();
        self.adam.step(self.state.lr);

        let hits = logits
            .argmax(-1, false)
            .eq_tensor(&targets)
            .sum(Kind::Int64)
            .int64_value(&[]);
        Ok((loss.double_value(&[]), hits))
    }

    /// Updates the counters, saves the best model and the checkpoint, and logs the epoch.
    fn finish_epoch(&mut self, record: EpochRecord, evaluation: &Evaluation) -> anyhow::Result<()> {
        self.state.epoch = record.epoch;
        self.state.seconds += record.seconds;
        if self.update_counters(record.val_accuracy) {
            self.save_best(evaluation)?;
        }
        self.print_epoch(&record);
        self.state.history.push(record);

        self.save_checkpoint()?;
        self.state.write_epoch_log(&self.out)?;
        if let Err(error) = plot::draw_curves(&self.state.history, &self.out.join(CURVES_FILE)) {
            tracing::warn!(%error, "cannot draw the training curves");
            eprintln!("warning: cannot draw the training curves: {error:#}");
        }
        Ok(())
    }

    /// Updates the best score, the early-stop counter and the plateau schedule with an epoch's
    /// validation accuracy; returns true when the epoch is the best so far.
    fn update_counters(&mut self, accuracy: f64) -> bool {
        let first = self.state.best_epoch == 0;
        if first || accuracy > self.state.best_accuracy + EARLY_STOP_MIN_DELTA {
            self.state.epochs_without_gain = 0;
        } else {
            self.state.epochs_without_gain += 1;
        }
        let early_stop = self.config.early_stop;
        self.state.stopped_early = early_stop > 0 && self.state.epochs_without_gain >= early_stop;
        if self.config.schedule == ScheduleKind::Plateau {
            self.state.lr = self.state.plateau.update(accuracy, self.state.lr);
        }
        let is_best = first || accuracy > self.state.best_accuracy;
        if is_best {
            self.state.best_accuracy = accuracy;
            self.state.best_epoch = self.state.epoch;
        }
        is_best
    }

    fn print_epoch(&self, record: &EpochRecord) {
        println!(
            "epoch {}/{}  lr {:.2e}  train loss {:.4} acc {:.4}  val loss {:.4} acc {:.4} \
             macro-F1 {:.4}  {:.0} s  best {:.4} (epoch {})",
            record.epoch,
            self.config.epochs,
            record.lr,
            record.train_loss,
            record.train_accuracy,
            record.val_loss,
            record.val_accuracy,
            record.val_macro_f1,
            record.seconds,
            self.state.best_accuracy,
            self.state.best_epoch
        );
    }

    fn save_best(&self, evaluation: &Evaluation) -> anyhow::Result<()> {
        model::save_weights(self.selected_weights(), &self.out.join(BEST_WEIGHTS_FILE))?;
        let description = ModelDescription {
            format: DESCRIPTION_FORMAT,
            architecture: self.architecture.to_string(),
            input_size: INPUT_SIZE,
            classes: self.train.classes.clone(),
            normalisation: self.config.normalisation,
            weights: BEST_WEIGHTS_FILE.to_owned(),
            parameters: self.parameters,
            training: self.training_record(evaluation),
            evaluations: Vec::new(),
            extra: Default::default(),
        };
        description.write(&self.out.join(BEST_DESCRIPTION_FILE))?;
        Ok(())
    }

    fn training_record(&self, evaluation: &Evaluation) -> TrainingRecord {
        let data = self
            .args
            .data
            .as_deref()
            .map(|path| path.display().to_string())
            .unwrap_or_default();
        let mut selection_split = match self.args.val_fraction {
            Some(fraction) => format!(
                "stratified {fraction} of {} (seed {})",
                self.args.train_split, self.args.seed
            ),
            None => self.args.val_split.clone(),
        };
        if let Some(limit) = self.args.val_limit {
            selection_split.push_str(&format!(
                ", a stratified sample of {} faces (--val-limit {limit})",
                self.val.len()
            ));
        }
        TrainingRecord {
            data: format!("FER-2013 from {data}, {} training faces", self.train.len()),
            train_split: self.args.train_split.clone(),
            selection_split,
            recipe: self.recipe_summary(),
            epochs: self.state.epoch,
            best_epoch: self.state.epoch,
            selection_accuracy: evaluation.matrix.accuracy(),
            seed: self.args.seed,
            seconds: self.state.seconds,
            extra: Default::default(),
        }
    }

    /// Describes the recipe, the starting weights and the teacher in one line.
    fn recipe_summary(&self) -> String {
        let mut summary = self.config.summary();
        if let Some(init) = &self.args.init {
            summary.push_str(&format!(
                ", starting from the weights of {}",
                init.display()
            ));
        }
        if let Some(teacher) = &self.args.teacher {
            summary.push_str(&format!(
                ", taught by {} with {} test-time augmentation",
                teacher.display(),
                self.args.teacher_tta
            ));
        }
        summary
    }

    fn save_checkpoint(&mut self) -> anyhow::Result<()> {
        let path = self.out.join(CHECKPOINT_FILE);
        let mut named: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        named.extend(self.adam.state_tensors());
        if let Some(average) = &self.average {
            named.extend(average.checkpoint_tensors());
            self.state.averaged_epochs = average.count;
        }
        named.push((
            CHECKPOINT_EPOCH_TENSOR.to_owned(),
            Tensor::from_slice(&[self.state.epoch as i64]),
        ));
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let temporary = path.with_extension("safetensors.tmp");
        Tensor::write_safetensors(&named, &temporary)
            .with_context(|| format!("cannot write {}", temporary.display()))?;
        std::fs::rename(&temporary, &path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        self.state.write(&self.out)
    }

    fn report_end(&self) -> anyhow::Result<()> {
        if self.state.stopped_early {
            println!(
                "stopped early after epoch {}: no gain for {} epochs; the best weights (epoch {}) \
                 are in {}",
                self.state.epoch,
                self.config.early_stop,
                self.state.best_epoch,
                self.out.join(BEST_DESCRIPTION_FILE).display()
            );
        }
        println!(
            "best validation accuracy {:.4} at epoch {}: {}",
            self.state.best_accuracy,
            self.state.best_epoch,
            self.out.join(BEST_DESCRIPTION_FILE).display()
        );
        Ok(())
    }
}

fn adam_config(config: &TrainConfig) -> AdamConfig {
    AdamConfig {
        beta1: 0.9,
        beta2: 0.999,
        eps: config.adam_eps,
        weight_decay: config.weight_decay,
        decoupled: config.optimizer == OptimizerKind::Adamw,
    }
}

fn fresh_state(args: &TrainArgs, config: &TrainConfig, data: DataCounts) -> RunState {
    RunState {
        epoch: 0,
        step: 0,
        lr: config.lr,
        best_accuracy: 0.0,
        best_epoch: 0,
        epochs_without_gain: 0,
        plateau: Plateau {
            patience: config.plateau_patience,
            floor: 1e-7,
            best: 0.0,
            epochs_without_gain: 0,
        },
        seed: args.seed,
        seconds: 0.0,
        stopped_early: false,
        averaged_epochs: 0,
        args: args.clone(),
        config: config.clone(),
        data: Some(data),
        history: Vec::new(),
    }
}

/// Returns the faces per class of the training and validation sets.
fn data_counts(train: &Dataset, val: &Dataset) -> DataCounts {
    DataCounts {
        train: train.class_counts(),
        validation: val.class_counts(),
    }
}

/// Formats the face counts of a training and a validation set, in all and per class, e.g.
/// "20 training faces (10, 10) and 6 for validation (3, 3)".
fn describe_counts(counts: &DataCounts) -> String {
    let describe = |per_class: &[usize], what: &str| {
        let total: usize = per_class.iter().sum();
        let parts: Vec<String> = per_class.iter().map(usize::to_string).collect();
        format!("{total} {what} ({})", parts.join(", "))
    };
    format!(
        "{} and {}",
        describe(&counts.train, "training faces"),
        describe(&counts.validation, "for validation")
    )
}

/// Returns per-class loss weights proportional to 1/sqrt(class frequency), scaled so that
/// the mean weight over the training faces is 1.
fn balanced_weights(train: &Dataset) -> Tensor {
    let counts = train.class_counts();
    let raw: Vec<f64> = counts
        .iter()
        .map(|&count| 1.0 / (count.max(1) as f64).sqrt())
        .collect();
    let mean = raw
        .iter()
        .zip(&counts)
        .map(|(w, &c)| w * c as f64)
        .sum::<f64>()
        / train.len() as f64;
    let weights: Vec<f32> = raw.iter().map(|w| (w / mean) as f32).collect();
    Tensor::from_slice(&weights)
}

/// Loads the weights of the model described at `path` into `vs`, after checking that its
/// architecture and classes are those of the run.
fn load_initial_weights(
    vs: &mut VarStore,
    path: &Path,
    architecture: Architecture,
    train: &Dataset,
) -> anyhow::Result<()> {
    let description = ModelDescription::read(path)?;
    let saved = description.architecture(path)?;
    if saved != architecture {
        bail!(
            "--init model {} is a {saved} network but --arch is {architecture}: pass --arch {saved}",
            path.display()
        );
    }
    if description.classes != train.classes {
        bail!(
            "--init model {} has the classes {} but the run trains on {}: pass --classes {}",
            path.display(),
            dataset::class_names(&description.classes),
            dataset::class_names(&train.classes),
            dataset::class_names(&description.classes)
        );
    }
    model::load_weights(
        vs,
        &description.weights_path(path),
        architecture,
        train.classes.len(),
    )?;
    Ok(())
}

/// Creates a spinner on stderr for the validation after an epoch, which takes tens of
/// seconds on the CPU for the reference network. Hidden when stderr is not a terminal.
fn validation_spinner(epoch: usize, epochs: usize, faces: usize) -> ProgressBar {
    let spinner = ProgressBar::new_spinner();
    if !std::io::stderr().is_terminal() {
        spinner.set_draw_target(ProgressDrawTarget::hidden());
    }
    let style = ProgressStyle::with_template("{prefix} {spinner} {msg} ({elapsed})")
        .expect("the template is valid");
    spinner.set_style(style);
    spinner.set_prefix(format!("epoch {epoch}/{epochs}"));
    spinner.set_message(format!("validating on {faces} faces"));
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    spinner
}

/// Creates a progress bar on stderr, hidden when stderr is not a terminal.
fn progress_bar(batches: u64, epoch: usize, epochs: usize) -> ProgressBar {
    let progress = ProgressBar::new(batches);
    if !std::io::stderr().is_terminal() {
        progress.set_draw_target(ProgressDrawTarget::hidden());
    }
    let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({eta} left)")
        .expect("the template is valid")
        .progress_chars("=> ");
    progress.set_style(style);
    progress.set_prefix(format!("epoch {epoch}/{epochs}"));
    progress
}
