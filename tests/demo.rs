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
    assert!(
        plugins.join("libsubspace_plugin_method.so").exists(),
        "run `make build` first (links the plugins into {})",
        plugins.display()
    );
    let status = Command::new(host_binary())
        .current_dir(repo_root())
        .args(["--device", "cpu", "run", "examples/presets/demo.json", "--out", out.path().to_str().unwrap()])
        // The demo as shipped, with 32 pictures to edit instead of 8 so that success rates are not too coarse.
        .args(["--set", "pictures.count=32"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));

    let scores = read_json(&out.path().join("edit-scores.json"));
    let classes: Vec<String> =
        scores["classes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
    assert_eq!(classes.len(), 13, "{classes:?}");
    for class in &classes {
        let png = out.path().join(format!("edits/edit-{class}.png"));
        let img = image::open(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display())).to_rgb8();
        // The patent's edit (6 ratios) and the region edit (6 ratios) side by side, 32 pictures each.
        let (w, h) = img.dimensions();
        let aspect = h as f64 / w as f64;
        assert!((aspect - 32.0 / 12.0).abs() < 0.15, "{class}: expected 32 pictures by 2 x 6 ratios, got {w} x {h}");
        // The two edits share their a = 0 column (the same unedited picture) and differ at a = 1.
        let half = (w - 8) / 2;
        let cell = |x0: u32, x1: u32| -> Vec<u8> {
            (0..h).flat_map(|y| (x0..x1).map(move |x| (x, y))).flat_map(|(x, y)| img.get_pixel(x, y).0).collect()
        };
        let (left_first, right_first) = (cell(0, half / 6), cell(half + 8, half + 8 + half / 6));
        assert_eq!(left_first, right_first, "{class}: the a = 0 columns of the two edits should be the same pictures");
        assert_ne!(cell(half - half / 6, half), cell(w - half / 6, w), "{class}: the two edits should differ at a = 1");
    }
    for f in [
        "mixture.safetensors",
        "mixture.json",
        "curves-single-gauss.png",
        "curves-gmm.png",
        "gmm-report.json",
        "run-report.md",
    ] {
        assert!(out.path().join(f).exists(), "{f} missing");
    }

    // Floors that hold on the shipped world (docs/EVALUATION.md has the per-class figures): every fitted Gaussian
    // predicts its own label on held-out codes (ROC AUC >= 0.82, >= 0.9 on average; bangs is the weakest class at
    // about 0.85-0.87, every other class measured >= 0.94), and the paper-faithful edit at a = 1 reaches its class for
    // 90% of the pictures on average (measured 0.97) and for 75% of them in every class (measured >= 0.875 in every
    // class with 32 pictures, bangs the lowest; 0.75-0.84 with the 1.x fits, skin.medium the lowest).
    let gauss = read_json(&out.path().join("single-gauss-report.json"));
    let aucs: Vec<(String, f64)> =
        gauss["auc"].as_object().unwrap().iter().map(|(c, a)| (c.clone(), a.as_f64().unwrap())).collect();
    assert_eq!(aucs.len(), 13);
    for (class, auc) in &aucs {
        assert!(*auc >= 0.82, "held-out ROC AUC of {class}: {auc}");
    }
    let mean_auc = aucs.iter().map(|(_, a)| a).sum::<f64>() / aucs.len() as f64;
    assert!(mean_auc >= 0.9, "mean held-out ROC AUC {mean_auc}");
    let mut successes = Vec::new();
    for t in scores["targets"].as_array().unwrap() {
        let last = t["points"].as_array().unwrap().last().unwrap();
        assert_eq!(last["ratio"].as_f64(), Some(1.0));
        let s = last["success"].as_f64().unwrap();
        assert!(s >= 0.75, "editing toward {} at a = 1 reached it for {s} of the pictures", t["target"]);
        successes.push(s);
    }
    let mean = successes.iter().sum::<f64>() / successes.len() as f64;
    eprintln!("edit success at a = 1 per class: {successes:?}, mean {mean:.3}");
    assert!(mean >= 0.9, "mean edit success at a = 1: {mean} ({successes:?})");
}
