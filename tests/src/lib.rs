//! Support for the end-to-end tests: where the built binaries and plugins are, and a small graph builder.
//! The plugins are the real release libraries, so `cargo build --release --workspace` (or `make build`) must
//! have run first; `make test` does that.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use subspace_host::{validate, Evaluator, Graph, Plan, Registry, RunOptions, RunReport};
use subspace_sdk::DeviceSpec;

/// `target/release` (the folder of the test binary's `deps/`).
pub fn release_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent().and_then(|d| d.parent()).expect("target dir").to_path_buf()
}

/// A built library of the workspace, e.g. `subspace_test_nodes`.
pub fn library(name: &str) -> PathBuf {
    let p = release_dir().join(format!("lib{name}{}", std::env::consts::DLL_SUFFIX));
    assert!(p.exists(), "{} is missing: run `make build` (cargo build --release --workspace) before the tests", p.display());
    p
}

/// The `subspace` binary.
pub fn host_binary() -> PathBuf {
    let p = release_dir().join("subspace");
    assert!(p.exists(), "{} is missing: run `make build` first", p.display());
    p
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A temporary plugin folder holding copies of the given workspace libraries.
pub fn plugin_dir(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for n in names {
        let src = library(n);
        std::fs::copy(&src, dir.path().join(src.file_name().unwrap())).unwrap();
    }
    dir
}

/// A registry with the given plugin libraries, loaded from their build folder.
pub fn registry_of(names: &[&str]) -> Registry {
    let mut r = Registry::default();
    for n in names {
        r.load_file(&library(n));
    }
    r
}

/// The test-node registry, loaded once per test process.
pub fn test_registry() -> Arc<Registry> {
    static R: OnceLock<Arc<Registry>> = OnceLock::new();
    R.get_or_init(|| {
        let r = registry_of(&["subspace_test_nodes"]);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        Arc::new(r)
    })
    .clone()
}

/// A graph under construction.
#[derive(Clone)]
pub struct G(pub Graph);

impl G {
    pub fn new() -> Self {
        G(Graph::new())
    }
    pub fn node(self, id: &str, ty: &str, params: serde_json::Value) -> Self {
        G(self.0.with_node(id, ty, params))
    }
    pub fn link(self, from: &str, to: &str) -> Self {
        G(self.0.with_link(from, to))
    }
    pub fn out(self, o: &str) -> Self {
        G(self.0.with_output(o))
    }
    pub fn set(mut self, node: &str, param: &str, v: serde_json::Value) -> Self {
        self.0.nodes.iter_mut().find(|n| n.id == node).unwrap().params.insert(param.into(), v);
        self
    }
    pub fn plan(&self, r: &Registry) -> Plan {
        match validate(&self.0, r) {
            Ok(p) => p,
            Err(e) => panic!("graph invalid: {e:#?}"),
        }
    }
}

/// A CPU evaluator over `registry`.
pub fn evaluator(registry: Arc<Registry>) -> Evaluator {
    Evaluator::new(registry, DeviceSpec::CPU)
}

/// Plans and runs `g` once.
pub fn run(e: &Evaluator, g: &G) -> RunReport {
    e.run(&g.plan(&e.registry), &RunOptions::default())
}

/// Plans and runs `g` once with `out` as the run's output folder (where writing nodes write).
pub fn run_at(e: &Evaluator, out: &std::path::Path, g: &G) -> RunReport {
    e.run(&g.plan(&e.registry), &RunOptions { out_dir: out.to_path_buf(), ..Default::default() })
}

/// The method's fitting chain on toy models: `sample` (generator, `count` codes) -> `label` (classifier) ->
/// `gauss` (SingleGaussFit with `gauss` params) -> `gmm` (GMMFit with `gmm` params, linked to the models).
pub fn toy_fit(gen: &str, clf: &str, count: i64, gauss: serde_json::Value, gmm: serde_json::Value) -> G {
    G::new()
        .node("sample", "subspace.generator", serde_json::json!({"model": gen, "count": count, "seed": 1}))
        .node("label", "subspace.classifier", serde_json::json!({"model": clf}))
        .node("gauss", "subspace.single_gauss_fit", gauss)
        .node("gmm", "subspace.gmm_fit", gmm)
        .link("sample.images", "label.images")
        .link("sample.codes", "gauss.codes")
        .link("label.labels", "gauss.labels")
        .link("gauss.gaussians", "gmm.gaussians")
        .link("sample.codes", "gmm.codes")
        .link("label.labels", "gmm.labels")
        .link("sample.generator", "gmm.generator")
        .link("label.classifier", "gmm.classifier")
}

/// The product plugins (models, method, results), loaded once per test process.
pub fn product_registry() -> Arc<Registry> {
    static R: OnceLock<Arc<Registry>> = OnceLock::new();
    R.get_or_init(|| {
        let r = registry_of(&["subspace_plugin_models", "subspace_plugin_method", "subspace_plugin_results"]);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        Arc::new(r)
    })
    .clone()
}

/// Every product plugin (models, method, results, baselines), loaded once per test process.
pub fn all_product_plugins() -> Arc<Registry> {
    static R: OnceLock<Arc<Registry>> = OnceLock::new();
    R.get_or_init(|| {
        let r = registry_of(&[
            "subspace_plugin_models",
            "subspace_plugin_method",
            "subspace_plugin_results",
            "subspace_plugin_baselines",
        ]);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        Arc::new(r)
    })
    .clone()
}

/// Small TorchScript models made by tracing, with sidecars: a toy world for contract tests.
pub mod toy {
    use std::path::{Path, PathBuf};
    use tch::{CModule, Kind, Tensor};

    fn save(dir: &Path, name: &str, input: Tensor, f: impl Fn(&Tensor) -> Tensor, meta: serde_json::Value) -> PathBuf {
        let mut closure = |xs: &[Tensor]| vec![f(&xs[0])];
        let m = CModule::create_by_tracing("toy", "forward", &[input], &mut closure).unwrap();
        let path = dir.join(format!("{name}.pt"));
        m.save(&path).unwrap();
        std::fs::write(path.with_extension("json"), meta.to_string()).unwrap();
        path
    }

    /// z (N x 8) -> tanh(z W) as N x 3 x 8 x 8 in [-1, 1].
    pub fn generator(dir: &Path) -> PathBuf {
        generator_sized(dir, "gen", 8, [3, 8, 8])
    }

    /// z (N x dim) -> tanh(z W) as N x C x H x W in [-1, 1], saved as `<name>.pt` with a matching sidecar.
    pub fn generator_sized(dir: &Path, name: &str, dim: i64, [c, h, w]: [i64; 3]) -> PathBuf {
        tch::manual_seed(3);
        let weights = Tensor::randn([dim, c * h * w], (Kind::Float, tch::Device::Cpu));
        let meta = serde_json::json!({"format": "subspace.generator/1", "name": "toy",
            "latent": {"dim": dim, "distribution": "normal"},
            "output": {"channels": c, "height": h, "width": w, "range": [-1.0, 1.0]}});
        let input = Tensor::zeros([2, dim], (Kind::Float, tch::Device::Cpu));
        save(dir, name, input, move |z| z.matmul(&weights).tanh().view([-1, c, h, w]), meta)
    }

    /// Rewrites the JSON sidecar beside `model` with `edit`.
    pub fn edit_sidecar(model: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
        let side = model.with_extension("json");
        let mut meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&side).unwrap()).unwrap();
        edit(&mut meta);
        std::fs::write(side, meta.to_string()).unwrap();
    }

    fn schema(classes: &[(&str, &[&str])]) -> serde_json::Value {
        classes.iter().map(|(g, c)| serde_json::json!({"name": g, "classes": c})).collect()
    }

    /// Images -> two binary groups from the channel means (probabilities).
    pub fn classifier(dir: &Path) -> PathBuf {
        classifier_sized(dir, "clf", 8, 8)
    }

    /// The same classifier (it takes any image size), with a sidecar declaring an input of `height` x `width`.
    pub fn classifier_sized(dir: &Path, name: &str, height: i64, width: i64) -> PathBuf {
        // red: R above G; blue: B above G (balanced by symmetry).
        let w = Tensor::from_slice(&[20.0f32, 0.0, -20.0, -20.0, 0.0, 20.0]).view([3, 2]);
        let groups = schema(&[("red", &["no", "yes"]), ("blue", &["no", "yes"])]);
        save(dir, name, Tensor::zeros([2, 3, 8, 8], (Kind::Float, tch::Device::Cpu)), move |x| {
            let s = x.mean_dim([2i64, 3].as_slice(), false, Kind::Float).matmul(&w); // N x 2
            let a = s.select(1, 0).unsqueeze(1);
            let b = s.select(1, 1).unsqueeze(1);
            Tensor::cat(&[Tensor::cat(&[-&a, a], 1).softmax(1, Kind::Float), Tensor::cat(&[-&b, b], 1).softmax(1, Kind::Float)], 1)
        }, serde_json::json!({"format": "subspace.classifier/1", "name": "toy",
            "input": {"channels": 3, "height": height, "width": width, "range": [0.0, 1.0]},
            "output": "probabilities", "groups": groups}))
    }

    /// A classifier whose output leaves [0, 1].
    pub fn unbounded_classifier(dir: &Path) -> PathBuf {
        let groups = schema(&[("red", &["no", "yes"]), ("blue", &["no", "yes"])]);
        save(dir, "unbounded", Tensor::zeros([2, 3, 8, 8], (Kind::Float, tch::Device::Cpu)), |x| {
            x.mean_dim([2i64, 3].as_slice(), false, Kind::Float).narrow(1, 0, 2).repeat([1, 2]) * 10.0 + 5.0
        }, serde_json::json!({"format": "subspace.classifier/1", "input": {"height": 8, "width": 8}, "groups": groups}))
    }

    /// A classifier with 4 outputs whose schema lists 3 classes.
    pub fn mis_sized_classifier(dir: &Path) -> PathBuf {
        let groups = schema(&[("colour", &["red", "green", "blue"])]);
        save(dir, "missized", Tensor::zeros([2, 3, 8, 8], (Kind::Float, tch::Device::Cpu)), |x| {
            x.mean_dim([2i64, 3].as_slice(), false, Kind::Float).narrow(1, 0, 2).repeat([1, 2]).softmax(1, Kind::Float)
        }, serde_json::json!({"format": "subspace.classifier/1", "input": {"height": 8, "width": 8}, "groups": groups}))
    }
}
