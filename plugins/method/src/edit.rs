//! Attribute edits: move first codes toward a component (or several at once) of a fitted mixture.

use crate::gauss::Gaussians;
use subspace_sdk::tch::{self, Kind, Tensor};

subspace_sdk::choice! {
    /// How an edit moves a code toward its target.
    pub enum Mode {
        /// The patent's edit: z' = (1 - a) z + a zs.
        Lerp = "lerp",
        /// Spherical interpolation between z and zs (keeps the norm near the prior's shell).
        Slerp = "slerp",
        /// z' = z + a (zs - c(z)), c(z) the posterior-weighted mean of the target group's components at z: moves
        /// only by the difference between classes, so the other attributes' coordinates are left alone.
        Shift = "shift",
        /// The least movement that makes the target component(s) likely while holding every other group's
        /// component posteriors where they were: minimises |z' - z|^2 / 2 plus penalties, by gradient descent. The
        /// ratio a moves the target's log-odds from its value at z (a = 0) to `REGION_TARGET` (a = 1).
        Region = "region",
    }
}

/// How [`apply`] moves codes: the modes that are a closed form in a. Region edits need their hold weight and path
/// and go through [`region`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    Lerp,
    Slerp,
    Shift,
}

impl Mode {
    /// The closed-form move of this mode; `None` for [`Mode::Region`].
    pub fn closed_form(self) -> Option<Move> {
        match self {
            Mode::Lerp => Some(Move::Lerp),
            Mode::Slerp => Some(Move::Slerp),
            Mode::Shift => Some(Move::Shift),
            Mode::Region => None,
        }
    }
}

/// The target posterior a region edit reaches at a = 1.
pub const REGION_TARGET: f64 = 0.995;

/// Mean and covariance of the product of the chosen components (a point likely under all of them), D and D x D.
pub fn product(g: &Gaussians, set: &[usize]) -> (Tensor, Tensor) {
    let mut precision: Option<Tensor> = None;
    let mut weighted: Option<Tensor> = None;
    for &k in set {
        let p = g.covariance(k as i64).to_kind(Kind::Double).inverse();
        let pm = p.matmul(&g.mu.get(k as i64).to_kind(Kind::Double));
        precision = Some(match precision {
            Some(a) => a + &p,
            None => p,
        });
        weighted = Some(match weighted {
            Some(a) => a + pm,
            None => pm,
        });
    }
    // Callers pass at least one component (one per target group).
    let (Some(precision), Some(weighted)) = (precision, weighted) else {
        return (g.mu.get(0).zeros_like(), Tensor::eye(g.mu.size()[1], (Kind::Float, g.mu.device())));
    };
    let cov = precision.inverse();
    let mean = cov.matmul(&weighted);
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
            let l = (cov.to_kind(Kind::Double) + Tensor::eye(d, (Kind::Double, cov.device())) * 1e-6)
                .linalg_cholesky(false)
                .to_kind(Kind::Float);
            zs + e.matmul(&l.transpose(0, 1))
        }
    }
}

/// Region edits (see [`Mode::Region`]) of many rows at once: row i of `z` (M x D) moves toward the classes in
/// `sets[i]` with ratio `ratios[i]`. One batched optimisation: the per-row losses are independent.
/// `hold` weighs keeping the other groups' posteriors against moving less (default [`REGION_HOLD`]).
/// Rows with ratio 0 come back as their code exactly (the optimum there is z, which a finite solve only nears).
pub fn region(g: &Gaussians, z: &Tensor, sets: &[Vec<usize>], ratios: &[f64], hold: f64, iterations: i64) -> Tensor {
    let x = tch::with_grad(|| region_inner(g, z, sets, ratios, hold, iterations));
    let unedited: Vec<bool> = ratios.iter().map(|&a| a == 0.0).collect();
    let unedited = Tensor::from_slice(&unedited).to_device(z.device()).view([-1, 1]);
    z.where_self(&unedited, &x)
}

/// The default weight of the held groups' KL term in a region edit.
pub const REGION_HOLD: f64 = 64.0;

fn region_inner(g: &Gaussians, z: &Tensor, sets: &[Vec<usize>], ratios: &[f64], hold: f64, iterations: i64) -> Tensor {
    let (m, k) = (z.size()[0], g.k());
    let device = z.device();
    let cols = g.schema.columns();
    // Masks: the target classes of each row, and the classes of the groups each row must hold.
    let mut target = vec![0f32; (m * k) as usize];
    let mut keep = vec![0f32; (m * k) as usize];
    let mut ratio = vec![0f32; m as usize];
    for i in 0..m as usize {
        let groups: Vec<usize> = sets[i].iter().map(|&c| cols[c].0).collect();
        for c in 0..k as usize {
            if sets[i].contains(&c) {
                target[i * k as usize + c] = 1.0;
            } else if !groups.contains(&cols[c].0) {
                keep[i * k as usize + c] = 1.0;
            }
        }
        ratio[i] = ratios[i] as f32;
    }
    let target = Tensor::from_slice(&target).view([m, k]).to_device(device);
    let keep = Tensor::from_slice(&keep).view([m, k]).to_device(device);
    let ratio = Tensor::from_slice(&ratio).view([m, 1]).to_device(device);
    let log_p0 = g.log_group_posteriors(z).detach();
    let logit = |lp: &Tensor| -> Tensor { lp - (lp.exp().neg() + 1.0).clamp_min(1e-6).log() };
    let goal = (REGION_TARGET / (1.0 - REGION_TARGET)).ln();
    // Desired log-odds of each target: from its value at z (a = 0) to the goal (a = 1), linearly in a.
    let wanted = logit(&log_p0) * (ratio.neg() + 1.0) + &ratio * goal;
    let mut x = z.detach().copy().set_requires_grad(true);
    let (lr0, b1, b2) = (0.1, 0.9, 0.999);
    let mut m1 = x.zeros_like();
    let mut m2 = x.zeros_like();
    for step in 1..=iterations {
        // Cosine decay to zero: Adam's normalised steps keep a constant size near the optimum, so without it the
        // solve ends wherever its last steps jitter (about 1.5 in L2 on the default world at lr 0.1).
        let lr = lr0 * 0.5 * (1.0 + (std::f64::consts::PI * (step - 1) as f64 / iterations as f64).cos());
        let lp = g.log_group_posteriors(&x);
        let movement = (&x - z).square().sum_dim_intlist([1i64].as_slice(), false, Kind::Float) * 0.05;
        let shortfall =
            ((&wanted - logit(&lp)).relu().square() * &target).sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
                * 2.0;
        // KL(p0 || p') over the held groups' classes.
        let kl = (log_p0.exp() * (&log_p0 - &lp) * &keep).sum_dim_intlist([1i64].as_slice(), false, Kind::Float) * hold;
        let total = (movement + shortfall + kl).sum(Kind::Float);
        // One input, so exactly one gradient comes back.
        let Some(grad) = Tensor::run_backward(&[&total], &[&x], false, false).pop() else { break };
        m1 = &m1 * b1 + &grad * (1.0 - b1);
        m2 = &m2 * b2 + grad.square() * (1.0 - b2);
        let step_size = &m1 / (1.0 - b1.powi(step as i32)) / ((&m2 / (1.0 - b2.powi(step as i32))).sqrt() + 1e-8) * lr;
        tch::no_grad(|| {
            let _ = x.f_sub_(&step_size);
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
pub fn apply(
    g: &Gaussians,
    z: &Tensor,
    set: &[usize],
    a: f64,
    mode: Move,
    zs: &Tensor,
    per_class_zs: &[Tensor],
) -> Tensor {
    // a = 0 is the unedited code in every mode, exactly (slerp's sines only come close).
    if a == 0.0 {
        return z.copy();
    }
    match mode {
        Move::Lerp => z * (1.0 - a) + zs * a,
        Move::Slerp => {
            let zn = z / z.norm_scalaropt_dim(2.0, [1i64].as_slice(), true).clamp_min(1e-8);
            let sn = zs / zs.norm_scalaropt_dim(2.0, [1i64].as_slice(), true).clamp_min(1e-8);
            let omega = (zn * sn).sum_dim_intlist([1i64].as_slice(), true, Kind::Float).clamp(-0.9999, 0.9999).acos();
            let so = omega.sin();
            let w0 = ((1.0 - a) * &omega).sin() / &so;
            let w1 = (a * &omega).sin() / &so;
            z * w0 + zs * w1
        }
        Move::Shift => {
            // Sums into a new tensor: `z` shares storage with the upstream node's output, which must not change.
            let mut out = z.copy();
            for (i, &k) in set.iter().enumerate() {
                let group = g.schema.columns()[k].0;
                out += (&per_class_zs[i] - group_centre(g, z, group)) * a;
            }
            out
        }
    }
}
