//! Result nodes: image grids, curve plots and text reports written under the run's output folder, and a cheap
//! image preview for a UI. Every file is written atomically (a temporary file, then a rename), and every path
//! follows the SDK's output-path policy (`files::output_path`): inside `ctx.out_dir()`, never through a link.

pub mod grid;
pub mod plot;

use std::path::{Path, PathBuf};
use subspace_sdk::tch::{Device, Kind, Tensor};
use subspace_sdk::*;

const FILES: &str = "Results: Files";
const PLOTS: &str = "Results: Plots";
const VERSION: &str = "1.0.0";

/// The tensor on an images input.
fn images_tensor(io: &NodeIo<'_>, port: &str) -> NodeResult<Tensor> {
    match io.input(port)? {
        Value::Images(t) | Value::Tensor(t) => Ok(t.tensor()),
        other => Err(NodeError::input(port, format!("expected images, got {}", other.port_type()))),
    }
}

/// Text on an input port.
fn text_input(io: &NodeIo<'_>, port: &str) -> NodeResult<String> {
    match io.input(port)? {
        Value::Text(t) => Ok(t.to_string()),
        other => Err(NodeError::input(port, format!("expected text, got {}", other.port_type()))),
    }
}

/// Parameter `file` resolved under the output folder.
fn out_path(io: &NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<PathBuf> {
    subspace_sdk::files::output_param(ctx, "file", &io.text("file")?)
}

fn write(path: &Path, bytes: &[u8], ctx: &Ctx<'_, '_>) -> NodeResult<String> {
    subspace_sdk::files::write_bytes_atomic(path, bytes).map_err(|e| e.at("file"))?;
    let shown = path.display().to_string();
    ctx.log(&format!("wrote {shown}"));
    Ok(shown)
}

/// A non-negative int parameter as usize/u32.
fn count_param(io: &NodeIo<'_>, name: &str, min: i64) -> NodeResult<i64> {
    let v = io.int(name)?;
    if v < min {
        return Err(NodeError::param(name, format!("must be at least {min}, got {v}")));
    }
    Ok(v)
}

/// `<stem>-<target>.<ext>` beside `path` (ext `png` when `path` has none).
fn target_path(path: &Path, target: &str) -> PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "grid".into());
    let ext = path.extension().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "png".into());
    path.with_file_name(format!("{stem}-{}.{ext}", grid::file_safe(target)))
}

struct SaveGrid;
impl Node for SaveGrid {
    fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::new(
            "subspace.save_grid",
            VERSION,
            "Save image grid",
            FILES,
            "Writes images as a PNG grid, or one grid per edit target (rows = samples, columns = steps) given a layout.",
        )
        .input(PortSpec::new("images", port::IMAGES, "images N x C x H x W in [0, 1], C = 1 or 3, any device"))
        .input(
            PortSpec::new("layout", port::TEXT, "JSON {targets, samples, steps, ratios}: images ordered target, sample, step")
                .optional(),
        )
        .param(ParamSpec::path("file", "grid.png", "PNG file under the run's output folder (with a layout: <stem>-<target>.png)"))
        .param(ParamSpec::int("columns", 0, 0, 4096, "columns of the grid without a layout; 0 = ceil(sqrt(N))"))
        .param(ParamSpec::int("padding", 2, 0, 256, "white pixels between and around the images"))
        .param(ParamSpec::int("scale", 1, 1, 16, "nearest-neighbour upscale factor of every image"))
        .output(PortSpec::new("files", port::TEXT, "the written paths, one per line"))
        // Writes into the run's folder, which is not part of the cache key: runs every time.
        .volatile()
    }
    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let t = images_tensor(io, "images")?;
        let batch = grid::ImageBatch::from_tensor(&t).map_err(|m| NodeError::input("images", m))?;
        let path = out_path(io, ctx)?;
        let columns = count_param(io, "columns", 0)? as usize;
        let style = grid::GridStyle { padding: count_param(io, "padding", 0)? as u32, scale: count_param(io, "scale", 1)? as u32 };
        let mut written = Vec::new();
        match io.get("layout") {
            None => {
                let img = grid::grid(&batch, columns, style).map_err(|m| NodeError::input("images", m))?;
                written.push(write(&path, &grid::png_bytes(&img).map_err(NodeError::internal)?, ctx)?);
            }
            Some(Value::Text(text)) => {
                let layout = grid::parse_layout(text.as_str(), batch.n).map_err(|m| NodeError::input("layout", m))?;
                let per = layout.samples * layout.steps;
                let total = layout.targets.len() as u64;
                for (k, target) in layout.targets.iter().enumerate() {
                    ctx.check_cancelled()?;
                    ctx.progress(k as u64, total, target);
                    let indices: Vec<usize> = (k * per..(k + 1) * per).collect();
                    let img = grid::compose(&batch, &indices, layout.samples, layout.steps, style)
                        .map_err(|m| NodeError::input("images", m))?;
                    let bytes = grid::png_bytes(&img).map_err(NodeError::internal)?;
                    // Each target's file passes the policy too (it could be a link beside the grid file).
                    let rel = target_path(Path::new(&io.text("file")?), target);
                    let file = subspace_sdk::files::output_param(ctx, "file", &rel.to_string_lossy())?;
                    written.push(write(&file, &bytes, ctx)?);
                }
                ctx.progress(total, total, "done");
            }
            Some(other) => return Err(NodeError::input("layout", format!("expected text, got {}", other.port_type()))),
        }
        io.output("files", Value::Text(written.join("\n").into()));
        Ok(())
    }
}

/// The series of a curves bundle, as (name, values).
fn read_curves(bundle: &Bundle) -> NodeResult<Vec<(String, Vec<f64>)>> {
    let mut out = Vec::new();
    for nt in bundle.tensors.iter() {
        let name = nt.name.to_string();
        let t = nt.tensor.tensor();
        if t.dim() != 1 {
            return Err(NodeError::input("curves", format!("curve {name:?} must be 1-D, got shape {:?}", t.size())));
        }
        let t = t.detach().to_device(Device::Cpu).to_kind(Kind::Double).contiguous();
        let ys = Vec::<f64>::try_from(&t).map_err(|e| NodeError::input("curves", format!("cannot read curve {name:?}: {e}")))?;
        out.push((name, ys));
    }
    Ok(out)
}

struct PlotCurves;
impl Node for PlotCurves {
    fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::new(
            "subspace.plot_curves",
            VERSION,
            "Plot curves",
            PLOTS,
            "Draws named series (e.g. loss curves) as a line plot PNG with axes, legend and title.",
        )
        .input(PortSpec::new("curves", port::CURVES, "curves bundle: one 1-D series per curve; meta may give title, x_label, y_label"))
        .param(ParamSpec::path("file", "curves.png", "PNG file under the run's output folder"))
        .param(ParamSpec::text("title", "", "plot title; empty = the bundle's meta title"))
        .param(ParamSpec::bool("log_y", false, "logarithmic value axis (every value must be positive)"))
        .param(ParamSpec::int("width", 800, 64, 8192, "image width in pixels"))
        .param(ParamSpec::int("height", 500, 64, 8192, "image height in pixels"))
        .output(PortSpec::new("file", port::TEXT, "the written path"))
        .volatile()
    }
    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let bundle = io.bundle("curves", port::CURVES)?;
        let curves = read_curves(&bundle)?;
        let meta = bundle.meta_json();
        let meta_text = |key: &str, default: &str| meta.get(key).and_then(|v| v.as_str()).unwrap_or(default).to_string();
        let title = io.text("title")?;
        let opts = plot::PlotOptions {
            title: if title.is_empty() { meta_text("title", "") } else { title },
            x_label: meta_text("x_label", "step"),
            y_label: meta_text("y_label", ""),
            log_y: io.bool("log_y")?,
            width: count_param(io, "width", 64)? as u32,
            height: count_param(io, "height", 64)? as u32,
        };
        let path = out_path(io, ctx)?;
        plot::check_curves(&curves, opts.log_y).map_err(|m| NodeError::input("curves", m))?;
        let png = plot::render_curves(&curves, &opts).map_err(NodeError::internal)?;
        let shown = write(&path, &png, ctx)?;
        io.output("file", Value::Text(shown.into()));
        Ok(())
    }
}

/// Port type of a points bundle (named M x 2 point sets); the SDK has no constant for it.
const POINTS: &str = "points";

/// The series of a points bundle, with the per-point labels of its meta (`labels: {series: [text, ...]}`).
fn read_points(bundle: &Bundle) -> NodeResult<Vec<plot::PointSeries>> {
    let meta = bundle.meta_json();
    let labels = meta.get("labels").filter(|v| !v.is_null());
    let labels = match labels {
        None => None,
        Some(serde_json::Value::Object(m)) => Some(m),
        Some(other) => return Err(NodeError::input("points", format!("meta labels must map series names to lists of text, got {other}"))),
    };
    let mut out = Vec::new();
    for nt in bundle.tensors.iter() {
        let name = nt.name.to_string();
        let t = nt.tensor.tensor();
        let shape = t.size();
        if shape.len() != 2 || shape[1] != 2 {
            return Err(NodeError::input("points", format!("series {name:?} must be M x 2 (x, y), got shape {shape:?}")));
        }
        if !t.is_floating_point() {
            return Err(NodeError::input("points", format!("series {name:?} must hold floats, got {:?}", t.kind())));
        }
        let t = t.detach().to_device(Device::Cpu).to_kind(Kind::Double).contiguous().view([-1]);
        let flat = Vec::<f64>::try_from(&t).map_err(|e| NodeError::input("points", format!("cannot read series {name:?}: {e}")))?;
        let points: Vec<(f64, f64)> = flat.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        let texts = match labels.and_then(|m| m.get(&name)) {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    serde_json::Value::String(s) => Ok(s.clone()),
                    serde_json::Value::Null => Ok(String::new()),
                    serde_json::Value::Number(n) => Ok(n.to_string()),
                    other => Err(NodeError::input("points", format!("label {i} of series {name:?} must be text, got {other}"))),
                })
                .collect::<NodeResult<_>>()?,
            Some(other) => return Err(NodeError::input("points", format!("labels of series {name:?} must be a list, got {other}"))),
        };
        out.push(plot::PointSeries { name, points, labels: texts });
    }
    if let Some(unknown) = labels.and_then(|m| m.keys().find(|k| !out.iter().any(|s| &s.name == *k))) {
        return Err(NodeError::input("points", format!("meta labels name series {unknown:?}, which the bundle does not hold")));
    }
    Ok(out)
}

struct PlotPoints;
impl Node for PlotPoints {
    fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::new(
            "subspace.plot_points",
            VERSION,
            "Plot points",
            PLOTS,
            "Draws named point sets as a scatter plot PNG: one colour and marker per series, optional text beside each point, legend, axes and title.",
        )
        .input(PortSpec::new(
            "points",
            POINTS,
            "points bundle: one M x 2 (x, y) float series per tensor; meta may give title, x_label, y_label and labels {series: [text per point]}",
        ))
        .param(ParamSpec::path("file", "points.png", "PNG file under the run's output folder"))
        .param(ParamSpec::text("title", "", "plot title; empty = the bundle's meta title"))
        .param(ParamSpec::int("width", 800, 64, 8192, "image width in pixels"))
        .param(ParamSpec::int("height", 600, 64, 8192, "image height in pixels"))
        .param(ParamSpec::bool("auto_range", true, "fit the axes to the data; off = use x_min, x_max, y_min, y_max"))
        .param(ParamSpec::float("x_min", 0.0, -1e12, 1e12, "left end of the x axis (auto_range off)"))
        .param(ParamSpec::float("x_max", 1.0, -1e12, 1e12, "right end of the x axis (auto_range off)"))
        .param(ParamSpec::float("y_min", 0.0, -1e12, 1e12, "bottom of the y axis (auto_range off)"))
        .param(ParamSpec::float("y_max", 1.0, -1e12, 1e12, "top of the y axis (auto_range off)"))
        .output(PortSpec::new("file", port::TEXT, "the written path"))
        .volatile()
    }
    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let bundle = io.bundle("points", POINTS)?;
        let series = read_points(&bundle)?;
        let meta = bundle.meta_json();
        let meta_text = |key: &str, default: &str| meta.get(key).and_then(|v| v.as_str()).unwrap_or(default).to_string();
        let title = io.text("title")?;
        let range = if io.bool("auto_range")? {
            None
        } else {
            let (x0, x1, y0, y1) = (io.float("x_min")?, io.float("x_max")?, io.float("y_min")?, io.float("y_max")?);
            if x0 >= x1 {
                return Err(NodeError::param("x_max", format!("must be above x_min ({x0}), got {x1}")));
            }
            if y0 >= y1 {
                return Err(NodeError::param("y_max", format!("must be above y_min ({y0}), got {y1}")));
            }
            Some(((x0, x1), (y0, y1)))
        };
        let opts = plot::PointsOptions {
            title: if title.is_empty() { meta_text("title", "") } else { title },
            x_label: meta_text("x_label", "x"),
            y_label: meta_text("y_label", "y"),
            width: count_param(io, "width", 64)? as u32,
            height: count_param(io, "height", 64)? as u32,
            range,
        };
        let path = out_path(io, ctx)?;
        plot::check_points(&series, opts.range).map_err(|m| NodeError::input("points", m))?;
        let png = plot::render_points(&series, &opts).map_err(NodeError::internal)?;
        let shown = write(&path, &png, ctx)?;
        io.output("file", Value::Text(shown.into()));
        Ok(())
    }
}

struct SaveText;
impl Node for SaveText {
    fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::new("subspace.save_text", VERSION, "Save text", FILES, "Writes text (a report, a table) to a file.")
            .input(PortSpec::new("text", port::TEXT, "the text to write"))
            .param(ParamSpec::path("file", "report.md", "file under the run's output folder"))
            .output(PortSpec::new("file", port::TEXT, "the written path"))
            .volatile()
    }
    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let text = text_input(io, "text")?;
        let path = out_path(io, ctx)?;
        let shown = write(&path, text.as_bytes(), ctx)?;
        io.output("file", Value::Text(shown.into()));
        Ok(())
    }
}

/// The first `count` images, on the CPU, resized so that the longer side is `size` pixels.
pub fn preview(t: &Tensor, count: i64, size: i64) -> Result<Tensor, String> {
    let s = t.size();
    if s.len() != 4 {
        return Err(format!("images must be 4-D (N x C x H x W), got shape {s:?}"));
    }
    if s[1] != 1 && s[1] != 3 {
        return Err(format!("images must have 1 or 3 channels, got {} (shape {s:?})", s[1]));
    }
    if !t.is_floating_point() {
        return Err(format!("images must be floats in [0, 1], got {:?}", t.kind()));
    }
    if s.iter().any(|d| *d == 0) {
        return Err(format!("images are empty (shape {s:?})"));
    }
    let k = count.clamp(1, s[0]);
    let x = t.detach().narrow(0, 0, k).to_device(Device::Cpu).to_kind(Kind::Float);
    if x.isfinite().logical_not().any().int64_value(&[]) != 0 {
        return Err("images hold NaN or infinite values".into());
    }
    let (h, w) = (s[2], s[3]);
    let f = size as f64 / h.max(w) as f64;
    let (nh, nw) = (((h as f64 * f).round() as i64).max(1), ((w as f64 * f).round() as i64).max(1));
    let x = if (nh, nw) == (h, w) {
        x
    } else if nh < h {
        // Area averaging when shrinking: no aliasing.
        x.adaptive_avg_pool2d([nh, nw])
    } else {
        x.upsample_bilinear2d([nh, nw], false, None::<f64>, None::<f64>)
    };
    Ok(x.clamp(0.0, 1.0).contiguous())
}

struct ImagePreview;
impl Node for ImagePreview {
    fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::new("subspace.image_preview", VERSION, "Preview", FILES, "The first few images, small and on the CPU, for a UI to show.")
            .input(PortSpec::new("images", port::IMAGES, "images N x C x H x W in [0, 1], any device"))
            .param(ParamSpec::int("count", 4, 1, 256, "how many images (the first ones)"))
            .param(ParamSpec::int("size", 64, 8, 1024, "longer side of each preview image, in pixels"))
            .output(PortSpec::new("images", port::IMAGES, "the first `count` images, resized, on the CPU"))
    }
    fn run(&self, io: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
        let t = images_tensor(io, "images")?;
        let count = count_param(io, "count", 1)?;
        let size = count_param(io, "size", 1)?;
        let out = preview(&t, count, size).map_err(|m| NodeError::input("images", m))?;
        io.output("images", Value::Images(out.into()));
        Ok(())
    }
}

export_plugin!(nodes: [SaveGrid, PlotCurves, PlotPoints, SaveText, ImagePreview]);

#[cfg(test)]
mod tests {
    use super::*;

    use subspace_sdk::abi_stable::sabi_trait::TD_Opaque;
    use subspace_sdk::abi_stable::std_types::{ROption, RStr};

    struct Quiet;
    impl HostServices for Quiet {
        fn progress(&self, _: u64, _: u64, _: RStr<'_>) {}
        fn is_cancelled(&self) -> bool {
            false
        }
        fn log(&self, _: RStr<'_>) {}
        fn cached_model(&self, _: RStr<'_>) -> ROption<ModelRef> {
            ROption::RNone
        }
        fn cache_model(&self, _: RStr<'_>, _: ModelRef) {}
    }

    /// Runs `node` as the host would: parameters defaulted, then overridden by `params`.
    fn run_node(node: &dyn Node, inputs: Vec<NamedValue>, params: &[(&str, Value)], out_dir: &Path) -> NodeResult<Vec<NamedValue>> {
        let d = node.descriptor();
        let params: Vec<NamedValue> = d
            .params
            .iter()
            .map(|p| {
                let v = params.iter().find(|(n, _)| *n == p.name.as_str()).map_or(p.default.clone(), |(_, v)| v.clone());
                NamedValue::new(p.name.as_str(), v)
            })
            .collect();
        let out_dir = out_dir.to_string_lossy().to_string();
        let svc = Quiet;
        let raw = NodeContext {
            node_id: RStr::from("test"),
            device: DeviceSpec::CPU,
            seed: 0,
            out_dir: RStr::from(out_dir.as_str()),
            services: HostServices_TO::from_const(&svc, TD_Opaque),
        };
        let ctx = Ctx { raw: &raw };
        let mut io = NodeIo::new(inputs.as_slice().into(), params.as_slice().into());
        node.run(&mut io, &ctx)?;
        Ok(io.into_outputs().into_vec())
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("subspace-results-node-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn text_of(out: &[NamedValue], port: &str) -> String {
        match &out.iter().find(|v| v.name.as_str() == port).unwrap().value {
            Value::Text(t) => t.to_string(),
            other => panic!("{port} is {}", other.port_type()),
        }
    }

    fn images(n: i64) -> NamedValue {
        NamedValue::new("images", Value::Images(Tensor::rand([n, 3, 8, 8], (Kind::Float, Device::Cpu)).into()))
    }

    #[test]
    fn save_grid_writes_one_file_per_target() {
        let dir = scratch("layout");
        let layout = r#"{"targets": ["hair.black", "smile"], "samples": 2, "steps": 3, "ratios": [0, 0.5, 1]}"#;
        let inputs = vec![images(12), NamedValue::new("layout", Value::Text(layout.into()))];
        let out = run_node(&SaveGrid, inputs, &[("file", Value::Text("edits/edit.png".into()))], &dir).unwrap();
        let files: Vec<String> = text_of(&out, "files").lines().map(str::to_string).collect();
        assert_eq!(files.len(), 2);
        assert!(files[0].ends_with("edits/edit-hair.black.png") && files[1].ends_with("edits/edit-smile.png"), "{files:?}");
        for f in &files {
            let img = image::open(f).unwrap();
            // 3 steps across, 2 samples down, 8 px images, padding 2.
            assert_eq!((img.width(), img.height()), (3 * 10 + 2, 2 * 10 + 2));
        }
        let names: Vec<String> = std::fs::read_dir(dir.join("edits")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");

        // A target's file that is a link is refused like the grid file itself.
        let elsewhere = dir.join("elsewhere.png");
        std::fs::remove_file(dir.join("edits/edit-smile.png")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.join("edits/edit-smile.png")).unwrap();
        let inputs = vec![images(12), NamedValue::new("layout", Value::Text(layout.into()))];
        let e = run_node(&SaveGrid, inputs, &[("file", Value::Text("edits/edit.png".into()))], &dir).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidParam);
        assert!(e.message.contains("edit-smile.png") && e.message.contains("symbolic link"), "{}", e.message);
        assert!(!elsewhere.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn save_grid_without_layout_and_its_errors() {
        let dir = scratch("plain");
        let out = run_node(&SaveGrid, vec![images(5)], &[("scale", Value::Int(2))], &dir).unwrap();
        let img = image::open(text_of(&out, "files")).unwrap();
        assert_eq!((img.width(), img.height()), (3 * 18 + 2, 2 * 18 + 2));

        let bad = vec![images(5), NamedValue::new("layout", Value::Text(r#"{"targets": ["a"], "samples": 2, "steps": 3}"#.into()))];
        let e = run_node(&SaveGrid, bad, &[], &dir).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidInput);
        assert_eq!(e.location.as_ref().map(|l| l.as_str()), ROption::RSome("layout"));
        assert!(e.message.contains("= 6 images, but 5"), "{}", e.message);

        let three_d = NamedValue::new("images", Value::Images(Tensor::zeros([2, 8, 8], (Kind::Float, Device::Cpu)).into()));
        let e = run_node(&SaveGrid, vec![three_d], &[], &dir).unwrap_err();
        assert!(e.message.contains("4-D"), "{}", e.message);

        let e = run_node(&SaveGrid, vec![images(1)], &[("file", Value::Text("../out.png".into()))], &dir).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidParam);

        std::fs::write(dir.join("blocker"), b"x").unwrap();
        let e = run_node(&SaveGrid, vec![images(1)], &[("file", Value::Text("blocker/g.png".into()))], &dir).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Io);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn plot_and_text_nodes_write_files() {
        let dir = scratch("plot");
        let meta = serde_json::json!({"title": "Training", "x_label": "step", "y_label": "loss"});
        let bundle = Bundle::new(port::CURVES, &meta)
            .with("train", Tensor::from_slice(&[3.0f32, 2.0, 1.5, 1.2]))
            .with("val", Tensor::from_slice(&[3.5f32, 2.5, 2.0, 1.9]));
        let out = run_node(&PlotCurves, vec![NamedValue::new("curves", Value::Bundle(bundle))], &[("width", Value::Int(400)), ("height", Value::Int(300))], &dir).unwrap();
        let img = image::open(text_of(&out, "file")).unwrap();
        assert_eq!((img.width(), img.height()), (400, 300));

        let nan = Bundle::new(port::CURVES, &serde_json::Value::Null).with("diverged", Tensor::from_slice(&[1.0f32, f32::NAN]));
        let e = run_node(&PlotCurves, vec![NamedValue::new("curves", Value::Bundle(nan))], &[], &dir).unwrap_err();
        assert!(e.message.contains("\"diverged\""), "{}", e.message);
        let wrong = Bundle::new("gaussians", &serde_json::Value::Null);
        assert!(run_node(&PlotCurves, vec![NamedValue::new("curves", Value::Bundle(wrong))], &[], &dir).is_err());

        let out = run_node(&SaveText, vec![NamedValue::new("text", Value::Text("# Report\n".into()))], &[], &dir).unwrap();
        assert_eq!(std::fs::read_to_string(text_of(&out, "file")).unwrap(), "# Report\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn descriptors_are_complete() {
        for n in [&SaveGrid as &dyn Node, &PlotCurves, &PlotPoints, &SaveText, &ImagePreview] {
            let d = n.descriptor();
            assert!(d.id.starts_with("subspace."), "{}", d.id);
            assert_eq!(d.version.as_str(), "1.0.0");
            assert!(d.category.starts_with("Results: "));
            for p in d.inputs.iter().chain(d.outputs.iter()) {
                assert!(!p.description.is_empty(), "{} port {}", d.id, p.name);
            }
            for p in d.params.iter() {
                assert!(!p.description.is_empty(), "{} param {}", d.id, p.name);
                p.check(&p.default).unwrap();
            }
        }
    }

    #[test]
    fn target_files_sit_beside_the_grid_file() {
        assert_eq!(target_path(Path::new("/o/edit.png"), "hair.black"), PathBuf::from("/o/edit-hair.black.png"));
        assert_eq!(target_path(Path::new("/o/sub/edit"), "a b"), PathBuf::from("/o/sub/edit-a_b.png"));
    }

    #[test]
    fn preview_takes_the_first_images_and_resizes() {
        let t = Tensor::rand([6, 3, 32, 16], (Kind::Float, Device::Cpu));
        let p = preview(&t, 4, 8).unwrap();
        assert_eq!(p.size(), vec![4, 3, 8, 4]);
        let p = preview(&t, 10, 64).unwrap();
        assert_eq!(p.size(), vec![6, 3, 64, 32]);
        let same = preview(&t, 2, 32).unwrap();
        assert!(same.equal(&t.narrow(0, 0, 2)));
        assert!(preview(&Tensor::zeros([2, 2, 4, 4], (Kind::Float, Device::Cpu)), 1, 8).unwrap_err().contains("got 2"));
        let nan = Tensor::full([1, 1, 2, 2], f64::NAN, (Kind::Float, Device::Cpu));
        assert!(preview(&nan, 1, 8).unwrap_err().contains("NaN"));
    }

    fn points_input(bundle: Bundle) -> Vec<NamedValue> {
        vec![NamedValue::new("points", Value::Bundle(bundle))]
    }

    #[test]
    fn plot_points_writes_a_scatter_plot() {
        let dir = scratch("points");
        let meta = serde_json::json!({"title": "Embedding", "x_label": "pc 1", "y_label": "pc 2", "labels": {"a": ["first", null, "third"]}});
        let bundle = Bundle::new(POINTS, &meta)
            .with("a", Tensor::from_slice(&[0.1f32, 0.2, 0.3, 0.1, 0.2, 0.25]).view([3, 2]))
            .with("b", Tensor::from_slice(&[0.8f64, 0.7, 0.9, 0.8]).view([2, 2]));
        let out = run_node(&PlotPoints, points_input(bundle.clone()), &[("file", Value::Text("plots/emb.png".into()))], &dir).unwrap();
        let file = text_of(&out, "file");
        assert!(file.ends_with("plots/emb.png"), "{file}");
        let img = image::open(&file).unwrap().to_rgb8();
        assert_eq!((img.width(), img.height()), (800, 600));
        for i in 0..2 {
            let c = plot::series_colour(i);
            assert!(img.pixels().filter(|p| **p == image::Rgb([c.0, c.1, c.2])).count() > 40, "series {i} not drawn");
        }
        let names: Vec<String> = std::fs::read_dir(dir.join("plots")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
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
        let out = run_node(&PlotPoints, points_input(bundle.clone()), &fixed, &dir).unwrap();
        let img = image::open(text_of(&out, "file")).unwrap();
        assert_eq!((img.width(), img.height()), (320, 240));
        let inverted = [("auto_range", Value::Bool(false)), ("x_min", Value::Float(2.0)), ("x_max", Value::Float(1.0))];
        let e = run_node(&PlotPoints, points_input(bundle.clone()), &inverted, &dir).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidParam);
        assert!(e.message.contains("x_min"), "{}", e.message);
        let e = run_node(&PlotPoints, points_input(bundle), &[("file", Value::Text("../p.png".into()))], &dir).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidParam);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn plot_points_errors_name_the_series() {
        let dir = scratch("points-errors");
        let run = |b: Bundle| run_node(&PlotPoints, points_input(b), &[], &dir).unwrap_err();
        let ok = || Tensor::zeros([4, 2], (Kind::Float, Device::Cpu));

        let e = run(Bundle::new(port::CURVES, &serde_json::Value::Null).with("a", ok()));
        assert_eq!(e.kind, ErrorKind::InvalidInput);
        assert!(e.message.contains("expected points, got curves"), "{}", e.message);

        let e = run(Bundle::new(POINTS, &serde_json::Value::Null).with("good", ok()).with("wide", Tensor::zeros([4, 3], (Kind::Float, Device::Cpu))));
        assert_eq!(e.location.as_ref().map(|l| l.as_str()), ROption::RSome("points"));
        assert!(e.message.contains("\"wide\"") && e.message.contains("[4, 3]"), "{}", e.message);
        let e = run(Bundle::new(POINTS, &serde_json::Value::Null).with("flat", Tensor::zeros([8], (Kind::Float, Device::Cpu))));
        assert!(e.message.contains("\"flat\"") && e.message.contains("[8]"), "{}", e.message);

        let nan = Tensor::from_slice(&[0.0f32, 0.0, 1.0, 1.0, 2.0, f32::NAN]).view([3, 2]);
        let e = run(Bundle::new(POINTS, &serde_json::Value::Null).with("ok", ok()).with("broken", nan));
        assert!(e.message.contains("\"broken\"") && e.message.contains("row 2"), "{}", e.message);

        let e = run(Bundle::new(POINTS, &serde_json::Value::Null));
        assert!(e.message.contains("no series"), "{}", e.message);

        let meta = serde_json::json!({"labels": {"ghost": ["x"]}});
        let e = run(Bundle::new(POINTS, &meta).with("real", ok()));
        assert!(e.message.contains("\"ghost\""), "{}", e.message);
        let meta = serde_json::json!({"labels": {"real": ["a", "b", "c", "d", "e"]}});
        let e = run(Bundle::new(POINTS, &meta).with("real", ok()));
        assert!(e.message.contains("\"real\" has 5 labels for 4 points"), "{}", e.message);
        let meta = serde_json::json!({"labels": {"real": "abcd"}});
        assert!(run(Bundle::new(POINTS, &meta).with("real", ok())).message.contains("\"real\""));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
