//! Face crops for the classifier: square, gray and of a fixed size.

use image::imageops::{self, FilterType};
use image::{GrayImage, Luma, RgbImage};

use super::FaceBox;

/// Largest crop side, as a multiple of the frame's longer side, to bound memory for huge
/// margins.
const MAX_CROP_FACTOR: f32 = 4.0;

/// Crops a square around `face`, converts it to gray and resizes it to `size` x `size`.
///
/// The square is centred on the box, with side `max(width, height) * (1 + margin)` (a margin
/// that is not finite counts as 0, and the side is at least 1 pixel). Parts outside the frame
/// repeat the nearest edge pixel. Gray is ITU-R BT.601 luma, as in FER-2013. A `size` of 0 is
/// treated as 1. The resize uses a triangle (bilinear) filter.
pub fn crop_face(image: &RgbImage, face: &FaceBox, margin: f32, size: u32) -> GrayImage {
    let size = size.max(1);
    if image.width() == 0 || image.height() == 0 {
        return GrayImage::new(size, size);
    }
    let margin = if margin.is_finite() { margin } else { 0.0 };
    let longest_frame_side = image.width().max(image.height()) as f32;
    let side = (face.width.max(face.height) as f32 * (1.0 + margin))
        .clamp(1.0, longest_frame_side * MAX_CROP_FACTOR)
        .round() as u32;
    let centre_x = face.x as f32 + face.width as f32 / 2.0;
    let centre_y = face.y as f32 + face.height as f32 / 2.0;
    let left = (centre_x - side as f32 / 2.0).round() as i64;
    let top = (centre_y - side as f32 / 2.0).round() as i64;

    let max_x = i64::from(image.width()) - 1;
    let max_y = i64::from(image.height()) - 1;
    let crop = GrayImage::from_fn(side, side, |x, y| {
        let source_x = (left + i64::from(x)).clamp(0, max_x) as u32;
        let source_y = (top + i64::from(y)).clamp(0, max_y) as u32;
        let [red, green, blue] = image.get_pixel(source_x, source_y).0;
        Luma([luma_value(red, green, blue)])
    });
    if side == size {
        return crop;
    }
    imageops::resize(&crop, size, size, FilterType::Triangle)
}

/// Converts an RGB image to gray with ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B).
///
/// The `image` crate's own conversion uses BT.709 weights, which differ from the gray of
/// FER-2013 and of the detector's training data.
pub fn luma_601(image: &RgbImage) -> GrayImage {
    GrayImage::from_fn(image.width(), image.height(), |x, y| {
        let [red, green, blue] = image.get_pixel(x, y).0;
        Luma([luma_value(red, green, blue)])
    })
}

/// BT.601 luma in fixed point: the weights scaled by 2^16, rounded to nearest.
fn luma_value(red: u8, green: u8, blue: u8) -> u8 {
    let weighted = 19_595 * u32::from(red) + 38_470 * u32::from(green) + 7_471 * u32::from(blue);
    ((weighted + 32_768) >> 16) as u8
}
