//! Line plots of named series (loss curves) and scatter plots of named point sets as PNG bytes, drawn with
//! plotters into a memory bitmap. Both share the canvas, chart frame, axes and legend helpers below.
//!
//! Text uses DejaVu Sans embedded in the library (plotters' `ab_glyph` feature), so plots render the same on a
//! machine without any system font. Font sizes are even: plotters' ab_glyph renderer places each glyph at
//! size / 2 truncated, so odd sizes lift dots and commas off the baseline.

use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::sync::Once;

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

fn ensure_font() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // The bytes are a valid TrueType font, checked by a unit test.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// What the plot shows besides the series.
#[derive(Debug, Clone)]
pub struct PlotOptions {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_y: bool,
    pub width: u32,
    pub height: u32,
}

impl Default for PlotOptions {
    fn default() -> Self {
        PlotOptions {
            title: String::new(),
            x_label: "step".into(),
            y_label: String::new(),
            log_y: false,
            width: 800,
            height: 500,
        }
    }
}

/// Checks the series: at least one, none empty, every value finite (and positive on a log axis).
pub fn check_curves(curves: &[(String, Vec<f64>)], log_y: bool) -> Result<(), String> {
    if curves.is_empty() {
        return Err("no curves to plot".into());
    }
    for (name, ys) in curves {
        if ys.is_empty() {
            return Err(format!("curve {name:?} is empty"));
        }
        if let Some(i) = ys.iter().position(|y| !y.is_finite()) {
            return Err(format!("curve {name:?} holds a NaN or infinite value ({}) at index {i}", ys[i]));
        }
        if log_y {
            if let Some(i) = ys.iter().position(|y| *y <= 0.0) {
                return Err(format!(
                    "curve {name:?} has the value {} at index {i}, which a log axis cannot show",
                    ys[i]
                ));
            }
        }
    }
    Ok(())
}

/// A short tick label: integers as integers, others with about 4 significant digits, tiny or huge ones in
/// scientific notation (plotters' default prints float noise such as 0.30000000000000004 on a log axis).
pub fn tick_label(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        return "0".into();
    }
    if !(1e-3..1e6).contains(&a) {
        return format!("{v:.2e}");
    }
    if v == v.round() {
        return format!("{}", v as i64);
    }
    let decimals = (3 - a.log10().floor() as i32).clamp(0, 8) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn plot_err<E: std::fmt::Debug>(e: E) -> String {
    format!("plotting failed: {e:?}")
}

/// The value range to show: the data's, padded, never empty.
fn y_range(curves: &[(String, Vec<f64>)], log_y: bool) -> (f64, f64) {
    let all = curves.iter().flat_map(|(_, ys)| ys.iter().copied());
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| (lo.min(y), hi.max(y)));
    if log_y {
        if lo == hi {
            (lo / 2.0, hi * 2.0)
        } else {
            (lo / 1.1, hi * 1.1)
        }
    } else if lo == hi {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - d, hi + d)
    } else {
        let d = (hi - lo) * 0.05;
        (lo - d, hi + d)
    }
}

/// The PNG bytes of a `width` x `height` white canvas after `draw` has drawn on it.
fn render_png(
    width: u32,
    height: u32,
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), String>,
) -> Result<Vec<u8>, String> {
    if width < 64 || height < 64 {
        return Err(format!("a plot of {width} x {height} pixels is too small"));
    }
    ensure_font();
    let mut buf = vec![0u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        draw(&root)?;
        root.present().map_err(plot_err)?;
    }
    let img = image::RgbImage::from_raw(width, height, buf).ok_or("plot buffer has the wrong size")?;
    crate::grid::png_bytes(&img)
}

/// A chart builder on `root` with the common margins and the title (when not empty).
fn chart_builder<'a, 'b>(
    root: &'a DrawingArea<BitMapBackend<'b>, Shift>,
    title: &str,
) -> ChartBuilder<'a, 'b, BitMapBackend<'b>> {
    let mut builder = ChartBuilder::on(root);
    builder.margin(16).x_label_area_size(44).y_label_area_size(72);
    if !title.is_empty() {
        builder.caption(title, (FAMILY, 22));
    }
    builder
}

/// Axes, grid, tick labels and axis descriptions.
fn draw_mesh<X, Y>(
    chart: &mut ChartContext<'_, BitMapBackend<'_>, Cartesian2d<X, Y>>,
    x_label: &str,
    y_label: &str,
) -> Result<(), String>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .light_line_style(BLACK.mix(0.04))
        .x_label_formatter(&|x| tick_label(*x))
        .y_label_formatter(&|y| tick_label(*y))
        .draw()
        .map_err(plot_err)
}

/// The legend box of the labelled series, upper right.
fn draw_legend<'a, 'b: 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, BitMapBackend<'b>, CT>,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.5))
        .label_font((FAMILY, 14))
        .draw()
        .map_err(plot_err)
}

/// The colour of series `i` (the same in line and scatter plots).
pub fn series_colour(i: usize) -> RGBAColor {
    Palette99::pick(i).to_rgba()
}

/// Line plot of `curves` on a chart with any value axis.
fn draw_curves<'a, 'b: 'a, Y>(
    chart: &mut ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, Y>>,
    curves: &[(String, Vec<f64>)],
    opts: &PlotOptions,
) -> Result<(), String>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    draw_mesh(chart, &opts.x_label, &opts.y_label)?;
    for (i, (name, ys)) in curves.iter().enumerate() {
        let colour = series_colour(i);
        chart
            .draw_series(LineSeries::new(ys.iter().enumerate().map(|(x, y)| (x as f64, *y)), colour.stroke_width(2)))
            .map_err(plot_err)?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    draw_legend(chart)
}

/// Renders `curves` (name, values at steps 0, 1, ...) as a PNG of `opts.width` x `opts.height`.
pub fn render_curves(curves: &[(String, Vec<f64>)], opts: &PlotOptions) -> Result<Vec<u8>, String> {
    check_curves(curves, opts.log_y)?;
    render_png(opts.width, opts.height, |root| {
        let x_max = curves.iter().map(|(_, ys)| ys.len()).max().unwrap_or(1).saturating_sub(1).max(1) as f64;
        let (y_lo, y_hi) = y_range(curves, opts.log_y);
        let mut builder = chart_builder(root, &opts.title);
        if opts.log_y {
            draw_curves(
                &mut builder.build_cartesian_2d(0f64..x_max, (y_lo..y_hi).log_scale()).map_err(plot_err)?,
                curves,
                opts,
            )
        } else {
            draw_curves(&mut builder.build_cartesian_2d(0f64..x_max, y_lo..y_hi).map_err(plot_err)?, curves, opts)
        }
    })
}

/// One series of a scatter plot: its name, its (x, y) points and optional text labels (one per point; an empty
/// label, or a missing one at the end, draws nothing).
#[derive(Debug, Clone, Default)]
pub struct PointSeries {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub labels: Vec<String>,
}

/// What a scatter plot shows besides the points.
#[derive(Debug, Clone)]
pub struct PointsOptions {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub width: u32,
    pub height: u32,
    /// `((x_min, x_max), (y_min, y_max))`; `None` = the data's range, padded. Points outside are not drawn.
    pub range: Option<((f64, f64), (f64, f64))>,
}

impl Default for PointsOptions {
    fn default() -> Self {
        PointsOptions {
            title: String::new(),
            x_label: "x".into(),
            y_label: "y".into(),
            width: 800,
            height: 600,
            range: None,
        }
    }
}

/// Checks the series: at least one, every coordinate finite, no more labels than points; and a fixed range,
/// when given, finite and not empty.
pub fn check_points(series: &[PointSeries], range: Option<((f64, f64), (f64, f64))>) -> Result<(), String> {
    if series.is_empty() {
        return Err("no series to plot".into());
    }
    for s in series {
        if let Some(i) = s.points.iter().position(|(x, y)| !x.is_finite() || !y.is_finite()) {
            let (x, y) = s.points[i];
            return Err(format!("series {:?} holds a NaN or infinite value at row {i} (x = {x}, y = {y})", s.name));
        }
        if s.labels.len() > s.points.len() {
            return Err(format!("series {:?} has {} labels for {} points", s.name, s.labels.len(), s.points.len()));
        }
    }
    if let Some(((x0, x1), (y0, y1))) = range {
        for (axis, lo, hi) in [("x", x0, x1), ("y", y0, y1)] {
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                return Err(format!("the {axis} range [{lo}, {hi}] is empty"));
            }
        }
    }
    Ok(())
}

/// `lo..hi` padded by 5 %, never empty (a single value gets +-10 % of itself, or +-1 at zero).
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if lo > hi {
        // No points at all.
        (0.0, 1.0)
    } else if lo == hi {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - d, hi + d)
    } else {
        let d = (hi - lo) * 0.05;
        (lo - d, hi + d)
    }
}

/// The axis ranges a scatter plot shows: the fixed ones, or the data's, padded.
pub fn points_range(series: &[PointSeries], range: Option<((f64, f64), (f64, f64))>) -> ((f64, f64), (f64, f64)) {
    if let Some(r) = range {
        return r;
    }
    let all = series.iter().flat_map(|s| s.points.iter().copied());
    let inf = f64::INFINITY;
    let (x0, x1, y0, y1) =
        all.fold((inf, -inf, inf, -inf), |(x0, x1, y0, y1), (x, y)| (x0.min(x), x1.max(x), y0.min(y), y1.max(y)));
    (padded(x0, x1), padded(y0, y1))
}

/// Marker shapes, one per series in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Circle,
    Square,
    Triangle,
    Diamond,
    Plus,
}

/// Marker size in pixels (centre to edge).
const MARKER: i32 = 4;

impl Shape {
    const ALL: [Shape; 5] = [Shape::Circle, Shape::Square, Shape::Triangle, Shape::Diamond, Shape::Plus];

    /// The marker of series `i`.
    pub fn of(i: usize) -> Shape {
        Self::ALL[i % Self::ALL.len()]
    }

    /// The marker's outline in pixels around its centre. Every shape is a filled polygon, so that markers of any
    /// shape are one element type (plotters' legends take one type per series, and scatter markers need none of
    /// its optional point-series features).
    fn outline(self) -> Vec<(i32, i32)> {
        let r = MARKER;
        match self {
            Shape::Circle => (0..16)
                .map(|k| {
                    let a = k as f64 * std::f64::consts::TAU / 16.0;
                    let rr = r as f64 + 0.5;
                    ((rr * a.cos()).round() as i32, (rr * a.sin()).round() as i32)
                })
                .collect(),
            Shape::Square => vec![(-r, -r), (r, -r), (r, r), (-r, r)],
            Shape::Triangle => vec![(0, -r - 1), (r + 1, r), (-r - 1, r)],
            Shape::Diamond => vec![(0, -r - 1), (r + 1, 0), (0, r + 1), (-r - 1, 0)],
            Shape::Plus => {
                let (r, w) = (r + 1, 1);
                vec![
                    (-w, -r),
                    (w, -r),
                    (w, -w),
                    (r, -w),
                    (r, w),
                    (w, w),
                    (w, r),
                    (-w, r),
                    (-w, w),
                    (-r, w),
                    (-r, -w),
                    (-w, -w),
                ]
            }
        }
    }
}

/// Renders `series` as a scatter plot PNG of `opts.width` x `opts.height`: one colour and marker per series, a
/// legend with the series' names, and each point's label (if any) in small text beside it.
pub fn render_points(series: &[PointSeries], opts: &PointsOptions) -> Result<Vec<u8>, String> {
    check_points(series, opts.range)?;
    render_png(opts.width, opts.height, |root| {
        let ((x0, x1), (y0, y1)) = points_range(series, opts.range);
        let mut chart = chart_builder(root, &opts.title).build_cartesian_2d(x0..x1, y0..y1).map_err(plot_err)?;
        draw_mesh(&mut chart, &opts.x_label, &opts.y_label)?;
        let inside = |&(x, y): &(f64, f64)| (x0..=x1).contains(&x) && (y0..=y1).contains(&y);
        for (i, s) in series.iter().enumerate() {
            let (colour, shape) = (series_colour(i), Shape::of(i));
            chart
                .draw_series(
                    s.points
                        .iter()
                        .filter(|p| inside(p))
                        .map(|&at| EmptyElement::at(at) + Polygon::new(shape.outline(), colour.filled())),
                )
                .map_err(plot_err)?
                .label(s.name.as_str())
                .legend(move |(x, y)| EmptyElement::at((x + 10, y)) + Polygon::new(shape.outline(), colour.filled()));
        }
        // Labels after every marker, so that no marker hides one.
        let ink = BLACK.mix(0.8);
        let font = TextStyle::from((FAMILY, 12).into_font()).color(&ink);
        for s in series {
            let labelled = s.points.iter().zip(&s.labels).filter(|(p, l)| !l.is_empty() && inside(p));
            chart
                .draw_series(labelled.map(|(&at, text)| {
                    EmptyElement::at(at) + Text::new(text.clone(), (MARKER + 3, -MARKER - 14), font.clone())
                }))
                .map_err(plot_err)?;
        }
        draw_legend(&mut chart)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curves() -> Vec<(String, Vec<f64>)> {
        vec![
            ("train".into(), (0..50).map(|i| 1.0 / (1.0 + i as f64)).collect()),
            ("val".into(), (0..40).map(|i| 1.2 / (1.0 + 0.8 * i as f64)).collect()),
        ]
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick_label(0.30000000000000004), "0.3");
        assert_eq!(tick_label(20.0), "20");
        assert_eq!(tick_label(2.5), "2.5");
        assert_eq!(tick_label(0.0125), "0.0125");
        assert_eq!(tick_label(-1.25), "-1.25");
        assert_eq!(tick_label(1.5e-5), "1.50e-5");
        assert_eq!(tick_label(0.0), "0");
    }

    #[test]
    fn embedded_font_parses() {
        assert!(plotters::style::register_font("test-family", FontStyle::Normal, FONT).is_ok());
    }

    #[test]
    fn writes_a_png_of_the_requested_size_with_lines_and_text() {
        let opts =
            PlotOptions { title: "Loss".into(), y_label: "loss".into(), width: 640, height: 360, ..Default::default() };
        let png = render_curves(&curves(), &opts).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!((img.width(), img.height()), (640, 360));
        // The two series' colours appear.
        for i in 0..2 {
            let c = Palette99::pick(i).to_rgba();
            let rgb = image::Rgb([c.0, c.1, c.2]);
            assert!(img.pixels().filter(|p| **p == rgb).count() > 50, "series {i} not drawn");
        }
        // The title was drawn in black at the top (with no usable font nothing would be there).
        let dark_top = (0..img.width())
            .flat_map(|x| (0..44).map(move |y| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y)[0] < 100)
            .count();
        assert!(dark_top > 30, "only {dark_top} dark pixels where the title should be");
        // Log axis works too.
        let opts = PlotOptions { log_y: true, width: 300, height: 200, ..Default::default() };
        let img = image::load_from_memory(&render_curves(&curves(), &opts).unwrap()).unwrap();
        assert_eq!((img.width(), img.height()), (300, 200));
    }

    #[test]
    fn constant_and_single_point_curves_plot() {
        let c = vec![("flat".to_string(), vec![2.0; 5]), ("dot".to_string(), vec![0.0])];
        assert!(render_curves(&c, &PlotOptions::default()).is_ok());
    }

    #[test]
    fn nan_and_empty_curves_are_named() {
        let mut c = curves();
        c[1].1[7] = f64::NAN;
        let e = render_curves(&c, &PlotOptions::default()).unwrap_err();
        assert!(e.contains("\"val\"") && e.contains("NaN") && e.contains("index 7"), "{e}");
        let e = render_curves(&[("empty".into(), vec![])], &PlotOptions::default()).unwrap_err();
        assert!(e.contains("\"empty\" is empty"), "{e}");
        let e = render_curves(&[("neg".into(), vec![1.0, -1.0])], &PlotOptions { log_y: true, ..Default::default() })
            .unwrap_err();
        assert!(e.contains("\"neg\"") && e.contains("log axis"), "{e}");
        assert!(render_curves(&[], &PlotOptions::default()).is_err());
    }

    fn two_clusters() -> Vec<PointSeries> {
        let cluster = |cx: f64, cy: f64| {
            (0..20).map(|k| (cx + 0.01 * (k % 5) as f64, cy + 0.01 * (k / 5) as f64)).collect::<Vec<_>>()
        };
        vec![
            PointSeries { name: "left".into(), points: cluster(0.15, 0.15), labels: vec![] },
            PointSeries { name: "right".into(), points: cluster(0.8, 0.15), labels: vec![] },
        ]
    }

    /// Pixels of exactly `colour` in the rectangle [x0, x1) x [y0, y1) of the image, in fractions of its size.
    fn count_colour(img: &image::RgbImage, colour: RGBAColor, (x0, x1): (f64, f64), (y0, y1): (f64, f64)) -> usize {
        let (w, h) = (img.width() as f64, img.height() as f64);
        let rgb = image::Rgb([colour.0, colour.1, colour.2]);
        img.enumerate_pixels()
            .filter(|(x, y, p)| {
                let (fx, fy) = (*x as f64 / w, *y as f64 / h);
                **p == rgb && (x0..x1).contains(&fx) && (y0..y1).contains(&fy)
            })
            .count()
    }

    #[test]
    fn scatter_points_land_where_their_coordinates_say() {
        let opts = PointsOptions {
            title: "Clusters".into(),
            width: 500,
            height: 400,
            range: Some(((0.0, 1.0), (0.0, 1.0))),
            ..Default::default()
        };
        let png = render_points(&two_clusters(), &opts).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!((img.width(), img.height()), (500, 400));
        let (left, right) = (series_colour(0), series_colour(1));
        // Both clusters sit low (y = 0.15..0.18 of the axis): lower half of the image; "left" in the left half,
        // "right" in the right half. The legend (upper right) shows both colours too, but only in the upper half.
        let low = (0.5, 1.0);
        assert!(count_colour(&img, left, (0.0, 0.5), low) > 50, "left cluster missing");
        assert_eq!(count_colour(&img, left, (0.5, 1.0), low), 0, "left cluster drawn on the right");
        assert!(count_colour(&img, right, (0.5, 1.0), low) > 50, "right cluster missing");
        assert_eq!(count_colour(&img, right, (0.0, 0.5), low), 0, "right cluster drawn on the left");
        // The legend's markers.
        assert!(count_colour(&img, left, (0.5, 1.0), (0.0, 0.5)) > 10);
        assert!(count_colour(&img, right, (0.5, 1.0), (0.0, 0.5)) > 10);
        // A fixed range that excludes "right" hides its points (the legend marker stays).
        let opts = PointsOptions { range: Some(((0.0, 0.5), (0.0, 1.0))), ..opts };
        let img = image::load_from_memory(&render_points(&two_clusters(), &opts).unwrap()).unwrap().to_rgb8();
        assert_eq!(count_colour(&img, right, (0.0, 1.0), low), 0);
        assert!(count_colour(&img, left, (0.0, 1.0), low) > 50);
    }

    #[test]
    fn point_labels_are_drawn_beside_the_points() {
        let dark = |png: &[u8]| {
            let img = image::load_from_memory(png).unwrap().to_rgb8();
            img.enumerate_pixels()
                .filter(|(x, y, p)| {
                    *x > img.width() / 8 && *y > img.height() / 2 && p[0] < 90 && p[1] < 90 && p[2] < 90
                })
                .count()
        };
        let opts =
            PointsOptions { width: 400, height: 300, range: Some(((0.0, 1.0), (0.0, 1.0))), ..Default::default() };
        let plain = vec![PointSeries { name: "s".into(), points: vec![(0.3, 0.3), (0.6, 0.2)], labels: vec![] }];
        let mut labelled = plain.clone();
        labelled[0].labels = vec!["alpha".into(), "beta".into()];
        let (a, b) = (dark(&render_points(&plain, &opts).unwrap()), dark(&render_points(&labelled, &opts).unwrap()));
        assert!(b > a + 30, "labels added only {} dark pixels", b - a);
    }

    #[test]
    fn auto_range_fits_the_data_and_degenerate_data_plots() {
        let s = two_clusters();
        let ((x0, x1), (y0, y1)) = points_range(&s, None);
        assert!(x0 < 0.15 && x1 > 0.84 && y0 < 0.15 && y1 > 0.18, "{x0} {x1} {y0} {y1}");
        let one = vec![PointSeries { name: "one".into(), points: vec![(2.0, 0.0)], labels: vec![] }];
        assert_eq!(points_range(&one, None), ((1.8, 2.2), (-1.0, 1.0)));
        assert!(render_points(&one, &PointsOptions::default()).is_ok());
        let empty = vec![PointSeries { name: "none".into(), ..Default::default() }];
        assert_eq!(points_range(&empty, None), ((0.0, 1.0), (0.0, 1.0)));
        assert!(render_points(&empty, &PointsOptions::default()).is_ok());
        // Five series get five different markers; a sixth reuses the first with another colour.
        let many: Vec<PointSeries> = (0..6)
            .map(|i| PointSeries { name: format!("s{i}"), points: vec![(i as f64, i as f64)], labels: vec![] })
            .collect();
        assert!(render_points(&many, &PointsOptions::default()).is_ok());
        assert_eq!(Shape::of(5), Shape::of(0));
        assert_ne!(series_colour(5), series_colour(0));
    }

    #[test]
    fn bad_points_are_named() {
        let mut s = two_clusters();
        s[1].points[3].1 = f64::NAN;
        let e = render_points(&s, &PointsOptions::default()).unwrap_err();
        assert!(e.contains("\"right\"") && e.contains("NaN") && e.contains("row 3"), "{e}");
        let mut s = two_clusters();
        s[0].labels = vec!["x".into(); 21];
        let e = render_points(&s, &PointsOptions::default()).unwrap_err();
        assert!(e.contains("\"left\" has 21 labels for 20 points"), "{e}");
        assert!(render_points(&[], &PointsOptions::default()).unwrap_err().contains("no series"));
        let e = render_points(
            &two_clusters(),
            &PointsOptions { range: Some(((1.0, 1.0), (0.0, 1.0))), ..Default::default() },
        )
        .unwrap_err();
        assert!(e.contains("x range"), "{e}");
        assert!(render_points(&two_clusters(), &PointsOptions { width: 20, ..Default::default() })
            .unwrap_err()
            .contains("too small"));
    }
}
