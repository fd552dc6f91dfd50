//! SingleGaussFit and GMMFit: one Gaussian per semantic class, then the same refined as one mixture.

use crate::fit::{
    auc_report, fit, single_gauss, split, ExtraTerm, FitOptions, Model, SampledTerm, SingleGaussSettings, TermValue,
};
use crate::gauss::{Gaussians, Normalization};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use subspace_sdk::edits::codes_and_labels;
use subspace_sdk::kinds;
use subspace_sdk::prelude::*;
use subspace_sdk::tch;
use subspace_sdk::{ModelRef, TensorRef};

const FIT: &str = "Method: Fitting";

/// GMMFit's default steps between renders of the render-relabel samples (chosen by measurement:
/// docs/PERFORMANCE.md, docs/EVALUATION.md).
const RELABEL_EVERY: i64 = 2;

subspace_sdk::choice! {
    /// The covariance form of each Gaussian.
    pub enum Covariance { Diag = "diag", LowRank = "lowrank", Full = "full" }
}

/// The optimiser parameters both fitting nodes take.
struct FitParams {
    steps: Param<i64>,
    lr: Param<f64>,
    batch: Param<i64>,
    holdout: Param<f64>,
    seed: Param<i64>,
}

impl FitParams {
    fn declare(d: &mut Declare, steps: (i64, &str), lr: f64, batch: (i64, i64, &str)) -> Self {
        FitParams {
            steps: d.int("steps", steps.0, 0..=1_000_000, steps.1),
            lr: d.float(
                "lr",
                lr,
                1e-6..=10.0,
                "Adam learning rate (a full covariance's factor moves at a quarter of it, in whitened coordinates)",
            ),
            batch: d.int("batch", batch.0, batch.1..=1 << 20, batch.2),
            holdout: d.float("holdout", 0.2, 0.0..=0.9, "fraction of codes held out to measure ROC AUC"),
            seed: d.int("seed", 0, 0..=i64::MAX, "minibatch and sampling seed"),
        }
    }

    fn options(&self, io: &NodeIo<'_>, learn_weights: bool) -> NodeResult<FitOptions> {
        let (steps, lr, batch) = (io.read(&self.steps)?, io.read(&self.lr)?, io.read(&self.batch)?);
        Ok(FitOptions { steps, lr, batch, seed: io.read(&self.seed)? as u64, learn_weights, stop: None })
    }
}

/// Codes and labels checked for fitting: the SDK's checks, and at least two codes.
fn fitting_data(
    io: &NodeIo<'_>,
    ctx: &Ctx<'_, '_>,
    codes: &Input<Latents>,
    labels: &Input<Labels>,
) -> NodeResult<(Tensor, Tensor, LabelSchema)> {
    let (z, l, schema) = codes_and_labels(io, codes, labels, ctx.device())?;
    if z.size()[0] < 2 {
        return Err(NodeError::input(codes.name(), "need at least two codes to fit"));
    }
    Ok((z, l, schema))
}

pub(crate) struct SingleGaussFit {
    codes: Input<Latents>,
    labels: Input<Labels>,
    covariance: Param<Covariance>,
    rank: Param<i64>,
    normalization: Param<Normalization>,
    fit: FitParams,
    validation: Param<f64>,
    check_every: Param<i64>,
    patience: Param<i64>,
    gaussians: Output<kinds::Gaussians>,
    curves: Output<kinds::Curves>,
    report: Output<String>,
}

impl Declared for SingleGaussFit {
    const INFO: NodeInfo = NodeInfo {
        id: "subspace.single_gauss_fit",
        // 2: `steps` is a maximum (the fit stops when a validation split's loss stops improving), and full
        // covariance is trained through the precision's Cholesky factor from the exact moments.
        version: "2.0.0",
        name: "SingleGaussFit",
        category: FIT,
        doc: "One Gaussian per semantic class, initialised from label-weighted moments of the codes, fitted with Adam \
              so its normalized likelihood matches the labels (MSE), until the loss on a validation split stops \
              improving.",
    };

    fn declare(d: &mut Declare) -> Self {
        d.cacheable();
        SingleGaussFit {
            codes: d.input("codes", "first codes z, N x D"),
            labels: d.input("labels", "their labels L = f(G(z))"),
            covariance: d.choice(
                "covariance",
                Covariance::LowRank,
                "covariance form: diagonal, diagonal + rank-r, or full",
            ),
            rank: d.int("rank", 8, 1..=4096, "rank r of the low-rank part"),
            normalization: d.choice(
                "normalization",
                Normalization::Group,
                "group: posterior among the attribute's classes; peak: exp(-m / 2d), the paper-faithful reading",
            ),
            fit: FitParams::declare(
                d,
                (200, "Adam steps at most (fewer when the validation loss stops improving)"),
                0.01,
                (0, 0, "codes per step (0: 1024 for full covariance, 2048 otherwise)"),
            ),
            validation: d.float(
                "validation",
                0.05,
                0.0..=0.5,
                "fraction of the fitting codes set aside to decide when to stop (0: run all steps)",
            ),
            check_every: d.int("check_every", 5, 1..=100_000, "steps between validation-loss measurements"),
            patience: d.int(
                "patience",
                3,
                1..=1000,
                "measurements without improvement before the fit stops (the best parameters are kept)",
            ),
            gaussians: d.output("gaussians", "the Gaussian group: means, covariance factors, class names"),
            curves: d.output("curves", "loss per step"),
            report: d.output("report", "JSON: held-out ROC AUC per class, losses"),
        }
    }

    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let (z, l, schema) = fitting_data(io, ctx, &self.codes, &self.labels)?;
        let rank = match io.read(&self.covariance)? {
            Covariance::Diag => 0,
            Covariance::Full => z.size()[1],
            Covariance::LowRank => io.read(&self.rank)?,
        };
        let mut opts = self.fit.options(io, false)?;
        if opts.batch == 0 {
            // A full-covariance step costs D / rank times a low-rank one and converges as well on half the codes;
            // the low-rank fit needs the larger batch (held-out AUC 0.955 against 0.948 after 200 steps).
            opts.batch = if rank >= z.size()[1] { 1024 } else { 2048 };
        }
        let settings = SingleGaussSettings {
            rank,
            norm: io.read(&self.normalization)?,
            opts,
            holdout: io.read(&self.fit.holdout)?,
            validation: io.read(&self.validation)?,
            check_every: io.read(&self.check_every)?,
            patience: io.read(&self.patience)?,
        };
        let (g, curves, report) = single_gauss(&z, &l, schema, settings, Some(ctx))?;
        let meta = serde_json::json!({"report": report});
        io.write(&self.gaussians, kinds::Gaussians(g.to_bundle(port::GAUSSIANS, meta)));
        io.write(&self.curves, kinds::Curves(curves.to_bundle("SingleGaussFit")));
        io.write(&self.report, report.to_string());
        Ok(())
    }
}

/// Runs a model handle from another node on a batch (gradients flow through it).
fn forward(model: &ModelRef, x: Tensor) -> NodeResult<Tensor> {
    model.forward(&TensorRef::new(x)).into_result().map(TensorRef::into_tensor)
}

/// Fraction of samples of each component that the classifier puts in that component's class (within its group).
fn purity(g: &Model, gen: &ModelRef, clf: &ModelRef, per: i64, rng: &mut ChaCha8Rng) -> NodeResult<Vec<f64>> {
    let _guard = tch::no_grad_guard();
    let schema = g.schema();
    let k = schema.len() as i64;
    let comp = Tensor::arange(k, (Kind::Int64, g.device())).repeat_interleave_self_int(per, 0, None);
    let probs = forward(clf, forward(gen, g.sample(&comp, rng))?)?;
    let cols = schema.columns();
    let mut out = Vec::new();
    for c in 0..k {
        let (group, class) = cols[c as usize];
        let range = schema.group_range(group);
        let p = probs.narrow(0, c * per, per).narrow(1, range.start as i64, range.len() as i64);
        let hit = p.argmax(1, false).eq(class as i64).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
        out.push(hit);
    }
    Ok(out)
}

/// Steps between renders: `every`, raised where needed so that a fit of `steps` steps renders at most
/// `budget * codes` samples in all (`per_render` at a time, at least one render); `budget` 0 leaves `every` as is.
/// Counted, not timed, so that a fit does not depend on the machine's load.
fn relabel_schedule(every: i64, budget: f64, steps: i64, per_render: i64, codes: i64) -> i64 {
    if budget <= 0.0 || per_render <= 0 || steps <= 0 {
        return every;
    }
    let renders = ((budget * codes as f64) / per_render as f64).floor().max(1.0) as i64;
    every.max((steps + renders - 1) / renders)
}

/// Class name -> value, as a JSON object.
fn per_class(names: &[String], values: &[f64]) -> serde_json::Value {
    names.iter().cloned().zip(values.iter().map(|v| serde_json::json!(v))).collect::<serde_json::Map<_, _>>().into()
}

pub(crate) struct GmmFit {
    gaussians: Input<kinds::Gaussians>,
    codes: Input<Latents>,
    labels: Input<Labels>,
    generator: Input<Generator>,
    classifier: Input<Classifier>,
    samples: Param<i64>,
    relabel_every: Param<i64>,
    relabel_budget: Param<f64>,
    recon_weight: Param<f64>,
    learn_weights: Param<bool>,
    fit: FitParams,
    mixture: Output<kinds::Mixture>,
    curves: Output<kinds::Curves>,
    report: Output<String>,
}

impl Declared for GmmFit {
    const INFO: NodeInfo = NodeInfo {
        id: "subspace.gmm_fit",
        // 2: `samples` are rendered every `relabel_every` steps (not every step), and full covariance is trained
        // through the precision's Cholesky factor. 2.1: `relabel_budget`.
        version: "2.1.0",
        name: "GMMFit",
        category: FIT,
        doc:
            "Refines the Gaussian group as one mixture (weights 1/n): the label MSE plus an L1 term that samples each \
              component (reparameterised), renders it through G and re-labels it with f (weights frozen), compared \
              with the class the component stands for. The samples are rendered every `relabel_every` steps; the \
              steps between reuse their gradient with respect to the samples.",
    };

    fn declare(d: &mut Declare) -> Self {
        d.cacheable();
        GmmFit {
            gaussians: d.input("gaussians", "initial components, from SingleGaussFit"),
            codes: d.input("codes", "first codes z"),
            labels: d.input("labels", "their labels"),
            generator: d.input("generator", "G, to render component samples"),
            classifier: d.input("classifier", "f, to re-label them"),
            samples: d.int(
                "samples",
                8,
                0..=4096,
                "samples per component rendered and re-labelled for the render-relabel term (0: off)",
            ),
            relabel_every: d.int(
                "relabel_every",
                RELABEL_EVERY,
                1..=10_000,
                "steps between renders of the samples; the steps between reuse the samples and their gradient",
            ),
            relabel_budget: d.float(
                "relabel_budget",
                0.0,
                0.0..=1000.0,
                "samples rendered over the whole fit at most this many per code given (renders less often when \
                 needed; 0: no limit). A sample costs a render and re-label with gradients, 1.5-2 labellings of a code",
            ),
            recon_weight: d.float("recon_weight", 1.0, 0.0..=1000.0, "weight of the render-relabel L1 term"),
            learn_weights: d.bool("learn_weights", true, "learn the mixture weights (else fixed at 1/n)"),
            fit: FitParams::declare(d, (100, "Adam steps"), 0.005, (2048, 1, "codes per step")),
            mixture: d.output("mixture", "the second GMM: component k holds semantic class k"),
            curves: d.output("curves", "loss per step: label MSE, render-relabel L1, total"),
            report: d.output("report", "JSON: held-out AUC, component purity per class"),
        }
    }

    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let port = self.gaussians.name();
        let init = Gaussians::from_bundle(&io.read(&self.gaussians)?.0, port)?.to_device(ctx.device());
        let (z, l, schema) = fitting_data(io, ctx, &self.codes, &self.labels)?;
        if schema != init.schema {
            return Err(NodeError::input(self.labels.name(), "the labels' schema differs from the Gaussian group's"));
        }
        if z.size()[1] != init.dim() {
            let (dz, dg) = (z.size()[1], init.dim());
            return Err(NodeError::input(self.codes.name(), format!("codes have dimension {dz}, the Gaussians {dg}")));
        }
        let gen = io.read(&self.generator)?.0;
        let clf = io.read(&self.classifier)?.0;
        let (zf, lf, zv, lv) = split(&z, &l, io.read(&self.fit.holdout)?);
        let per = io.read(&self.samples)?;
        let weight = io.read(&self.recon_weight)?;
        let (k, kc) = (init.k(), init.schema.len() as i64);
        let device = ctx.device();
        // Target (one-hot of the component's class) and mask (its group's columns) for the render-relabel term.
        let cols = init.schema.columns();
        let mut target = vec![0f32; (k * kc) as usize];
        let mut mask = vec![0f32; (k * kc) as usize];
        for c in 0..k as usize {
            let range = init.schema.group_range(cols[c].0);
            for j in range {
                mask[c * kc as usize + j] = 1.0;
            }
            target[c * kc as usize + c] = 1.0;
        }
        let per_row = |t: &[f32]| {
            Tensor::from_slice(t).view([k, kc]).to_device(device).repeat_interleave_self_int(per.max(1), 0, None)
        };
        let (target, mask) = (per_row(&target), per_row(&mask));
        let comp = Tensor::arange(k, (Kind::Int64, device)).repeat_interleave_self_int(per.max(1), 0, None);
        // Rendering and re-labelling is the cost: fresh samples every `relabel_every` steps (see SampledTerm).
        let every = relabel_schedule(
            io.read(&self.relabel_every)?,
            io.read(&self.relabel_budget)?,
            io.read(&self.fit.steps)?,
            k * per,
            z.size()[0],
        );
        let mut sampled = SampledTerm::new(comp, every);
        let mut term = |g: &Model, step: i64, rng: &mut ChaCha8Rng| -> NodeResult<Option<TermValue>> {
            let (loss, measured) = sampled.step(g, step, rng, |zs| {
                let probs = forward(&clf, forward(&gen, zs)?)?;
                Ok(((probs - &target).abs() * &mask).sum(Kind::Float) * (weight / (k * per) as f64))
            })?;
            Ok(Some(TermValue { name: "render-relabel l1".into(), loss, measured }))
        };
        let opts = self.fit.options(io, io.read(&self.learn_weights)?)?;
        let extra: Option<&mut ExtraTerm<'_>> = if per > 0 && weight > 0.0 { Some(&mut term) } else { None };
        let mut rng = ChaCha8Rng::seed_from_u64(io.read(&self.fit.seed)? as u64 ^ 0x5eed);
        let model = Model::of(&init);
        let purity_before = purity(&model, &gen, &clf, 32, &mut rng.clone())?;
        let (model, curves, _) = fit(&model, &zf, &lf, &opts, extra, Some(ctx), "GMMFit")?;
        let purity_after = purity(&model, &gen, &clf, 32, &mut rng)?;
        let names = model.schema().class_names();
        let mut report = auc_report(&model.normalized_eval(&zv), &lv, model.schema());
        report["purity_before"] = per_class(&names, &purity_before);
        report["purity"] = per_class(&names, &purity_after);
        report["weights"] = model.weights().into();
        report["relabel_every"] = every.into();
        report["renders"] = (sampled.evaluations * k * per).into();
        // Per-step losses are minibatch estimates: report the means over the first and last tenth of the steps.
        for (name, s) in &curves.0 {
            let w = (s.len() / 10).max(1).min(s.len().max(1));
            let mean = |xs: &[f64]| if xs.is_empty() { f64::NAN } else { xs.iter().sum::<f64>() / xs.len() as f64 };
            report["first"][name] = mean(&s[..w.min(s.len())]).into();
            report["last"][name] = mean(&s[s.len().saturating_sub(w)..]).into();
        }
        let g = model.to_gaussians();
        let meta = serde_json::json!({"report": report, "mapping": names});
        io.write(&self.mixture, kinds::Mixture(g.to_bundle(port::MIXTURE, meta)));
        io.write(&self.curves, kinds::Curves(curves.to_bundle("GMMFit")));
        io.write(&self.report, report.to_string());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::relabel_schedule;

    /// Renders a fit of `steps` steps makes when it renders at steps 0, every, 2 every, ...
    fn renders(steps: i64, every: i64) -> i64 {
        (0..steps).filter(|s| s % every == 0).count() as i64
    }

    #[test]
    fn relabel_budget_bounds_the_samples_rendered() {
        // No budget: the schedule asked for.
        assert_eq!(relabel_schedule(2, 0.0, 250, 104, 10_000), 2);
        // A budget the schedule already keeps changes nothing (100 steps, 50 renders of 104 = 5,200 <= 10,000).
        assert_eq!(relabel_schedule(2, 0.5, 100, 104, 20_000), 2);
        // The demo's fit (250 steps, 104 samples, 10,000 codes) at half a sample per code: 48 renders at most.
        let every = relabel_schedule(2, 0.5, 250, 104, 10_000);
        assert_eq!(every, 6);
        assert!(renders(250, every) * 104 <= 5_000 && renders(250, every - 1) * 104 > 5_000);
        // Every budget and size: within budget, and no sparser than needed (one step fewer between renders breaks it).
        for steps in [1, 7, 100, 250, 1001] {
            for codes in [10, 999, 20_000] {
                for budget in [0.01, 0.3, 1.0, 4.0] {
                    let e = relabel_schedule(1, budget, steps, 104, codes);
                    let cap = ((budget * codes as f64) / 104.0).floor().max(1.0) as i64;
                    assert!(renders(steps, e) <= cap, "steps {steps} codes {codes} budget {budget}: every {e}");
                    assert!(e == 1 || renders(steps, e - 1) > cap, "steps {steps} codes {codes} budget {budget}");
                }
            }
        }
    }
}
