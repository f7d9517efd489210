//! SVG plots for experiments repeated over seeds: lines with a shaded
//! interval around each (error bands), and overlaid histograms.
//!
//! Like [`plot_curves`](super::plot_curves) these use plotters' SVG backend,
//! which writes text as SVG `<text>` and so needs no font on the machine.

use std::path::Path;

use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
// The trait (mix, stroke_width, filled), in scope beside our own `Color`.
use plotters::style::Color as _;

/// One point of a [`Band`]: the mean and its interval at `x`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BandPoint {
    /// Position on the x axis.
    pub x: f64,
    /// The line's value (usually a mean over seeds).
    pub mean: f64,
    /// Lower edge of the shaded interval.
    pub low: f64,
    /// Upper edge of the shaded interval.
    pub high: f64,
}

/// A named line with a shaded interval around it.
#[derive(Clone, Debug)]
pub struct Band {
    /// The legend entry.
    pub name: String,
    /// The points, in x order.
    pub points: Vec<BandPoint>,
    /// Its colour; `None` takes the palette's colour for its position.
    pub color: Option<Color>,
}

/// One chart of bands.
#[derive(Clone, Debug)]
pub struct BandPanel {
    /// The chart's title.
    pub title: String,
    /// The x-axis label, with units.
    pub x_label: String,
    /// The y-axis label, with units.
    pub y_label: String,
    /// A logarithmic y axis (non-positive values are not drawn).
    pub log_y: bool,
    /// The lines to draw.
    pub bands: Vec<Band>,
}

/// Counts over bins, for [`plot_histograms`].
#[derive(Clone, Debug)]
pub struct Histogram {
    /// The legend entry.
    pub name: String,
    /// Bin edges, increasing: one more than `counts`.
    pub edges: Vec<f64>,
    /// The count (or density) of each bin.
    pub counts: Vec<f64>,
    /// Its colour; `None` takes the palette's colour for its position.
    pub color: Option<Color>,
}

/// One chart of overlaid histograms.
#[derive(Clone, Debug)]
pub struct HistogramPanel {
    /// The chart's title.
    pub title: String,
    /// The x-axis label, with units.
    pub x_label: String,
    /// The y-axis label, with units.
    pub y_label: String,
    /// A logarithmic y axis, to show the tails (empty bins are not drawn).
    pub log_y: bool,
    /// The histograms, drawn as outlines over a light fill.
    pub histograms: Vec<Histogram>,
}

/// The colour of a plotted series, as red, green and blue.
///
/// A series left without one takes [`Color::palette`] of its position, so
/// the same name can change colour between two plots; a study that shows
/// one thing (an initializer, say) in many plots gives it one colour.
///
/// ```
/// use ember::report::Color;
/// assert_eq!(Color::palette(1), Color(255, 127, 14));
/// assert_eq!(Color::palette(8), Color::palette(1)); // the palette cycles
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Color(pub u8, pub u8, pub u8);

impl Color {
    /// The `i`-th colour of Ember's palette (matplotlib's first seven),
    /// cycling.
    pub const fn palette(i: usize) -> Color {
        PALETTE[i % PALETTE.len()]
    }

    /// A colour that no palette entry has (a neutral grey), for a reference
    /// series.
    pub const GREY: Color = Color(110, 110, 110);

    pub(super) fn rgb(self) -> RGBColor {
        RGBColor(self.0, self.1, self.2)
    }
}

const PALETTE: [Color; 7] = [
    Color(31, 119, 180),
    Color(255, 127, 14),
    Color(44, 160, 44),
    Color(214, 39, 40),
    Color(148, 103, 189),
    Color(140, 86, 75),
    Color(227, 119, 194),
];

/// Draws the band panels side by side into one SVG file.
///
/// # Errors
/// If drawing or writing the file fails; the message names the file.
pub fn plot_bands(path: impl AsRef<Path>, panels: &[BandPanel]) -> Result<(), String> {
    let charts: Vec<Chart> = panels
        .iter()
        .map(|p| {
            let series = p.bands.iter().map(|b| Series {
                name: &b.name,
                color: b.color,
                line: b.points.iter().map(|p| (p.x, p.mean)).collect(),
                fill: band_polygon(&b.points),
            });
            Chart::new([&p.title, &p.x_label, &p.y_label], p.log_y, series)
        })
        .collect();
    draw(path.as_ref(), &charts)
}

/// Draws the histogram panels side by side into one SVG file.
///
/// # Errors
/// If drawing or writing the file fails; the message names the file.
///
/// # Panics
/// If a histogram's `edges` is not one longer than its `counts`.
#[track_caller]
pub fn plot_histograms(path: impl AsRef<Path>, panels: &[HistogramPanel]) -> Result<(), String> {
    let charts: Vec<Chart> = panels
        .iter()
        .map(|p| {
            let series = p.histograms.iter().map(|h| histogram_series(h, p.log_y));
            Chart::new([&p.title, &p.x_label, &p.y_label], p.log_y, series)
        })
        .collect();
    draw(path.as_ref(), &charts)
}

/// The staircase over a histogram's bins. Empty bins become `floor` (NaN
/// breaks the line on a log axis, where zero cannot be drawn).
fn step_outline(h: &Histogram, floor: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(2 * h.counts.len());
    for (i, &c) in h.counts.iter().enumerate() {
        let y = if c > 0.0 { c } else { floor };
        out.push((h.edges[i], y));
        out.push((h.edges[i + 1], y));
    }
    out
}

/// The closed outline of a band: the upper edge left to right, then the
/// lower edge back.
fn band_polygon(points: &[BandPoint]) -> Vec<(f64, f64)> {
    let upper = points.iter().map(|p| (p.x, p.high));
    let lower = points.iter().rev().map(|p| (p.x, p.low));
    upper.chain(lower).collect()
}

/// What [`draw`] needs of either kind of panel.
struct Chart<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    log_y: bool,
    series: Vec<Series<'a>>,
}

impl<'a> Chart<'a> {
    /// A chart from its `[title, x label, y label]`.
    fn new(labels: [&'a str; 3], log_y: bool, series: impl Iterator<Item = Series<'a>>) -> Self {
        let [title, x_label, y_label] = labels;
        Chart {
            title,
            x_label,
            y_label,
            log_y,
            series: series.collect(),
        }
    }
}

/// A histogram as a step outline (filled down to zero on a linear axis).
#[track_caller]
fn histogram_series(h: &Histogram, log_y: bool) -> Series<'_> {
    assert_eq!(
        h.edges.len(),
        h.counts.len() + 1,
        "plot_histograms: {:?} has {} edges for {} counts",
        h.name,
        h.edges.len(),
        h.counts.len()
    );
    let floor = if log_y { f64::NAN } else { 0.0 };
    let step = step_outline(h, floor);
    let mut fill = step.clone();
    if !log_y {
        fill.push((h.edges[h.edges.len() - 1], 0.0));
        fill.insert(0, (h.edges[0], 0.0));
    }
    Series {
        name: &h.name,
        color: h.color,
        line: step,
        fill: if log_y { Vec::new() } else { fill },
    }
}

struct Series<'a> {
    name: &'a str,
    /// `None`: the palette's colour for the series' position.
    color: Option<Color>,
    /// The line (NaN y values break it).
    line: Vec<(f64, f64)>,
    /// A polygon shaded under or around the line (may be empty).
    fill: Vec<(f64, f64)>,
}

fn draw(path: &Path, charts: &[Chart]) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let width = 560 * charts.len().max(1) as u32;
    let root = SVGBackend::new(path, (width, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    for (chart, area) in charts
        .iter()
        .zip(root.split_evenly((1, charts.len().max(1))))
    {
        draw_one(chart, &area).map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))
}

type DrawResult =
    Result<(), DrawingAreaErrorKind<<SVGBackend<'static> as DrawingBackend>::ErrorType>>;

fn draw_one(chart: &Chart, area: &DrawingArea<SVGBackend, Shift>) -> DrawResult {
    let usable = |y: f64| y.is_finite() && (!chart.log_y || y > 0.0);
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for s in &chart.series {
        for &(x, y) in s.line.iter().chain(&s.fill) {
            if x.is_finite() && usable(y) {
                (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
            }
        }
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.1, 1.0);
    }
    let x1 = x1.max(x0 + 1e-9);
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(chart.title, ("sans-serif", 17))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(64);
    if chart.log_y {
        let (lo, hi) = (y0 / 1.5, (y1 * 1.5).max(y0 * 2.0));
        let mut ctx = builder.build_cartesian_2d(x0..x1, (lo..hi).log_scale())?;
        fill_chart(&mut ctx, chart, &usable)
    } else {
        let pad = ((y1 - y0) * 0.06).max(1e-9);
        let mut ctx = builder.build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))?;
        fill_chart(&mut ctx, chart, &usable)
    }
}

fn fill_chart<'a, 'b: 'a, Y>(
    ctx: &mut ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, Y>>,
    chart: &Chart,
    usable: &dyn Fn(f64) -> bool,
) -> DrawResult
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    ctx.configure_mesh()
        .x_desc(chart.x_label)
        .y_desc(chart.y_label)
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    // All the shading first, so that no band veils another series' line.
    let color_of = |i: usize, s: &Series| s.color.unwrap_or(Color::palette(i)).rgb();
    for (i, s) in chart.series.iter().enumerate() {
        let color = color_of(i, s);
        if !s.fill.is_empty() && s.fill.iter().all(|&(_, y)| usable(y)) {
            ctx.draw_series(std::iter::once(Polygon::new(
                s.fill.clone(),
                color.mix(0.15).filled(),
            )))?;
        }
    }
    for (i, s) in chart.series.iter().enumerate() {
        let color = color_of(i, s);
        // Split the line where values cannot be drawn.
        let mut first = true;
        for run in s.line.split(|&(_, y)| !usable(y)) {
            if run.is_empty() {
                continue;
            }
            let drawn =
                ctx.draw_series(LineSeries::new(run.iter().copied(), color.stroke_width(2)))?;
            if std::mem::take(&mut first) {
                drawn.label(s.name).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
                });
            }
        }
    }
    let corner = legend_corner(chart, ctx);
    ctx.configure_series_labels()
        .position(corner)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// A tick label: at most four significant digits, no trailing zeros, and
/// powers of ten beyond 10⁴ or under 10⁻³ as `1e-5`.
fn tick(v: f64) -> String {
    // Axis steps like 0.2 leave rounding dust (−2.2e-16) where 0 is meant.
    if v.abs() < 1e-12 || !v.is_finite() {
        return if v.is_finite() {
            "0".into()
        } else {
            format!("{v}")
        };
    }
    let a = v.abs();
    if !(1e-3..1e4).contains(&a) {
        let s = format!("{v:.1e}");
        return s.replace(".0e", "e");
    }
    let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The corner of the plot with the fewest line points, for the legend.
fn legend_corner<Y>(
    chart: &Chart,
    ctx: &ChartContext<SVGBackend, Cartesian2d<RangedCoordf64, Y>>,
) -> SeriesLabelPosition
where
    Y: Ranged<ValueType = f64>,
{
    let area = ctx.plotting_area();
    let (px, py) = area.get_pixel_range();
    let (mid_x, mid_y) = ((px.start + px.end) / 2, (py.start + py.end) / 2);
    // Pixels of [upper-left, upper-right, lower-left, lower-right].
    let mut crowd = [0usize; 4];
    for s in &chart.series {
        for &(x, y) in s.line.iter().chain(&s.fill) {
            if !(x.is_finite() && y.is_finite()) || (chart.log_y && y <= 0.0) {
                continue;
            }
            let (u, v) = ctx.backend_coord(&(x, y));
            crowd[usize::from(v > mid_y) * 2 + usize::from(u > mid_x)] += 1;
        }
    }
    let best = (0..4)
        .min_by_key(|&i| (crowd[i], [1, 0, 3, 2][i]))
        .unwrap_or(1);
    match best {
        0 => SeriesLabelPosition::UpperLeft,
        1 => SeriesLabelPosition::UpperRight,
        2 => SeriesLabelPosition::LowerLeft,
        _ => SeriesLabelPosition::LowerRight,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_outline_goes_up_then_back_down() {
        let p = |x, m| BandPoint {
            x,
            mean: m,
            low: m - 1.0,
            high: m + 1.0,
        };
        let poly = band_polygon(&[p(0.0, 5.0), p(1.0, 6.0)]);
        assert_eq!(poly, vec![(0.0, 6.0), (1.0, 7.0), (1.0, 5.0), (0.0, 4.0)]);
    }

    #[test]
    fn svgs_carry_titles_labels_legends_and_bands() {
        let dir = std::env::temp_dir().join(format!("ember-bands-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let band = |name: &str, k: f64, color| Band {
            name: name.into(),
            color,
            points: (1..=5)
                .map(|i| BandPoint {
                    x: i as f64,
                    mean: k / i as f64,
                    low: 0.9 * k / i as f64,
                    high: 1.1 * k / i as f64,
                })
                .collect(),
        };
        let bands = dir.join("bands.svg");
        let panels = [false, true].map(|log_y| BandPanel {
            title: format!("Std per layer (log {log_y})"),
            x_label: "layer".into(),
            y_label: "std of z (units of z)".into(),
            log_y,
            bands: vec![
                band("normal", 1.0, None),
                band("truncated", 2.0, Some(Color(1, 2, 3))),
            ],
        });
        plot_bands(&bands, &panels).unwrap();
        let hist = dir.join("hist.svg");
        let h = Histogram {
            name: "truncated".into(),
            edges: vec![-2.0, -1.0, 0.0, 1.0, 2.0],
            counts: vec![0.0, 10.0, 12.0, 1.0],
            color: None,
        };
        let panels = [false, true].map(|log_y| HistogramPanel {
            title: "Weights".into(),
            x_label: "w·√fan_in (σ units)".into(),
            y_label: "count".into(),
            log_y,
            histograms: vec![h.clone()],
        });
        plot_histograms(&hist, &panels).unwrap();
        for (path, words) in [
            (
                bands,
                [
                    "Std per layer (log true)",
                    "layer",
                    "std of z (units of z)",
                    "truncated",
                ],
            ),
            (
                hist,
                ["Weights", "w·√fan_in (σ units)", "count", "truncated"],
            ),
        ] {
            let svg = std::fs::read_to_string(&path).unwrap();
            assert!(svg.starts_with("<svg"));
            for w in words {
                assert!(svg.contains(w), "{} lacks {w:?}", path.display());
            }
            assert!(
                svg.contains("<polygon") || svg.contains("<path"),
                "no shapes"
            );
        }
        // A band's own colour is used; one without takes the palette's first.
        let svg = std::fs::read_to_string(dir.join("bands.svg")).unwrap();
        assert!(svg.contains("#010203"), "the chosen colour is missing");
        assert!(
            svg.contains("#1F77B4"),
            "the palette's first colour is missing"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ticks_are_short() {
        assert_eq!(tick(1000.0), "1000");
        assert_eq!(tick(0.7000000000000001), "0.7");
        assert_eq!(tick(2.0), "2");
        assert_eq!(tick(0.0125), "0.0125");
        assert_eq!(tick(1e-5), "1e-5");
        assert_eq!(tick(20000.0), "2e4");
        assert_eq!(tick(-2.2e-16), "0");
    }

    #[test]
    fn step_outline_marks_empty_bins() {
        let h = Histogram {
            name: "h".into(),
            edges: vec![0.0, 1.0, 2.0],
            counts: vec![3.0, 0.0],
            color: None,
        };
        let steps = step_outline(&h, 0.0);
        assert_eq!(steps, vec![(0.0, 3.0), (1.0, 3.0), (1.0, 0.0), (2.0, 0.0)]);
        assert!(step_outline(&h, f64::NAN)[3].1.is_nan());
    }
}
