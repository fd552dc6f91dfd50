//! The linear algebra behind the baselines: linear classifiers (an L2-regularised SVM or logistic regression),
//! InterFaceGAN's per-class boundary, PCA, SeFa's eigenvectors, matching components to classes, the projection
//! behind the conditional edit, and the linear edits themselves.
//!
//! Everything here is pure tensor code (double precision inside), so it is unit-tested without a host.

use rand::seq::SliceRandom;
use subspace_sdk::tch::{Device, Kind, Tensor};

subspace_sdk::choice! {
    /// Which loss the linear classifier minimises (plus 0.5 |w|^2 and an unregularised intercept).
    pub enum Solver {
        /// Linear SVM: C times the squared hinge max(0, 1 - y f)^2 per sample (LIBLINEAR's default L2-loss SVM).
        /// The plain hinge of sklearn's `SVC(kernel='linear')` is not differentiable; the squared hinge has the
        /// same margin-based solution shape and lets a generalised Newton method converge in a handful of steps.
        Svm = "svm",
        /// Logistic regression: C times log(1 + exp(-y f)) per sample.
        Logistic = "logistic",
    }
}

/// A fitted linear classifier in the original (unstandardised) coordinates: sign(normal . x + offset).
#[derive(Debug)]
pub struct LinearFit {
    /// Unit normal, D, f64.
    pub normal: Tensor,
    /// Signed distance of the origin from the boundary.
    pub offset: f64,
    /// Newton steps taken.
    pub iterations: usize,
    /// Whether the objective stopped decreasing before the step limit.
    pub converged: bool,
}

impl LinearFit {
    /// Fraction of `x` (n x D) classified as `y` (+1 / -1).
    pub fn accuracy(&self, x: &Tensor, y: &Tensor) -> f64 {
        if x.size()[0] == 0 {
            return f64::NAN;
        }
        let f = x.to_kind(Kind::Double).mv(&self.normal.to_device(x.device())) + self.offset;
        f.sign().eq_tensor(&y.to_kind(Kind::Double)).to_kind(Kind::Double).mean(Kind::Double).double_value(&[])
    }
}

/// Per-sample loss, its derivative and (generalised) second derivative with respect to the score f.
fn loss_terms(solver: Solver, f: &Tensor, y: &Tensor) -> (Tensor, Tensor, Tensor) {
    let m = f * y;
    match solver {
        Solver::Svm => {
            let v = (-&m + 1.0).relu();
            let active = v.gt(0.0).to_kind(Kind::Double);
            (v.square(), y * &v * -2.0, active * 2.0)
        }
        Solver::Logistic => {
            // log(1 + exp(-m)), stable for large |m|.
            let loss = (-&m).relu() + (-m.abs()).exp().log1p();
            let s_neg = (-&m).sigmoid();
            let h = m.sigmoid() * &s_neg;
            (loss, -(y * s_neg), h)
        }
    }
}

/// Fits a linear classifier to `x` (n x D) and `y` (n, +1 / -1) on standardised inputs by Newton's method with
/// backtracking line search (full batch, double precision). `c` weighs the data term against 0.5 |w|^2.
pub fn fit_linear(x: &Tensor, y: &Tensor, solver: Solver, c: f64) -> Result<LinearFit, String> {
    let x = x.to_kind(Kind::Double);
    let y = y.to_kind(Kind::Double).to_device(x.device());
    let (n, d) = (x.size()[0], x.size()[1]);
    if n < 2 {
        return Err(format!("need at least two samples, got {n}"));
    }
    let opts = (Kind::Double, x.device());
    let mean = x.mean_dim([0i64].as_slice(), false, Kind::Double);
    let std = x.std_dim([0i64].as_slice(), false, false).clamp_min(1e-12);
    let xa = Tensor::cat(&[(&x - &mean) / &std, Tensor::ones([n, 1], opts)], 1);
    // The intercept is not regularised (a tiny ridge keeps the Hessian invertible when the data are separable).
    let reg = Tensor::cat(&[Tensor::ones([d], opts), Tensor::full([1], 1e-10, opts)], 0);
    let objective = |theta: &Tensor| -> f64 {
        let (loss, _, _) = loss_terms(solver, &xa.mv(theta), &y);
        ((&reg * theta.square()).sum(Kind::Double) * 0.5 + loss.sum(Kind::Double) * c).double_value(&[])
    };
    let mut theta = Tensor::zeros([d + 1], opts);
    let mut obj = objective(&theta);
    let (mut iterations, mut converged) = (0, false);
    for it in 0..200 {
        iterations = it + 1;
        let (_, g1, h1) = loss_terms(solver, &xa.mv(&theta), &y);
        let grad = &reg * &theta + xa.tr().mv(&g1) * c;
        let gnorm = grad.abs().max().double_value(&[]);
        if gnorm < 1e-9 * (1.0 + obj.abs()) {
            converged = true;
            break;
        }
        let hess = (&xa * h1.unsqueeze(1)).tr().matmul(&xa) * c + reg.diag(0) + Tensor::eye(d + 1, opts) * 1e-12;
        let step = Tensor::f_linalg_solve(&hess, &grad, true).map_err(|e| format!("Newton step failed: {e}"))?;
        let slope = (&grad * &step).sum(Kind::Double).double_value(&[]);
        let mut t = 1.0;
        let mut accepted = false;
        while t > 1e-10 {
            let cand = &theta - &step * t;
            let o = objective(&cand);
            if o.is_finite() && o <= obj - 1e-4 * t * slope {
                let decrease = obj - o;
                theta = cand;
                obj = o;
                accepted = true;
                if decrease <= 1e-13 * (1.0 + obj.abs()) {
                    converged = true;
                }
                break;
            }
            t *= 0.5;
        }
        if !accepted {
            // No descent left along the Newton direction: at the optimum up to rounding.
            converged = true;
        }
        if converged {
            break;
        }
    }
    if theta.isfinite().logical_not().any().int64_value(&[]) != 0 {
        return Err("the fit diverged (NaN)".into());
    }
    let ws = theta.narrow(0, 0, d);
    let bs = theta.double_value(&[d]);
    let w = &ws / &std;
    let b = bs - (&ws * &mean / &std).sum(Kind::Double).double_value(&[]);
    let norm = w.norm().double_value(&[]);
    if !(norm > 0.0) || !norm.is_finite() {
        return Err("the fitted normal is zero: the two sides cannot be told apart linearly".into());
    }
    Ok(LinearFit { normal: w / norm, offset: b / norm, iterations, converged })
}

/// What InterFaceGAN's boundary for one class came to.
#[derive(Debug)]
pub struct Boundary {
    /// The classifier fitted on the training split.
    pub fit: LinearFit,
    /// Samples taken from each end (top and bottom).
    pub per_side: i64,
    /// Accuracy on the training split.
    pub train_accuracy: f64,
    /// NaN when `split` leaves nothing to validate on.
    pub val_accuracy: f64,
    /// Samples trained on (both ends).
    pub train_samples: i64,
    /// Samples validated on (both ends).
    pub val_samples: i64,
}

/// How many samples each end of the ranking gets: `ratio` of `n`, at least 10; `None` when `n` cannot supply
/// both ends.
pub fn per_side(n: i64, ratio: f64) -> Option<i64> {
    let k = ((n as f64) * ratio).round().max(10.0) as i64;
    if 2 * k > n {
        None
    } else {
        Some(k)
    }
}

/// InterFaceGAN's `train_boundary` for one class: ranks codes `z` (N x D) by `scores` (N), takes the top and
/// bottom `k` (see [`per_side`]) as positives and negatives, shuffles each and keeps `split` of each for
/// training, fits, and measures accuracy on the rest. The normal points toward high scores.
pub fn interfacegan_boundary(
    z: &Tensor,
    scores: &Tensor,
    k: i64,
    split: f64,
    solver: Solver,
    c: f64,
    rng: &mut impl rand::Rng,
) -> Result<Boundary, String> {
    let n = z.size()[0];
    if 2 * k > n {
        return Err(format!("needs {k} top and {k} bottom codes, but there are only {n} codes"));
    }
    let order = scores.to_kind(Kind::Double).argsort(0, true).to_device(Device::Cpu);
    let order: Vec<i64> = Vec::<i64>::try_from(&order).map_err(|e| e.to_string())?;
    let mut pos: Vec<i64> = order[..k as usize].to_vec();
    let mut neg: Vec<i64> = order[(n - k) as usize..].to_vec();
    let s = scores.to_kind(Kind::Double).to_device(Device::Cpu);
    let lowest_top = s.double_value(&[pos[k as usize - 1]]);
    let highest_bottom = s.double_value(&[neg[0]]);
    if lowest_top <= highest_bottom {
        return Err(format!(
            "its top and bottom {k} scores do not differ \
             (lowest top {lowest_top:.4}, highest bottom {highest_bottom:.4})"
        ));
    }
    pos.shuffle(rng);
    neg.shuffle(rng);
    let n_train = ((k as f64) * split).round().clamp(1.0, k as f64) as usize;
    let take = |idx: &[i64]| Tensor::from_slice(idx).to_device(z.device());
    let train_idx = take(&[&pos[..n_train], &neg[..n_train]].concat());
    let val_idx = take(&[&pos[n_train..], &neg[n_train..]].concat());
    let labels = |m: usize, r: usize| {
        let mut v = vec![1.0f64; m];
        v.extend(std::iter::repeat_n(-1.0, r));
        Tensor::from_slice(&v).to_device(z.device())
    };
    let n_val = k as usize - n_train;
    let zd = z.to_kind(Kind::Double);
    let (x_train, y_train) = (zd.index_select(0, &train_idx), labels(n_train, n_train));
    let (x_val, y_val) = (zd.index_select(0, &val_idx), labels(n_val, n_val));
    let fit = fit_linear(&x_train, &y_train, solver, c)?;
    let train_accuracy = fit.accuracy(&x_train, &y_train);
    let val_accuracy = fit.accuracy(&x_val, &y_val);
    Ok(Boundary {
        fit,
        per_side: k,
        train_accuracy,
        val_accuracy,
        train_samples: 2 * n_train as i64,
        val_samples: 2 * n_val as i64,
    })
}

/// The top `m` eigenvectors (columns, D x m) and eigenvalues (m, descending) of a symmetric matrix. Each vector's
/// sign is fixed so that its largest-magnitude entry is positive (deterministic output).
pub fn top_eigen(sym: &Tensor, m: i64) -> Result<(Tensor, Tensor), String> {
    let d = sym.size()[0];
    let m = m.clamp(1, d);
    let s = sym.to_kind(Kind::Double);
    let s = (&s + s.tr()) * 0.5;
    let (vals, vecs) = s.f_linalg_eigh("L").map_err(|e| format!("eigendecomposition failed: {e}"))?;
    let idx = Tensor::arange_start_step(d - 1, d - 1 - m, -1, (Kind::Int64, s.device()));
    let vals = vals.index_select(0, &idx);
    let vecs = vecs.index_select(1, &idx);
    let arg = vecs.abs().argmax(0, true);
    let sign = vecs.gather(0, &arg, false).sign();
    let sign = sign.where_self(&sign.ne(0.0), &Tensor::ones_like(&sign));
    Ok((vecs * sign, vals))
}

/// PCA of codes `z` (N x D): the top `m` principal axes (D x m), their variances (m) and the mean (D).
pub fn pca(z: &Tensor, m: i64) -> Result<(Tensor, Tensor, Tensor), String> {
    let z = z.to_kind(Kind::Double);
    let n = z.size()[0];
    if n < 2 {
        return Err(format!("PCA needs at least two codes, got {n}"));
    }
    let mean = z.mean_dim([0i64].as_slice(), false, Kind::Double);
    let zc = &z - &mean;
    let cov = zc.tr().matmul(&zc) / (n - 1) as f64;
    let (vecs, vals) = top_eigen(&cov, m)?;
    Ok((vecs, vals, mean))
}

/// SeFa's matrix A for a weight `w` whose latent dimension is `d`: a 2-D matrix with `d` columns and every other
/// dimension flattened into rows. A 2-D weight is read as Linear's (out, in), so dimension 1 is preferred; a
/// weight of 3 or more dimensions as ConvTranspose2d's (in, out, kh, kw), so dimension 0 is preferred; the
/// other one of the first two is used when only it matches.
pub fn sefa_matrix(w: &Tensor, d: i64) -> Result<Tensor, String> {
    let shape = w.size();
    if shape.len() < 2 {
        return Err(format!("has shape {shape:?}; SeFa needs a weight of at least 2 dimensions"));
    }
    let prefer: [usize; 2] = if shape.len() == 2 { [1, 0] } else { [0, 1] };
    let Some(axis) = prefer.iter().copied().find(|&a| shape[a] == d) else {
        return Err(format!(
            "has shape {shape:?}, and neither of its first two dimensions is the latent dimension {d}"
        ));
    };
    let w = w.to_kind(Kind::Double);
    // Move the latent axis last, flatten the rest into rows.
    let moved = w.movedim([axis as i64].as_slice(), [shape.len() as i64 - 1].as_slice());
    Ok(moved.reshape([-1, d]))
}

/// SeFa: the top `m` eigenvectors of A^T A (D x m) and their eigenvalues.
pub fn sefa(a: &Tensor, m: i64) -> Result<(Tensor, Tensor), String> {
    let a = a.to_kind(Kind::Double);
    top_eigen(&a.tr().matmul(&a), m)
}

/// Pearson correlation of every column of `p` (N x M) with every column of `l` (N x K): M x K. A constant column
/// correlates 0 with everything.
pub fn pearson(p: &Tensor, l: &Tensor) -> Tensor {
    let p = p.to_kind(Kind::Double);
    let l = l.to_kind(Kind::Double).to_device(p.device());
    let pc = &p - p.mean_dim([0i64].as_slice(), true, Kind::Double);
    let lc = &l - l.mean_dim([0i64].as_slice(), true, Kind::Double);
    let pn = pc.square().sum_dim_intlist([0i64].as_slice(), false, Kind::Double).sqrt();
    let ln = lc.square().sum_dim_intlist([0i64].as_slice(), false, Kind::Double).sqrt();
    let denom = pn.unsqueeze(1) * ln.unsqueeze(0);
    let r = pc.tr().matmul(&lc) / &denom;
    r.where_self(&denom.gt(1e-300), &Tensor::zeros_like(&r))
}

/// For each class (column of `labels`), the component (column of `axes`, D x M) whose projection of `z`
/// correlates most with the class's score in absolute value: `(index, r)`, r signed.
pub fn match_components(z: &Tensor, axes: &Tensor, labels: &Tensor) -> Vec<(usize, f64)> {
    let proj = z.to_kind(Kind::Double).matmul(&axes.to_kind(Kind::Double).to_device(z.device()));
    let r = pearson(&proj, labels).to_device(Device::Cpu);
    let (m, k) = (r.size()[0], r.size()[1]);
    (0..k)
        .map(|c| {
            let col = r.select(1, c);
            let best = col.abs().argmax(0, false).int64_value(&[]);
            let _ = m;
            (best as usize, col.double_value(&[best]))
        })
        .collect()
}

/// Unit directions, one per class, from matched components: `axes` (D x M) column `index`, times the sign of r
/// (toward the class). K x D.
pub fn signed_directions(axes: &Tensor, matches: &[(usize, f64)]) -> Tensor {
    let cols: Vec<Tensor> = matches
        .iter()
        .map(|&(i, r)| {
            let v = axes.select(1, i as i64).to_kind(Kind::Double);
            let v = &v / v.norm();
            if r < 0.0 {
                -v
            } else {
                v
            }
        })
        .collect();
    Tensor::stack(&cols, 0)
}

/// Removes from `n` (D) its component in the span of the rows of `others` (M x D, any M, rows may be nearly or
/// exactly collinear): n - B (B^T B)^+ B^T n with B = others^T, the pseudo-inverse taken through the
/// eigendecomposition of the Gram matrix B^T B (directions with eigenvalue below 1e-12 of the largest are
/// dropped as numerically dependent). Applied twice for accuracy. Not renormalised.
pub fn project_out(n: &Tensor, others: &Tensor) -> Tensor {
    let n = n.to_kind(Kind::Double);
    if others.numel() == 0 || others.size()[0] == 0 {
        return n;
    }
    let b = others.to_kind(Kind::Double).to_device(n.device()); // M x D
    let gram = b.matmul(&b.tr());
    let gram = (&gram + gram.tr()) * 0.5;
    let (mu, e) = gram.linalg_eigh("L");
    let top = mu.max().double_value(&[]);
    if !(top > 0.0) {
        return n;
    }
    let keep = mu.gt(top * 1e-12).nonzero().squeeze_dim(1);
    let mu = mu.index_select(0, &keep);
    let e = e.index_select(1, &keep);
    // Orthonormal basis of the span: Q = B^T E mu^-1/2 (D x r).
    let q = b.tr().matmul(&e) / mu.sqrt().unsqueeze(0);
    let once = |v: &Tensor| v - q.mv(&q.tr().mv(v));
    once(&once(&n))
}

subspace_sdk::choice! {
    /// How a linear edit moves a code.
    pub enum EditMode {
        /// z' = z + d sum_k u_k.
        Shift = "shift",
        /// Moves along the edit directions so that every target's signed distance n_k . z' + b_k becomes d.
        ToBoundary = "to_boundary",
    }
}

/// One class of an edit: its normal n and offset b (signed distance n . z + b), and the unit direction u the
/// code moves along (n itself, or n projected off the other attribute groups' normals for a conditional edit).
pub struct EditPart {
    /// n, D.
    pub normal: Tensor,
    /// b.
    pub offset: f64,
    /// u, D, unit.
    pub direction: Tensor,
}

/// Edits codes `z` (N x D) for each distance: N x T x D, in z's kind. Distance 0 leaves the codes unchanged in
/// both modes (the first column of a sweep is the unedited reference that edit scoring needs). In to_boundary
/// mode the step along the directions solves the T (parts x parts) system G t = d - (N z + b), G_jk = n_j . u_k,
/// so that every part lands at signed distance d together.
pub fn linear_edit(z: &Tensor, parts: &[EditPart], distances: &[f64], mode: EditMode) -> Result<Tensor, String> {
    if parts.is_empty() {
        return Err("no direction to edit along".into());
    }
    let zd = z.to_kind(Kind::Double);
    let dev = zd.device();
    let rows = |t: &dyn Fn(&EditPart) -> &Tensor| {
        Tensor::stack(&parts.iter().map(|p| t(p).to_kind(Kind::Double).to_device(dev)).collect::<Vec<_>>(), 0)
    };
    let nrm = rows(&|p| &p.normal); // m x D
    let dir = rows(&|p| &p.direction); // m x D
    let off = Tensor::from_slice(&parts.iter().map(|p| p.offset).collect::<Vec<_>>()).to_device(dev);
    let mut cols = Vec::with_capacity(distances.len());
    for &d in distances {
        if d == 0.0 {
            cols.push(zd.shallow_clone());
            continue;
        }
        let moved = match mode {
            EditMode::Shift => &zd + dir.sum_dim_intlist([0i64].as_slice(), false, Kind::Double).unsqueeze(0) * d,
            EditMode::ToBoundary => {
                let g = nrm.matmul(&dir.tr()); // m x m
                let cos = g.diagonal(0, 0, 1).abs().min().double_value(&[]);
                if cos < 1e-6 {
                    return Err(
                        "an edit direction is orthogonal to its normal; the boundary cannot be reached along it".into(),
                    );
                }
                let rhs = (-(zd.matmul(&nrm.tr()) + off.unsqueeze(0)) + d).tr(); // m x N
                let t = Tensor::f_linalg_solve(&g, &rhs, true)
                    .map_err(|e| format!("the joint step cannot be solved: {e}"))?; // m x N
                &zd + t.tr().matmul(&dir)
            }
        };
        cols.push(moved);
    }
    let out = Tensor::stack(&cols, 1).to_kind(z.kind());
    if out.isfinite().logical_not().any().int64_value(&[]) != 0 {
        return Err("the edit produced NaN or infinity".into());
    }
    Ok(out)
}

/// `steps` distances from 0 to `distance` (just `[distance]` for one step).
pub fn distances(distance: f64, steps: i64) -> Vec<f64> {
    if steps <= 1 {
        vec![distance]
    } else {
        (0..steps).map(|i| distance * i as f64 / (steps - 1) as f64).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use subspace_sdk::context::randn;

    fn unit(v: &Tensor) -> Tensor {
        let v = v.to_kind(Kind::Double);
        &v / v.norm()
    }
    fn cos(a: &Tensor, b: &Tensor) -> f64 {
        (unit(a) * unit(b)).sum(Kind::Double).double_value(&[])
    }

    /// z ~ N(0, I_16), score = sigmoid(4 w . z): both solvers recover w.
    #[test]
    fn interfacegan_recovers_the_true_normal() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let z = randn(&mut rng, &[20000, 16]);
        let w = unit(&randn(&mut rng, &[16]));
        let score = (z.to_kind(Kind::Double).mv(&w) * 4.0).sigmoid();
        let k = per_side(20000, 0.02).unwrap();
        assert_eq!(k, 400);
        for solver in [Solver::Svm, Solver::Logistic] {
            let b = interfacegan_boundary(&z, &score, k, 0.7, solver, 1.0, &mut rng).unwrap();
            let c = cos(&b.fit.normal, &w);
            eprintln!(
                "{solver:?}: cos {c:.4}, val acc {:.3}, train acc {:.3}, {} iterations, converged {}",
                b.val_accuracy, b.train_accuracy, b.fit.iterations, b.fit.converged
            );
            assert!(c >= 0.95, "{solver:?}: cosine {c}");
            assert!(b.fit.converged);
            assert!(b.val_accuracy > 0.99);
            assert_eq!((b.train_samples, b.val_samples), (560, 240));
        }
    }

    #[test]
    fn too_few_codes_is_refused() {
        assert_eq!(per_side(19, 0.02), None);
        assert_eq!(per_side(20, 0.02), Some(10));
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let z = randn(&mut rng, &[30, 4]);
        let flat = Tensor::ones([30], (Kind::Float, Device::Cpu));
        let e = interfacegan_boundary(&z, &flat, 10, 0.7, Solver::Svm, 1.0, &mut rng).unwrap_err();
        assert!(e.contains("do not differ"), "{e}");
    }

    /// A logistic fit with an offset: the boundary's offset is recovered in original coordinates.
    #[test]
    fn logistic_fit_recovers_offset() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let x = randn(&mut rng, &[4000, 3]).to_kind(Kind::Double) * 2.0 + 1.0;
        let w = Tensor::from_slice(&[0.6f64, -0.8, 0.0]);
        let f = x.mv(&w) - 0.5;
        let y = f.sign();
        let fit = fit_linear(&x, &y, Solver::Logistic, 100.0).unwrap();
        let c = cos(&fit.normal, &w);
        assert!(c > 0.99, "cos {c}");
        assert!((fit.offset + 0.5).abs() < 0.1, "offset {}", fit.offset);
        assert!(fit.accuracy(&x, &y) > 0.99);
    }

    /// n projected off 5 other normals (two of them nearly collinear) is orthogonal to every one of them.
    #[test]
    fn conditional_projection_is_orthogonal_to_all_others() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let d = 32;
        let n = unit(&randn(&mut rng, &[d]));
        let mut others: Vec<Tensor> = (0..4).map(|_| unit(&randn(&mut rng, &[d]))).collect();
        // Like hair.black vs hair.red: a fifth normal almost collinear with the first.
        others.push(unit(&(&others[0] + unit(&randn(&mut rng, &[d])) * 1e-4)));
        let b = Tensor::stack(&others, 0);
        let p = project_out(&n, &b);
        assert!(p.norm().double_value(&[]) > 0.5);
        let p = unit(&p);
        for (i, o) in others.iter().enumerate() {
            let dot = (&p * o).sum(Kind::Double).double_value(&[]).abs();
            eprintln!("other {i}: |dot| = {dot:.2e}");
            assert!(dot < 1e-4, "other normal {i}: |dot| = {dot}");
        }
        // Still close to n where the others leave room.
        assert!(cos(&p, &n) > 0.5);
        // Projecting off nothing leaves n alone.
        let none = Tensor::zeros([0, d], (Kind::Double, Device::Cpu));
        assert!((project_out(&n, &none) - &n).abs().max().double_value(&[]) < 1e-12);
    }

    #[test]
    fn pca_recovers_the_dominant_direction() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let d = 24;
        let v = unit(&randn(&mut rng, &[d]));
        let a = randn(&mut rng, &[5000, 1]).to_kind(Kind::Double) * 5.0;
        let z = randn(&mut rng, &[5000, d]).to_kind(Kind::Double) + a * v.unsqueeze(0) + 3.0;
        let (axes, vars, mean) = pca(&z, 5).unwrap();
        assert_eq!(axes.size(), vec![d, 5]);
        let c = cos(&axes.select(1, 0), &v).abs();
        eprintln!("PCA: |cos| {c:.5}, variances {:?}", Vec::<f64>::try_from(&vars).unwrap());
        assert!(c > 0.995, "cos {c}");
        assert!(vars.double_value(&[0]) > 20.0 && vars.double_value(&[1]) < 1.5);
        assert!((mean - 3.0).abs().max().double_value(&[]) < 0.2);
        // The variances come out in descending order.
        let v: Vec<f64> = Vec::try_from(&vars).unwrap();
        assert!(v.windows(2).all(|w| w[0] >= w[1]));
    }

    #[test]
    fn matching_picks_the_correlated_component_with_its_sign() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let z = randn(&mut rng, &[3000, 6]).to_kind(Kind::Double);
        let axes = Tensor::eye(6, (Kind::Double, Device::Cpu));
        // Class 0 rises with -z_2, class 1 with z_4, class 2 is constant.
        let l = Tensor::stack(
            &[
                (-z.select(1, 2)).sigmoid(),
                z.select(1, 4).sigmoid(),
                Tensor::full([3000], 0.5, (Kind::Double, Device::Cpu)),
            ],
            1,
        );
        let m = match_components(&z, &axes, &l);
        assert_eq!(m[0].0, 2);
        assert!(m[0].1 < -0.9);
        assert_eq!(m[1].0, 4);
        assert!(m[1].1 > 0.9);
        assert_eq!(m[2].1, 0.0);
        let dirs = signed_directions(&axes, &m);
        assert_eq!(dirs.double_value(&[0, 2]), -1.0);
        assert_eq!(dirs.double_value(&[1, 4]), 1.0);
    }

    /// A = U diag(s) V^T with known V: SeFa's eigenvectors are V's columns in order of s, up to sign.
    #[test]
    fn sefa_eigenvectors_of_a_known_matrix() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let d = 8;
        let (q, _) = Tensor::linalg_qr(&randn(&mut rng, &[d, d]).to_kind(Kind::Double), "reduced");
        let (u, _) = Tensor::linalg_qr(&randn(&mut rng, &[20, d]).to_kind(Kind::Double), "reduced");
        let s = Tensor::from_slice(&[9.0f64, 7.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.5]);
        let a = (u * s.unsqueeze(0)).matmul(&q.tr()); // 20 x 8, right singular vectors = columns of q
        let (vecs, vals) = sefa(&a, 3).unwrap();
        for i in 0..3 {
            let c = cos(&vecs.select(1, i), &q.select(1, i)).abs();
            assert!(c > 1.0 - 1e-9, "component {i}: |cos| {c}");
            let want = s.double_value(&[i]).powi(2);
            assert!((vals.double_value(&[i]) - want).abs() < 1e-9 * want);
        }
        // The same matrix as a Linear weight (out=20, in=8) and as a ConvTranspose2d weight (in=8, out=5, 2, 2).
        assert_eq!(sefa_matrix(&a, d).unwrap().size(), vec![20, d]);
        let conv = a.tr().reshape([d, 5, 2, 2]);
        let back = sefa_matrix(&conv, d).unwrap();
        assert!((back.tr().matmul(&back) - a.tr().matmul(&a)).abs().max().double_value(&[]) < 1e-9);
        assert!(sefa_matrix(&a, 7).unwrap_err().contains("latent dimension 7"));
    }

    fn parts_for(n: &Tensor, b: f64) -> Vec<EditPart> {
        vec![EditPart { normal: n.shallow_clone(), offset: b, direction: n.shallow_clone() }]
    }

    #[test]
    fn zero_distance_leaves_codes_unchanged() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let z = randn(&mut rng, &[50, 10]);
        let n = unit(&randn(&mut rng, &[10]));
        for mode in [EditMode::Shift, EditMode::ToBoundary] {
            let out = linear_edit(&z, &parts_for(&n, 0.3), &distances(3.0, 4), mode).unwrap();
            assert_eq!(out.size(), vec![50, 4, 10]);
            assert_eq!(out.select(1, 0).eq_tensor(&z).all().int64_value(&[]), 1, "{mode:?}");
        }
        // shift moves by exactly d along n.
        let out = linear_edit(&z, &parts_for(&n, 0.3), &[2.0], EditMode::Shift).unwrap();
        let moved = (out.select(1, 0).to_kind(Kind::Double) - z.to_kind(Kind::Double)).mv(&n);
        assert!((moved - 2.0).abs().max().double_value(&[]) < 1e-5);
    }

    #[test]
    fn to_boundary_lands_at_the_requested_distance() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let z = randn(&mut rng, &[40, 12]);
        let n1 = unit(&randn(&mut rng, &[12]));
        let n2 = unit(&randn(&mut rng, &[12]));
        // One part, and two parts edited together with conditional (projected) directions.
        let single = linear_edit(&z, &parts_for(&n1, -0.7), &[-1.5, 3.0], EditMode::ToBoundary).unwrap();
        for (j, d) in [(0, -1.5), (1, 3.0)] {
            let s = single.select(1, j).to_kind(Kind::Double).mv(&n1) - 0.7;
            assert!((s - d).abs().max().double_value(&[]) < 1e-4, "single at {d}");
        }
        let u1 = unit(&project_out(&n1, &n2.unsqueeze(0)));
        let parts = vec![
            EditPart { normal: n1.shallow_clone(), offset: 0.2, direction: u1 },
            EditPart { normal: n2.shallow_clone(), offset: -0.1, direction: n2.shallow_clone() },
        ];
        let both = linear_edit(&z, &parts, &[2.5], EditMode::ToBoundary).unwrap().select(1, 0).to_kind(Kind::Double);
        let s1 = both.mv(&n1) + 0.2;
        let s2 = both.mv(&n2) - 0.1;
        assert!((s1 - 2.5).abs().max().double_value(&[]) < 1e-4);
        assert!((s2 - 2.5).abs().max().double_value(&[]) < 1e-4);
    }

    #[test]
    fn distances_are_a_linspace() {
        assert_eq!(distances(3.0, 4), vec![0.0, 1.0, 2.0, 3.0]);
        assert_eq!(distances(-2.0, 1), vec![-2.0]);
    }
}
