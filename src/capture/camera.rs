//! Cameras through nokhwa's native backend (Video4Linux on Linux).

use std::time::Instant;

use image::RgbImage;
use nokhwa::pixel_format::{FormatDecoder, RgbFormat};
use nokhwa::utils::{ApiBackend, CameraFormat, CameraIndex, RequestedFormat, RequestedFormatType};
use nokhwa::Camera;

use super::{CameraInfo, CaptureError, CaptureOptions, Frame, FrameSource};

/// Resolution used when none is requested: enough for faces at webcam distance, and offered by
/// nearly every webcam.
const DEFAULT_RESOLUTION: (u32, u32) = (640, 480);
const DEFAULT_FPS: u32 = 30;

/// Lists the cameras that the platform backend reports.
///
/// # Errors
///
/// Returns [`CaptureError::NoCamera`] when the backend cannot list devices.
pub fn list_cameras() -> Result<Vec<CameraInfo>, CaptureError> {
    let cameras = nokhwa::query(ApiBackend::Auto).map_err(|error| CaptureError::NoCamera {
        reason: format!("cannot list cameras ({error})"),
    })?;
    let infos = cameras
        .iter()
        .enumerate()
        .map(|(position, camera)| CameraInfo {
            index: camera.index().as_index().unwrap_or(position as u32),
            name: camera.human_name(),
            description: camera.description().to_owned(),
        })
        .collect();
    Ok(infos)
}

/// An open camera stream.
pub(crate) struct CameraSource {
    index: u32,
    camera: Camera,
    opened_at: Instant,
    frames_read: u64,
}

impl CameraSource {
    /// Opens camera `index` in the offered format closest to the requested one.
    pub(crate) fn open(index: u32, options: &CaptureOptions) -> Result<CameraSource, CaptureError> {
        check_camera_exists(index)?;
        let camera_error = |error: nokhwa::NokhwaError| CaptureError::Camera {
            index,
            reason: error.to_string(),
        };
        let any_format = RequestedFormat::new::<RgbFormat>(RequestedFormatType::None);
        let mut camera =
            Camera::new(CameraIndex::Index(index), any_format).map_err(camera_error)?;

        let chosen = choose_format(&mut camera, index, options)?;
        let exact = RequestedFormat::new::<RgbFormat>(RequestedFormatType::Exact(chosen));
        camera.set_camera_requset(exact).map_err(camera_error)?;
        camera.open_stream().map_err(camera_error)?;
        tracing::info!("camera {index} opened at {}", camera.camera_format());
        Ok(CameraSource {
            index,
            camera,
            opened_at: Instant::now(),
            frames_read: 0,
        })
    }
}

/// Picks the offered format closest to the requested one, and logs when it differs.
fn choose_format(
    camera: &mut Camera,
    index: u32,
    options: &CaptureOptions,
) -> Result<CameraFormat, CaptureError> {
    let resolution = options.camera_resolution.unwrap_or(DEFAULT_RESOLUTION);
    let fps = options.camera_fps.unwrap_or(DEFAULT_FPS);
    let offered = camera
        .compatible_camera_formats()
        .map_err(|error| CaptureError::Camera {
            index,
            reason: error.to_string(),
        })?;
    let Some(chosen) = closest_format(&offered, resolution, fps) else {
        return Err(CaptureError::Camera {
            index,
            reason: "the camera offers no format that can be converted to RGB".into(),
        });
    };
    if (chosen.width(), chosen.height(), chosen.frame_rate()) != (resolution.0, resolution.1, fps) {
        tracing::warn!(
            "camera {index} does not offer {}x{} at {fps} fps; using {}x{} at {} fps ({})",
            resolution.0,
            resolution.1,
            chosen.width(),
            chosen.height(),
            chosen.frame_rate(),
            chosen.format()
        );
    }
    Ok(chosen)
}

/// Fails with a plain explanation when there is no camera `index`.
pub fn check_camera_exists(index: u32) -> Result<(), CaptureError> {
    let cameras = list_cameras()?;
    if cameras.is_empty() {
        return Err(CaptureError::NoCamera {
            reason: "the system reports no camera (no /dev/video* device on Linux)".into(),
        });
    }
    if cameras.iter().any(|camera| camera.index == index) {
        return Ok(());
    }
    let available: Vec<String> = cameras.iter().map(ToString::to_string).collect();
    Err(CaptureError::NoCamera {
        reason: format!(
            "camera '{index}' not found; available: {}",
            available.join(", ")
        ),
    })
}

/// Picks the RGB-convertible format nearest in resolution, then in frame rate.
fn closest_format(
    offered: &[CameraFormat],
    resolution: (u32, u32),
    fps: u32,
) -> Option<CameraFormat> {
    let distance = |format: &CameraFormat| {
        let dx = i64::from(format.width()) - i64::from(resolution.0);
        let dy = i64::from(format.height()) - i64::from(resolution.1);
        let dfps = (i64::from(format.frame_rate()) - i64::from(fps)).abs();
        (dx * dx + dy * dy, dfps)
    };
    offered
        .iter()
        .filter(|format| RgbFormat::FORMATS.contains(&format.format()))
        .min_by_key(|format| distance(format))
        .copied()
}

impl FrameSource for CameraSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        let dropped = |reason: String| CaptureError::DroppedFrame {
            index: self.index,
            reason,
        };
        let buffer = self
            .camera
            .frame()
            .map_err(|error| dropped(error.to_string()))?;
        let timestamp = self.opened_at.elapsed().as_secs_f64();
        // nokhwa decodes into its own `image` version, so the pixels move over as raw bytes.
        let decoded = buffer
            .decode_image::<RgbFormat>()
            .map_err(|error| dropped(error.to_string()))?;
        let (width, height) = (decoded.width(), decoded.height());
        let image = RgbImage::from_raw(width, height, decoded.into_raw()).ok_or_else(|| {
            dropped(format!(
                "the decoded {width}x{height} frame has the wrong size"
            ))
        })?;
        let frame = Frame {
            index: self.frames_read,
            timestamp,
            path: None,
            image,
        };
        self.frames_read += 1;
        Ok(Some(frame))
    }

    fn description(&self) -> String {
        let format = self.camera.camera_format();
        format!(
            "camera {} ({}x{}, {} fps)",
            self.index,
            format.width(),
            format.height(),
            format.frame_rate()
        )
    }

    fn is_live(&self) -> bool {
        true
    }

    fn frame_rate(&self) -> Option<f64> {
        Some(f64::from(self.camera.camera_format().frame_rate()))
    }
}

#[cfg(test)]
mod tests {
    use nokhwa::utils::{FrameFormat, Resolution};

    use super::*;

    fn format(width: u32, height: u32, fps: u32, fourcc: FrameFormat) -> CameraFormat {
        CameraFormat::new(Resolution::new(width, height), fourcc, fps)
    }

    #[test]
    fn closest_format_prefers_resolution_then_fps() {
        let offered = [
            format(1280, 720, 30, FrameFormat::MJPEG),
            format(640, 480, 15, FrameFormat::YUYV),
            format(640, 480, 30, FrameFormat::MJPEG),
            format(320, 240, 30, FrameFormat::MJPEG),
        ];
        assert_eq!(closest_format(&offered, (640, 480), 30), Some(offered[2]));
        assert_eq!(closest_format(&offered, (600, 450), 14), Some(offered[1]));
        assert_eq!(closest_format(&offered, (1920, 1080), 60), Some(offered[0]));
    }

    #[test]
    fn closest_format_is_none_without_formats() {
        assert_eq!(closest_format(&[], (640, 480), 30), None);
    }

    /// This machine may have no camera; opening one must then explain that in plain words.
    #[test]
    fn missing_camera_error_suggests_file_input() {
        let cameras = list_cameras().unwrap_or_default();
        if cameras.iter().any(|camera| camera.index == 0) {
            return;
        }
        let Err(error) = CameraSource::open(0, &CaptureOptions::default()) else {
            panic!("camera 0 opened although the system lists no camera 0");
        };
        let message = error.to_string();
        assert!(matches!(error, CaptureError::NoCamera { .. }), "{error:?}");
        assert!(message.contains("--input FILE"), "{message}");
        assert!(message.contains("make demo"), "{message}");
    }
}
