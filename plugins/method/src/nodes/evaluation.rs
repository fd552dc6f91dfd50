//! EditScore and CompareEdits: edits judged by an independent classifier, and methods compared at matched movement.

use crate::robust;
use crate::score::{self, Comparison};
use subspace_sdk::edits::{self, EditScores};
use subspace_sdk::kinds::Points;
use subspace_sdk::prelude::*;

const EVALUATION: &str = "Method: Evaluation";

pub(crate) struct EditScore {
    labels: Input<Labels>,
    layout: Input<EditLayout>,
    images: Optional<Images>,
    unedited_labels: Optional<Labels>,
    unedited_images: Optional<Images>,
    method: Param<String>,
    report: Output<EditScores>,
    table: Output<String>,
}

impl Declared for EditScore {
    const INFO: NodeInfo = NodeInfo {
        id: "subspace.edit_score",
        version: "2.1.0",
        name: "Edit score",
        category: EVALUATION,
        doc: "Scores rendered edits with an (independent) classifier's labels: success per target and ratio, leakage \
              into the other attribute groups (total-variation change), the re-scoring matrix, pixel movement and \
              SSIM, per picture and on average. Given the labels (and renders) of the unedited input codes, leakage, \
              movement and SSIM are measured against them, the same reference for every method.",
    };

    fn declare(d: &mut Declare) -> Self {
        EditScore {
            labels: d.input("labels", "labels of the rendered edits, from the evaluation classifier"),
            layout: d.input("layout", "the edit layout from AttributeEdit (first ratio 0)"),
            images: d.optional("images", "the rendered edits, for pixel movement and SSIM"),
            unedited_labels: d.optional(
                "unedited_labels",
                "the same classifier's labels of the unedited pictures (one row per sample): the reference; without \
                 it, each picture's ratio-0 column",
            ),
            unedited_images: d
                .optional("unedited_images", "the unedited pictures (one per sample), with unedited_labels"),
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
        let unedited = io.read(&self.unedited_labels)?;
        let unedited_images = io.read(&self.unedited_images)?.map(|im| im.0);
        if let Some(u) = &unedited {
            let rows = u.probs.tensor().size()[0];
            if u.schema != labels.schema || rows != layout.samples {
                let m = format!(
                    "{rows} rows of {} classes for {} samples of {} classes: label the unedited pictures with the \
                     same classifier",
                    u.schema.len(),
                    layout.samples,
                    labels.schema.len()
                );
                return Err(NodeError::input(self.unedited_labels.name(), m));
            }
        }
        match (&unedited, &unedited_images, &images) {
            (None, Some(_), _) => {
                let m = "give unedited_labels with unedited_images (the reference is both)";
                return Err(NodeError::input(self.unedited_images.name(), m));
            }
            (Some(_), None, Some(_)) => {
                let m =
                    "the edits' images are given: give the unedited pictures too, so movement has the same reference";
                return Err(NodeError::input(self.unedited_images.name(), m));
            }
            (_, Some(u), Some(im)) if u.size()[0] != layout.samples || u.size()[1..] != im.size()[1..] => {
                let m = format!("shape {:?} for {} samples of shape {:?}", u.size(), layout.samples, &im.size()[1..]);
                return Err(NodeError::input(self.unedited_images.name(), m));
            }
            _ => {}
        }
        let unedited_probs = unedited.as_ref().map(|u| u.probs.tensor());
        let reference = unedited_probs
            .as_ref()
            .map(|labels| score::Reference { labels, images: unedited_images.as_ref().filter(|_| images.is_some()) });
        let reference_name =
            if reference.is_some() { edits::REFERENCE_UNEDITED } else { edits::REFERENCE_FIRST_COLUMN }.to_string();
        let targets = score::score(&p, images.as_ref(), &layout, &labels.schema, reference)?;
        let table = score::table(&targets);
        let method = io.read(&self.method)?;
        let classes = labels.schema.class_names();
        io.write(&self.report, EditScores { method, classes, targets, reference: reference_name, replicates: vec![] });
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
    resamples: Param<i64>,
    seed: Param<i64>,
    report: Output<String>,
    table: Output<String>,
    points: Output<Points>,
}

impl Declared for CompareEdits {
    const INFO: NodeInfo = NodeInfo {
        id: "subspace.compare_edits",
        version: "2.1.0",
        name: "Compare edits",
        category: EVALUATION,
        doc: "Compares edit methods' EditScore reports at matched picture movement: success and leakage per class, \
              interpolated along each method's strength grid. Input a is the method judged; the others are baselines. \
              With per-picture scores (EditScore 2.1; MergeScores for several fit seeds), each attribute group gets \
              bootstrap intervals and verdicts only where a difference's interval clears the margin (tie otherwise).",
    };

    fn declare(d: &mut Declare) -> Self {
        CompareEdits {
            judged: d.input(COMPARE_INPUTS[0], "EditScore report of the method judged"),
            baselines: std::array::from_fn(|i| d.optional(COMPARE_INPUTS[i + 1], "EditScore report of a baseline")),
            budgets: d.text("budgets", "0.05,0.1,0.15", "movement budgets (RMS pixel change), comma-separated"),
            resamples: d.int("resamples", 1000, 0..=100_000, "bootstrap resamples for the intervals (0: none)"),
            seed: d.int("seed", 0, 0..=i64::MAX, "seed of the bootstrap"),
            report: d.output("report", "JSON: per class and method at each budget, summary, verdicts, intervals"),
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
        let Comparison { mut report, mut table, scatter } = score::compare(&reports, &budgets)?;
        let resamples = io.read(&self.resamples)? as usize;
        if resamples > 0 {
            let opts = robust::Options { resamples, seed: io.read(&self.seed)? as u64 };
            match robust::compare(&reports, &budgets, opts) {
                Ok(r) => {
                    table = robust::table(&r) + &table;
                    report["intervals"] = serde_json::to_value(&r).unwrap_or_default();
                }
                // Older reports without per-picture scores still compare, without intervals.
                Err(why) => {
                    table = format!("\nNo intervals: {why}.\n") + &table;
                    report["intervals"] = serde_json::json!({"missing": why});
                }
            }
        }
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

/// MergeScores' inputs, one per replicate.
const MERGE_INPUTS: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];

pub(crate) struct MergeScores {
    first: Input<EditScores>,
    rest: [Optional<EditScores>; 7],
    merged: Output<EditScores>,
}

impl Declared for MergeScores {
    const INFO: NodeInfo = NodeInfo {
        id: "subspace.merge_scores",
        version: "1.0.0",
        name: "Merge scores",
        category: EVALUATION,
        doc: "One method's EditScore reports from several replicates (fit seeds and picture sets) as one report: \
              pictures pooled, each remembering its replicate, so CompareEdits' intervals cover the spread between \
              fits as well as between pictures.",
    };

    fn declare(d: &mut Declare) -> Self {
        MergeScores {
            first: d.input(MERGE_INPUTS[0], "EditScore report of one replicate"),
            rest: std::array::from_fn(|i| {
                d.optional(MERGE_INPUTS[i + 1], "the same method's report of another replicate")
            }),
            merged: d.output("scores", "the reports as one, replicates kept apart"),
        }
    }

    fn run(&self, io: &mut NodeIo<'_>, _ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let mut parts = vec![io.read(&self.first)?];
        for input in &self.rest {
            parts.extend(io.read(input)?);
        }
        let merged = robust::merge(&parts).map_err(|m| NodeError::input(self.first.name(), m))?;
        io.write(&self.merged, merged);
        Ok(())
    }
}
