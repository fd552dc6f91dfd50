//! Attribute edits: move first codes toward a component (or several at once) of a fitted mixture.

use crate::gauss::Gaussians;
use subspace_sdk::tch::{self, Kind, Tensor};
use subspace_sdk::NodeError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The patent's edit: z' = (1 - a) z + a zs.
    Lerp,
    /// Spherical interpolation between z and zs (keeps the norm near the prior's shell).
    Slerp,
    /// z' = z + a (zs - c(z)), c(z) the posterior-weighted mean of the target group's components at z: moves only
    /// by the difference between classes, so the other attributes' coordinates are left alone.
    Shift,
    /// The least movement that makes the target component(s) likely while holding every other group's component
    /// posteriors where they were: minimises |z' - z|^2 / 2 plus penalties, by gradient descent. The ratio a
    /// moves the target's log-odds from its value at z (a = 0) to `REGION_TARGET` (a = 1).
    Region,
}

/// The target posterior a region edit reaches at a = 1.
pub const REGION_TARGET: f64 = 0.95;

impl Mode {
    pub fn parse(s: &str) -> Result<Self, NodeError> {
        match s {
            "lerp" => Ok(Mode::Lerp),
            "slerp" => Ok(Mode::Slerp),
            "shift" => Ok(Mode::Shift),
            "region" => Ok(Mode::Region),
            _ => Err(NodeError::param("mode", format!("'{s}' is not lerp, slerp, shift or region"))),
        }
    }
}

/// Parses a target list: `all` (every class), or comma-separated edits where each edit is one class or several
/// joined by `+` (edited at once), e.g. `hair.red,smile.yes+glasses.yes`.
pub fn parse_targets(spec: &str, g: &Gaussians) -> Result<Vec<(String, Vec<usize>)>, NodeError> {
    let names = g.schema.class_names();
    if spec.trim() == "all" {
        return Ok(names.iter().enumerate().map(|(i, n)| (n.clone(), vec![i])).collect());
    }
    let mut out = Vec::new();
    for edit in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let mut set = Vec::new();
        let mut groups = Vec::new();
        for name in edit.split('+').map(str::trim) {
            let c = g.schema.column(name).ok_or_else(|| {
                NodeError::param("target", format!("unknown class '{name}'; the mixture has {names:?}"))
            })?;
            let group = g.schema.columns()[c].0;
            if groups.contains(&group) {
                return Err(NodeError::param("target", format!("'{edit}' names two classes of group '{}'", g.schema.groups[group].name)));
            }
            groups.push(group);
            set.push(c);
        }
        out.push((edit.to_string(), set));
    }
    if out.is_empty() {
        return Err(NodeError::param("target", "no target class given"));
    }
    Ok(out)
}

/// Mean and covariance of the product of the chosen components (a point likely under all of them), D and D x D.
pub fn product(g: &Gaussians, set: &[usize]) -> (Tensor, Tensor) {
    let mut precision: Option<Tensor> = None;
    let mut weighted: Option<Tensor> = None;
    for &k in set {
        let p = g.covariance(k as i64).to_kind(Kind::Double).inverse();
        let pm = p.matmul(&g.mu.get(k as i64).to_kind(Kind::Double));
        precision = Some(match precision { Some(a) => a + &p, None => p });
        weighted = Some(match weighted { Some(a) => a + pm, None => pm });
    }
    let cov = precision.unwrap().inverse();
    let mean = cov.matmul(&weighted.unwrap());
    (mean.to_kind(Kind::Float), ((&cov + cov.transpose(0, 1)) * 0.5).to_kind(Kind::Float))
}

/// Control vectors zs for `n` edits toward `set`: the product mean, or samples from it (`noise` n x D).
pub fn control_vectors(g: &Gaussians, set: &[usize], n: i64, noise: Option<&Tensor>) -> Tensor {
    let (mean, cov) = product(g, set);
    let zs = mean.unsqueeze(0).expand([n, -1], false).contiguous();
    match noise {
        None => zs,
        Some(e) => {
            let d = cov.size()[0];
            let l = (cov.to_kind(Kind::Double) + Tensor::eye(d, (Kind::Double, cov.device())) * 1e-6).linalg_cholesky(false).to_kind(Kind::Float);
            zs + e.matmul(&l.transpose(0, 1))
        }
    }
}

/// The region edit (see [`Mode::Region`]): returns z' for ratio `a`. Runs with gradients enabled.
pub fn region(g: &Gaussians, z: &Tensor, set: &[usize], a: f64, iterations: i64) -> Tensor {
    tch::with_grad(|| region_inner(g, z, set, a, iterations))
}

fn region_inner(g: &Gaussians, z: &Tensor, set: &[usize], a: f64, iterations: i64) -> Tensor {
    let log_p0 = g.log_group_posteriors(z).detach(); // N x K, log posteriors at the start
    let target_groups: Vec<usize> = set.iter().map(|&k| g.schema.columns()[k].0).collect();
    let logit = |lp: &Tensor| -> Tensor { lp - (lp.exp().neg() + 1.0).clamp_min(1e-6).log() };
    let goal = (REGION_TARGET / (1.0 - REGION_TARGET)).ln();
    // Desired log-odds per target: from the start value to the goal, linearly in a.
    let wanted: Vec<Tensor> = set.iter().map(|&k| logit(&log_p0.select(1, k as i64)) * (1.0 - a) + goal * a).collect();
    let mut keep_cols = Vec::new();
    for (gi, _) in g.schema.groups.iter().enumerate() {
        if !target_groups.contains(&gi) {
            keep_cols.extend(g.schema.group_range(gi).map(|c| c as i64));
        }
    }
    let keep = Tensor::from_slice(&keep_cols).to_device(z.device());
    let p0_keep = log_p0.index_select(1, &keep);
    let mut x = z.detach().copy().set_requires_grad(true);
    let lr = 0.1;
    let mut m = x.zeros_like();
    let mut v = x.zeros_like();
    for step in 1..=iterations {
        let lp = g.log_group_posteriors(&x);
        let mut loss = (&x - z).square().sum_dim_intlist([1i64].as_slice(), false, Kind::Float) * 0.05;
        for (i, &k) in set.iter().enumerate() {
            let gap = (&wanted[i] - logit(&lp.select(1, k as i64))).relu();
            loss = loss + gap.square() * 2.0;
        }
        if !keep_cols.is_empty() {
            // KL(p0 || p') summed over the other groups' classes, per code.
            let kl = (p0_keep.exp() * (&p0_keep - lp.index_select(1, &keep))).sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
            loss = loss + kl * 4.0;
        }
        let total = loss.sum(Kind::Float);
        let grad = Tensor::run_backward(&[&total], &[&x], false, false).pop().unwrap();
        // Adam, per code.
        m = &m * 0.9 + &grad * 0.1;
        v = &v * 0.999 + grad.square() * 0.001;
        let mh = &m / (1.0 - 0.9f64.powi(step as i32));
        let vh = &v / (1.0 - 0.999f64.powi(step as i32));
        tch::no_grad(|| {
            let _ = x.f_sub_(&(mh / (vh.sqrt() + 1e-8) * lr));
        });
    }
    x.detach()
}

/// Posterior-weighted mean of group `group`'s components at each code (N x D).
fn group_centre(g: &Gaussians, z: &Tensor, group: usize) -> Tensor {
    let r = g.schema.group_range(group);
    let lp = (g.log_density(z) + g.log_w.unsqueeze(0)).narrow(1, r.start as i64, r.len() as i64);
    lp.softmax(1, Kind::Float).matmul(&g.mu.narrow(0, r.start as i64, r.len() as i64))
}

/// Edits codes `z` (N x D) toward `set` by ratio `a`, given control vectors `zs` (N x D, from `set`'s product for
/// lerp/slerp; for shift each class uses its own component's mean or sample, passed in `per_class_zs`).
pub fn apply(g: &Gaussians, z: &Tensor, set: &[usize], a: f64, mode: Mode, zs: &Tensor, per_class_zs: &[Tensor]) -> Tensor {
    match mode {
        Mode::Lerp => z * (1.0 - a) + zs * a,
        Mode::Slerp => {
            let zn = z / z.norm_scalaropt_dim(2.0, [1i64].as_slice(), true).clamp_min(1e-8);
            let sn = zs / zs.norm_scalaropt_dim(2.0, [1i64].as_slice(), true).clamp_min(1e-8);
            let omega = (zn * sn).sum_dim_intlist([1i64].as_slice(), true, Kind::Float).clamp(-0.9999, 0.9999).acos();
            let so = omega.sin();
            let w0 = ((1.0 - a) * &omega).sin() / &so;
            let w1 = (a * &omega).sin() / &so;
            z * w0 + zs * w1
        }
        Mode::Region => region(g, z, set, a, 150),
        Mode::Shift => {
            let mut out = z.shallow_clone();
            for (i, &k) in set.iter().enumerate() {
                let group = g.schema.columns()[k].0;
                out = out + (&per_class_zs[i] - group_centre(g, z, group)) * a;
            }
            out
        }
    }
}
