//! The fitting loop shared by SingleGaussFit and GMMFit: Adam on the label loss (MSE between normalized
//! likelihoods and labels) plus an optional extra term, on minibatches, with loss curves.

use crate::gauss::Gaussians;
use rand::{Rng, SeedableRng};
use subspace_sdk::tch::{nn, nn::OptimizerConfig, Reduction, Tensor};
use subspace_sdk::{Ctx, NodeError};

/// How [`fit`] optimises.
pub struct FitOptions {
    /// Adam steps.
    pub steps: i64,
    /// Adam learning rate.
    pub lr: f64,
    /// Codes per minibatch (at most all of them).
    pub batch: i64,
    /// Seed of the minibatches and of the extra term's sampling.
    pub seed: u64,
    /// Learn the mixture weights too (else they stay as given).
    pub learn_weights: bool,
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

/// An extra loss term evaluated each step on the current (trainable) Gaussians: returns (name, loss).
pub type ExtraTerm<'a> =
    dyn FnMut(&Gaussians, &mut rand_chacha::ChaCha8Rng) -> Result<(String, Tensor), NodeError> + 'a;

/// Fits `init` to (`z`, `labels`) with Adam; returns the fitted Gaussians (detached) and the loss curves.
pub fn fit(
    init: &Gaussians,
    z: &Tensor,
    labels: &Tensor,
    opts: &FitOptions,
    mut extra: Option<&mut ExtraTerm<'_>>,
    ctx: Option<&Ctx<'_, '_>>,
    what: &str,
) -> Result<(Gaussians, Curves), NodeError> {
    let device = z.device();
    let vs = nn::VarStore::new(device);
    let root = vs.root();
    let mut g = Gaussians {
        mu: root.var_copy("mu", &init.mu.to_device(device)),
        log_sd: root.var_copy("log_sd", &init.log_sd.to_device(device)),
        u: root.var_copy("u", &init.u.to_device(device)),
        log_w: init.log_w.to_device(device).detach(),
        schema: init.schema.clone(),
        norm: init.norm,
    };
    if opts.learn_weights {
        g.log_w = root.var_copy("log_w", &init.log_w.to_device(device));
    }
    let mut opt = nn::Adam::default().build(&vs, opts.lr).map_err(NodeError::from)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed);
    let n = z.size()[0];
    let batch = opts.batch.min(n);
    let mut curves = Curves::default();
    for step in 0..opts.steps {
        if let Some(ctx) = ctx {
            ctx.check_cancelled()?;
        }
        let idx: Vec<i64> = (0..batch).map(|_| rng.gen_range(0..n)).collect();
        let idx = Tensor::from_slice(&idx).to_device(device);
        let zb = z.index_select(0, &idx);
        let lb = labels.index_select(0, &idx);
        let label_loss = g.normalized(&zb).mse_loss(&lb, Reduction::Mean);
        let mut total = label_loss.shallow_clone();
        curves.push("label mse", label_loss.double_value(&[]));
        if let Some(term) = extra.as_deref_mut() {
            let (name, loss) = term(&g, &mut rng)?;
            curves.push(&name, loss.double_value(&[]));
            total = total + loss;
        }
        let t = total.double_value(&[]);
        if !t.is_finite() {
            return Err(NodeError::internal(format!(
                "{what}: the loss became {t} at step {step}; lower the learning rate"
            )));
        }
        curves.push("total", t);
        opt.zero_grad();
        total.backward();
        opt.step();
        if let Some(ctx) = ctx {
            ctx.progress(step as u64 + 1, opts.steps as u64, &format!("{what} loss {t:.4}"));
        }
    }
    Ok((g.detach(), curves))
}
