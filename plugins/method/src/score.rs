//! Scoring edits as ../docs/EVALUATION.md describes: success, leakage into the other attribute groups, the
//! re-scoring matrix and picture movement, from an independent classifier's labels of the rendered edits.

use subspace_sdk::edits::{EditLayout, EditScores, ScorePoint, TargetScores};
use subspace_sdk::tch::{Kind, Tensor};
use subspace_sdk::{LabelSchema, NodeError};

/// Checks a layout for scoring: it describes the `n` rendered edits, and its first ratio is 0 (with steps >= 2),
/// the unedited pictures every score is measured against.
///
/// # Errors
/// A message saying what disagrees.
pub fn check_layout(layout: &EditLayout, n: i64) -> Result<(), String> {
    layout.check(n)?;
    if layout.steps < 2 || layout.ratios[0] != 0.0 {
        return Err("scoring needs the unedited pictures: use steps >= 2 so the first ratio is 0".into());
    }
    Ok(())
}

/// Scores every target. `labels`: N x K probabilities of the rendered edits; `images`: the renders, if given.
pub fn score(
    labels: &Tensor,
    images: Option<&Tensor>,
    layout: &EditLayout,
    schema: &LabelSchema,
) -> Result<Vec<TargetScores>, NodeError> {
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
            let c = schema.column(part).ok_or_else(|| {
                let names = schema.class_names();
                NodeError::input("layout", format!("target '{part}' is not a class of the labels' schema {names:?}"))
            })?;
            cols.push(c);
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
                let (start, len) = (r.start as i64, r.len() as i64);
                let tv = (now.narrow(1, start, len) - base.narrow(1, start, len)).abs().sum_dim_intlist(
                    [1i64].as_slice(),
                    false,
                    Kind::Double,
                ) * 0.5;
                per_group.push(tv.mean(Kind::Double).double_value(&[]));
            }
            let leakage =
                if per_group.is_empty() { 0.0 } else { per_group.iter().sum::<f64>() / per_group.len() as f64 };
            let leakage_max = per_group.iter().cloned().fold(0.0, f64::max);
            let movement = img.as_ref().map(|im| {
                let d = im.get(ti as i64).select(1, ri as i64) - im.get(ti as i64).select(1, 0);
                d.square().mean_dim([1i64].as_slice(), false, Kind::Double).sqrt().mean(Kind::Double).double_value(&[])
            });
            points.push(ScorePoint { ratio, success, leakage, leakage_max, movement });
        }
        let last = p.get(ti as i64).select(1, t - 1);
        let change = (last - &base).mean_dim([0i64].as_slice(), false, Kind::Double);
        let rescoring: Vec<f64> = Vec::try_from(change).unwrap_or_default();
        out.push(TargetScores { target: name.clone(), points, rescoring });
    }
    Ok(out)
}

/// A markdown table: one row per target at the last ratio.
pub fn table(scores: &[TargetScores]) -> String {
    let mut md = String::from("| target | a | success | leakage (mean) | leakage (max group) | movement (RMS px) |\n");
    md += "|---|---|---|---|---|---|\n";
    for s in scores {
        if let Some(p) = s.points.last() {
            let mv = p.movement.map_or("-".to_string(), |m| format!("{m:.3}"));
            let (t, a) = (&s.target, p.ratio);
            md += &format!("| {t} | {a:.2} | {:.3} | {:.3} | {:.3} | {mv} |\n", p.success, p.leakage, p.leakage_max);
        }
    }
    let n = scores.len().max(1) as f64;
    let mean = |f: &dyn Fn(&ScorePoint) -> f64| scores.iter().filter_map(|s| s.points.last()).map(f).sum::<f64>() / n;
    let (s, l, lmax) = (mean(&|p| p.success), mean(&|p| p.leakage), mean(&|p| p.leakage_max));
    md += &format!("| **mean** | | {s:.3} | {l:.3} | {lmax:.3} | |\n");
    md
}

/// Success and leakage of one method's edits toward one class, at a movement budget.
#[derive(serde::Serialize, Debug, Clone)]
pub struct AtBudget {
    /// The movement budget (RMS pixel change).
    pub budget: f64,
    /// Success interpolated at the budget.
    pub success: f64,
    /// Mean leakage interpolated at the budget.
    pub leakage: f64,
    /// The worst group's leakage interpolated at the budget.
    pub leakage_max: f64,
    /// The method never moved the picture this far; its largest edit is reported.
    pub capped: bool,
}

/// Interpolates a target's (movement, success, leakage) curve at movement `budget`; points without a movement
/// are left out.
pub fn at_budget(points: &[ScorePoint], budget: f64) -> Option<AtBudget> {
    let mut pts: Vec<(f64, f64, f64, f64)> =
        points.iter().filter_map(|p| Some((p.movement?, p.success, p.leakage, p.leakage_max))).collect();
    if pts.is_empty() {
        return None;
    }
    pts.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    for w in pts.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a.0 <= budget && budget <= b.0 {
            let t = if b.0 > a.0 { (budget - a.0) / (b.0 - a.0) } else { 1.0 };
            let lerp = |x: f64, y: f64| x + (y - x) * t;
            let (success, leakage, leakage_max) = (lerp(a.1, b.1), lerp(a.2, b.2), lerp(a.3, b.3));
            return Some(AtBudget { budget, success, leakage, leakage_max, capped: false });
        }
    }
    let last = if budget < pts[0].0 { pts[0] } else { pts[pts.len() - 1] };
    Some(AtBudget { budget, success: last.1, leakage: last.2, leakage_max: last.3, capped: budget > last.0 })
}

/// Judged on two axes with margins (success 0.02, leakage 0.01): "at least as good" = worse on neither; "worse" =
/// worse on at least one and better on neither; "trade-off" = better on one, worse on the other.
fn verdict(success: f64, leakage: f64, base_success: f64, base_leakage: f64) -> &'static str {
    let (worse_s, better_s) = (success < base_success - 0.02, success > base_success + 0.02);
    let (worse_l, better_l) = (leakage > base_leakage + 0.01, leakage < base_leakage - 0.01);
    if !worse_s && !worse_l {
        "at least as good"
    } else if !better_s && !better_l {
        "worse"
    } else {
        "trade-off"
    }
}

/// One method's points on the comparison's scatter plot: (leakage, success) per class at the middle budget.
pub struct Series {
    /// The method's name, from its scores.
    pub method: String,
    /// (leakage, success) per class.
    pub points: Vec<[f64; 2]>,
    /// The class of each point.
    pub labels: Vec<String>,
}

/// What [`compare`] finds: the JSON report, markdown tables and one scatter series per method.
pub struct Comparison {
    /// Per class and method at each budget, the summary and the verdicts.
    pub report: serde_json::Value,
    /// Markdown tables.
    pub table: String,
    /// One series per method, in input order.
    pub scatter: Vec<Series>,
}

/// Compares methods' edit scores at matched picture movement. The first report is the one judged ("ours"); the
/// others are the baselines.
///
/// # Errors
/// The first report has no targets.
pub fn compare(reports: &[EditScores], budgets: &[f64]) -> Result<Comparison, NodeError> {
    let methods: Vec<String> = reports.iter().map(|r| r.method.clone()).collect();
    let targets: Vec<String> = reports[0].targets.iter().map(|t| t.target.clone()).collect();
    if targets.is_empty() {
        return Err(NodeError::input("a", "the first report has no targets"));
    }
    let mut per_class = serde_json::Map::new();
    // method -> budget -> (sum success, sum leakage, sum leakage max, count)
    let mut sums = vec![vec![(0.0, 0.0, 0.0, 0usize); budgets.len()]; reports.len()];
    let mid = budgets.len() / 2;
    let mut scatter: Vec<Series> =
        methods.iter().map(|m| Series { method: m.clone(), points: vec![], labels: vec![] }).collect();
    let mut verdicts = serde_json::Map::new();
    // Per target and method: the points at every budget (None: the method did not edit toward that target).
    let mut lists: Vec<Vec<Option<Vec<AtBudget>>>> = Vec::new();
    for target in &targets {
        let mut row = serde_json::Map::new();
        let mut per_method: Vec<Option<Vec<AtBudget>>> = Vec::new();
        for (mi, r) in reports.iter().enumerate() {
            let Some(t) = r.targets.iter().find(|t| t.target == *target) else {
                per_method.push(None);
                continue;
            };
            let list: Vec<AtBudget> = budgets.iter().filter_map(|&b| at_budget(&t.points, b)).collect();
            for (bi, a) in list.iter().enumerate() {
                let s = &mut sums[mi][bi];
                s.0 += a.success;
                s.1 += a.leakage;
                s.2 += a.leakage_max;
                s.3 += 1;
            }
            if let Some(a) = list.get(mid) {
                scatter[mi].points.push([a.leakage, a.success]);
                scatter[mi].labels.push(target.clone());
            }
            row.insert(methods[mi].clone(), serde_json::to_value(&list).unwrap_or_default());
            per_method.push(Some(list));
        }
        // Verdict at the middle budget against every baseline: at least as good = success within 0.02 and
        // leakage within 0.01 of it or better.
        let at_mid = |mi: usize| per_method[mi].as_ref().and_then(|l| l.get(mid));
        if let Some(ours) = at_mid(0) {
            let mut v = serde_json::Map::new();
            for (mi, method) in methods.iter().enumerate().skip(1) {
                if let Some(b) = at_mid(mi) {
                    v.insert(method.clone(), verdict(ours.success, ours.leakage, b.success, b.leakage).into());
                }
            }
            verdicts.insert(target.clone(), v.into());
        }
        lists.push(per_method);
        per_class.insert(target.clone(), row.into());
    }
    let at_mid = |ti: usize, mi: usize| lists[ti][mi].as_ref().and_then(|l| l.get(mid));
    // Per attribute group (the part of a target before its '.'): class means at the middle budget.
    let mut groups: Vec<String> = Vec::new();
    for t in &targets {
        let g = t.split('.').next().unwrap_or(t).to_string();
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    let mut per_group = serde_json::Map::new();
    let mut group_md = format!(
        "\nPer attribute group at movement {} (mean over its classes; success / mean leakage; verdict of {} against \
         each baseline):\n\n| group | {} | verdict |\n|---|{}---|\n",
        budgets[mid],
        methods[0],
        methods.join(" | "),
        "---|".repeat(methods.len())
    );
    for g in &groups {
        let rows: Vec<usize> =
            (0..targets.len()).filter(|&i| targets[i].split('.').next() == Some(g.as_str())).collect();
        let mean: Vec<Option<(f64, f64)>> = (0..methods.len())
            .map(|mi| {
                let pts: Vec<&AtBudget> = rows.iter().filter_map(|&i| at_mid(i, mi)).collect();
                (pts.len() == rows.len() && !pts.is_empty()).then(|| {
                    let n = pts.len() as f64;
                    (pts.iter().map(|a| a.success).sum::<f64>() / n, pts.iter().map(|a| a.leakage).sum::<f64>() / n)
                })
            })
            .collect();
        let mut v = serde_json::Map::new();
        let mut short = Vec::new();
        if let Some((os, ol)) = mean[0] {
            for (mi, b) in mean.iter().enumerate().skip(1) {
                if let Some((bs, bl)) = b {
                    let word = verdict(os, ol, *bs, *bl);
                    if word != "at least as good" {
                        short.push(format!("{word} vs {}", methods[mi]));
                    }
                    v.insert(methods[mi].clone(), word.into());
                }
            }
        }
        let cells: Vec<String> =
            mean.iter().map(|m| m.map_or("-".into(), |(s, l)| format!("{s:.2} / {l:.3}"))).collect();
        let summary =
            if short.is_empty() { "at least as good as every baseline".to_string() } else { short.join("; ") };
        group_md += &format!("| {g} | {} | {summary} |\n", cells.join(" | "));
        let means: serde_json::Map<String, serde_json::Value> = methods
            .iter()
            .zip(&mean)
            .filter_map(|(m, x)| x.map(|(s, l)| (m.clone(), serde_json::json!({"success": s, "leakage": l}))))
            .collect();
        per_group.insert(g.clone(), serde_json::json!({"classes": rows.len(), "means": means, "verdicts": v}));
    }
    let mut md = String::new();
    for (bi, b) in budgets.iter().enumerate() {
        md += &format!(
            "\nMovement budget {b} (RMS pixel change), mean over {} classes:\n\n\
             | method | success | leakage (mean) | leakage (max group) |\n|---|---|---|---|\n",
            targets.len()
        );
        for (mi, m) in methods.iter().enumerate() {
            let s = sums[mi][bi];
            let n = s.3.max(1) as f64;
            md += &format!("| {m} | {:.3} | {:.3} | {:.3} |\n", s.0 / n, s.1 / n, s.2 / n);
        }
    }
    md += &format!(
        "\nPer class at movement {} (success / mean leakage):\n\n| class | {} |\n|---|{}\n",
        budgets[mid],
        methods.join(" | "),
        "---|".repeat(methods.len())
    );
    for (ti, target) in targets.iter().enumerate() {
        let cells: Vec<String> = (0..methods.len())
            .map(|mi| {
                at_mid(ti, mi).map_or("-".into(), |a| {
                    format!("{:.2} / {:.3}{}", a.success, a.leakage, if a.capped { "*" } else { "" })
                })
            })
            .collect();
        md += &format!("| {target} | {} |\n", cells.join(" | "));
    }
    md += "\n`*`: the method never moved the picture that far; its largest edit is shown.\n";
    md += &group_md;
    let summary: Vec<serde_json::Value> = methods
        .iter()
        .enumerate()
        .map(|(mi, m)| {
            let per: Vec<serde_json::Value> = budgets
                .iter()
                .enumerate()
                .map(|(bi, b)| {
                    let s = sums[mi][bi];
                    let n = s.3.max(1) as f64;
                    serde_json::json!({"budget": b, "success": s.0 / n, "leakage": s.1 / n, "leakage_max": s.2 / n})
                })
                .collect();
            serde_json::json!({"method": m, "budgets": per})
        })
        .collect();
    let report = serde_json::json!({"budgets": budgets, "methods": methods, "summary": summary,
        "per_class": per_class, "verdicts_at_middle_budget": verdicts, "per_group_at_middle_budget": per_group});
    Ok(Comparison { report, table: md, scatter })
}

#[cfg(test)]
mod compare_tests {
    use super::*;

    /// A report whose every target moves linearly from (0, 0, 0) to (movement 0.2, success s, leakage l).
    fn report(method: &str, classes: &[(&str, f64, f64)]) -> EditScores {
        let point = |movement, success, leakage: f64| ScorePoint {
            ratio: movement * 5.0,
            success,
            leakage,
            leakage_max: leakage * 2.0,
            movement: Some(movement),
        };
        let targets = classes
            .iter()
            .map(|&(t, s, l)| TargetScores {
                target: t.into(),
                points: vec![point(0.0, 0.0, 0.0), point(0.2, s, l)],
                rescoring: vec![],
            })
            .collect();
        EditScores { method: method.into(), classes: vec![], targets }
    }

    #[test]
    fn interpolates_at_budgets_and_judges_classes_and_groups() {
        let classes = |s: [f64; 4], l: [f64; 4]| {
            let names = ["hair.red", "hair.black", "smile.yes", "glasses.yes"];
            (0..4).map(|i| (names[i], s[i], l[i])).collect::<Vec<_>>()
        };
        let ours = report("ours", &classes([0.8, 0.6, 1.0, 0.8], [0.1, 0.1, 0.4, 0.2]));
        let base = report("base", &classes([0.4, 0.8, 0.8, 0.8], [0.1, 0.02, 0.1, 0.1]));
        let Comparison { report: r, table: md, scatter } = compare(&[ours, base], &[0.05, 0.1, 0.3]).unwrap();
        // Halfway along the curve at movement 0.1; beyond the largest edit the last point, marked capped.
        let red = &r["per_class"]["hair.red"]["ours"];
        assert!((red[1]["success"].as_f64().unwrap() - 0.4).abs() < 1e-9);
        assert!((red[1]["leakage"].as_f64().unwrap() - 0.05).abs() < 1e-9);
        assert_eq!(red[2]["capped"], true);
        assert_eq!(red[1]["capped"], false);
        let v = &r["verdicts_at_middle_budget"];
        assert_eq!(v["hair.red"]["base"], "at least as good");
        assert_eq!(v["hair.black"]["base"], "worse");
        assert_eq!(v["smile.yes"]["base"], "trade-off");
        // Equal success (within the margin) and more leakage is worse, not a trade-off.
        assert_eq!(v["glasses.yes"]["base"], "worse");
        // Groups average their classes: hair (0.35, 0.05) against (0.3, 0.03) is a trade-off.
        let hair = &r["per_group_at_middle_budget"]["hair"];
        assert_eq!(hair["classes"], 2);
        assert!((hair["means"]["ours"]["success"].as_f64().unwrap() - 0.35).abs() < 1e-9);
        assert_eq!(hair["verdicts"]["base"], "trade-off");
        assert!(md.contains("| hair | 0.35 / 0.050 | 0.30 / 0.030 | trade-off vs base |"), "{md}");
        assert!(md.contains("| hair.red | 0.40 / 0.050 | 0.20 / 0.050 |"), "{md}");
        assert_eq!(scatter[0].points.len(), 4); // one point per class
    }

    #[test]
    fn scoring_needs_the_unedited_pictures_first() {
        let layout =
            |steps: i64, ratios: Vec<f64>| EditLayout { targets: vec!["a.b".into()], samples: 2, steps, ratios };
        assert!(check_layout(&layout(2, vec![0.0, 1.0]), 4).is_ok());
        assert!(check_layout(&layout(2, vec![0.0, 1.0]), 5).unwrap_err().contains("but 5"));
        for bad in [layout(1, vec![0.0]), layout(2, vec![0.5, 1.0])] {
            assert!(check_layout(&bad, bad.rows().unwrap()).unwrap_err().contains("unedited"));
        }
    }
}
