//! A plugin written outside the workspace (examples/third-party-plugin, its own crate and workspace, SDK only),
//! loaded with `--plugins` next to the built-in nodes and run in one graph with them.

use serde_json::json;
use std::process::Command;
use subspace_tests::*;

/// The outside plugin's library, built by `make build` into target/release.
fn outside_plugin() -> tempfile::TempDir {
    // Checked against its sources; `make build` builds examples/third-party-plugin.
    let lib = library("acme_image_difference");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&lib, dir.path().join(lib.file_name().unwrap())).unwrap();
    dir
}

#[test]
fn an_outside_plugin_runs_in_one_graph_with_the_built_in_nodes() {
    let plugins = outside_plugin();
    let models = tempfile::tempdir().unwrap();
    let gen = toy::generator(models.path()).display().to_string();
    let graph = |seed_after: i64, link_before: &str| {
        G::new()
            .node("a", "subspace.generator", json!({"model": gen, "count": 3, "seed": 1}))
            .node("b", "subspace.generator", json!({"model": gen, "count": 3, "seed": seed_after}))
            .node("diff", "acme.image_difference", json!({"gain": 2.0}))
            .node("grid", "subspace.save_grid", json!({"file": "heat.png"}))
            .link(link_before, "diff.before")
            .link("b.images", "diff.after")
            .link("diff.heat", "grid.images")
            .out("diff.rms")
            .out("grid")
    };
    let out = tempfile::tempdir().unwrap();
    let run = |g: &G| {
        let file = out.path().join("g.json");
        std::fs::write(&file, serde_json::to_string(&g.0).unwrap()).unwrap();
        Command::new(host_binary())
            .args(["--device", "cpu", "--plugins", plugins.path().to_str().unwrap(), "run", file.to_str().unwrap()])
            .args(["--out", out.path().to_str().unwrap(), "--json"])
            .output()
            .unwrap()
    };
    let rms = |o: &std::process::Output| -> f64 {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        report["outputs"]["diff"]["rms"].as_f64().unwrap_or_else(|| panic!("{report}"))
    };
    assert_eq!(rms(&run(&graph(1, "a.images"))), 0.0, "the same pictures do not differ");
    let changed = rms(&run(&graph(2, "a.images")));
    assert!(changed > 0.01 && changed < 1.0, "{changed}");
    let heat = image::open(out.path().join("heat.png")).unwrap().to_rgb8();
    assert!(heat.pixels().any(|p| p[0] > 60 && p[0] > 2 * p[1]), "the heat map is red where pictures differ");

    // Its typed ports are checked like any built-in node's: codes are not images.
    let wrong = run(&graph(2, "a.codes"));
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(!wrong.status.success());
    assert!(err.contains("diff") && err.contains("before") && err.contains("latents"), "{err}");
}
