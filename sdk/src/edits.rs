//! The contracts editing nodes share, parsed in one place: edit targets (`hair.red,smile.yes+glasses.yes`), the
//! layout of an edit batch (what AttributeEdit and the baselines' edits write and what grids and scores read, a
//! typed value of port type `edit.layout`), codes checked against their labels, and the scores of an edit batch
//! (what edit scoring writes and comparisons read, port type `edit.scores`).

use crate::{
    declare::Input,
    error::{NodeError, NodeResult},
    kinds::Latents,
    node::NodeIo,
    value::{LabelSchema, Labels},
};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Port type of [`EditLayout`].
pub const LAYOUT: &str = "edit.layout";

/// How a batch of edited codes is ordered: target, then sample, then ratio (`targets.len() x samples x steps`
/// rows), and the ratio of each step.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct EditLayout {
    /// Canonical target names (`group.class`, joined by `+` for joint edits).
    pub targets: Vec<String>,
    /// Pictures edited per target.
    pub samples: i64,
    /// Ratios per picture.
    pub steps: i64,
    /// The ratio of each step (0: unedited).
    pub ratios: Vec<f64>,
}
crate::json_kind!(EditLayout = LAYOUT);

impl EditLayout {
    /// Rows the layout describes (`None` when the count overflows).
    pub fn rows(&self) -> Option<i64> {
        (self.targets.len() as i64).checked_mul(self.samples)?.checked_mul(self.steps)
    }

    /// Checks the layout against the `n` rows it should describe.
    ///
    /// # Errors
    /// A message saying what disagrees (empty targets, counts, ratios).
    pub fn check(&self, n: i64) -> Result<(), String> {
        if self.targets.is_empty() || self.samples < 1 || self.steps < 1 {
            return Err(format!("layout needs targets, samples >= 1 and steps >= 1, got {self:?}"));
        }
        if self.ratios.len() as i64 != self.steps {
            return Err(format!("layout has {} ratios for {} steps", self.ratios.len(), self.steps));
        }
        let rows = self.rows().ok_or_else(|| format!("layout {self:?} describes more rows than can be counted"))?;
        if rows != n {
            return Err(format!(
                "layout describes {} targets x {} samples x {} steps = {rows} rows, but {n} came in",
                self.targets.len(),
                self.samples,
                self.steps,
            ));
        }
        Ok(())
    }
}

/// One edit: its canonical name and the class columns it moves toward (one per attribute group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditTarget {
    /// Canonical name (`group.class`, joined by `+`).
    pub name: String,
    /// Label columns, one per group.
    pub columns: Vec<usize>,
}

/// Parses a target list against `schema`: `all` (every class on its own), or comma-separated edits where each
/// edit is one class or several joined by `+` (edited together, at most one per group), e.g.
/// `hair.red,smile.yes+glasses.yes`. A bare class name is accepted when unique (`red` for `hair.red`); names come
/// back canonical (`group.class`).
///
/// # Errors
/// A message naming the unknown class (and listing the known ones), a group named twice, or an empty list.
pub fn parse_targets(spec: &str, schema: &LabelSchema) -> Result<Vec<EditTarget>, String> {
    let names = schema.class_names();
    if spec.trim() == "all" {
        return Ok(names.iter().enumerate().map(|(i, n)| EditTarget { name: n.clone(), columns: vec![i] }).collect());
    }
    let cols = schema.columns();
    let mut out = Vec::new();
    for edit in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let mut columns = Vec::new();
        let mut groups = Vec::new();
        for name in edit.split('+').map(str::trim) {
            let c = schema.column(name).ok_or_else(|| format!("unknown class '{name}'; the classes are {names:?}"))?;
            let group = cols[c].0;
            if groups.contains(&group) {
                return Err(format!("'{edit}' names two classes of group '{}'", schema.groups[group].name));
            }
            groups.push(group);
            columns.push(c);
        }
        let name = columns.iter().map(|&c| names[c].clone()).collect::<Vec<_>>().join("+");
        out.push(EditTarget { name, columns });
    }
    if out.is_empty() {
        return Err("no target class given".into());
    }
    Ok(out)
}

/// Codes (N x D, float, on `device`) and their labels (N x K probabilities in [0, 1], float, on `device`),
/// checked against each other and against the labels' schema.
///
/// # Errors
/// An input error naming the port: row counts differ, shapes disagree with the schema, values outside [0, 1],
/// an empty schema.
pub fn codes_and_labels(
    io: &NodeIo<'_>,
    codes: &Input<Latents>,
    labels: &Input<Labels>,
    device: Device,
) -> NodeResult<(Tensor, Tensor, LabelSchema)> {
    let z = io.read(codes)?.0.to_kind(Kind::Float).to_device(device);
    let given = io.read(labels)?;
    let port = labels.name();
    let l = given.probs.tensor().to_kind(Kind::Float).to_device(device);
    if given.schema.is_empty() {
        return Err(NodeError::input(port, "the labels' schema has no classes"));
    }
    if l.dim() != 2 || l.size()[1] != given.schema.len() as i64 {
        let k = given.schema.len();
        return Err(NodeError::input(
            port,
            format!("labels of shape {:?} do not match their schema of {k} classes", l.size()),
        ));
    }
    if l.size()[0] != z.size()[0] {
        return Err(NodeError::input(port, format!("{} label rows for {} codes", l.size()[0], z.size()[0])));
    }
    let (lo, hi) = (l.min().double_value(&[]), l.max().double_value(&[]));
    if lo < 0.0 || hi > 1.0 {
        return Err(NodeError::input(port, format!("labels must lie in [0, 1], found [{lo}, {hi}]")));
    }
    Ok((z, l, given.schema))
}

/// Port type of [`EditScores`].
pub const SCORES: &str = "edit.scores";

/// How one edit target did at one ratio, judged by an independent classifier's labels of the rendered edits.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ScorePoint {
    /// The edit ratio (0: the unedited pictures).
    pub ratio: f64,
    /// Fraction of samples whose every target group is classified as the target class.
    pub success: f64,
    /// Mean over samples and the other groups of the total-variation change of each group's class probabilities.
    pub leakage: f64,
    /// The worst other group's mean total-variation change.
    pub leakage_max: f64,
    /// Root-mean-square pixel change in [0, 1] units; `None` when no images were scored.
    pub movement: Option<f64>,
    /// Mean structural similarity (SSIM) of the edited and the unedited picture: an identity measure that needs no
    /// model (1: unchanged); `None` when no images were scored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssim: Option<f64>,
}

/// One target's scores per picture, indexed `[ratio][picture]`: what intervals resample. `success` is 0 or 1.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct PictureScores {
    /// 1 where every target group is classified as the target class.
    pub success: Vec<Vec<f64>>,
    /// Mean over the other groups of the total-variation change of the picture's class probabilities.
    pub leakage: Vec<Vec<f64>>,
    /// RMS pixel change; empty when no images were scored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub movement: Vec<Vec<f64>>,
    /// SSIM against the unedited picture; empty when no images were scored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssim: Vec<Vec<f64>>,
}

/// One target's scores along its ratios.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TargetScores {
    /// The target's name (`group.class`, joined by `+` for joint edits), as in the [`EditLayout`].
    pub target: String,
    /// One point per ratio, in the layout's order.
    pub points: Vec<ScorePoint>,
    /// Mean change of every class's probability at the last ratio (a row of the re-scoring matrix).
    pub rescoring: Vec<f64>,
    /// The same measures per picture (absent in reports written before they existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pictures: Option<PictureScores>,
}

/// An edit method's scores (port type `edit.scores`): what an edit-scoring node writes and what comparisons read,
/// whichever method made the edits.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct EditScores {
    /// A name for the edit method (may be empty).
    pub method: String,
    /// The label schema's class names (`group.class`), the columns of each `rescoring` row.
    pub classes: Vec<String>,
    /// One entry per edit target, in the layout's order.
    pub targets: Vec<TargetScores>,
    /// What leakage, movement and SSIM were measured against: [`REFERENCE_UNEDITED`] (renders of the input codes)
    /// or [`REFERENCE_FIRST_COLUMN`] (each picture's ratio-0 edit); empty in older reports.
    #[serde(default)]
    pub reference: String,
    /// The replicate (fit seed and picture set) each picture came from, when reports of several replicates were
    /// merged; empty: one replicate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicates: Vec<u32>,
}
crate::json_kind!(EditScores = SCORES);

/// [`EditScores::reference`]: measured against renders of the unedited input codes.
pub const REFERENCE_UNEDITED: &str = "unedited";
/// [`EditScores::reference`]: measured against each picture's ratio-0 column of the edit.
pub const REFERENCE_FIRST_COLUMN: &str = "first column";

impl EditScores {
    /// Pictures per target (from the per-picture scores, else unknown: 0).
    pub fn pictures(&self) -> usize {
        self.targets.first().and_then(|t| t.pictures.as_ref()).and_then(|p| p.success.first()).map_or(0, Vec::len)
    }
    /// The replicate of picture `i` (0 when the report is one replicate).
    pub fn replicate(&self, i: usize) -> u32 {
        self.replicates.get(i).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{declare::PortValue, value::LabelGroup, Value};

    fn schema() -> LabelSchema {
        let g = |n: &str, c: &[&str]| LabelGroup { name: n.into(), classes: c.iter().map(|s| (*s).into()).collect() };
        LabelSchema { groups: vec![g("hair", &["black", "red"]), g("smile", &["yes", "no"])].into() }
    }

    #[test]
    fn targets_parse_once_with_canonical_names() {
        let s = schema();
        let t = parse_targets("red, smile.yes+hair.black", &s).unwrap();
        assert_eq!(t[0], EditTarget { name: "hair.red".into(), columns: vec![1] });
        assert_eq!(t[1], EditTarget { name: "smile.yes+hair.black".into(), columns: vec![2, 0] });
        assert_eq!(parse_targets("all", &s).unwrap().len(), 4);
        assert!(parse_targets("hair.red+hair.black", &s).unwrap_err().contains("two classes of group 'hair'"));
        assert!(parse_targets("blue", &s).unwrap_err().contains("unknown class 'blue'"));
        assert!(parse_targets(" , ", &s).is_err());
    }

    #[test]
    fn a_layout_is_a_typed_value_checked_against_its_rows() {
        let l = EditLayout { targets: vec!["hair.red".into()], samples: 2, steps: 3, ratios: vec![0.0, 0.5, 1.0] };
        assert!(l.check(6).is_ok());
        assert!(l.check(5).unwrap_err().contains("6 rows, but 5"));
        let v = l.clone().into_value();
        assert_eq!(v.port_type(), LAYOUT);
        assert_eq!(EditLayout::from_value("layout", &v).unwrap(), l);
        let e = EditLayout::from_value("layout", &Value::Text("{}".into())).unwrap_err();
        assert!(e.message.contains("expected edit.layout, got text"), "{}", e.message);
    }

    #[test]
    fn scores_are_a_typed_value_that_a_layout_is_not() {
        let p = ScorePoint { ratio: 1.0, success: 0.75, leakage: 0.1, leakage_max: 0.2, movement: None, ssim: None };
        let pictures =
            PictureScores { success: vec![vec![1.0, 0.0]], leakage: vec![vec![0.1, 0.3]], ..Default::default() };
        let t = TargetScores {
            target: "hair.red".into(),
            points: vec![p],
            rescoring: vec![0.5, -0.5],
            pictures: Some(pictures),
        };
        let classes = vec!["hair.black".into(), "hair.red".into()];
        let s = EditScores {
            method: "ours".into(),
            classes,
            targets: vec![t],
            reference: REFERENCE_UNEDITED.into(),
            replicates: vec![],
        };
        assert_eq!(s.pictures(), 2);
        // Reports written before the per-picture scores, SSIM and the reference existed still read.
        let old = r#"{"method":"m","classes":[],"targets":[{"target":"a.b","points":[{"ratio":0.0,"success":0.5,
            "leakage":0.0,"leakage_max":0.0,"movement":null}],"rescoring":[]}]}"#;
        let old: EditScores = serde_json::from_str(old).unwrap();
        assert_eq!((old.reference.as_str(), old.pictures(), old.targets[0].points[0].ssim), ("", 0, None));
        let v = s.clone().into_value();
        assert_eq!(v.port_type(), SCORES);
        assert_eq!(EditScores::from_value("a", &v).unwrap(), s);
        let layout = EditLayout { targets: vec!["hair.red".into()], samples: 1, steps: 1, ratios: vec![1.0] };
        let e = EditScores::from_value("a", &layout.into_value()).unwrap_err();
        assert!(e.message.contains("expected edit.scores, got edit.layout"), "{}", e.message);
    }
}
