//! Frame sources: camera, video file or stream, single image and folder of images, behind
//! one trait so that the pipeline does not care where frames come from.
//!
//! This module owns opening inputs and decoding them into upright RGB frames. Face detection,
//! and what happens to frames afterwards, belongs to the pipeline.

mod camera;
mod folder;
mod still;
mod video;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use image::RgbImage;

pub use camera::{check_camera_exists, list_cameras};
pub(crate) use folder::collect_files;
pub use still::load_image;

/// Length of a video file as its container reports it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VideoLength {
    /// Number of frames, stored by the container or else estimated from the duration and rate.
    pub frames: Option<u64>,
    pub seconds: Option<f64>,
    pub frame_rate: Option<f64>,
}

/// Returns the length of a video file, or `None` for a stream URL, a pipe, or a file that
/// ffprobe cannot read (the decoder reports that file's error when it opens it).
pub fn video_length(input: &str) -> Option<VideoLength> {
    if is_read_once(input) {
        return None;
    }
    let info = video::probe(input).ok()?;
    let estimated = match (info.duration, info.frame_rate) {
        (Some(seconds), Some(rate)) => Some((seconds * rate).round() as u64),
        _ => None,
    };
    Some(VideoLength {
        frames: info.frame_count.or(estimated),
        seconds: info.duration,
        frame_rate: info.frame_rate,
    })
}

/// One decoded frame, upright (rotation metadata already applied), in RGB.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Position of the frame in its source, counting from 0.
    pub index: u64,
    /// Source time in seconds: the container's presentation time for video, the capture time
    /// since the camera opened, 0 for a still image.
    pub timestamp: f64,
    /// The file the frame came from, for image and folder sources.
    pub path: Option<Arc<Path>>,
    pub image: RgbImage,
}

/// A source of frames, read one at a time.
///
/// Sources are not `Send`, because a camera handle may not be: open each source inside the
/// thread that reads it.
pub trait FrameSource {
    /// Reads the next frame, or returns `Ok(None)` at the end of input.
    ///
    /// # Errors
    ///
    /// Returns a [`CaptureError`]. When [`CaptureError::is_recoverable`] is true, the next call
    /// goes on with the next item; otherwise the source is finished.
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError>;

    /// Describes the input for people, e.g. `video clip.mp4 (640x360, 23.98 fps)`.
    fn description(&self) -> String;

    /// Returns true for a camera or a live network stream, whose frames arrive in real time. A
    /// recording served over the network (its length is known) is not live.
    fn is_live(&self) -> bool;

    /// Returns the nominal frame rate in frames per second, when the source has one.
    fn frame_rate(&self) -> Option<f64>;
}

/// The kind of input to read frames from, as chosen by [`SourceSpec::from_input`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    /// A camera by its system index (`/dev/video{index}` on Linux).
    Camera { index: u32 },
    /// A video file path or a stream URL, decoded by ffmpeg.
    Video(String),
    /// A single image file.
    Image(PathBuf),
    /// The image files in a folder, in sorted path order.
    Folder { path: PathBuf, recursive: bool },
}

/// File extensions (lower case) that mark an input as an image.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff"];

/// URL schemes that ffmpeg reads as network streams.
const STREAM_SCHEMES: &[&str] = &[
    "rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "rtp", "tcp", "srt", "mms", "hls",
];

impl SourceSpec {
    /// Classifies a command-line input: a stream URL, a folder, an image or a video file.
    ///
    /// A URL with a known stream scheme is a video stream, a folder is a folder source, a path
    /// with an image extension is an image, and any other existing file is a video. `recursive`
    /// only matters for folders.
    ///
    /// # Errors
    ///
    /// Returns [`CaptureError::NotFound`] naming the path when it does not exist, and
    /// [`CaptureError::InvalidInput`] for an empty input.
    pub fn from_input(input: &str, recursive: bool) -> Result<SourceSpec, CaptureError> {
        if input.trim().is_empty() {
            return Err(CaptureError::InvalidInput {
                input: input.to_owned(),
                reason: "the input is empty: pass a file, a folder or a stream URL".to_owned(),
            });
        }
        if is_stream_url(input) {
            return Ok(SourceSpec::Video(input.to_owned()));
        }
        let path = PathBuf::from(input);
        if path.is_dir() {
            return Ok(SourceSpec::Folder { path, recursive });
        }
        if !path.exists() {
            return Err(CaptureError::NotFound { path });
        }
        if has_image_extension(&path) {
            Ok(SourceSpec::Image(path))
        } else {
            Ok(SourceSpec::Video(input.to_owned()))
        }
    }
}

/// Returns true when `input` starts with a network stream scheme such as `rtsp://`.
pub(crate) fn is_stream_url(input: &str) -> bool {
    match input.split_once("://") {
        Some((scheme, _)) => STREAM_SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()),
        None => false,
    }
}

/// Largest frame, as 8-bit RGB, that a source accepts: 512 MiB, the image crate's default
/// allocation limit, or about 179 million pixels. A small file can claim a far larger size.
pub(crate) const MAX_FRAME_BYTES: u64 = 512 << 20;

/// Returns true when `input` can be read only once: a stream URL, or a pipe, socket or device
/// file. Such an input is not probed with ffprobe first, which would consume it.
pub(crate) fn is_read_once(input: &str) -> bool {
    if is_stream_url(input) {
        return true;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if let Ok(metadata) = std::fs::metadata(input) {
            let kind = metadata.file_type();
            return kind.is_fifo() || kind.is_socket() || kind.is_char_device();
        }
    }
    false
}

/// File extensions (lower case) that mark a file inside a folder input as a video.
pub const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "m4v", "mov", "mkv", "webm", "avi", "mpg", "mpeg", "wmv", "flv", "ts", "3gp",
];

/// Returns true when the file name ends in one of [`IMAGE_EXTENSIONS`], in any letter case.
pub(crate) fn has_image_extension(path: &Path) -> bool {
    has_extension(path, IMAGE_EXTENSIONS)
}

/// Returns true when the file name ends in one of [`VIDEO_EXTENSIONS`], in any letter case.
pub(crate) fn has_video_extension(path: &Path) -> bool {
    has_extension(path, VIDEO_EXTENSIONS)
}

fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| extensions.contains(&extension.to_ascii_lowercase().as_str()))
}

/// Settings for opening a source.
#[derive(Clone, Debug, Default)]
pub struct CaptureOptions {
    /// Requested camera resolution (width, height); the closest offered one is used.
    pub camera_resolution: Option<(u32, u32)>,
    /// Requested camera frame rate in frames per second; the closest offered one is used.
    pub camera_fps: Option<u32>,
    /// Set when the run stops. A video source then ends its ffmpeg, whose output a read may
    /// be waiting for (a pipe without a writer, a stream that went silent).
    pub cancel: Option<Arc<AtomicBool>>,
}

/// Opens the source that `spec` names.
///
/// Image sources decode their file here, so a bad image fails now rather than on the first
/// [`FrameSource::next_frame`] call.
///
/// # Errors
///
/// Returns a [`CaptureError`] when the input is missing, cannot be decoded, has no frames, or
/// when the camera or ffmpeg is unavailable.
pub fn open_source(
    spec: &SourceSpec,
    options: &CaptureOptions,
) -> Result<Box<dyn FrameSource>, CaptureError> {
    Ok(match spec {
        SourceSpec::Camera { index } => Box::new(camera::CameraSource::open(*index, options)?),
        SourceSpec::Video(input) => Box::new(video::VideoSource::open_cancellable(
            input,
            options.cancel.clone(),
        )?),
        SourceSpec::Image(path) => Box::new(still::StillSource::open(path)?),
        SourceSpec::Folder { path, recursive } => {
            Box::new(folder::FolderSource::open(path, *recursive)?)
        }
    })
}

/// A camera that the system reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CameraInfo {
    /// Index to pass as [`SourceSpec::Camera`].
    pub index: u32,
    pub name: String,
    /// Driver or bus details, as the platform reports them.
    pub description: String,
}

impl fmt::Display for CameraInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.index, self.name)?;
        if !self.description.is_empty() {
            write!(f, " ({})", self.description)?;
        }
        Ok(())
    }
}

/// An error from opening or reading a frame source.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("input '{}' not found: check the path", path.display())]
    NotFound { path: PathBuf },

    #[error("invalid input '{input}': {reason}")]
    InvalidInput { input: String, reason: String },

    #[error(
        "no camera available: {reason}; pass a video or image with `--input FILE`, \
         or try the demo with `make demo`"
    )]
    NoCamera { reason: String },

    #[error("camera {index} failed: {reason}")]
    Camera { index: u32, reason: String },

    #[error("camera {index} dropped a frame: {reason}")]
    DroppedFrame { index: u32, reason: String },

    #[error("cannot decode '{}': {reason}", path.display())]
    Decode { path: PathBuf, reason: String },

    #[error("folder '{}' contains no image files ({}): {}", path.display(), extension_list(), recursive_hint(*recursive))]
    NoImages { path: PathBuf, recursive: bool },

    #[error("ffmpeg failed on '{input}': {reason}")]
    Ffmpeg { input: String, reason: String },

    #[error("failed to run '{program}': {source}; install ffmpeg (it provides ffmpeg and ffprobe) and make sure it is on PATH")]
    FfmpegNotFound {
        program: &'static str,
        source: std::io::Error,
    },

    #[error("cannot read '{}': {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl CaptureError {
    /// Returns true when the source can go on after this error.
    ///
    /// That is the case for one undecodable file inside a folder and for one dropped camera
    /// frame: the next [`FrameSource::next_frame`] call continues with the next item. A
    /// pipeline should still give up after many dropped camera frames in a row, because a
    /// disconnected camera drops every frame.
    pub fn is_recoverable(&self) -> bool {
        matches!(
            self,
            CaptureError::Decode { .. } | CaptureError::DroppedFrame { .. }
        )
    }

    /// Returns the file that could not be decoded, for errors about one file of a folder.
    pub fn item_path(&self) -> Option<&Path> {
        match self {
            CaptureError::Decode { path, .. } => Some(path),
            _ => None,
        }
    }
}

fn extension_list() -> String {
    IMAGE_EXTENSIONS.join(", ")
}

fn recursive_hint(recursive: bool) -> &'static str {
    if recursive {
        "add images or pass another folder"
    } else {
        "add images, or search subfolders with `analyze --recursive`"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_input_classifies_stream_urls() {
        for url in [
            "rtsp://127.0.0.1:8554/cam",
            "HTTP://127.0.0.1/live.m3u8",
            "udp://@:1234",
        ] {
            assert_eq!(
                SourceSpec::from_input(url, false).unwrap(),
                SourceSpec::Video(url.to_owned()),
                "{url}"
            );
        }
    }

    #[test]
    fn from_input_classifies_files_and_folders() {
        let folder = tempfile::tempdir().unwrap();
        let image = folder.path().join("face.JPG");
        let video = folder.path().join("clip.mkv");
        let unknown = folder.path().join("recording");
        for path in [&image, &video, &unknown] {
            std::fs::write(path, b"x").unwrap();
        }

        let spec = |path: &Path| SourceSpec::from_input(path.to_str().unwrap(), true).unwrap();
        assert_eq!(spec(&image), SourceSpec::Image(image.clone()));
        assert_eq!(
            spec(&video),
            SourceSpec::Video(video.to_str().unwrap().to_owned())
        );
        assert_eq!(
            spec(&unknown),
            SourceSpec::Video(unknown.to_str().unwrap().to_owned())
        );
        let expected_folder = SourceSpec::Folder {
            path: folder.path().to_path_buf(),
            recursive: true,
        };
        assert_eq!(spec(folder.path()), expected_folder);
    }

    #[test]
    fn from_input_folder_named_like_image() {
        let root = tempfile::tempdir().unwrap();
        let folder = root.path().join("x.jpg");
        std::fs::create_dir(&folder).unwrap();
        let spec = SourceSpec::from_input(folder.to_str().unwrap(), false).unwrap();
        assert_eq!(
            spec,
            SourceSpec::Folder {
                path: folder,
                recursive: false
            }
        );
    }

    #[test]
    fn from_input_names_missing_path() {
        let error = SourceSpec::from_input("no/such/clip.mp4", false).unwrap_err();
        assert!(matches!(error, CaptureError::NotFound { .. }), "{error:?}");
        assert!(error.to_string().contains("'no/such/clip.mp4'"), "{error}");
    }

    #[test]
    fn from_input_rejects_empty_input() {
        let error = SourceSpec::from_input("  ", false).unwrap_err();
        assert!(
            matches!(error, CaptureError::InvalidInput { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn image_extensions_ignore_case() {
        assert!(has_image_extension(Path::new("a/B.TIFF")));
        assert!(has_image_extension(Path::new("photo.WebP")));
        assert!(!has_image_extension(Path::new("clip.mp4")));
        assert!(!has_image_extension(Path::new("jpg")));
    }

    #[test]
    fn only_decode_and_dropped_frame_errors_are_recoverable() {
        let decode = CaptureError::Decode {
            path: PathBuf::from("a.png"),
            reason: "the file is empty".into(),
        };
        let missing = CaptureError::NotFound {
            path: PathBuf::from("a.png"),
        };
        assert!(decode.is_recoverable());
        assert!(!missing.is_recoverable());
    }

    #[test]
    fn camera_info_display_names_index_and_device() {
        let info = CameraInfo {
            index: 2,
            name: "USB Camera".into(),
            description: "uvcvideo".into(),
        };
        assert_eq!(info.to_string(), "2: USB Camera (uvcvideo)");
    }
}
