//! Line plots of named series (loss curves) as PNG bytes, drawn with plotters into a memory bitmap.
//!
//! Text uses DejaVu Sans embedded in the library (plotters' `ab_glyph` feature), so plots render the same on a
//! machine without any system font. Font sizes are even: plotters' ab_glyph renderer places each glyph at
//! size / 2 truncated, so odd sizes lift dots and commas off the baseline.

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
        PlotOptions { title: String::new(), x_label: "step".into(), y_label: String::new(), log_y: false, width: 800, height: 500 }
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
                return Err(format!("curve {name:?} has the value {} at index {i}, which a log axis cannot show", ys[i]));
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
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

fn plot_err<E: std::fmt::Debug>(e: E) -> String {
    format!("plotting failed: {e:?}")
}

/// The value range to show: the data's, padded, never empty.
fn y_range(curves: &[(String, Vec<f64>)], log_y: bool) -> (f64, f64) {
    let all = curves.iter().flat_map(|(_, ys)| ys.iter().copied());
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| (lo.min(y), hi.max(y)));
    if log_y {
        if lo == hi { (lo / 2.0, hi * 2.0) } else { (lo / 1.1, hi * 1.1) }
    } else if lo == hi {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - d, hi + d)
    } else {
        let d = (hi - lo) * 0.05;
        (lo - d, hi + d)
    }
}

/// Renders `curves` (name, values at steps 0, 1, ...) as a PNG of `opts.width` x `opts.height`.
pub fn render_curves(curves: &[(String, Vec<f64>)], opts: &PlotOptions) -> Result<Vec<u8>, String> {
    check_curves(curves, opts.log_y)?;
    if opts.width < 64 || opts.height < 64 {
        return Err(format!("a plot of {} x {} pixels is too small", opts.width, opts.height));
    }
    ensure_font();
    let (w, h) = (opts.width, opts.height);
    let mut buf = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let x_max = curves.iter().map(|(_, ys)| ys.len()).max().unwrap_or(1).saturating_sub(1).max(1) as f64;
        let (y_lo, y_hi) = y_range(curves, opts.log_y);
        let mut builder = ChartBuilder::on(&root);
        builder.margin(16).x_label_area_size(44).y_label_area_size(72);
        if !opts.title.is_empty() {
            builder.caption(&opts.title, (FAMILY, 22));
        }
        macro_rules! draw {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc(opts.x_label.as_str())
                    .y_desc(opts.y_label.as_str())
                    .label_style((FAMILY, 14))
                    .axis_desc_style((FAMILY, 16))
                    .light_line_style(BLACK.mix(0.04))
                    .x_label_formatter(&|x| tick_label(*x))
                    .y_label_formatter(&|y| tick_label(*y))
                    .draw()
                    .map_err(plot_err)?;
                for (i, (name, ys)) in curves.iter().enumerate() {
                    let colour = Palette99::pick(i).to_rgba();
                    chart
                        .draw_series(LineSeries::new(
                            ys.iter().enumerate().map(|(x, y)| (x as f64, *y)),
                            colour.stroke_width(2),
                        ))
                        .map_err(plot_err)?
                        .label(name.as_str())
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
                }
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperRight)
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK.mix(0.5))
                    .label_font((FAMILY, 14))
                    .draw()
                    .map_err(plot_err)?;
            }};
        }
        if opts.log_y {
            draw!(builder.build_cartesian_2d(0f64..x_max, (y_lo..y_hi).log_scale()).map_err(plot_err)?);
        } else {
            draw!(builder.build_cartesian_2d(0f64..x_max, y_lo..y_hi).map_err(plot_err)?);
        }
        root.present().map_err(plot_err)?;
    }
    let img = image::RgbImage::from_raw(w, h, buf).ok_or("plot buffer has the wrong size")?;
    crate::grid::png_bytes(&img)
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
        let opts = PlotOptions { title: "Loss".into(), y_label: "loss".into(), width: 640, height: 360, ..Default::default() };
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
        let dark_top = (0..img.width()).flat_map(|x| (0..44).map(move |y| (x, y))).filter(|&(x, y)| img.get_pixel(x, y)[0] < 100).count();
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
        let e = render_curves(&[("neg".into(), vec![1.0, -1.0])], &PlotOptions { log_y: true, ..Default::default() }).unwrap_err();
        assert!(e.contains("\"neg\"") && e.contains("log axis"), "{e}");
        assert!(render_curves(&[], &PlotOptions::default()).is_err());
    }
}
