//! EditScore and CompareEdits: edits judged by an independent classifier, and methods compared at matched movement.

use crate::score::{self, Comparison};
use subspace_sdk::edits::EditScores;
use subspace_sdk::kinds::Points;
use subspace_sdk::prelude::*;

const EVALUATION: &str = "Method: Evaluation";

pub(crate) struct EditScore {
    labels: Input<Labels>,
    layout: Input<EditLayout>,
    images: Optional<Images>,
    method: Param<String>,
    report: Output<EditScores>,
    table: Output<String>,
}

impl Declared for EditScore {
    const INFO: NodeInfo = NodeInfo {
        id: "subspace.edit_score",
        version: "2.0.0",
        name: "Edit score",
        category: EVALUATION,
        doc: "Scores rendered edits with an (independent) classifier's labels: success per target and ratio, leakage \
              into the other attribute groups (total-variation change), the re-scoring matrix, and pixel movement.",
    };

    fn declare(d: &mut Declare) -> Self {
        EditScore {
            labels: d.input("labels", "labels of the rendered edits, from the evaluation classifier"),
            layout: d.input("layout", "the edit layout from AttributeEdit (first ratio 0)"),
            images: d.optional("images", "the rendered edits, for pixel movement"),
            method: d.text("method", "", "a name for the edit method, carried in the report (for comparisons)"),
            report: d.output("report", "per target, per ratio: success, leakage, movement; re-scoring matrix"),
            table: d.output("table", "markdown table at the last ratio"),
        }
    }

    fn run(&self, io: &mut NodeIo<'_>, _ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let labels = io.read(&self.labels)?;
        let p = labels.probs.tensor();
        let n = p.size()[0];
        let layout = io.read(&self.layout)?;
        score::check_layout(&layout, n).map_err(|m| NodeError::input(self.layout.name(), m))?;
        let images = io.read(&self.images)?.map(|im| im.0);
        if let Some(im) = &images {
            if im.size()[0] != n {
                let m = format!("{} images for {n} label rows", im.size()[0]);
                return Err(NodeError::input(self.images.name(), m));
            }
        }
        let targets = score::score(&p, images.as_ref(), &layout, &labels.schema)?;
        let table = score::table(&targets);
        let method = io.read(&self.method)?;
        io.write(&self.report, EditScores { method, classes: labels.schema.class_names(), targets });
        io.write(&self.table, table);
        Ok(())
    }
}

/// CompareEdits' inputs: `a` is the method judged, the others its baselines.
const COMPARE_INPUTS: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];

pub(crate) struct CompareEdits {
    judged: Input<EditScores>,
    baselines: [Optional<EditScores>; 7],
    budgets: Param<String>,
    report: Output<String>,
    table: Output<String>,
    points: Output<Points>,
}

impl Declared for CompareEdits {
    const INFO: NodeInfo = NodeInfo {
        id: "subspace.compare_edits",
        version: "2.0.0",
        name: "Compare edits",
        category: EVALUATION,
        doc: "Compares edit methods' EditScore reports at matched picture movement: success and leakage per class, \
              interpolated along each method's strength grid. Input a is the method judged; the others are baselines.",
    };

    fn declare(d: &mut Declare) -> Self {
        CompareEdits {
            judged: d.input(COMPARE_INPUTS[0], "EditScore report of the method judged"),
            baselines: std::array::from_fn(|i| d.optional(COMPARE_INPUTS[i + 1], "EditScore report of a baseline")),
            budgets: d.text("budgets", "0.05,0.1,0.15", "movement budgets (RMS pixel change), comma-separated"),
            report: d.output("report", "JSON: per class and method at each budget, summary, verdicts"),
            table: d.output("table", "markdown tables"),
            points: d.output("points", "(leakage, success) per class at the middle budget, one series per method"),
        }
    }

    fn run(&self, io: &mut NodeIo<'_>, _ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let mut reports = vec![io.read(&self.judged)?];
        for input in &self.baselines {
            reports.extend(io.read(input)?);
        }
        let param = self.budgets.name();
        let budgets: Vec<f64> = io
            .read(&self.budgets)?
            .split(',')
            .map(|s| s.trim().parse::<f64>().map_err(|_| NodeError::param(param, format!("'{s}' is not a number"))))
            .collect::<Result<_, _>>()?;
        if budgets.is_empty() || budgets.iter().any(|b| !b.is_finite() || *b < 0.0) {
            return Err(NodeError::param(param, "give one or more non-negative numbers"));
        }
        let Comparison { report, table, scatter } = score::compare(&reports, &budgets)?;
        let mut labels = serde_json::Map::new();
        let mut b = Bundle::new(port::POINTS, &serde_json::json!({}));
        for series in scatter {
            let flat: Vec<f64> = series.points.iter().flat_map(|p| p.iter().copied()).collect();
            b = b.with(&series.method, Tensor::from_slice(&flat).view([-1, 2]).to_kind(Kind::Float));
            labels.insert(series.method, series.labels.into());
        }
        let mid = budgets[budgets.len() / 2];
        let meta = serde_json::json!({
            "title": format!("Edits at movement {mid}: success against leakage, one point per class"),
            "x_label": "leakage (mean TV change of other groups)",
            "y_label": "success",
            "labels": labels,
        });
        b.meta = meta.to_string().into();
        io.write(&self.report, report.to_string());
        io.write(&self.table, table);
        io.write(&self.points, Points(b));
        Ok(())
    }
}
