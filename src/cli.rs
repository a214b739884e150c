//! Command-line arguments, and their conversion into checked settings.
//!
//! Ranges are checked here, once, before anything starts: rustface panics on some bad values,
//! and a run should not fail minutes in because of a typo.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Parser, Subcommand};

use crate::capture::{CaptureOptions, SourceSpec};
use crate::detect::{DetectError, DetectorSettings};
use crate::model::{
    resolve_device, resolve_precision, DeviceRequest, ModelError, Precision, PrecisionRequest, Tta,
};
use crate::record::RowFormat;
use crate::track::TrackerSettings;

/// Real-time facial emotion monitor for the terminal.
///
/// Without a subcommand, shows a live dashboard of the faces in a camera or a video file and the
/// probabilities of seven emotions (angry, disgust, fear, happy, sad, surprise, neutral).
///
/// Exit codes: 0 success, 1 the run could not go on, 2 invalid arguments, 3 some inputs could
/// not be read.
#[derive(Debug, Parser)]
#[command(name = "moodscope", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub monitor: MonitorArgs,
    #[command(flatten)]
    pub logging: LogArgs,
}

/// Subcommands besides the live monitor.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Analyse videos, images and folders without the dashboard, writing one row per face.
    Analyze(AnalyzeArgs),
    /// Measure per-stage latency and end-to-end frames per second on the demo clip.
    Bench(crate::bench::BenchArgs),
    /// Train an emotion network on FER-2013.
    Train(Box<crate::train::TrainArgs>),
    /// Measure a trained network's accuracy on a labelled data set.
    Eval(crate::train::EvalArgs),
}

/// Options of the live monitor (the default command).
#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// Video file, stream URL, image or folder of images to read instead of the camera.
    #[arg(short, long, value_name = "PATH|URL", conflicts_with = "demo")]
    pub input: Option<String>,
    /// Play the demo clip unpacked by scripts/setup.sh (a face going from crying to laughing).
    #[arg(long)]
    pub demo: bool,
    /// Camera to open when no input is given, by system index (/dev/videoN).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub camera: u32,
    /// List the cameras found and exit.
    #[arg(long)]
    pub list_cameras: bool,
    /// Camera resolution to request, e.g. 1280x720; the closest offered one is used otherwise.
    #[arg(long, value_name = "WIDTHxHEIGHT", value_parser = parse_resolution)]
    pub resolution: Option<(u32, u32)>,
    /// Camera frame rate to request, in frames per second.
    #[arg(long, value_name = "FPS")]
    pub camera_fps: Option<u32>,
    /// Run without the dashboard: only the CSV, the summary and a text summary at the end.
    #[arg(long)]
    pub headless: bool,
    /// Start the input over when it ends.
    #[arg(long = "loop")]
    pub looping: bool,
    /// Write one row per face per processed frame to this CSV file.
    #[arg(long, value_name = "PATH")]
    pub csv: Option<PathBuf>,
    /// Write the run's summary (frames, faces, per-class means and dominant shares) as CSV.
    #[arg(long, value_name = "PATH")]
    pub summary: Option<PathBuf>,
    /// Seconds of emotion history shown on the dashboard.
    #[arg(long, value_name = "SECONDS", default_value_t = 20.0)]
    pub history: f64,
    /// Process every frame of a file as fast as possible instead of at the file's own speed
    /// (the default with --headless).
    #[arg(long)]
    pub no_real_time: bool,
    #[command(flatten)]
    pub inference: InferenceArgs,
    #[command(flatten)]
    pub detection: DetectionArgs,
}

/// Options that choose the network and where it runs.
#[derive(Debug, Args)]
pub struct InferenceArgs {
    /// Emotion model: the JSON description written by `moodscope train`, weights beside it.
    /// Defaults to the seven-class model in the models folder.
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// Run the network on the first CUDA GPU; fails when none is available.
    #[arg(long, conflicts_with = "device")]
    pub cuda: bool,
    /// Device for the network: cpu, cuda or cuda:N.
    #[arg(long, value_name = "DEVICE", default_value = "cpu")]
    pub device: DeviceRequest,
    /// Threads libtorch may use for one forward pass. Decoding and detection run on threads
    /// of their own, so more than one rarely helps on a small machine.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub threads: u32,
    /// Number format of the network: auto (bf16 for batches of two or more views, such as one
    /// face with mirror TTA, on a CPU with AVX-512 bfloat16 instructions, and f32 otherwise),
    /// f32 or bf16.
    #[arg(long, value_enum, default_value = "auto")]
    pub precision: PrecisionRequest,
    #[command(flatten)]
    pub averaging: TtaOption,
    /// Weight of the newest frame in the smoothing of each face's probabilities, in (0, 1];
    /// 1 turns smoothing off.
    #[arg(long, value_name = "WEIGHT", default_value_t = TrackerSettings::default().smoothing)]
    pub smoothing: f32,
}

/// Test-time augmentation, for the commands that classify faces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Args)]
pub struct TtaOption {
    /// Average each face's probabilities over several views of it. `mirror` (the default)
    /// adds the mirror image, for twice the classifier's work, and `off` classifies the face
    /// alone. `crops` uses 14 mirrored, shifted and zoomed views, for 14 times the work. On
    /// FER-2013 PublicTest the shipped seven-class model scores 69.6% alone, 70.7% with mirror
    /// and 70.7% with crops.
    #[arg(
        long,
        value_enum,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "mirror",
        default_value = "mirror"
    )]
    pub tta: Tta,
}

/// Face detector options.
#[derive(Debug, Args)]
pub struct DetectionArgs {
    /// Smallest face to find, in pixels of the frame (at least 20) [default: 40].
    #[arg(long, value_name = "PIXELS")]
    pub min_face: Option<u32>,
    /// Detector score a face must reach; higher finds fewer, surer faces [default: 2.0].
    #[arg(long, value_name = "SCORE")]
    pub score_threshold: Option<f64>,
    /// Factor between the detector's image pyramid levels, in (0, 1); closer to 1 is slower
    /// and finds more sizes [default: 0.8].
    #[arg(long, value_name = "FACTOR")]
    pub pyramid_scale: Option<f32>,
    /// Step of the detector's sliding window, in pixels [default: 4].
    #[arg(long, value_name = "PIXELS")]
    pub slide_step: Option<u32>,
    /// Width the frame is shrunk to before detection, 0 for the full resolution [default: 320].
    #[arg(long, value_name = "PIXELS")]
    pub detect_width: Option<u32>,
    /// Run the detector on every Nth video frame and follow the faces by their appearance in
    /// between. A frame without a face, or with a face that cannot be followed, gets a
    /// detection. Defaults to 5 for the live monitor, where speed matters most, and 1 for
    /// `analyze`.
    #[arg(long, value_name = "N")]
    pub detect_every: Option<u32>,
}

/// Options of `moodscope analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Video files, stream URLs, images and folders, in any mix.
    #[arg(required = true, value_name = "PATH")]
    pub inputs: Vec<String>,
    /// Look for images in subfolders of folder inputs too.
    #[arg(short, long)]
    pub recursive: bool,
    /// Analyse every Nth frame of each video.
    #[arg(long, value_name = "N", conflicts_with = "fps")]
    pub every: Option<u32>,
    /// Analyse at most this many frames per second of video time.
    #[arg(long, value_name = "FPS")]
    pub fps: Option<f64>,
    /// Treat each image as one face that is already cropped, as in FER-2013.
    #[arg(long)]
    pub no_detect: bool,
    /// Format of the rows.
    #[arg(long, value_enum, default_value_t = RowFormat::Csv)]
    pub format: RowFormat,
    /// File for the rows; without it they go to standard output.
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Write the per-source and overall summary as CSV.
    #[arg(long, value_name = "PATH")]
    pub summary: Option<PathBuf>,
    /// Save each analysed frame as a PNG with its faces boxed and labelled in this folder:
    /// one PNG per image, and a subfolder of numbered frames per video.
    #[arg(long, value_name = "DIR")]
    pub annotate: Option<PathBuf>,
    #[command(flatten)]
    pub inference: InferenceArgs,
    #[command(flatten)]
    pub detection: DetectionArgs,
}

/// Logging options, for every command.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log decisions and timings (level debug); RUST_LOG overrides the filter.
    #[arg(long, global = true)]
    pub debug: bool,
    /// File for the log. The dashboard never logs to the terminal, so without this option its
    /// log goes to moodscope.log in the system's temporary folder.
    #[arg(long, value_name = "PATH", global = true)]
    pub log_file: Option<PathBuf>,
}

/// Error for an option value out of its range, found after parsing; exits with code 2 like
/// the errors clap reports itself.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Returns a [`UsageError`] as an `anyhow` error, for `return Err(...)`.
macro_rules! usage {
    ($($message:tt)*) => {
        anyhow::Error::new($crate::cli::UsageError(format!($($message)*)))
    };
}
pub(crate) use usage;

/// Returns the corrected spelling when the arguments write `--tta VALUE` with a space.
///
/// `--tta` alone means mirror averaging, so clap reads the next word as an input file (or a
/// subcommand) and its message does not say what went wrong. The value needs `=`.
pub fn tta_value_spelling(args: &[String]) -> Option<String> {
    args.windows(2).find_map(|pair| {
        let is_value = ["off", "mirror", "crops"].contains(&pair[1].as_str());
        (pair[0] == "--tta" && is_value).then(|| format!("--tta={}", pair[1]))
    })
}

fn parse_resolution(text: &str) -> Result<(u32, u32), String> {
    let invalid = || format!("invalid resolution \"{text}\": expected WIDTHxHEIGHT, e.g. 1280x720");
    let (width, height) = text.split_once(['x', 'X']).ok_or_else(invalid)?;
    let width: u32 = width.trim().parse().map_err(|_| invalid())?;
    let height: u32 = height.trim().parse().map_err(|_| invalid())?;
    if width == 0 || height == 0 {
        return Err(invalid());
    }
    Ok((width, height))
}

impl MonitorArgs {
    /// Returns the source to read: the input, the demo clip or the camera.
    ///
    /// # Errors
    ///
    /// Fails when the input does not exist, or when the demo clip has not been unpacked.
    pub fn source(&self) -> anyhow::Result<SourceSpec> {
        if self.demo {
            let clip = crate::assets::demo_clip();
            if !clip.is_file() {
                bail!(
                    "demo clip \"{}\" not found: run scripts/setup.sh to unpack it",
                    clip.display()
                );
            }
            return Ok(SourceSpec::Video(clip.display().to_string()));
        }
        match &self.input {
            Some(input) => Ok(SourceSpec::from_input(input, false)?),
            None => Ok(SourceSpec::Camera { index: self.camera }),
        }
    }

    pub fn capture_options(&self) -> CaptureOptions {
        CaptureOptions {
            camera_resolution: self.resolution,
            camera_fps: self.camera_fps,
            cancel: None,
        }
    }

    /// Checks the options that clap cannot check by itself.
    ///
    /// # Errors
    ///
    /// Names the first option out of range.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(self.history.is_finite() && self.history > 0.0) {
            return Err(usage!(
                "invalid --history \"{}\": expected a number of seconds above 0",
                self.history
            ));
        }
        self.inference.validate()?;
        self.detection.settings()?;
        Ok(())
    }
}

impl InferenceArgs {
    /// Resolves the device and the number format the network runs with.
    ///
    /// # Errors
    ///
    /// [`ModelError::CudaUnavailable`] when CUDA is requested but absent.
    pub fn resolve(&self) -> Result<(tch::Device, Precision), ModelError> {
        let device = resolve_device(self.device_request())?;
        Ok((device, resolve_precision(self.precision, device)))
    }

    /// Returns the device asked for, `--cuda` meaning the first GPU.
    pub fn device_request(&self) -> DeviceRequest {
        if self.cuda {
            DeviceRequest::Cuda(0)
        } else {
            self.device
        }
    }

    pub fn model_path(&self) -> PathBuf {
        self.model
            .clone()
            .unwrap_or_else(crate::model::default_model_path)
    }

    pub fn tracker_settings(&self) -> TrackerSettings {
        TrackerSettings {
            smoothing: self.smoothing,
            ..TrackerSettings::default()
        }
    }

    /// Checks the thread count and the smoothing weight.
    ///
    /// # Errors
    ///
    /// Names the option out of range.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.threads == 0 || self.threads > 256 {
            return Err(usage!(
                "invalid --threads \"{}\": expected 1 to 256",
                self.threads
            ));
        }
        if self.tracker_settings().validate().is_err() {
            return Err(usage!(
                "invalid --smoothing \"{}\": expected a weight in (0, 1], where 1 turns \
                 smoothing off",
                self.smoothing
            ));
        }
        Ok(())
    }
}

impl DetectionArgs {
    /// Returns the detector settings, the defaults overridden by the options given.
    ///
    /// # Errors
    ///
    /// Names the setting out of range and its valid range.
    pub fn settings(&self) -> anyhow::Result<DetectorSettings> {
        let defaults = DetectorSettings::default();
        let settings = DetectorSettings {
            min_face_size: self.min_face.unwrap_or(defaults.min_face_size),
            score_threshold: self.score_threshold.unwrap_or(defaults.score_threshold),
            pyramid_scale_factor: self.pyramid_scale.unwrap_or(defaults.pyramid_scale_factor),
            slide_window_step: self.slide_step.unwrap_or(defaults.slide_window_step),
            detect_width: self.detect_width.unwrap_or(defaults.detect_width),
        };
        if let Err(DetectError::InvalidSetting {
            setting,
            value,
            valid,
        }) = settings.validate()
        {
            let option = match setting {
                "min_face_size" => "--min-face",
                "score_threshold" => "--score-threshold",
                "pyramid_scale_factor" => "--pyramid-scale",
                "slide_window_step" => "--slide-step",
                "detect_width" => "--detect-width",
                other => other,
            };
            return Err(usage!("invalid {option} \"{value}\": expected {valid}"));
        }
        if self.detect_every == Some(0) {
            return Err(usage!("invalid --detect-every \"0\": expected 1 or more"));
        }
        Ok(settings)
    }

    /// Returns how often to run the detector, `default` when `--detect-every` is not given.
    pub fn detect_every_or(&self, default: u32) -> u32 {
        self.detect_every.unwrap_or(default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_parses() {
        assert_eq!(parse_resolution("1280x720"), Ok((1280, 720)));
        assert_eq!(parse_resolution("640X480"), Ok((640, 480)));
        assert!(parse_resolution("1280").is_err());
        assert!(parse_resolution("0x720").is_err());
        assert!(parse_resolution("wide x tall").is_err());
    }

    #[test]
    fn detector_help_matches_defaults() {
        // The detector options' help text states these values.
        let defaults = DetectorSettings::default();
        assert_eq!(defaults.min_face_size, 40);
        assert_eq!(defaults.score_threshold, 2.0);
        assert_eq!(defaults.pyramid_scale_factor, 0.8);
        assert_eq!(defaults.slide_window_step, 4);
        assert_eq!(defaults.detect_width, 320);
    }

    #[test]
    fn tta_value_after_space_is_caught() {
        let args = |line: &str| line.split(' ').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            tta_value_spelling(&args("moodscope analyze photo.jpg --tta off")),
            Some("--tta=off".to_owned())
        );
        assert_eq!(
            tta_value_spelling(&args("moodscope --tta crops --input clip.mp4")),
            Some("--tta=crops".to_owned())
        );
        assert_eq!(
            tta_value_spelling(&args("moodscope analyze --tta photo.jpg")),
            None
        );
        assert_eq!(
            tta_value_spelling(&args("moodscope analyze --tta=off off")),
            None
        );
    }

    #[test]
    fn tta_flag_leaves_next_word_an_input() {
        let parse = |words: &[&str]| {
            let cli = Cli::try_parse_from(words).unwrap();
            let Some(Command::Analyze(args)) = cli.command else {
                panic!("expected analyze");
            };
            (args.inference.averaging.tta, args.inputs)
        };
        let photo = vec!["photo.jpg".to_owned()];
        assert_eq!(
            parse(&["moodscope", "analyze", "photo.jpg"]),
            (Tta::Mirror, photo.clone())
        );
        assert_eq!(
            parse(&["moodscope", "analyze", "--tta=off", "photo.jpg"]),
            (Tta::Off, photo.clone())
        );
        assert_eq!(
            parse(&["moodscope", "analyze", "--tta", "photo.jpg"]),
            (Tta::Mirror, photo.clone())
        );
        assert_eq!(
            parse(&["moodscope", "analyze", "--tta=crops", "photo.jpg"]),
            (Tta::Crops, photo)
        );
        assert!(Cli::try_parse_from(["moodscope", "analyze", "--tta=tilt", "photo.jpg"]).is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
