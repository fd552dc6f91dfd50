//! Loading TorchScript models with their sidecars, and running them.

use crate::style::{check_affine, check_style, Style, StyleMeta, View};
use serde::Deserialize;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
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
/// user's own file, absolute as the host hands it over: the host resolves a relative path in a graph against the
/// graph file's folder, `$out/...` in the run's output folder, and a command-line value against the working
/// directory (docs/GRAPH_FORMAT.md, "Paths"); a relative path reaching here (a node run outside the host) is read
/// from the working directory. Either way it must be a regular file with its `.json` sidecar beside it.
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
            let real =
                p.canonicalize().map_err(|e| refuse(param, format!("{} cannot be resolved: {e}", p.display())))?;
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
        Err(_) => Err(refuse(
            param,
            format!("no sidecar {} beside it (the model's metadata, docs/MODELS.md)", side.display()),
        )),
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
    /// One code as the module takes it, without the batch axis: `[dim]` (default) or e.g. `[dim, 1, 1]` (DCGAN).
    #[serde(default)]
    shape: Option<Vec<i64>>,
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
    /// `NCHW` (default) or `NHWC`: the axis order of the module's images.
    #[serde(default = "nchw")]
    layout: String,
    /// How images of another size reach the input size (classifiers): `bilinear`, `antialias` or `none`.
    #[serde(default)]
    resize: Option<String>,
}
fn three() -> i64 {
    3
}
fn unit() -> [f64; 2] {
    [0.0, 1.0]
}
fn nchw() -> String {
    "NCHW".into()
}

/// One constant argument passed to a generator's forward (or style method) after the codes, in order.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct ArgumentMeta {
    name: String,
    /// An N x `zeros` tensor of zeros (an unconditional class label `c`; 0 gives N x 0).
    #[serde(default)]
    zeros: Option<i64>,
    /// This row repeated for every code, N x len (a fixed class label).
    #[serde(default)]
    row: Option<Vec<f64>>,
    /// A plain value: a float, an int, a bool, a string or null (`truncation_psi`, `noise_mode`).
    #[serde(default, deserialize_with = "present")]
    value: Option<serde_json::Value>,
}

/// Keeps an explicit `null` apart from a missing key.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct GeneratorMeta {
    format: String,
    #[serde(default)]
    name: String,
    latent: Latent,
    output: Space,
    /// Constant arguments after the codes: forward(z, *arguments).
    #[serde(default)]
    arguments: Vec<ArgumentMeta>,
    /// Read by SeFa through the model's info; checked to name a parameter at load.
    #[serde(default)]
    first_layer: Option<String>,
    /// A StyleGAN-style generator: mapping and synthesis methods, W and W+ (crate::style).
    #[serde(default)]
    style: Option<StyleMeta>,
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
    /// Single-label groups: one softmax (or probability columns summing to 1) per group.
    #[serde(default)]
    groups: Option<Vec<Group>>,
    /// Multi-label binary attributes: one independent sigmoid (or probability) per attribute.
    #[serde(default)]
    attributes: Option<Vec<String>>,
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

/// A checked constant argument of a generator.
#[derive(Debug, Clone)]
pub enum Argument {
    Zeros(i64),
    Row(Vec<f32>),
    Float(f64),
    Int(i64),
    Bool(bool),
    Str(String),
    None,
}

/// A generator's constant arguments with their names, in call order.
pub type Arguments = Vec<(String, Argument)>;

/// How a classifier reads its output columns.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Heads {
    /// Groups of classes; `logits` gets a softmax per group.
    Groups { logits: bool },
    /// Independent binary attributes, one column each; `logits` gets a sigmoid. Each becomes a no/yes group.
    Attributes { logits: bool },
}

/// How images of another size are brought to a classifier's input size.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Resize {
    Bilinear,
    Antialias,
    None,
}

/// A loaded TorchScript model and what its sidecar says about it.
pub struct Inner {
    pub(crate) module: CModule,
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
    /// One code's shape as the module takes it (generators).
    pub(crate) latent_shape: Vec<i64>,
    /// Mapping and synthesis methods (StyleGAN-style generators).
    pub style: Option<Style>,
    /// Constant arguments after the codes (generators).
    arguments: Arguments,
    /// Images are N x H x W x C in the module (else N x C x H x W).
    nhwc: bool,
    resize: Resize,
    pub schema: Option<LabelSchema>,
    heads: Heads,
}

/// Shared handle; the SDK's `Model` trait object wraps it. A generator handle renders codes of its view's space.
#[derive(Clone)]
pub struct TorchModel {
    inner: Arc<Inner>,
    pub view: View,
}

impl std::fmt::Debug for TorchModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({:?})", self.inner.kind, self.inner.path.display(), self.view)
    }
}

impl TorchModel {
    pub fn torch(&self) -> &Inner {
        &self.inner
    }
    /// The images (N x C x H x W in [0, 1]) for codes in this handle's space. Differentiable in the codes.
    pub fn render(&self, codes: &Tensor) -> Result<Tensor, NodeError> {
        self.inner.render_in(codes, self.view)
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
    if !["NCHW", "NHWC"].contains(&s.layout.as_str()) {
        return bad(format!("{key}.layout '{}' is not NCHW or NHWC", s.layout));
    }
    if !normalisation && s.resize.is_some() {
        return bad(format!("{key}.resize applies to a classifier's input only"));
    }
    Ok(())
}

/// The resize policy of a classifier's input.
fn resize_policy(side: &Path, s: &Space) -> Result<Resize, NodeError> {
    match s.resize.as_deref() {
        None | Some("bilinear") => Ok(Resize::Bilinear),
        Some("antialias") => Ok(Resize::Antialias),
        Some("none") => Ok(Resize::None),
        Some(other) => Err(NodeError::model(format!(
            "{}: input.resize '{other}' is not bilinear, antialias or none",
            side.display()
        ))),
    }
}

/// A group, class or attribute name must be usable in edit targets (`group.class+group.class,...`).
fn check_name(side: &Path, key: &str, name: &str) -> Result<(), NodeError> {
    if name.trim().is_empty() || name.trim() != name || name.contains(['.', ',', '+']) {
        return Err(NodeError::model(format!(
            "{}: {key} '{name}' must be non-empty, without surrounding spaces, '.', ',' or '+' (edit targets \
             are written group.class+group.class,...)",
            side.display()
        )));
    }
    Ok(())
}

/// Checks the generator's call conventions: the code shape and the constant arguments.
fn check_call(side: &Path, meta: &GeneratorMeta) -> Result<(Vec<i64>, Arguments), NodeError> {
    let bad = |why: String| Err(NodeError::model(format!("{}: {why}", side.display())));
    let dim = meta.latent.dim;
    let shape = meta.latent.shape.clone().unwrap_or_else(|| vec![dim]);
    if shape.is_empty() || shape.len() > 4 || shape.iter().any(|&d| d < 1) || product(&shape, i64::MAX) != Some(dim) {
        return bad(format!(
            "latent.shape {shape:?} must be 1 to 4 positive sizes whose product is latent.dim {dim} (e.g. [{dim}] \
             or [{dim}, 1, 1])"
        ));
    }
    if meta.style.is_some() && !meta.arguments.is_empty() {
        return bad("arguments belong to forward, which a generator with a style block does not call; give them as \
             style.mapping_arguments or style.synthesis_arguments"
            .into());
    }
    Ok((shape, check_arguments(side, "arguments", &meta.arguments)?))
}

/// Checks a list of constant arguments (`key` is where the sidecar holds it, for messages).
pub fn check_arguments(side: &Path, key: &str, list: &[ArgumentMeta]) -> Result<Arguments, NodeError> {
    let bad = |why: String| Err(NodeError::model(format!("{}: {why}", side.display())));
    let mut args = Vec::new();
    for (i, a) in list.iter().enumerate() {
        let at = format!("{key}[{i}] ('{}')", a.name);
        if a.name.trim().is_empty() {
            return bad(format!("{key}[{i}].name is empty; name the argument it fills"));
        }
        let given = [a.zeros.is_some(), a.row.is_some(), a.value.is_some()].iter().filter(|&&b| b).count();
        if given != 1 {
            return bad(format!("{at} needs exactly one of zeros, row or value"));
        }
        let arg = if let Some(n) = a.zeros {
            // 0 is the empty label of an unconditional StyleGAN2-ADA model.
            if !(0..=MAX_SAMPLE_ELEMENTS).contains(&n) {
                return bad(format!("{at}.zeros is {n}; it must be 0 to {MAX_SAMPLE_ELEMENTS}"));
            }
            Argument::Zeros(n)
        } else if let Some(row) = &a.row {
            if row.is_empty() || row.len() as i64 > MAX_SAMPLE_ELEMENTS || row.iter().any(|x| !x.is_finite()) {
                return bad(format!("{at}.row must be 1 to {MAX_SAMPLE_ELEMENTS} finite numbers"));
            }
            Argument::Row(row.iter().map(|&x| x as f32).collect())
        } else {
            match a.value.as_ref().unwrap_or(&serde_json::Value::Null) {
                serde_json::Value::Null => Argument::None,
                serde_json::Value::Bool(b) => Argument::Bool(*b),
                serde_json::Value::String(s) => Argument::Str(s.clone()),
                // JSON `1` is an int and `1.0` a float; TorchScript does not convert between them.
                serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                    (Some(i), _) if !n.is_f64() => Argument::Int(i),
                    (_, Some(f)) if f.is_finite() => Argument::Float(f),
                    _ => return bad(format!("{at}.value {n} is not a finite number")),
                },
                _ => return bad(format!("{at}.value must be a number, a bool, a string or null")),
            }
        };
        args.push((a.name.clone(), arg));
    }
    Ok(args)
}

fn load_module(path: &Path, device: tch::Device) -> Result<CModule, NodeError> {
    let mut m = CModule::load_on_device(path, device).map_err(|e| {
        NodeError::model(format!("{}: not a loadable TorchScript module: {e}", path.display())).at("model")
    })?;
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
pub fn torch_reason(e: &tch::TchError) -> String {
    let text = e.to_string();
    // C++ stack frames ("frame #0: c10::Error::Error(...)") are noise, not the reason.
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("frame #") && !l.starts_with("Exception raised from"))
        .collect();
    let line = lines.iter().rev().find(|l| l.contains("Error: ")).or(lines.first()).copied().unwrap_or("");
    let line = line.strip_prefix("Internal torch error: ").unwrap_or(line);
    let line: String = line.chars().take(300).collect();
    line
}

/// Generators this process has loaded, by cache key, held weakly: handles of several views (spaces) of one file
/// share one module while any of them is alive (the host's model cache holds the handles).
static LOADED: Mutex<Vec<(String, Weak<Inner>)>> = Mutex::new(Vec::new());

/// The loaded module behind `key`, or a fresh one from `load`.
fn shared_inner(key: &str, load: impl FnOnce() -> Result<Inner, NodeError>) -> Result<Arc<Inner>, NodeError> {
    let found = {
        let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
        loaded.retain(|(_, w)| w.strong_count() > 0);
        loaded.iter().find(|(k, _)| k == key).and_then(|(_, w)| w.upgrade())
    };
    if let Some(inner) = found {
        return Ok(inner);
    }
    let inner = Arc::new(load()?);
    LOADED.lock().unwrap_or_else(|p| p.into_inner()).push((key.to_string(), Arc::downgrade(&inner)));
    Ok(inner)
}

/// Loads (or takes from the host's cache) the generator at `path` as a handle taking codes in `view.space`; its
/// sidecar is checked, then the model is run once on a tiny batch and its output compared with the sidecar.
pub fn load_generator(ctx: &Ctx<'_, '_>, path: &Path, view: View) -> Result<TorchModel, NodeError> {
    let device = ctx.device();
    let base = cache_key(port::GENERATOR, path, device);
    // The default view keeps the key it always had; the others are entries of their own over the same module.
    let key = if view == View::default() { base.clone() } else { format!("{base}:{}:psi={}", view.space, view.psi) };
    let m = ctx.shared_model(&key, || {
        // Keyed by the files' sizes and times too: a handle kept alive must not stand in for an edited model.
        let stamp = |p: &Path| std::fs::metadata(p).map(|m| format!("{}@{:?}", m.len(), m.modified().ok()));
        let files = format!("{base}:{:?}:{:?}", stamp(path).ok(), stamp(&sidecar(path)).ok());
        let inner = shared_inner(&files, || load_generator_module(path, device))?;
        Ok(TorchModel { inner, view }.into_ref())
    })?;
    downcast(&m).ok_or_else(|| NodeError::internal("cached generator is not a TorchScript model of this plugin"))
}

/// Reads, checks, loads and probes the generator at `path`.
fn load_generator_module(path: &Path, device: tch::Device) -> Result<Inner, NodeError> {
    {
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
        let (latent_shape, arguments) = check_call(&side, &meta)?;
        let style = meta.style.as_ref().map(|m| check_style(&side, m)).transpose()?;
        let module = load_module(path, device)?;
        if let Some(style) = &style {
            check_affine(&side, style, &module.named_parameters().unwrap_or_default())?;
        }
        if let Some(first) = &meta.first_layer {
            // SeFa reads it much later; a wrong name is cheaper to report now.
            let names: Vec<String> =
                module.named_parameters().map(|l| l.into_iter().map(|(n, _)| n).collect()).unwrap_or_default();
            if !names.contains(first) {
                let some: Vec<&str> = names.iter().take(8).map(String::as_str).collect();
                let more = if names.len() > 8 { ", ..." } else { "" };
                return Err(bad(format!(
                    "first_layer '{first}' is not a parameter of the module (its parameters: [{}{more}])",
                    some.join(", ")
                )));
            }
        }
        let mut inner = Inner {
            module,
            kind: port::GENERATOR,
            name: if meta.name.is_empty() { path.display().to_string() } else { meta.name },
            path: path.to_path_buf(),
            sidecar: side.clone(),
            device,
            info,
            latent_dim: meta.latent.dim,
            distribution: meta.latent.distribution,
            nhwc: meta.output.layout == "NHWC",
            space: meta.output,
            latent_shape,
            arguments,
            style,
            resize: Resize::Bilinear,
            schema: None,
            heads: Heads::Groups { logits: false },
        };
        inner.probe()?;
        inner.resolve_w_avg()?;
        Ok(inner)
    }
}

/// The label schema a classifier's sidecar declares, and how its output columns are read.
fn classifier_schema(side: &Path, meta: &ClassifierMeta) -> Result<(Vec<LabelGroup>, Heads), NodeError> {
    let bad = |why: String| NodeError::model(format!("{}: {why}", side.display()));
    let logits = match meta.output.as_str() {
        "probabilities" => false,
        "logits" => true,
        other => return Err(bad(format!("output '{other}' must be 'probabilities' or 'logits'"))),
    };
    let group = |name: &str, classes: &[&str]| LabelGroup {
        name: name.into(),
        classes: classes.iter().map(|c| RString::from(*c)).collect(),
    };
    let (groups, heads) = match (&meta.groups, &meta.attributes) {
        (Some(_), Some(_)) => {
            return Err(bad("give groups (single-label) or attributes (multi-label), not both".into()))
        }
        (None, None) => {
            return Err(bad("the label schema needs groups (single-label) or attributes (multi-label)".into()))
        }
        (Some(groups), None) => {
            if groups.is_empty() || groups.iter().any(|g| g.classes.is_empty()) {
                return Err(bad("the label schema needs groups with classes".into()));
            }
            for (i, g) in groups.iter().enumerate() {
                check_name(side, &format!("groups[{i}].name"), &g.name)?;
                for (j, c) in g.classes.iter().enumerate() {
                    check_name(side, &format!("groups[{i}].classes[{j}]"), c)?;
                    if g.classes[..j].contains(c) {
                        return Err(bad(format!("groups[{i}] ('{}') lists class '{c}' twice", g.name)));
                    }
                }
            }
            let groups = groups
                .iter()
                .map(|g| group(&g.name, &g.classes.iter().map(String::as_str).collect::<Vec<_>>()))
                .collect::<Vec<_>>();
            (groups, Heads::Groups { logits })
        }
        (None, Some(attributes)) => {
            if attributes.is_empty() {
                return Err(bad("attributes is empty; list one name per output column".into()));
            }
            for (i, a) in attributes.iter().enumerate() {
                check_name(side, &format!("attributes[{i}]"), a)?;
            }
            let groups = attributes.iter().map(|a| group(a, &["no", "yes"])).collect();
            (groups, Heads::Attributes { logits })
        }
    };
    let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    if let Some((i, n)) = names.iter().enumerate().find(|(i, n)| names[..*i].contains(n)) {
        let key = if matches!(heads, Heads::Attributes { .. }) { "attributes" } else { "groups" };
        return Err(bad(format!("{key}[{i}]: '{n}' is listed twice")));
    }
    Ok((groups, heads))
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
        let (groups, heads) = classifier_schema(&side, &meta)?;
        check_space(&side, "input", &meta.input, true)?;
        let resize = resize_policy(&side, &meta.input)?;
        let module = load_module(path, device)?;
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
            nhwc: meta.input.layout == "NHWC",
            space: meta.input,
            latent_shape: Vec::new(),
            arguments: Vec::new(),
            style: None,
            resize,
            schema: Some(LabelSchema { groups: groups.into() }),
            heads,
        };
        inner.probe()?;
        Ok(TorchModel { inner: Arc::new(inner), view: View::default() }.into_ref())
    })?;
    downcast(&m).ok_or_else(|| NodeError::internal("cached classifier is not a TorchScript model of this plugin"))
}

impl Inner {
    fn forward(&self, x: &Tensor) -> Result<Tensor, NodeError> {
        self.module
            .forward_ts(&[x])
            .map_err(|e| NodeError::model(format!("{}: forward failed: {}", self.path.display(), torch_reason(&e))))
    }

    /// The generator's raw output for flat codes (N x D): the codes shaped as `latent.shape`, then the constant
    /// `arguments`. Without arguments this is the plain one-tensor forward.
    fn call_generator(&self, z: &Tensor) -> Result<Tensor, tch::TchError> {
        let n = z.size()[0];
        let shape: Vec<i64> = std::iter::once(n).chain(self.latent_shape.iter().copied()).collect();
        self.call("forward", z.view(shape.as_slice()), &self.arguments)
    }

    /// Method `method` of the module on `first` followed by the constant arguments `args`, which must return a
    /// tensor.
    pub(crate) fn call(&self, method: &str, first: Tensor, args: &Arguments) -> Result<Tensor, tch::TchError> {
        let n = first.size()[0];
        if method == "forward" && args.is_empty() {
            return self.module.forward_ts(&[first]);
        }
        let opts = (Kind::Float, self.device);
        let mut inputs = vec![tch::IValue::Tensor(first)];
        for (_, a) in args {
            inputs.push(match a {
                Argument::Zeros(k) => tch::IValue::Tensor(Tensor::zeros([n, *k], opts)),
                Argument::Row(r) => {
                    tch::IValue::Tensor(Tensor::from_slice(r).to_device(self.device).view([1, -1]).repeat([n, 1]))
                }
                Argument::Float(f) => tch::IValue::Double(*f),
                Argument::Int(i) => tch::IValue::Int(*i),
                Argument::Bool(b) => tch::IValue::Bool(*b),
                Argument::Str(s) => tch::IValue::String(s.clone()),
                Argument::None => tch::IValue::None,
            });
        }
        let out = if method == "forward" {
            self.module.forward_is(&inputs)?
        } else {
            self.module.method_is(method, &inputs)?
        };
        match out {
            tch::IValue::Tensor(t) => Ok(t),
            other => Err(tch::TchError::Kind(format!("{method} returned {}, not a tensor", ivalue_kind(&other)))),
        }
    }

    /// Elements of one image the generator renders (or the classifier takes): C x H x W, checked at load.
    pub fn image_elements(&self) -> i64 {
        self.space.channels * self.space.height * self.space.width
    }

    /// The module's image shape for `n` images, in its layout.
    fn module_shape(&self, n: i64) -> [i64; 4] {
        let s = &self.space;
        if self.nhwc {
            [n, s.height, s.width, s.channels]
        } else {
            [n, s.channels, s.height, s.width]
        }
    }

    /// Runs the model once on a tiny batch and compares what comes out with the sidecar, so that a wrong
    /// `latent.dim`, image size or class count is refused at load, naming the sidecar.
    fn probe(&self) -> Result<(), NodeError> {
        let _guard = tch::no_grad_guard();
        let side = self.sidecar.display().to_string();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if self.kind == port::GENERATOR {
                self.probe_generator(&side)
            } else {
                self.probe_classifier(&side)
            }
        }));
        r.unwrap_or_else(|_| Err(NodeError::model(format!("{side}: the model panicked when probed at load"))))
    }

    /// Why the forward on the probe codes failed, naming the sidecar fields that set up the call.
    fn call_failure(&self, side: &str, e: &tch::TchError) -> NodeError {
        let (dim, shape) = (self.latent_dim, &self.latent_shape);
        let reason = torch_reason(e);
        let names: Vec<&str> = self.arguments.iter().map(|(n, _)| n.as_str()).collect();
        let why = if reason.contains("missing value for argument") {
            format!("forward takes more than z and arguments {names:?}; declare the rest in arguments")
        } else if reason.contains("Expected at most") || reason.contains("too many positional") {
            format!("forward takes fewer than z and arguments {names:?}; check arguments")
        } else if reason.contains("value of type") {
            format!("forward refuses the type of one of z and arguments {names:?}; check arguments")
        } else if !names.is_empty() && names.iter().any(|n| reason.contains(&format!("'{n}'"))) {
            format!("an argument among {names:?} is of the wrong type or size; check arguments")
        } else {
            format!(
                "the model does not take {PROBE} codes of latent.dim {dim} shaped {:?} (latent.shape) followed by \
                 arguments {names:?}; check latent.dim, latent.shape ([D] for N x D, [D, 1, 1] for N x D x 1 x 1) \
                 and arguments",
                std::iter::once(PROBE).chain(shape.iter().copied()).collect::<Vec<_>>()
            )
        };
        NodeError::model(format!("{side}: {why} ({reason})"))
    }

    fn probe_generator(&self, side: &str) -> Result<(), NodeError> {
        let (dim, s) = (self.latent_dim, &self.space);
        let mut rng: rand_chacha::ChaCha8Rng = rand::SeedableRng::seed_from_u64(0);
        let z = sample_codes(&mut rng, PROBE, dim, &self.distribution, 0.0)?.to_device(self.device);
        let out = match &self.style {
            Some(_) => self.synthesise_codes(&z, View::default())?,
            None => self.call_generator(&z).map_err(|e| self.call_failure(side, &e))?,
        };
        let size = out.size();
        let layout = if self.nhwc {
            "N x output.height x output.width x output.channels (output.layout NHWC)"
        } else {
            "N x output.channels x output.height x output.width (output.layout NCHW)"
        };
        if size.len() != 4 || size[0] != PROBE {
            return Err(NodeError::model(format!(
                "{side}: for {PROBE} codes the model returns shape {size:?}, not {layout}"
            )));
        }
        if size != self.module_shape(PROBE) {
            let (c, h, w) = if self.nhwc { (size[3], size[1], size[2]) } else { (size[1], size[2], size[3]) };
            let declared = [("channels", s.channels, c), ("height", s.height, h), ("width", s.width, w)];
            let mut wrong: Vec<String> = declared
                .iter()
                .filter(|(_, declared, got)| declared != got)
                .map(|(key, declared, got)| format!("output.{key} is {declared} but the model renders {got}"))
                .collect();
            let (nchw, nhwc) = ([PROBE, s.channels, s.height, s.width], [PROBE, s.height, s.width, s.channels]);
            let other = if self.nhwc { nchw } else { nhwc };
            if size == other {
                let (is, should) = if self.nhwc { ("NHWC", "NCHW") } else { ("NCHW", "NHWC") };
                wrong = vec![format!("output.layout is {is} but the model renders {size:?}, which is {should}")];
            }
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

    /// G(codes) for codes in `view.space`, mapped from the generator's output range to [0, 1], N x C x H x W.
    /// Differentiable in the codes.
    pub fn render_in(&self, z: &Tensor, view: View) -> Result<Tensor, NodeError> {
        let dim = self.code_dim(view.space).map_err(|e| NodeError::input("codes", e))?;
        if z.dim() != 2 || z.size()[1] != dim {
            return Err(NodeError::input("codes", self.dim_mismatch(&z.size(), view.space)));
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
        let z = z.to_device(self.device).to_kind(Kind::Float);
        let out = match &self.style {
            Some(_) => self.synthesise_codes(&z, view)?,
            None => self.call_generator(&z).map_err(|e| {
                NodeError::model(format!("{}: forward failed: {}", self.path.display(), torch_reason(&e)))
            })?,
        };
        let s = &self.space;
        if out.size() != self.module_shape(n) {
            return Err(NodeError::model(format!(
                "{}: generator output has shape {:?}, metadata says {:?} ({})",
                self.path.display(),
                out.size(),
                self.module_shape(n),
                s.layout
            )));
        }
        let out = if self.nhwc { out.permute([0, 3, 1, 2]) } else { out };
        let [lo, hi] = s.range;
        Ok(((out.to_kind(Kind::Float) - lo) / (hi - lo)).clamp(0.0, 1.0))
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
            let size = [s.height, s.width];
            x = match self.resize {
                Resize::Bilinear => x.upsample_bilinear2d(size, false, None, None),
                Resize::Antialias => x.internal_upsample_bilinear2d_aa(size, false, None, None),
                Resize::None => {
                    return Err(NodeError::input(
                        "images",
                        format!(
                            "images are {} x {}, classifier {} takes {} x {} and its input.resize is none",
                            x.size()[2],
                            x.size()[3],
                            self.sidecar.display(),
                            s.height,
                            s.width
                        ),
                    ))
                }
            };
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
        if self.nhwc {
            x = x.permute([0, 2, 3, 1]);
        }
        let out = self.forward(&x)?.to_kind(Kind::Float);
        let (k, what, logits) = match self.heads {
            Heads::Groups { logits } => (schema.len() as i64, "classes (groups)", logits),
            Heads::Attributes { logits } => (schema.groups.len() as i64, "attributes", logits),
        };
        if out.dim() != 2 || out.size() != [n, k] {
            return Err(NodeError::model(format!(
                "{}: classifier output has shape {:?} but its schema lists {k} {what}",
                self.path.display(),
                out.size()
            )));
        }
        let out = match self.heads {
            Heads::Groups { logits: true } => {
                let parts: Vec<Tensor> = (0..schema.groups.len())
                    .map(|g| {
                        let r = schema.group_range(g);
                        out.narrow(1, r.start as i64, r.len() as i64).softmax(1, Kind::Float)
                    })
                    .collect();
                Tensor::cat(&parts, 1)
            }
            Heads::Attributes { logits: true } => out.sigmoid(),
            _ => out,
        };
        let (min, max) = (out.min().double_value(&[]), out.max().double_value(&[]));
        if !(min >= -1e-4 && max <= 1.0 + 1e-4) {
            let hint = if logits { "" } else { "; if it returns logits, set \"output\": \"logits\" in its metadata" };
            return Err(NodeError::model(format!(
                "{}: classifier output leaves [0, 1] (min {min:.4}, max {max:.4}){hint}",
                self.path.display()
            )));
        }
        let out = out.clamp(0.0, 1.0);
        Ok(match self.heads {
            // Each attribute p becomes its group's columns [no, yes] = [1 - p, p].
            Heads::Attributes { .. } => Tensor::stack(&[out.ones_like() - &out, out], 2).view([n, 2 * k]),
            Heads::Groups { .. } => out,
        })
    }
}

/// The kind of a TorchScript value, for messages.
fn ivalue_kind(v: &tch::IValue) -> &'static str {
    match v {
        tch::IValue::None => "None",
        tch::IValue::Tensor(_) => "a tensor",
        tch::IValue::Tuple(_) => "a tuple",
        tch::IValue::GenericList(_) | tch::IValue::TensorList(_) => "a list",
        tch::IValue::GenericDict(_) => "a dict",
        _ => "a non-tensor value",
    }
}

impl Model for TorchModel {
    fn parameter(&self, name: RStr<'_>) -> ROption<TensorRef> {
        match self.inner.module.named_parameters() {
            Ok(list) => {
                list.into_iter().find(|(n, _)| n == name.as_str()).map(|(_, t)| TensorRef::new(t.detach())).into()
            }
            Err(_) => ROption::RNone,
        }
    }
    fn kind(&self) -> RString {
        self.inner.kind.into()
    }
    fn name(&self) -> RString {
        self.inner.name.as_str().into()
    }
    fn info(&self) -> RString {
        let mut info = self.inner.info.clone();
        info["path"] = self.inner.path.display().to_string().into();
        if let Some(s) = &self.inner.schema {
            info["schema"] = serde_json::to_value(s).unwrap_or_default();
        }
        if self.inner.kind == port::GENERATOR {
            // The space this handle renders from, for nodes that work in it (SeFa).
            info["space"] = self.view.space.to_string().into();
            info["psi"] = self.view.psi.into();
            info["code_dim"] = self.inner.code_dim(self.view.space).unwrap_or(0).into();
            if let Some(s) = &self.inner.style {
                info["style"]["w_avg_from"] = s.w_avg_from.clone().into();
            }
        }
        info.to_string().into()
    }
    fn forward(&self, input: &TensorRef) -> RResult<TensorRef, NodeError> {
        let x = input.tensor();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if self.inner.kind == port::GENERATOR {
                self.render(&x)
            } else {
                self.inner.label(&x)
            }
        }));
        match r {
            Ok(Ok(t)) => ROk(t.into()),
            Ok(Err(e)) => RErr(e),
            Err(_) => {
                RErr(NodeError::new(ErrorKind::Panic, format!("{} panicked in forward", self.inner.path.display())))
            }
        }
    }
}

/// Samples `n` codes of dimension `dim` from the latent distribution, seeded; entries beyond `truncation` are
/// resampled (the truncation trick; 0 disables it). `n x dim` is refused beyond MAX_ELEMENTS, and the buffer is
/// reserved fallibly, so a huge request is an error naming `count`, never an abort.
pub fn sample_codes(
    rng: &mut impl rand::Rng,
    n: i64,
    dim: i64,
    distribution: &str,
    truncation: f64,
) -> Result<Tensor, NodeError> {
    let draw = |rng: &mut dyn rand::RngCore| -> f32 {
        match distribution {
            "uniform" => rand::Rng::gen_range(rng, -1.0f32..1.0),
            _ => rand_distr::Distribution::sample(&rand_distr::StandardNormal, rng),
        }
    };
    if !["normal", "uniform"].contains(&distribution) {
        return Err(NodeError::model(format!(
            "latent distribution '{distribution}' is not supported (normal, uniform)"
        )));
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
