//! Integration tests of the datasets, training, checkpoints, evaluation and model loading, on
//! the real FER-2013 images and sample CSV (see `data_root`).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use clap::Parser;
use image::GrayImage;
use moodscope::emotion::Emotion;
use moodscope::model::{
    self, Architecture, Classifier, ModelDescription, ModelError, Network, Normalisation,
    Precision, TrainingRecord, Tta,
};
use moodscope::train::dataset::{self, DatasetError};
use moodscope::train::evaluate::evaluate_classifier;
use moodscope::train::run_state::RunState;
use moodscope::train::{run_eval, run_train, EvalArgs, TrainArgs};
use tch::nn::VarStore;
use tch::Device;

/// Default FER-2013 folder: `shared/fer2013` beside the checkout.
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fer2013");

/// Returns the FER-2013 folder: `MOODSCOPE_FER2013` when set, else [`DATA`].
///
/// # Panics
///
/// When the folder does not exist, with a message naming where the data belongs.
fn data_root() -> PathBuf {
    let root =
        std::env::var_os("MOODSCOPE_FER2013").map_or_else(|| PathBuf::from(DATA), PathBuf::from);
    assert!(
        root.is_dir(),
        "FER-2013 not found at {}: put its Training/ and PublicTest/ class folders and \
         fer2013-sample.csv there, or set MOODSCOPE_FER2013 to the folder that has them",
        root.display()
    );
    root
}

/// Serialises the tests that build networks or train: libtorch's random generator is global to
/// the process, and draws by a parallel test (weight initialisation in `Classifier::load`
/// included) in the middle of an epoch would change that epoch's dropout masks.
static TORCH_RANDOM: Mutex<()> = Mutex::new(());

fn lock_torch_random() -> MutexGuard<'static, ()> {
    TORCH_RANDOM.lock().unwrap_or_else(PoisonError::into_inner)
}

fn train(args: &TrainArgs) {
    run_train(args).unwrap();
}

fn data_path(relative: &str) -> PathBuf {
    data_root().join(relative)
}

#[derive(Debug, Parser)]
struct TrainCli {
    #[command(flatten)]
    args: TrainArgs,
}

#[derive(Parser)]
struct EvalCli {
    #[command(flatten)]
    args: EvalArgs,
}

fn train_args(options: &[&str]) -> TrainArgs {
    let words = std::iter::once("train").chain(options.iter().copied());
    TrainCli::try_parse_from(words)
        .expect("valid train options")
        .args
}

/// Options of a small, fast run on the sample CSV (420 Training, 105 PublicTest rows).
fn quick_run(out: &Path, extra: &[&str]) -> TrainArgs {
    let sample = data_path("fer2013-sample.csv");
    let mut options = vec![
        "--data",
        sample.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--arch",
        "moodnet-w8",
        "--batch-size",
        "32",
        "--threads",
        "1",
        "--seed",
        "7",
    ];
    options.extend_from_slice(extra);
    train_args(&options)
}

/// Trains a quick run with `options` for three epochs straight, and again for two epochs
/// resumed to three. Returns the first run's folder and both final states.
fn train_whole_and_resumed(options: &[&str]) -> (tempfile::TempDir, RunState, RunState) {
    let whole = tempfile::tempdir().unwrap();
    train(&quick_run(
        whole.path(),
        &[options, &["--epochs", "3"]].concat(),
    ));
    let split = tempfile::tempdir().unwrap();
    train(&quick_run(
        split.path(),
        &[options, &["--epochs", "2"]].concat(),
    ));
    let resume = split.path().to_str().unwrap();
    train(&train_args(&[
        "--resume",
        resume,
        "--epochs",
        "3",
        "--threads",
        "1",
    ]));
    let expected = RunState::read(whole.path()).unwrap();
    let resumed = RunState::read(split.path()).unwrap();
    (whole, expected, resumed)
}

/// Writes an untrained model of `architecture` with `classes` outputs into `folder`.
fn write_model(folder: &Path, stem: &str, architecture: &str, classes: &[Emotion]) -> PathBuf {
    let parsed: Architecture = architecture.parse().unwrap();
    tch::manual_seed(1);
    let vs = VarStore::new(Device::Cpu);
    let _network = Network::new(&vs.root(), parsed, classes.len() as i64);
    let weights = format!("{stem}.safetensors");
    model::save_weights(&vs, &folder.join(&weights)).unwrap();
    let description = ModelDescription {
        format: model::DESCRIPTION_FORMAT,
        architecture: architecture.to_owned(),
        input_size: 48,
        classes: classes.to_vec(),
        normalisation: Normalisation {
            mean: 0.5,
            std: 0.25,
        },
        weights,
        parameters: 0,
        training: TrainingRecord::default(),
        evaluations: Vec::new(),
        extra: Default::default(),
    };
    let path = folder.join(format!("{stem}.json"));
    description.write(&path).unwrap();
    path
}

/// Reads the first `count` PublicTest faces of a class folder.
fn public_test_faces(class: &str, count: usize) -> Vec<GrayImage> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data_path("PublicTest").join(class))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .take(count)
        .map(|file| image::open(file).unwrap().to_luma8())
        .collect()
}

#[test]
fn csv_sample_counts_per_usage() {
    let splits = dataset::read_csv(&data_path("fer2013-sample.csv")).unwrap();
    let usages: Vec<&String> = splits.keys().collect();
    assert_eq!(usages, ["PublicTest", "Training"]);
    let training = &splits["Training"];
    assert_eq!(training.len(), 420);
    assert_eq!(training.class_counts(), vec![60; 7]);
    assert_eq!(training.images.size(), vec![420, 1, 48, 48]);
    let public = &splits["PublicTest"];
    assert_eq!(public.len(), 105);
    assert_eq!(public.class_counts(), vec![15; 7]);
}

#[test]
fn csv_malformed_rows_name_line_and_file() {
    let folder = tempfile::tempdir().unwrap();
    let good_pixels = vec!["0"; 2304].join(" ");
    let short_pixels = vec!["0"; 2303].join(" ");
    let bad_pixels = format!("{} 256", vec!["0"; 2303].join(" "));
    let cases = [
        (
            "fields.csv",
            format!("3,{good_pixels}\n"),
            "2 fields, expected 3",
        ),
        (
            "label.csv",
            format!("7,{good_pixels},Training\n"),
            "emotion \"7\"",
        ),
        (
            "number.csv",
            format!("x,{good_pixels},Training\n"),
            "emotion \"x\"",
        ),
        (
            "count.csv",
            format!("3,{short_pixels},Training\n"),
            "2303 pixels",
        ),
        (
            "pixel.csv",
            format!("3,{bad_pixels},Training\n"),
            "pixel \"256\"",
        ),
        (
            "usage.csv",
            format!("3,{good_pixels},\n"),
            "the Usage field is empty",
        ),
    ];
    for (name, bad_row, reason) in cases {
        let path = folder.path().join(name);
        let text = format!("emotion,pixels,Usage\n3,{good_pixels},Training\n{bad_row}");
        std::fs::write(&path, text).unwrap();
        let error = dataset::read_csv(&path).unwrap_err();
        assert!(
            matches!(error, DatasetError::MalformedRow { line: 3, .. }),
            "{name}: {error}"
        );
        let message = error.to_string();
        assert!(message.contains(name), "{message}");
        assert!(message.contains("line 3"), "{message}");
        assert!(message.contains(reason), "{message}");
    }
}

#[test]
fn csv_usage_case_and_empty_files() {
    let folder = tempfile::tempdir().unwrap();
    let pixels = vec!["7"; 2304].join(" ");
    let path = folder.path().join("mixed.csv");
    let text = format!(
        "emotion,pixels,Usage\n3,{pixels},Training\n4,{pixels},training\n6,{pixels},PublicTest\n"
    );
    std::fs::write(&path, text).unwrap();
    let training = dataset::load_split(&path, "TRAINING").unwrap();
    assert_eq!(training.labels, vec![3, 4]);

    // A misspelt Usage is a split of its own, named among those left unread.
    let misspelt = folder.path().join("misspelt.csv");
    let text = format!("emotion,pixels,Usage\n3,{pixels},Training\n4,{pixels},Trainingx\n");
    std::fs::write(&misspelt, text).unwrap();
    let loaded = dataset::load_splits(&misspelt, &["Training"]).unwrap();
    assert_eq!(loaded.datasets[0].labels, vec![3]);
    assert_eq!(loaded.unused, vec!["Trainingx (1 face)"]);

    for (name, text) in [("empty.csv", ""), ("header.csv", "emotion,pixels,Usage\n")] {
        let path = folder.path().join(name);
        std::fs::write(&path, text).unwrap();
        let error = dataset::load_split(&path, "Training").unwrap_err();
        assert!(matches!(error, DatasetError::EmptyCsv { .. }), "{error:?}");
        assert!(error.to_string().contains(name), "{error}");
    }
}

#[test]
fn folder_classes_match_without_case() {
    let root = tempfile::tempdir().unwrap();
    let split = root.path().join("train");
    for (folder, size) in [("Happy", 48), ("SAD", 64)] {
        std::fs::create_dir_all(split.join(folder)).unwrap();
        let face = image::RgbImage::from_pixel(size, size, image::Rgb([200, 100, 50]));
        face.save(split.join(folder).join("a.png")).unwrap();
        face.save(split.join(folder).join("b.jpg")).unwrap();
    }
    // The format comes from the bytes: a PNG named .jpg is read as one.
    std::fs::rename(split.join("SAD/a.png"), split.join("SAD/a.jpg")).unwrap();
    let loaded = dataset::load_split(root.path(), "TRAIN").unwrap();
    assert_eq!(loaded.len(), 4);
    assert_eq!(loaded.images.size(), vec![4, 1, 48, 48]);
    assert_eq!(loaded.labels, vec![3, 3, 4, 4]);
    assert_eq!(loaded.class_counts(), vec![0, 0, 0, 2, 2, 0, 0]);

    std::fs::create_dir_all(split.join("contempt")).unwrap();
    let error = dataset::load_split(root.path(), "train").unwrap_err();
    assert!(matches!(error, DatasetError::UnknownClassFolders { .. }));
    assert!(error.to_string().contains("contempt"), "{error}");

    let missing = dataset::load_split(root.path(), "PublicTest").unwrap_err();
    assert!(
        missing.to_string().contains("\"PublicTest\" not found"),
        "{missing}"
    );
}

#[test]
fn folder_training_counts_per_class() {
    let training = dataset::load_split(&data_root(), "Training").unwrap();
    assert_eq!(training.len(), 28_709);
    // FER-2013 label order: angry, disgust, fear, happy, sad, surprise, neutral.
    assert_eq!(
        training.class_counts(),
        vec![3995, 436, 4097, 7215, 4830, 3171, 4965]
    );
    let three = training.select_classes(&dataset::parse_classes("neutral,Happy,sad").unwrap());
    assert_eq!(
        three.classes,
        vec![Emotion::Happy, Emotion::Sad, Emotion::Neutral]
    );
    assert_eq!(three.class_counts(), vec![7215, 4830, 4965]);
}

#[test]
fn stratified_split_keeps_class_shares() {
    let splits = dataset::read_csv(&data_path("fer2013-sample.csv")).unwrap();
    let (rest, validation) = splits["Training"].stratified_split(0.2, 3);
    assert_eq!(validation.class_counts(), vec![12; 7]);
    assert_eq!(rest.class_counts(), vec![48; 7]);
    let (_, again) = splits["Training"].stratified_split(0.2, 3);
    assert_eq!(validation.labels, again.labels);
    assert!(validation.images.equal(&again.images));
}

#[test]
fn short_training_lowers_loss() {
    let _guard = lock_torch_random();
    let out = tempfile::tempdir().unwrap();
    let args = quick_run(
        out.path(),
        &["--epochs", "4", "--no-augment", "--lr", "3e-3"],
    );
    train(&args);
    let state = RunState::read(out.path()).unwrap();
    assert_eq!(state.epoch, 4);
    let first = state.history.first().unwrap().train_loss;
    let last = state.history.last().unwrap().train_loss;
    assert!(last < first, "training loss went from {first} to {last}");
    for file in [
        "checkpoint.safetensors",
        "state.json",
        "best.json",
        "best.safetensors",
        "epochs.csv",
        "curves.png",
    ] {
        assert!(out.path().join(file).is_file(), "{file} missing");
    }
    let log = std::fs::read_to_string(out.path().join("epochs.csv")).unwrap();
    assert_eq!(log.lines().count(), 5, "{log}");
}

#[test]
fn resume_continues_epochs_and_rate() {
    let _guard = lock_torch_random();
    // The plateau schedule with patience 1 halves the rate within three epochs, so the rate
    // itself has to come back from the saved state.
    let options = [
        "--schedule",
        "plateau",
        "--plateau-patience",
        "1",
        "--recipe",
        "reference",
    ];
    let (_whole, expected, resumed) = train_whole_and_resumed(&options);
    assert_eq!(resumed.epoch, 3);
    assert_eq!(resumed.step, expected.step);
    let epochs: Vec<usize> = resumed.history.iter().map(|record| record.epoch).collect();
    assert_eq!(epochs, vec![1, 2, 3]);
    let rates = |state: &RunState| {
        state
            .history
            .iter()
            .map(|record| record.lr)
            .collect::<Vec<_>>()
    };
    assert_eq!(rates(&resumed), rates(&expected));
    assert_eq!(resumed.lr, expected.lr);
    let (got, want) = (
        resumed.history[2].train_loss,
        expected.history[2].train_loss,
    );
    assert!(
        (got - want).abs() < 1e-3,
        "epoch 3 training loss {got}, uninterrupted {want}"
    );
}

#[test]
fn weight_averaging_saves_and_resumes_the_average() {
    let _guard = lock_torch_random();
    let options = [
        "--average-from",
        "2",
        "--schedule",
        "constant",
        "--lr",
        "2e-3",
        "--no-augment",
    ];
    let (whole, expected, resumed) = train_whole_and_resumed(&options);
    assert_eq!(expected.averaged_epochs, 2);
    assert_eq!(resumed.averaged_epochs, 2);
    let averaged: Vec<bool> = expected
        .history
        .iter()
        .map(|record| record.last_val_accuracy.is_some())
        .collect();
    assert_eq!(averaged, [false, true, true]);
    // One face of the 105 is 0.0095: the resumed average may differ by rounding only.
    let (got, want) = (
        resumed.history[2].val_accuracy,
        expected.history[2].val_accuracy,
    );
    assert!(
        (got - want).abs() < 0.015,
        "averaged accuracy after resuming {got}, uninterrupted {want}"
    );

    // The best model contains the averaged weights with their own batch-norm statistics: loaded
    // and evaluated again, it scores what the run recorded for its best epoch.
    let classifier = Classifier::load(&whole.path().join("best.json"), Device::Cpu).unwrap();
    let splits = dataset::read_csv(&data_path("fer2013-sample.csv")).unwrap();
    let evaluation = evaluate_classifier(&classifier, &splits["PublicTest"], Tta::Off).unwrap();
    let recorded = expected.best_accuracy;
    let measured = evaluation.matrix.accuracy();
    assert!(
        (measured - recorded).abs() < 0.015,
        "best model scores {measured}, the run recorded {recorded}"
    );
    let log = std::fs::read_to_string(whole.path().join("epochs.csv")).unwrap();
    assert!(
        log.lines().next().unwrap().ends_with(",last_val_acc"),
        "{log}"
    );
}

#[test]
fn init_starts_from_the_saved_weights() {
    let _guard = lock_torch_random();
    let source = tempfile::tempdir().unwrap();
    train(&quick_run(
        source.path(),
        &["--epochs", "2", "--no-augment", "--lr", "3e-3"],
    ));
    let saved = source.path().join("best.json");

    // With a rate of 1e-12 one epoch leaves the trained weights as they were loaded.
    let tuned = tempfile::tempdir().unwrap();
    let init = ["--init", saved.to_str().unwrap()];
    train(&quick_run(
        tuned.path(),
        &[
            &init[..],
            &["--epochs", "1", "--no-augment", "--lr", "1e-12"],
        ]
        .concat(),
    ));
    let read = |folder: &Path| -> std::collections::HashMap<String, tch::Tensor> {
        tch::Tensor::read_safetensors(folder.join("best.safetensors"))
            .unwrap()
            .into_iter()
            .collect()
    };
    let (before, after) = (read(source.path()), read(tuned.path()));
    let name = "stage2.conv1.weight";
    let change = (&before[name] - &after[name]).abs().max().double_value(&[]);
    assert!(change < 1e-6, "{name} moved by {change}");
    let description = ModelDescription::read(&tuned.path().join("best.json")).unwrap();
    assert!(
        description
            .training
            .recipe
            .contains("starting from the weights of"),
        "{}",
        description.training.recipe
    );

    // A resumed run takes its weights from its checkpoint, so the --init model may be gone.
    std::fs::remove_file(&saved).unwrap();
    let resume = tuned.path().to_str().unwrap();
    train(&train_args(&[
        "--resume",
        resume,
        "--epochs",
        "2",
        "--threads",
        "1",
    ]));
    assert_eq!(RunState::read(tuned.path()).unwrap().epoch, 2);

    // A model of another architecture or other classes is rejected with its path named.
    let folder = tempfile::tempdir().unwrap();
    let wide = write_model(folder.path(), "wide", "moodnet-w12", &Emotion::ALL);
    let three = write_model(
        folder.path(),
        "three",
        "moodnet-w8",
        &[Emotion::Happy, Emotion::Sad, Emotion::Neutral],
    );
    for (model, expected) in [(&wide, "--arch moodnet-w12"), (&three, "has the classes")] {
        let out = folder.path().join("run");
        let error = run_train(&quick_run(
            &out,
            &["--init", model.to_str().unwrap(), "--epochs", "1"],
        ))
        .unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains(model.to_str().unwrap()), "{message}");
        assert!(message.contains(expected), "{message}");
        assert!(!out.exists(), "the rejected run created {}", out.display());
    }
}

#[test]
fn out_of_range_values_are_usage_errors() {
    let folder = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 3] = [
        (&["--average-from", "0"], "--average-from \"0\" must be"),
        (&["--val-fraction", "2"], "--val-fraction \"2\" must be"),
        (&["--lr", "5"], "--lr \"5\" must be"),
    ];
    let cases = cases.into_iter().chain([
        (
            &["--classes", "happy,joy"][..],
            "unknown emotion class \"joy\"",
        ),
        (&["--classes", "happy,happy"][..], "name each class once"),
        (&["--warmup-epochs", "inf"][..], "--warmup-epochs \"inf\""),
    ]);
    for (options, expected) in cases {
        let error = run_train(&quick_run(folder.path(), options)).unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains(expected), "{message}");
        assert!(
            error.downcast_ref::<moodscope::cli::UsageError>().is_some(),
            "{message} is not a usage error"
        );
    }

    // A resumed run keeps its saved options: changing one is rejected while parsing.
    let resumed = ["train", "--resume", "runs/any", "--lr", "0.5"];
    assert!(TrainCli::try_parse_from(resumed).is_err());
    let epochs = [
        "train",
        "--resume",
        "runs/any",
        "--epochs",
        "9",
        "--threads",
        "2",
    ];
    assert!(TrainCli::try_parse_from(epochs).is_ok());
    let moved = [
        "train",
        "--resume",
        "runs/any",
        "--data",
        "elsewhere/fer2013",
    ];
    assert!(TrainCli::try_parse_from(moved).is_ok());

    // A device name is checked while parsing, as every other option is.
    let device = ["train", "--data", "d", "--out", "o", "--device", "gpu"];
    let error = TrainCli::try_parse_from(device).unwrap_err().to_string();
    assert!(error.contains("invalid device \"gpu\""), "{error}");
    let threads = ["eval", "m.json", "--data", "d", "--threads", "0"];
    let error = run_eval(&EvalCli::try_parse_from(threads).unwrap().args).unwrap_err();
    assert!(error.downcast_ref::<moodscope::cli::UsageError>().is_some());
}

#[test]
fn new_run_keeps_off_an_earlier_runs_files() {
    let folder = tempfile::tempdir().unwrap();
    let best = write_model(folder.path(), "best", "moodnet-w8", &Emotion::ALL);
    let before = std::fs::read(&best).unwrap();
    let error = run_train(&quick_run(folder.path(), &["--epochs", "1"])).unwrap_err();
    let message = format!("{error:#}");
    assert!(message.contains("already holds best.json"), "{message}");
    assert_eq!(std::fs::read(&best).unwrap(), before);

    let file = folder.path().join("best.json");
    let error = run_train(&quick_run(&file, &["--epochs", "1"])).unwrap_err();
    assert!(format!("{error:#}").contains("is a file"), "{error:#}");
}

#[test]
fn resume_checks_the_saved_run() {
    let _guard = lock_torch_random();
    let data = tempfile::tempdir().unwrap();
    let sample = data.path().join("sample.csv");
    std::fs::copy(data_path("fer2013-sample.csv"), &sample).unwrap();
    let run = tempfile::tempdir().unwrap();
    let options = ["--epochs", "1", "--train-limit", "70", "--val-limit", "35"];
    let mut args = quick_run(run.path(), &options);
    args.data = Some(sample.clone());
    train(&args);
    let best = std::fs::read_to_string(run.path().join("best.json")).unwrap();
    let best: serde_json::Value = serde_json::from_str(&best).unwrap();
    let selection = best["training"]["selection_split"].as_str().unwrap();
    assert!(selection.contains("--val-limit 35"), "{selection}");
    let resume = |extra: &[&str]| {
        let words = [
            &["--resume", run.path().to_str().unwrap(), "--epochs", "2"],
            extra,
        ];
        run_train(&train_args(&words.concat()))
    };
    let state_path = run.path().join("state.json");
    let state = std::fs::read_to_string(&state_path).unwrap();

    // A hand-edited counter is refused before anything is trained.
    let mut edited: serde_json::Value = serde_json::from_str(&state).unwrap();
    edited["step"] = (-5).into();
    std::fs::write(&state_path, edited.to_string()).unwrap();
    let message = format!("{:#}", resume(&[]).unwrap_err());
    assert!(message.contains("step -5 is negative"), "{message}");
    std::fs::write(&state_path, &state).unwrap();

    // A checkpoint of another epoch is refused and named, whatever the shape of its epoch.
    let checkpoint = run.path().join("checkpoint.safetensors");
    let saved = tch::Tensor::read_safetensors(&checkpoint).unwrap();
    let with_epoch = |epoch: tch::Tensor| {
        let mut tensors: Vec<(String, tch::Tensor)> = saved
            .iter()
            .filter(|(name, _)| name != "run.epoch")
            .map(|(name, tensor)| (name.clone(), tensor.shallow_clone()))
            .collect();
        tensors.push(("run.epoch".to_owned(), epoch));
        tch::Tensor::write_safetensors(&tensors, &checkpoint).unwrap();
    };
    with_epoch(tch::Tensor::scalar_tensor(
        5,
        (tch::Kind::Int64, Device::Cpu),
    ));
    let message = format!("{:#}", resume(&[]).unwrap_err());
    assert!(
        message.contains("checkpoint.safetensors holds epoch 5"),
        "{message}"
    );
    let without_moments: Vec<(String, tch::Tensor)> = saved
        .iter()
        .filter(|(name, _)| !name.starts_with("optimizer."))
        .map(|(name, tensor)| (name.clone(), tensor.shallow_clone()))
        .collect();
    tch::Tensor::write_safetensors(&without_moments, &checkpoint).unwrap();
    let message = format!("{:#}", resume(&[]).unwrap_err());
    assert!(message.contains("checkpoint.safetensors"), "{message}");
    assert!(message.contains("is missing"), "{message}");
    with_epoch(tch::Tensor::scalar_tensor(
        1,
        (tch::Kind::Int64, Device::Cpu),
    ));

    // Other data under the run's data name is refused: here the first 100 rows alone.
    let whole = std::fs::read_to_string(&sample).unwrap();
    let fewer: Vec<&str> = whole.lines().take(101).collect();
    std::fs::write(&sample, fewer.join("\n") + "\n").unwrap();
    let message = format!("{:#}", resume(&[]).unwrap_err());
    assert!(message.contains("differs from the data"), "{message}");
    assert!(message.contains("70 training faces"), "{message}");
    std::fs::write(&sample, &whole).unwrap();

    // Moved data is named in the message, and --data gives its new place.
    let moved = data.path().join("moved.csv");
    std::fs::rename(&sample, &moved).unwrap();
    let message = format!("{:#}", resume(&[]).unwrap_err());
    assert!(message.contains("sample.csv"), "{message}");
    assert!(message.contains("pass --data"), "{message}");
    resume(&["--data", moved.to_str().unwrap()]).unwrap();
    let resumed = RunState::read(run.path()).unwrap();
    assert_eq!(resumed.epoch, 2);
    assert_eq!(resumed.args.data.as_deref(), Some(moved.as_path()));
}

#[test]
fn teacher_targets_are_saved_and_reused() {
    let _guard = lock_torch_random();
    let source = tempfile::tempdir().unwrap();
    train(&quick_run(
        source.path(),
        &["--epochs", "1", "--no-augment", "--lr", "3e-3"],
    ));
    let teacher = source.path().join("best.json");
    let teacher = teacher.to_str().unwrap();

    let student = tempfile::tempdir().unwrap();
    train(&quick_run(
        student.path(),
        &[
            "--teacher",
            teacher,
            "--teacher-tta",
            "mirror",
            "--epochs",
            "1",
        ],
    ));
    let saved = tch::Tensor::read_safetensors(student.path().join("teacher.safetensors")).unwrap();
    let probabilities = &saved[0].1;
    assert_eq!(probabilities.size(), [420, 7]);
    let row_sums = probabilities.sum_dim_intlist(1, false, tch::Kind::Double);
    let worst = (row_sums - 1.0).abs().max().double_value(&[]);
    assert!(worst < 1e-5, "a row sums to 1 +- {worst}");
    let description = ModelDescription::read(&student.path().join("best.json")).unwrap();
    assert!(
        description
            .training
            .recipe
            .contains("distillation weight 0.5"),
        "{}",
        description.training.recipe
    );

    // The resumed run reads the saved targets; a wrong shape there is reported, not used.
    let resume = student.path().to_str().unwrap();
    train(&train_args(&[
        "--resume",
        resume,
        "--epochs",
        "2",
        "--threads",
        "1",
    ]));
    assert_eq!(RunState::read(student.path()).unwrap().epoch, 2);
    let wrong = [(
        "probabilities",
        tch::Tensor::zeros([3, 7], tch::kind::FLOAT_CPU),
    )];
    tch::Tensor::write_safetensors(&wrong, student.path().join("teacher.safetensors")).unwrap();
    let error = run_train(&train_args(&["--resume", resume, "--epochs", "3"])).unwrap_err();
    let message = format!("{error:#}");
    assert!(message.contains("teacher.safetensors"), "{message}");
    assert!(message.contains("[3, 7]"), "{message}");

    let bad_weight = tempfile::tempdir().unwrap();
    let error = run_train(&quick_run(
        bad_weight.path(),
        &["--teacher", teacher, "--distill-weight", "1.5"],
    ))
    .unwrap_err();
    assert!(
        format!("{error:#}").contains("--distill-weight"),
        "{error:#}"
    );
}

#[test]
fn checkpoint_round_trip_gives_identical_outputs() {
    let _guard = lock_torch_random();
    let folder = tempfile::tempdir().unwrap();
    let path = write_model(folder.path(), "model", "moodnet", &Emotion::ALL);
    let faces = public_test_faces("happy", 6);
    let first = Classifier::load(&path, Device::Cpu).unwrap();
    let before = first.classify(&faces).unwrap();

    // Save the loaded weights under another name and load them again.
    model::save_weights(first.var_store(), &folder.path().join("copy.safetensors")).unwrap();
    let mut description = first.description().clone();
    description.weights = "copy.safetensors".to_owned();
    let copy_path = folder.path().join("copy.json");
    description.write(&copy_path).unwrap();
    let second = Classifier::load(&copy_path, Device::Cpu).unwrap();
    assert_eq!(second.classify(&faces).unwrap(), before);

    // The weights are read as safetensors whatever their file is called.
    std::fs::rename(
        folder.path().join("copy.safetensors"),
        folder.path().join("copy.bin"),
    )
    .unwrap();
    description.weights = "copy.bin".to_owned();
    description.write(&copy_path).unwrap();
    let renamed = Classifier::load(&copy_path, Device::Cpu).unwrap();
    assert_eq!(renamed.classify(&faces).unwrap(), before);
    assert_eq!(
        Classifier::load(&path, Device::Cpu)
            .unwrap()
            .classify(&faces)
            .unwrap(),
        before
    );
}

#[test]
fn eval_matrix_sums_to_image_count() {
    let _guard = lock_torch_random();
    let folder = tempfile::tempdir().unwrap();
    let model = write_model(folder.path(), "model", "moodnet-w8", &Emotion::ALL);
    let report = folder.path().join("report.json");
    let heatmap = folder.path().join("heatmap.png");
    let sample = data_path("fer2013-sample.csv");
    let words = [
        "eval",
        model.to_str().unwrap(),
        "--data",
        sample.to_str().unwrap(),
        "--split",
        "PublicTest",
        "--tta",
        "--report",
        report.to_str().unwrap(),
        "--heatmap",
        heatmap.to_str().unwrap(),
        "--record",
    ];
    // A field added by hand, and a measurement on other data, survive --record.
    let mut text: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&model).unwrap()).unwrap();
    text["notes"] = "kept".into();
    text["evaluations"] = serde_json::json!([{"data": "other.csv", "split": "PublicTest",
        "tta": "mirror", "images": 12, "accuracy": 0.5, "macro_f1": 0.4, "command": "by hand"}]);
    std::fs::write(&model, text.to_string()).unwrap();
    run_eval(&EvalCli::try_parse_from(words).unwrap().args).unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(report["images"], 105);
    let counts = report["confusion_matrix"]["counts"].as_array().unwrap();
    let total: u64 = counts
        .iter()
        .flat_map(|row| row.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 105);
    assert!(heatmap.is_file());
    let mut recorded = ModelDescription::read(&model).unwrap();
    assert_eq!(recorded.extra["notes"], "kept");
    assert_eq!(recorded.evaluations.len(), 2);
    assert_eq!(recorded.evaluations[0].data, "other.csv");
    assert_eq!(recorded.evaluations[1].tta, Tta::Mirror);
    recorded.evaluations.remove(0);
    recorded.write(&model).unwrap();

    // Crops are recorded beside mirror averaging; a second mirror run replaces the first.
    for tta in ["--tta=crops", "--tta=mirror"] {
        let mut words = words.to_vec();
        words[6] = tta;
        run_eval(&EvalCli::try_parse_from(words).unwrap().args).unwrap();
    }
    let recorded = ModelDescription::read(&model).unwrap();
    let modes: Vec<Tta> = recorded
        .evaluations
        .iter()
        .map(|record| record.tta)
        .collect();
    assert_eq!(modes, [Tta::Crops, Tta::Mirror]);
    assert!(recorded.evaluations[0].command.ends_with("--tta=crops"));
    assert_eq!(recorded.evaluations[0].images, 105);

    // Output paths are checked before the evaluation, and never overwrite the model or data.
    let weights = folder.path().join("model.safetensors");
    let missing = folder.path().join("no/report.json");
    let data = folder.path().join("data.csv");
    std::fs::copy(&sample, &data).unwrap();
    for (path, expected) in [
        (missing.as_path(), "its folder does not exist"),
        (weights.as_path(), "would overwrite the model"),
        (data.as_path(), "would overwrite the model or the data"),
    ] {
        let mut words = words.to_vec();
        words[3] = data.to_str().unwrap();
        words[8] = path.to_str().unwrap();
        let error = run_eval(&EvalCli::try_parse_from(words).unwrap().args).unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains("--report"), "{message}");
        assert!(message.contains(expected), "{message}");
    }
}

#[test]
fn eval_on_folder_keeps_model_classes() {
    let _guard = lock_torch_random();
    let folder = tempfile::tempdir().unwrap();
    let classes = [Emotion::Happy, Emotion::Sad, Emotion::Neutral];
    let model = write_model(folder.path(), "three", "moodnet-w8", &classes);
    let classifier = Classifier::load(&model, Device::Cpu).unwrap();
    let public = dataset::load_split(&data_root(), "PublicTest")
        .unwrap()
        .select_classes(&classes);
    let evaluation = evaluate_classifier(&classifier, &public, Tta::Off).unwrap();
    assert_eq!(evaluation.matrix.total(), 895 + 653 + 607);
}

#[test]
#[allow(
    clippy::identity_op,
    reason = "the factors spell out each layer's shape"
)]
fn reference_parameter_count_by_hand() {
    let _guard = lock_torch_random();
    // Per layer: kernel height * width * inputs * outputs + one bias per output.
    let convolutions = (5 * 5 * 1 * 64 + 64) // conv1: 1,664
        + (5 * 5 * 64 * 64 + 64) // conv2: 102,464
        + (3 * 3 * 64 * 128 + 128) // conv3: 73,856
        + (3 * 3 * 128 * 128 + 128) // conv4: 147,584
        + (3 * 3 * 128 * 256 + 256) // conv5: 295,168
        + (3 * 3 * 256 * 256 + 256); // conv6: 590,080

    // Batch norm: a scale and a shift per channel, plus two running statistics not trained.
    let norm_channels = 64 + 64 + 128 + 128 + 256 + 256 + 128;
    // After three 2x2 pools, 48x48 becomes 6x6 with 256 channels.
    let dense = (6 * 6 * 256 * 128 + 128) + (128 * 7 + 7); // 1,179,776 + 903
    let trainable = convolutions + 2 * norm_channels + dense;
    assert_eq!(trainable, 2_393_543);

    let vs = VarStore::new(Device::Cpu);
    let _network = Network::new(&vs.root(), Architecture::VggFace, 7);
    let (counted, total) = model::parameter_counts(&vs);
    assert_eq!(counted, trainable);
    assert_eq!(total, trainable + 2 * norm_channels);
}

/// Asserts that loading fails with an error whose message names `file`.
fn assert_load_error(path: &Path, file: &str, check: impl Fn(&ModelError) -> bool) {
    let error = Classifier::load(path, Device::Cpu).unwrap_err();
    assert!(check(&error), "unexpected error: {error:?}");
    assert!(
        error.to_string().contains(file),
        "\"{error}\" does not name {file}"
    );
}

#[test]
fn load_rejects_bad_descriptions() {
    let _guard = lock_torch_random();
    let folder = tempfile::tempdir().unwrap();
    let missing = folder.path().join("absent.json");
    assert_load_error(&missing, "absent.json", |e| {
        matches!(e, ModelError::DescriptionRead { .. })
    });
    let cases = [
        ("empty.json", "", "empty"),
        ("text.json", "weights: none", "not a model description"),
        ("fields.json", "{\"format\": 1}", "not a model description"),
    ];
    for (name, text, reason) in cases {
        let path = folder.path().join(name);
        std::fs::write(&path, text).unwrap();
        assert_load_error(&path, name, |e| {
            matches!(e, ModelError::DescriptionInvalid { .. })
        });
        let message = Classifier::load(&path, Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(message.contains(reason), "{message}");
    }
    let model = write_model(folder.path(), "model", "moodnet-w8", &Emotion::ALL);
    let text = std::fs::read_to_string(&model)
        .unwrap()
        .replace("moodnet-w8", "resnet50");
    let unknown = folder.path().join("unknown.json");
    std::fs::write(&unknown, text).unwrap();
    assert_load_error(&unknown, "unknown.json", |e| {
        matches!(e, ModelError::UnknownArchitecture { .. })
    });
}

#[test]
fn load_rejects_bad_weights() {
    let _guard = lock_torch_random();
    let folder = tempfile::tempdir().unwrap();
    let model = write_model(folder.path(), "model", "moodnet-w8", &Emotion::ALL);
    let weights = folder.path().join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("empty", Vec::new(), "empty"),
        ("truncated", bytes[..bytes.len() / 2].to_vec(), "truncated"),
        (
            "text",
            b"these are not the weights you are looking for".to_vec(),
            "not a safetensors",
        ),
    ];
    for (name, content, reason) in cases {
        std::fs::write(&weights, &content).unwrap();
        let message = Classifier::load(&model, Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(message.contains("model.safetensors"), "{name}: {message}");
        assert!(message.contains(reason), "{name}: {message}");
    }
    std::fs::remove_file(&weights).unwrap();
    assert_load_error(&model, "model.safetensors", |e| {
        matches!(e, ModelError::WeightsMissing { .. })
    });
}

#[test]
fn load_rejects_mismatched_tensors() {
    let _guard = lock_torch_random();
    let folder = tempfile::tempdir().unwrap();
    // Weights of width 8 under a description of width 16.
    let narrow = write_model(folder.path(), "narrow", "moodnet-w8", &Emotion::ALL);
    let text = std::fs::read_to_string(&narrow)
        .unwrap()
        .replace("moodnet-w8", "moodnet");
    std::fs::write(&narrow, text).unwrap();
    assert_load_error(
        &narrow,
        "narrow.safetensors",
        |e| matches!(e, ModelError::TensorShape { expected, got, .. } if expected != got),
    );
    let message = Classifier::load(&narrow, Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(message.contains("moodnet architecture"), "{message}");

    // Three-class weights under a seven-class description.
    let three = write_model(
        folder.path(),
        "three",
        "moodnet-w8",
        &[Emotion::Happy, Emotion::Sad, Emotion::Neutral],
    );
    let seven = ModelDescription {
        classes: Emotion::ALL.to_vec(),
        ..ModelDescription::read(&three).unwrap()
    };
    seven.write(&three).unwrap();
    assert_load_error(&three, "three.safetensors", |e| {
        matches!(
            e,
            ModelError::ClassCountMismatch {
                expected: 7,
                got: 3,
                ..
            }
        )
    });

    // A weights file without one of the architecture's tensors.
    let partial = write_model(folder.path(), "partial", "moodnet-w8", &Emotion::ALL);
    let weights = folder.path().join("partial.safetensors");
    let kept: Vec<(String, tch::Tensor)> = tch::Tensor::read_safetensors(&weights)
        .unwrap()
        .into_iter()
        .filter(|(name, _)| name != "stage2.bn1.running_var")
        .collect();
    tch::Tensor::write_safetensors(&kept, &weights).unwrap();
    assert_load_error(
        &partial,
        "partial.safetensors",
        |e| matches!(e, ModelError::TensorMissing { name, .. } if name == "stage2.bn1.running_var"),
    );
}

#[test]
fn probabilities_sum_to_one() {
    let _guard = lock_torch_random();
    let classifier = Classifier::load(&model::default_model_path(), Device::Cpu).unwrap();
    let mut faces = public_test_faces("sad", 5);
    faces.push(GrayImage::from_pixel(100, 80, image::Luma([128])));
    assert!(classifier.classify(&[]).unwrap().is_empty());
    for scores in classifier
        .classify(&faces)
        .unwrap()
        .into_iter()
        .chain(classifier.classify_with(&faces, Tta::Mirror).unwrap())
        .chain(classifier.classify_with(&faces, Tta::Crops).unwrap())
    {
        assert!((scores.total() - 1.0).abs() < 1e-5, "{scores:?}");
        assert!(
            scores.0.iter().all(|&p| (0.0..=1.0).contains(&p)),
            "{scores:?}"
        );
    }
    let three = Classifier::load(&model::three_class_model_path(), Device::Cpu).unwrap();
    for scores in three.classify(&faces).unwrap() {
        assert!((scores.total() - 1.0).abs() < 1e-5, "{scores:?}");
        for absent in [
            Emotion::Angry,
            Emotion::Disgust,
            Emotion::Fear,
            Emotion::Surprise,
        ] {
            assert_eq!(scores.get(absent), 0.0);
        }
    }
}

#[test]
fn bf16_probabilities_match_f32() {
    let _guard = lock_torch_random();
    let path = model::default_model_path();
    let exact = Classifier::load(&path, Device::Cpu).unwrap();
    let faces: Vec<GrayImage> = ["happy", "sad", "surprise", "neutral"]
        .into_iter()
        .flat_map(|class| public_test_faces(class, 4))
        .collect();
    let expected = exact.classify(&faces).unwrap();
    for precision in [Precision::Bf16, Precision::Bf16Batches] {
        let classifier = Classifier::load_with_precision(&path, Device::Cpu, precision).unwrap();
        // Batches of 16 and of 1 face: under Bf16Batches only the first runs in bfloat16.
        let batched = classifier.classify(&faces).unwrap();
        let single = classifier.classify(&faces[..1]).unwrap();
        for (actual, wanted) in batched
            .iter()
            .chain(&single)
            .zip(expected.iter().chain(&expected[..1]))
        {
            assert!((actual.total() - 1.0).abs() < 1e-5, "{actual:?}");
            for (a, b) in actual.0.iter().zip(wanted.0) {
                assert!(
                    (a - b).abs() < 0.03,
                    "{precision}: {actual:?} against {wanted:?}"
                );
            }
        }
        if precision == Precision::Bf16Batches {
            // One face with its mirror image is a batch of two views, which runs in bfloat16.
            assert_eq!(classifier.precision_for(1, Tta::Mirror), Precision::Bf16);
            let mirrored = classifier.classify_with(&faces[..1], Tta::Mirror).unwrap();
            let mirrored_exact = exact.classify_with(&faces[..1], Tta::Mirror).unwrap();
            assert!(
                (mirrored[0].total() - 1.0).abs() < 1e-5,
                "{:?}",
                mirrored[0]
            );
            for (a, b) in mirrored[0].0.iter().zip(mirrored_exact[0].0) {
                assert!(
                    (a - b).abs() < 0.03,
                    "{mirrored:?} against {mirrored_exact:?}"
                );
            }
            // A single face runs in f32, so it differs only by the order of float operations.
            for (a, b) in single[0].0.iter().zip(expected[0].0) {
                assert!(
                    (a - b).abs() < 1e-5,
                    "{:?} against {:?}",
                    single[0],
                    expected[0]
                );
            }
        }
    }
}

#[test]
fn vggface_runs_in_every_precision() {
    let _guard = lock_torch_random();
    let folder = tempfile::tempdir().unwrap();
    let path = write_model(folder.path(), "reference", "vggface", &Emotion::ALL);
    let faces = public_test_faces("happy", 5);
    let exact = Classifier::load(&path, Device::Cpu)
        .unwrap()
        .classify(&faces)
        .unwrap();
    for precision in [Precision::Bf16, Precision::Bf16Batches] {
        let classifier = Classifier::load_with_precision(&path, Device::Cpu, precision).unwrap();
        let scores = classifier.classify(&faces).unwrap();
        assert_eq!(scores.len(), faces.len());
        for (actual, expected) in scores.iter().zip(&exact) {
            assert!((actual.total() - 1.0).abs() < 1e-5, "{actual:?}");
            for (a, b) in actual.0.iter().zip(expected.0) {
                assert!(
                    (a - b).abs() < 0.05,
                    "{precision}: {actual:?} against {expected:?}"
                );
            }
        }
    }
}

#[test]
fn shipped_model_above_half_on_public_test() {
    let _guard = lock_torch_random();
    let classifier = Classifier::load(&model::default_model_path(), Device::Cpu).unwrap();
    assert_eq!(classifier.description().classes, Emotion::ALL.to_vec());
    let public = dataset::load_split(&data_root(), "PublicTest").unwrap();
    let evaluation = evaluate_classifier(&classifier, &public, Tta::Off).unwrap();
    assert_eq!(evaluation.matrix.total(), 3589);
    let accuracy = evaluation.matrix.accuracy();
    assert!(accuracy > 0.5, "PublicTest accuracy {accuracy}");
}

#[test]
fn shipped_three_class_model_beats_majority() {
    let _guard = lock_torch_random();
    let classifier = Classifier::load(&model::three_class_model_path(), Device::Cpu).unwrap();
    let classes = classifier.description().classes.clone();
    assert_eq!(
        classes,
        vec![Emotion::Happy, Emotion::Sad, Emotion::Neutral]
    );
    let public = dataset::load_split(&data_root(), "PublicTest")
        .unwrap()
        .select_classes(&classes);
    let accuracy = evaluate_classifier(&classifier, &public, Tta::Off)
        .unwrap()
        .matrix
        .accuracy();
    // Always predicting happy, the largest class, scores 895 / 2155 = 0.415.
    assert!(accuracy > 0.6, "PublicTest accuracy {accuracy}");
}

/// Times one 48x48 face through the shipped model at batch 1 with libtorch's default threads
/// (one per core). Run alone: `cargo test --release --test train -- --ignored latency`.
#[test]
#[ignore = "timing measurement: run alone on an otherwise idle machine"]
fn shipped_model_batch1_latency() {
    let _guard = lock_torch_random();
    let classifier = Classifier::load(&model::default_model_path(), Device::Cpu).unwrap();
    let face = public_test_faces("happy", 1);
    for _ in 0..20 {
        classifier.classify(&face).unwrap();
    }
    let mut milliseconds: Vec<f64> = (0..300)
        .map(|_| {
            let started = std::time::Instant::now();
            classifier.classify(&face).unwrap();
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    milliseconds.sort_by(f64::total_cmp);
    let (median, p90) = (milliseconds[150], milliseconds[270]);
    println!(
        "batch-1 latency on {} threads: median {median:.3} ms, 90th percentile {p90:.3} ms",
        tch::get_num_threads()
    );
    assert!(median < 3.0, "median latency {median:.3} ms");
}
