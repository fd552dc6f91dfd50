//! Files and previews: image grids (one per edit target given a layout), text and JSON reports, a UI preview.

use crate::{grid, out_path, write};
use std::path::{Path, PathBuf};
use subspace_sdk::files::output_param;
use subspace_sdk::prelude::*;

const FILES: &str = "Results: Files";

/// `<stem>-<target>.<ext>` beside `path` (ext `png` when `path` has none).
fn target_path(path: &Path, target: &str) -> PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "grid".into());
    let ext = path.extension().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "png".into());
    path.with_file_name(format!("{stem}-{}.{ext}", grid::file_safe(target)))
}

/// Writes images as one PNG grid, or one grid per edit target given a layout.
pub struct SaveGrid {
    images: Input<Images>,
    layout: Optional<EditLayout>,
    beside: Optional<Images>,
    beside_layout: Optional<EditLayout>,
    file: Param<String>,
    columns: Param<i64>,
    padding: Param<i64>,
    scale: Param<i64>,
    files: Output<String>,
}

impl Declared for SaveGrid {
    const INFO: NodeInfo = NodeInfo {
        id: "subspace.save_grid",
        version: "2.1.0",
        name: "Save image grid",
        category: FILES,
        doc: "Writes images as a PNG grid, or one grid per edit target (rows = samples, columns = steps) given a \
              layout; with a second edit of the same pictures (beside + beside_layout), each target's two grids side \
              by side, to compare two edit methods.",
    };
    fn declare(d: &mut Declare) -> Self {
        // Writes into the run's folder, which is not part of the cache key: runs every time.
        d.volatile();
        SaveGrid {
            images: d.input("images", "images N x C x H x W in [0, 1], C = 1 or 3, any device"),
            layout: d.optional("layout", "the edit's layout: images ordered target, then sample, then step"),
            beside: d.optional("beside", "another edit of the same pictures, drawn to the right of each target's grid"),
            beside_layout: d.optional("beside_layout", "the layout of `beside` (same targets and samples)"),
            file: d.path(
                "file",
                "grid.png",
                "PNG file under the run's output folder (with a layout: <stem>-<target>.png)",
            ),
            columns: d.int("columns", 0, 0..=4096, "columns of the grid without a layout; 0 = ceil(sqrt(N))"),
            padding: d.int("padding", 2, 0..=256, "white pixels between and around the images"),
            scale: d.int("scale", 1, 1..=16, "nearest-neighbour upscale factor of every image"),
            files: d.output("files", "the written paths, one per line"),
        }
    }
    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let bad_images = |m: String| NodeError::input(self.images.name(), m);
        let Images(t) = io.read(&self.images)?;
        let batch = grid::ImageBatch::from_tensor(&t).map_err(bad_images)?;
        let rel = io.read(&self.file)?;
        let path = output_param(ctx, self.file.name(), &rel)?;
        let columns = io.read(&self.columns)? as usize;
        let style = grid::GridStyle { padding: io.read(&self.padding)? as u32, scale: io.read(&self.scale)? as u32 };
        let mut written = Vec::new();
        match io.read(&self.layout)? {
            None => {
                let img = grid::grid(&batch, columns, style).map_err(bad_images)?;
                written.push(write(&path, &grid::png_bytes(&img).map_err(NodeError::internal)?, &self.file, ctx)?);
            }
            Some(layout) => {
                grid::check_layout(&layout, batch.n).map_err(|m| NodeError::input(self.layout.name(), m))?;
                let beside = self.beside(io, &layout)?;
                let total = layout.targets.len() as u64;
                for (k, target) in layout.targets.iter().enumerate() {
                    ctx.check_cancelled()?;
                    ctx.progress(k as u64, total, target);
                    let mut img = grid::target_grid(&batch, &layout, k, style).map_err(bad_images)?;
                    if let Some((other, other_layout)) = &beside {
                        let j = other_layout.targets.iter().position(|t| t == target).unwrap_or(k);
                        let right = grid::target_grid(other, other_layout, j, style).map_err(bad_images)?;
                        img = grid::side_by_side(&img, &right, 4 * style.padding.max(2));
                    }
                    let bytes = grid::png_bytes(&img).map_err(NodeError::internal)?;
                    // Each target's file passes the policy too (it could be a link beside the grid file).
                    let target_rel = target_path(Path::new(&rel), target);
                    let file = output_param(ctx, self.file.name(), &target_rel.to_string_lossy())?;
                    written.push(write(&file, &bytes, &self.file, ctx)?);
                }
                ctx.progress(total, total, "done");
            }
        }
        io.write(&self.files, written.join("\n"));
        Ok(())
    }
}

impl SaveGrid {
    /// The second edit to draw beside the first, checked: both inputs or neither, the same targets and samples.
    fn beside(&self, io: &NodeIo<'_>, layout: &EditLayout) -> NodeResult<Option<(grid::ImageBatch, EditLayout)>> {
        let (images, other) = match (io.read(&self.beside)?, io.read(&self.beside_layout)?) {
            (None, None) => return Ok(None),
            (Some(Images(t)), Some(l)) => (t, l),
            (Some(_), None) => return Err(NodeError::input(self.beside_layout.name(), "give the layout of `beside`")),
            (None, Some(_)) => {
                return Err(NodeError::input(self.beside.name(), "give the images `beside_layout` orders"))
            }
        };
        let batch = grid::ImageBatch::from_tensor(&images).map_err(|m| NodeError::input(self.beside.name(), m))?;
        grid::check_layout(&other, batch.n).map_err(|m| NodeError::input(self.beside_layout.name(), m))?;
        let mut a = layout.targets.clone();
        let mut b = other.targets.clone();
        a.sort();
        b.sort();
        if a != b || other.samples != layout.samples {
            let m = format!(
                "edits {} pictures toward {:?}, but `layout` {} toward {:?}: draw two edits of the same pictures",
                other.samples, other.targets, layout.samples, layout.targets
            );
            return Err(NodeError::input(self.beside_layout.name(), m));
        }
        Ok(Some((batch, other)))
    }
}

/// What [`SaveText`] writes for `value`: text as it is, a JSON document (a bundle without tensors, such as a typed
/// report) pretty-printed.
fn document_text(port: &str, value: &Value) -> NodeResult<String> {
    match value {
        Value::Text(t) => Ok(t.to_string()),
        Value::Bundle(b) if b.tensors.is_empty() => {
            let doc: serde_json::Value = serde_json::from_str(b.meta.as_str())
                .map_err(|e| NodeError::input(port, format!("the {} document is malformed: {e}", b.kind)))?;
            let text = serde_json::to_string_pretty(&doc).map_err(|e| NodeError::internal(e.to_string()))?;
            Ok(text + "\n")
        }
        Value::Bundle(b) => Err(NodeError::input(
            port,
            format!("a {} bundle holds tensors; only text and JSON documents are written as text", b.kind),
        )),
        other => Err(NodeError::input(port, format!("expected text or a JSON document, got {}", other.port_type()))),
    }
}

/// Writes text, or a JSON document such as a report, to a file.
pub struct SaveText {
    text: Input<Value>,
    file: Param<String>,
    out: Output<String>,
}

impl Declared for SaveText {
    const INFO: NodeInfo = NodeInfo {
        id: "subspace.save_text",
        version: "1.1.0",
        name: "Save text",
        category: FILES,
        doc: "Writes text (a report, a table) or a JSON document (a typed report, pretty-printed) to a file.",
    };
    fn declare(d: &mut Declare) -> Self {
        d.volatile();
        SaveText {
            text: d.input("text", "the text to write, or a JSON document (written pretty-printed)"),
            file: d.path("file", "report.md", "file under the run's output folder"),
            out: d.output("file", "the written path"),
        }
    }
    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let text = document_text(self.text.name(), &io.read(&self.text)?)?;
        let path = out_path(io, ctx, &self.file)?;
        let shown = write(&path, text.as_bytes(), &self.file, ctx)?;
        io.write(&self.out, shown);
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
    if s.contains(&0) {
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

/// The first few images, small and on the CPU, for a UI to show.
pub struct ImagePreview {
    images: Input<Images>,
    count: Param<i64>,
    size: Param<i64>,
    out: Output<Images>,
}

impl Declared for ImagePreview {
    const INFO: NodeInfo = NodeInfo {
        id: "subspace.image_preview",
        version: "1.0.0",
        name: "Preview",
        category: FILES,
        doc: "The first few images, small and on the CPU, for a UI to show.",
    };
    fn declare(d: &mut Declare) -> Self {
        ImagePreview {
            images: d.input("images", "images N x C x H x W in [0, 1], any device"),
            count: d.int("count", 4, 1..=256, "how many images (the first ones)"),
            size: d.int("size", 64, 8..=1024, "longer side of each preview image, in pixels"),
            out: d.output("images", "the first `count` images, resized, on the CPU"),
        }
    }
    fn run(&self, io: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
        let Images(t) = io.read(&self.images)?;
        let out = preview(&t, io.read(&self.count)?, io.read(&self.size)?)
            .map_err(|m| NodeError::input(self.images.name(), m))?;
        io.write(&self.out, Images(out));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{node, run_node, scratch, text_of};
    use subspace_sdk::abi_stable::std_types::ROption;
    use subspace_sdk::declare::PortValue;
    use subspace_sdk::{ErrorKind, NamedValue};

    fn images(n: i64) -> NamedValue {
        NamedValue::new("images", Value::Images(Tensor::rand([n, 3, 8, 8], (Kind::Float, Device::Cpu)).into()))
    }

    fn layout(targets: &[&str], samples: i64, ratios: &[f64]) -> NamedValue {
        let targets = targets.iter().map(|t| t.to_string()).collect();
        let l = EditLayout { targets, samples, steps: ratios.len() as i64, ratios: ratios.to_vec() };
        NamedValue::new("layout", l.into_value())
    }

    #[test]
    fn save_grid_writes_one_file_per_target() {
        let dir = scratch("layout");
        let grid = node::<SaveGrid>();
        let edit = || layout(&["hair.black", "smile"], 2, &[0.0, 0.5, 1.0]);
        let file = [("file", Value::Text("edits/edit.png".into()))];
        let out = run_node(&grid, vec![images(12), edit()], &file, &dir).unwrap();
        let files: Vec<String> = text_of(&out, "files").lines().map(str::to_string).collect();
        assert_eq!(files.len(), 2);
        assert!(files[0].ends_with("edits/edit-hair.black.png"), "{files:?}");
        assert!(files[1].ends_with("edits/edit-smile.png"), "{files:?}");
        for f in &files {
            let img = image::open(f).unwrap();
            // 3 steps across, 2 samples down, 8 px images, padding 2.
            assert_eq!((img.width(), img.height()), (3 * 10 + 2, 2 * 10 + 2));
        }
        let entries = std::fs::read_dir(dir.join("edits")).unwrap();
        let names: Vec<String> = entries.map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");

        // A target's file that is a link is refused like the grid file itself.
        let elsewhere = dir.join("elsewhere.png");
        std::fs::remove_file(dir.join("edits/edit-smile.png")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.join("edits/edit-smile.png")).unwrap();
        let e = run_node(&grid, vec![images(12), edit()], &file, &dir).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidParam);
        assert!(e.message.contains("edit-smile.png") && e.message.contains("symbolic link"), "{}", e.message);
        assert!(!elsewhere.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn save_grid_without_layout_and_its_errors() {
        let dir = scratch("plain");
        let grid = node::<SaveGrid>();
        let out = run_node(&grid, vec![images(5)], &[("scale", Value::Int(2))], &dir).unwrap();
        let img = image::open(text_of(&out, "files")).unwrap();
        assert_eq!((img.width(), img.height()), (3 * 18 + 2, 2 * 18 + 2));

        let e = run_node(&grid, vec![images(5), layout(&["a"], 2, &[0.0, 0.5, 1.0])], &[], &dir).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidInput);
        assert_eq!(e.location.as_ref().map(|l| l.as_str()), ROption::RSome("layout"));
        assert!(e.message.contains("= 6 rows, but 5 came in"), "{}", e.message);

        // A layout is a typed value: JSON text on the port is refused, naming it.
        let text = NamedValue::new("layout", Value::Text(r#"{"targets": ["a"], "samples": 5, "steps": 1}"#.into()));
        let e = run_node(&grid, vec![images(5), text], &[], &dir).unwrap_err();
        assert_eq!(e.location.as_ref().map(|l| l.as_str()), ROption::RSome("layout"));
        assert!(e.message.contains("expected edit.layout, got text"), "{}", e.message);

        let flat = Tensor::zeros([2, 8, 8], (Kind::Float, Device::Cpu));
        let three_d = NamedValue::new("images", Value::Images(flat.into()));
        let e = run_node(&grid, vec![three_d], &[], &dir).unwrap_err();
        assert_eq!(e.location.as_ref().map(|l| l.as_str()), ROption::RSome("images"));
        assert!(e.message.contains("N x C x H x W"), "{}", e.message);

        let e = run_node(&grid, vec![images(1)], &[("file", Value::Text("../out.png".into()))], &dir).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidParam);

        std::fs::write(dir.join("blocker"), b"x").unwrap();
        let e = run_node(&grid, vec![images(1)], &[("file", Value::Text("blocker/g.png".into()))], &dir).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Io);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn save_text_writes_text_and_json_documents() {
        let dir = scratch("text");
        let save = node::<SaveText>();
        let text = |v: Value| vec![NamedValue::new("text", v)];
        let out = run_node(&save, text(Value::Text("# Report\n".into())), &[], &dir).unwrap();
        assert_eq!(std::fs::read_to_string(text_of(&out, "file")).unwrap(), "# Report\n");

        // A typed report (a bundle without tensors) is written as pretty-printed JSON.
        let report = serde_json::json!({"auc": {"hair.red": 0.9}, "steps": 3});
        let doc = Bundle::new("edit.report", &report);
        let out = run_node(&save, text(Value::Bundle(doc)), &[("file", Value::Text("r.json".into()))], &dir).unwrap();
        let written = std::fs::read_to_string(text_of(&out, "file")).unwrap();
        assert_eq!(written, serde_json::to_string_pretty(&report).unwrap() + "\n");
        assert!(written.contains("\n  \"auc\""), "{written}");

        let mu = Tensor::zeros([2], (Kind::Float, Device::Cpu));
        let fit = Bundle::new(port::GAUSSIANS, &serde_json::json!({})).with("mu", mu);
        let e = run_node(&save, text(Value::Bundle(fit)), &[], &dir).unwrap_err();
        assert_eq!(e.location.as_ref().map(|l| l.as_str()), ROption::RSome("text"));
        assert!(e.message.contains("gaussians bundle holds tensors"), "{}", e.message);
        let e = run_node(&save, text(Value::Float(1.0)), &[], &dir).unwrap_err();
        assert!(e.message.contains("expected text or a JSON document, got float"), "{}", e.message);
        std::fs::remove_dir_all(&dir).unwrap();
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

        let dir = scratch("preview");
        let input = vec![NamedValue::new("images", Value::Images(t.into()))];
        let small = [("count", Value::Int(2)), ("size", Value::Int(8))];
        let out = run_node(&node::<ImagePreview>(), input, &small, &dir).unwrap();
        let Value::Images(p) = &out[0].value else { panic!("{}", out[0].value.port_type()) };
        assert_eq!(p.tensor().size(), vec![2, 3, 8, 4]);
    }
}
