//! Pictures against what they came from: a before/after batch for the grids (each source picture beside its
//! edits), and agreement of labels with ground truth read from a file (a renderer's labels, a dataset's).

use crate::PictureNames;
use std::collections::HashMap;
use std::path::Path;
use subspace_sdk::prelude::*;

const COMPARE: &str = "Images: Compare";

/// The index of every picture of a before/after batch: per target and source, the source (index `n_after + s`
/// into `after ++ before`) then its edits.
fn before_after_order(layout: &EditLayout) -> Vec<i64> {
    let (t, s, r) = (layout.targets.len() as i64, layout.samples, layout.steps);
    let n_after = t * s * r;
    let mut order = Vec::with_capacity((t * s * (r + 1)) as usize);
    for ti in 0..t {
        for si in 0..s {
            order.push(n_after + si);
            order.extend((0..r).map(|ri| (ti * s + si) * r + ri));
        }
    }
    order
}

/// Puts each source picture before its edits, for a before/after grid.
pub struct BeforeAfter {
    before: Input<Images>,
    after: Input<Images>,
    layout: Input<EditLayout>,
    images: Output<Images>,
    out_layout: Output<EditLayout>,
}

impl Declared for BeforeAfter {
    const INFO: NodeInfo = NodeInfo {
        id: "subspace.before_after",
        version: "1.0.0",
        name: "Before and after",
        category: COMPARE,
        doc: "Puts each source picture in front of its edits: the batch and layout of the edit gain a first column \
              holding the picture the edit started from (e.g. the loaded photo before inversion), for Save image \
              grid. That column's ratio is -1: it is no edit, so the layout is for grids, not for scoring.",
    };
    fn declare(d: &mut Declare) -> Self {
        BeforeAfter {
            before: d.input("before", "the source pictures, one per edited code (N x C x H x W)"),
            after: d.input("after", "the rendered edits, ordered target, source, ratio"),
            layout: d.input("layout", "the edit's layout"),
            images: d.output("images", "per target and source: the source picture, then its edits"),
            out_layout: d.output("layout", "the edit's layout with one more step in front (ratio -1)"),
        }
    }
    fn run(&self, io: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
        let Images(after) = io.read(&self.after)?;
        let Images(before) = io.read(&self.before)?;
        let layout = io.read(&self.layout)?;
        layout.check(after.size()[0]).map_err(|m| NodeError::input(self.layout.name(), m))?;
        if before.size()[0] != layout.samples {
            let m = format!("{} pictures for an edit of {} sources", before.size()[0], layout.samples);
            return Err(NodeError::input(self.before.name(), m));
        }
        if before.size()[1..] != after.size()[1..] {
            let m = format!("pictures of shape {:?} beside edits of shape {:?}", before.size(), after.size());
            return Err(NodeError::input(self.before.name(), m));
        }
        let all = Tensor::cat(&[after.to_kind(Kind::Float), before.to_kind(Kind::Float).to_device(after.device())], 0);
        let order = Tensor::from_slice(&before_after_order(&layout)).to_device(after.device());
        let mut ratios = vec![-1.0];
        ratios.extend(&layout.ratios);
        let out = EditLayout { steps: layout.steps + 1, ratios, ..layout };
        io.write(&self.images, Images(all.index_select(0, &order)));
        io.write(&self.out_layout, out);
        Ok(())
    }
}

/// Ground truth per picture: file name -> (label group -> class name).
pub type Truth = HashMap<String, HashMap<String, String>>;

/// Reads a CSV of ground truth: a header naming a `file` column and one column per label group, then one row per
/// picture holding class names (`world render` writes such a labels.csv). Fields are plain (no quoting).
///
/// # Errors
/// The file cannot be read, lacks the `file` column, or a row has the wrong number of fields; naming the file
/// and line.
pub fn read_truth(path: &Path) -> Result<(Vec<String>, Truth), String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or_else(|| format!("{shown} is empty"))?;
    let columns: Vec<String> = header.split(',').map(|c| c.trim().to_string()).collect();
    let file_col = columns
        .iter()
        .position(|c| c == "file")
        .ok_or_else(|| format!("{shown}: the header {header:?} has no 'file' column (file,<group>,<group>,...)"))?;
    let mut truth = Truth::new();
    for (i, line) in lines {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != columns.len() {
            return Err(format!("{shown} line {}: {} fields, the header has {}", i + 1, fields.len(), columns.len()));
        }
        let row = columns.iter().zip(&fields).map(|(c, f)| (c.clone(), f.to_string())).collect();
        truth.insert(fields[file_col].to_string(), row);
    }
    Ok((columns, truth))
}

/// Per label group: how often the labels' most likely class is the true one; per true class the same; and how
/// often every compared group agrees. Groups of the schema the truth has no column for are left out.
///
/// # Errors
/// A picture has no row in the truth, or a true class is not in the schema.
pub fn agreement(
    labels: &Labels,
    names: &[String],
    columns: &[String],
    truth: &Truth,
) -> Result<serde_json::Value, String> {
    let probs = labels.probs.tensor().to_device(Device::Cpu).to_kind(Kind::Float);
    let n = probs.size()[0] as usize;
    if n != names.len() {
        return Err(format!("{n} label rows for {} names", names.len()));
    }
    let schema = &labels.schema;
    let groups: Vec<usize> =
        (0..schema.groups.len()).filter(|&g| columns.iter().any(|c| c == schema.groups[g].name.as_str())).collect();
    if groups.is_empty() {
        let have: Vec<&str> = schema.groups.iter().map(|g| g.name.as_str()).collect();
        return Err(format!("the truth has no column for any label group {have:?}"));
    }
    let mut agree = vec![0usize; schema.groups.len()];
    let mut per_class: HashMap<String, (usize, usize)> = HashMap::new();
    let mut all = 0;
    for (i, name) in names.iter().enumerate() {
        let row = truth.get(name).ok_or_else(|| format!("picture {name} has no row in the truth"))?;
        let mut every = true;
        for &g in &groups {
            let group = &schema.groups[g];
            let range = schema.group_range(g);
            let want = &row[group.name.as_str()];
            let class = group.classes.iter().position(|c| c.as_str() == want.as_str()).ok_or_else(|| {
                format!("picture {name}: class '{want}' is not one of group {}'s {:?}", group.name, group.classes)
            })?;
            let got = probs.get(i as i64).narrow(0, range.start as i64, range.len() as i64).argmax(0, false);
            let hit = got.int64_value(&[]) == class as i64;
            agree[g] += usize::from(hit);
            every &= hit;
            let e = per_class.entry(format!("{}.{want}", group.name)).or_default();
            e.0 += usize::from(hit);
            e.1 += 1;
        }
        all += usize::from(every);
    }
    let frac = |k: usize, of: usize| if of == 0 { 0.0 } else { k as f64 / of as f64 };
    let by_group: serde_json::Map<String, serde_json::Value> =
        groups.iter().map(|&g| (schema.groups[g].name.to_string(), frac(agree[g], n).into())).collect();
    let mut classes: Vec<(String, (usize, usize))> = per_class.into_iter().collect();
    classes.sort();
    let by_class: serde_json::Map<String, serde_json::Value> = classes
        .into_iter()
        .map(|(c, (k, of))| (c, serde_json::json!({"agree": frac(k, of), "pictures": of})))
        .collect();
    Ok(serde_json::json!({"pictures": n, "groups": by_group, "classes": by_class, "all_groups": frac(all, n)}))
}

/// Compares labels with ground truth read from a file.
pub struct LabelAgreement {
    labels: Input<Labels>,
    names: Input<PictureNames>,
    truth: Param<String>,
    report: Output<String>,
}

impl Declared for LabelAgreement {
    const INFO: NodeInfo = NodeInfo {
        id: "subspace.label_agreement",
        version: "1.0.0",
        name: "Agreement with ground truth",
        category: COMPARE,
        doc: "How often labels (a classifier's, on loaded or inverted pictures) name the true class of each \
              attribute, with the truth read from a CSV keyed by file name (a header 'file,<group>,...' and class \
              names, as `world render` writes labels.csv).",
    };
    fn declare(d: &mut Declare) -> Self {
        LabelAgreement {
            labels: d.input("labels", "labels of the pictures, one row per name"),
            names: d.input("names", "the pictures' file names, from Load images"),
            truth: d.input_path(
                "truth",
                "labels.csv",
                "CSV of true classes: file,<group>,<group>,... (read, not written)",
            ),
            report: d.output("report", "JSON: agreement per group and per true class, and with every group at once"),
        }
    }
    fn run(&self, io: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
        let labels = io.read(&self.labels)?;
        let names = io.read(&self.names)?.names;
        let (columns, truth) =
            read_truth(Path::new(&io.read(&self.truth)?)).map_err(|m| NodeError::param(self.truth.name(), m))?;
        let report =
            agreement(&labels, &names, &columns, &truth).map_err(|m| NodeError::input(self.labels.name(), m))?;
        io.write(&self.report, serde_json::to_string_pretty(&report).map_err(|e| NodeError::internal(e.to_string()))?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use subspace_sdk::{LabelGroup, LabelSchema, TensorRef};

    #[test]
    fn each_source_comes_before_its_edits() {
        let l = EditLayout { targets: vec!["a".into(), "b".into()], samples: 2, steps: 3, ratios: vec![0.0, 0.5, 1.0] };
        // after: 12 edits (0..12), before: 2 sources at 12 and 13.
        assert_eq!(before_after_order(&l), [12, 0, 1, 2, 13, 3, 4, 5, 12, 6, 7, 8, 13, 9, 10, 11]);
    }

    #[test]
    fn labels_are_compared_with_the_truth_per_group_and_class() {
        let dir = std::env::temp_dir().join(format!("subspace-images-truth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("labels.csv");
        std::fs::write(&csv, "file,seed,hair,smile\na.png,1,red,yes\nb.png,2,black,yes\n").unwrap();
        let (columns, truth) = read_truth(&csv).unwrap();
        let g = |n: &str, c: &[&str]| LabelGroup { name: n.into(), classes: c.iter().map(|s| (*s).into()).collect() };
        let schema = LabelSchema {
            groups: vec![g("hair", &["black", "red"]), g("smile", &["no", "yes"]), g("x", &["p"])].into(),
        };
        // a: red, yes (both right); b: red, yes (hair wrong).
        let probs = Tensor::from_slice(&[0.2f32, 0.8, 0.1, 0.9, 1.0, 0.3, 0.7, 0.4, 0.6, 1.0]).reshape([2, 5]);
        let labels = Labels { probs: TensorRef::new(probs), schema };
        let names = vec!["a.png".to_string(), "b.png".to_string()];
        let r = agreement(&labels, &names, &columns, &truth).unwrap();
        assert_eq!(r["groups"]["hair"], 0.5);
        assert_eq!(r["groups"]["smile"], 1.0);
        assert!(r["groups"].get("x").is_none(), "a group the truth lacks is left out");
        assert_eq!(r["classes"]["hair.black"]["agree"], 0.0);
        assert_eq!(r["classes"]["hair.red"]["agree"], 1.0);
        assert_eq!(r["all_groups"], 0.5);

        let e = agreement(&labels, &["a.png".into(), "c.png".into()], &columns, &truth).unwrap_err();
        assert!(e.contains("c.png has no row"), "{e}");
        std::fs::write(&csv, "file,hair\na.png,red\nb.png,grey\n").unwrap();
        let (columns, truth) = read_truth(&csv).unwrap();
        assert!(agreement(&labels, &names, &columns, &truth).unwrap_err().contains("class 'grey'"));
        std::fs::write(&csv, "name,hair\n").unwrap();
        assert!(read_truth(&csv).unwrap_err().contains("no 'file' column"));
        std::fs::write(&csv, "file,hair\na.png\n").unwrap();
        assert!(read_truth(&csv).unwrap_err().contains("line 2: 1 fields, the header has 2"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
