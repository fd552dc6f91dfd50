//! Scoring edits as ../docs/EVALUATION.md describes: success, leakage into the other attribute groups, the
//! re-scoring matrix and picture movement, from an independent classifier's labels of the rendered edits.

use subspace_sdk::tch::{Kind, Tensor};
use subspace_sdk::{LabelSchema, NodeError};

/// The layout AttributeEdit writes: codes ordered target, sample, ratio.
#[derive(serde::Deserialize, Debug, Clone)]
pub struct Layout {
    pub targets: Vec<String>,
    pub samples: i64,
    pub steps: i64,
    pub ratios: Vec<f64>,
}

impl Layout {
    pub fn parse(text: &str, n: i64) -> Result<Layout, NodeError> {
        let l: Layout = serde_json::from_str(text).map_err(|e| NodeError::input("layout", format!("invalid layout JSON: {e}")))?;
        let expected = l.targets.len() as i64 * l.samples * l.steps;
        if expected != n {
            return Err(NodeError::input("layout", format!("layout describes {} targets x {} samples x {} ratios = {expected} images, got {n}", l.targets.len(), l.samples, l.steps)));
        }
        if l.ratios.len() as i64 != l.steps {
            return Err(NodeError::input("layout", format!("{} ratios for {} steps", l.ratios.len(), l.steps)));
        }
        if l.steps < 2 || l.ratios[0] != 0.0 {
            return Err(NodeError::input("layout", "scoring needs the unedited pictures: use steps >= 2 so the first ratio is 0"));
        }
        Ok(l)
    }
}

/// One target at one ratio.
#[derive(serde::Serialize, Debug, Clone)]
pub struct Point {
    pub ratio: f64,
    pub success: f64,
    /// Mean over samples and other groups of the total-variation change of the group's class probabilities.
    pub leakage: f64,
    /// The worst other group's mean total-variation change.
    pub leakage_max: f64,
    /// Root-mean-square pixel change, in [0, 1] units.
    pub movement: Option<f64>,
}

#[derive(serde::Serialize, Debug, Clone)]
pub struct TargetScore {
    pub target: String,
    pub points: Vec<Point>,
    /// Mean change of every class's probability at the last ratio (a row of the re-scoring matrix).
    pub rescoring: Vec<f64>,
}

/// Scores every target. `labels`: N x K probabilities of the rendered edits; `images`: the renders, if given.
pub fn score(labels: &Tensor, images: Option<&Tensor>, layout: &Layout, schema: &LabelSchema) -> Result<Vec<TargetScore>, NodeError> {
    let (s, t) = (layout.samples, layout.steps);
    let k = schema.len() as i64;
    let p = labels.to_kind(Kind::Double).view([layout.targets.len() as i64, s, t, k]);
    let img = images.map(|i| {
        let n = i.size()[0];
        i.to_kind(Kind::Double).view([n, -1]).view([layout.targets.len() as i64, s, t, -1])
    });
    let mut out = Vec::new();
    for (ti, name) in layout.targets.iter().enumerate() {
        let mut cols = Vec::new();
        for part in name.split('+').map(str::trim) {
            cols.push(schema.column(part).ok_or_else(|| NodeError::input("layout", format!("target '{part}' is not a class of the labels' schema {:?}", schema.class_names())))?);
        }
        let groups: Vec<usize> = cols.iter().map(|&c| schema.columns()[c].0).collect();
        let base = p.get(ti as i64).select(1, 0); // s x k
        let mut points = Vec::new();
        for (ri, &ratio) in layout.ratios.iter().enumerate() {
            let now = p.get(ti as i64).select(1, ri as i64);
            let mut hit = Tensor::ones([s], (Kind::Bool, now.device()));
            for (&c, &g) in cols.iter().zip(&groups) {
                let r = schema.group_range(g);
                let am = now.narrow(1, r.start as i64, r.len() as i64).argmax(1, false);
                hit = hit.logical_and(&am.eq((c - r.start) as i64));
            }
            let success = hit.to_kind(Kind::Double).mean(Kind::Double).double_value(&[]);
            let mut per_group = Vec::new();
            for g in 0..schema.groups.len() {
                if groups.contains(&g) {
                    continue;
                }
                let r = schema.group_range(g);
                let tv = (now.narrow(1, r.start as i64, r.len() as i64) - base.narrow(1, r.start as i64, r.len() as i64))
                    .abs()
                    .sum_dim_intlist([1i64].as_slice(), false, Kind::Double)
                    * 0.5;
                per_group.push(tv.mean(Kind::Double).double_value(&[]));
            }
            let leakage = if per_group.is_empty() { 0.0 } else { per_group.iter().sum::<f64>() / per_group.len() as f64 };
            let leakage_max = per_group.iter().cloned().fold(0.0, f64::max);
            let movement = img.as_ref().map(|im| {
                let d = im.get(ti as i64).select(1, ri as i64) - im.get(ti as i64).select(1, 0);
                d.square().mean_dim([1i64].as_slice(), false, Kind::Double).sqrt().mean(Kind::Double).double_value(&[])
            });
            points.push(Point { ratio, success, leakage, leakage_max, movement });
        }
        let last = p.get(ti as i64).select(1, t - 1);
        let rescoring: Vec<f64> = Vec::try_from((last - &base).mean_dim([0i64].as_slice(), false, Kind::Double)).unwrap_or_default();
        out.push(TargetScore { target: name.clone(), points, rescoring });
    }
    Ok(out)
}

/// A markdown table: one row per target at the last ratio.
pub fn table(scores: &[TargetScore]) -> String {
    let mut md = String::from("| target | a | success | leakage (mean) | leakage (max group) | movement (RMS px) |\n|---|---|---|---|---|---|\n");
    for s in scores {
        if let Some(p) = s.points.last() {
            let mv = p.movement.map_or("-".to_string(), |m| format!("{m:.3}"));
            md += &format!("| {} | {:.2} | {:.3} | {:.3} | {:.3} | {mv} |\n", s.target, p.ratio, p.success, p.leakage, p.leakage_max);
        }
    }
    let n = scores.len().max(1) as f64;
    let mean = |f: &dyn Fn(&Point) -> f64| scores.iter().filter_map(|s| s.points.last()).map(f).sum::<f64>() / n;
    md += &format!("| **mean** | | {:.3} | {:.3} | {:.3} | |\n", mean(&|p| p.success), mean(&|p| p.leakage), mean(&|p| p.leakage_max));
    md
}
