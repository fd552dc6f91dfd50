//! Attribute edits: move first codes toward a component (or several at once) of a fitted mixture.

use crate::gauss::Gaussians;
use subspace_sdk::tch::{Kind, Tensor};
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
}

impl Mode {
    pub fn parse(s: &str) -> Result<Self, NodeError> {
        match s {
            "lerp" => Ok(Mode::Lerp),
            "slerp" => Ok(Mode::Slerp),
            "shift" => Ok(Mode::Shift),
            _ => Err(NodeError::param("mode", format!("'{s}' is not lerp, slerp or shift"))),
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
