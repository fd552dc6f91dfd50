//! Loading TorchScript models with their sidecars, and running them.

use serde::Deserialize;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use subspace_sdk::abi_stable::{
    sabi_trait::TD_CanDowncast,
    std_types::{RArc, RErr, ROk, ROption, RResult, RStr, RString},
};
use subspace_sdk::tch::{self, CModule, Kind, Tensor};
use subspace_sdk::*;

/// Ceiling on the elements of any tensor made from a parameter or metadata (8 GiB of f32). A failed allocation
/// aborts the process, so absurd sizes are refused with an error before anything is allocated.
pub const MAX_ELEMENTS: i64 = 1 << 31;
/// Ceiling on one sample a sidecar declares (a code, an image: 64 MiB of f32); also keeps the load probe small.
pub const MAX_SAMPLE_ELEMENTS: i64 = 1 << 24;
/// Sidecars are small JSON files; a larger one is refused before it is read.
const MAX_SIDECAR_BYTES: u64 = 1 << 20;
/// Codes or images in the forward pass that checks a model against its sidecar at load.
const PROBE: i64 = 2;

/// The product of `factors`, or None when it overflows or exceeds `limit`.
pub fn product(factors: &[i64], limit: i64) -> Option<i64> {
    factors.iter().try_fold(1i64, |acc, &f| acc.checked_mul(f).filter(|p| (0..=limit).contains(p)))
}

/// Folders searched, in order, for `default/<file>`: $SUBSPACE_MODELS, `models/default` under the working
/// directory, `models/default` in the four folders above the running binary, and the repository this plugin was
/// built in.
pub fn default_roots() -> Vec<PathBuf> {
    let mut places: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("SUBSPACE_MODELS") {
        places.push(PathBuf::from(d));
    }
    places.push(PathBuf::from("models/default"));
    if let Ok(exe) = std::env::current_exe() {
        // target/release/subspace -> repository root
        for up in exe.ancestors().skip(1).take(4) {
            places.push(up.join("models/default"));
        }
    }
    places.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/default"));
    places
}

fn refuse(param: &str, why: impl std::fmt::Display) -> NodeError {
    NodeError::param("model", format!("model '{param}': {why}"))
}

/// Finds a model file (the policy is in docs/MODELS.md). `default/<file>` names the shipped world: `<file>` is a
/// relative path of plain names whose real path stays inside the folder it was found in. Anything else is the
/// user's own file, absolute or relative to the working directory. Either way it must be a regular file with its
/// `.json` sidecar beside it.
pub fn resolve(param: &str) -> Result<PathBuf, NodeError> {
    match param.strip_prefix("default/") {
        Some(rest) => resolve_shipped(param, rest),
        None if param.is_empty() => Err(refuse(param, "empty; name a TorchScript file or default/<file>")),
        None => {
            let p = PathBuf::from(param);
            check_model_file(param, &p)?;
            Ok(p)
        }
    }
}

fn resolve_shipped(param: &str, rest: &str) -> Result<PathBuf, NodeError> {
    let rel = Path::new(rest);
    if rest.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(refuse(
            param,
            "after default/ only a relative path of plain names inside the shipped models folder is allowed \
             (no '..', no '.', no root)",
        ));
    }
    let places = default_roots();
    for root in &places {
        let candidate = root.join(rel);
        // A dangling or escaping link is refused here, not skipped for a later folder.
        if candidate.symlink_metadata().is_err() {
            continue;
        }
        let real_root = root.canonicalize().map_err(|e| refuse(param, format!("{}: {e}", root.display())))?;
        let inside = |p: &Path| -> Result<PathBuf, NodeError> {
            let real = p.canonicalize().map_err(|e| refuse(param, format!("{} cannot be resolved: {e}", p.display())))?;
            if !real.starts_with(&real_root) {
                return Err(refuse(
                    param,
                    format!(
                        "{} resolves to {}, outside the models folder {}; links out of it are not followed",
                        p.display(),
                        real.display(),
                        real_root.display()
                    ),
                ));
            }
            Ok(real)
        };
        let real = inside(&candidate)?;
        check_model_file(param, &real)?;
        inside(&sidecar(&real))?;
        return Ok(real);
    }
    let list: Vec<String> = places.iter().map(|p| p.display().to_string()).collect();
    Err(refuse(param, format!("no shipped model {rest}; looked in {} (set SUBSPACE_MODELS)", list.join(", "))))
}

/// A regular file, not a sidecar itself, with a regular `.json` sidecar beside it.
fn check_model_file(param: &str, p: &Path) -> Result<(), NodeError> {
    let md = std::fs::metadata(p).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => refuse(param, format!("{} does not exist", p.display())),
        _ => refuse(param, format!("{} cannot be read: {e}", p.display())),
    })?;
    if md.is_dir() {
        return Err(refuse(param, format!("{} is a folder; name the TorchScript file inside it", p.display())));
    }
    if !md.is_file() {
        return Err(refuse(param, format!("{} is not a regular file", p.display())));
    }
    if p.extension().is_some_and(|e| e == "json") {
        return Err(refuse(param, format!("{} is a sidecar; name the TorchScript file beside it", p.display())));
    }
    let side = sidecar(p);
    match std::fs::metadata(&side) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(refuse(param, format!("its sidecar {} is not a regular file", side.display()))),
        Err(_) => {
            Err(refuse(param, format!("no sidecar {} beside it (the model's metadata, docs/MODELS.md)", side.display())))
        }
    }
}

// Sidecar keys are checked: a misspelt key is refused rather than silently replaced by a default.
// `training` and `description` are free-form information (the shipped world records its training there).

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct Latent {
    dim: i64,
    #[serde(default = "normal")]
    distribution: String,
}
fn normal() -> String {
    "normal".into()
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct Space {
    #[serde(default = "three")]
    channels: i64,
    height: i64,
    width: i64,
    #[serde(default = "unit")]
    range: [f64; 2],
    /// Per-channel normalisation applied after mapping to `range` (classifiers).
    #[serde(default)]
    mean: Option<Vec<f64>>,
    #[serde(default)]
    std: Option<Vec<f64>>,
}
fn three() -> i64 {
    3
}
fn unit() -> [f64; 2] {
    [0.0, 1.0]
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct GeneratorMeta {
    format: String,
    #[serde(default)]
    name: String,
    latent: Latent,
    output: Space,
    /// Read by SeFa through the model's info.
    #[serde(default)]
    #[allow(dead_code)]
    first_layer: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    training: Option<serde_json::Value>,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<serde_json::Value>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Group {
    name: String,
    classes: Vec<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct ClassifierMeta {
    format: String,
    #[serde(default)]
    name: String,
    input: Space,
    #[serde(default = "probabilities")]
    output: String,
    groups: Vec<Group>,
    #[serde(default)]
    #[allow(dead_code)]
    training: Option<serde_json::Value>,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<serde_json::Value>,
}
fn probabilities() -> String {
    "probabilities".into()
}

/// A loaded TorchScript model and what its sidecar says about it.
pub struct Inner {
    module: CModule,
    pub kind: &'static str,
    pub name: String,
    pub path: PathBuf,
    /// The sidecar the metadata came from.
    pub sidecar: PathBuf,
    pub device: tch::Device,
    pub info: serde_json::Value,
    pub latent_dim: i64,
    pub distribution: String,
    space: Space,
    pub schema: Option<LabelSchema>,
    logits: bool,
}

/// Shared handle; the SDK's `Model` trait object wraps it.
#[derive(Clone)]
pub struct TorchModel(pub Arc<Inner>);

impl std::fmt::Debug for TorchModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.0.kind, self.0.path.display())
    }
}

impl TorchModel {
    pub fn torch(&self) -> &Inner {
        &self.0
    }
    pub fn into_ref(self) -> ModelRef {
        ModelRef::from_ptr(RArc::new(self), TD_CanDowncast)
    }
}

fn sidecar(path: &Path) -> PathBuf {
    path.with_extension("json")
}

/// The sidecar parsed as `T`, and as plain JSON (the model's info).
fn read_sidecar<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<(T, serde_json::Value), NodeError> {
    let meta = sidecar(path);
    let bad = |why: String| NodeError::model(format!("{}: {why}", meta.display()));
    let len = std::fs::metadata(&meta).map_err(|e| bad(format!("cannot read the model's metadata: {e}")))?.len();
    if len > MAX_SIDECAR_BYTES {
        return Err(bad(format!("{len} bytes; a sidecar may have at most {MAX_SIDECAR_BYTES}")));
    }
    let text = std::fs::read_to_string(&meta).map_err(|e| bad(format!("cannot read the model's metadata: {e}")))?;
    let parsed = serde_json::from_str(&text).map_err(|e| bad(format!("invalid metadata: {e}")))?;
    let info = serde_json::from_str(&text).map_err(|e| bad(format!("invalid metadata: {e}")))?;
    Ok((parsed, info))
}

/// Checks the sizes and values of an image space (`key` is `output` or `input`) before anything is allocated.
fn check_space(side: &Path, key: &str, s: &Space, normalisation: bool) -> Result<(), NodeError> {
    let bad = |why: String| Err(NodeError::model(format!("{}: {why}", side.display())));
    for (name, v) in [("channels", s.channels), ("height", s.height), ("width", s.width)] {
        if !(1..=MAX_SAMPLE_ELEMENTS).contains(&v) {
            return bad(format!("{key}.{name} is {v}; it must be 1 to {MAX_SAMPLE_ELEMENTS}"));
        }
    }
    if product(&[s.channels, s.height, s.width], MAX_SAMPLE_ELEMENTS).is_none() {
        return bad(format!(
            "{key}.channels x {key}.height x {key}.width = {} x {} x {} is beyond the limit of {MAX_SAMPLE_ELEMENTS} \
             elements per image",
            s.channels, s.height, s.width
        ));
    }
    let [lo, hi] = s.range;
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        return bad(format!("{key}.range [{lo}, {hi}] must be two finite numbers, low before high"));
    }
    if !normalisation && (s.mean.is_some() || s.std.is_some()) {
        return bad(format!("{key}.mean and {key}.std apply to a classifier's input only"));
    }
    for (name, v) in [("mean", &s.mean), ("std", &s.std)] {
        if let Some(v) = v {
            if v.len() as i64 != s.channels || v.iter().any(|x| !x.is_finite()) {
                return bad(format!("{key}.{name} must list one finite number per channel ({})", s.channels));
            }
        }
    }
    if s.mean.is_some() != s.std.is_some() {
        return bad(format!("{key}.mean and {key}.std go together"));
    }
    if s.std.as_ref().is_some_and(|v| v.contains(&0.0)) {
        return bad(format!("{key}.std must not be zero"));
    }
    Ok(())
}

fn load_module(path: &Path, device: tch::Device) -> Result<CModule, NodeError> {
    let mut m = CModule::load_on_device(path, device)
        .map_err(|e| NodeError::model(format!("{}: not a loadable TorchScript module: {e}", path.display())).at("model"))?;
    m.set_eval();
    // Frozen weights: gradients flow to the inputs only.
    if let Ok(params) = m.named_parameters() {
        for (_, p) in params {
            let _ = p.set_requires_grad(false);
        }
    }
    Ok(m)
}

fn cache_key(kind: &str, path: &Path, device: tch::Device) -> String {
    let p = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    format!("{kind}:{}:{device:?}", p.display())
}

/// The `TorchModel` behind a model handle made by this plugin (a handle from elsewhere is reloaded by kind).
fn downcast(m: &ModelRef) -> Option<TorchModel> {
    m.obj.downcast_as::<TorchModel>().ok().cloned()
}

/// The line of a torch error that says what went wrong, without the TorchScript traceback.
fn torch_reason(e: &tch::TchError) -> String {
    let text = e.to_string();
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let line = lines.iter().rev().find(|l| l.contains("Error:")).or(lines.first()).copied().unwrap_or("");
    let line: String = line.chars().take(300).collect();
    line
}

/// Loads (or takes from the host's cache) the generator at `path`; its sidecar is checked, then the model is run
/// once on a tiny batch and its output compared with the sidecar.
pub fn load_generator(ctx: &Ctx<'_, '_>, path: &Path) -> Result<TorchModel, NodeError> {
    let device = ctx.device();
    let m = ctx.shared_model(&cache_key(port::GENERATOR, path, device), || {
        let side = sidecar(path);
        let bad = |why: String| NodeError::model(format!("{}: {why}", side.display()));
        let (meta, info): (GeneratorMeta, _) = read_sidecar(path)?;
        if !meta.format.starts_with("subspace.generator/") {
            return Err(bad(format!("format is '{}', expected subspace.generator/1", meta.format)));
        }
        if !(1..=MAX_SAMPLE_ELEMENTS).contains(&meta.latent.dim) {
            return Err(bad(format!("latent.dim is {}; it must be 1 to {MAX_SAMPLE_ELEMENTS}", meta.latent.dim)));
        }
        if !["normal", "uniform"].contains(&meta.latent.distribution.as_str()) {
            return Err(bad(format!("latent.distribution '{}' is not normal or uniform", meta.latent.distribution)));
        }
        check_space(&side, "output", &meta.output, false)?;
        let module = load_module(path, device)?;
        let inner = Inner {
            module,
            kind: port::GENERATOR,
            name: if meta.name.is_empty() { path.display().to_string() } else { meta.name },
            path: path.to_path_buf(),
            sidecar: side.clone(),
            device,
            info,
            latent_dim: meta.latent.dim,
            distribution: meta.latent.distribution,
            space: meta.output,
            schema: None,
            logits: false,
        };
        inner.probe()?;
        Ok(TorchModel(Arc::new(inner)).into_ref())
    })?;
    downcast(&m).ok_or_else(|| NodeError::internal("cached generator is not a TorchScript model of this plugin"))
}

/// Loads (or takes from the host's cache) the classifier at `path`; checked against a probe like a generator.
pub fn load_classifier(ctx: &Ctx<'_, '_>, path: &Path) -> Result<TorchModel, NodeError> {
    let device = ctx.device();
    let m = ctx.shared_model(&cache_key(port::CLASSIFIER, path, device), || {
        let side = sidecar(path);
        let bad = |why: String| NodeError::model(format!("{}: {why}", side.display()));
        let (meta, info): (ClassifierMeta, _) = read_sidecar(path)?;
        if !meta.format.starts_with("subspace.classifier/") {
            return Err(bad(format!("format is '{}', expected subspace.classifier/1", meta.format)));
        }
        if meta.groups.is_empty() || meta.groups.iter().any(|g| g.classes.is_empty()) {
            return Err(bad("the label schema needs groups with classes".into()));
        }
        let logits = match meta.output.as_str() {
            "probabilities" => false,
            "logits" => true,
            other => return Err(bad(format!("output '{other}' must be 'probabilities' or 'logits'"))),
        };
        check_space(&side, "input", &meta.input, true)?;
        let module = load_module(path, device)?;
        let groups: Vec<LabelGroup> = meta
            .groups
            .into_iter()
            .map(|g| LabelGroup { name: g.name.into(), classes: g.classes.into_iter().map(RString::from).collect() })
            .collect();
        let inner = Inner {
            module,
            kind: port::CLASSIFIER,
            name: if meta.name.is_empty() { path.display().to_string() } else { meta.name },
            path: path.to_path_buf(),
            sidecar: side.clone(),
            device,
            info,
            latent_dim: 0,
            distribution: String::new(),
            space: meta.input,
            schema: Some(LabelSchema { groups: groups.into() }),
            logits,
        };
        inner.probe()?;
        Ok(TorchModel(Arc::new(inner)).into_ref())
    })?;
    downcast(&m).ok_or_else(|| NodeError::internal("cached classifier is not a TorchScript model of this plugin"))
}

impl Inner {
    fn forward(&self, x: &Tensor) -> Result<Tensor, NodeError> {
        self.module
            .forward_ts(&[x])
            .map_err(|e| NodeError::model(format!("{}: forward failed: {}", self.path.display(), torch_reason(&e))))
    }

    /// Elements of one image the generator renders (or the classifier takes): C x H x W, checked at load.
    pub fn image_elements(&self) -> i64 {
        self.space.channels * self.space.height * self.space.width
    }

    /// Runs the model once on a tiny batch and compares what comes out with the sidecar, so that a wrong
    /// `latent.dim`, image size or class count is refused at load, naming the sidecar.
    fn probe(&self) -> Result<(), NodeError> {
        let _guard = tch::no_grad_guard();
        let side = self.sidecar.display().to_string();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if self.kind == port::GENERATOR { self.probe_generator(&side) } else { self.probe_classifier(&side) }
        }));
        r.unwrap_or_else(|_| Err(NodeError::model(format!("{side}: the model panicked when probed at load"))))
    }

    fn probe_generator(&self, side: &str) -> Result<(), NodeError> {
        let (dim, s) = (self.latent_dim, &self.space);
        let mut rng: rand_chacha::ChaCha8Rng = rand::SeedableRng::seed_from_u64(0);
        let z = sample_codes(&mut rng, PROBE, dim, &self.distribution, 0.0)?.to_device(self.device);
        let out = self.module.forward_ts(&[z]).map_err(|e| {
            NodeError::model(format!(
                "{side}: the model does not take {PROBE} codes of latent.dim {dim}; check latent.dim ({})",
                torch_reason(&e)
            ))
        })?;
        let size = out.size();
        if size.len() != 4 || size[0] != PROBE {
            return Err(NodeError::model(format!(
                "{side}: for {PROBE} codes the model returns shape {size:?}, not {PROBE} x output.channels x \
                 output.height x output.width"
            )));
        }
        let declared = [("channels", s.channels, size[1]), ("height", s.height, size[2]), ("width", s.width, size[3])];
        let wrong: Vec<String> = declared
            .iter()
            .filter(|(_, declared, got)| declared != got)
            .map(|(key, declared, got)| format!("output.{key} is {declared} but the model renders {got}"))
            .collect();
        if !wrong.is_empty() {
            return Err(NodeError::model(format!("{side}: {}", wrong.join("; "))));
        }
        let out = out.to_kind(Kind::Double);
        if out.isfinite().all().int64_value(&[]) == 0 {
            return Err(NodeError::model(format!("{side}: the model renders NaN or infinite values")));
        }
        // Loose: real generators overshoot their range a little; a wrong scale (0..255 for -1..1) is far out.
        let ([lo, hi], min, max) = (s.range, out.min().double_value(&[]), out.max().double_value(&[]));
        let slack = hi - lo;
        if min < lo - slack || max > hi + slack {
            return Err(NodeError::model(format!(
                "{side}: the model renders values in [{min:.3}, {max:.3}], far outside output.range [{lo}, {hi}]"
            )));
        }
        Ok(())
    }

    fn probe_classifier(&self, side: &str) -> Result<(), NodeError> {
        let s = &self.space;
        let n = PROBE * self.image_elements();
        let images =
            Tensor::linspace(0.0, 1.0, n, (Kind::Float, self.device)).view([PROBE, s.channels, s.height, s.width]);
        let out = self.label(&images).map_err(|e| {
            NodeError::model(format!("{side}: probe on {PROBE} images of the declared input size: {}", e.message))
        })?;
        if out.isfinite().all().int64_value(&[]) == 0 {
            return Err(NodeError::model(format!("{side}: the model returns NaN or infinite values")));
        }
        Ok(())
    }

    /// G(z) mapped from the generator's output range to [0, 1]. Differentiable in z.
    pub fn render(&self, z: &Tensor) -> Result<Tensor, NodeError> {
        if z.dim() != 2 || z.size()[1] != self.latent_dim {
            return Err(NodeError::input(
                "codes",
                format!("codes of shape {:?} do not match latent dimension {}", z.size(), self.latent_dim),
            ));
        }
        let n = z.size()[0];
        if product(&[n, self.image_elements()], MAX_ELEMENTS).is_none() {
            return Err(NodeError::input(
                "codes",
                format!(
                    "{n} codes render to {n} x {} elements, beyond the limit of {MAX_ELEMENTS} per tensor; render \
                     them in batches",
                    self.image_elements()
                ),
            ));
        }
        let out = self.forward(&z.to_device(self.device).to_kind(Kind::Float))?;
        let s = &self.space;
        if out.size() != [n, s.channels, s.height, s.width] {
            return Err(NodeError::model(format!(
                "{}: generator output has shape {:?}, metadata says N x {} x {} x {}",
                self.path.display(),
                out.size(),
                s.channels,
                s.height,
                s.width
            )));
        }
        let [lo, hi] = s.range;
        Ok(((out - lo) / (hi - lo)).clamp(0.0, 1.0))
    }

    /// f(images in [0, 1]) as probabilities in [0, 1], checked against the schema. Differentiable in the images.
    pub fn label(&self, images: &Tensor) -> Result<Tensor, NodeError> {
        let s = &self.space;
        let schema = self.schema.as_ref().ok_or_else(|| NodeError::internal("label called on a generator"))?;
        if images.dim() != 4 {
            return Err(NodeError::input("images", format!("images must be N x C x H x W, got {:?}", images.size())));
        }
        let n = images.size()[0];
        if product(&[n, self.image_elements()], MAX_ELEMENTS).is_none() {
            return Err(NodeError::input(
                "images",
                format!(
                    "{n} images at the classifier's input size make {n} x {} elements, beyond the limit of \
                     {MAX_ELEMENTS} per tensor; label them in batches",
                    self.image_elements()
                ),
            ));
        }
        let mut x = images.to_device(self.device).to_kind(Kind::Float);
        if x.size()[1] != s.channels {
            if x.size()[1] == 1 && s.channels == 3 {
                x = x.expand([-1, 3, -1, -1], false);
            } else {
                return Err(NodeError::input(
                    "images",
                    format!("images have {} channels, classifier expects {}", x.size()[1], s.channels),
                ));
            }
        }
        if x.size()[2] != s.height || x.size()[3] != s.width {
            x = x.upsample_bilinear2d([s.height, s.width], false, None, None);
        }
        let [lo, hi] = s.range;
        x = x * (hi - lo) + lo;
        if let (Some(mean), Some(std)) = (&s.mean, &s.std) {
            let per_channel = |v: &[f64]| {
                let v: Vec<f32> = v.iter().map(|v| *v as f32).collect();
                Tensor::from_slice(&v).view([1, -1, 1, 1]).to_device(self.device)
            };
            x = (x - per_channel(mean)) / per_channel(std);
        }
        let mut out = self.forward(&x)?;
        let k = schema.len() as i64;
        if out.dim() != 2 || out.size() != [n, k] {
            return Err(NodeError::model(format!(
                "{}: classifier output has shape {:?} but its schema lists {k} classes",
                self.path.display(),
                out.size()
            )));
        }
        if self.logits {
            let parts: Vec<Tensor> = (0..schema.groups.len())
                .map(|g| {
                    let r = schema.group_range(g);
                    out.narrow(1, r.start as i64, r.len() as i64).softmax(1, Kind::Float)
                })
                .collect();
            out = Tensor::cat(&parts, 1);
        }
        let (min, max) = (out.min().double_value(&[]), out.max().double_value(&[]));
        if !(min >= -1e-4 && max <= 1.0 + 1e-4) {
            return Err(NodeError::model(format!(
                "{}: classifier output leaves [0, 1] (min {min:.4}, max {max:.4}); if it returns logits, set \
                 \"output\": \"logits\" in its metadata",
                self.path.display()
            )));
        }
        Ok(out.clamp(0.0, 1.0))
    }
}

impl Model for TorchModel {
    fn parameter(&self, name: RStr<'_>) -> ROption<TensorRef> {
        match self.0.module.named_parameters() {
            Ok(list) => list.into_iter().find(|(n, _)| n == name.as_str()).map(|(_, t)| TensorRef::new(t.detach())).into(),
            Err(_) => ROption::RNone,
        }
    }
    fn kind(&self) -> RString {
        self.0.kind.into()
    }
    fn name(&self) -> RString {
        self.0.name.as_str().into()
    }
    fn info(&self) -> RString {
        let mut info = self.0.info.clone();
        info["path"] = self.0.path.display().to_string().into();
        if let Some(s) = &self.0.schema {
            info["schema"] = serde_json::to_value(s).unwrap_or_default();
        }
        info.to_string().into()
    }
    fn forward(&self, input: &TensorRef) -> RResult<TensorRef, NodeError> {
        let x = input.tensor();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if self.0.kind == port::GENERATOR { self.0.render(&x) } else { self.0.label(&x) }
        }));
        match r {
            Ok(Ok(t)) => ROk(t.into()),
            Ok(Err(e)) => RErr(e),
            Err(_) => RErr(NodeError::new(ErrorKind::Panic, format!("{} panicked in forward", self.0.path.display()))),
        }
    }
}

/// Samples `n` codes of dimension `dim` from the latent distribution, seeded; entries beyond `truncation` are
/// resampled (the truncation trick; 0 disables it). `n x dim` is refused beyond MAX_ELEMENTS, and the buffer is
/// reserved fallibly, so a huge request is an error naming `count`, never an abort.
pub fn sample_codes(rng: &mut impl rand::Rng, n: i64, dim: i64, distribution: &str, truncation: f64) -> Result<Tensor, NodeError> {
    let draw = |rng: &mut dyn rand::RngCore| -> f32 {
        match distribution {
            "uniform" => rand::Rng::gen_range(rng, -1.0f32..1.0),
            _ => rand_distr::Distribution::sample(&rand_distr::StandardNormal, rng),
        }
    };
    if !["normal", "uniform"].contains(&distribution) {
        return Err(NodeError::model(format!("latent distribution '{distribution}' is not supported (normal, uniform)")));
    }
    let total = product(&[n, dim], MAX_ELEMENTS).ok_or_else(|| {
        let why = format!("{n} codes of dimension {dim} are beyond the limit of {MAX_ELEMENTS} elements");
        NodeError::param("count", why)
    })?;
    let mut data: Vec<f32> = Vec::new();
    data.try_reserve_exact(total as usize).map_err(|e| {
        NodeError::param("count", format!("cannot allocate {n} codes of dimension {dim} ({total} floats): {e}"))
    })?;
    for _ in 0..total {
        let mut v = draw(rng);
        if truncation > 0.0 {
            while (v as f64).abs() > truncation {
                v = draw(rng);
            }
        }
        data.push(v);
    }
    Ok(Tensor::from_slice(&data).view([n, dim]))
}
