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
        collect_image_files(root, recursive, &mut files)?;
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

/// Appends the image files under `folder` to `files`, descending into subfolders only when
/// `recursive` is set.
///
/// Symbolic links to folders are not followed, so a link cycle cannot loop forever.
fn collect_image_files(
    folder: &Path,
    recursive: bool,
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
                collect_image_files(&path, recursive, files)?;
            }
        } else if has_image_extension(&path) && !path.is_dir() {
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
        let scope = if self.recursive { ", with subfolders" } else { "" };
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
