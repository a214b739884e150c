//! Frame sources: camera, video file or stream, single image and folder of images, behind
//! one trait so that the pipeline does not care where frames come from.

use std::path::Path;
use std::sync::Arc;

use image::RgbImage;

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
