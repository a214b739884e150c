//! Face detection with rustface (SeetaFace), the only module that touches rustface.

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
