//! Annotated pictures for `analyze --annotate`: each analysed frame saved as a PNG with its
//! faces boxed and labelled.

use std::collections::{HashMap, HashSet};
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

/// Saves the annotated pictures of one run under one folder.
///
/// Each input gets a name of its own: its file stem, with `-2`, `-3`, ... added when an earlier
/// input of the run had the same stem (`a/face.jpg` and `b/face.jpg`, or `clip.mp4` and
/// `clip.mov`). A video's frames go into a folder of that name, one PNG per frame, and an
/// image becomes one PNG of that name.
#[derive(Debug)]
pub struct Annotator {
    dir: PathBuf,
    /// The name given to each input, by its row label.
    names: HashMap<String, String>,
    /// Every name given so far.
    used_names: HashSet<String>,
}

impl Annotator {
    pub fn new(dir: PathBuf) -> Self {
        Annotator {
            dir,
            names: HashMap::new(),
            used_names: HashSet::new(),
        }
    }

    /// Returns the file for a frame of the input labelled `source` (the image's own path for
    /// images from a folder).
    pub fn path(&mut self, source: &str, report: &FrameReport) -> PathBuf {
        let input = match &report.frame.path {
            Some(path) => path.to_string_lossy().into_owned(),
            None => source.to_owned(),
        };
        let name = self.name(&input);
        match &report.frame.path {
            Some(_) => self.dir.join(format!("{name}.png")),
            None => self
                .dir
                .join(name)
                .join(format!("frame_{:06}.png", report.frame.index)),
        }
    }

    fn name(&mut self, input: &str) -> String {
        if let Some(name) = self.names.get(input) {
            return name.clone();
        }
        let stem = Path::new(input)
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_else(|| "input".to_owned());
        let mut name = stem.clone();
        let mut number = 1;
        while self.used_names.contains(&name) {
            number += 1;
            name = format!("{stem}-{number}");
        }
        self.used_names.insert(name.clone());
        self.names.insert(input.to_owned(), name.clone());
        name
    }

    /// Draws the faces of a frame and saves it as PNG; returns the file written.
    ///
    /// # Errors
    ///
    /// Fails when the font is missing or the file cannot be written.
    pub fn save(&mut self, source: &str, report: &FrameReport) -> Result<PathBuf, AnnotateError> {
        ensure_font()?;
        let path = self.path(source, report);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_with_one_stem_get_numbered_names() {
        let mut annotator = Annotator::new(PathBuf::from("out"));
        assert_eq!(annotator.name("a/face.jpg"), "face");
        assert_eq!(annotator.name("b/face.jpg"), "face-2");
        assert_eq!(annotator.name("clips/face.mp4"), "face-3");
        // The same input keeps its name for every frame.
        assert_eq!(annotator.name("a/face.jpg"), "face");
        assert_eq!(annotator.name("b/face.jpg"), "face-2");
        // An input whose own stem is a given name does not take it over.
        assert_eq!(annotator.name("c/face-2.png"), "face-2-2");
    }
}
