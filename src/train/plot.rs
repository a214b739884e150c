//! PNG figures: training curves and the confusion-matrix heat map.
//!
//! Text is drawn with the font that [`crate::figure`] registers.

use std::path::Path;

use anyhow::{anyhow, Context};
use plotters::prelude::*;

use super::metrics::ConfusionMatrix;
use super::run_state::EpochRecord;

/// Registers the figures' font with plotters.
fn register_font() -> anyhow::Result<()> {
    crate::figure::ensure_font()?;
    Ok(())
}

/// Draws loss and accuracy per epoch, training and validation, side by side into a PNG file.
///
/// # Errors
///
/// When the font is missing or the file cannot be written.
pub fn draw_curves(history: &[EpochRecord], path: &Path) -> anyhow::Result<()> {
    register_font()?;
    let root = BitMapBackend::new(path, (1100, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let (left, right) = root.split_horizontally(550);
    let loss: Vec<(f64, f64, f64)> = history
        .iter()
        .map(|r| (r.epoch as f64, r.train_loss, r.val_loss))
        .collect();
    let accuracy: Vec<(f64, f64, f64)> = history
        .iter()
        .map(|r| (r.epoch as f64, r.train_accuracy, r.val_accuracy))
        .collect();
    draw_pair(&left, "loss", &loss)?;
    draw_pair(&right, "accuracy", &accuracy)?;
    root.present()
        .map_err(plot_error)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Draws one chart with a training and a validation line over epochs.
fn draw_pair(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    title: &str,
    points: &[(f64, f64, f64)],
) -> anyhow::Result<()> {
    let last_epoch = points.last().map_or(1.0, |p| p.0).max(2.0);
    let values = points.iter().flat_map(|p| [p.1, p.2]);
    let (low, high) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (low, high) = if low <= high { (low, high) } else { (0.0, 1.0) };
    let margin = ((high - low) * 0.1).max(1e-3);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (crate::figure::FONT_FAMILY, 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(1.0..last_epoch, (low - margin)..(high + margin))
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .label_style((crate::figure::FONT_FAMILY, 13))
        .draw()
        .map_err(plot_error)?;
    let train = LineSeries::new(points.iter().map(|p| (p.0, p.1)), BLUE.stroke_width(2));
    chart
        .draw_series(train)
        .map_err(plot_error)?
        .label("train")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLUE.stroke_width(2)));
    let val = LineSeries::new(points.iter().map(|p| (p.0, p.2)), RED.stroke_width(2));
    chart
        .draw_series(val)
        .map_err(plot_error)?
        .label("validation")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], RED.stroke_width(2)));
    chart
        .configure_series_labels()
        .label_font((crate::figure::FONT_FAMILY, 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

/// Side of one heat-map cell and the left and top margins, in pixels.
const CELL: i32 = 80;
const LEFT: i32 = 120;
const TOP: i32 = 50;

/// Draws a confusion matrix as a heat map (rows true classes, columns predictions), each cell
/// shaded by its share of the row and labelled with its count.
///
/// # Errors
///
/// When the font is missing or the file cannot be written.
pub fn draw_heatmap(matrix: &ConfusionMatrix, title: &str, path: &Path) -> anyhow::Result<()> {
    register_font()?;
    let side = CELL * matrix.classes.len() as i32;
    let root = BitMapBackend::new(path, ((LEFT + side + 20) as u32, (TOP + side + 70) as u32))
        .into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let label_style = (crate::figure::FONT_FAMILY, 15).into_text_style(&root);
    root.draw_text(
        title,
        &(crate::figure::FONT_FAMILY, 18).into_text_style(&root),
        (10, 10),
    )
    .map_err(plot_error)?;
    for (row, counts) in matrix.counts.iter().enumerate() {
        let y = TOP + CELL * row as i32;
        draw_heatmap_row(&root, counts, y)?;
        root.draw_text(matrix.classes[row].name(), &label_style, (10, y + 30))
            .map_err(plot_error)?;
    }
    for (column, class) in matrix.classes.iter().enumerate() {
        let x = LEFT + CELL * column as i32 + 6;
        root.draw_text(class.name(), &label_style, (x, TOP + side + 6))
            .map_err(plot_error)?;
    }
    let caption = "rows: true class, columns: predicted class";
    root.draw_text(caption, &label_style, (LEFT, TOP + side + 36))
        .map_err(plot_error)?;
    root.present()
        .map_err(plot_error)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Draws one row of heat-map cells with their counts and row shares.
fn draw_heatmap_row(
    root: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    counts: &[u64],
    y: i32,
) -> anyhow::Result<()> {
    let total = counts.iter().sum::<u64>().max(1) as f64;
    for (column, &count) in counts.iter().enumerate() {
        let share = count as f64 / total;
        let x = LEFT + CELL * column as i32;
        let shade = (255.0 * (1.0 - share)) as u8;
        let cell = Rectangle::new(
            [(x, y), (x + CELL, y + CELL)],
            RGBColor(shade, shade, 255).filled(),
        );
        root.draw(&cell).map_err(plot_error)?;
        let text_colour = if share > 0.5 { WHITE } else { BLACK };
        let style = (crate::figure::FONT_FAMILY, 15)
            .into_font()
            .color(&text_colour);
        root.draw_text(&count.to_string(), &style, (x + 8, y + 20))
            .map_err(plot_error)?;
        let percent = format!("{:.0}%", share * 100.0);
        root.draw_text(&percent, &style, (x + 8, y + 44))
            .map_err(plot_error)?;
    }
    Ok(())
}

fn plot_error<E: std::fmt::Display>(error: E) -> anyhow::Error {
    anyhow!("drawing failed: {error}")
}
