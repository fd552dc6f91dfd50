//! The Invert node: codes for given pictures, through the generator (and optionally the classifier) handles that
//! other nodes loaded. Gradients flow through `ModelRef::forward` across plugins (one libtorch).

use crate::invert::{self, Hooks, Init, Options, Prior};
use std::time::Instant;
use subspace_sdk::prelude::*;
use subspace_sdk::{ModelRef, TensorRef};

/// Runs a model handle from another node on a batch (gradients flow through it).
fn forward(model: &ModelRef, x: &Tensor) -> NodeResult<Tensor> {
    model.forward(&TensorRef::new(x.shallow_clone())).into_result().map(TensorRef::into_tensor)
}

/// The latent dimension and distribution a generator's metadata gives (`latent.dim`, `latent.distribution`).
fn latent(g: &Generator, port: &str) -> NodeResult<(i64, Prior)> {
    let info: serde_json::Value = serde_json::from_str(g.0.info().as_str())
        .map_err(|e| NodeError::input(port, format!("the generator's metadata is not JSON: {e}")))?;
    let l = &info["latent"];
    let dim = l["dim"]
        .as_i64()
        .filter(|d| *d > 0)
        .ok_or_else(|| NodeError::input(port, format!("the generator's metadata gives no positive latent.dim: {l}")))?;
    let name = l["distribution"].as_str().unwrap_or("normal");
    let prior = Prior::parse(name).ok_or_else(|| {
        NodeError::input(port, format!("latent distribution '{name}' is not supported (normal, uniform)"))
    })?;
    Ok((dim, prior))
}

/// Finds latent codes whose renders match pictures.
pub struct Invert {
    images: Input<Images>,
    generator: Input<Generator>,
    classifier: Optional<Classifier>,
    steps: Param<i64>,
    lr: Param<f64>,
    init: Param<Init>,
    starts: Param<i64>,
    feature: Param<f64>,
    prior: Param<f64>,
    batch: Param<i64>,
    codes: Output<Latents>,
    renders: Output<Images>,
    report: Output<String>,
}

impl Declared for Invert {
    const INFO: NodeInfo = NodeInfo {
        id: "subspace.invert",
        version: "1.0.0",
        name: "Invert",
        category: "Images: Inversion",
        doc: "Finds latent codes whose renders match the pictures: Adam on the generator's input codes from the \
              latent mean or from several random starts (the best start per picture is kept), minimising the pixel \
              MSE, plus a feature loss (the classifier's outputs on the render against those on the picture) and a \
              prior term keeping codes typical of the latent distribution. The codes then edit like sampled ones.",
    };
    fn declare(d: &mut Declare) -> Self {
        // Minutes of optimisation that depend only on the pictures, models and parameters: worth keeping on disk.
        d.cacheable();
        Invert {
            images: d.input("images", "the pictures, N x C x H x W in [0, 1], at the generator's size (Load images)"),
            generator: d.input("generator", "the generator whose codes are searched"),
            classifier: d.optional("classifier", "classifier for the feature loss (with feature > 0)"),
            steps: d.int("steps", 300, 0..=100_000, "Adam steps"),
            lr: d.float("lr", 0.1, 1e-6..=10.0, "peak Adam learning rate (ramped up over the first 5% of the steps, down over the last 25%)"),
            init: d.choice("init", Init::Mean, "mean: the first start at the latent mean (zero), any others random; random: every start drawn from the prior"),
            starts: d.int("starts", 1, 1..=64, "starts per picture, run together; the one with the lowest loss is kept"),
            feature: d.float("feature", 0.0, 0.0..=1000.0, "weight of the classifier feature loss (mean squared change of its outputs; 0: off)"),
            prior: d.float("prior", 0.001, 0.0..=1000.0, "weight of the prior term: (|z|^2 / D - 1)^2 for a normal latent, the excess beyond [-1, 1] for a uniform one (0: off)"),
            batch: d.int("batch", 32, 1..=65_536, "pictures optimised together (each with its starts)"),
            codes: d.output("codes", "the best code per picture, N x D"),
            renders: d.output("images", "the codes' renders, N x C x H x W in [0, 1]"),
            report: d.output("report", "JSON: RMS pixel error per picture and summarised, the mean code's error, steps, starts, seconds"),
        }
    }
    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let started = Instant::now();
        let g = io.read(&self.generator)?;
        let clf = io.read(&self.classifier)?;
        let (dim, prior) = latent(&g, self.generator.name())?;
        let opts = Options {
            steps: io.read(&self.steps)?,
            lr: io.read(&self.lr)?,
            starts: io.read(&self.starts)?,
            init: io.read(&self.init)?,
            feature: io.read(&self.feature)?,
            prior: io.read(&self.prior)?,
            batch: io.read(&self.batch)?,
        };
        if opts.feature > 0.0 && clf.is_none() {
            return Err(NodeError::param(self.feature.name(), "a feature loss needs a classifier: link one or set 0"));
        }
        let Images(pictures) = io.read(&self.images)?;
        let pictures = pictures.to_kind(Kind::Float).to_device(ctx.device());
        let (lo, hi) = (pictures.min().double_value(&[]), pictures.max().double_value(&[]));
        if lo < 0.0 || hi > 1.0 {
            return Err(NodeError::input(
                self.images.name(),
                format!("pictures must lie in [0, 1], found [{lo}, {hi}]"),
            ));
        }
        let render = |z: &Tensor| forward(&g.0, z);
        let classify = clf.as_ref().map(|c| move |x: &Tensor| forward(&c.0, x));
        let hooks = Hooks {
            render: &render,
            classify: classify.as_ref().map(|f| f as invert::ModelFn<'_>),
            progress: &|done, total| ctx.progress(done, total, "inverting"),
            cancelled: &|| ctx.check_cancelled(),
        };
        let found = invert::invert(&pictures, dim, prior, opts, &mut ctx.rng(), &hooks)?;
        let seconds = started.elapsed().as_secs_f64();
        let per_picture: Vec<serde_json::Value> = (0..found.rms.len())
            .map(|i| {
                serde_json::json!({
                    "index": i, "rms": found.rms[i], "rms_at_mean": found.rms_at_mean[i], "start": found.start[i],
                    "loss": found.loss[i],
                })
            })
            .collect();
        let report = serde_json::json!({
            "space": "z",
            "pictures": found.rms.len(),
            "steps": opts.steps,
            "starts": opts.starts,
            "init": opts.init.name(),
            "feature": opts.feature,
            "prior": opts.prior,
            "seconds": seconds,
            "device": subspace_sdk::DeviceSpec::from_tch(ctx.device()).to_string(),
            "rms": invert::summary(&found.rms),
            "rms_at_mean": invert::summary(&found.rms_at_mean),
            "per_picture": per_picture,
        });
        let s = invert::summary(&found.rms);
        ctx.log(&format!(
            "inverted {} pictures in {seconds:.1} s: RMS pixel error {:.4} (mean code {:.4})",
            found.rms.len(),
            s["mean"].as_f64().unwrap_or(f64::NAN),
            invert::summary(&found.rms_at_mean)["mean"].as_f64().unwrap_or(f64::NAN),
        ));
        io.write(&self.codes, Latents(found.codes.to_device(ctx.device())));
        io.write(&self.renders, Images(found.renders.to_device(ctx.device())));
        io.write(&self.report, serde_json::to_string_pretty(&report).map_err(|e| NodeError::internal(e.to_string()))?);
        Ok(())
    }
}
