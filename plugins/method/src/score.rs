//! Scoring edits as ../docs/EVALUATION.md describes: success, leakage into the other attribute groups, the
//! re-scoring matrix and picture movement, from an independent classifier's labels of the rendered edits.

use subspace_sdk::edits::{EditLayout, EditScores, PictureScores, ScorePoint, TargetScores};
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

/// What edits are measured against: the judge's labels of the renders of the unedited input codes (`samples` x
/// K) and those renders (`samples` x C x H x W), when given.
pub struct Reference<'a> {
    /// Labels of the unedited pictures.
    pub labels: &'a Tensor,
    /// The unedited pictures.
    pub images: Option<&'a Tensor>,
}

/// Scores every target. `labels`: N x K probabilities of the rendered edits; `images`: the renders (N x C x H x W),
/// if given. Leakage, movement and SSIM are measured against `reference` (the unedited pictures) when given, else
/// against each picture's first column (ratio 0).
pub fn score(
    labels: &Tensor,
    images: Option<&Tensor>,
    layout: &EditLayout,
    schema: &LabelSchema,
    reference: Option<Reference<'_>>,
) -> Result<Vec<TargetScores>, NodeError> {
    let (s, t) = (layout.samples, layout.steps);
    let k = schema.len() as i64;
    let nt = layout.targets.len() as i64;
    let p = labels.to_kind(Kind::Double).view([nt, s, t, k]);
    let img = images.map(|i| {
        let size = i.size();
        // Float, as rendered: a double copy of every picture would cost twice the memory for no gain here.
        i.to_kind(Kind::Float).view([nt, s, t, size[1], size[2], size[3]])
    });
    let ref_labels = reference.as_ref().map(|r| r.labels.to_kind(Kind::Double));
    let ref_images = reference.as_ref().and_then(|r| r.images).map(|i| i.to_kind(Kind::Float));
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
        let ti = ti as i64;
        let base = ref_labels.as_ref().map_or_else(|| p.get(ti).select(1, 0), Tensor::shallow_clone); // s x k
        let base_img =
            img.as_ref().map(|im| ref_images.as_ref().map_or_else(|| im.get(ti).select(1, 0), Tensor::shallow_clone));
        let mut points = Vec::new();
        let mut pictures = PictureScores::default();
        for (ri, &ratio) in layout.ratios.iter().enumerate() {
            let now = p.get(ti).select(1, ri as i64);
            let mut hit = Tensor::ones([s], (Kind::Bool, now.device()));
            for (&c, &g) in cols.iter().zip(&groups) {
                let r = schema.group_range(g);
                let am = now.narrow(1, r.start as i64, r.len() as i64).argmax(1, false);
                hit = hit.logical_and(&am.eq((c - r.start) as i64));
            }
            let hit = hit.to_kind(Kind::Double);
            // Per picture and other group: total-variation change of the group's class probabilities.
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
                per_group.push(tv);
            }
            let leak = if per_group.is_empty() {
                Tensor::zeros([s], (Kind::Double, now.device()))
            } else {
                Tensor::stack(&per_group, 1).mean_dim([1i64].as_slice(), false, Kind::Double)
            };
            let leakage_max = per_group.iter().map(|tv| tv.mean(Kind::Double).double_value(&[])).fold(0.0, f64::max);
            let mean = |x: &Tensor| x.mean(Kind::Double).double_value(&[]);
            let (mut movement, mut similarity) = (None, None);
            if let (Some(im), Some(b)) = (&img, &base_img) {
                let now_img = im.get(ti).select(1, ri as i64);
                let d = (&now_img - b).view([s, -1]);
                let mv = d.square().mean_dim([1i64].as_slice(), false, Kind::Double).sqrt();
                let ss = ssim(&now_img, b);
                movement = Some(mean(&mv));
                similarity = Some(mean(&ss));
                pictures.movement.push(vec_of(&mv));
                pictures.ssim.push(vec_of(&ss));
            }
            pictures.success.push(vec_of(&hit));
            pictures.leakage.push(vec_of(&leak));
            points.push(ScorePoint {
                ratio,
                success: mean(&hit),
                leakage: mean(&leak),
                leakage_max,
                movement,
                ssim: similarity,
            });
        }
        let last = p.get(ti).select(1, t - 1);
        let change = (last - &base).mean_dim([0i64].as_slice(), false, Kind::Double);
        let rescoring: Vec<f64> = Vec::try_from(change).unwrap_or_default();
        out.push(TargetScores { target: name.clone(), points, rescoring, pictures: Some(pictures) });
    }
    Ok(out)
}

fn vec_of(t: &Tensor) -> Vec<f64> {
    Vec::try_from(t.to_kind(Kind::Double).contiguous()).unwrap_or_default()
}

/// Structural similarity of each pair of pictures (N x C x H x W in [0, 1]): Wang et al. 2004 with an 11 x 11
/// Gaussian window (sigma 1.5, applied as two 1-D passes; smaller pictures use a window that fits), per channel,
/// averaged over the map. N, double.
pub fn ssim(a: &Tensor, b: &Tensor) -> Tensor {
    let size = a.size();
    let (c, h, w) = (size[1], size[2], size[3]);
    let side = 11.min(h).min(w);
    let side = if side % 2 == 0 { side - 1 } else { side }.max(1);
    let g: Vec<f32> = (0..side)
        .map(|i| {
            let x = i as f32 - (side - 1) as f32 / 2.0;
            (-x * x / (2.0 * 1.5 * 1.5)).exp()
        })
        .collect();
    let total: f32 = g.iter().sum();
    let g = Tensor::from_slice(&g).to_device(a.device()) / f64::from(total);
    let rows = g.view([1, 1, side, 1]).repeat([c, 1, 1, 1]);
    let cols = g.view([1, 1, 1, side]).repeat([c, 1, 1, 1]);
    let filter = |x: &Tensor| {
        x.conv2d(&rows, None::<Tensor>, [1, 1], [0, 0], [1, 1], c).conv2d(
            &cols,
            None::<Tensor>,
            [1, 1],
            [0, 0],
            [1, 1],
            c,
        )
    };
    let (a, b) = (a.to_kind(Kind::Float), b.to_kind(Kind::Float));
    let (ma, mb) = (filter(&a), filter(&b));
    let saa = filter(&(&a * &a)) - ma.square();
    let sbb = filter(&(&b * &b)) - mb.square();
    let sab = filter(&(&a * &b)) - &ma * &mb;
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let num = (&ma * &mb * 2.0 + c1) * (sab * 2.0 + c2);
    let den = (ma.square() + mb.square() + c1) * (saa + sbb + c2);
    (num / den).mean_dim([1i64, 2, 3].as_slice(), false, Kind::Double)
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
    /// SSIM to the unedited picture interpolated at the budget, when the scores have it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssim: Option<f64>,
    /// The method never moved the picture this far; its largest edit is reported.
    pub capped: bool,
}

/// Interpolates a target's (movement, success, leakage, SSIM) curve at movement `budget`; points without a
/// movement are left out.
pub fn at_budget(points: &[ScorePoint], budget: f64) -> Option<AtBudget> {
    let mut pts: Vec<&ScorePoint> = points.iter().filter(|p| p.movement.is_some()).collect();
    if pts.is_empty() {
        return None;
    }
    let mv = |p: &ScorePoint| p.movement.unwrap_or(0.0);
    pts.sort_by(|a, b| mv(a).total_cmp(&mv(b)));
    let has_ssim = pts.iter().all(|p| p.ssim.is_some());
    let make = |a: &ScorePoint, b: &ScorePoint, t: f64, capped: bool| {
        let lerp = |x: f64, y: f64| x + (y - x) * t;
        AtBudget {
            budget,
            success: lerp(a.success, b.success),
            leakage: lerp(a.leakage, b.leakage),
            leakage_max: lerp(a.leakage_max, b.leakage_max),
            ssim: has_ssim.then(|| lerp(a.ssim.unwrap_or(0.0), b.ssim.unwrap_or(0.0))),
            capped,
        }
    };
    for w in pts.windows(2) {
        let (a, b) = (w[0], w[1]);
        if mv(a) <= budget && budget <= mv(b) {
            let t = if mv(b) > mv(a) { (budget - mv(a)) / (mv(b) - mv(a)) } else { 1.0 };
            return Some(make(a, b, t, false));
        }
    }
    let last = if budget < mv(pts[0]) { pts[0] } else { pts[pts.len() - 1] };
    Some(make(last, last, 0.0, budget > mv(last)))
}

/// A success difference smaller than this is no difference.
pub const SUCCESS_MARGIN: f64 = 0.02;
/// A leakage difference smaller than this is no difference.
pub const LEAKAGE_MARGIN: f64 = 0.01;

/// Judged on two axes with margins (success 0.02, leakage 0.01): "at least as good" = worse on neither; "worse" =
/// worse on at least one and better on neither; "trade-off" = better on one, worse on the other.
fn verdict(success: f64, leakage: f64, base_success: f64, base_leakage: f64) -> &'static str {
    let (worse_s, better_s) = (success < base_success - SUCCESS_MARGIN, success > base_success + SUCCESS_MARGIN);
    let (worse_l, better_l) = (leakage > base_leakage + LEAKAGE_MARGIN, leakage < base_leakage - LEAKAGE_MARGIN);
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
            ssim: None,
        };
        let targets = classes
            .iter()
            .map(|&(t, s, l)| TargetScores {
                target: t.into(),
                points: vec![point(0.0, 0.0, 0.0), point(0.2, s, l)],
                rescoring: vec![],
                pictures: None,
            })
            .collect();
        EditScores { method: method.into(), classes: vec![], targets, reference: String::new(), replicates: vec![] }
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

    fn two_groups() -> LabelSchema {
        let g = |n: &str, c: &[&str]| subspace_sdk::LabelGroup {
            name: n.into(),
            classes: c.iter().map(|s| (*s).into()).collect(),
        };
        LabelSchema { groups: vec![g("hair", &["black", "red"]), g("smile", &["yes", "no"])].into() }
    }

    /// Edits whose ratio-0 column had already moved (smile half gone, pixels brighter by 0.1) look unmoved against
    /// that column and moved against the unedited pictures.
    #[test]
    fn scores_are_measured_against_the_unedited_pictures_when_given() {
        let layout = EditLayout { targets: vec!["hair.red".into()], samples: 2, steps: 2, ratios: vec![0.0, 1.0] };
        // Rows: picture 0 at ratios 0 and 1, picture 1 at ratios 0 and 1; columns hair.black, hair.red, smile.
        let row = |red: f32, smile: f32| [1.0 - red, red, smile, 1.0 - smile];
        let edits: Vec<f32> = [row(0.0, 0.5), row(1.0, 0.5), row(0.0, 0.5), row(0.9, 0.5)].concat();
        let labels = Tensor::from_slice(&edits).view([4, 4]);
        let unedited = Tensor::from_slice(&[row(0.0, 1.0), row(0.0, 1.0)].concat()).view([2, 4]);
        let originals = Tensor::rand([2, 3, 16, 16], (Kind::Float, subspace_sdk::tch::Device::Cpu)) * 0.8;
        let moved = &originals + 0.1;
        let images = Tensor::stack(&[moved.get(0), moved.get(0), moved.get(1), moved.get(1)], 0);
        let own = score(&labels, Some(&images), &layout, &two_groups(), None).unwrap();
        let reference = Reference { labels: &unedited, images: Some(&originals) };
        let honest = score(&labels, Some(&images), &layout, &two_groups(), Some(reference)).unwrap();
        let (a, b) = (&own[0].points, &honest[0].points);
        assert_eq!((a[1].success, b[1].success), (1.0, 1.0));
        assert!(a[1].leakage.abs() < 1e-9 && (b[1].leakage - 0.5).abs() < 1e-6, "{a:?} {b:?}");
        assert!(a[0].movement.unwrap() < 1e-9 && (b[0].movement.unwrap() - 0.1).abs() < 1e-5);
        assert!((a[0].ssim.unwrap() - 1.0).abs() < 1e-5 && b[0].ssim.unwrap() < 0.999);
        let pics = honest[0].pictures.as_ref().unwrap();
        assert_eq!(pics.success, vec![vec![0.0, 0.0], vec![1.0, 1.0]]);
        assert!((pics.leakage[1][0] - 0.5).abs() < 1e-6);
    }

    #[test]
    fn ssim_is_one_for_identical_pictures_and_falls_with_noise() {
        let a = Tensor::rand([3, 3, 32, 32], (Kind::Float, subspace_sdk::tch::Device::Cpu));
        let same = ssim(&a, &a);
        assert!(Vec::<f64>::try_from(same).unwrap().iter().all(|v| (v - 1.0).abs() < 1e-5));
        let little = ssim(&a, &(&a + Tensor::randn_like(&a) * 0.02)).mean(Kind::Double).double_value(&[]);
        let much = ssim(&a, &(&a + Tensor::randn_like(&a) * 0.3)).mean(Kind::Double).double_value(&[]);
        assert!(1.0 > little && little > much, "{little} {much}");
        // Pictures smaller than the window use a window that fits.
        let tiny = Tensor::rand([1, 1, 4, 4], (Kind::Float, subspace_sdk::tch::Device::Cpu));
        assert!((ssim(&tiny, &tiny).double_value(&[0]) - 1.0).abs() < 1e-5);
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
