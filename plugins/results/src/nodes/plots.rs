//! Plots: named series as a line plot, named point sets as a scatter plot, each written as a PNG.

use crate::{out_path, plot, write};
use serde_json::Value as Json;
use subspace_sdk::prelude::*;

const PLOTS: &str = "Results: Plots";

// Points (what CompareEdits writes): one M x 2 (x, y) float tensor per series; meta may give `title`, `x_label`,
// `y_label` and per-point text `labels: {series: [text, ...]}`.
use subspace_sdk::kinds::Points;

/// The meta's text under `key`, or `default`.
fn meta_text(meta: &Json, key: &str, default: &str) -> String {
    meta.get(key).and_then(|v| v.as_str()).unwrap_or(default).to_string()
}

/// The series of a curves bundle, as (name, values); errors name `port`.
fn read_curves(port: &str, bundle: &Bundle) -> NodeResult<Vec<(String, Vec<f64>)>> {
    let mut out = Vec::new();
    for nt in bundle.tensors.iter() {
        let name = nt.name.to_string();
        let t = nt.tensor.tensor();
        if t.dim() != 1 {
            return Err(NodeError::input(port, format!("curve {name:?} must be 1-D, got shape {:?}", t.size())));
        }
        let t = t.detach().to_device(Device::Cpu).to_kind(Kind::Double).contiguous();
        let ys =
            Vec::<f64>::try_from(&t).map_err(|e| NodeError::input(port, format!("cannot read curve {name:?}: {e}")))?;
        out.push((name, ys));
    }
    Ok(out)
}

/// Draws named series as a line plot.
pub struct PlotCurves {
    curves: Input<Curves>,
    file: Param<String>,
    title: Param<String>,
    log_y: Param<bool>,
    width: Param<i64>,
    height: Param<i64>,
    out: Output<String>,
}

impl Declared for PlotCurves {
    const INFO: NodeInfo = NodeInfo {
        id: "subspace.plot_curves",
        version: "1.0.0",
        name: "Plot curves",
        category: PLOTS,
        doc: "Draws named series (e.g. loss curves) as a line plot PNG with axes, legend and title.",
    };
    fn declare(d: &mut Declare) -> Self {
        d.volatile();
        PlotCurves {
            curves: d.input("curves", "curves bundle: one 1-D series per curve; meta may give title, x_label, y_label"),
            file: d.path("file", "curves.png", "PNG file under the run's output folder"),
            title: d.text("title", "", "plot title; empty = the bundle's meta title"),
            log_y: d.bool("log_y", false, "logarithmic value axis (every value must be positive)"),
            width: d.int("width", 800, 64..=8192, "image width in pixels"),
            height: d.int("height", 500, 64..=8192, "image height in pixels"),
            out: d.output("file", "the written path"),
        }
    }
    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let Curves(bundle) = io.read(&self.curves)?;
        let port = self.curves.name();
        let curves = read_curves(port, &bundle)?;
        let meta = bundle.meta_json();
        let title = io.read(&self.title)?;
        let opts = plot::PlotOptions {
            title: if title.is_empty() { meta_text(&meta, "title", "") } else { title },
            x_label: meta_text(&meta, "x_label", "step"),
            y_label: meta_text(&meta, "y_label", ""),
            log_y: io.read(&self.log_y)?,
            width: io.read(&self.width)? as u32,
            height: io.read(&self.height)? as u32,
        };
        let path = out_path(io, ctx, &self.file)?;
        plot::check_curves(&curves, opts.log_y).map_err(|m| NodeError::input(port, m))?;
        let png = plot::render_curves(&curves, &opts).map_err(NodeError::internal)?;
        let shown = write(&path, &png, &self.file, ctx)?;
        io.write(&self.out, shown);
        Ok(())
    }
}

/// The per-point texts of one series' `labels` entry.
fn series_labels(port: &str, name: &str, labels: Option<&Json>) -> NodeResult<Vec<String>> {
    let items = match labels {
        None | Some(Json::Null) => return Ok(Vec::new()),
        Some(Json::Array(items)) => items,
        Some(other) => {
            return Err(NodeError::input(port, format!("labels of series {name:?} must be a list, got {other}")));
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Json::String(s) => Ok(s.clone()),
            Json::Null => Ok(String::new()),
            Json::Number(n) => Ok(n.to_string()),
            other => Err(NodeError::input(port, format!("label {i} of series {name:?} must be text, got {other}"))),
        })
        .collect()
}

/// The series of a points bundle, with the per-point labels of its meta (`labels: {series: [text, ...]}`); errors
/// name `port`.
fn read_points(port: &str, bundle: &Bundle) -> NodeResult<Vec<plot::PointSeries>> {
    let meta = bundle.meta_json();
    let labels = match meta.get("labels").filter(|v| !v.is_null()) {
        None => None,
        Some(Json::Object(m)) => Some(m),
        Some(other) => {
            let why = format!("meta labels must map series names to lists of text, got {other}");
            return Err(NodeError::input(port, why));
        }
    };
    let mut out = Vec::new();
    for nt in bundle.tensors.iter() {
        let name = nt.name.to_string();
        let t = nt.tensor.tensor();
        let shape = t.size();
        if shape.len() != 2 || shape[1] != 2 {
            let why = format!("series {name:?} must be M x 2 (x, y), got shape {shape:?}");
            return Err(NodeError::input(port, why));
        }
        if !t.is_floating_point() {
            return Err(NodeError::input(port, format!("series {name:?} must hold floats, got {:?}", t.kind())));
        }
        let t = t.detach().to_device(Device::Cpu).to_kind(Kind::Double).contiguous().view([-1]);
        let flat = Vec::<f64>::try_from(&t)
            .map_err(|e| NodeError::input(port, format!("cannot read series {name:?}: {e}")))?;
        let points: Vec<(f64, f64)> = flat.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        let texts = series_labels(port, &name, labels.and_then(|m| m.get(&name)))?;
        out.push(plot::PointSeries { name, points, labels: texts });
    }
    if let Some(unknown) = labels.and_then(|m| m.keys().find(|k| !out.iter().any(|s| &s.name == *k))) {
        let why = format!("meta labels name series {unknown:?}, which the bundle does not hold");
        return Err(NodeError::input(port, why));
    }
    Ok(out)
}

/// Draws named point sets as a scatter plot.
pub struct PlotPoints {
    points: Input<Points>,
    file: Param<String>,
    title: Param<String>,
    width: Param<i64>,
    height: Param<i64>,
    auto_range: Param<bool>,
    x_min: Param<f64>,
    x_max: Param<f64>,
    y_min: Param<f64>,
    y_max: Param<f64>,
    out: Output<String>,
}

impl Declared for PlotPoints {
    const INFO: NodeInfo = NodeInfo {
        id: "subspace.plot_points",
        version: "1.0.0",
        name: "Plot points",
        category: PLOTS,
        doc: "Draws named point sets as a scatter plot PNG: one colour and marker per series, optional text beside \
              each point, legend, axes and title.",
    };
    fn declare(d: &mut Declare) -> Self {
        d.volatile();
        PlotPoints {
            points: d.input(
                "points",
                "points bundle: one M x 2 (x, y) float series per tensor; meta may give title, x_label, y_label and \
                 labels {series: [text per point]}",
            ),
            file: d.path("file", "points.png", "PNG file under the run's output folder"),
            title: d.text("title", "", "plot title; empty = the bundle's meta title"),
            width: d.int("width", 800, 64..=8192, "image width in pixels"),
            height: d.int("height", 600, 64..=8192, "image height in pixels"),
            auto_range: d.bool("auto_range", true, "fit the axes to the data; off = use x_min, x_max, y_min, y_max"),
            x_min: d.float("x_min", 0.0, -1e12..=1e12, "left end of the x axis (auto_range off)"),
            x_max: d.float("x_max", 1.0, -1e12..=1e12, "right end of the x axis (auto_range off)"),
            y_min: d.float("y_min", 0.0, -1e12..=1e12, "bottom of the y axis (auto_range off)"),
            y_max: d.float("y_max", 1.0, -1e12..=1e12, "top of the y axis (auto_range off)"),
            out: d.output("file", "the written path"),
        }
    }
    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let Points(bundle) = io.read(&self.points)?;
        let port = self.points.name();
        let series = read_points(port, &bundle)?;
        let meta = bundle.meta_json();
        let title = io.read(&self.title)?;
        let range = if io.read(&self.auto_range)? {
            None
        } else {
            let (x0, x1) = (io.read(&self.x_min)?, io.read(&self.x_max)?);
            let (y0, y1) = (io.read(&self.y_min)?, io.read(&self.y_max)?);
            if x0 >= x1 {
                let why = format!("must be above {} ({x0}), got {x1}", self.x_min.name());
                return Err(NodeError::param(self.x_max.name(), why));
            }
            if y0 >= y1 {
                let why = format!("must be above {} ({y0}), got {y1}", self.y_min.name());
                return Err(NodeError::param(self.y_max.name(), why));
            }
            Some(((x0, x1), (y0, y1)))
        };
        let opts = plot::PointsOptions {
            title: if title.is_empty() { meta_text(&meta, "title", "") } else { title },
            x_label: meta_text(&meta, "x_label", "x"),
            y_label: meta_text(&meta, "y_label", "y"),
            width: io.read(&self.width)? as u32,
            height: io.read(&self.height)? as u32,
            range,
        };
        let path = out_path(io, ctx, &self.file)?;
        plot::check_points(&series, opts.range).map_err(|m| NodeError::input(port, m))?;
        let png = plot::render_points(&series, &opts).map_err(NodeError::internal)?;
        let shown = write(&path, &png, &self.file, ctx)?;
        io.write(&self.out, shown);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{node, run_node, scratch, text_of};
    use subspace_sdk::abi_stable::std_types::ROption;
    use subspace_sdk::{ErrorKind, NamedValue, NodeError};

    #[test]
    fn plot_curves_writes_a_line_plot() {
        let dir = scratch("plot");
        let plot = node::<PlotCurves>();
        let curves = |b: Bundle| vec![NamedValue::new("curves", Value::Bundle(b))];
        let meta = serde_json::json!({"title": "Training", "x_label": "step", "y_label": "loss"});
        let bundle = Bundle::new(port::CURVES, &meta)
            .with("train", Tensor::from_slice(&[3.0f32, 2.0, 1.5, 1.2]))
            .with("val", Tensor::from_slice(&[3.5f32, 2.5, 2.0, 1.9]));
        let size = [("width", Value::Int(400)), ("height", Value::Int(300))];
        let out = run_node(&plot, curves(bundle), &size, &dir).unwrap();
        let img = image::open(text_of(&out, "file")).unwrap();
        assert_eq!((img.width(), img.height()), (400, 300));

        let nan = Bundle::new(port::CURVES, &Json::Null).with("diverged", Tensor::from_slice(&[1.0f32, f32::NAN]));
        let e = run_node(&plot, curves(nan), &[], &dir).unwrap_err();
        assert!(e.message.contains("\"diverged\""), "{}", e.message);
        let wrong = Bundle::new("gaussians", &Json::Null);
        assert!(run_node(&plot, curves(wrong), &[], &dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn points_input(bundle: Bundle) -> Vec<NamedValue> {
        vec![NamedValue::new("points", Value::Bundle(bundle))]
    }

    #[test]
    fn plot_points_writes_a_scatter_plot() {
        let dir = scratch("points");
        let plot = node::<PlotPoints>();
        let meta = serde_json::json!({"title": "Embedding", "x_label": "pc 1", "y_label": "pc 2",
                                      "labels": {"a": ["first", null, "third"]}});
        let bundle = Bundle::new("points", &meta)
            .with("a", Tensor::from_slice(&[0.1f32, 0.2, 0.3, 0.1, 0.2, 0.25]).view([3, 2]))
            .with("b", Tensor::from_slice(&[0.8f64, 0.7, 0.9, 0.8]).view([2, 2]));
        let at = [("file", Value::Text("plots/emb.png".into()))];
        let out = run_node(&plot, points_input(bundle.clone()), &at, &dir).unwrap();
        let file = text_of(&out, "file");
        assert!(file.ends_with("plots/emb.png"), "{file}");
        let img = image::open(&file).unwrap().to_rgb8();
        assert_eq!((img.width(), img.height()), (800, 600));
        for i in 0..2 {
            let c = plot::series_colour(i);
            assert!(img.pixels().filter(|p| **p == image::Rgb([c.0, c.1, c.2])).count() > 40, "series {i} not drawn");
        }
        let entries = std::fs::read_dir(dir.join("plots")).unwrap();
        let names: Vec<String> = entries.map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(names, vec!["emb.png".to_string()]);

        // A fixed range, and a custom size.
        let fixed = [
            ("auto_range", Value::Bool(false)),
            ("x_min", Value::Float(-1.0)),
            ("x_max", Value::Float(1.0)),
            ("y_min", Value::Float(-1.0)),
            ("y_max", Value::Float(1.0)),
            ("width", Value::Int(320)),
            ("height", Value::Int(240)),
        ];
        let out = run_node(&plot, points_input(bundle.clone()), &fixed, &dir).unwrap();
        let img = image::open(text_of(&out, "file")).unwrap();
        assert_eq!((img.width(), img.height()), (320, 240));
        let inverted = [("auto_range", Value::Bool(false)), ("x_min", Value::Float(2.0)), ("x_max", Value::Float(1.0))];
        let e = run_node(&plot, points_input(bundle.clone()), &inverted, &dir).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidParam);
        assert!(e.message.contains("x_min"), "{}", e.message);
        let e = run_node(&plot, points_input(bundle), &[("file", Value::Text("../p.png".into()))], &dir).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidParam);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn plot_points_errors_name_the_series() {
        let dir = scratch("points-errors");
        let plot = node::<PlotPoints>();
        let run = |b: Bundle| -> NodeError { run_node(&plot, points_input(b), &[], &dir).unwrap_err() };
        let ok = || Tensor::zeros([4, 2], (Kind::Float, Device::Cpu));
        let points = |meta: &Json| Bundle::new("points", meta);

        let e = run(Bundle::new(port::CURVES, &Json::Null).with("a", ok()));
        assert_eq!(e.kind, ErrorKind::InvalidInput);
        assert!(e.message.contains("expected points, got curves"), "{}", e.message);

        let wide = Tensor::zeros([4, 3], (Kind::Float, Device::Cpu));
        let e = run(points(&Json::Null).with("good", ok()).with("wide", wide));
        assert_eq!(e.location.as_ref().map(|l| l.as_str()), ROption::RSome("points"));
        assert!(e.message.contains("\"wide\"") && e.message.contains("[4, 3]"), "{}", e.message);
        let e = run(points(&Json::Null).with("flat", Tensor::zeros([8], (Kind::Float, Device::Cpu))));
        assert!(e.message.contains("\"flat\"") && e.message.contains("[8]"), "{}", e.message);

        let nan = Tensor::from_slice(&[0.0f32, 0.0, 1.0, 1.0, 2.0, f32::NAN]).view([3, 2]);
        let e = run(points(&Json::Null).with("ok", ok()).with("broken", nan));
        assert!(e.message.contains("\"broken\"") && e.message.contains("row 2"), "{}", e.message);

        let e = run(points(&Json::Null));
        assert!(e.message.contains("no series"), "{}", e.message);

        let e = run(points(&serde_json::json!({"labels": {"ghost": ["x"]}})).with("real", ok()));
        assert!(e.message.contains("\"ghost\""), "{}", e.message);
        let e = run(points(&serde_json::json!({"labels": {"real": ["a", "b", "c", "d", "e"]}})).with("real", ok()));
        assert!(e.message.contains("\"real\" has 5 labels for 4 points"), "{}", e.message);
        let e = run(points(&serde_json::json!({"labels": {"real": "abcd"}})).with("real", ok()));
        assert!(e.message.contains("\"real\""), "{}", e.message);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
