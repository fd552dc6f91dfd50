//! Baselines for the method's edits, on the same codes and labels (see README.md): InterFaceGAN boundaries,
//! GANSpace (PCA) and SeFa directions, a linear edit along any of them (plain or conditional), and interop with
//! InterFaceGAN's own scripts through `.npy` files.

pub mod directions;
pub mod files;
pub mod linear;

use directions::{parse_targets, Directions};
use linear::{EditMode, EditPart, Solver};
use std::path::Path;
use std::time::Instant;
use subspace_sdk::tch::{self, Device, Kind, Tensor};
use subspace_sdk::*;

const FITTING: &str = "Baselines: Fitting";
const EDITING: &str = "Baselines: Editing";
const INTEROP: &str = "Baselines: Interop";
const VERSION: &str = "1.0.0";

/// Codes (N x D, float, on the node's device) and their labels, checked against each other.
fn codes_and_labels(io: &NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<(Tensor, Tensor, LabelSchema)> {
    let z = io.latents("codes")?.to_kind(Kind::Float).to_device(ctx.device());
    let labels = io.labels("labels")?;
    let l = labels.probs.tensor().to_kind(Kind::Float).to_device(ctx.device());
    if l.dim() != 2 || l.size()[1] != labels.schema.len() as i64 {
        return Err(NodeError::input("labels", format!("labels of shape {:?} do not match their schema of {} classes", l.size(), labels.schema.len())));
    }
    if l.size()[0] != z.size()[0] {
        return Err(NodeError::input("labels", format!("{} label rows for {} codes", l.size()[0], z.size()[0])));
    }
    if labels.schema.is_empty() {
        return Err(NodeError::input("labels", "the labels' schema has no classes"));
    }
    Ok((z, l, labels.schema))
}

/// `{class: value}` as JSON, values rounded to 4 decimals (NaN becomes null).
fn per_class(names: &[String], values: impl IntoIterator<Item = f64>) -> serde_json::Value {
    names
        .iter()
        .cloned()
        .zip(values.into_iter().map(|v| if v.is_finite() { serde_json::json!((v * 1e4).round() / 1e4) } else { serde_json::Value::Null }))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn directions_port() -> PortSpec {
    PortSpec::new("directions", port::DIRECTIONS, "one unit normal per class of the labels' schema, with offsets")
}

struct InterFaceGan;

impl Node for InterFaceGan {
    fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::new(
            "subspace.interfacegan",
            VERSION,
            "InterFaceGAN boundaries",
            FITTING,
            "InterFaceGAN's train_boundary per class: rank the codes by the class's score, take the top and bottom \
             fraction as positives and negatives, split them, fit a linear classifier, and keep its unit normal \
             (pointing toward the class; the intercept becomes the offset).",
        )
        .input(PortSpec::new("codes", port::LATENTS, "latent codes z, N x D"))
        .input(PortSpec::new("labels", port::LABELS, "their labels, N x K, one score per class"))
        .param(ParamSpec::float("ratio", 0.02, 1e-4, 0.5, "fraction of codes taken from each end of a class's ranking (at least 10 each)"))
        .param(ParamSpec::float("split", 0.7, 0.05, 1.0, "fraction of the chosen codes used for training; the rest measures validation accuracy"))
        .param(ParamSpec::choice("solver", "svm", &["svm", "logistic"], "linear SVM (squared hinge + L2) or logistic regression, solved by Newton's method"))
        .param(ParamSpec::float("c", 1.0, 1e-6, 1e6, "weight of the data term against 0.5 |w|^2 (larger: less regularisation)"))
        .output(directions_port())
        .output(PortSpec::new("report", port::TEXT, "JSON: validation and training accuracy per class, samples, solver iterations, time"))
    }

    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let start = Instant::now();
        let (z, l, schema) = codes_and_labels(io, ctx)?;
        let ratio = io.float("ratio")?;
        let split = io.float("split")?;
        let solver = Solver::parse(&io.text("solver")?).map_err(|e| NodeError::param("solver", e))?;
        let c = io.float("c")?;
        let n = z.size()[0];
        let names = schema.class_names();
        let k = linear::per_side(n, ratio).ok_or_else(|| {
            let each = ((n as f64) * ratio).round().max(10.0) as i64;
            NodeError::input(
                "codes",
                format!("class {}: needs {each} top and {each} bottom codes (ratio {ratio}, at least 10 each), but there are only {n} codes", names[0]),
            )
        })?;
        let mut rng = ctx.rng();
        let _guard = tch::no_grad_guard();
        let (mut normals, mut offsets) = (Vec::new(), Vec::new());
        let (mut val, mut train, mut iters, mut converged) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, name) in names.iter().enumerate() {
            ctx.check_cancelled()?;
            let b = linear::interfacegan_boundary(&z, &l.select(1, i as i64), k, split, solver, c, &mut rng)
                .map_err(|e| NodeError::input("labels", format!("class {name}: {e}")))?;
            if !b.fit.converged {
                ctx.log(&format!("InterFaceGAN: the {} fit of {name} stopped after {} iterations without converging", solver.name(), b.fit.iterations));
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
            "mean_val_accuracy": if valid.is_empty() { serde_json::Value::Null } else { (valid.iter().sum::<f64>() / valid.len() as f64).into() },
            "iterations": names.iter().cloned().zip(iters.iter().map(|&i| serde_json::json!(i))).collect::<serde_json::Map<_, _>>(),
            "converged": converged.iter().all(|&c| c),
            "seconds": start.elapsed().as_secs_f64(),
        });
        let d = Directions::new(&Tensor::stack(&normals, 0), &Tensor::from_slice(&offsets), schema, "interfacegan", report.clone())
            .map_err(NodeError::internal)?
            .to_device(ctx.device());
        io.output("directions", Value::Bundle(d.to_bundle()));
        io.output("report", Value::Text(report.to_string().into()));
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
struct GanSpace;

impl Node for GanSpace {
    fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::new(
            "subspace.ganspace",
            VERSION,
            "GANSpace (PCA)",
            FITTING,
            "PCA of the codes; each class gets the principal component whose projection correlates most with its \
             score (|Pearson r|), signed toward the class. In an isotropic N(0, I) latent space the principal axes are \
             arbitrary: the original applies PCA to intermediate features, which a TorchScript generator does not expose.",
        )
        .input(PortSpec::new("codes", port::LATENTS, "latent codes z, N x D"))
        .input(PortSpec::new("labels", port::LABELS, "their labels, to match components to classes"))
        .param(ParamSpec::int("components", 20, 1, 65536, "principal components considered (capped at D)"))
        .output(directions_port())
        .output(PortSpec::new("report", port::TEXT, "JSON: matched component and correlation r per class, component variances"))
    }

    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let start = Instant::now();
        let (z, l, schema) = codes_and_labels(io, ctx)?;
        let m = io.int("components")?;
        let _guard = tch::no_grad_guard();
        let (axes, vars, _) = linear::pca(&z, m).map_err(|e| NodeError::input("codes", e))?;
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
        io.output("directions", Value::Bundle(d.to_device(ctx.device()).to_bundle()));
        io.output("report", Value::Text(report.to_string().into()));
        Ok(())
    }
}

struct SeFa;

impl Node for SeFa {
    fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::new(
            "subspace.sefa",
            VERSION,
            "SeFa",
            FITTING,
            "Closed-form factorisation: eigenvectors of A^T A for the generator's first-layer weight A (latent \
             dimension as columns); each class gets the eigenvector whose projection of the codes correlates most \
             with its score, signed toward the class.",
        )
        .input(PortSpec::new("generator", port::GENERATOR, "the generator whose first-layer weight is factorised"))
        .input(PortSpec::new("codes", port::LATENTS, "latent codes z, N x D, to match eigenvectors to classes"))
        .input(PortSpec::new("labels", port::LABELS, "their labels"))
        .param(ParamSpec::text("param", "", "name of the weight parameter; empty: the generator metadata's first_layer"))
        .param(ParamSpec::int("components", 20, 1, 65536, "eigenvectors considered (capped at D)"))
        .output(directions_port())
        .output(PortSpec::new("report", port::TEXT, "JSON: parameter and shape used, matched eigenvector and r per class, eigenvalues"))
    }

    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let start = Instant::now();
        let gen = io.model("generator")?;
        let (z, l, schema) = codes_and_labels(io, ctx)?;
        let mut name = io.text("param")?.trim().to_string();
        if name.is_empty() {
            let info: serde_json::Value = serde_json::from_str(gen.info().as_str()).unwrap_or_default();
            name = match info["first_layer"].as_str() {
                Some(s) if !s.is_empty() => s.to_string(),
                _ => {
                    return Err(NodeError::param(
                        "param",
                        format!("the metadata of generator {} names no first_layer; set param to the first layer's weight parameter (e.g. 'fc.weight')", gen.name()),
                    ))
                }
            };
        }
        let w = match gen.parameter(name.as_str().into()) {
            abi_stable::std_types::ROption::RSome(t) => t.into_tensor(),
            abi_stable::std_types::ROption::RNone => {
                return Err(NodeError::param("param", format!("generator {} has no parameter named '{name}' (parameter not found)", gen.name())))
            }
        };
        let _guard = tch::no_grad_guard();
        let d = z.size()[1];
        let a = linear::sefa_matrix(&w.to_device(ctx.device()), d).map_err(|e| NodeError::model(format!("parameter '{name}' {e}")).at("param"))?;
        let (axes, vals) = linear::sefa(&a, io.int("components")?).map_err(|e| NodeError::model(format!("parameter '{name}': {e}")))?;
        let names = schema.class_names();
        let (normals, offsets, matched) = matched_directions(&z, &l, &axes, &names);
        let report = serde_json::json!({
            "method": "sefa",
            "param": name,
            "shape": w.size(),
            "matrix": a.size(),
            "components": axes.size()[1],
            "eigenvalues": Vec::<f64>::try_from(&vals.to_device(Device::Cpu)).unwrap_or_default(),
            "matched": matched,
            "seconds": start.elapsed().as_secs_f64(),
        });
        let dirs = Directions::new(&normals, &offsets, schema, "sefa", report.clone()).map_err(NodeError::internal)?;
        io.output("directions", Value::Bundle(dirs.to_device(ctx.device()).to_bundle()));
        io.output("report", Value::Text(report.to_string().into()));
        Ok(())
    }
}

/// The edit parts of one target: for each of its classes, the normal, offset and direction (the normal, or for
/// a conditional edit the normal projected off every normal of the groups the target does not edit, renormalised).
pub fn edit_parts(dirs: &Directions, set: &[usize], conditional: bool) -> Result<Vec<EditPart>, String> {
    let cols = dirs.schema.columns();
    let names = dirs.schema.class_names();
    let groups: Vec<usize> = set.iter().map(|&c| cols[c].0).collect();
    let normals = dirs.normals.to_kind(Kind::Double);
    let others: Vec<i64> = (0..cols.len()).filter(|&j| !groups.contains(&cols[j].0)).map(|j| j as i64).collect();
    let basis = Tensor::from_slice(&others).to_device(normals.device());
    let other_normals = normals.index_select(0, &basis);
    let mut parts = Vec::new();
    for &c in set {
        let n = normals.get(c as i64);
        let direction = if conditional && !others.is_empty() {
            let p = linear::project_out(&n, &other_normals);
            let norm = p.norm().double_value(&[]);
            if norm < 1e-6 {
                return Err(format!("the normal of {} lies in the span of the other groups' normals: a conditional edit leaves nothing to move along", names[c]));
            }
            p / norm
        } else {
            n.shallow_clone()
        };
        parts.push(EditPart { normal: n, offset: dirs.offsets.double_value(&[c as i64]), direction });
    }
    Ok(parts)
}

struct DirectionEdit;

impl Node for DirectionEdit {
    fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::new(
            "subspace.direction_edit",
            VERSION,
            "Linear edit",
            EDITING,
            "Moves codes along directions (InterFaceGAN's edit): shift by d along the unit normal, or to signed \
             distance d from the boundary; conditional edits first project the normal off every other attribute \
             group's normals. Outputs codes ordered target, sample, step and a layout Edit score reads.",
        )
        .input(PortSpec::new("codes", port::LATENTS, "codes to edit, N x D"))
        .input(PortSpec::new("directions", port::DIRECTIONS, "directions from a baseline node or an import"))
        .param(ParamSpec::text("target", "all", "all, or comma-separated classes (group.class); + joins classes edited together"))
        .param(ParamSpec::float("distance", 3.0, -1000.0, 1000.0, "final distance d along the normal (shift) or signed distance to reach (to_boundary)"))
        .param(ParamSpec::int("steps", 6, 1, 64, "distances linspace(0, distance, steps); distance 0 is the unedited code in both modes"))
        .param(ParamSpec::bool("conditional", false, "project each target normal off all other attribute groups' normals first (InterFaceGAN's conditional edit)"))
        .param(ParamSpec::choice("mode", "shift", &["shift", "to_boundary"], "shift: z + d n; to_boundary: move along n until n . z + offset = d"))
        .output(PortSpec::new("codes", port::LATENTS, "edited codes, ordered target, sample, step"))
        .output(PortSpec::new("layout", port::TEXT, "JSON {targets, samples, steps, ratios = distances}, as AttributeEdit writes"))
    }

    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let z = io.latents("codes")?.to_kind(Kind::Float).to_device(ctx.device());
        let dirs = Directions::from_bundle(&io.bundle("directions", port::DIRECTIONS)?, "directions")?.to_device(ctx.device());
        let (n, d) = (z.size()[0], z.size()[1]);
        if d != dirs.dim() {
            return Err(NodeError::input("codes", format!("codes have dimension {d}, but the directions have dimension {}", dirs.dim())));
        }
        let targets = parse_targets(&io.text("target")?, &dirs.schema)?;
        let mode = EditMode::parse(&io.text("mode")?).map_err(|e| NodeError::param("mode", e))?;
        let conditional = io.bool("conditional")?;
        let distance = io.float("distance")?;
        let steps = io.int("steps")?;
        let dists = linear::distances(distance, steps);
        let _guard = tch::no_grad_guard();
        let mut out = Vec::new();
        for (t, (name, set)) in targets.iter().enumerate() {
            ctx.check_cancelled()?;
            let parts = edit_parts(&dirs, set, conditional).map_err(|e| NodeError::param("target", e))?;
            let edited = linear::linear_edit(&z, &parts, &dists, mode).map_err(|e| NodeError::internal(format!("editing {name}: {e}")))?;
            out.push(edited.reshape([n * dists.len() as i64, d]));
            ctx.progress(t as u64 + 1, targets.len() as u64, "editing");
        }
        let codes = Tensor::cat(&out, 0);
        let layout = serde_json::json!({
            "targets": targets.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
            "samples": n,
            "steps": dists.len(),
            "ratios": dists,
        });
        io.output("codes", Value::Latents(codes.into()));
        io.output("layout", Value::Text(layout.to_string().into()));
        Ok(())
    }
}

struct ExportCodes;

impl Node for ExportCodes {
    fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::new(
            "subspace.export_codes",
            VERSION,
            "Export codes and scores",
            INTEROP,
            "Writes codes.npy (N x D float32), one <group>.<class>.npy of scores (N x 1 float32) per class (the files \
             InterFaceGAN's train_boundary reads), codes_labels.safetensors and schema.json, each atomically.",
        )
        .input(PortSpec::new("codes", port::LATENTS, "latent codes, N x D"))
        .input(PortSpec::new("labels", port::LABELS, "their labels, N x K"))
        .param(ParamSpec::path("folder", "export", "folder to write, relative to the run's output folder"))
        .output(PortSpec::new("folder", port::TEXT, "the folder written"))
        // Writes into the run's output folder, which is not part of the cache key.
        .volatile()
    }

    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let z = io.latents("codes")?;
        let labels = io.labels("labels")?;
        let l = labels.probs.tensor();
        if l.dim() != 2 || l.size()[0] != z.size()[0] || l.size()[1] != labels.schema.len() as i64 {
            return Err(NodeError::input("labels", format!("labels of shape {:?} for {} codes and a schema of {} classes", l.size(), z.size()[0], labels.schema.len())));
        }
        let folder = io.text("folder")?;
        // A folder, so a trailing '/' is allowed; otherwise the SDK's output-path policy.
        let dir = subspace_sdk::files::output_param(ctx, "folder", folder.trim_end_matches('/'))?;
        let written = files::export(&dir, &z, &l, &labels.schema).map_err(|e| e.at("folder"))?;
        ctx.log(&format!("exported {} files to {}", written.len(), dir.display()));
        io.output("folder", Value::Text(dir.display().to_string().into()));
        Ok(())
    }
}

struct ImportDirections;

impl Node for ImportDirections {
    fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::new(
            "subspace.import_directions",
            VERSION,
            "Import boundaries",
            INTEROP,
            "Reads boundaries written by InterFaceGAN (<folder>/<group>.<class>.npy, a unit normal of shape (1, D) or \
             (D,)) as directions, grouped by <folder>/schema.json when present, else by each name's group.",
        )
        .param(ParamSpec::path("folder", "", "folder holding <group>.<class>.npy boundaries (and optionally schema.json)"))
        .param(ParamSpec::text("classes", "", "comma-separated group.class names to read; empty: every class of schema.json"))
        .output(directions_port())
    }

    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let folder = io.text("folder")?;
        if folder.trim().is_empty() {
            return Err(NodeError::param("folder", "name the folder holding the boundaries"));
        }
        let d = files::import(Path::new(folder.trim()), &io.text("classes")?)?;
        io.output("directions", Value::Bundle(d.to_device(ctx.device()).to_bundle()));
        Ok(())
    }
}

export_plugin!(nodes: [InterFaceGan, GanSpace, SeFa, DirectionEdit, ExportCodes, ImportDirections]);

#[cfg(test)]
mod tests {
    use super::*;
    use directions::make_schema;

    #[test]
    fn every_port_and_param_is_described() {
        for node in [&InterFaceGan as &dyn Node, &GanSpace, &SeFa, &DirectionEdit, &ExportCodes, &ImportDirections] {
            let d = node.descriptor();
            assert!(d.id.starts_with("subspace."));
            assert_eq!(d.version.as_str(), "1.0.0");
            assert!(d.category.starts_with("Baselines"));
            for p in d.inputs.iter().chain(d.outputs.iter()) {
                assert!(!p.description.is_empty(), "{}: port {}", d.id, p.name);
            }
            for p in d.params.iter() {
                assert!(!p.description.is_empty(), "{}: param {}", d.id, p.name);
                p.check(&p.default).unwrap();
            }
        }
        assert!(ExportCodes.descriptor().volatile);
    }

    /// The conditional edit of hair.red moves along a direction orthogonal to every other group's normal, and
    /// leaves those groups' signed distances unchanged.
    #[test]
    fn conditional_edit_leaves_other_groups_alone() {
        let schema = make_schema(vec![
            ("hair".into(), vec!["black".into(), "red".into()]),
            ("smile".into(), vec!["yes".into(), "no".into()]),
            ("glasses".into(), vec!["yes".into(), "no".into()]),
            ("age".into(), vec!["young".into()]),
        ]);
        let normals = Tensor::randn([7, 20], (Kind::Double, Device::Cpu));
        let offsets = Tensor::zeros([7], (Kind::Float, Device::Cpu));
        let dirs = Directions::new(&normals, &offsets, schema, "test", serde_json::json!({})).unwrap();
        let targets = parse_targets("hair.red,smile.yes+glasses.no", &dirs.schema).unwrap();
        let z = Tensor::randn([30, 20], (Kind::Float, Device::Cpu));
        let n = dirs.normals.to_kind(Kind::Double);
        for (_, set) in &targets {
            let parts = edit_parts(&dirs, set, true).unwrap();
            let edited = linear::linear_edit(&z, &parts, &[0.0, 3.0], EditMode::Shift).unwrap();
            let delta = (edited.select(1, 1) - edited.select(1, 0)).to_kind(Kind::Double);
            let groups: Vec<usize> = set.iter().map(|&c| dirs.schema.columns()[c].0).collect();
            for j in 0..7 {
                if groups.contains(&dirs.schema.columns()[j].0) {
                    continue;
                }
                let moved = delta.mv(&n.get(j as i64)).abs().max().double_value(&[]);
                assert!(moved < 1e-4, "class {j} moved by {moved}");
            }
        }
        // Without conditioning the other groups do move.
        let parts = edit_parts(&dirs, &targets[0].1, false).unwrap();
        let edited = linear::linear_edit(&z, &parts, &[3.0], EditMode::Shift).unwrap();
        let delta = (edited.select(1, 0) - &z).to_kind(Kind::Double);
        assert!(delta.mv(&n.get(2)).abs().max().double_value(&[]) > 1e-3);
    }
}
