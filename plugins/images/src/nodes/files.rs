//! Pictures in and out: Load images (files or a folder, brought to the generator's size, names kept) and Save
//! images (one PNG per picture, named after its source and its edit).

use crate::{load, PictureNames};
use std::collections::HashMap;
use std::path::Path;
use subspace_sdk::files::{output_param, write_bytes_atomic};
use subspace_sdk::prelude::*;

const FILES: &str = "Images: Files";

/// The image size and channels a generator's metadata gives (`output.height`, `output.width`, `output.channels`).
///
/// # Errors
/// The metadata lacks them or gives values out of range; the error names `port`.
pub fn generator_shape(g: &Generator, port: &str) -> NodeResult<load::Shape> {
    let info: serde_json::Value = serde_json::from_str(g.0.info().as_str())
        .map_err(|e| NodeError::input(port, format!("the generator's metadata is not JSON: {e}")))?;
    let out = &info["output"];
    let side = |k: &str| -> NodeResult<u32> {
        out[k].as_u64().filter(|v| (1..=8192).contains(v)).map(|v| v as u32).ok_or_else(|| {
            NodeError::input(port, format!("the generator's metadata gives no output.{k} in 1..=8192: {out}"))
        })
    };
    let channels = out["channels"].as_i64().unwrap_or(3);
    if channels != 1 && channels != 3 {
        return Err(NodeError::input(
            port,
            format!("the generator draws {channels}-channel pictures; 1 or 3 are read"),
        ));
    }
    Ok(load::Shape { channels, height: side("height")?, width: side("width")? })
}

/// Reads PNG/JPEG pictures, sized for a generator.
pub struct LoadImages {
    generator: Optional<Generator>,
    path: Param<String>,
    width: Param<i64>,
    height: Param<i64>,
    images: Output<Images>,
    names: Output<PictureNames>,
}

impl Declared for LoadImages {
    const INFO: NodeInfo = NodeInfo {
        id: "subspace.load_images",
        version: "1.0.0",
        name: "Load images",
        category: FILES,
        doc: "Reads a PNG or JPEG picture, or every PNG/JPEG picture of a folder (sorted by file name), crops each to \
              the centre and resizes it to the generator's image size (or the width and height given), and keeps \
              the file names for Save images.",
    };
    fn declare(d: &mut Declare) -> Self {
        LoadImages {
            generator: d.optional("generator", "the generator whose image size the pictures are brought to"),
            path: d.input_path("path", "pictures", "a picture file, or a folder of them (read, not written)"),
            width: d.int("width", 0, 0..=8192, "picture width in pixels; 0: the generator's"),
            height: d.int("height", 0, 0..=8192, "picture height in pixels; 0: the generator's"),
            images: d.output("images", "the pictures, N x C x H x W in [0, 1]"),
            names: d.output("names", "the pictures' file names, in order"),
        }
    }
    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let from_generator = match io.read(&self.generator)? {
            Some(g) => Some(generator_shape(&g, self.generator.name())?),
            None => None,
        };
        let given = |p: &Param<i64>| -> NodeResult<Option<u32>> { Ok(Some(io.read(p)? as u32).filter(|&v| v > 0)) };
        let (w, h) = (given(&self.width)?, given(&self.height)?);
        let shape = match (from_generator, w, h) {
            (Some(s), w, h) => load::Shape { width: w.unwrap_or(s.width), height: h.unwrap_or(s.height), ..s },
            (None, Some(width), Some(height)) => load::Shape { channels: 3, width, height },
            (None, ..) => {
                let why = "link a generator, or give both width and height";
                return Err(NodeError::param(if w.is_none() { self.width.name() } else { self.height.name() }, why));
            }
        };
        let path = io.read(&self.path)?;
        let files = load::list(Path::new(&path)).map_err(|m| NodeError::param(self.path.name(), m))?;
        let mut pictures = Vec::with_capacity(files.len());
        for (i, f) in files.iter().enumerate() {
            ctx.check_cancelled()?;
            ctx.progress(i as u64, files.len() as u64, &f.display().to_string());
            pictures.push(load::read(f, shape).map_err(NodeError::io)?);
        }
        ctx.progress(files.len() as u64, files.len() as u64, "done");
        let names = files.iter().map(|f| f.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default());
        io.write(&self.images, Images(Tensor::stack(&pictures, 0).to_device(ctx.device())));
        io.write(&self.names, PictureNames { names: names.collect() });
        Ok(())
    }
}

subspace_sdk::choice! {
    /// Which columns of an edit are written.
    pub enum Columns {
        /// Every ratio of the edit.
        All = "all",
        /// Only the last ratio (the finished edit).
        Last = "last",
    }
}

/// `name` with every character but letters, digits, `.`, `-` and `_` replaced by `_` (for file names).
pub fn file_safe(name: &str) -> String {
    name.chars().map(|c| if c.is_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect()
}

/// The file stem of a source name (`photo1.jpg` -> `photo1`), made file-safe.
fn stem(name: &str) -> String {
    let p = Path::new(name);
    file_safe(&p.file_stem().map_or_else(|| name.to_string(), |s| s.to_string_lossy().to_string()))
}

/// For each picture of a batch to write: its index in the batch and its file name. Without a layout picture `i`
/// is source `i`, named `<stem>[_<tag>].png`; with one, the batch is ordered target, source, ratio and each is
/// named `<stem>_<target>_<ratio>.png` (ratio with two decimals).
///
/// # Errors
/// The counts disagree, or two pictures would get one name (sources with one stem).
pub fn plan_files(
    n: i64,
    names: &[String],
    layout: Option<&EditLayout>,
    columns: Columns,
    tag: &str,
) -> Result<Vec<(i64, String)>, String> {
    let mut out = Vec::new();
    match layout {
        None => {
            if n != names.len() as i64 {
                return Err(format!("{n} pictures came in for {} names", names.len()));
            }
            let tag = if tag.is_empty() { String::new() } else { format!("_{}", file_safe(tag)) };
            out.extend(names.iter().enumerate().map(|(i, s)| (i as i64, format!("{}{tag}.png", stem(s)))));
        }
        Some(l) => {
            l.check(n)?;
            if l.samples != names.len() as i64 {
                return Err(format!("the layout edits {} pictures, but {} names came in", l.samples, names.len()));
            }
            let first = if columns == Columns::Last { l.steps - 1 } else { 0 };
            for (t, target) in l.targets.iter().enumerate() {
                for (s, source) in names.iter().enumerate() {
                    for r in first..l.steps {
                        let i = (t as i64 * l.samples + s as i64) * l.steps + r;
                        let name = format!("{}_{}_{:.2}.png", stem(source), file_safe(target), l.ratios[r as usize]);
                        out.push((i, name));
                    }
                }
            }
        }
    }
    let mut seen: HashMap<&str, i64> = HashMap::new();
    for (i, name) in &out {
        if let Some(j) = seen.insert(name, *i) {
            return Err(format!("pictures {j} and {i} would both be written as {name} (sources with one name stem)"));
        }
    }
    Ok(out)
}

/// One picture (C x H x W in [0, 1], 1 or 3 channels) as PNG bytes.
pub fn png_bytes(t: &Tensor) -> Result<Vec<u8>, String> {
    let s = t.size();
    let (c, h, w) = (s[0], s[1] as u32, s[2] as u32);
    let bytes = (t.detach().to_device(Device::Cpu).to_kind(Kind::Float).clamp(0.0, 1.0) * 255.0)
        .round()
        .to_kind(Kind::Uint8)
        .permute([1, 2, 0])
        .contiguous();
    let data = Vec::<u8>::try_from(bytes.flatten(0, -1)).map_err(|e| e.to_string())?;
    let img = match c {
        1 => image::DynamicImage::ImageLuma8(image::GrayImage::from_raw(w, h, data).ok_or("bad picture size")?),
        3 => image::DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, data).ok_or("bad picture size")?),
        _ => return Err(format!("pictures must have 1 or 3 channels, got {c}")),
    };
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Writes each picture as its own PNG, named after its source and edit.
pub struct SaveImages {
    images: Input<Images>,
    names: Input<PictureNames>,
    layout: Optional<EditLayout>,
    folder: Param<String>,
    columns: Param<Columns>,
    tag: Param<String>,
    files: Output<String>,
}

impl Declared for SaveImages {
    const INFO: NodeInfo = NodeInfo {
        id: "subspace.save_images",
        version: "1.0.0",
        name: "Save images",
        category: FILES,
        doc: "Writes each picture as its own PNG in a folder, named after the picture it came from: \
              <source>_<target>_<ratio>.png given an edit's layout (e.g. photo1_hair.red_1.00.png), else \
              <source>.png (or <source>_<tag>.png).",
    };
    fn declare(d: &mut Declare) -> Self {
        // Writes into the run's folder, which is not part of the cache key: runs every time.
        d.volatile();
        SaveImages {
            images: d.input("images", "pictures N x C x H x W in [0, 1], C = 1 or 3 (e.g. rendered edits)"),
            names: d.input("names", "the source pictures' names, from Load images"),
            layout: d.optional("layout", "the edit's layout: pictures ordered target, then source, then ratio"),
            folder: d.path("folder", "pictures", "folder under the run's output folder"),
            columns: d.choice("columns", Columns::All, "with a layout: every ratio, or only the last one"),
            tag: d.text("tag", "", "without a layout: added to each name as <source>_<tag>.png (empty: none)"),
            files: d.output("files", "the written paths, one per line"),
        }
    }
    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let Images(t) = io.read(&self.images)?;
        let c = t.size()[1];
        if c != 1 && c != 3 {
            return Err(NodeError::input(self.images.name(), format!("pictures must have 1 or 3 channels, got {c}")));
        }
        let names = io.read(&self.names)?.names;
        let layout = io.read(&self.layout)?;
        let port = if layout.is_some() { self.layout.name() } else { self.names.name() };
        let plan = plan_files(t.size()[0], &names, layout.as_ref(), io.read(&self.columns)?, &io.read(&self.tag)?)
            .map_err(|m| NodeError::input(port, m))?;
        let folder = io.read(&self.folder)?;
        let mut written = Vec::with_capacity(plan.len());
        for (k, (i, name)) in plan.iter().enumerate() {
            ctx.check_cancelled()?;
            ctx.progress(k as u64, plan.len() as u64, name);
            // Each file passes the output-path policy (any of them could be a link).
            let path = output_param(ctx, self.folder.name(), &format!("{folder}/{name}"))?;
            let bytes = png_bytes(&t.get(*i)).map_err(|m| NodeError::input(self.images.name(), m))?;
            write_bytes_atomic(&path, &bytes).map_err(|e| e.at(self.folder.name()))?;
            written.push(path.display().to_string());
        }
        ctx.progress(plan.len() as u64, plan.len() as u64, "done");
        ctx.log(&format!("wrote {} pictures to {folder}", written.len()));
        io.write(&self.files, written.join("\n"));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn files_are_named_after_sources_and_edits() {
        let src = names(&["photo1.jpg", "my face.png"]);
        let plain = plan_files(2, &src, None, Columns::All, "").unwrap();
        assert_eq!(plain, vec![(0, "photo1.png".to_string()), (1, "my_face.png".to_string())]);
        let tagged = plan_files(2, &src, None, Columns::All, "inverted").unwrap();
        assert_eq!(tagged[1].1, "my_face_inverted.png");

        let layout = EditLayout {
            targets: vec!["hair.red".into(), "smile.yes+glasses.yes".into()],
            samples: 2,
            steps: 2,
            ratios: vec![0.0, 0.75],
        };
        let all = plan_files(8, &src, Some(&layout), Columns::All, "").unwrap();
        assert_eq!(all.len(), 8);
        assert_eq!(all[1], (1, "photo1_hair.red_0.75.png".to_string()));
        assert_eq!(all[6], (6, "my_face_smile.yes_glasses.yes_0.00.png".to_string()));
        let last = plan_files(8, &src, Some(&layout), Columns::Last, "").unwrap();
        let got: Vec<(i64, &str)> = last.iter().map(|(i, n)| (*i, n.as_str())).collect();
        assert_eq!(
            got,
            [
                (1, "photo1_hair.red_0.75.png"),
                (3, "my_face_hair.red_0.75.png"),
                (5, "photo1_smile.yes_glasses.yes_0.75.png"),
                (7, "my_face_smile.yes_glasses.yes_0.75.png")
            ]
        );
    }

    #[test]
    fn mismatches_and_clashes_are_refused() {
        let e = plan_files(3, &names(&["a.png", "b.png"]), None, Columns::All, "").unwrap_err();
        assert!(e.contains("3 pictures came in for 2 names"), "{e}");
        let e = plan_files(2, &names(&["a.png", "a.jpg"]), None, Columns::All, "").unwrap_err();
        assert!(e.contains("would both be written as a.png"), "{e}");
        let layout = EditLayout { targets: vec!["hair.red".into()], samples: 3, steps: 1, ratios: vec![1.0] };
        let e = plan_files(3, &names(&["a.png", "b.png"]), Some(&layout), Columns::All, "").unwrap_err();
        assert!(e.contains("edits 3 pictures, but 2 names"), "{e}");
    }

    #[test]
    fn pictures_round_trip_through_png() {
        let t = Tensor::rand([3, 5, 7], (Kind::Float, Device::Cpu));
        let bytes = png_bytes(&t).unwrap();
        let back = load::prepare(
            Path::new("x.png"),
            &load::decode(Path::new("x.png"), &bytes).unwrap(),
            load::Shape { channels: 3, height: 5, width: 7 },
        )
        .unwrap();
        assert!((back - t).abs().max().double_value(&[]) <= 0.5 / 255.0 + 1e-6);
    }
}
