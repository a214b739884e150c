//! Following a face between detections by matching its appearance.
//!
//! A full detection costs tens of milliseconds; matching a small gray template of the face
//! around its last position costs a fraction of one. The template is taken when the detector
//! finds the face and is sampled onto a coarse grid of [`TEMPLATE_CELLS`] x [`TEMPLATE_CELLS`]
//! cells. Following compares it at every shift of up to [`SEARCH_CELLS`] cells in each
//! direction by the mean absolute difference of the mean-removed cells, so a change of
//! brightness does not count. The box keeps its size, and the next full detection corrects
//! the scale.

use image::RgbImage;

use crate::detect::{luma_value, FaceBox};

/// Cells along each side of the template.
pub const TEMPLATE_CELLS: u32 = 24;

/// Largest shift searched, in cells in each direction: a quarter of the face between two
/// frames.
pub const SEARCH_CELLS: u32 = 6;

/// Mean absolute difference, in gray levels, above which the best match counts as a lost
/// face: the face turned away, was covered or left.
pub const LOST_DIFFERENCE: f32 = 18.0;

/// The appearance of a face as it was last detected.
#[derive(Clone, Debug)]
pub struct FaceTemplate {
    /// Side of one cell in frame pixels (at least 1).
    cell: f32,
    /// Mean-removed gray values of the cells, row by row.
    cells: Vec<f32>,
}

/// The position of a followed face and the quality of its match.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FollowedFace {
    pub face: FaceBox,
    /// Mean absolute difference from the template, in gray levels.
    pub difference: f32,
}

impl FaceTemplate {
    /// Takes the template of `face` in `image`.
    pub fn capture(image: &RgbImage, face: &FaceBox) -> FaceTemplate {
        let cell = (face.width.max(face.height) as f32 / TEMPLATE_CELLS as f32).max(1.0);
        let mut cells = sample_cells(image, face.x as f32, face.y as f32, cell, TEMPLATE_CELLS);
        remove_mean(&mut cells);
        FaceTemplate { cell, cells }
    }

    /// Looks for the face in `image` around `last`, its box in the previous frame, and returns
    /// the best match of the same size, or `None` when even the best differs by more than
    /// [`LOST_DIFFERENCE`].
    pub fn follow(&self, image: &RgbImage, last: &FaceBox) -> Option<FollowedFace> {
        let best = self.best_match(image, last);
        (best.difference <= LOST_DIFFERENCE).then_some(best)
    }

    /// Returns the best match around `last` whatever its difference.
    pub fn best_match(&self, image: &RgbImage, last: &FaceBox) -> FollowedFace {
        let search = SEARCH_CELLS as f32 * self.cell;
        let side = TEMPLATE_CELLS + 2 * SEARCH_CELLS;
        let left = last.x as f32 - search;
        let top = last.y as f32 - search;
        let area = sample_cells(image, left, top, self.cell, side);

        let span = 2 * SEARCH_CELLS + 1;
        let count = (TEMPLATE_CELLS * TEMPLATE_CELLS) as f32;
        let mut best = (f32::INFINITY, 0, 0);
        for dy in 0..span {
            for dx in 0..span {
                let window =
                    |row: u32, column: u32| area[((row + dy) * side + column + dx) as usize];
                let mut mean = 0.0;
                for row in 0..TEMPLATE_CELLS {
                    for column in 0..TEMPLATE_CELLS {
                        mean += window(row, column);
                    }
                }
                mean /= count;
                let mut difference = 0.0;
                for row in 0..TEMPLATE_CELLS {
                    let template_row = &self.cells[(row * TEMPLATE_CELLS) as usize..];
                    for column in 0..TEMPLATE_CELLS {
                        difference +=
                            (window(row, column) - mean - template_row[column as usize]).abs();
                    }
                }
                // Prefer the smaller shift on ties, so a still face stays put.
                let is_better = difference < best.0
                    || (difference == best.0
                        && shift_distance(dx, dy) < shift_distance(best.1, best.2));
                if is_better {
                    best = (difference, dx, dy);
                }
            }
        }
        let (difference, dx, dy) = best;
        let shift_x = (dx as f32 - SEARCH_CELLS as f32) * self.cell;
        let shift_y = (dy as f32 - SEARCH_CELLS as f32) * self.cell;
        FollowedFace {
            face: shifted(last, shift_x, shift_y, image.width(), image.height()),
            difference: difference / count,
        }
    }
}

fn shift_distance(dx: u32, dy: u32) -> u32 {
    dx.abs_diff(SEARCH_CELLS) + dy.abs_diff(SEARCH_CELLS)
}

/// Moves `face` by a shift in pixels, keeping it inside a `width` x `height` frame.
fn shifted(face: &FaceBox, shift_x: f32, shift_y: f32, width: u32, height: u32) -> FaceBox {
    let max_x = width.saturating_sub(face.width) as f32;
    let max_y = height.saturating_sub(face.height) as f32;
    FaceBox {
        x: (face.x as f32 + shift_x).round().clamp(0.0, max_x) as u32,
        y: (face.y as f32 + shift_y).round().clamp(0.0, max_y) as u32,
        ..*face
    }
}

/// Averages the gray values of `cells` x `cells` square cells of side `cell` pixels whose
/// grid starts at (`left`, `top`) in frame pixels. Pixels outside the frame repeat the
/// nearest edge. Each cell is sampled on at most 4 x 4 points, which is plenty for matching.
fn sample_cells(image: &RgbImage, left: f32, top: f32, cell: f32, cells: u32) -> Vec<f32> {
    let mut values = Vec::with_capacity((cells * cells) as usize);
    if image.width() == 0 || image.height() == 0 {
        values.resize((cells * cells) as usize, 0.0);
        return values;
    }
    let samples = (cell.round() as u32).clamp(1, 4);
    let step = cell / samples as f32;
    let max_x = (image.width() - 1) as f32;
    let max_y = (image.height() - 1) as f32;
    for row in 0..cells {
        for column in 0..cells {
            let mut sum = 0u32;
            for sy in 0..samples {
                let y = (top + row as f32 * cell + (sy as f32 + 0.5) * step).clamp(0.0, max_y);
                for sx in 0..samples {
                    let x =
                        (left + column as f32 * cell + (sx as f32 + 0.5) * step).clamp(0.0, max_x);
                    let [red, green, blue] = image.get_pixel(x as u32, y as u32).0;
                    sum += u32::from(luma_value(red, green, blue));
                }
            }
            values.push(sum as f32 / (samples * samples) as f32);
        }
    }
    values
}

fn remove_mean(values: &mut [f32]) {
    let mean = values.iter().sum::<f32>() / values.len().max(1) as f32;
    for value in values {
        *value -= mean;
    }
}

#[cfg(test)]
mod tests {
    use image::Rgb;

    use super::*;

    /// Draws a 320x240 frame with a bright square of side 60 at (`x`, `y`), patterned in
    /// blocks of 10 pixels, on a dark gradient.
    fn frame_with_square(x: u32, y: u32) -> RgbImage {
        RgbImage::from_fn(320, 240, |px, py| {
            let inside = (x..x + 60).contains(&px) && (y..y + 60).contains(&py);
            let value = if inside {
                150 + ((px - x) / 10 + (py - y) / 10 * 2) % 3 * 40
            } else {
                (px / 8 + py / 8) % 40
            };
            Rgb([value as u8; 3])
        })
    }

    fn face(x: u32, y: u32) -> FaceBox {
        FaceBox {
            x,
            y,
            width: 60,
            height: 60,
            score: 5.0,
        }
    }

    #[test]
    fn follow_finds_moved_face() {
        let template = FaceTemplate::capture(&frame_with_square(100, 80), &face(100, 80));
        let moved = frame_with_square(110, 73);
        let found = template.follow(&moved, &face(100, 80)).unwrap();
        // The grid has cells of 2.5 pixels, so the shift is found to within one cell.
        assert!(found.face.x.abs_diff(110) <= 2, "{:?}", found.face);
        assert!(found.face.y.abs_diff(73) <= 2, "{:?}", found.face);
        assert_eq!((found.face.width, found.face.height), (60, 60));
        // Half a pixel of misalignment on the block edges remains.
        assert!(
            found.difference < LOST_DIFFERENCE / 2.0,
            "{}",
            found.difference
        );
    }

    #[test]
    fn follow_keeps_still_face() {
        let image = frame_with_square(100, 80);
        let template = FaceTemplate::capture(&image, &face(100, 80));
        let found = template.follow(&image, &face(100, 80)).unwrap();
        assert_eq!(found.face, face(100, 80));
        assert!(found.difference < 0.01, "{}", found.difference);
    }

    #[test]
    fn follow_ignores_brightness_change() {
        let image = frame_with_square(100, 80);
        let template = FaceTemplate::capture(&image, &face(100, 80));
        let brighter = RgbImage::from_fn(320, 240, |x, y| {
            let [value, _, _] = image.get_pixel(x, y).0;
            Rgb([value.saturating_add(30); 3])
        });
        let found = template.follow(&brighter, &face(100, 80)).unwrap();
        assert_eq!((found.face.x, found.face.y), (100, 80));
    }

    #[test]
    fn follow_loses_vanished_face() {
        let template = FaceTemplate::capture(&frame_with_square(100, 80), &face(100, 80));
        let empty = RgbImage::from_fn(320, 240, |x, y| Rgb([((x * 31 + y * 17) % 255) as u8; 3]));
        assert!(template.follow(&empty, &face(100, 80)).is_none());
    }

    #[test]
    fn follow_keeps_boxes_inside() {
        let template = FaceTemplate::capture(&frame_with_square(0, 0), &face(0, 0));
        let found = template.best_match(&frame_with_square(0, 0), &face(0, 0));
        assert_eq!((found.face.x, found.face.y), (0, 0));
        let corner = FaceBox {
            x: 260,
            y: 180,
            ..face(0, 0)
        };
        let found = template.best_match(&frame_with_square(260, 180), &corner);
        assert!(found.face.x + 60 <= 320, "{:?}", found.face);
        assert!(found.face.y + 60 <= 240, "{:?}", found.face);
    }
}
