//! Fitting nodes: InterFaceGAN boundaries, GANSpace (PCA) and SeFa directions, from codes and their labels.

use super::DIRECTIONS_DOC;
use crate::directions::Directions;
use crate::linear::{self, Solver};
use serde_json::Value as Json;
use std::time::Instant;
use subspace_sdk::edits::codes_and_labels;
use subspace_sdk::prelude::*;
use subspace_sdk::tch;

const CATEGORY: &str = "Baselines: Fitting";

/// `{class: value}` as JSON, values rounded to 4 decimals (NaN becomes null).
fn per_class(names: &[String], values: impl IntoIterator<Item = f64>) -> Json {
    let round = |v: f64| if v.is_finite() { serde_json::json!((v * 1e4).round() / 1e4) } else { Json::Null };
    names.iter().cloned().zip(values.into_iter().map(round)).collect::<serde_json::Map<_, _>>().into()
}

/// InterFaceGAN's `train_boundary`, once per class.
pub struct InterFaceGan {
    codes: Input<Latents>,
    labels: Input<Labels>,
    ratio: Param<f64>,
    split: Param<f64>,
    solver: Param<Solver>,
    c: Param<f64>,
    directions: Output<Directions>,
    report: Output<String>,
}

impl Declared for InterFaceGan {
    const INFO: NodeInfo = NodeInfo {
        id: "subspace.interfacegan",
        version: "1.0.0",
        name: "InterFaceGAN boundaries",
        category: CATEGORY,
        doc: "InterFaceGAN's train_boundary per class: rank the codes by the class's score, take the top and bottom \
              fraction as positives and negatives, split them, fit a linear classifier, and keep its unit normal \
              (pointing toward the class; the intercept becomes the offset).",
    };

    fn declare(d: &mut Declare) -> Self {
        InterFaceGan {
            codes: d.input("codes", "latent codes z, N x D"),
            labels: d.input("labels", "their labels, N x K, one score per class"),
            ratio: d.float(
                "ratio",
                0.02,
                1e-4..=0.5,
                "fraction of codes taken from each end of a class's ranking \
                                                       (at least 10 each)",
            ),
            split: d.float(
                "split",
                0.7,
                0.05..=1.0,
                "fraction of the chosen codes used for training; the rest \
                                                      measures validation accuracy",
            ),
            solver: d.choice(
                "solver",
                Solver::Svm,
                "linear SVM (squared hinge + L2) or logistic regression, solved \
                                                     by Newton's method",
            ),
            c: d.float("c", 1.0, 1e-6..=1e6, "weight of the data term against 0.5 |w|^2 (larger: less regularisation)"),
            directions: d.output("directions", DIRECTIONS_DOC),
            report: d.output(
                "report",
                "JSON: validation and training accuracy per class, samples, solver \
                                        iterations, time",
            ),
        }
    }

    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let start = Instant::now();
        let (z, l, schema) = codes_and_labels(io, &self.codes, &self.labels, ctx.device())?;
        let ratio = io.read(&self.ratio)?;
        let split = io.read(&self.split)?;
        let solver = io.read(&self.solver)?;
        let c = io.read(&self.c)?;
        let n = z.size()[0];
        let names = schema.class_names();
        let k = linear::per_side(n, ratio).ok_or_else(|| {
            let each = ((n as f64) * ratio).round().max(10.0) as i64;
            let why = format!("needs {each} top and {each} bottom codes (ratio {ratio}, at least 10 each)");
            NodeError::input(self.codes.name(), format!("class {}: {why}, but there are only {n} codes", names[0]))
        })?;
        let mut rng = ctx.rng();
        let _guard = tch::no_grad_guard();
        let (mut normals, mut offsets) = (Vec::new(), Vec::new());
        let (mut val, mut train, mut iters, mut converged) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, name) in names.iter().enumerate() {
            ctx.check_cancelled()?;
            let b = linear::interfacegan_boundary(&z, &l.select(1, i as i64), k, split, solver, c, &mut rng)
                .map_err(|e| NodeError::input(self.labels.name(), format!("class {name}: {e}")))?;
            if !b.fit.converged {
                let iterations = b.fit.iterations;
                ctx.log(&format!(
                    "InterFaceGAN: the {solver} fit of {name} stopped after {iterations} iterations without converging"
                ));
            }
            normals.push(b.fit.normal.to_device(Device::Cpu));
            offsets.push(b.fit.offset);
            val.push(b.val_accuracy);
            train.push(b.train_accuracy);
            iters.push(b.fit.iterations);
            converged.push(b.fit.converged);
            ctx.progress(i as u64 + 1, names.len() as u64, "fitting boundaries");
        }
        let valid: Vec<f64> = val.iter().copied().filter(|v| v.is_finite()).collect();
        let mean_val = if valid.is_empty() {
            serde_json::Value::Null
        } else {
            (valid.iter().sum::<f64>() / valid.len() as f64).into()
        };
        let report = serde_json::json!({
            "method": "interfacegan",
            "solver": solver.name(),
            "c": c,
            "ratio": ratio,
            "split": split,
            "codes": n,
            "per_side": k,
            "train_samples": 2 * ((k as f64 * split).round().clamp(1.0, k as f64) as i64),
            "val_accuracy": per_class(&names, val.iter().copied()),
            "train_accuracy": per_class(&names, train.iter().copied()),
            "mean_val_accuracy": mean_val,
            "iterations": names.iter().cloned().zip(iters.iter().map(|&i| serde_json::json!(i)))
                .collect::<serde_json::Map<_, _>>(),
            "converged": converged.iter().all(|&c| c),
            "seconds": start.elapsed().as_secs_f64(),
        });
        let normals = Tensor::stack(&normals, 0);
        let d = Directions::new(&normals, &Tensor::from_slice(&offsets), schema, "interfacegan", report.clone())
            .map_err(NodeError::internal)?;
        io.write(&self.directions, d.to_device(ctx.device()));
        io.write(&self.report, report.to_string());
        Ok(())
    }
}

/// Matches `axes` (D x M) to the classes of `l` by the correlation of the codes' projections with the scores, and
/// builds directions: signed toward each class, offsets -n . mean(z) (signed distance measured from the codes'
/// mean). Returns the directions' normals and offsets and the per-class report.
fn matched_directions(z: &Tensor, l: &Tensor, axes: &Tensor, names: &[String]) -> (Tensor, Tensor, serde_json::Value) {
    let matches = linear::match_components(z, axes, l);
    let normals = linear::signed_directions(axes, &matches);
    let mean = z.to_kind(Kind::Double).mean_dim([0i64].as_slice(), false, Kind::Double);
    let offsets = -normals.mv(&mean.to_device(normals.device()));
    let report: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .zip(&matches)
        .map(|(n, &(i, r))| (n.clone(), serde_json::json!({"component": i, "r": (r * 1e4).round() / 1e4})))
        .collect();
    (normals, offsets, report.into())
}

/// GANSpace, as far as a TorchScript generator allows.
///
/// In an isotropic N(0, I) latent space the principal axes of the codes carry no structure (every direction has
/// the same variance, so PCA returns an arbitrary basis); that is why the original applies PCA to intermediate
/// features (StyleGAN's W space, or a layer's activations) and maps the components back. A TorchScript generator
/// exposes no intermediate layer, so this node is what a user can do with only one: PCA of the codes themselves,
/// useful when the latent space is not isotropic (a mapped or trained code space).
pub struct GanSpace {
    codes: Input<Latents>,
    labels: Input<Labels>,
    components: Param<i64>,
    directions: Output<Directions>,
    report: Output<String>,
}

impl Declared for GanSpace {
    const INFO: NodeInfo = NodeInfo {
        id: "subspace.ganspace",
        version: "1.0.0",
        name: "GANSpace (PCA)",
        category: CATEGORY,
        doc: "PCA of the codes; each class gets the principal component whose projection correlates most with its \
              score (|Pearson r|), signed toward the class. In an isotropic N(0, I) latent space the principal axes \
              are arbitrary: the original applies PCA to intermediate features, which a TorchScript generator does \
              not expose.",
    };

    fn declare(d: &mut Declare) -> Self {
        GanSpace {
            codes: d.input("codes", "latent codes z, N x D"),
            labels: d.input("labels", "their labels, to match components to classes"),
            components: d.int("components", 20, 1..=65536, "principal components considered (capped at D)"),
            directions: d.output("directions", DIRECTIONS_DOC),
            report: d.output("report", "JSON: matched component and correlation r per class, component variances"),
        }
    }

    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let start = Instant::now();
        let (z, l, schema) = codes_and_labels(io, &self.codes, &self.labels, ctx.device())?;
        let m = io.read(&self.components)?;
        let _guard = tch::no_grad_guard();
        let (axes, vars, _) = linear::pca(&z, m).map_err(|e| NodeError::input(self.codes.name(), e))?;
        let names = schema.class_names();
        let (normals, offsets, matched) = matched_directions(&z, &l, &axes, &names);
        let report = serde_json::json!({
            "method": "ganspace",
            "components": axes.size()[1],
            "variances": Vec::<f64>::try_from(&vars.to_device(Device::Cpu)).unwrap_or_default(),
            "matched": matched,
            "seconds": start.elapsed().as_secs_f64(),
        });
        let d = Directions::new(&normals, &offsets, schema, "ganspace", report.clone()).map_err(NodeError::internal)?;
        io.write(&self.directions, d.to_device(ctx.device()));
        io.write(&self.report, report.to_string());
        Ok(())
    }
}

/// SeFa: closed-form factorisation of the generator's first-layer weight (z), or of its style affine weights (W,
/// W+).
pub struct SeFa {
    generator: Input<Generator>,
    codes: Input<Latents>,
    labels: Input<Labels>,
    weight: Param<String>,
    components: Param<i64>,
    directions: Output<Directions>,
    report: Output<String>,
}

impl Declared for SeFa {
    const INFO: NodeInfo = NodeInfo {
        id: "subspace.sefa",
        // 1.1: W and W+ generators factorise their style affine weights.
        version: "1.1.0",
        name: "SeFa",
        category: CATEGORY,
        doc: "Closed-form factorisation: eigenvectors of A^T A for the generator's first-layer weight A (latent \
              dimension as columns); each class gets the eigenvector whose projection of the codes correlates most \
              with its score, signed toward the class. For a generator in W or W+ (a StyleGAN-style one), A stacks \
              the style affine weights its sidecar names (style.affine), each row normalised as in SeFa's code; in \
              W+ each eigenvector moves every layer's w alike.",
    };

    fn declare(d: &mut Declare) -> Self {
        SeFa {
            generator: d.input("generator", "the generator whose first-layer weight is factorised"),
            codes: d.input("codes", "latent codes z, N x D, to match eigenvectors to classes"),
            labels: d.input("labels", "their labels"),
            weight: d.text(
                "param",
                "",
                "name of the weight parameter; empty: the generator metadata's first_layer (z) or style.affine (W, W+)",
            ),
            components: d.int("components", 20, 1..=65536, "eigenvectors considered (capped at D)"),
            directions: d.output("directions", DIRECTIONS_DOC),
            report: d.output(
                "report",
                "JSON: parameter and shape used, matched eigenvector and r per class, \
                                        eigenvalues",
            ),
        }
    }

    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let start = Instant::now();
        let gen = io.read(&self.generator)?.0;
        let (z, l, schema) = codes_and_labels(io, &self.codes, &self.labels, ctx.device())?;
        let at = self.weight.name();
        let info: serde_json::Value = serde_json::from_str(gen.info().as_str()).unwrap_or_default();
        let space = info["space"].as_str().unwrap_or(port::space::Z).to_string();
        let style = &info["style"];
        let width = z.size()[1];
        // The latent axis of the weights, and how many layers share it (W+ codes are num_ws ws side by side).
        let (d, layers) = if space == port::space::Z {
            (width, 1)
        } else {
            let (w_dim, num_ws) = (style["w_dim"].as_i64().unwrap_or(0), style["num_ws"].as_i64().unwrap_or(0));
            let layers = if space == port::space::WPLUS { num_ws } else { 1 };
            if w_dim < 1 || layers < 1 || width != w_dim * layers {
                let why = format!(
                    "codes have dimension {width}, but generator {} in space {space} takes {} (w_dim {w_dim}, num_ws \
                     {num_ws})",
                    gen.name(),
                    w_dim * layers
                );
                return Err(NodeError::input(self.codes.name(), why));
            }
            (w_dim, layers)
        };
        let given = io.read(&self.weight)?.trim().to_string();
        let names: Vec<String> = if !given.is_empty() {
            vec![given]
        } else if space == port::space::Z {
            match info["first_layer"].as_str() {
                Some(s) if !s.is_empty() => vec![s.to_string()],
                _ => {
                    let hint = format!("set {at} to the first layer's weight parameter (e.g. 'fc.weight')");
                    let says = format!("the metadata of generator {} names no first_layer", gen.name());
                    return Err(NodeError::param(at, format!("{says}; {hint}")));
                }
            }
        } else {
            let list: Vec<String> = style["affine"]
                .as_array()
                .map(|l| l.iter().filter_map(|v| v.as_str().map(String::from)).collect())
                .unwrap_or_default();
            if list.is_empty() {
                let why = format!(
                    "the metadata of generator {} names no style.affine weights for its {space} space; list them \
                     there or set {at} to one style affine weight",
                    gen.name()
                );
                return Err(NodeError::param(at, why));
            }
            list
        };
        let _guard = tch::no_grad_guard();
        let mut rows = Vec::new();
        let mut shapes = Vec::new();
        for name in &names {
            let w = gen.parameter(name.as_str().into()).into_option().map(|t| t.into_tensor()).ok_or_else(|| {
                let why = format!("generator {} has no parameter named '{name}' (parameter not found)", gen.name());
                NodeError::param(at, why)
            })?;
            shapes.push(w.size());
            let a = linear::sefa_matrix(&w.to_device(ctx.device()), d)
                .map_err(|e| NodeError::model(format!("parameter '{name}' {e}")).at(at))?;
            // SeFa's code normalises each style channel's row before stacking the layers.
            rows.push(if space == port::space::Z {
                a
            } else {
                let norms = a.square().sum_dim_intlist([1i64].as_slice(), true, Kind::Double).sqrt().clamp_min(1e-12);
                a / norms
            });
        }
        let a = Tensor::cat(&rows, 0);
        let name = names.join(", ");
        let (axes, vals) = linear::sefa(&a, io.read(&self.components)?)
            .map_err(|e| NodeError::model(format!("parameter '{name}': {e}")))?;
        let axes = if layers > 1 { axes.repeat([layers, 1]) / (layers as f64).sqrt() } else { axes };
        let names = schema.class_names();
        let (normals, offsets, matched) = matched_directions(&z, &l, &axes, &names);
        let report = serde_json::json!({
            "method": "sefa",
            "space": space,
            "param": name,
            "shape": shapes.first(),
            "shapes": shapes,
            "matrix": a.size(),
            "components": axes.size()[1],
            "eigenvalues": Vec::<f64>::try_from(&vals.to_device(Device::Cpu)).unwrap_or_default(),
            "matched": matched,
            "seconds": start.elapsed().as_secs_f64(),
        });
        let dirs = Directions::new(&normals, &offsets, schema, "sefa", report.clone()).map_err(NodeError::internal)?;
        io.write(&self.directions, dirs.to_device(ctx.device()));
        io.write(&self.report, report.to_string());
        Ok(())
    }
}
