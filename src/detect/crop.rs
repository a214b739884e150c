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
pub fn luma_value(red: u8, green: u8, blue: u8) -> u8 {
    let weighted = 19_595 * u32::from(red) + 38_470 * u32::from(green) + 7_471 * u32::from(blue);
    ((weighted + 32_768) >> 16) as u8
}

#[cfg(test)]
mod tests {
    use image::Rgb;

    use super::*;

    /// Builds a 100x60 frame whose gray value is the column number.
    fn ramp() -> RgbImage {
        RgbImage::from_fn(100, 60, |x, _| Rgb([x as u8; 3]))
    }

    fn face(x: u32, y: u32, width: u32, height: u32) -> FaceBox {
        FaceBox {
            x,
            y,
            width,
            height,
            score: 1.0,
        }
    }

    #[test]
    fn luma_uses_bt601_weights() {
        assert_eq!(luma_value(255, 0, 0), 76);
        assert_eq!(luma_value(0, 255, 0), 150);
        assert_eq!(luma_value(0, 0, 255), 29);
        assert_eq!(luma_value(255, 255, 255), 255);
        assert_eq!(luma_value(0, 0, 0), 0);
    }

    #[test]
    fn crop_inside_frame_copies_pixels() {
        let crop = crop_face(&ramp(), &face(20, 10, 8, 8), 0.0, 8);
        assert_eq!(crop.dimensions(), (8, 8));
        let first_row: Vec<u8> = (0..8).map(|x| crop.get_pixel(x, 0).0[0]).collect();
        assert_eq!(first_row, [20, 21, 22, 23, 24, 25, 26, 27]);
    }

    #[test]
    fn crop_past_edge_repeats_edge_pixels() {
        // A box at the right edge with a 100% margin reaches 8 pixels past the frame.
        let crop = crop_face(&ramp(), &face(92, 0, 8, 8), 1.0, 16);
        assert_eq!(crop.dimensions(), (16, 16));
        let first_row: Vec<u8> = (0..16).map(|x| crop.get_pixel(x, 0).0[0]).collect();
        let expected: Vec<u8> = (88..100).chain([99; 4]).collect();
        assert_eq!(first_row, expected);
    }

    #[test]
    fn crop_of_degenerate_box_still_has_size() {
        let crop = crop_face(&ramp(), &face(99, 59, 0, 0), 0.2, 48);
        assert_eq!(crop.dimensions(), (48, 48));
        assert!(crop.pixels().all(|pixel| pixel.0[0] == 99));
    }

    #[test]
    fn crop_handles_odd_margins_and_sizes() {
        let image = ramp();
        let box_ = face(10, 10, 30, 30);
        assert_eq!(
            crop_face(&image, &box_, f32::NAN, 48).dimensions(),
            (48, 48)
        );
        assert_eq!(crop_face(&image, &box_, -5.0, 48).dimensions(), (48, 48));
        assert_eq!(crop_face(&image, &box_, 1e9, 48).dimensions(), (48, 48));
        assert_eq!(crop_face(&image, &box_, 0.2, 0).dimensions(), (1, 1));
        assert_eq!(
            crop_face(&RgbImage::new(0, 0), &box_, 0.2, 48).dimensions(),
            (48, 48)
        );
    }
}
