//! The fitting loop shared by SingleGaussFit and GMMFit: Adam on the label loss (MSE between normalized
//! likelihoods and labels) plus an optional extra term, on minibatches, with loss curves and an optional stopping
//! rule on a validation split.

use crate::full::FullGaussians;
use crate::gauss::Gaussians;
use rand::{Rng, SeedableRng};
use subspace_sdk::context::randn;
use subspace_sdk::tch::{self, nn, nn::OptimizerConfig, Kind, Reduction, Tensor};
use subspace_sdk::{Ctx, NodeError};

/// When to stop before `steps`: the label MSE on a validation split (codes the fit never sees) is measured every
/// `every` steps; the fit stops when it has not improved by a relative `min_delta` for `patience` measurements,
/// and the parameters of the best measurement are kept.
pub struct StopRule {
    /// Validation codes, M x D.
    pub z: Tensor,
    /// Their labels, M x K.
    pub labels: Tensor,
    /// Steps between measurements.
    pub every: i64,
    /// Measurements without improvement before stopping.
    pub patience: i64,
    /// Smallest relative decrease that counts as an improvement.
    pub min_delta: f64,
}

/// The learning rate of a full covariance's factor relative to the means' (`lr`). The factor is trained relative
/// to its start, in each class's whitened coordinates, where every one of its D (D + 1) / 2 entries moves by up
/// to the rate per step: at the means' rate the first steps, which Adam takes at full size, undo the start.
pub const FACTOR_LR: f64 = 0.25;

/// How [`fit`] optimises.
pub struct FitOptions {
    /// Adam steps (at most, with a stopping rule).
    pub steps: i64,
    /// Adam learning rate.
    pub lr: f64,
    /// Codes per minibatch (at most all of them).
    pub batch: i64,
    /// Seed of the minibatches and of the extra term's sampling.
    pub seed: u64,
    /// Learn the mixture weights too (else they stay as given).
    pub learn_weights: bool,
    /// Stop early on a validation split (None: run all steps).
    pub stop: Option<StopRule>,
}

impl FitOptions {
    /// `steps` Adam steps at `lr` on minibatches of `batch`, seed 0, fixed weights, no stopping rule.
    pub fn new(steps: i64, lr: f64, batch: i64) -> FitOptions {
        FitOptions { steps, lr, batch, seed: 0, learn_weights: false, stop: None }
    }
}

/// Named series of per-step values.
#[derive(Default)]
pub struct Curves(pub Vec<(String, Vec<f64>)>);

impl Curves {
    /// Appends `v` to series `name`, starting it if new.
    pub fn push(&mut self, name: &str, v: f64) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some((_, s)) => s.push(v),
            None => self.0.push((name.to_string(), vec![v])),
        }
    }
    /// The last value of series `name`.
    pub fn last(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|(n, _)| n == name).and_then(|(_, s)| s.last().copied())
    }
    /// The first value of series `name`.
    pub fn first(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|(n, _)| n == name).and_then(|(_, s)| s.first().copied())
    }
    /// As a `curves` bundle titled `title`.
    pub fn to_bundle(&self, title: &str) -> subspace_sdk::Bundle {
        let mut b = subspace_sdk::Bundle::new(
            subspace_sdk::port::CURVES,
            &serde_json::json!({"title": title, "x_label": "step", "y_label": "loss"}),
        );
        for (name, s) in &self.0 {
            b = b.with(name, Tensor::from_slice(s));
        }
        b
    }
}

/// The Gaussians in the form the optimiser trains: diagonal + low rank (Woodbury), or full covariance through
/// the precision's Cholesky factor (for rank >= D, where Woodbury would cost N K D^2 twice plus a D x D
/// factorisation per class and step).
pub enum Model {
    /// Sigma = diag(sd^2) + U U^T.
    Factored(Gaussians),
    /// Sigma^{-1} = L L^T.
    Full(FullGaussians),
}

impl Model {
    /// The trainable form of `g`: full when its rank reaches its dimension.
    pub fn of(g: &Gaussians) -> Model {
        if g.rank() >= g.dim() {
            Model::Full(FullGaussians::from_gaussians(g))
        } else {
            Model::Factored(g.detach())
        }
    }

    /// Normalized likelihoods N x K.
    pub fn normalized(&self, z: &Tensor) -> Tensor {
        match self {
            Model::Factored(g) => g.normalized(z),
            Model::Full(f) => f.normalized(z),
        }
    }

    /// Normalized likelihoods without gradients, in chunks (bounded memory for many codes).
    pub fn normalized_eval(&self, z: &Tensor) -> Tensor {
        let _guard = tch::no_grad_guard();
        let n = z.size()[0];
        let chunk = 4096;
        let parts: Vec<Tensor> =
            (0..n).step_by(chunk as usize).map(|s| self.normalized(&z.narrow(0, s, chunk.min(n - s)))).collect();
        if parts.is_empty() {
            self.normalized(z)
        } else {
            Tensor::cat(&parts, 0)
        }
    }

    /// Standard normal noise for `n` reparameterised samples (what [`Model::sample_noise`] takes).
    pub fn noise(&self, n: i64, rng: &mut rand_chacha::ChaCha8Rng) -> Vec<Tensor> {
        match self {
            Model::Factored(g) => {
                let device = g.mu.device();
                vec![randn(rng, &[n, g.dim()]).to_device(device), randn(rng, &[n, g.rank()]).to_device(device)]
            }
            Model::Full(f) => vec![randn(rng, &[n, f.dim()]).to_device(f.mu.device())],
        }
    }

    /// Reparameterised samples, row i from component `comp[i]`, from `noise` (differentiable in the parameters).
    pub fn sample_noise(&self, comp: &Tensor, noise: &[Tensor]) -> Tensor {
        match self {
            Model::Factored(g) => g.sample_with(comp, &noise[0], &noise[1]),
            Model::Full(f) => f.sample_with(comp, &noise[0]),
        }
    }

    /// Reparameterised samples, row i from component `comp[i]`, with fresh noise from `rng`.
    pub fn sample(&self, comp: &Tensor, rng: &mut rand_chacha::ChaCha8Rng) -> Tensor {
        let noise = self.noise(comp.size()[0], rng);
        self.sample_noise(comp, &noise)
    }

    /// The stored form (detached).
    pub fn to_gaussians(&self) -> Gaussians {
        match self {
            Model::Factored(g) => g.detach(),
            Model::Full(f) => f.to_gaussians(),
        }
    }

    /// The classes the components stand for.
    pub fn schema(&self) -> &subspace_sdk::LabelSchema {
        match self {
            Model::Factored(g) => &g.schema,
            Model::Full(f) => &f.schema,
        }
    }

    /// Where the parameters live.
    pub fn device(&self) -> tch::Device {
        match self {
            Model::Factored(g) => g.mu.device(),
            Model::Full(f) => f.mu.device(),
        }
    }

    fn log_w(&self) -> &Tensor {
        match self {
            Model::Factored(g) => &g.log_w,
            Model::Full(f) => &f.log_w,
        }
    }

    /// The mixture weights (softmax of the log weights).
    pub fn weights(&self) -> Vec<f64> {
        Vec::<f64>::try_from(self.log_w().detach().softmax(0, Kind::Double)).unwrap_or_default()
    }

    /// The same model with its parameters as variables of `vs` (log weights too when `learn_weights`).
    fn trainable(&self, vs: &nn::VarStore, learn_weights: bool) -> Model {
        let root = vs.root();
        let device = vs.device();
        let var = |name: &str, t: &Tensor| {
            let group = if name == "log_diag" || name == "lower" { 1 } else { 0 };
            root.set_group(group).var_copy(name, &t.to_device(device))
        };
        let log_w = |w: &Tensor| if learn_weights { var("log_w", w) } else { w.to_device(device).detach() };
        match self {
            Model::Factored(g) => Model::Factored(Gaussians {
                mu: var("mu", &g.mu),
                log_sd: var("log_sd", &g.log_sd),
                u: var("u", &g.u),
                log_w: log_w(&g.log_w),
                schema: g.schema.clone(),
                norm: g.norm,
            }),
            Model::Full(f) => {
                let f = f.relative();
                Model::Full(FullGaussians {
                    mu: var("mu", &f.mu),
                    log_diag: var("log_diag", &f.log_diag),
                    lower: var("lower", &f.lower),
                    base: f.base.as_ref().map(|b| b.to_device(device)),
                    log_w: log_w(&f.log_w),
                    schema: f.schema.clone(),
                    norm: f.norm,
                })
            }
        }
    }

    fn detach(&self) -> Model {
        match self {
            Model::Factored(g) => Model::Factored(g.detach()),
            Model::Full(f) => Model::Full(f.absolute()),
        }
    }
}

/// One step's extra term: the loss whose gradient is applied, and the term's value where it was measured.
pub struct TermValue {
    /// The curve's name.
    pub name: String,
    /// Added to the label loss for the gradient (may be a surrogate with the term's gradient).
    pub loss: Tensor,
    /// The term's value, on steps where it was measured.
    pub measured: Option<f64>,
}

/// An extra loss term evaluated each step (given its index) on the current (trainable) model.
pub type ExtraTerm<'a> =
    dyn FnMut(&Model, i64, &mut rand_chacha::ChaCha8Rng) -> Result<Option<TermValue>, NodeError> + 'a;

/// A loss on samples of the components that is costly to evaluate (GMMFit's render-relabel term), evaluated on
/// fresh samples every `every` steps only. An evaluation keeps the samples' noise and the loss's gradient with
/// respect to the samples; every step then applies that gradient through the current reparameterisation (a
/// surrogate whose gradient is the loss's own on evaluation steps, and first order in between), so the term
/// acts at every step for 1 / `every` of its cost.
pub struct SampledTerm {
    every: i64,
    comp: Tensor,
    cache: Option<(Vec<Tensor>, Tensor)>,
    /// Evaluations so far.
    pub evaluations: i64,
}

impl SampledTerm {
    /// Samples from components `comp` (one row each), evaluated every `every` steps.
    pub fn new(comp: Tensor, every: i64) -> SampledTerm {
        SampledTerm { every: every.max(1), comp, cache: None, evaluations: 0 }
    }

    /// The loss to add at `step` and, on evaluation steps, the term's value. `value` computes the term on
    /// (detached) samples, differentiably in them.
    pub fn step(
        &mut self,
        g: &Model,
        step: i64,
        rng: &mut rand_chacha::ChaCha8Rng,
        mut value: impl FnMut(Tensor) -> Result<Tensor, NodeError>,
    ) -> Result<(Tensor, Option<f64>), NodeError> {
        let mut measured = None;
        if step % self.every == 0 || self.cache.is_none() {
            let noise = g.noise(self.comp.size()[0], rng);
            let zs = g.sample_noise(&self.comp, &noise).detach().set_requires_grad(true);
            let loss = value(zs.shallow_clone())?;
            if !loss.requires_grad() {
                return Err(NodeError::model(
                    "the sampled term's models return no gradient with respect to their input",
                ));
            }
            let grad = Tensor::f_run_backward(&[&loss], &[&zs], false, false).map_err(NodeError::from)?.remove(0);
            measured = Some(loss.double_value(&[]));
            self.cache = Some((noise, grad));
            self.evaluations += 1;
        }
        let (noise, grad) = self.cache.as_ref().expect("set above");
        Ok(((g.sample_noise(&self.comp, noise) * grad).sum(Kind::Float), measured))
    }
}

/// What [`fit`] did besides the curves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FitInfo {
    /// Adam steps taken.
    pub steps_run: i64,
    /// The step whose parameters were kept (== steps_run without a stopping rule).
    pub best_step: i64,
    /// Whether the stopping rule ended the fit before `steps`.
    pub stopped_early: bool,
    /// Validation label MSE at each measurement: (step, loss).
    pub validation: Vec<(i64, f64)>,
}

/// Fits `init` to (`z`, `labels`) with Adam; returns the fitted model (detached), the loss curves and what the
/// stopping rule did.
pub fn fit(
    init: &Model,
    z: &Tensor,
    labels: &Tensor,
    opts: &FitOptions,
    mut extra: Option<&mut ExtraTerm<'_>>,
    ctx: Option<&Ctx<'_, '_>>,
    what: &str,
) -> Result<(Model, Curves, FitInfo), NodeError> {
    let device = z.device();
    let vs = nn::VarStore::new(device);
    let g = init.trainable(&vs, opts.learn_weights);
    let mut opt = nn::Adam::default().build(&vs, opts.lr).map_err(NodeError::from)?;
    if let Model::Full(_) = g {
        opt.set_lr_group(1, opts.lr * FACTOR_LR);
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed);
    let n = z.size()[0];
    let batch = opts.batch.min(n);
    let mut curves = Curves::default();
    let mut info = FitInfo::default();
    let vars = vs.trainable_variables();
    let snapshot = || -> Vec<Tensor> { vars.iter().map(|v| v.detach().copy()).collect() };
    let mut best: Option<(f64, Vec<Tensor>)> = None;
    let mut since_best = 0;
    let mut last_extra = 0.0;
    let mut step = 0;
    while step < opts.steps {
        if let Some(rule) = &opts.stop {
            if step % rule.every.max(1) == 0 {
                let v = g.normalized_eval(&rule.z).mse_loss(&rule.labels, Reduction::Mean).double_value(&[]);
                info.validation.push((step, v));
                match &best {
                    Some((b, _)) if !(v < b * (1.0 - rule.min_delta)) => {
                        since_best += 1;
                        if since_best >= rule.patience.max(1) {
                            info.stopped_early = true;
                            break;
                        }
                    }
                    _ => {
                        best = Some((v, snapshot()));
                        info.best_step = step;
                        since_best = 0;
                    }
                }
            }
        }
        if let Some(ctx) = ctx {
            ctx.check_cancelled()?;
        }
        let idx: Vec<i64> = (0..batch).map(|_| rng.gen_range(0..n)).collect();
        let idx = Tensor::from_slice(&idx).to_device(device);
        let zb = z.index_select(0, &idx);
        let lb = labels.index_select(0, &idx);
        let label_loss = g.normalized(&zb).mse_loss(&lb, Reduction::Mean);
        let mut total = label_loss.shallow_clone();
        let mut t = label_loss.double_value(&[]);
        curves.push("label mse", t);
        if let Some(term) = extra.as_deref_mut() {
            if let Some(v) = term(&g, step, &mut rng)? {
                if let Some(m) = v.measured {
                    curves.push(&v.name, m);
                    last_extra = m;
                }
                total += v.loss;
            }
        }
        // The curve's total is the objective: label loss plus the extra term's latest measurement.
        t += last_extra;
        if !t.is_finite() || !total.double_value(&[]).is_finite() {
            return Err(NodeError::internal(format!(
                "{what}: the loss became {t} at step {step}; lower the learning rate"
            )));
        }
        curves.push("total", t);
        opt.zero_grad();
        total.backward();
        opt.step();
        step += 1;
        if let Some(ctx) = ctx {
            ctx.progress(step as u64, opts.steps as u64, &format!("{what} loss {t:.4}"));
        }
    }
    info.steps_run = step;
    if let Some(rule) = &opts.stop {
        if !info.stopped_early {
            // The last parameters get their measurement too.
            let v = g.normalized_eval(&rule.z).mse_loss(&rule.labels, Reduction::Mean).double_value(&[]);
            info.validation.push((step, v));
            if best.as_ref().is_none_or(|(b, _)| v < *b) {
                best = None;
                info.best_step = step;
            }
        }
        if let Some((_, params)) = best {
            let _guard = tch::no_grad_guard();
            for (mut v, p) in vars.into_iter().zip(params) {
                v.copy_(&p);
            }
        }
    } else {
        info.best_step = step;
    }
    Ok((g.detach(), curves, info))
}

/// Splits (codes, labels) at row `n - holdout * n`: (first part, last part).
pub fn split(z: &Tensor, l: &Tensor, holdout: f64) -> (Tensor, Tensor, Tensor, Tensor) {
    let n = z.size()[0];
    let n_val = (((n as f64) * holdout).round() as i64).clamp(0, n - 1);
    let n_fit = n - n_val;
    (z.narrow(0, 0, n_fit), l.narrow(0, 0, n_fit), z.narrow(0, n_fit, n_val), l.narrow(0, n_fit, n_val))
}

/// Held-out ROC AUC per class of `scores` (rounded to 4 decimals; null where a class is absent), their minimum
/// and mean; empty when there are no codes.
pub fn auc_report(scores: &Tensor, labels: &Tensor, schema: &subspace_sdk::LabelSchema) -> serde_json::Value {
    if scores.size()[0] == 0 {
        return serde_json::json!({});
    }
    let names = schema.class_names();
    let aucs = crate::gauss::class_aucs_of(scores, labels, schema);
    let rounded = |a: &Option<f64>| a.map_or(serde_json::Value::Null, |v| ((v * 1e4).round() / 1e4).into());
    let map: serde_json::Map<String, serde_json::Value> =
        names.iter().zip(&aucs).map(|(n, a)| (n.clone(), rounded(a))).collect();
    let valid: Vec<f64> = aucs.iter().flatten().copied().collect();
    let min = valid.iter().cloned().fold(f64::INFINITY, f64::min);
    let mean = valid.iter().sum::<f64>() / valid.len().max(1) as f64;
    serde_json::json!({"auc": map, "min_auc": min, "mean_auc": mean})
}

/// SingleGaussFit's settings (the node's parameters).
pub struct SingleGaussSettings {
    /// Rank of the low-rank part: 0 diagonal, >= D full covariance.
    pub rank: i64,
    /// How likelihoods are compared with labels.
    pub norm: crate::gauss::Normalization,
    /// Adam steps (at most), learning rate, batch and seed; `stop` is set from the fields below.
    pub opts: FitOptions,
    /// Fraction of all codes held out to measure ROC AUC (the last ones).
    pub holdout: f64,
    /// Fraction of the remaining codes set aside for the stopping rule (0: run all steps).
    pub validation: f64,
    /// Steps between validation measurements.
    pub check_every: i64,
    /// Measurements without improvement before stopping.
    pub patience: i64,
}

/// One Gaussian per class: the closed-form label-weighted moments, then Adam on the label MSE until the
/// validation loss stops improving. Returns the Gaussians, the loss curves and the report (held-out AUC of the
/// fit and of its closed-form start, losses, codes used, steps run).
pub fn single_gauss(
    z: &Tensor,
    l: &Tensor,
    schema: subspace_sdk::LabelSchema,
    mut s: SingleGaussSettings,
    ctx: Option<&Ctx<'_, '_>>,
) -> Result<(Gaussians, Curves, serde_json::Value), NodeError> {
    let (zt, lt, zv, lv) = split(z, l, s.holdout);
    let n_train = zt.size()[0];
    let val_frac = if n_train >= 20 { s.validation } else { 0.0 };
    let (zf, lf, zs, ls) = split(&zt, &lt, val_frac);
    // Before any work: a class the fitting codes do not hold is named with its label mass, and whether more codes
    // would help.
    crate::gauss::check_class_mass(&lf, &schema, z.size()[0])?;
    let t0 = std::time::Instant::now();
    let mut shrinkage = None;
    let init = if s.rank >= z.size()[1] {
        let (mu, cov) = crate::gauss::weighted_moments(&zf, &lf, &schema)?;
        let log_w = Tensor::zeros([schema.len() as i64], (Kind::Float, z.device()));
        let (model, alpha, _) = shrunk_start(&mu, &cov, log_w, &schema, s.norm, &zs, &ls);
        shrinkage = Some(alpha);
        model
    } else {
        Model::Factored(Gaussians::init(&zf, &lf, schema.clone(), s.rank, s.norm)?)
    };
    let t_start = t0.elapsed().as_secs_f64();
    if zs.size()[0] > 0 {
        s.opts.stop = Some(StopRule {
            z: zs.shallow_clone(),
            labels: ls.shallow_clone(),
            every: s.check_every.max(1),
            patience: s.patience.max(1),
            min_delta: 1e-3,
        });
    }
    let initial_scores = init.normalized_eval(&zv);
    let t1 = std::time::Instant::now();
    let (model, curves, info) = fit(&init, &zf, &lf, &s.opts, None, ctx, "SingleGaussFit")?;
    let t_adam = t1.elapsed().as_secs_f64();
    let t2 = std::time::Instant::now();
    let mut report = auc_report(&model.normalized_eval(&zv), &lv, &schema);
    if zv.size()[0] > 0 {
        report["initial_mean_auc"] = auc_report(&initial_scores, &lv, &schema)["mean_auc"].clone();
    }
    let g = model.to_gaussians();
    report["final_label_mse"] = curves.last("label mse").unwrap_or(f64::NAN).into();
    report["initial_label_mse"] = curves.first("label mse").unwrap_or(f64::NAN).into();
    report["fit_codes"] = zf.size()[0].into();
    report["validation_codes"] = zs.size()[0].into();
    report["heldout_codes"] = zv.size()[0].into();
    report["shrinkage"] = shrinkage.map_or(serde_json::Value::Null, |a| a.into());
    report["steps_run"] = info.steps_run.into();
    report["best_step"] = info.best_step.into();
    report["stopped_early"] = info.stopped_early.into();
    report["validation_mse"] =
        info.validation.iter().map(|(s, v)| serde_json::json!([s, v])).collect::<Vec<_>>().into();
    let t_report = t2.elapsed().as_secs_f64();
    report["seconds"] = serde_json::json!({"start": t_start, "adam": t_adam, "report": t_report});
    Ok((g, curves, report))
}

/// The start of a full-covariance fit: each class's label-weighted covariance shrunk toward the mean covariance
/// of its attribute group, (1 - a) S_k + a S_group, with `a` from a grid: the least one whose posteriors match the
/// validation labels within 1% of the best. With few codes per dimension the class covariances are noisy and a
/// large `a` wins; where they are well estimated `a` stays 0, the plain moments. Without validation codes: the
/// plain moments. Returns the model, `a` and its validation loss.
pub fn shrunk_start(
    mu: &Tensor,
    cov: &Tensor,
    log_w: Tensor,
    schema: &subspace_sdk::LabelSchema,
    norm: crate::gauss::Normalization,
    zs: &Tensor,
    ls: &Tensor,
) -> (Model, f64, f64) {
    let build = |a: f64| {
        let c = if a == 0.0 { cov.shallow_clone() } else { cov * (1.0 - a) + group_covariance(cov, schema) * a };
        Model::Full(FullGaussians::from_moments(mu, &c, log_w.shallow_clone(), schema.clone(), norm))
    };
    if zs.size()[0] == 0 {
        return (build(0.0), 0.0, f64::NAN);
    }
    let loss = |m: &Model| m.normalized_eval(zs).mse_loss(ls, Reduction::Mean).double_value(&[]);
    // The loss is unimodal in `a` in practice: walk up the grid and stop at the first rise. Then take the least
    // shrinkage within 1% of the best loss: Adam does better from the plain moments unless shrinking clearly helps.
    let mut tried: Vec<(f64, f64, Model)> = Vec::new();
    for a in [0.0, 0.1, 0.25, 0.4, 0.55, 0.7, 0.8, 0.9, 0.95, 1.0] {
        let m = build(a);
        let v = loss(&m);
        let rise = tried.last().is_some_and(|(b, _, _)| v >= *b);
        tried.push((v, a, m));
        if rise {
            break;
        }
    }
    let least = tried.iter().map(|t| t.0).fold(f64::INFINITY, f64::min);
    let best = tried.into_iter().find(|t| t.0 <= least * 1.01);
    let (v, a, m) = best.expect("the grid is not empty and its least loss is within 1% of itself");
    (m, a, v)
}

/// Per class, the mean covariance of the classes of its attribute group.
fn group_covariance(cov: &Tensor, schema: &subspace_sdk::LabelSchema) -> Tensor {
    let d = cov.size()[1];
    let parts: Vec<Tensor> = (0..schema.groups.len())
        .map(|g| {
            let r = schema.group_range(g);
            let m = cov.narrow(0, r.start as i64, r.len() as i64).mean_dim([0i64].as_slice(), true, Kind::Double);
            m.expand([r.len() as i64, d, d], false)
        })
        .collect();
    Tensor::cat(&parts, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gauss::{synthetic_world, Normalization};
    use subspace_sdk::{LabelGroup, LabelSchema};

    fn two_classes() -> LabelSchema {
        LabelSchema {
            groups: vec![LabelGroup { name: "g".into(), classes: vec!["a".into(), "b".into()].into() }].into(),
        }
    }

    /// Two Gaussians with known means and covariances in `d` dimensions, equal priors; `n` codes drawn from them
    /// and labelled with their exact posteriors (so the truth is where the label loss is least).
    fn known_world(n: i64, d: i64) -> (Tensor, Tensor, FullGaussians) {
        tch::manual_seed(7);
        let opts = (Kind::Double, tch::Device::Cpu);
        let a = Tensor::randn([2, d, d], opts);
        let cov = a.matmul(&a.transpose(1, 2)) / d as f64 + Tensor::eye(d, opts) * 0.2;
        let mu = Tensor::zeros([2, d], opts);
        let _ = mu.get(1).get(0).fill_(1.5);
        let truth = FullGaussians::from_moments(
            &mu,
            &cov,
            Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)),
            two_classes(),
            Normalization::Group,
        );
        let comp = Tensor::arange(n, (Kind::Int64, tch::Device::Cpu)).remainder(2);
        let z = tch::no_grad(|| truth.sample_with(&comp, &Tensor::randn([n, d], (Kind::Float, tch::Device::Cpu))));
        let labels = tch::no_grad(|| truth.normalized(&z));
        (z, labels, truth)
    }

    fn settings(steps: i64) -> SingleGaussSettings {
        SingleGaussSettings {
            rank: 1 << 20,
            norm: Normalization::Group,
            opts: FitOptions::new(steps, 0.01, 1024),
            holdout: 0.2,
            validation: 0.1,
            check_every: 5,
            patience: 3,
        }
    }

    #[test]
    fn full_covariance_fit_recovers_known_covariances() {
        let (z, l, truth) = known_world(20000, 6);
        let (g, _, report) = single_gauss(&z, &l, two_classes(), settings(200), None).unwrap();
        assert_eq!(g.rank(), 6, "full covariance is stored as rank D");
        let want = truth.covariances();
        for k in 0..2 {
            let got = g.covariance(k).to_kind(Kind::Double);
            let err = (&got - want.get(k)).norm().double_value(&[]) / want.get(k).norm().double_value(&[]);
            assert!(err < 0.1, "class {k}: covariance off by {err:.3} (relative Frobenius); report {report}");
            let dm = (g.mu.get(k) - truth.mu.get(k)).abs().max().double_value(&[]);
            assert!(dm < 0.1, "class {k}: mean off by {dm}");
        }
        assert!(report["mean_auc"].as_f64().unwrap() > 0.8, "{report}");
    }

    #[test]
    fn stopping_rule_stops_at_an_optimum_and_not_while_the_loss_falls() {
        let (z, l, truth) = known_world(12000, 6);
        let (zf, lf, zs, ls) = split(&z, &l, 0.1);
        let rule =
            || StopRule { z: zs.shallow_clone(), labels: ls.shallow_clone(), every: 5, patience: 3, min_delta: 1e-3 };
        let opts = |steps| FitOptions { stop: Some(rule()), ..FitOptions::new(steps, 0.01, 512) };
        // Easy: started at the truth, nothing to gain: stops after `patience` measurements.
        let (_, _, easy) = fit(&Model::Full(truth), &zf, &lf, &opts(500), None, None, "test").unwrap();
        assert!(easy.stopped_early && easy.steps_run <= 30, "{easy:?}");
        assert!(easy.best_step <= 10, "{easy:?}");
        // Hard: both classes start at the origin with unit covariance; the loss falls for the whole budget.
        let d = 6;
        let far = FullGaussians::from_moments(
            &Tensor::zeros([2, d], (Kind::Double, tch::Device::Cpu)),
            &Tensor::eye(d, (Kind::Double, tch::Device::Cpu)).expand([2, d, d], false),
            Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)),
            two_classes(),
            Normalization::Group,
        );
        let (_, _, hard) = fit(&Model::Full(far), &zf, &lf, &opts(100), None, None, "test").unwrap();
        assert!(!hard.stopped_early && hard.steps_run == 100, "{hard:?}");
        assert!(hard.best_step >= 90, "the last measurements should be the best: {hard:?}");
        let (first, last) = (hard.validation[0].1, hard.validation.last().unwrap().1);
        assert!(last < first * 0.8, "validation loss {first} -> {last}");
    }

    #[test]
    fn the_start_shrinks_toward_the_group_covariance_only_when_codes_are_few_per_dimension() {
        // 256 dimensions from 2,800 fitting codes: class covariances are noise, the shared one is not.
        let (z, l, schema) = synthetic_world(4000, 256, &[2, 3], 4.0, 3);
        let (_, _, report) = single_gauss(&z, &l, schema, settings(0), None).unwrap();
        let a = report["shrinkage"].as_f64().unwrap();
        assert!(a >= 0.5, "few codes per dimension: shrinkage {a}");
        // 8 dimensions from 14,000 codes of two distinct known covariances: the plain moments.
        let (z, l, _) = known_world(20000, 8);
        let (_, _, report) = single_gauss(&z, &l, two_classes(), settings(0), None).unwrap();
        assert_eq!(report["shrinkage"].as_f64(), Some(0.0), "{report}");
    }

    #[test]
    fn a_sampled_term_evaluates_every_k_steps_with_the_exact_gradient_on_those_steps() {
        let (z, l, schema) = synthetic_world(500, 4, &[2], 2.0, 5);
        let (mu, cov) = crate::gauss::weighted_moments(&z, &l, &schema).unwrap();
        let start = Model::Full(FullGaussians::from_moments(
            &mu,
            &cov,
            Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)),
            schema,
            Normalization::Group,
        ));
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let g = start.trainable(&vs, false);
        let comp = Tensor::from_slice(&[0i64, 0, 1, 1, 1]);
        let cost = |zs: Tensor| {
            Ok((zs.sum_dim_intlist([1i64].as_slice(), false, Kind::Float).sigmoid() - 1.0).abs().mean(Kind::Float))
        };
        let grads =
            |loss: &Tensor| -> Vec<Tensor> { Tensor::run_backward(&[loss], &vs.trainable_variables(), false, false) };
        // Every step: the surrogate's gradient is the term's own, on the same noise.
        let mut term = SampledTerm::new(comp.shallow_clone(), 1);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let (surrogate, value) = term.step(&g, 0, &mut rng, cost).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let noise = g.noise(5, &mut rng);
        let direct = cost(g.sample_noise(&comp, &noise)).unwrap();
        assert!((value.unwrap() - direct.double_value(&[])).abs() < 1e-6);
        for (a, b) in grads(&surrogate).iter().zip(grads(&direct)) {
            let diff = (a - &b).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "gradients differ by {diff}");
        }
        // Every third step: 3 evaluations in 9 steps, a value only on those steps, a gradient on every step.
        let mut term = SampledTerm::new(comp, 3);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        for step in 0..9 {
            let (loss, value) = term.step(&g, step, &mut rng, cost).unwrap();
            assert_eq!(value.is_some(), step % 3 == 0, "step {step}");
            let norm: f64 = grads(&loss).iter().map(|t| t.abs().sum(Kind::Float).double_value(&[])).sum();
            assert!(norm > 0.0, "step {step}: no gradient");
        }
        assert_eq!(term.evaluations, 3);
    }
}
