//! ASCII preview of a frame: brightness drawn with a character ramp, faces drawn as boxes with
//! a `#id emotion 87%` label, the selected face highlighted.
//!
//! The widget samples the frame's pixels directly for each cell, so no resized copy of the
//! image is made. Choosing which frame and face to show is left to `App`.

use image::RgbImage;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::line;
use ratatui::widgets::Widget;

use super::percent;
use crate::detect::FaceBox;
use crate::track::TrackedFace;

/// Characters from dark to bright, so that dark pixels show as blanks on a dark background.
pub const RAMP: &[u8] = b" .:-=+*#%@";

/// Height of a terminal cell divided by its width: an estimate that holds for common
/// monospace fonts, which draw cells about twice as tall as wide.
pub const CELL_ASPECT: f64 = 2.0;

/// Pixels sampled per cell along each axis, which caps the cost of a large frame.
const SAMPLES_PER_AXIS: u32 = 4;

/// Style of the box and label of the selected face.
const SELECTED_STYLE: Style = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);

/// Style of the box and label of every other face.
const FACE_STYLE: Style = Style::new().fg(Color::Cyan);

/// A frame with its faces, drawn as characters.
pub struct Preview<'a> {
    image: &'a RgbImage,
    faces: &'a [TrackedFace],
    selected: Option<u64>,
}

impl<'a> Preview<'a> {
    /// Creates a preview of `image` with `faces` in frame pixels. `selected` is a track id.
    pub fn new(image: &'a RgbImage, faces: &'a [TrackedFace], selected: Option<u64>) -> Self {
        Self {
            image,
            faces,
            selected,
        }
    }
}

impl Widget for Preview<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let area = area.intersection(buf.area);
        let target = fit(self.image.width(), self.image.height(), area);
        if target.is_empty() {
            return;
        }
        render_pixels(self.image, target, buf);

        // The selected face goes last so that its box and label lie on top of overlapping ones.
        let others = self
            .faces
            .iter()
            .filter(|face| Some(face.id) != self.selected);
        let selected = self
            .faces
            .iter()
            .filter(|face| Some(face.id) == self.selected);
        for face in others.chain(selected) {
            let style = if Some(face.id) == self.selected {
                SELECTED_STYLE
            } else {
                FACE_STYLE
            };
            let Some(cells) = face_cells(&face.face, self.image, target) else {
                continue;
            };
            let set = if Some(face.id) == self.selected {
                line::DOUBLE
            } else {
                line::NORMAL
            };
            render_box(cells, set, style, buf);
            render_label(face, cells, area, style, buf);
        }
    }
}

/// Returns the largest rectangle centred in `area` that shows a `width` x `height` image
/// without distortion, given cells [`CELL_ASPECT`] times as tall as wide.
///
/// The result is empty when the area or the image is.
pub fn fit(width: u32, height: u32, area: Rect) -> Rect {
    if area.is_empty() || width == 0 || height == 0 {
        return Rect::new(area.x, area.y, 0, 0);
    }
    let columns_per_row = f64::from(width) * CELL_ASPECT / f64::from(height);
    let mut columns = f64::from(area.width);
    let mut rows = columns / columns_per_row;
    if rows > f64::from(area.height) {
        rows = f64::from(area.height);
        columns = rows * columns_per_row;
    }

    // Float to integer casts saturate, and the clamp keeps at least one cell.
    let columns = (columns.round() as u16).clamp(1, area.width);
    let rows = (rows.round() as u16).clamp(1, area.height);
    let x = area.x + (area.width - columns) / 2;
    let y = area.y + (area.height - rows) / 2;
    Rect::new(x, y, columns, rows)
}

/// Returns the cells covered by a face box when the image is drawn into `target`, or `None`
/// when the box lies outside the image.
pub fn face_cells(face: &FaceBox, image: &RgbImage, target: Rect) -> Option<Rect> {
    let (width, height) = image.dimensions();
    let horizontal = span_cells(face.x, face.width, width, target.width)?;
    let vertical = span_cells(face.y, face.height, height, target.height)?;
    let (left, columns) = horizontal;
    let (top, rows) = vertical;
    Some(Rect::new(target.x + left, target.y + top, columns, rows))
}

/// Maps the pixel span `start..start + length` of an axis `size` pixels long onto `cells`
/// cells, returning the first cell and the number of cells touched (at least one).
fn span_cells(start: u32, length: u32, size: u32, cells: u16) -> Option<(u16, u16)> {
    if start >= size || cells == 0 {
        return None;
    }
    let end = start.saturating_add(length).min(size);
    let (size, cells) = (u64::from(size), u64::from(cells));
    let first = u64::from(start) * cells / size;
    let last = (u64::from(end) * cells)
        .div_ceil(size)
        .saturating_sub(1)
        .max(first);

    // `first` and `last` are below `cells`, which fits in u16.
    Some((first as u16, (last - first + 1) as u16))
}

/// Writes one ramp character per cell of `target`, from the mean brightness of up to
/// [`SAMPLES_PER_AXIS`] squared pixels spread over the cell's part of the image.
fn render_pixels(image: &RgbImage, target: Rect, buf: &mut Buffer) {
    let (width, height) = image.dimensions();
    let pixels = image.as_raw();
    for row in 0..target.height {
        let (top, bottom) = cell_span(row, target.height, height);
        for column in 0..target.width {
            let (left, right) = cell_span(column, target.width, width);
            let mut sum = 0_u64;
            let mut count = 0_u64;
            for y in sample_positions(top, bottom) {
                for x in sample_positions(left, right) {
                    let offset = (y as usize * width as usize + x as usize) * 3;
                    let [red, green, blue] = [0, 1, 2].map(|c| u64::from(pixels[offset + c]));
                    // ITU-R BT.601 luma weights, scaled by 1000.
                    sum += 299 * red + 587 * green + 114 * blue;
                    count += 1;
                }
            }
            let luma = sum / (count * 1000);
            let index = luma as usize * RAMP.len() / 256;
            buf[(target.x + column, target.y + row)].set_char(char::from(RAMP[index]));
        }
    }
}

/// Returns the pixel range `start..end` (never empty) that cell `index` of `cells` covers on an
/// axis of `size` pixels.
fn cell_span(index: u16, cells: u16, size: u32) -> (u32, u32) {
    let scale = |cell: u16| (u64::from(cell) * u64::from(size) / u64::from(cells)) as u32;
    let start = scale(index).min(size - 1);
    (start, scale(index + 1).max(start + 1))
}

/// Spreads up to [`SAMPLES_PER_AXIS`] positions evenly over `start..end`, at the centres of
/// equal parts.
fn sample_positions(start: u32, end: u32) -> impl Iterator<Item = u32> {
    let length = end - start;
    let count = length.min(SAMPLES_PER_AXIS);
    (0..count).map(move |k| start + (2 * k + 1) * length / (2 * count))
}

/// Draws the outline of `cells` with the line characters of `set`.
fn render_box(cells: Rect, set: line::Set, style: Style, buf: &mut Buffer) {
    let (left, top) = (cells.left(), cells.top());
    let (right, bottom) = (cells.right() - 1, cells.bottom() - 1);
    for x in left..=right {
        buf[(x, top)].set_symbol(set.horizontal).set_style(style);
        buf[(x, bottom)].set_symbol(set.horizontal).set_style(style);
    }
    for y in top..=bottom {
        buf[(left, y)].set_symbol(set.vertical).set_style(style);
        buf[(right, y)].set_symbol(set.vertical).set_style(style);
    }
    if cells.width > 1 && cells.height > 1 {
        buf[(left, top)].set_symbol(set.top_left);
        buf[(right, top)].set_symbol(set.top_right);
        buf[(left, bottom)].set_symbol(set.bottom_left);
        buf[(right, bottom)].set_symbol(set.bottom_right);
    }
}

/// Writes `#id emotion 87%` on the row above the box, or on its top edge when the box touches
/// the top of `area`, shifted left where it would run past the right edge of `area`.
fn render_label(face: &TrackedFace, cells: Rect, area: Rect, style: Style, buf: &mut Buffer) {
    let emotion = face.scores.dominant();
    let probability = percent(face.scores.get(emotion));
    let label = format!("#{} {} {probability}%", face.id, emotion.name());
    let y = if cells.y > area.y {
        cells.y - 1
    } else {
        cells.y
    };
    let length = u16::try_from(label.len()).unwrap_or(u16::MAX);
    let x = cells.x.min(area.right().saturating_sub(length)).max(area.x);
    buf.set_stringn(
        x,
        y,
        &label,
        usize::from(area.right() - x),
        style.add_modifier(Modifier::REVERSED),
    );
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::fixture::{face, gradient_image, HAPPY_SCORES, SAD_SCORES};
    use super::*;

    /// Returns the symbols of row `y` from column `start` on, `length` cells long.
    fn row_text(buf: &Buffer, y: u16, start: u16, length: u16) -> String {
        (start..start + length)
            .map(|x| buf[(x, y)].symbol())
            .collect()
    }

    #[test]
    fn fit_keeps_aspect_in_wide_area() {
        let target = fit(640, 360, Rect::new(0, 0, 100, 20));

        // 20 rows are as tall as 40 columns are wide, so 640x360 needs 40 * 640 / 360 = 71.1 columns.
        assert_eq!(target.height, 20);
        assert_eq!(target.width, 71);
        assert_eq!(target.x, 14);
        assert_eq!(target.y, 0);
    }

    #[test]
    fn fit_keeps_aspect_in_tall_area() {
        let target = fit(640, 360, Rect::new(5, 3, 40, 40));

        // 40 columns show 640 pixels, so 360 pixels need 40 * 360 / 640 / 2 = 11.25 rows.
        assert_eq!(target.width, 40);
        assert_eq!(target.height, 11);
        assert_eq!(target.x, 5);
        assert_eq!(target.y, 3 + (40 - 11) / 2);
    }

    #[test]
    fn fit_empty_inputs_give_empty_rect() {
        assert!(fit(640, 360, Rect::new(0, 0, 0, 0)).is_empty());
        assert!(fit(0, 360, Rect::new(0, 0, 80, 24)).is_empty());
        assert_eq!(fit(640, 360, Rect::new(0, 0, 1, 1)), Rect::new(0, 0, 1, 1));
    }

    #[test]
    fn span_cells_covers_partial_cells() {
        // Pixels 320..480 of 640 on 71 cells: 35.5..53.25, so cells 35 to 53.
        assert_eq!(span_cells(320, 160, 640, 71), Some((35, 19)));
        assert_eq!(span_cells(0, 0, 640, 71), Some((0, 1)));
        assert_eq!(span_cells(600, 500, 640, 71), Some((66, 5)));
        assert_eq!(span_cells(640, 10, 640, 71), None);
    }

    #[test]
    fn pixels_follow_brightness_ramp() {
        let image = RgbImage::from_fn(20, 10, |x, _| {
            if x < 10 {
                image::Rgb([0, 0, 0])
            } else {
                image::Rgb([255, 255, 255])
            }
        });
        let area = Rect::new(0, 0, 20, 5);
        let mut buf = Buffer::empty(area);
        Preview::new(&image, &[], None).render(area, &mut buf);

        assert_eq!(buf[(0, 0)].symbol(), " ");
        assert_eq!(buf[(9, 4)].symbol(), " ");
        assert_eq!(buf[(10, 0)].symbol(), "@");
        assert_eq!(buf[(19, 4)].symbol(), "@");
    }

    #[test]
    fn selected_face_is_drawn_double() {
        let image = gradient_image();
        let faces = [
            face(
                1,
                FaceBox {
                    x: 0,
                    y: 0,
                    width: 320,
                    height: 180,
                    score: 0.9,
                },
                HAPPY_SCORES,
            ),
            face(
                2,
                FaceBox {
                    x: 320,
                    y: 180,
                    width: 320,
                    height: 180,
                    score: 0.9,
                },
                SAD_SCORES,
            ),
        ];
        let area = Rect::new(0, 0, 64, 18);
        let mut buf = Buffer::empty(area);
        Preview::new(&image, &faces, Some(2)).render(area, &mut buf);

        // 640x360 fits 64x18 exactly: face 1 covers cells 0..32 x 0..9, face 2 32..64 x 9..18.
        assert_eq!(buf[(32, 9)].symbol(), "╔");
        assert_eq!(buf[(63, 17)].symbol(), "╝");
        assert_eq!(buf[(0, 8)].symbol(), "└");
        assert_eq!(buf[(31, 8)].symbol(), "┘");
        assert_eq!(row_text(&buf, 8, 32, 10), "#2 sad 55%");
        // Face 1 touches the top, so its label sits on its top edge.
        assert_eq!(row_text(&buf, 0, 0, 12), "#1 happy 72%");
    }

    #[test]
    fn label_shifts_left_at_right_edge() {
        let image = gradient_image();
        let faces = [face(
            3,
            FaceBox {
                x: 600,
                y: 100,
                width: 40,
                height: 40,
                score: 0.9,
            },
            SAD_SCORES,
        )];
        let area = Rect::new(0, 0, 64, 18);
        let mut buf = Buffer::empty(area);
        Preview::new(&image, &faces, None).render(area, &mut buf);

        assert_eq!(buf[(60, 5)].symbol(), "┌");
        assert_eq!(row_text(&buf, 4, 54, 10), "#3 sad 55%");
    }

    #[test]
    fn boxes_outside_frame_are_clamped_or_skipped() {
        let image = gradient_image();
        let outside = FaceBox {
            x: 700,
            y: 10,
            width: 20,
            height: 20,
            score: 0.5,
        };
        let oversized = FaceBox {
            x: 630,
            y: 350,
            width: u32::MAX,
            height: u32::MAX,
            score: 0.5,
        };
        let faces = [
            face(1, outside, HAPPY_SCORES),
            face(2, oversized, SAD_SCORES),
        ];
        let area = Rect::new(0, 0, 64, 18);
        let mut buf = Buffer::empty(area);
        Preview::new(&image, &faces, Some(1)).render(area, &mut buf);

        assert_eq!(face_cells(&outside, &image, area), None);
        assert_eq!(
            face_cells(&oversized, &image, area),
            Some(Rect::new(63, 17, 1, 1))
        );
        assert_eq!(buf[(63, 17)].symbol(), "│");
    }

    /// Measures the preview of a 1920x1080 frame in a 200x60 area. Run it with `--ignored
    /// --nocapture` in a release build.
    #[test]
    #[ignore = "timing depends on the machine"]
    fn preview_cost() {
        let image = RgbImage::from_fn(1920, 1080, |x, y| image::Rgb([x as u8, y as u8, 128]));
        let area = Rect::new(0, 0, 200, 60);
        let mut buf = Buffer::empty(area);
        let rounds = 200;
        let start = Instant::now();
        for _ in 0..rounds {
            Preview::new(&image, &[], None).render(area, &mut buf);
        }
        println!(
            "preview 1920x1080 in 200x60: {:?} per frame",
            start.elapsed() / rounds
        );
    }
}
