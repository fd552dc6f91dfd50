//! The shipped preset on the shipped default world, through the `subspace` CLI and the real plugins: everything
//! the demo promises is written, the fit predicts held-out labels, and edits reach their class per the
//! independent evaluation classifier.

use serde_json::Value as Json;
use std::process::Command;
use subspace_tests::*;

fn read_json(path: &std::path::Path) -> Json {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_demo_preset_runs_end_to_end_on_the_default_world() {
    let out = tempfile::tempdir().unwrap();
    let plugins = release_dir().join("plugins");
    assert!(plugins.join("libsubspace_plugin_method.so").exists(), "run `make build` first (links the plugins into {})", plugins.display());
    let status = Command::new(host_binary())
        .current_dir(repo_root())
        .args(["--device", "cpu", "run", "examples/presets/demo.json", "--out", out.path().to_str().unwrap()])
        // A smaller sample than the demo's, to keep the test quick; the figures in docs come from the full demo.
        .args(["--set", "sample.count=5000", "--set", "gauss.steps=200", "--set", "gmm.steps=80"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));

    let scores = read_json(&out.path().join("edit-scores.json"));
    let classes: Vec<String> = scores["classes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
    assert_eq!(classes.len(), 13, "{classes:?}");
    for class in &classes {
        let png = out.path().join(format!("edits/edit-{class}.png"));
        let img = image::image_dimensions(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        let aspect = img.1 as f64 / img.0 as f64;
        assert!((aspect - 8.0 / 6.0).abs() < 0.1, "{class}: expected 8 pictures by 6 ratios, got {img:?}");
    }
    for f in ["mixture.safetensors", "mixture.json", "curves-single-gauss.png", "curves-gmm.png", "gmm-report.json", "run-report.md"] {
        assert!(out.path().join(f).exists(), "{f} missing");
    }

    let gauss = read_json(&out.path().join("single-gauss-report.json"));
    for (class, auc) in gauss["auc"].as_object().unwrap() {
        assert!(auc.as_f64().unwrap() >= 0.9, "held-out ROC AUC of {class}: {auc}");
    }
    for t in scores["targets"].as_array().unwrap() {
        let last = t["points"].as_array().unwrap().last().unwrap();
        assert_eq!(last["ratio"].as_f64(), Some(1.0));
        let s = last["success"].as_f64().unwrap();
        assert!(s >= 0.8, "editing toward {} at a = 1 reached it for {s} of the pictures", t["target"]);
    }
}
