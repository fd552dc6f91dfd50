//! SingleGaussFit and GMMFit: one Gaussian per semantic class, then the same refined as one mixture.

use crate::fit::{fit, ExtraTerm, FitOptions};
use crate::gauss::{class_aucs, Gaussians, Normalization};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use subspace_sdk::context::randn;
use subspace_sdk::edits::codes_and_labels;
use subspace_sdk::kinds;
use subspace_sdk::prelude::*;
use subspace_sdk::tch;
use subspace_sdk::{ModelRef, TensorRef};

const FIT: &str = "Method: Fitting";

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
    fn declare(d: &mut Declare, steps: i64, lr: f64) -> Self {
        FitParams {
            steps: d.int("steps", steps, 0..=1_000_000, "Adam steps"),
            lr: d.float("lr", lr, 1e-6..=10.0, "Adam learning rate"),
            batch: d.int("batch", 2048, 1..=1 << 20, "codes per step"),
            holdout: d.float("holdout", 0.2, 0.0..=0.9, "fraction of codes held out to measure ROC AUC"),
            seed: d.int("seed", 0, 0..=i64::MAX, "minibatch and sampling seed"),
        }
    }

    fn options(&self, io: &NodeIo<'_>, learn_weights: bool) -> NodeResult<FitOptions> {
        let (steps, lr, batch) = (io.read(&self.steps)?, io.read(&self.lr)?, io.read(&self.batch)?);
        Ok(FitOptions { steps, lr, batch, seed: io.read(&self.seed)? as u64, learn_weights })
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

/// Splits (codes, labels) into fitting and held-out parts (the last `holdout` fraction is held out).
fn split(z: &Tensor, l: &Tensor, holdout: f64) -> (Tensor, Tensor, Tensor, Tensor) {
    let n = z.size()[0];
    let n_val = ((n as f64) * holdout).round() as i64;
    let n_val = n_val.clamp(0, n - 1);
    let n_fit = n - n_val;
    (z.narrow(0, 0, n_fit), l.narrow(0, 0, n_fit), z.narrow(0, n_fit, n_val), l.narrow(0, n_fit, n_val))
}

/// Held-out ROC AUC per class (rounded to 4 decimals; null where a class is absent), their minimum and mean.
fn auc_report(g: &Gaussians, z: &Tensor, l: &Tensor) -> serde_json::Value {
    let names = g.schema.class_names();
    let aucs = class_aucs(g, z, l);
    let rounded = |a: &Option<f64>| a.map_or(serde_json::Value::Null, |v| ((v * 1e4).round() / 1e4).into());
    let map: serde_json::Map<String, serde_json::Value> =
        names.iter().zip(&aucs).map(|(n, a)| (n.clone(), rounded(a))).collect();
    let valid: Vec<f64> = aucs.iter().flatten().copied().collect();
    let min = valid.iter().cloned().fold(f64::INFINITY, f64::min);
    let mean = valid.iter().sum::<f64>() / valid.len().max(1) as f64;
    serde_json::json!({"auc": map, "min_auc": min, "mean_auc": mean})
}

/// The held-out report of a fit, or an empty one when nothing was held out.
fn heldout_report(g: &Gaussians, zv: &Tensor, lv: &Tensor) -> serde_json::Value {
    if zv.size()[0] > 0 {
        auc_report(g, zv, lv)
    } else {
        serde_json::json!({})
    }
}

pub(crate) struct SingleGaussFit {
    codes: Input<Latents>,
    labels: Input<Labels>,
    covariance: Param<Covariance>,
    rank: Param<i64>,
    normalization: Param<Normalization>,
    fit: FitParams,
    gaussians: Output<kinds::Gaussians>,
    curves: Output<kinds::Curves>,
    report: Output<String>,
}

impl Declared for SingleGaussFit {
    const INFO: NodeInfo = NodeInfo {
        id: "subspace.single_gauss_fit",
        version: "1.0.0",
        name: "SingleGaussFit",
        category: FIT,
        doc: "One Gaussian per semantic class, initialised from label-weighted moments of the codes, fitted with Adam \
              so its normalized likelihood matches the labels (MSE).",
    };

    fn declare(d: &mut Declare) -> Self {
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
            fit: FitParams::declare(d, 200, 0.01),
            gaussians: d.output("gaussians", "the Gaussian group: means, covariance factors, class names"),
            curves: d.output("curves", "loss per step"),
            report: d.output("report", "JSON: held-out ROC AUC per class, losses"),
        }
    }

    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let (z, l, schema) = fitting_data(io, ctx, &self.codes, &self.labels)?;
        let (zf, lf, zv, lv) = split(&z, &l, io.read(&self.fit.holdout)?);
        let rank = match io.read(&self.covariance)? {
            Covariance::Diag => 0,
            Covariance::Full => z.size()[1],
            Covariance::LowRank => io.read(&self.rank)?,
        };
        let init = Gaussians::init(&zf, &lf, schema, rank, io.read(&self.normalization)?)?;
        let opts = self.fit.options(io, false)?;
        let (g, curves) = fit(&init, &zf, &lf, &opts, None, Some(ctx), "SingleGaussFit")?;
        let mut report = heldout_report(&g, &zv, &lv);
        report["final_label_mse"] = curves.last("label mse").unwrap_or(f64::NAN).into();
        report["initial_label_mse"] = curves.first("label mse").unwrap_or(f64::NAN).into();
        report["fit_codes"] = zf.size()[0].into();
        report["heldout_codes"] = zv.size()[0].into();
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
fn purity(g: &Gaussians, gen: &ModelRef, clf: &ModelRef, per: i64, rng: &mut ChaCha8Rng) -> NodeResult<Vec<f64>> {
    let _guard = tch::no_grad_guard();
    let (k, d, r) = (g.k(), g.dim(), g.rank());
    let device = g.mu.device();
    let comp = Tensor::arange(k, (Kind::Int64, device)).repeat_interleave_self_int(per, 0, None);
    let e1 = randn(rng, &[k * per, d]).to_device(device);
    let e2 = randn(rng, &[k * per, r]).to_device(device);
    let probs = forward(clf, forward(gen, g.sample_with(&comp, &e1, &e2))?)?;
    let cols = g.schema.columns();
    let mut out = Vec::new();
    for c in 0..k {
        let (group, class) = cols[c as usize];
        let range = g.schema.group_range(group);
        let p = probs.narrow(0, c * per, per).narrow(1, range.start as i64, range.len() as i64);
        let hit = p.argmax(1, false).eq(class as i64).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
        out.push(hit);
    }
    Ok(out)
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
        version: "1.0.0",
        name: "GMMFit",
        category: FIT,
        doc:
            "Refines the Gaussian group as one mixture (weights 1/n): the label MSE plus an L1 term that samples each \
              component (reparameterised), renders it through G and re-labels it with f (weights frozen), compared \
              with the class the component stands for.",
    };

    fn declare(d: &mut Declare) -> Self {
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
                "samples per component per step for the render-relabel term (0: off)",
            ),
            recon_weight: d.float("recon_weight", 1.0, 0.0..=1000.0, "weight of the render-relabel L1 term"),
            learn_weights: d.bool("learn_weights", true, "learn the mixture weights (else fixed at 1/n)"),
            fit: FitParams::declare(d, 100, 0.005),
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
        let mut term = |g: &Gaussians, rng: &mut ChaCha8Rng| -> NodeResult<(String, Tensor)> {
            let (d, r) = (g.dim(), g.rank());
            let e1 = randn(rng, &[k * per, d]).to_device(device);
            let e2 = randn(rng, &[k * per, r]).to_device(device);
            let zs = g.sample_with(&comp, &e1, &e2);
            let probs = forward(&clf, forward(&gen, zs)?)?;
            let l1 = ((probs - &target).abs() * &mask).sum(Kind::Float) / (k * per) as f64;
            Ok(("render-relabel l1".to_string(), l1 * weight))
        };
        let opts = self.fit.options(io, io.read(&self.learn_weights)?)?;
        let extra: Option<&mut ExtraTerm<'_>> = if per > 0 && weight > 0.0 { Some(&mut term) } else { None };
        let mut rng = ChaCha8Rng::seed_from_u64(io.read(&self.fit.seed)? as u64 ^ 0x5eed);
        let purity_before = purity(&init, &gen, &clf, 32, &mut rng.clone())?;
        let (g, curves) = fit(&init, &zf, &lf, &opts, extra, Some(ctx), "GMMFit")?;
        let purity_after = purity(&g, &gen, &clf, 32, &mut rng)?;
        let names = g.schema.class_names();
        let mut report = heldout_report(&g, &zv, &lv);
        report["purity_before"] = per_class(&names, &purity_before);
        report["purity"] = per_class(&names, &purity_after);
        report["weights"] = Vec::<f64>::try_from(g.log_w.softmax(0, Kind::Double)).unwrap_or_default().into();
        // Per-step losses are minibatch estimates: report the means over the first and last tenth of the steps.
        for (name, s) in &curves.0 {
            let w = (s.len() / 10).max(1).min(s.len().max(1));
            let mean = |xs: &[f64]| if xs.is_empty() { f64::NAN } else { xs.iter().sum::<f64>() / xs.len() as f64 };
            report["first"][name] = mean(&s[..w.min(s.len())]).into();
            report["last"][name] = mean(&s[s.len().saturating_sub(w)..]).into();
        }
        let meta = serde_json::json!({"report": report, "mapping": names});
        io.write(&self.mixture, kinds::Mixture(g.to_bundle(port::MIXTURE, meta)));
        io.write(&self.curves, kinds::Curves(curves.to_bundle("GMMFit")));
        io.write(&self.report, report.to_string());
        Ok(())
    }
}
