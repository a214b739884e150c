//! Annotated pictures for `analyze --annotate`: each analysed frame saved as a PNG with its
//! faces boxed and labelled.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::figure::{ensure_font, FONT_FAMILY};
use crate::pipeline::FrameReport;

/// Error drawing or saving an annotated picture.
#[derive(Debug, thiserror::Error)]
pub enum AnnotateError {
    #[error(transparent)]
    Font(#[from] crate::figure::FontError),
    #[error("cannot create the folder \"{path}\": {source}")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot draw on the frame: {0}")]
    Draw(String),
    #[error("cannot save \"{path}\": {source}")]
    Save {
        path: PathBuf,
        source: image::ImageError,
    },
}

/// Returns the file an annotated frame is saved to: one folder per source, named after its
/// file, and one PNG per frame, or the image's own name for image inputs.
pub fn annotated_path(dir: &Path, source: &str, report: &FrameReport) -> PathBuf {
    let stem = |text: &str| {
        Path::new(text)
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_else(|| "input".to_owned())
    };
    match &report.frame.path {
        Some(path) => dir.join(format!("{}.png", stem(&path.to_string_lossy()))),
        None => dir
            .join(stem(source))
            .join(format!("frame_{:06}.png", report.frame.index)),
    }
}

/// Draws the faces of a frame and saves it as PNG under `dir`; returns the file written.
///
/// # Errors
///
/// Fails when the font is missing or the file cannot be written.
pub fn save_annotated(
    dir: &Path,
    source: &str,
    report: &FrameReport,
) -> Result<PathBuf, AnnotateError> {
    ensure_font()?;
    let path = annotated_path(dir, source, report);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| AnnotateError::Folder {
            path: parent.to_owned(),
            source,
        })?;
    }
    let mut picture = report.frame.image.clone();
    draw_faces(&mut picture, report).map_err(|error| AnnotateError::Draw(error.to_string()))?;
    picture.save(&path).map_err(|source| AnnotateError::Save {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

fn draw_faces(
    picture: &mut image::RgbImage,
    report: &FrameReport,
) -> Result<(), Box<dyn std::error::Error>> {
    let (width, height) = picture.dimensions();
    let root = BitMapBackend::with_buffer(picture.as_mut(), (width, height)).into_drawing_area();
    // Thicker lines and larger text on larger pictures, so labels stay readable.
    let stroke = (width.max(height) / 400).max(2);
    let font_size = f64::from((height / 30).max(12));
    let color = RGBColor(255, 210, 0);
    for tracked in &report.faces {
        let face = tracked.face;
        let corners = [
            (face.x as i32, face.y as i32),
            ((face.x + face.width) as i32, (face.y + face.height) as i32),
        ];
        root.draw(&Rectangle::new(corners, color.stroke_width(stroke)))?;
        let label = format!(
            "#{} {} {:.0}%",
            tracked.id,
            tracked.raw.dominant(),
            100.0 * tracked.raw.get(tracked.raw.dominant())
        );
        let text_y = (face.y as i32 - font_size as i32 - 2).max(0);
        let style = (FONT_FAMILY, font_size).into_font().color(&color);
        root.draw(&Text::new(label, (face.x as i32, text_y), style))?;
    }
    root.present()?;
    Ok(())
}
