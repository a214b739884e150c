//! Evaluation of a network on a labelled data set, and the `moodscope eval` command.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Serialize;
use tch::{Device, Kind, Tensor};

use super::args::EvalArgs;
use super::dataset;
use super::metrics::ClassMetrics;
use super::plot;

use super::dataset::Dataset;
use super::metrics::ConfusionMatrix;
use crate::cli::usage;
use crate::model::{
    predict_probabilities, resolve_device, resolve_precision, Classifier, DeviceRequest,
    EvaluationRecord, ModelDescription, ModelError, Network, Normalisation, Precision, Tta,
};
use crate::record::check_output_path;

/// Face views per forward pass during evaluation.
const EVAL_BATCH: i64 = 512;

/// Result of running a network over a data set.
#[derive(Clone, Debug)]
pub struct Evaluation {
    pub matrix: ConfusionMatrix,
    /// Mean cross-entropy of the true classes (without label smoothing).
    pub loss: f64,
}

/// Runs `network` over `dataset` in batches and counts its predictions.
///
/// The data set's classes must be the network's outputs, in the same order.
///
/// # Errors
///
/// [`ModelError::Torch`] when libtorch fails.
pub fn evaluate_network(
    network: &Network,
    normalisation: Normalisation,
    device: Device,
    dataset: &Dataset,
    tta: Tta,
) -> Result<Evaluation, ModelError> {
    evaluate_with(dataset, tta, |pixels| {
        predict_probabilities(network, normalisation, (device, Kind::Float), pixels, tta)
    })
}

/// Runs a loaded model over `dataset`, whose classes must be the model's, in its order.
///
/// # Errors
///
/// [`ModelError::Torch`] when libtorch fails.
pub fn evaluate_classifier(
    classifier: &Classifier,
    dataset: &Dataset,
    tta: Tta,
) -> Result<Evaluation, ModelError> {
    evaluate_with(dataset, tta, |pixels| classifier.probabilities(pixels, tta))
}

fn evaluate_with(
    dataset: &Dataset,
    tta: Tta,
    probabilities_of: impl Fn(&Tensor) -> Result<Tensor, ModelError>,
) -> Result<Evaluation, ModelError> {
    let mut matrix = ConfusionMatrix::new(&dataset.classes);
    let mut loss_sum = 0.0;
    let count = dataset.len() as i64;
    let batch = (EVAL_BATCH / tta.view_count() as i64).max(1);
    for start in (0..count).step_by(batch as usize) {
        let length = batch.min(count - start);
        let probabilities = probabilities_of(&dataset.images.narrow(0, start, length))?;
        let labels = &dataset.labels[start as usize..(start + length) as usize];
        loss_sum += count_predictions(&probabilities, labels, &mut matrix)?;
    }
    Ok(Evaluation {
        matrix,
        loss: loss_sum / count.max(1) as f64,
    })
}

/// Adds a batch's predictions to `matrix` and returns the summed cross-entropy.
fn count_predictions(
    probabilities: &Tensor,
    labels: &[i64],
    matrix: &mut ConfusionMatrix,
) -> Result<f64, ModelError> {
    let torch = ModelError::torch("reading predictions");
    let probabilities = probabilities
        .f_to_device(Device::Cpu)
        .map_err(ModelError::torch("reading predictions"))?;
    let predicted = Vec::<i64>::try_from(probabilities.argmax(-1, false)).map_err(torch)?;
    let targets = Tensor::from_slice(labels).unsqueeze(1);
    let true_probabilities = probabilities.gather(1, &targets, false).clamp_min(1e-12);
    let loss = -true_probabilities.log().sum(Kind::Double).double_value(&[]);
    for (&truth, &guess) in labels.iter().zip(&predicted) {
        matrix.add(truth as usize, guess as usize);
    }
    Ok(loss)
}

/// Result of `moodscope eval`, as written by `--report`.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    pub model: PathBuf,
    pub data: PathBuf,
    pub split: String,
    pub tta: Tta,
    pub images: u64,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub loss: f64,
    pub per_class: Vec<ClassMetrics>,
    /// Rows are true classes, columns predictions, both in `classes` order.
    pub confusion_matrix: ConfusionMatrix,
}

/// Evaluates a saved model on a labelled split: prints the confusion matrix and metrics, and
/// writes the JSON report, the heat map and the description's record when asked.
///
/// Faces of classes the model does not know are left out.
///
/// # Errors
///
/// Invalid options, a model that does not load, unreadable data and unwritable outputs.
pub fn run_eval(args: &EvalArgs) -> anyhow::Result<()> {
    if let Some(threads) = args.threads {
        if !(1..=256).contains(&threads) {
            return Err(usage!("invalid --threads \"{threads}\": expected 1 to 256"));
        }
        super::set_threads(threads);
    }
    let request: DeviceRequest = args.device.parse()?;
    let device = resolve_device(request)?;
    let precision = resolve_precision(args.precision, device);
    if args.record && precision != Precision::F32 {
        return Err(usage!(
            "--record keeps results measured in f32 only: drop --precision {precision} or --record"
        ));
    }
    let classifier = Classifier::load_with_precision(&args.model, device, precision)?;
    check_outputs(args, classifier.description())?;
    let classes = &classifier.description().classes;
    let dataset = dataset::load_split(&args.data, &args.split)?.select_classes(classes);
    anyhow::ensure!(
        !dataset.is_empty(),
        "split \"{}\" of {} contains no faces of the model's classes ({})",
        args.split,
        args.data.display(),
        dataset::class_names(classes)
    );
    let evaluation = evaluate_classifier(&classifier, &dataset, args.tta)?;
    let matrix = &evaluation.matrix;
    println!(
        "{} on {} {}{}, {precision}",
        args.model.display(),
        args.data.display(),
        args.split,
        match args.tta {
            Tta::Off => String::new(),
            tta => format!(" averaged over {} views ({tta})", tta.view_count()),
        }
    );
    println!("{matrix}");
    let report = EvalReport {
        model: args.model.clone(),
        data: args.data.clone(),
        split: args.split.clone(),
        tta: args.tta,
        images: matrix.total(),
        accuracy: matrix.accuracy(),
        macro_f1: matrix.macro_f1(),
        loss: evaluation.loss,
        per_class: matrix.per_class(),
        confusion_matrix: matrix.clone(),
    };
    write_outputs(args, &report)?;
    if args.record {
        record_in_description(args, &report)?;
    }
    Ok(())
}

/// Checks the --report and --heatmap paths before the evaluation, so that a wrong path is
/// found before the work rather than after it, and keeps them off the model's own files.
fn check_outputs(args: &EvalArgs, description: &ModelDescription) -> anyhow::Result<()> {
    // The data too, when it is one CSV file.
    let model_files = [
        args.model.clone(),
        description.weights_path(&args.model),
        args.data.clone(),
    ];
    let outputs = [("--report", &args.report), ("--heatmap", &args.heatmap)];
    for (option, path) in outputs {
        let Some(path) = path else { continue };
        check_output_path(path).with_context(|| format!("{option} {}", path.display()))?;
        if model_files.iter().any(|file| same_file(file, path)) {
            bail!(
                "{option} {} would overwrite the model or the data being evaluated",
                path.display()
            );
        }
    }
    let is_png = |path: &Path| {
        path.extension()
            .is_some_and(|extension| extension.eq_ignore_ascii_case("png"))
    };
    if let Some(heatmap) = args.heatmap.as_deref().filter(|path| !is_png(path)) {
        return Err(crate::cli::usage!(
            "--heatmap {}: the heat map is a PNG, so its name must end in .png",
            heatmap.display()
        ));
    }
    if let (Some(report), Some(heatmap)) = (&args.report, &args.heatmap) {
        if report == heatmap || same_file(report, heatmap) {
            bail!(
                "--report and --heatmap name the same file, {}",
                report.display()
            );
        }
    }
    Ok(())
}

/// Returns true when both paths exist and lead to the same file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn write_outputs(args: &EvalArgs, report: &EvalReport) -> anyhow::Result<()> {
    if let Some(path) = &args.report {
        let text = serde_json::to_string_pretty(report)? + "\n";
        std::fs::write(path, text)
            .with_context(|| format!("cannot write report {}", path.display()))?;
        println!("report: {}", path.display());
    }
    if let Some(path) = &args.heatmap {
        let title = format!(
            "{} on {}{}: accuracy {:.1}%, macro-F1 {:.3}",
            args.model.file_stem().unwrap_or_default().to_string_lossy(),
            args.split,
            match args.tta {
                Tta::Off => String::new(),
                tta => format!(" ({tta} TTA)"),
            },
            report.accuracy * 100.0,
            report.macro_f1
        );
        plot::draw_heatmap(&report.confusion_matrix, &title, path)?;
        println!("heat map: {}", path.display());
    }
    Ok(())
}

/// Adds (or replaces) this split's measurement in the model's description file.
fn record_in_description(args: &EvalArgs, report: &EvalReport) -> anyhow::Result<()> {
    let mut description = ModelDescription::read(&args.model)?;
    let data_name = args
        .data
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let command = format!(
        "moodscope eval {} --data {} --split {}{}",
        args.model.display(),
        args.data.display(),
        args.split,
        match args.tta {
            Tta::Off => "",
            Tta::Mirror => " --tta",
            Tta::Crops => " --tta=crops",
        }
    );
    // A measurement replaces only the one of the same data, split and averaging.
    description.evaluations.retain(|record| {
        !(record.data == data_name && record.split == args.split && record.tta == args.tta)
    });
    description.evaluations.push(EvaluationRecord {
        data: data_name,
        split: args.split.clone(),
        tta: args.tta,
        images: report.images as usize,
        accuracy: report.accuracy,
        macro_f1: report.macro_f1,
        command,
        extra: Default::default(),
    });
    description.write(&args.model)?;
    println!("recorded in {}", args.model.display());
    Ok(())
}
