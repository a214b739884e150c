//! Single images: decoding any pixel format the `image` crate reads into upright RGB8.

use std::path::Path;
use std::sync::Arc;

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use super::{CaptureError, Frame, FrameSource};

/// Decodes an image file into upright 8-bit RGB.
///
/// The format comes from the file's content (its extension is only a fallback), EXIF
/// orientation is applied, and every pixel format is converted to RGB8: gray is copied to the
/// three channels, 16-bit samples are scaled to 8 bits, CMYK JPEG is converted by the JPEG
/// decoder, and alpha is dropped without blending.
///
/// # Errors
///
/// Returns [`CaptureError::NotFound`] for a missing file and [`CaptureError::Decode`] naming
/// the path for a folder, an empty, truncated or unknown file.
pub fn load_image(path: &Path) -> Result<RgbImage, CaptureError> {
    let decode_error = |reason: String| CaptureError::Decode {
        path: path.to_path_buf(),
        reason,
    };
    check_image_file(path)?;

    let reader = ImageReader::open(path)
        .map_err(|source| CaptureError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .with_guessed_format()
        .map_err(|error| decode_error(error.to_string()))?;
    if reader.format().is_none() {
        return Err(decode_error(
            "not an image in a known format (jpeg, png, bmp, gif, webp, tiff and others)".into(),
        ));
    }
    let mut decoder = reader.into_decoder().map_err(|error| decode_error(error.to_string()))?;
    // A missing or unreadable EXIF block only means the image is stored upright.
    let orientation = decoder.orientation().ok();
    let mut image =
        DynamicImage::from_decoder(decoder).map_err(|error| decode_error(error.to_string()))?;
    if let Some(orientation) = orientation {
        image.apply_orientation(orientation);
    }
    Ok(image.to_rgb8())
}

/// Rejects a path that does not exist, is a folder or is an empty file, with a clear reason.
fn check_image_file(path: &Path) -> Result<(), CaptureError> {
    let metadata = std::fs::metadata(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => CaptureError::NotFound {
            path: path.to_path_buf(),
        },
        _ => CaptureError::Io {
            path: path.to_path_buf(),
            source,
        },
    })?;
    let reason = if metadata.is_dir() {
        "it is a folder, not an image file"
    } else if metadata.len() == 0 {
        "the file is empty"
    } else {
        return Ok(());
    };
    Err(CaptureError::Decode {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    })
}

/// A source that yields one image once.
pub(crate) struct StillSource {
    frame: Option<Frame>,
    description: String,
}

impl StillSource {
    /// Decodes the image now, so that a bad file fails when the source opens.
    pub(crate) fn open(path: &Path) -> Result<StillSource, CaptureError> {
        let image = load_image(path)?;
        let description = format!(
            "image {} ({}x{})",
            path.display(),
            image.width(),
            image.height()
        );
        let frame = Frame {
            index: 0,
            timestamp: 0.0,
            path: Some(Arc::from(path)),
            image,
        };
        Ok(StillSource {
            frame: Some(frame),
            description,
        })
    }
}

impl FrameSource for StillSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        Ok(self.frame.take())
    }

    fn description(&self) -> String {
        self.description.clone()
    }

    fn is_live(&self) -> bool {
        false
    }

    fn frame_rate(&self) -> Option<f64> {
        None
    }
}
