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

/// A built library of the workspace, e.g. `subspace_test_nodes`, checked to be newer than its sources (and the
/// SDK's), so a test never runs against a stale plugin.
pub fn library(name: &str) -> PathBuf {
    let p = release_dir().join(format!("lib{name}{}", std::env::consts::DLL_SUFFIX));
    assert!(
        p.exists(),
        "{} is missing: run `make build` (cargo build --release --workspace) before the tests",
        p.display()
    );
    let built = std::fs::metadata(&p).and_then(|m| m.modified()).expect("library time");
    let root = repo_root();
    let crate_dir = match name {
        "acme_image_difference" => root.join("examples/third-party-plugin"),
        _ => root
            .join("plugins")
            .join(name.trim_start_matches("subspace_").trim_start_matches("plugin_").replace('_', "-")),
    };
    for dir in [crate_dir.join("src"), root.join("sdk/src")] {
        if let Some((newest, file)) = newest_file(&dir) {
            assert!(
                newest <= built,
                "{} is older than {}: run `make build` before the tests",
                p.display(),
                file.display()
            );
        }
    }
    p
}

/// The most recently modified file under `dir`, with its time.
fn newest_file(dir: &std::path::Path) -> Option<(std::time::SystemTime, PathBuf)> {
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let found =
            if path.is_dir() { newest_file(&path) } else { entry.metadata().ok()?.modified().ok().map(|t| (t, path)) };
        if let Some(f) = found {
            if newest.as_ref().is_none_or(|n| f.0 > n.0) {
                newest = Some(f);
            }
        }
    }
    newest
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

impl Default for G {
    fn default() -> Self {
        Self::new()
    }
}

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

/// Every product plugin (models, method, results, baselines, images), loaded once per test process.
pub fn all_product_plugins() -> Arc<Registry> {
    static R: OnceLock<Arc<Registry>> = OnceLock::new();
    R.get_or_init(|| {
        let r = registry_of(&[
            "subspace_plugin_models",
            "subspace_plugin_method",
            "subspace_plugin_results",
            "subspace_plugin_baselines",
            "subspace_plugin_images",
        ]);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        Arc::new(r)
    })
    .clone()
}

/// The child side of [`kill_writer_at_random`]: calls `write(dir, i)` for i = 0, 1, ... (dir read from `env`;
/// nothing when it is unset, as in a plain test run), touching `dir/ready` after the first write, until killed or a
/// minute has passed.
pub fn write_until_killed(env: &str, mut write: impl FnMut(&std::path::Path, usize)) {
    let Ok(dir) = std::env::var(env) else { return };
    let dir = PathBuf::from(dir);
    let start = std::time::Instant::now();
    for i in 0.. {
        write(&dir, i);
        if i == 0 {
            std::fs::write(dir.join("ready"), b"").unwrap();
        }
        if start.elapsed() > std::time::Duration::from_secs(60) {
            break;
        }
    }
}

/// Runs test `name` of this test binary (an ignored test that writes in a loop and touches `dir/ready` once it
/// has started, reading `dir` from `env`) as a child process, and kills it at a random moment up to `max_us`
/// microseconds after it is ready: how the tests prove that a kill never leaves a torn file.
pub fn kill_writer_at_random(name: &str, env: &str, dir: &std::path::Path, max_us: u64, round: usize) {
    use std::time::{Duration, Instant};
    let _ = std::fs::remove_file(dir.join("ready"));
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([name, "--exact", "--ignored", "--test-threads=1"])
        .env(env, dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn the writing child");
    let start = Instant::now();
    while !dir.join("ready").exists() {
        if let Some(status) = child.try_wait().expect("child status") {
            panic!("round {round}: the writing child exited first ({status})");
        }
        assert!(start.elapsed() < Duration::from_secs(120), "round {round}: the writing child never wrote");
        std::thread::sleep(Duration::from_millis(5));
    }
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
    std::thread::sleep(Duration::from_micros(nanos % max_us.max(1)));
    child.kill().expect("kill the child");
    child.wait().expect("reap the child");
}

/// Small TorchScript models made by tracing, with sidecars: a toy world for contract tests.
pub mod toy {
    use std::path::{Path, PathBuf};
    use tch::{CModule, Kind, Tensor};

    fn save(dir: &Path, name: &str, input: Tensor, f: impl Fn(&Tensor) -> Tensor, meta: serde_json::Value) -> PathBuf {
        save_many(dir, name, &[input], move |xs| vec![f(&xs[0])], meta)
    }

    /// Traces `f` over several inputs: forward(x0, x1, ...).
    fn save_many(
        dir: &Path,
        name: &str,
        inputs: &[Tensor],
        mut f: impl FnMut(&[Tensor]) -> Vec<Tensor>,
        meta: serde_json::Value,
    ) -> PathBuf {
        let m = CModule::create_by_tracing("toy", "forward", inputs, &mut f).unwrap();
        let path = dir.join(format!("{name}.pt"));
        m.save(&path).unwrap();
        std::fs::write(path.with_extension("json"), meta.to_string()).unwrap();
        path
    }

    /// The toy generators' weights come from this seed, through a local generator rather than torch's global one
    /// (tests running at the same time draw from that one too), so twins made apart share their weights.
    fn seeded() -> subspace_sdk::rand_chacha::ChaCha8Rng {
        subspace_sdk::rand_chacha::rand_core::SeedableRng::seed_from_u64(3)
    }
    use subspace_sdk::context::randn;

    /// z (N x 8) -> tanh(z W) as N x 3 x 8 x 8 in [-1, 1].
    pub fn generator(dir: &Path) -> PathBuf {
        generator_sized(dir, "gen", 8, [3, 8, 8])
    }

    /// z (N x dim) -> tanh(z W) as N x C x H x W in [-1, 1], saved as `<name>.pt` with a matching sidecar.
    pub fn generator_sized(dir: &Path, name: &str, dim: i64, [c, h, w]: [i64; 3]) -> PathBuf {
        let weights = randn(&mut seeded(), &[dim, c * h * w]);
        let meta = serde_json::json!({"format": "subspace.generator/1", "name": "toy",
            "latent": {"dim": dim, "distribution": "normal"},
            "output": {"channels": c, "height": h, "width": w, "range": [-1.0, 1.0]}});
        let input = Tensor::zeros([2, dim], (Kind::Float, tch::Device::Cpu));
        save(dir, name, input, move |z| z.matmul(&weights).tanh().view([-1, c, h, w]), meta)
    }

    /// How a twin of the toy generator takes its codes and gives its images; every form renders the same images
    /// as `generator_sized` with the same `dim` and size (the same weights, rearranged).
    #[derive(Clone, Copy, Debug)]
    pub enum Form {
        /// forward(z: N x dim x 1 x 1), a transposed convolution as in DCGAN: fails on N x dim.
        Conv,
        /// forward(z, c: N x k): adds c times a second weight, so that c = 0 gives the toy images.
        Conditional(i64),
        /// Images N x H x W x C.
        Nhwc,
        /// Images in [0, 255].
        Bytes,
    }

    /// A twin of `generator_sized(dir, _, dim, [c, h, w])` in `form`, with a sidecar describing it.
    pub fn generator_form(dir: &Path, name: &str, form: Form, dim: i64, [c, h, w]: [i64; 3]) -> PathBuf {
        let cpu = (Kind::Float, tch::Device::Cpu);
        let mut rng = seeded();
        let weights = randn(&mut rng, &[dim, c * h * w]);
        let mut meta = serde_json::json!({"format": "subspace.generator/1", "name": "toy",
            "latent": {"dim": dim, "distribution": "normal"},
            "output": {"channels": c, "height": h, "width": w, "range": [-1.0, 1.0]}});
        let z = Tensor::zeros([2, dim], cpu);
        let image = move |x: Tensor| x.tanh().view([-1, c, h, w]);
        match form {
            Form::Conv => {
                meta["latent"]["shape"] = serde_json::json!([dim, 1, 1]);
                let kernel = weights.view([dim, c, h, w]);
                let f = move |z: &Tensor| z.conv_transpose2d(&kernel, None::<Tensor>, 1, 0, 0, 1, 1).tanh();
                save(dir, name, Tensor::zeros([2, dim, 1, 1], cpu), f, meta)
            }
            Form::Conditional(k) => {
                meta["arguments"] = serde_json::json!([{"name": "c", "zeros": k}]);
                let wc = randn(&mut rng, &[k, c * h * w]);
                let f = move |xs: &[Tensor]| vec![image(xs[0].matmul(&weights) + xs[1].matmul(&wc))];
                save_many(dir, name, &[z, Tensor::zeros([2, k], cpu)], f, meta)
            }
            Form::Nhwc => {
                meta["output"]["layout"] = "NHWC".into();
                save(dir, name, z, move |z| image(z.matmul(&weights)).permute([0, 2, 3, 1]), meta)
            }
            Form::Bytes => {
                meta["output"]["range"] = serde_json::json!([0.0, 255.0]);
                save(dir, name, z, move |z| (image(z.matmul(&weights)) + 1.0) * 127.5, meta)
            }
        }
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
        save(
            dir,
            name,
            Tensor::zeros([2, 3, 8, 8], (Kind::Float, tch::Device::Cpu)),
            move |x| {
                let s = x.mean_dim([2i64, 3].as_slice(), false, Kind::Float).matmul(&w); // N x 2
                let a = s.select(1, 0).unsqueeze(1);
                let b = s.select(1, 1).unsqueeze(1);
                Tensor::cat(
                    &[
                        Tensor::cat(&[-&a, a], 1).softmax(1, Kind::Float),
                        Tensor::cat(&[-&b, b], 1).softmax(1, Kind::Float),
                    ],
                    1,
                )
            },
            serde_json::json!({"format": "subspace.classifier/1", "name": "toy",
            "input": {"channels": 3, "height": height, "width": width, "range": [0.0, 1.0]},
            "output": "probabilities", "groups": groups}),
        )
    }

    /// The toy classifier as two independent binary attributes `red` and `blue` (one logit, or one sigmoid, per
    /// attribute): the same labels as `classifier` once each attribute becomes a no/yes group.
    pub fn attribute_classifier(dir: &Path, name: &str, logits: bool) -> PathBuf {
        attribute_classifier_in(dir, name, logits, false)
    }

    /// `attribute_classifier`, taking N x H x W x C images when `nhwc`.
    pub fn attribute_classifier_in(dir: &Path, name: &str, logits: bool, nhwc: bool) -> PathBuf {
        let w = Tensor::from_slice(&[40.0f32, 0.0, -40.0, -40.0, 0.0, 40.0]).view([3, 2]);
        let meta = serde_json::json!({"format": "subspace.classifier/1", "name": "toy-attributes",
            "input": {"channels": 3, "height": 8, "width": 8, "range": [0.0, 1.0],
                      "layout": if nhwc { "NHWC" } else { "NCHW" }},
            "output": if logits { "logits" } else { "probabilities" }, "attributes": ["red", "blue"]});
        let (input, spatial) = if nhwc { ([2, 8, 8, 3], [1i64, 2]) } else { ([2, 3, 8, 8], [2i64, 3]) };
        save(
            dir,
            name,
            Tensor::zeros(input, (Kind::Float, tch::Device::Cpu)),
            move |x| {
                // softmax([-a, a]) is sigmoid(2a): twice the toy classifier's weights.
                let s = x.mean_dim(spatial.as_slice(), false, Kind::Float).matmul(&w);
                if logits {
                    s
                } else {
                    s.sigmoid()
                }
            },
            meta,
        )
    }

    /// The toy attribute classifier (logits) whose `blue` attribute is never present: its logit is -50 whatever
    /// the picture, so `blue.yes` is never predicted.
    pub fn never_blue_classifier(dir: &Path) -> PathBuf {
        let w = Tensor::from_slice(&[40.0f32, 0.0, -40.0, -40.0, 0.0, 40.0]).view([3, 2]);
        let meta = serde_json::json!({"format": "subspace.classifier/1", "name": "toy-never-blue",
            "input": {"channels": 3, "height": 8, "width": 8, "range": [0.0, 1.0]},
            "output": "logits", "attributes": ["red", "blue"]});
        let f = move |x: &Tensor| {
            let s = x.mean_dim([2i64, 3].as_slice(), false, Kind::Float).matmul(&w);
            Tensor::cat(&[s.narrow(1, 0, 1), s.narrow(1, 1, 1) * 0.0 - 50.0], 1)
        };
        save(dir, "never-blue", Tensor::zeros([2, 3, 8, 8], (Kind::Float, tch::Device::Cpu)), f, meta)
    }

    /// A classifier whose output leaves [0, 1].
    pub fn unbounded_classifier(dir: &Path) -> PathBuf {
        let groups = schema(&[("red", &["no", "yes"]), ("blue", &["no", "yes"])]);
        save(
            dir,
            "unbounded",
            Tensor::zeros([2, 3, 8, 8], (Kind::Float, tch::Device::Cpu)),
            |x| x.mean_dim([2i64, 3].as_slice(), false, Kind::Float).narrow(1, 0, 2).repeat([1, 2]) * 10.0 + 5.0,
            serde_json::json!({"format": "subspace.classifier/1", "input": {"height": 8, "width": 8}, "groups": groups}),
        )
    }

    /// A classifier with 4 outputs whose schema lists 3 classes.
    pub fn mis_sized_classifier(dir: &Path) -> PathBuf {
        let groups = schema(&[("colour", &["red", "green", "blue"])]);
        save(
            dir,
            "missized",
            Tensor::zeros([2, 3, 8, 8], (Kind::Float, tch::Device::Cpu)),
            |x| {
                x.mean_dim([2i64, 3].as_slice(), false, Kind::Float)
                    .narrow(1, 0, 2)
                    .repeat([1, 2])
                    .softmax(1, Kind::Float)
            },
            serde_json::json!({"format": "subspace.classifier/1", "input": {"height": 8, "width": 8}, "groups": groups}),
        )
    }
}
