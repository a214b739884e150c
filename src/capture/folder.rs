//! Folders of images: every image file in sorted path order, optionally with subfolders.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::still::load_image;
use super::{has_image_extension, CaptureError, Frame, FrameSource};

/// A source that decodes the image files of a folder one by one.
pub(crate) struct FolderSource {
    root: PathBuf,
    recursive: bool,
    files: Vec<PathBuf>,
    /// Position in `files` of the next file to read.
    next: usize,
    /// Count of images returned so far, which is the next frame's index.
    frames_read: u64,
}

impl FolderSource {
    /// Lists the folder's image files; decoding waits for [`FrameSource::next_frame`].
    pub(crate) fn open(root: &Path, recursive: bool) -> Result<FolderSource, CaptureError> {
        if !root.exists() {
            return Err(CaptureError::NotFound {
                path: root.to_path_buf(),
            });
        }
        let mut files = Vec::new();
        collect_files(root, recursive, &has_image_extension, &mut files)?;
        if files.is_empty() {
            return Err(CaptureError::NoImages {
                path: root.to_path_buf(),
                recursive,
            });
        }
        files.sort();
        Ok(FolderSource {
            root: root.to_path_buf(),
            recursive,
            files,
            next: 0,
            frames_read: 0,
        })
    }
}

/// Appends the files under `folder` that `keep` accepts to `files`, descending into subfolders
/// only when `recursive` is set.
///
/// Symbolic links to folders are not followed, so a link cycle cannot loop forever.
pub(crate) fn collect_files(
    folder: &Path,
    recursive: bool,
    keep: &dyn Fn(&Path) -> bool,
    files: &mut Vec<PathBuf>,
) -> Result<(), CaptureError> {
    let io_error = |source| CaptureError::Io {
        path: folder.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(folder).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(io_error)?;
        if file_type.is_dir() {
            if recursive {
                collect_files(&path, recursive, keep, files)?;
            }
        } else if keep(&path) && !path.is_dir() {
            files.push(path);
        }
    }
    Ok(())
}

/// Turns any error about one listed file into [`CaptureError::Decode`], so that the folder
/// source goes on with the next file.
fn as_recoverable(path: &Path, error: CaptureError) -> CaptureError {
    let reason = match error {
        CaptureError::Decode { .. } => return error,
        CaptureError::NotFound { .. } => "the file was removed after the folder was listed".into(),
        CaptureError::Io { source, .. } => source.to_string(),
        other => other.to_string(),
    };
    CaptureError::Decode {
        path: path.to_path_buf(),
        reason,
    }
}

impl FrameSource for FolderSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        let Some(path) = self.files.get(self.next).cloned() else {
            return Ok(None);
        };
        self.next += 1;

        let image = load_image(&path).map_err(|error| as_recoverable(&path, error))?;
        let frame = Frame {
            index: self.frames_read,
            timestamp: 0.0,
            path: Some(Arc::from(path)),
            image,
        };
        self.frames_read += 1;
        Ok(Some(frame))
    }

    fn description(&self) -> String {
        let scope = if self.recursive {
            ", with subfolders"
        } else {
            ""
        };
        format!(
            "folder {} ({} images{scope})",
            self.root.display(),
            self.files.len()
        )
    }

    fn is_live(&self) -> bool {
        false
    }

    fn frame_rate(&self) -> Option<f64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a 4x4 image whose pixels all have the value `shade`.
    fn write_image(path: &Path, shade: u8) {
        image::RgbImage::from_pixel(4, 4, image::Rgb([shade; 3]))
            .save(path)
            .unwrap();
    }

    fn read_all(source: &mut FolderSource) -> (Vec<Frame>, Vec<CaptureError>) {
        let (mut frames, mut errors) = (Vec::new(), Vec::new());
        loop {
            match source.next_frame() {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => return (frames, errors),
                Err(error) if error.is_recoverable() => errors.push(error),
                Err(error) => panic!("unrecoverable error {error}"),
            }
        }
    }

    fn file_names(frames: &[Frame]) -> Vec<String> {
        let name = |frame: &Frame| {
            let path = frame.path.as_deref().unwrap();
            path.file_name().unwrap().to_string_lossy().into_owned()
        };
        frames.iter().map(name).collect()
    }

    #[test]
    fn images_come_in_sorted_order() {
        let folder = tempfile::tempdir().unwrap();
        for (name, shade) in [("b.png", 2), ("a.PNG", 1), ("c.bmp", 3)] {
            write_image(&folder.path().join(name), shade);
        }
        std::fs::write(folder.path().join("notes.txt"), "not an image").unwrap();

        let mut source = FolderSource::open(folder.path(), false).unwrap();
        let (frames, errors) = read_all(&mut source);
        assert!(errors.is_empty());
        assert_eq!(file_names(&frames), ["a.PNG", "b.png", "c.bmp"]);
        let indices: Vec<u64> = frames.iter().map(|frame| frame.index).collect();
        assert_eq!(indices, [0, 1, 2]);
        assert_eq!(frames[1].image.get_pixel(0, 0).0, [2, 2, 2]);
    }

    #[test]
    fn subfolders_only_with_recursive() {
        let folder = tempfile::tempdir().unwrap();
        std::fs::create_dir(folder.path().join("inner")).unwrap();
        write_image(&folder.path().join("top.png"), 1);
        write_image(&folder.path().join("inner/deep.png"), 2);

        let mut flat = FolderSource::open(folder.path(), false).unwrap();
        assert_eq!(file_names(&read_all(&mut flat).0), ["top.png"]);
        let mut recursive = FolderSource::open(folder.path(), true).unwrap();
        assert_eq!(
            file_names(&read_all(&mut recursive).0),
            ["deep.png", "top.png"]
        );
    }

    #[test]
    fn bad_files_are_recoverable_errors() {
        let folder = tempfile::tempdir().unwrap();
        write_image(&folder.path().join("1.png"), 1);
        std::fs::write(folder.path().join("2.jpg"), b"").unwrap();
        std::fs::write(folder.path().join("3.png"), b"not a png").unwrap();
        write_image(&folder.path().join("4.png"), 4);

        let mut source = FolderSource::open(folder.path(), false).unwrap();
        let (frames, errors) = read_all(&mut source);
        assert_eq!(file_names(&frames), ["1.png", "4.png"]);
        assert_eq!(frames[1].index, 1, "the index counts images, not files");
        assert_eq!(errors.len(), 2);
        assert!(errors[0].to_string().contains("2.jpg"), "{}", errors[0]);
        assert!(errors[1].to_string().contains("3.png"), "{}", errors[1]);
    }

    #[test]
    fn folder_without_images_is_an_error() {
        let folder = tempfile::tempdir().unwrap();
        std::fs::write(folder.path().join("notes.txt"), "not an image").unwrap();
        let Err(error) = FolderSource::open(folder.path(), false) else {
            panic!("a folder without images opened");
        };
        assert!(matches!(error, CaptureError::NoImages { .. }), "{error:?}");
    }
}
