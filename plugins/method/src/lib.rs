//! The method's nodes (see README.md): SingleGaussFit, GMMFit, AttributeEdit, SaveFit, LoadMixture.

pub mod edit;
pub mod fit;
pub mod gauss;
pub mod score;
pub mod store;

use fit::{fit, Curves, FitOptions};
use gauss::{class_aucs, Gaussians, Normalization};
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use subspace_sdk::context::randn;
use subspace_sdk::files;
use subspace_sdk::tch::{self, Kind, Tensor};
use subspace_sdk::*;

const FIT: &str = "Method: Fitting";

/// Splits (codes, labels) into fitting and held-out parts (the last `holdout` fraction is held out).
fn split(z: &Tensor, l: &Tensor, holdout: f64) -> (Tensor, Tensor, Tensor, Tensor) {
    let n = z.size()[0];
    let n_val = ((n as f64) * holdout).round() as i64;
    let n_val = n_val.clamp(0, n - 1);
    let n_fit = n - n_val;
    (z.narrow(0, 0, n_fit), l.narrow(0, 0, n_fit), z.narrow(0, n_fit, n_val), l.narrow(0, n_fit, n_val))
}

fn codes_and_labels(io: &NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<(Tensor, Labels)> {
    let z = io.latents("codes")?.to_kind(Kind::Float).to_device(ctx.device());
    let labels = io.labels("labels")?;
    let l = labels.probs.tensor().to_kind(Kind::Float).to_device(ctx.device());
    if l.size()[0] != z.size()[0] {
        return Err(NodeError::input("labels", format!("{} label rows for {} codes", l.size()[0], z.size()[0])));
    }
    if l.dim() != 2 || l.size()[1] != labels.schema.len() as i64 {
        return Err(NodeError::input("labels", format!("labels of shape {:?} do not match their schema of {} classes", l.size(), labels.schema.len())));
    }
    let (lo, hi) = (l.min().double_value(&[]), l.max().double_value(&[]));
    if lo < 0.0 || hi > 1.0 {
        return Err(NodeError::input("labels", format!("labels must lie in [0, 1], found [{lo}, {hi}]")));
    }
    if z.size()[0] < 2 {
        return Err(NodeError::input("codes", "need at least two codes to fit"));
    }
    Ok((z, labels))
}

fn auc_report(g: &Gaussians, z: &Tensor, l: &Tensor) -> serde_json::Value {
    let names = g.schema.class_names();
    let aucs = class_aucs(g, z, l);
    let map: serde_json::Map<String, serde_json::Value> =
        names.iter().zip(&aucs).map(|(n, a)| (n.clone(), a.map_or(serde_json::Value::Null, |v| (v * 1e4).round().into()))).map(|(n, v)| (n, if v.is_null() { v } else { (v.as_f64().unwrap() / 1e4).into() })).collect();
    let valid: Vec<f64> = aucs.iter().flatten().copied().collect();
    serde_json::json!({"auc": map, "min_auc": valid.iter().cloned().fold(f64::INFINITY, f64::min), "mean_auc": valid.iter().sum::<f64>() / valid.len().max(1) as f64})
}

fn fit_params(d: NodeDescriptor, steps: i64, lr: f64) -> NodeDescriptor {
    d.param(ParamSpec::int("steps", steps, 0, 1_000_000, "Adam steps"))
        .param(ParamSpec::float("lr", lr, 1e-6, 10.0, "Adam learning rate"))
        .param(ParamSpec::int("batch", 2048, 1, 1 << 20, "codes per step"))
        .param(ParamSpec::float("holdout", 0.2, 0.0, 0.9, "fraction of codes held out to measure ROC AUC"))
        .param(ParamSpec::int("seed", 0, 0, i64::MAX, "minibatch and sampling seed"))
}

struct SingleGaussFit;

impl Node for SingleGaussFit {
    fn descriptor(&self) -> NodeDescriptor {
        let d = NodeDescriptor::new(
            "subspace.single_gauss_fit",
            "1.0.0",
            "SingleGaussFit",
            FIT,
            "One Gaussian per semantic class, initialised from label-weighted moments of the codes, fitted with Adam \
             so its normalized likelihood matches the labels (MSE).",
        )
        .input(PortSpec::new("codes", port::LATENTS, "first codes z, N x D"))
        .input(PortSpec::new("labels", port::LABELS, "their labels L = f(G(z))"))
        .param(ParamSpec::choice("covariance", "lowrank", &["diag", "lowrank", "full"], "covariance form: diagonal, diagonal + rank-r, or full"))
        .param(ParamSpec::int("rank", 8, 1, 4096, "rank r of the low-rank part"))
        .param(ParamSpec::choice("normalization", "group", &["group", "peak"], "group: posterior among the attribute's classes; peak: exp(-m / 2d), the paper-faithful reading"));
        fit_params(d, 200, 0.01)
            .output(PortSpec::new("gaussians", port::GAUSSIANS, "the Gaussian group: means, covariance factors, class names"))
            .output(PortSpec::new("curves", port::CURVES, "loss per step"))
            .output(PortSpec::new("report", port::TEXT, "JSON: held-out ROC AUC per class, losses"))
    }

    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let (z, labels) = codes_and_labels(io, ctx)?;
        let l = labels.probs.tensor().to_kind(Kind::Float).to_device(ctx.device());
        let (zf, lf, zv, lv) = split(&z, &l, io.float("holdout")?);
        let rank = match io.text("covariance")?.as_str() {
            "diag" => 0,
            "full" => z.size()[1],
            _ => io.int("rank")?,
        };
        let norm = Normalization::parse(&io.text("normalization")?)?;
        let init = Gaussians::init(&zf, &lf, labels.schema.clone(), rank, norm)?;
        let opts = FitOptions { steps: io.int("steps")?, lr: io.float("lr")?, batch: io.int("batch")?, seed: io.int("seed")? as u64, learn_weights: false };
        let (g, curves) = fit(&init, &zf, &lf, &opts, None, Some(ctx), "SingleGaussFit")?;
        let mut report = if zv.size()[0] > 0 { auc_report(&g, &zv, &lv) } else { serde_json::json!({}) };
        report["final_label_mse"] = curves.last("label mse").unwrap_or(f64::NAN).into();
        report["initial_label_mse"] = curves.first("label mse").unwrap_or(f64::NAN).into();
        report["fit_codes"] = zf.size()[0].into();
        report["heldout_codes"] = zv.size()[0].into();
        io.output("gaussians", Value::Bundle(g.to_bundle(port::GAUSSIANS, serde_json::json!({"report": report}))));
        io.output("curves", Value::Bundle(curves.to_bundle("SingleGaussFit")));
        io.output("report", Value::Text(report.to_string().into()));
        Ok(())
    }
}

/// Runs a model handle from another node on a batch (gradients flow through it).
fn forward(model: &ModelRef, x: Tensor) -> NodeResult<Tensor> {
    model.forward(&TensorRef::new(x)).into_result().map(TensorRef::into_tensor)
}

/// Fraction of samples of each component that the classifier puts in that component's class (within its group).
fn purity(g: &Gaussians, gen: &ModelRef, clf: &ModelRef, per: i64, rng: &mut rand_chacha::ChaCha8Rng) -> NodeResult<Vec<f64>> {
    let _guard = tch::no_grad_guard();
    let (k, d, r) = (g.k(), g.dim(), g.rank());
    let device = g.mu.device();
    let comp = Tensor::arange(k, (Kind::Int64, device)).repeat_interleave_self_int(per, 0, None);
    let z = g.sample_with(&comp, &randn(rng, &[k * per, d]).to_device(device), &randn(rng, &[k * per, r]).to_device(device));
    let probs = forward(clf, forward(gen, z)?)?;
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

struct GmmFit;

impl Node for GmmFit {
    fn descriptor(&self) -> NodeDescriptor {
        let d = NodeDescriptor::new(
            "subspace.gmm_fit",
            "1.0.0",
            "GMMFit",
            FIT,
            "Refines the Gaussian group as one mixture (weights 1/n): the label MSE plus an L1 term that samples each \
             component (reparameterised), renders it through G and re-labels it with f (weights frozen), compared \
             with the class the component stands for.",
        )
        .input(PortSpec::new("gaussians", port::GAUSSIANS, "initial components, from SingleGaussFit"))
        .input(PortSpec::new("codes", port::LATENTS, "first codes z"))
        .input(PortSpec::new("labels", port::LABELS, "their labels"))
        .input(PortSpec::new("generator", port::GENERATOR, "G, to render component samples"))
        .input(PortSpec::new("classifier", port::CLASSIFIER, "f, to re-label them"))
        .param(ParamSpec::int("samples", 8, 0, 4096, "samples per component per step for the render-relabel term (0: off)"))
        .param(ParamSpec::float("recon_weight", 1.0, 0.0, 1000.0, "weight of the render-relabel L1 term"))
        .param(ParamSpec::bool("learn_weights", true, "learn the mixture weights (else fixed at 1/n)"));
        fit_params(d, 100, 0.005)
            .output(PortSpec::new("mixture", port::MIXTURE, "the second GMM: component k holds semantic class k"))
            .output(PortSpec::new("curves", port::CURVES, "loss per step: label MSE, render-relabel L1, total"))
            .output(PortSpec::new("report", port::TEXT, "JSON: held-out AUC, component purity per class"))
    }

    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let init = Gaussians::from_bundle(&io.bundle("gaussians", port::GAUSSIANS)?, "gaussians")?.to_device(ctx.device());
        let (z, labels) = codes_and_labels(io, ctx)?;
        if labels.schema != init.schema {
            return Err(NodeError::input("labels", "the labels' schema differs from the Gaussian group's"));
        }
        if z.size()[1] != init.dim() {
            return Err(NodeError::input("codes", format!("codes have dimension {}, the Gaussians {}", z.size()[1], init.dim())));
        }
        let gen = io.model("generator")?;
        let clf = io.model("classifier")?;
        let l = labels.probs.tensor().to_kind(Kind::Float).to_device(ctx.device());
        let (zf, lf, zv, lv) = split(&z, &l, io.float("holdout")?);
        let per = io.int("samples")?;
        let weight = io.float("recon_weight")?;
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
        let target = Tensor::from_slice(&target).view([k, kc]).to_device(device).repeat_interleave_self_int(per.max(1), 0, None);
        let mask = Tensor::from_slice(&mask).view([k, kc]).to_device(device).repeat_interleave_self_int(per.max(1), 0, None);
        let comp = Tensor::arange(k, (Kind::Int64, device)).repeat_interleave_self_int(per.max(1), 0, None);
        let mut term = |g: &Gaussians, rng: &mut rand_chacha::ChaCha8Rng| -> NodeResult<(String, Tensor)> {
            let (d, r) = (g.dim(), g.rank());
            let e1 = randn(rng, &[k * per, d]).to_device(device);
            let e2 = randn(rng, &[k * per, r]).to_device(device);
            let zs = g.sample_with(&comp, &e1, &e2);
            let probs = forward(&clf, forward(&gen, zs)?)?;
            let l1 = ((probs - &target).abs() * &mask).sum(Kind::Float) / (k * per) as f64;
            Ok(("render-relabel l1".to_string(), l1 * weight))
        };
        let opts = FitOptions { steps: io.int("steps")?, lr: io.float("lr")?, batch: io.int("batch")?, seed: io.int("seed")? as u64, learn_weights: io.bool("learn_weights")? };
        let extra: Option<&mut fit::ExtraTerm<'_>> = if per > 0 && weight > 0.0 { Some(&mut term) } else { None };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(io.int("seed")? as u64 ^ 0x5eed);
        let purity_before = purity(&init, &gen, &clf, 32, &mut rng.clone())?;
        let (g, curves) = fit(&init, &zf, &lf, &opts, extra, Some(ctx), "GMMFit")?;
        let purity_after = purity(&g, &gen, &clf, 32, &mut rng)?;
        let names = g.schema.class_names();
        let mut report = if zv.size()[0] > 0 { auc_report(&g, &zv, &lv) } else { serde_json::json!({}) };
        report["purity_before"] = names.iter().cloned().zip(purity_before.iter().map(|v| serde_json::json!(v))).collect::<serde_json::Map<_, _>>().into();
        report["purity"] = names.iter().cloned().zip(purity_after.iter().map(|v| serde_json::json!(v))).collect::<serde_json::Map<_, _>>().into();
        report["weights"] = Vec::<f64>::try_from(g.log_w.softmax(0, Kind::Double)).unwrap_or_default().into();
        // Per-step losses are minibatch estimates: report the means over the first and last tenth of the steps.
        for (name, s) in &curves.0 {
            let w = (s.len() / 10).max(1).min(s.len().max(1));
            let mean = |xs: &[f64]| if xs.is_empty() { f64::NAN } else { xs.iter().sum::<f64>() / xs.len() as f64 };
            report["first"][name] = mean(&s[..w.min(s.len())]).into();
            report["last"][name] = mean(&s[s.len().saturating_sub(w)..]).into();
        }
        io.output("mixture", Value::Bundle(g.to_bundle(port::MIXTURE, serde_json::json!({"report": report, "mapping": names}))));
        io.output("curves", Value::Bundle(curves.to_bundle("GMMFit")));
        io.output("report", Value::Text(report.to_string().into()));
        Ok(())
    }
}

struct AttributeEdit;

impl Node for AttributeEdit {
    fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::new(
            "subspace.attribute_edit",
            "1.0.0",
            "AttributeEdit",
            "Method: Editing",
            "Edits first codes toward a mixture component: zs drawn from it (sampled or its mean), z' = (1 - a) z + a zs \
             (lerp, the patent's edit), spherical (slerp), z + a (zs - centre of z's class) (shift), or the least \
             movement that makes the component likely while holding the other groups (region). Several classes joined \
             by + are edited at once (toward the product of their components).",
        )
        .input(PortSpec::new("codes", port::LATENTS, "first codes to edit, N x D"))
        .input(PortSpec::new("mixture", port::MIXTURE, "the fitted mixture"))
        .param(ParamSpec::text("target", "all", "all, or comma-separated classes (group.class), + joins classes edited at once"))
        .param(ParamSpec::float("ratio", 1.0, 0.0, 4.0, "interpolation ratio a (the last column when steps > 1)"))
        .param(ParamSpec::int("steps", 1, 1, 64, "columns of ratios from 0 to ratio"))
        .param(ParamSpec::choice("mode", "lerp", &["lerp", "slerp", "shift", "region"], "how z moves: lerp (the patent's), slerp, shift by the class difference, or region (least movement that makes the target likely, other groups held)"))
        .param(ParamSpec::choice("zs", "sample", &["sample", "mean"], "control vector: a sample of the component or its mean"))
        .param(ParamSpec::float("hold", edit::REGION_HOLD, 0.0, 1000.0, "region mode: weight of keeping the other groups' component posteriors against moving less"))
        .param(ParamSpec::choice("path", "auto", &["auto", "solve", "line"], "region mode: solve each ratio from z (least movement for that ratio's target log-odds), or solve a = 1 once and move along the straight line to it (continuous in a); auto: the line for two-class groups, solve otherwise"))
        .param(ParamSpec::float("spread", 1.0, 0.0, 1.0, "sampled zs: scale of the deviation from the component mean (1: the component itself; smaller: truncated toward its mean)"))
        .param(ParamSpec::int("seed", 0, 0, i64::MAX, "seed for sampled control vectors"))
        .output(PortSpec::new("codes", port::LATENTS, "second codes, ordered target, sample, ratio"))
        .output(PortSpec::new("layout", port::TEXT, "JSON: targets, samples, steps, ratios (for grids and evaluation)"))
    }

    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let g = Gaussians::from_bundle(&io.bundle("mixture", port::MIXTURE)?, "mixture")?.to_device(ctx.device());
        let z = io.latents("codes")?.to_kind(Kind::Float).to_device(ctx.device());
        if z.size()[1] != g.dim() {
            return Err(NodeError::input("codes", format!("codes have dimension {}, the mixture {}", z.size()[1], g.dim())));
        }
        let targets = edit::parse_targets(&io.text("target")?, &g)?;
        let mode = edit::Mode::parse(&io.text("mode")?)?;
        let sample = io.text("zs")? == "sample";
        let spread = io.float("spread")?;
        let steps = io.int("steps")?;
        let ratio = io.float("ratio")?;
        let ratios: Vec<f64> = if steps == 1 { vec![ratio] } else { (0..steps).map(|i| ratio * i as f64 / (steps - 1) as f64).collect() };
        let n = z.size()[0];
        let d = g.dim();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(io.int("seed")? as u64);
        let _guard = tch::no_grad_guard();
        let mut out = Vec::new();
        if mode == edit::Mode::Region {
            let hold = io.float("hold")?;
            let path = io.text("path")?;
            let cols = g.schema.columns();
            // "auto": the straight line for targets in two-class groups, where it leaks less at the same movement,
            // and per-ratio solves where a target is a class among three or more (a middle class is a slab that
            // a straight line reaches late); docs/EVALUATION.md has the measurements.
            let on_line = |set: &[usize]| match path.as_str() {
                "line" => true,
                "solve" => false,
                _ => set.iter().all(|&c| g.schema.groups[cols[c].0].classes.len() == 2),
            };
            let (line_t, solve_t): (Vec<usize>, Vec<usize>) = (0..targets.len()).partition(|&t| on_line(&targets[t].1));
            let per_target = n * steps; // rows per target, ordered sample, ratio
            let mut blocks: Vec<Option<Tensor>> = (0..targets.len()).map(|_| None).collect();
            if !solve_t.is_empty() {
                // One batched optimisation for every target, sample and ratio.
                let sets: Vec<Vec<usize>> = solve_t.iter().flat_map(|&t| std::iter::repeat(targets[t].1.clone()).take(per_target as usize)).collect();
                let row_ratios: Vec<f64> = solve_t.iter().flat_map(|_| (0..n).flat_map(|_| ratios.iter().copied())).collect();
                let rows = z.repeat_interleave_self_int(steps, 0, None).repeat([solve_t.len() as i64, 1]);
                let x = edit::region(&g, &rows, &sets, &row_ratios, hold, 150);
                for (i, &t) in solve_t.iter().enumerate() {
                    blocks[t] = Some(x.narrow(0, i as i64 * per_target, per_target));
                }
            }
            if !line_t.is_empty() {
                // Solved once, at a = 1, for each target and sample; the ratio then moves along the straight line
                // from z through that point, so the columns of a grid change continuously with a.
                let sets: Vec<Vec<usize>> = line_t.iter().flat_map(|&t| std::iter::repeat(targets[t].1.clone()).take(n as usize)).collect();
                let zz = z.repeat([line_t.len() as i64, 1]);
                let x1 = edit::region(&g, &zz, &sets, &vec![1.0; sets.len()], hold, 150);
                let a = Tensor::from_slice(&ratios.iter().map(|&r| r as f32).collect::<Vec<_>>()).to_device(ctx.device()).view([1, steps, 1]);
                let x = (zz.unsqueeze(1) + a * (x1 - &zz).unsqueeze(1)).reshape([-1, d]);
                for (i, &t) in line_t.iter().enumerate() {
                    blocks[t] = Some(x.narrow(0, i as i64 * per_target, per_target));
                }
            }
            let blocks: Vec<Tensor> = blocks.into_iter().flatten().collect();
            out.push(Tensor::cat(&blocks, 0));
            ctx.progress(1, 1, "editing");
        }
        for (t, (_, set)) in targets.iter().enumerate().filter(|_| mode != edit::Mode::Region) {
            ctx.check_cancelled()?;
            let noise = |rng: &mut rand_chacha::ChaCha8Rng| if sample { Some(randn(rng, &[n, d]).to_device(ctx.device()) * spread) } else { None };
            let zs = edit::control_vectors(&g, set, n, noise(&mut rng).as_ref());
            let per_class: Vec<Tensor> = set.iter().map(|&k| edit::control_vectors(&g, &[k], n, noise(&mut rng).as_ref())).collect();
            let mut rows = Vec::new();
            for &a in &ratios {
                rows.push(edit::apply(&g, &z, set, a, mode, &zs, &per_class));
            }
            // n x steps x D: sample-major within the target.
            out.push(Tensor::stack(&rows, 1).reshape([n * steps, d]));
            ctx.progress(t as u64 + 1, targets.len() as u64, "editing");
        }
        let codes = Tensor::cat(&out, 0);
        let layout = serde_json::json!({
            "targets": targets.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
            "samples": n, "steps": steps, "ratios": ratios,
        });
        io.output("codes", Value::Latents(codes.into()));
        io.output("layout", Value::Text(layout.to_string().into()));
        Ok(())
    }
}

struct SaveFit;

impl Node for SaveFit {
    fn descriptor(&self) -> NodeDescriptor {
        let doc = "Saves a Gaussian group or mixture as <file>.safetensors (tensors and metadata, atomically), plus a \
                   readable copy of the metadata in <file>.json.";
        NodeDescriptor::new("subspace.save_fit", "1.0.0", "Save fit", "Method: Files", doc)
            .input(PortSpec::new("fit", port::ANY, "a gaussians or mixture bundle"))
            .param(ParamSpec::path("file", "mixture", "file stem, relative to the run's output folder"))
            .output(PortSpec::new("file", port::TEXT, "the .safetensors path written"))
            // Writes into the run's output folder, which is not part of the cache key.
            .volatile()
    }

    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let b = match io.input("fit")? {
            Value::Bundle(b) if b.kind.as_str() == port::GAUSSIANS || b.kind.as_str() == port::MIXTURE => b.clone(),
            other => return Err(NodeError::input("fit", format!("expected gaussians or mixture, got {}", other.port_type()))),
        };
        Gaussians::from_bundle(&b, "fit")?;
        // Both files pass the output-path policy (either could be a link).
        let file = io.text("file")?;
        let stem = Path::new(&file);
        let st = files::output_param(ctx, "file", &stem.with_extension("safetensors").to_string_lossy())?;
        let js = files::output_param(ctx, "file", &stem.with_extension("json").to_string_lossy())?;
        store::save(&st, &js, &b)?;
        io.output("file", Value::Text(st.display().to_string().into()));
        Ok(())
    }
}

struct LoadMixture;

impl Node for LoadMixture {
    fn descriptor(&self) -> NodeDescriptor {
        let doc = "Loads a mixture saved by Save fit, checked (finite values, float dtypes, shapes that agree with \
                   its schema), so editing needs no refit.";
        NodeDescriptor::new("subspace.load_mixture", "1.0.0", "Load mixture", "Method: Files", doc)
            .param(ParamSpec::path("file", "mixture", "file stem or .safetensors path"))
            .output(PortSpec::new("mixture", port::MIXTURE, "the mixture"))
    }

    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let file = io.text("file")?;
        let stem = PathBuf::from(file.strip_suffix(".safetensors").unwrap_or(&file));
        let st = stem.with_extension("safetensors");
        let js = stem.with_extension("json");
        let (meta, tensors) = store::load(&st, &js).map_err(|m| NodeError::param("file", m))?;
        if meta["kind"] != port::MIXTURE {
            return Err(NodeError::param("file", format!("{} holds a {}, not a mixture", st.display(), meta["kind"])));
        }
        let mut b = Bundle::new(port::MIXTURE, &meta);
        for (name, t) in tensors {
            b = b.with(&name, t);
        }
        let refuse = |m: String| NodeError::param("file", format!("{}: {m}", st.display()));
        let g = Gaussians::from_bundle_checked(&b).map_err(refuse)?;
        let extra = serde_json::Value::Object(meta.as_object().cloned().unwrap_or_default());
        io.output("mixture", Value::Bundle(g.to_device(ctx.device()).to_bundle(port::MIXTURE, extra)));
        Ok(())
    }
}

#[allow(dead_code)]
fn _curves_is_used(_: Curves) {}

struct EditScore;

impl Node for EditScore {
    fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::new(
            "subspace.edit_score",
            "1.0.0",
            "Edit score",
            "Method: Evaluation",
            "Scores rendered edits with an (independent) classifier's labels: success per target and ratio, leakage \
             into the other attribute groups (total-variation change), the re-scoring matrix, and pixel movement.",
        )
        .input(PortSpec::new("labels", port::LABELS, "labels of the rendered edits, from the evaluation classifier"))
        .input(PortSpec::new("layout", port::TEXT, "the edit layout from AttributeEdit (first ratio 0)"))
        .input(PortSpec::new("images", port::IMAGES, "the rendered edits, for pixel movement").optional())
        .param(ParamSpec::text("method", "", "a name for the edit method, carried in the report (for comparisons)"))
        .output(PortSpec::new("report", port::TEXT, "JSON: per target, per ratio: success, leakage, movement; re-scoring matrix"))
        .output(PortSpec::new("table", port::TEXT, "markdown table at the last ratio"))
    }

    fn run(&self, io: &mut NodeIo<'_>, _ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let labels = io.labels("labels")?;
        let p = labels.probs.tensor();
        let Value::Text(layout) = io.input("layout")? else { return Err(NodeError::input("layout", "expected text")) };
        let layout = score::Layout::parse(layout.as_str(), p.size()[0])?;
        let images = match io.get("images") {
            Some(_) => {
                let im = io.images("images")?;
                if im.size()[0] != p.size()[0] {
                    return Err(NodeError::input("images", format!("{} images for {} label rows", im.size()[0], p.size()[0])));
                }
                Some(im)
            }
            None => None,
        };
        let scores = score::score(&p, images.as_ref(), &layout, &labels.schema)?;
        let report = serde_json::json!({"method": io.text("method")?, "classes": labels.schema.class_names(), "targets": scores});
        io.output("report", Value::Text(report.to_string().into()));
        io.output("table", Value::Text(score::table(&scores).into()));
        Ok(())
    }
}

struct CompareEdits;

const COMPARE_INPUTS: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];

impl Node for CompareEdits {
    fn descriptor(&self) -> NodeDescriptor {
        let mut d = NodeDescriptor::new(
            "subspace.compare_edits",
            "1.0.0",
            "Compare edits",
            "Method: Evaluation",
            "Compares edit methods' EditScore reports at matched picture movement: success and leakage per class, \
             interpolated along each method's strength grid. Input a is the method judged; the others are baselines.",
        );
        for (i, name) in COMPARE_INPUTS.iter().enumerate() {
            let p = PortSpec::new(name, port::TEXT, if i == 0 { "EditScore report of the method judged" } else { "EditScore report of a baseline" });
            d = d.input(if i < 1 { p } else { p.optional() });
        }
        d.param(ParamSpec::text("budgets", "0.05,0.1,0.15", "movement budgets (RMS pixel change), comma-separated"))
            .output(PortSpec::new("report", port::TEXT, "JSON: per class and method at each budget, summary, verdicts"))
            .output(PortSpec::new("table", port::TEXT, "markdown tables"))
            .output(PortSpec::new("points", "points", "(leakage, success) per class at the middle budget, one series per method"))
    }

    fn run(&self, io: &mut NodeIo<'_>, _ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let mut reports = Vec::new();
        for name in COMPARE_INPUTS {
            if let Some(v) = io.get(name) {
                let Value::Text(t) = v else { return Err(NodeError::input(name, "expected text")) };
                let j: serde_json::Value = serde_json::from_str(t.as_str()).map_err(|e| NodeError::input(name, format!("not an EditScore report: {e}")))?;
                if j["targets"].as_array().is_none() {
                    return Err(NodeError::input(name, "not an EditScore report: no targets"));
                }
                reports.push(j);
            }
        }
        let budgets: Vec<f64> = io
            .text("budgets")?
            .split(',')
            .map(|s| s.trim().parse::<f64>().map_err(|_| NodeError::param("budgets", format!("'{s}' is not a number"))))
            .collect::<Result<_, _>>()?;
        if budgets.is_empty() || budgets.iter().any(|b| !b.is_finite() || *b < 0.0) {
            return Err(NodeError::param("budgets", "give one or more non-negative numbers"));
        }
        let (report, table, scatter) = score::compare(&reports, &budgets)?;
        let mut labels = serde_json::Map::new();
        let mut b = Bundle::new("points", &serde_json::json!({}));
        for (method, pts, names) in scatter {
            let flat: Vec<f64> = pts.iter().flat_map(|p| p.iter().copied()).collect();
            b = b.with(&method, Tensor::from_slice(&flat).view([-1, 2]).to_kind(Kind::Float));
            labels.insert(method, names.into());
        }
        let mid = budgets[budgets.len() / 2];
        b.meta = serde_json::json!({"title": format!("Edits at movement {mid}: success against leakage, one point per class"), "x_label": "leakage (mean TV change of other groups)", "y_label": "success", "labels": labels}).to_string().into();
        io.output("report", Value::Text(report.to_string().into()));
        io.output("table", Value::Text(table.into()));
        io.output("points", Value::Bundle(b));
        Ok(())
    }
}

export_plugin!(nodes: [SingleGaussFit, GmmFit, AttributeEdit, SaveFit, LoadMixture, EditScore, CompareEdits]);
