//! SVG line plots of learning curves (plotters' SVG backend: no fonts needed).

use std::path::Path;

use plotters::prelude::*;
// The trait (mix, stroke_width, filled), in scope beside our own `Color`.
use plotters::style::Color as _;

use super::bands::Color;

/// One named line.
#[derive(Clone, Debug)]
pub struct Curve {
    /// The legend entry.
    pub name: String,
    /// (x, y) points.
    pub points: Vec<(f64, f64)>,
}

/// One chart of the figure: a title, axis labels and its curves.
#[derive(Clone, Debug)]
pub struct Panel {
    /// The chart's title.
    pub title: String,
    /// The x-axis label, with units.
    pub x_label: String,
    /// The y-axis label, with units.
    pub y_label: String,
    /// The lines to draw.
    pub curves: Vec<Curve>,
}

/// Draws the panels side by side into one SVG file.
///
/// # Errors
/// If drawing or writing the file fails; the message names the file.
pub fn plot_curves(path: impl AsRef<Path>, panels: &[Panel]) -> Result<(), String> {
    let path = path.as_ref();
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let width = 520 * panels.len().max(1) as u32;
    let root = SVGBackend::new(path, (width, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (panel, area) in panels.iter().zip(areas) {
        let points = panel.curves.iter().flat_map(|c| c.points.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in points.filter(|(x, y)| x.is_finite() && y.is_finite()) {
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
        }
        if x0 > x1 {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        let pad = ((y1 - y0) * 0.05).max(1e-6);
        let mut chart = ChartBuilder::on(&area)
            .caption(&panel.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1.max(x0 + 1e-9), (y0 - pad)..(y1 + pad))
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc(panel.x_label.as_str())
            .y_desc(panel.y_label.as_str())
            .draw()
            .map_err(|e| fail(&e))?;
        for (i, curve) in panel.curves.iter().enumerate() {
            let color = Color::palette(i).rgb();
            chart
                .draw_series(LineSeries::new(
                    curve.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(|e| fail(&e))?
                .label(curve.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}
