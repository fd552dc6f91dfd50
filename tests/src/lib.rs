//! Support for the end-to-end tests: where the built binaries and plugins are, and a small graph builder.
//! The plugins are the real release libraries, so `cargo build --release --workspace` (or `make build`) must
//! have run first; `make test` does that.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use subspace_host::{graph::{GraphNode, Link}, validate, Evaluator, Graph, Plan, Registry, RunOptions, RunReport};
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
        G(Graph { version: 1, description: String::new(), nodes: vec![], links: vec![], outputs: vec![], editor: serde_json::Value::Null })
    }
    pub fn node(mut self, id: &str, ty: &str, params: serde_json::Value) -> Self {
        let params = params.as_object().cloned().unwrap_or_default().into_iter().collect();
        self.0.nodes.push(GraphNode { id: id.into(), node_type: ty.into(), version: None, params });
        self
    }
    pub fn link(mut self, from: &str, to: &str) -> Self {
        self.0.links.push(Link { from: from.into(), to: to.into() });
        self
    }
    pub fn out(mut self, o: &str) -> Self {
        self.0.outputs.push(o.into());
        self
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
