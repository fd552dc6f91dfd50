//! Loading TorchScript models with their sidecars, and running them.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use subspace_sdk::abi_stable::{
    sabi_trait::TD_CanDowncast,
    std_types::{RArc, RErr, ROk, ROption, RResult, RStr, RString},
};
use subspace_sdk::tch::{self, CModule, Kind, Tensor};
use subspace_sdk::*;

/// Finds a model file. `default/<file>` names the shipped world: looked up in $SUBSPACE_MODELS, `models/default`
/// under the working directory, and the repository the running binary was built in.
pub fn resolve(param: &str) -> Result<PathBuf, NodeError> {
    let Some(rest) = param.strip_prefix("default/") else {
        let p = PathBuf::from(param);
        return if p.exists() { Ok(p) } else { Err(NodeError::io(format!("model file {param} does not exist"))) };
    };
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
    for dir in &places {
        let p = dir.join(rest);
        if p.exists() {
            return Ok(p);
        }
    }
    Err(NodeError::io(format!("shipped model {param} not found; looked in {places:?} (set SUBSPACE_MODELS)")))
}

#[derive(Deserialize, Debug, Clone)]
struct Latent {
    dim: i64,
    #[serde(default = "normal")]
    distribution: String,
}
fn normal() -> String {
    "normal".into()
}

#[derive(Deserialize, Debug, Clone)]
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
struct GeneratorMeta {
    format: String,
    #[serde(default)]
    name: String,
    latent: Latent,
    output: Space,
}

#[derive(Deserialize, Debug)]
struct ClassifierMeta {
    format: String,
    #[serde(default)]
    name: String,
    input: Space,
    #[serde(default = "probabilities")]
    output: String,
    groups: Vec<LabelGroup>,
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

fn read_sidecar<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, NodeError> {
    let meta = sidecar(path);
    let text = std::fs::read_to_string(&meta)
        .map_err(|e| NodeError::model(format!("{}: cannot read the model's metadata: {e}", meta.display())))?;
    serde_json::from_str(&text).map_err(|e| NodeError::model(format!("{}: invalid metadata: {e}", meta.display())))
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

/// Loads (or takes from the host's cache) the generator at `path`.
pub fn load_generator(ctx: &Ctx<'_, '_>, path: &Path) -> Result<TorchModel, NodeError> {
    let device = ctx.device();
    let m = ctx.shared_model(&cache_key(port::GENERATOR, path, device), || {
        let meta: GeneratorMeta = read_sidecar(path)?;
        if !meta.format.starts_with("subspace.generator/") {
            return Err(NodeError::model(format!("{}: format is '{}', expected subspace.generator/1", sidecar(path).display(), meta.format)));
        }
        if meta.latent.dim < 1 {
            return Err(NodeError::model(format!("{}: latent.dim must be positive", sidecar(path).display())));
        }
        let module = load_module(path, device)?;
        let info = serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(sidecar(path)).unwrap_or_default()).unwrap_or_default();
        Ok(TorchModel(Arc::new(Inner {
            module,
            kind: port::GENERATOR,
            name: if meta.name.is_empty() { path.display().to_string() } else { meta.name },
            path: path.to_path_buf(),
            device,
            info,
            latent_dim: meta.latent.dim,
            distribution: meta.latent.distribution,
            space: meta.output,
            schema: None,
            logits: false,
        }))
        .into_ref())
    })?;
    downcast(&m).ok_or_else(|| NodeError::internal("cached generator is not a TorchScript model of this plugin"))
}

/// Loads (or takes from the host's cache) the classifier at `path`.
pub fn load_classifier(ctx: &Ctx<'_, '_>, path: &Path) -> Result<TorchModel, NodeError> {
    let device = ctx.device();
    let m = ctx.shared_model(&cache_key(port::CLASSIFIER, path, device), || {
        let meta: ClassifierMeta = read_sidecar(path)?;
        if !meta.format.starts_with("subspace.classifier/") {
            return Err(NodeError::model(format!("{}: format is '{}', expected subspace.classifier/1", sidecar(path).display(), meta.format)));
        }
        if meta.groups.is_empty() || meta.groups.iter().any(|g| g.classes.is_empty()) {
            return Err(NodeError::model(format!("{}: the label schema needs groups with classes", sidecar(path).display())));
        }
        let logits = match meta.output.as_str() {
            "probabilities" => false,
            "logits" => true,
            other => return Err(NodeError::model(format!("{}: output '{other}' must be 'probabilities' or 'logits'", sidecar(path).display()))),
        };
        let module = load_module(path, device)?;
        let info = serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(sidecar(path)).unwrap_or_default()).unwrap_or_default();
        Ok(TorchModel(Arc::new(Inner {
            module,
            kind: port::CLASSIFIER,
            name: if meta.name.is_empty() { path.display().to_string() } else { meta.name },
            path: path.to_path_buf(),
            device,
            info,
            latent_dim: 0,
            distribution: String::new(),
            space: meta.input,
            schema: Some(LabelSchema { groups: meta.groups.into() }),
            logits,
        }))
        .into_ref())
    })?;
    downcast(&m).ok_or_else(|| NodeError::internal("cached classifier is not a TorchScript model of this plugin"))
}

impl Inner {
    fn forward(&self, x: &Tensor) -> Result<Tensor, NodeError> {
        self.module
            .forward_ts(&[x])
            .map_err(|e| NodeError::model(format!("{}: forward failed: {e}", self.path.display())))
    }

    /// G(z) mapped from the generator's output range to [0, 1]. Differentiable in z.
    pub fn render(&self, z: &Tensor) -> Result<Tensor, NodeError> {
        if z.dim() != 2 || z.size()[1] != self.latent_dim {
            return Err(NodeError::input("codes", format!("codes of shape {:?} do not match latent dimension {}", z.size(), self.latent_dim)));
        }
        let out = self.forward(&z.to_device(self.device).to_kind(Kind::Float))?;
        let s = &self.space;
        if out.dim() != 4 || out.size()[1] != s.channels {
            return Err(NodeError::model(format!(
                "{}: generator output has shape {:?}, metadata says {} channels",
                self.path.display(),
                out.size(),
                s.channels
            )));
        }
        let [lo, hi] = s.range;
        Ok(((out - lo) / (hi - lo)).clamp(0.0, 1.0))
    }

    /// f(images in [0, 1]) as probabilities in [0, 1], checked against the schema. Differentiable in the images.
    pub fn label(&self, images: &Tensor) -> Result<Tensor, NodeError> {
        let s = &self.space;
        let schema = self.schema.as_ref().expect("classifier");
        let mut x = images.to_device(self.device).to_kind(Kind::Float);
        if x.size()[1] != s.channels {
            if x.size()[1] == 1 && s.channels == 3 {
                x = x.expand([-1, 3, -1, -1], false);
            } else {
                return Err(NodeError::input("images", format!("images have {} channels, classifier expects {}", x.size()[1], s.channels)));
            }
        }
        if x.size()[2] != s.height || x.size()[3] != s.width {
            x = x.upsample_bilinear2d([s.height, s.width], false, None, None);
        }
        let [lo, hi] = s.range;
        x = x * (hi - lo) + lo;
        if let (Some(mean), Some(std)) = (&s.mean, &s.std) {
            let m = Tensor::from_slice(&mean.iter().map(|v| *v as f32).collect::<Vec<_>>()).view([1, -1, 1, 1]).to_device(self.device);
            let d = Tensor::from_slice(&std.iter().map(|v| *v as f32).collect::<Vec<_>>()).view([1, -1, 1, 1]).to_device(self.device);
            x = (x - m) / d;
        }
        let mut out = self.forward(&x)?;
        let k = schema.len() as i64;
        if out.dim() != 2 || out.size()[1] != k {
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
                "{}: classifier output leaves [0, 1] (min {min:.4}, max {max:.4}); if it returns logits, set \"output\": \"logits\" in its metadata",
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
/// resampled (the truncation trick; 0 disables it).
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
    let mut data = Vec::with_capacity((n * dim) as usize);
    for _ in 0..n * dim {
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
