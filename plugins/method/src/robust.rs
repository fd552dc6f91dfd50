//! Comparisons that survive another seed: per attribute group, each method's success, leakage and SSIM at matched
//! movement with a bootstrap interval over replicates (fit seed and picture set) and the pictures within them, and
//! verdicts that speak only where the interval of the difference clears the margin ("tie" otherwise). Also merges
//! the scores of one method from several replicates into one report.

use crate::score::{at_budget, LEAKAGE_MARGIN, SUCCESS_MARGIN};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use subspace_sdk::edits::{EditScores, PictureScores, ScorePoint, TargetScores};

/// How the intervals are drawn.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Bootstrap resamples.
    pub resamples: usize,
    /// Seed of the resampling.
    pub seed: u64,
}

/// A mean and its 95% percentile-bootstrap interval.
#[derive(Serialize, Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// The estimate on the data as measured.
    pub mean: f64,
    /// 2.5th percentile of the resampled estimates.
    pub lo: f64,
    /// 97.5th percentile.
    pub hi: f64,
}

impl Interval {
    fn of(mean: f64, mut samples: Vec<f64>) -> Interval {
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Interval { mean, lo: at(0.025), hi: at(0.975) }
    }
}

/// One method in one group at one budget.
#[derive(Serialize, Debug, Clone)]
pub struct MethodAt {
    /// The method.
    pub method: String,
    /// Success at the budget.
    pub success: Interval,
    /// Mean leakage at the budget.
    pub leakage: Interval,
    /// SSIM to the unedited picture at the budget (absent without images).
    pub ssim: Option<Interval>,
}

/// The judged method against one baseline in one group at one budget.
#[derive(Serialize, Debug, Clone)]
pub struct Verdict {
    /// The baseline.
    pub baseline: String,
    /// Judged minus baseline success.
    pub success_diff: Interval,
    /// Judged minus baseline leakage.
    pub leakage_diff: Interval,
    /// better / tie / worse / trade-off (see [`verdict`]).
    pub verdict: &'static str,
}

/// One attribute group (or `all`, every target) at one budget.
#[derive(Serialize, Debug, Clone)]
pub struct GroupAt {
    /// Group name (`all`: the mean over every target).
    pub group: String,
    /// Targets averaged.
    pub targets: usize,
    /// Movement budget.
    pub budget: f64,
    /// Every method, in input order.
    pub methods: Vec<MethodAt>,
    /// The first method against each other one.
    pub verdicts: Vec<Verdict>,
}

/// The whole robust comparison.
#[derive(Serialize, Debug, Clone)]
pub struct Robust {
    /// Replicates (fit seed and picture set).
    pub replicates: usize,
    /// Pictures per target, over all replicates.
    pub pictures: usize,
    /// Bootstrap resamples.
    pub resamples: usize,
    /// Margins a difference's interval must clear for a verdict: success, leakage.
    pub margins: [f64; 2],
    /// Per group and budget.
    pub groups: Vec<GroupAt>,
    /// Per method (input order), per group (as in `groups`, `all` first): the fraction of edits whose success
    /// goes back from 1 to 0 between two neighbouring ratios (0: success never falls as the strength grows).
    pub reversals: Vec<Vec<(String, f64)>>,
}

/// The fraction of (picture, target) edits in `targets` whose success falls from 1 to 0 between neighbouring ratios.
fn reversal_rate(targets: &[&TargetScores]) -> f64 {
    let (mut fell, mut total) = (0usize, 0usize);
    for t in targets {
        let Some(p) = &t.pictures else { continue };
        let n = p.success.first().map_or(0, Vec::len);
        for i in 0..n {
            total += 1;
            fell += usize::from(p.success.windows(2).any(|w| w[0][i] == 1.0 && w[1][i] == 0.0));
        }
    }
    if total == 0 {
        0.0
    } else {
        fell as f64 / total as f64
    }
}

/// "better" when one measure's interval clears its margin in the judged method's favour and neither does against
/// it, "worse" the other way round, "trade-off" when both happen, "tie" when no interval clears its margin.
pub fn verdict(success_diff: &Interval, leakage_diff: &Interval) -> &'static str {
    let better = success_diff.lo > SUCCESS_MARGIN || leakage_diff.hi < -LEAKAGE_MARGIN;
    let worse = success_diff.hi < -SUCCESS_MARGIN || leakage_diff.lo > LEAKAGE_MARGIN;
    match (better, worse) {
        (true, true) => "trade-off",
        (true, false) => "better",
        (false, true) => "worse",
        (false, false) => "tie",
    }
}

/// The group a target belongs to: the part of its (first) class before the `.`.
pub fn group_of(target: &str) -> &str {
    target.split('.').next().unwrap_or(target)
}

/// Success, leakage and SSIM of one target at each budget, for the pictures `drawn` (one list per drawn
/// replicate): each replicate's mean curve is read at the budget, then the replicates are averaged.
fn target_at(p: &PictureScores, ratios: &[f64], drawn: &[Vec<usize>], budgets: &[f64]) -> Vec<[f64; 3]> {
    let mut acc = vec![[0.0; 3]; budgets.len()];
    for pics in drawn {
        let n = pics.len() as f64;
        let mean = |rows: &[Vec<f64>], r: usize| pics.iter().map(|&i| rows[r][i]).sum::<f64>() / n;
        let has_images = !p.movement.is_empty();
        let points: Vec<ScorePoint> = (0..ratios.len())
            .map(|r| ScorePoint {
                ratio: ratios[r],
                success: mean(&p.success, r),
                leakage: mean(&p.leakage, r),
                leakage_max: 0.0,
                movement: has_images.then(|| mean(&p.movement, r)),
                ssim: (!p.ssim.is_empty()).then(|| mean(&p.ssim, r)),
            })
            .collect();
        for (k, &b) in budgets.iter().enumerate() {
            if let Some(a) = at_budget(&points, b) {
                acc[k][0] += a.success;
                acc[k][1] += a.leakage;
                acc[k][2] += a.ssim.unwrap_or(f64::NAN);
            }
        }
    }
    let m = drawn.len() as f64;
    acc.iter().map(|a| [a[0] / m, a[1] / m, a[2] / m]).collect()
}

/// One draw's statistic: `[method][group][budget]` = (success, leakage, SSIM).
type Stat = Vec<Vec<Vec<[f64; 3]>>>;

/// Checks that every report carries per-picture scores for the first report's targets, over the same pictures
/// and replicates, and returns the pictures of each replicate.
fn replicate_members(reports: &[EditScores]) -> Result<Vec<Vec<usize>>, String> {
    let first = &reports[0];
    let n = first.pictures();
    if n == 0 {
        return Err(format!("'{}' has no per-picture scores (re-score with EditScore 2.1 or later)", first.method));
    }
    for r in reports {
        for t in &first.targets {
            let Some(other) = r.targets.iter().find(|x| x.target == t.target) else {
                return Err(format!("'{}' has no edits toward {}", r.method, t.target));
            };
            let rows = other.pictures.as_ref().map_or(0, |p| p.success.first().map_or(0, Vec::len));
            if rows != n {
                return Err(format!(
                    "'{}' scored {rows} pictures toward {} and '{}' {n}: compare methods on the same pictures",
                    r.method, t.target, first.method
                ));
            }
        }
        if (0..n).any(|i| r.replicate(i) != first.replicate(i)) {
            return Err(format!("'{}' and '{}' come from different replicates", r.method, first.method));
        }
    }
    let mut ids: Vec<u32> = (0..n).map(|i| first.replicate(i)).collect();
    ids.sort_unstable();
    ids.dedup();
    Ok(ids.iter().map(|&id| (0..n).filter(|&i| first.replicate(i) == id).collect()).collect())
}

/// Compares `reports` (the first is the method judged) at `budgets` with bootstrap intervals: replicates are drawn
/// with replacement, then the pictures within each; every method and target sees the same draw (a paired
/// comparison, since all methods edit the same pictures).
///
/// # Errors
/// A report without per-picture scores, or reports over different pictures.
pub fn compare(reports: &[EditScores], budgets: &[f64], opts: Options) -> Result<Robust, String> {
    let members = replicate_members(reports)?;
    let first = &reports[0];
    let mut groups: Vec<(String, Vec<usize>)> = vec![("all".into(), (0..first.targets.len()).collect())];
    for (ti, t) in first.targets.iter().enumerate() {
        let g = group_of(&t.target);
        match groups.iter_mut().skip(1).find(|(name, _)| name == g) {
            Some((_, list)) => list.push(ti),
            None => groups.push((g.to_string(), vec![ti])),
        }
    }
    // Each method's per-picture scores in the first report's target order.
    let tables: Vec<Vec<&TargetScores>> = reports
        .iter()
        .map(|r| first.targets.iter().filter_map(|t| r.targets.iter().find(|x| x.target == t.target)).collect())
        .collect();
    let stat = |drawn: &[Vec<usize>]| -> Stat {
        tables
            .iter()
            .map(|targets| {
                let per_target: Vec<Vec<[f64; 3]>> = targets
                    .iter()
                    .map(|t| {
                        let ratios: Vec<f64> = t.points.iter().map(|p| p.ratio).collect();
                        t.pictures.as_ref().map_or_else(Vec::new, |p| target_at(p, &ratios, drawn, budgets))
                    })
                    .collect();
                groups
                    .iter()
                    .map(|(_, list)| {
                        (0..budgets.len())
                            .map(|k| {
                                let mut s = [0.0; 3];
                                for &ti in list {
                                    for (j, v) in s.iter_mut().enumerate() {
                                        *v += per_target[ti][k][j];
                                    }
                                }
                                s.map(|v| v / list.len() as f64)
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect()
    };
    let estimate = stat(&members);
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let draws: Vec<_> = (0..opts.resamples.max(1))
        .map(|_| {
            let drawn: Vec<Vec<usize>> = (0..members.len())
                .map(|_| {
                    let m = &members[rng.gen_range(0..members.len())];
                    (0..m.len()).map(|_| m[rng.gen_range(0..m.len())]).collect()
                })
                .collect();
            stat(&drawn)
        })
        .collect();
    let interval = |f: &dyn Fn(&Stat) -> f64| Interval::of(f(&estimate), draws.iter().map(f).collect());
    let mut out = Vec::new();
    for (gi, (group, list)) in groups.iter().enumerate() {
        for (k, &budget) in budgets.iter().enumerate() {
            let methods = reports
                .iter()
                .enumerate()
                .map(|(mi, r)| MethodAt {
                    method: r.method.clone(),
                    success: interval(&|s| s[mi][gi][k][0]),
                    leakage: interval(&|s| s[mi][gi][k][1]),
                    ssim: estimate[mi][gi][k][2].is_finite().then(|| interval(&|s| s[mi][gi][k][2])),
                })
                .collect();
            let verdicts = reports
                .iter()
                .enumerate()
                .skip(1)
                .map(|(mi, r)| {
                    let success_diff = interval(&|s| s[0][gi][k][0] - s[mi][gi][k][0]);
                    let leakage_diff = interval(&|s| s[0][gi][k][1] - s[mi][gi][k][1]);
                    let verdict = verdict(&success_diff, &leakage_diff);
                    Verdict { baseline: r.method.clone(), success_diff, leakage_diff, verdict }
                })
                .collect();
            out.push(GroupAt { group: group.clone(), targets: list.len(), budget, methods, verdicts });
        }
    }
    let pictures = members.iter().map(Vec::len).sum();
    let reversals = tables
        .iter()
        .map(|targets| {
            groups
                .iter()
                .map(|(g, list)| {
                    let of: Vec<&TargetScores> = list.iter().map(|&ti| targets[ti]).collect();
                    (g.clone(), reversal_rate(&of))
                })
                .collect()
        })
        .collect();
    Ok(Robust {
        replicates: members.len(),
        pictures,
        resamples: opts.resamples.max(1),
        margins: [SUCCESS_MARGIN, LEAKAGE_MARGIN],
        groups: out,
        reversals,
    })
}

/// Markdown tables of a robust comparison: per budget, each group's success / leakage / SSIM with intervals, and
/// the judged method's verdicts.
pub fn table(r: &Robust) -> String {
    let mut budgets: Vec<f64> = r.groups.iter().map(|g| g.budget).collect();
    budgets.dedup();
    let Some(first) = r.groups.first() else { return String::new() };
    let judged = &first.methods[0].method;
    let mut md = format!(
        "\nWith 95% bootstrap intervals ({} replicates, {} pictures per class, {} resamples; replicates and the \
         pictures within them resampled, every method on the same draw). Cells: success [interval] / mean leakage \
         [interval] / SSIM to the unedited picture.\n",
        r.replicates, r.pictures, r.resamples
    );
    let fmt = |i: &Interval, digits: usize| format!("{:.d$} [{:.d$}, {:.d$}]", i.mean, i.lo, i.hi, d = digits);
    for b in &budgets {
        let rows: Vec<&GroupAt> = r.groups.iter().filter(|g| g.budget == *b).collect();
        md += &format!(
            "\nMovement budget {b}:\n\n| group | method | success | leakage | SSIM |\n|---|---|---|---|---|\n"
        );
        for g in &rows {
            for m in &g.methods {
                let ssim = m.ssim.as_ref().map_or("-".into(), |s| format!("{:.3}", s.mean));
                md += &format!(
                    "| {} | {} | {} | {} | {ssim} |\n",
                    g.group,
                    m.method,
                    fmt(&m.success, 2),
                    fmt(&m.leakage, 3)
                );
            }
        }
        let baselines: Vec<&str> = first.verdicts.iter().map(|v| v.baseline.as_str()).collect();
        md += &format!(
            "\nVerdicts of {judged} at movement {b} (difference of success / of leakage must clear {} / {} with its \
             interval; otherwise tie):\n\n| group | {} |\n|---|{}\n",
            r.margins[0],
            r.margins[1],
            baselines.join(" | "),
            "---|".repeat(baselines.len())
        );
        for g in &rows {
            let cells: Vec<String> = g.verdicts.iter().map(|v| v.verdict.to_string()).collect();
            md += &format!("| {} | {} |\n", g.group, cells.join(" | "));
        }
    }
    let methods: Vec<String> = first.methods.iter().map(|m| m.method.clone()).collect();
    md + &reversal_table(r, &methods)
}

/// The reversal table of a robust comparison (see [`Robust::reversals`]).
fn reversal_table(r: &Robust, methods: &[String]) -> String {
    let Some(first) = r.reversals.first() else { return String::new() };
    let groups: Vec<&str> = first.iter().map(|(g, _)| g.as_str()).collect();
    let mut md = format!(
        "\nEdits whose success falls back from 1 to 0 as the strength grows (between neighbouring ratios), per \
         group:\n\n| method | {} |\n|---|{}\n",
        groups.join(" | "),
        "---|".repeat(groups.len())
    );
    for (m, row) in methods.iter().zip(&r.reversals) {
        let cells: Vec<String> = row.iter().map(|(_, v)| format!("{v:.3}")).collect();
        md += &format!("| {m} | {} |\n", cells.join(" | "));
    }
    md
}

/// One method's scores from several replicates as one report: pictures concatenated, each tagged with its
/// replicate (replicates of an already merged input keep their distinction), points recomputed over all pictures.
///
/// # Errors
/// Inputs that name different methods, targets, ratios or classes, or lack per-picture scores.
pub fn merge(parts: &[EditScores]) -> Result<EditScores, String> {
    let Some(first) = parts.first() else { return Err("nothing to merge".into()) };
    for p in parts {
        if p.method != first.method || p.classes != first.classes || p.reference != first.reference {
            return Err(format!(
                "'{}' ({} reference) and '{}' ({} reference) are different methods, schemas or references",
                first.method, first.reference, p.method, p.reference
            ));
        }
        let names = |r: &EditScores| r.targets.iter().map(|t| t.target.clone()).collect::<Vec<_>>();
        if names(p) != names(first) {
            return Err(format!("'{}' inputs edit different targets: {:?} and {:?}", p.method, names(first), names(p)));
        }
        if p.pictures() == 0 {
            return Err(format!("an input of '{}' has no per-picture scores", p.method));
        }
    }
    let mut replicates = Vec::new();
    let mut next = 0;
    for p in parts {
        let ids: Vec<u32> = (0..p.pictures()).map(|i| p.replicate(i)).collect();
        let top = ids.iter().copied().max().unwrap_or(0);
        replicates.extend(ids.iter().map(|id| id + next));
        next += top + 1;
    }
    let mut targets = Vec::new();
    for (ti, t) in first.targets.iter().enumerate() {
        let ratios: Vec<f64> = t.points.iter().map(|p| p.ratio).collect();
        let mut joined = PictureScores::default();
        let (mut leakage_max, mut rescoring, mut total) = (vec![0.0; ratios.len()], vec![0.0; t.rescoring.len()], 0.0);
        for p in parts {
            let other = &p.targets[ti];
            let ratios_other: Vec<f64> = other.points.iter().map(|p| p.ratio).collect();
            if ratios_other != ratios {
                return Err(format!("'{}' toward {}: ratios {ratios:?} and {ratios_other:?}", p.method, t.target));
            }
            let Some(pics) = &other.pictures else { return Err(format!("'{}' has no per-picture scores", p.method)) };
            let n = p.pictures() as f64;
            let extend = |into: &mut Vec<Vec<f64>>, from: &Vec<Vec<f64>>| {
                into.resize(from.len(), Vec::new());
                for (a, b) in into.iter_mut().zip(from) {
                    a.extend_from_slice(b);
                }
            };
            extend(&mut joined.success, &pics.success);
            extend(&mut joined.leakage, &pics.leakage);
            extend(&mut joined.movement, &pics.movement);
            extend(&mut joined.ssim, &pics.ssim);
            for (a, pt) in leakage_max.iter_mut().zip(&other.points) {
                *a += pt.leakage_max * n;
            }
            for (a, b) in rescoring.iter_mut().zip(&other.rescoring) {
                *a += b * n;
            }
            total += n;
        }
        let mean = |rows: &[Vec<f64>], r: usize| rows[r].iter().sum::<f64>() / rows[r].len().max(1) as f64;
        let points = (0..ratios.len())
            .map(|r| ScorePoint {
                ratio: ratios[r],
                success: mean(&joined.success, r),
                leakage: mean(&joined.leakage, r),
                leakage_max: leakage_max[r] / total,
                movement: (!joined.movement.is_empty()).then(|| mean(&joined.movement, r)),
                ssim: (!joined.ssim.is_empty()).then(|| mean(&joined.ssim, r)),
            })
            .collect();
        let rescoring = rescoring.iter().map(|v| v / total).collect();
        targets.push(TargetScores { target: t.target.clone(), points, rescoring, pictures: Some(joined) });
    }
    Ok(EditScores {
        method: first.method.clone(),
        classes: first.classes.clone(),
        targets,
        reference: first.reference.clone(),
        replicates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report of one target per entry of `classes` (name, per-picture success at the last ratio), moving
    /// linearly from movement 0 to 0.2 over two ratios; leakage `leak` everywhere at the last ratio.
    fn report(method: &str, classes: &[(&str, Vec<f64>)], leak: f64) -> EditScores {
        let targets = classes
            .iter()
            .map(|(name, hits)| {
                let n = hits.len();
                let pictures = PictureScores {
                    success: vec![vec![0.0; n], hits.clone()],
                    leakage: vec![vec![0.0; n], vec![leak; n]],
                    movement: vec![vec![0.0; n], vec![0.2; n]],
                    ssim: vec![vec![1.0; n], vec![0.8; n]],
                };
                let mean = hits.iter().sum::<f64>() / n as f64;
                let pt = |ratio, success, leakage, movement, ssim| ScorePoint {
                    ratio,
                    success,
                    leakage,
                    leakage_max: leakage,
                    movement: Some(movement),
                    ssim: Some(ssim),
                };
                TargetScores {
                    target: name.to_string(),
                    points: vec![pt(0.0, 0.0, 0.0, 0.0, 1.0), pt(1.0, mean, leak, 0.2, 0.8)],
                    rescoring: vec![],
                    pictures: Some(pictures),
                }
            })
            .collect();
        EditScores { method: method.into(), classes: vec![], targets, reference: "unedited".into(), replicates: vec![] }
    }

    fn hits(n: usize, rate: f64) -> Vec<f64> {
        (0..n).map(|i| if (i as f64 + 0.5) / (n as f64) < rate { 1.0 } else { 0.0 }).collect()
    }

    #[test]
    fn clear_differences_get_verdicts_and_small_ones_are_ties() {
        let n = 200;
        let ours = report("ours", &[("hair.red", hits(n, 0.9)), ("smile.yes", hits(n, 0.5))], 0.05);
        let base = report("base", &[("hair.red", hits(n, 0.5)), ("smile.yes", hits(n, 0.51))], 0.05);
        let r = compare(&[ours, base], &[0.2], Options { resamples: 400, seed: 1 }).unwrap();
        let at = |g: &str| r.groups.iter().find(|x| x.group == g).unwrap();
        let hair = at("hair");
        assert!((hair.methods[0].success.mean - 0.9).abs() < 1e-9);
        assert!(hair.methods[0].success.lo < 0.9 && hair.methods[0].success.hi > 0.9);
        assert!(hair.methods[0].success.hi - hair.methods[0].success.lo < 0.15);
        assert_eq!(hair.verdicts[0].verdict, "better");
        // 0.50 against 0.51 with 200 pictures: the interval spans the margin, so no verdict.
        assert_eq!(at("smile").verdicts[0].verdict, "tie");
        assert_eq!(at("all").targets, 2);
        assert!((at("smile").methods[0].ssim.unwrap().mean - 0.8).abs() < 1e-9);
        // Success only rises in these reports (0 at ratio 0, then the picture's hit).
        assert_eq!(r.reversals[0][0], ("all".to_string(), 0.0));
        let md = table(&r);
        assert!(md.contains("| hair | better |"), "{md}");
        assert!(md.contains("| ours | 0.000 | 0.000 | 0.000 |"), "{md}");
        assert!(md.contains("| smile | tie |"), "{md}");
    }

    #[test]
    fn success_falling_back_as_the_strength_grows_is_counted() {
        let mut r = report("m", &[("hair.red", vec![1.0, 1.0, 0.0, 0.0])], 0.0);
        // A third ratio where the first two pictures lose the class again: 2 of 4 edits fall back.
        let p = r.targets[0].pictures.as_mut().unwrap();
        p.success.push(vec![0.0, 0.0, 0.0, 1.0]);
        p.leakage.push(vec![0.0; 4]);
        p.movement.push(vec![0.3; 4]);
        p.ssim.push(vec![0.7; 4]);
        let pt = r.targets[0].points[1].clone();
        r.targets[0].points.push(ScorePoint { ratio: 2.0, movement: Some(0.3), ..pt });
        let c = compare(&[r], &[0.2], Options { resamples: 10, seed: 0 }).unwrap();
        assert_eq!(c.reversals[0], vec![("all".to_string(), 0.5), ("hair".to_string(), 0.5)]);
    }

    #[test]
    fn more_leakage_is_worse_and_a_mixed_result_is_a_trade_off() {
        let n = 200;
        let ours = report("ours", &[("glasses.yes", hits(n, 0.95))], 0.2);
        let same = report("same", &[("glasses.yes", hits(n, 0.95))], 0.05);
        let weaker = report("weaker", &[("glasses.yes", hits(n, 0.6))], 0.05);
        let r = compare(&[ours, same, weaker], &[0.2], Options { resamples: 200, seed: 2 }).unwrap();
        let g = r.groups.iter().find(|x| x.group == "glasses").unwrap();
        assert_eq!(g.verdicts[0].verdict, "worse");
        assert_eq!(g.verdicts[1].verdict, "trade-off");
    }

    #[test]
    fn replicates_merge_and_the_spread_between_them_widens_the_interval() {
        let n = 50;
        // Two fits that disagree (0.6 and 1.0) against two that agree (0.8 and 0.8): same mean, wider interval.
        let split =
            merge(&[report("m", &[("hair.red", hits(n, 0.6))], 0.0), report("m", &[("hair.red", hits(n, 1.0))], 0.0)])
                .unwrap();
        let even =
            merge(&[report("m", &[("hair.red", hits(n, 0.8))], 0.0), report("m", &[("hair.red", hits(n, 0.8))], 0.0)])
                .unwrap();
        assert_eq!(split.pictures(), 2 * n);
        assert_eq!((split.replicate(0), split.replicate(n)), (0, 1));
        assert!((split.targets[0].points[1].success - 0.8).abs() < 1e-9);
        let width = |r: &EditScores| {
            let c = compare(std::slice::from_ref(r), &[0.2], Options { resamples: 300, seed: 3 }).unwrap();
            assert_eq!(c.replicates, 2);
            let s = c.groups[0].methods[0].success;
            assert!((s.mean - 0.8).abs() < 1e-9);
            s.hi - s.lo
        };
        assert!(width(&split) > 2.0 * width(&even), "{} vs {}", width(&split), width(&even));
        // Merging a merged report with another keeps three replicates apart.
        let three = merge(&[split.clone(), report("m", &[("hair.red", hits(n, 0.8))], 0.0)]).unwrap();
        assert_eq!(three.replicate(3 * n - 1), 2);
        let other = report("other", &[("hair.red", hits(n, 0.8))], 0.0);
        assert!(merge(&[split.clone(), other]).unwrap_err().contains("different methods"));
        let fewer = report("m", &[("hair.red", hits(n, 0.8))], 0.0);
        assert!(compare(&[split, fewer], &[0.2], Options { resamples: 10, seed: 0 })
            .unwrap_err()
            .contains("same pictures"));
    }
}
