//! The Invert node: codes for given pictures, through the generator (and optionally the classifier) handles that
//! other nodes loaded. Gradients flow through `ModelRef::forward` across plugins (one libtorch).

use crate::invert::{self, Hooks, Init, Latent, Options, Prior};
use serde_json::Value as Json;
use std::time::Instant;
use subspace_sdk::prelude::*;
use subspace_sdk::{ModelRef, TensorRef};

/// Runs a model handle from another node on a batch (gradients flow through it).
fn forward(model: &ModelRef, x: &Tensor) -> NodeResult<Tensor> {
    model.forward(&TensorRef::new(x.shallow_clone())).into_result().map(TensorRef::into_tensor)
}

/// The space a generator handle renders from, as its info says (`space`: z, w or wplus), and what inverting into
/// it needs: the width of a code, its distribution, and (W/W+) the average w and the spread of mapped codes, with
/// where each came from for the report. `samples` are codes of the same space, if linked.
fn latent(g: &Generator, samples: Option<Tensor>, port: &str, samples_port: &str) -> NodeResult<(Latent, Json)> {
    let info: Json = serde_json::from_str(g.0.info().as_str())
        .map_err(|e| NodeError::input(port, format!("the generator's metadata is not JSON: {e}")))?;
    let space = info["space"].as_str().unwrap_or("z");
    let positive = |v: &Json, what: &str| {
        v.as_i64()
            .filter(|d| *d > 0)
            .ok_or_else(|| NodeError::input(port, format!("the generator's metadata gives no positive {what}: {v}")))
    };
    let (dim, w) = match space {
        "z" => (positive(&info["latent"]["dim"], "latent.dim")?, None),
        "w" | "wplus" => {
            let style = &info["style"];
            let (w_dim, num_ws) =
                (positive(&style["w_dim"], "style.w_dim")?, positive(&style["num_ws"], "style.num_ws")?);
            (if space == "w" { w_dim } else { w_dim * num_ws }, Some((w_dim, num_ws)))
        }
        other => {
            return Err(NodeError::input(port, format!("the generator renders codes of an unknown space '{other}'")))
        }
    };
    let samples = samples.map(|s| s.to_kind(Kind::Float).to_device(Device::Cpu));
    if let Some(s) = &samples {
        let size = s.size();
        if size.len() != 2 || size[1] != dim || size[0] == 0 {
            return Err(NodeError::input(
                samples_port,
                format!("sampled codes of shape {size:?}; the generator's {space} codes are N x {dim}"),
            ));
        }
    }
    let Some((w_dim, num_ws)) = w else {
        let name = info["latent"]["distribution"].as_str().unwrap_or("normal");
        let prior = Prior::parse(name).ok_or_else(|| {
            NodeError::input(port, format!("latent distribution '{name}' is not supported (normal, uniform)"))
        })?;
        return Ok((Latent { dim, prior, samples }, serde_json::json!({"space": "z", "distribution": name})));
    };
    // The average w: the sidecar's numbers, a parameter it names (read through the handle), or the mean of the
    // sampled codes; a method or an estimate at load stays inside the models plugin.
    let named = &info["style"]["w_avg"];
    let listed: Option<Vec<f32>> =
        named.as_array().and_then(|l| l.iter().map(|v| v.as_f64().map(|x| x as f32)).collect());
    let from_param = named.as_str().and_then(|n| g.0.parameter(n.into()).into_option().map(|t| (n, t.into_tensor())));
    let (avg, avg_from) = match (listed, from_param, &samples) {
        (Some(v), _, _) if v.len() as i64 == w_dim => (Tensor::from_slice(&v), "style.w_avg (numbers)".to_string()),
        (_, Some((n, t)), _) => {
            let t = t.detach().to_kind(Kind::Float).to_device(Device::Cpu);
            let t = match t.size().as_slice() {
                [d] if *d == w_dim => t,
                [_, d] if *d == w_dim => t.select(0, 0),
                other => {
                    return Err(NodeError::input(
                        port,
                        format!("the generator's parameter {n} (style.w_avg) has shape {other:?}, not [{w_dim}]"),
                    ))
                }
            };
            (t, format!("parameter {n}"))
        }
        (_, _, Some(s)) => {
            // Per layer in W+: the mean of the sampled codes is already one w per layer.
            let mean = s.mean_dim([0i64].as_slice(), false, Kind::Float);
            (mean, format!("mean of {} sampled codes", s.size()[0]))
        }
        _ => {
            let said = if named.is_null() { "left out".to_string() } else { format!("{named}") };
            return Err(NodeError::input(
                samples_port,
                format!(
                    "inverting into {space} starts from the average w, which the generator handle does not give \
                     (style.w_avg {said}; only numbers or a parameter name can be read through it): link codes \
                     sampled by a Generator in {space} (render off) to {samples_port}, or name the module's w_avg \
                     parameter in the sidecar (docs/MODELS.md)"
                ),
            ));
        }
    };
    let mean = if avg.size()[0] == dim { avg } else { avg.repeat([num_ws]) };
    let mean = mean.reshape([1, dim]);
    // StyleGAN2's projector's w_std: the root mean squared distance of mapped codes' entries from the average w.
    let spread = match &samples {
        Some(s) => {
            let spread = (s - &mean).square().mean(Kind::Float).double_value(&[]).sqrt();
            if !(spread.is_finite() && spread > 1e-8) {
                let why = format!("the sampled codes do not spread around the average w (spread {spread})");
                return Err(NodeError::input(samples_port, why));
            }
            Some(spread)
        }
        None => None,
    };
    let about = serde_json::json!({
        "space": space, "w_dim": w_dim, "num_ws": num_ws, "w_avg_from": avg_from, "spread": spread,
        "prior_term": if spread.is_some() { "shell around the average w" } else { "off: no sampled codes give the spread" },
    });
    Ok((Latent { dim, prior: Prior::Around { mean, spread }, samples }, about))
}

/// Finds latent codes whose renders match pictures.
pub struct Invert {
    images: Input<Images>,
    generator: Input<Generator>,
    classifier: Optional<Classifier>,
    samples: Optional<Latents>,
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
        // 1.1: W and W+ (the generator's space), `samples`.
        version: "1.1.0",
        name: "Invert",
        category: "Images: Inversion",
        doc: "Finds latent codes whose renders match the pictures: Adam on codes of the generator's space (z, or W / \
              W+ of a StyleGAN-style generator: one w per layer) from the latent mean (the average w in W/W+) or \
              from several random starts (the best start per picture is kept), minimising the pixel MSE, plus a \
              feature loss (the classifier's outputs on the render against those on the picture) and a prior term \
              keeping codes typical of the latent distribution (in W/W+ a pull toward the average w). The codes are \
              in the generator's space and edit like sampled ones.",
    };
    fn declare(d: &mut Declare) -> Self {
        // Minutes of optimisation that depend only on the pictures, models and parameters: worth keeping on disk.
        d.cacheable();
        Invert {
            images: d.input("images", "the pictures, N x C x H x W in [0, 1], at the generator's size (Load images)"),
            generator: d.input("generator", "the generator whose codes are searched"),
            classifier: d.optional("classifier", "classifier for the feature loss (with feature > 0)"),
            samples: d.optional("samples", "codes sampled in the generator's space (a Generator of that space, render off): random starts are picked from them; in W/W+ they give the spread of mapped codes, and the average w when the sidecar's cannot be read through the handle"),
            steps: d.int("steps", 300, 0..=100_000, "Adam steps"),
            lr: d.float("lr", 0.1, 1e-6..=10.0, "peak Adam learning rate (ramped up over the first 5% of the steps, down over the last 25%)"),
            init: d.choice("init", Init::Mean, "mean: the first start at the latent mean (zero in z, the average w in W/W+), any others random; random: every start drawn from the prior (in W/W+: picked from samples)"),
            starts: d.int("starts", 1, 1..=64, "starts per picture, run together; the one with the lowest loss is kept"),
            feature: d.float("feature", 0.0, 0.0..=1000.0, "weight of the classifier feature loss (mean squared change of its outputs; 0: off)"),
            prior: d.float("prior", 0.001, 0.0..=1000.0, "weight of the prior term: (|z|^2 / D - 1)^2 for a normal latent, the excess beyond [-1, 1] for a uniform one, in W/W+ (|w - w_avg|^2 / (D s^2) - 1)^2 with s the spread of the sampled codes (none without samples) (0: off)"),
            batch: d.int("batch", 32, 1..=65_536, "pictures optimised together (each with its starts)"),
            codes: d.output("codes", "the best code per picture, N x D, in the generator's space"),
            renders: d.output("images", "the codes' renders, N x C x H x W in [0, 1]"),
            report: d.output("report", "JSON: RMS pixel error per picture and summarised, the mean code's error, steps, starts, seconds"),
        }
    }
    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let started = Instant::now();
        let g = io.read(&self.generator)?;
        let clf = io.read(&self.classifier)?;
        let samples = io.read(&self.samples)?.map(|Latents(t)| t);
        let (latent, space) = latent(&g, samples, self.generator.name(), self.samples.name())?;
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
        let found = invert::invert(&pictures, &latent, opts, &mut ctx.rng(), &hooks)?;
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
            "space": space["space"],
            "latent": space,
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
            "inverted {} pictures into {} in {seconds:.1} s: RMS pixel error {:.4} (mean code {:.4})",
            found.rms.len(),
            space["space"].as_str().unwrap_or("z"),
            s["mean"].as_f64().unwrap_or(f64::NAN),
            invert::summary(&found.rms_at_mean)["mean"].as_f64().unwrap_or(f64::NAN),
        ));
        io.write(&self.codes, Latents(found.codes.to_device(ctx.device())));
        io.write(&self.renders, Images(found.renders.to_device(ctx.device())));
        io.write(&self.report, serde_json::to_string_pretty(&report).map_err(|e| NodeError::internal(e.to_string()))?);
        Ok(())
    }
}
