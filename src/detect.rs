//! Face detection with rustface (SeetaFace), the only module that touches rustface.
//!
//! This module owns loading the detector model, checking detector settings before rustface's
//! panicking setters see them, running detection on a reduced gray copy of each frame, and
//! cropping faces for the classifier. Tracking boxes across frames belongs to `track`.

mod crop;
mod model;

use std::path::{Path, PathBuf};

use image::imageops::{self, FilterType};
use image::{GrayImage, RgbImage};

pub use crop::{crop_face, luma_601, luma_value};

/// One detected face in frame pixel coordinates, clamped to the frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaceBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    /// Detector confidence; higher is more certain. Tracked boxes keep the last detection's.
    pub score: f64,
}

/// Side of rustface's detection window in pixels: the smallest face it finds in the image it is
/// given, because its image pyramid never enlarges the image.
pub const DETECTOR_WINDOW: u32 = 40;

/// Settings of the face detector.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectorSettings {
    /// Smallest face to report, in frame pixels (at least 20).
    ///
    /// rustface 0.1.7 stores but ignores its own minimum face size, so the detector applies it
    /// here: it shrinks the frame so that such a face fills the 40-pixel detection window, which
    /// also makes detection faster, and drops smaller boxes.
    pub min_face_size: u32,
    /// Minimum detector score for a face (greater than 0); rustface's own default is 2.0.
    pub score_threshold: f64,
    /// Scale between image pyramid levels, in [0.01, 0.99]; higher finds more sizes, slower.
    pub pyramid_scale_factor: f32,
    /// Step of the sliding window in pixels, 1 to 40; higher is faster but may miss faces.
    pub slide_window_step: u32,
    /// Maximum width of the image detection runs on; wider frames are shrunk to it first. 0
    /// keeps full resolution. It takes precedence over `min_face_size` when both shrink.
    pub detect_width: u32,
}

/// The defaults come from `detector_settings_sweep` in `tests/capture_detect.rs`. On the demo
/// clip (640x360) every sampled frame has a face at all widths from 160 px up, and a 320 px
/// detection width took about 35-43 ms per frame against 77-89 ms at full width (estimates on
/// a shared 2-core machine). 320 px still finds all five faces of `multi_face.jpg`, which are
/// 90-120 px wide in a 1000 px photo, while 240 px finds three and 200 px none. So the
/// smallest face found is about a tenth of the frame width.
impl Default for DetectorSettings {
    fn default() -> Self {
        DetectorSettings {
            min_face_size: 40,
            score_threshold: 2.0,
            pyramid_scale_factor: 0.8,
            slide_window_step: 4,
            detect_width: 320,
        }
    }
}

impl DetectorSettings {
    /// Checks every value against the range rustface accepts without panicking.
    ///
    /// # Errors
    ///
    /// Returns [`DetectError::InvalidSetting`] naming the first bad setting, its value and the
    /// valid range.
    pub fn validate(&self) -> Result<(), DetectError> {
        let invalid = |setting: &'static str, value: String, valid: &'static str| {
            Err(DetectError::InvalidSetting {
                setting,
                value,
                valid,
            })
        };
        if self.min_face_size < 20 {
            return invalid(
                "min_face_size",
                self.min_face_size.to_string(),
                "20 or more pixels",
            );
        }
        if !(self.score_threshold.is_finite() && self.score_threshold > 0.0) {
            return invalid(
                "score_threshold",
                self.score_threshold.to_string(),
                "a finite number greater than 0",
            );
        }
        if !(0.01..=0.99).contains(&self.pyramid_scale_factor) {
            return invalid(
                "pyramid_scale_factor",
                self.pyramid_scale_factor.to_string(),
                "0.01 to 0.99",
            );
        }
        if !(1..=DETECTOR_WINDOW).contains(&self.slide_window_step) {
            return invalid(
                "slide_window_step",
                self.slide_window_step.to_string(),
                "1 to 40 pixels",
            );
        }
        if self.detect_width != 0 && self.detect_width <= DETECTOR_WINDOW {
            return invalid(
                "detect_width",
                self.detect_width.to_string(),
                "0 (full width) or 41 or more pixels",
            );
        }
        Ok(())
    }
}

/// An error from loading the detector or from its settings.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("invalid detector setting {setting} '{value}': expected {valid}")]
    InvalidSetting {
        setting: &'static str,
        value: String,
        valid: &'static str,
    },

    #[error("face detector model '{}' not found: run scripts/setup.sh or set MOODSCOPE_MODELS", path.display())]
    ModelNotFound { path: PathBuf },

    #[error("cannot read face detector model '{}': {source}", path.display())]
    ModelIo {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("invalid face detector model '{}': {reason}; restore seeta_fd_frontal_v1.0.bin from the rustface 0.1.7 package", path.display())]
    InvalidModel { path: PathBuf, reason: String },
}

/// Returns the path of the shipped SeetaFace frontal face model.
pub fn default_detector_model() -> PathBuf {
    crate::assets::models_dir().join("seeta_fd_frontal_v1.0.bin")
}

/// A rustface detector with checked settings.
///
/// It is not `Send`: build it inside the thread that uses it.
pub struct FaceDetector {
    detector: Box<dyn rustface::Detector>,
    settings: DetectorSettings,
}

impl FaceDetector {
    /// Loads the model at `model_path` and applies `settings`.
    ///
    /// # Errors
    ///
    /// Returns [`DetectError::InvalidSetting`] for bad settings and a model error naming the
    /// file when it is missing, unreadable or not a SeetaFace detection model.
    pub fn new(model_path: &Path, settings: &DetectorSettings) -> Result<Self, DetectError> {
        settings.validate()?;
        let mut detector = model::load_detector(model_path)?;
        detector.set_min_face_size(settings.min_face_size);
        detector.set_score_thresh(settings.score_threshold);
        detector.set_pyramid_scale_factor(settings.pyramid_scale_factor);
        detector.set_slide_window_step(settings.slide_window_step, settings.slide_window_step);
        Ok(FaceDetector {
            detector,
            settings: settings.clone(),
        })
    }

    /// Returns the settings the detector runs with.
    pub fn settings(&self) -> &DetectorSettings {
        &self.settings
    }

    /// Finds the faces in `image`.
    ///
    /// Returns boxes in the input image's coordinates, clamped to the image, at least 1x1 and
    /// sorted left to right (then top to bottom).
    pub fn detect(&mut self, image: &RgbImage) -> Vec<FaceBox> {
        let scale = self.detection_scale(image.width());
        let mut faces: Vec<FaceBox> = self
            .run_detector(image, scale)
            .into_iter()
            .filter(|face| face.width.max(face.height) >= self.settings.min_face_size)
            .collect();
        faces.sort_by_key(|face| (face.x, face.y));
        faces
    }

    /// Runs rustface on a gray copy of `image` shrunk by `scale` and returns the boxes in
    /// `image`'s coordinates, clamped to it; empty when the shrunk image is not larger than the
    /// detection window.
    fn run_detector(&mut self, image: &RgbImage, scale: f64) -> Vec<FaceBox> {
        let gray = detection_image(image, scale);
        // rustface needs an image larger than its window on both sides.
        if gray.width() <= DETECTOR_WINDOW || gray.height() <= DETECTOR_WINDOW {
            return Vec::new();
        }
        // Capping the face size below the short side keeps rustface's smallest pyramid level
        // larger than its window: at exactly the window size, rounding can make a level one
        // pixel too small, and rustface then underflows computing window positions.
        self.detector
            .set_max_face_size(gray.width().min(gray.height()) - 1);
        let data = rustface::ImageData::new(gray.as_raw(), gray.width(), gray.height());
        self.detector
            .detect(&data)
            .iter()
            .filter_map(|face| frame_box(face, scale, image.width(), image.height()))
            .collect()
    }

    /// Returns the factor from frame to detection image, at most 1.
    fn detection_scale(&self, frame_width: u32) -> f64 {
        let mut scale = 1.0_f64;
        // A face of `min_face_size` pixels still fills the detection window after shrinking.
        scale = scale.min(f64::from(DETECTOR_WINDOW) / f64::from(self.settings.min_face_size));
        if self.settings.detect_width != 0 && frame_width > self.settings.detect_width {
            scale = scale.min(f64::from(self.settings.detect_width) / f64::from(frame_width));
        }
        scale
    }
}

/// Converts `image` to gray (ITU-R BT.601 luma) and shrinks it by `scale`.
fn detection_image(image: &RgbImage, scale: f64) -> GrayImage {
    let gray = luma_601(image);
    if scale >= 1.0 {
        return gray;
    }
    let width = ((f64::from(image.width()) * scale).round() as u32).max(1);
    let height = ((f64::from(image.height()) * scale).round() as u32).max(1);
    imageops::resize(&gray, width, height, FilterType::Triangle)
}

/// Maps a rustface box from the detection image back to the frame, clamped to it.
///
/// Returns `None` for a box that lies entirely outside the frame.
fn frame_box(face: &rustface::FaceInfo, scale: f64, width: u32, height: u32) -> Option<FaceBox> {
    let bbox = face.bbox();
    let left = f64::from(bbox.x()) / scale;
    let top = f64::from(bbox.y()) / scale;
    let right = left + f64::from(bbox.width()) / scale;
    let bottom = top + f64::from(bbox.height()) / scale;
    clamp_box(left, top, right, bottom, width, height).map(|(x, y, w, h)| FaceBox {
        x,
        y,
        width: w,
        height: h,
        score: face.score(),
    })
}

/// Clamps the edges of a box to a `width` x `height` frame and returns (x, y, width, height),
/// with the size at least 1x1; `None` when the box does not overlap the frame.
fn clamp_box(
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
    width: u32,
    height: u32,
) -> Option<(u32, u32, u32, u32)> {
    if right <= 0.0 || bottom <= 0.0 || left >= f64::from(width) || top >= f64::from(height) {
        return None;
    }
    let x = left.round().clamp(0.0, f64::from(width - 1)) as u32;
    let y = top.round().clamp(0.0, f64::from(height - 1)) as u32;
    let right = (right.round() as u32).clamp(x + 1, width);
    let bottom = (bottom.round() as u32).clamp(y + 1, height);
    Some((x, y, right - x, bottom - y))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings_with(change: impl FnOnce(&mut DetectorSettings)) -> DetectorSettings {
        let mut settings = DetectorSettings::default();
        change(&mut settings);
        settings
    }

    #[test]
    fn default_settings_are_valid() {
        DetectorSettings::default().validate().unwrap();
    }

    #[test]
    fn bad_settings_name_setting_and_range() {
        let cases: [(DetectorSettings, &str); 9] = [
            (
                settings_with(|s| s.min_face_size = 19),
                "min_face_size '19'",
            ),
            (
                settings_with(|s| s.score_threshold = 0.0),
                "score_threshold '0'",
            ),
            (
                settings_with(|s| s.score_threshold = f64::NAN),
                "score_threshold 'NaN'",
            ),
            (
                settings_with(|s| s.pyramid_scale_factor = 1.0),
                "pyramid_scale_factor '1'",
            ),
            (
                settings_with(|s| s.pyramid_scale_factor = 0.0),
                "pyramid_scale_factor '0'",
            ),
            (
                settings_with(|s| s.pyramid_scale_factor = f32::NAN),
                "pyramid_scale_factor 'NaN'",
            ),
            (
                settings_with(|s| s.slide_window_step = 0),
                "slide_window_step '0'",
            ),
            (
                settings_with(|s| s.slide_window_step = 41),
                "slide_window_step '41'",
            ),
            (settings_with(|s| s.detect_width = 40), "detect_width '40'"),
        ];
        for (settings, expected) in cases {
            let message = settings.validate().unwrap_err().to_string();
            assert!(message.contains(expected), "{message}");
            assert!(message.contains("expected"), "{message}");
        }
    }

    #[test]
    fn new_rejects_bad_settings_before_loading() {
        let settings = settings_with(|s| s.slide_window_step = 0);
        let Err(error) = FaceDetector::new(Path::new("no/such/model.bin"), &settings) else {
            panic!("a detector was built with a zero step");
        };
        assert!(
            matches!(error, DetectError::InvalidSetting { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn clamp_box_keeps_boxes_inside() {
        // Partly outside on the left and top.
        assert_eq!(
            clamp_box(-10.0, -5.0, 30.0, 25.0, 100, 50),
            Some((0, 0, 30, 25))
        );
        // Partly outside on the right and bottom.
        assert_eq!(
            clamp_box(80.0, 40.0, 130.0, 90.0, 100, 50),
            Some((80, 40, 20, 10))
        );
        // Degenerate boxes grow to 1x1, even at the last pixel.
        assert_eq!(
            clamp_box(10.0, 10.0, 10.0, 10.0, 100, 50),
            Some((10, 10, 1, 1))
        );
        assert_eq!(
            clamp_box(99.6, 49.6, 99.7, 49.7, 100, 50),
            Some((99, 49, 1, 1))
        );
        // Entirely outside.
        assert_eq!(clamp_box(-30.0, 0.0, -1.0, 10.0, 100, 50), None);
        assert_eq!(clamp_box(0.0, 50.0, 10.0, 60.0, 100, 50), None);
    }

    #[test]
    fn detection_scale_follows_width_and_min_face() {
        let detector = |settings: DetectorSettings| {
            FaceDetector::new(&default_detector_model(), &settings).unwrap()
        };
        let default = detector(DetectorSettings::default());
        assert_eq!(default.detection_scale(640), 0.5);
        assert_eq!(default.detection_scale(320), 1.0);
        let large_faces = detector(settings_with(|s| {
            s.min_face_size = 80;
            s.detect_width = 0;
        }));
        assert_eq!(large_faces.detection_scale(640), 0.5);
        assert_eq!(large_faces.detection_scale(100), 0.5);
    }

    #[test]
    fn tiny_and_blank_frames_have_no_faces() {
        let mut detector =
            FaceDetector::new(&default_detector_model(), &DetectorSettings::default()).unwrap();
        for (width, height) in [(1, 1), (40, 40), (41, 41), (320, 41), (41, 240)] {
            let image = RgbImage::from_pixel(width, height, image::Rgb([90, 90, 90]));
            assert!(detector.detect(&image).is_empty(), "{width}x{height}");
        }
    }
}
