//! The method nodes end to end on the toy world: fit, refine, edit, render, re-label; files saved and loaded.

use serde_json::json;
use subspace_host::{NodeStatus, Problem, ValidationError};
use subspace_sdk::declare::PortValue;
use subspace_sdk::edits::{EditLayout, EditScores};
use subspace_sdk::{ErrorKind, Value};
use subspace_tests::*;

fn text(r: &subspace_host::RunReport, node: &str, port: &str) -> serde_json::Value {
    match r.output(node, port) {
        Some(Value::Text(t)) => serde_json::from_str(t.as_str()).unwrap_or_else(|_| json!(t.as_str())),
        other => panic!("{node}.{port}: {other:?}; status {:?}", r.status),
    }
}

/// A typed output (an edit layout, edit scores), read as the node that takes it reads it.
fn typed<T: PortValue>(r: &subspace_host::RunReport, node: &str, port: &str) -> T {
    match r.output(node, port) {
        Some(v) => T::from_value(port, v).unwrap_or_else(|e| panic!("{node}.{port}: {e}")),
        None => panic!("{node}.{port} missing; status {:?}", r.status),
    }
}

/// Fit on the toy world, edit 10 fresh codes toward every class, render and re-label the edits.
fn pipeline(gen: &str, clf: &str, mode: &str) -> G {
    toy_fit(gen, clf, 3000, json!({"steps": 60, "rank": 2}), json!({"steps": 80, "samples": 8, "lr": 0.01}))
        .node("save", "subspace.save_fit", json!({"file": "toy"}))
        .node("fresh", "subspace.generator", json!({"model": gen, "count": 10, "seed": 99, "render": false}))
        .node("edit", "subspace.attribute_edit", json!({"target": "all", "steps": 3, "mode": mode}))
        .node("render", "subspace.generator", json!({"model": gen}))
        .node("judge", "subspace.classifier", json!({"model": clf}))
        .link("gmm.mixture", "save.fit")
        .link("fresh.codes", "edit.codes")
        .link("gmm.mixture", "edit.mixture")
        .link("edit.codes", "render.codes")
        .link("render.images", "judge.images")
        .node("score", "subspace.edit_score", json!({}))
        .link("judge.labels", "score.labels")
        .link("edit.layout", "score.layout")
        .link("render.images", "score.images")
        .out("score.report")
        .out("gauss.report")
        .out("gmm.report")
        .out("gmm.curves")
        .out("save")
        .out("edit.layout")
        .out("judge.labels")
}

/// Fraction of edits at the last ratio whose target group is classified as the target, per target.
fn success(labels: &tch::Tensor, layout: &EditLayout, schema: &subspace_sdk::LabelSchema) -> Vec<(String, f64)> {
    let (s, t) = (layout.samples, layout.steps);
    layout
        .targets
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let col = schema.column(name).unwrap();
            let range = schema.group_range(schema.columns()[col].0);
            let rows = labels.narrow(0, i as i64 * s * t, s * t).view([s, t, -1]).select(1, t - 1);
            let hit =
                rows.narrow(1, range.start as i64, range.len() as i64).argmax(1, false).eq((col - range.start) as i64);
            (name.to_string(), hit.to_kind(tch::Kind::Float).mean(tch::Kind::Float).double_value(&[]))
        })
        .collect()
}

#[test]
fn fit_refine_edit_and_relabel_on_the_toy_world() {
    let dir = tempfile::tempdir().unwrap();
    let gen = toy::generator(dir.path()).display().to_string();
    let clf = toy::classifier(dir.path()).display().to_string();
    let e = evaluator(product_registry());
    let r = run_at(&e, dir.path(), &pipeline(&gen, &clf, "lerp"));
    assert!(r.ok(), "{:#?}", r.status);

    let gauss = text(&r, "gauss", "report");
    assert!(gauss["min_auc"].as_f64().unwrap() >= 0.9, "held-out AUC: {gauss}");
    let gmm = text(&r, "gmm", "report");
    let (first, last) = (gmm["first"]["total"].as_f64().unwrap(), gmm["last"]["total"].as_f64().unwrap());
    assert!(last < first, "GMMFit loss did not decrease: {first} -> {last}");
    // Purity: the fraction of a component's rendered samples that the classifier puts in its class.
    let purity =
        |key: &str| -> Vec<f64> { gmm[key].as_object().unwrap().values().map(|v| v.as_f64().unwrap()).collect() };
    let (before, after) = (purity("purity_before"), purity("purity"));
    assert!(after.iter().all(|&p| p > 0.6), "a component lost its semantic: {after:?}");
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(
        mean(&after) > mean(&before),
        "the render-relabel term did not sharpen the components: {before:?} -> {after:?}"
    );

    let Some(Value::Labels(labels)) = r.output("judge", "labels") else { panic!() };
    let layout: EditLayout = typed(&r, "edit", "layout");
    assert_eq!(labels.probs.tensor().size()[0], 4 * 10 * 3);
    let scored: EditScores = typed(&r, "score", "report");
    for (i, (class, s)) in success(&labels.probs.tensor(), &layout, &labels.schema).into_iter().enumerate() {
        assert!(s >= 0.7, "edit toward {class} succeeded for {s}");
        let t = &scored.targets[i];
        assert_eq!(t.target, class);
        let scored_success = t.points[2].success;
        assert!((scored_success - s).abs() < 1e-6, "EditScore disagrees on {class}: {scored_success} vs {s}");
        assert_eq!(t.points[0].leakage, 0.0, "an unedited picture cannot leak");
        assert_eq!(t.points[0].movement, Some(0.0));
        assert!(t.points[2].movement.unwrap() > 0.0);
    }

    // The saved mixture loads back and edits the same way without a refit.
    let saved = dir.path().join("toy.safetensors");
    assert!(saved.exists() && dir.path().join("toy.json").exists());
    assert!(std::fs::read_dir(dir.path()).unwrap().all(|f| !f
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".tmp")));
    let reload = G::new()
        .node("load", "subspace.load_mixture", json!({"file": saved.display().to_string()}))
        .node("fresh", "subspace.generator", json!({"model": gen, "count": 10, "seed": 99, "render": false}))
        .node("edit", "subspace.attribute_edit", json!({"target": "all", "steps": 3}))
        .link("fresh.codes", "edit.codes")
        .link("load.mixture", "edit.mixture")
        .out("edit.codes");
    let again = run_at(&e, dir.path(), &reload);
    let (Some(Value::Latents(a)), Some(Value::Latents(b))) = (
        again.output("edit", "codes"),
        run_at(&e, dir.path(), &pipeline(&gen, &clf, "lerp").out("edit.codes")).output("edit", "codes").cloned(),
    ) else {
        panic!("{:?}", again.status)
    };
    assert!(a.tensor().allclose(&b.tensor(), 1e-5, 1e-5, false), "loaded mixture edits differently");
}

#[test]
fn edit_modes_and_multi_attribute_targets() {
    let dir = tempfile::tempdir().unwrap();
    let gen = toy::generator(dir.path()).display().to_string();
    let clf = toy::classifier(dir.path()).display().to_string();
    let e = evaluator(product_registry());
    for mode in ["slerp", "shift", "region"] {
        let r = run_at(&e, dir.path(), &pipeline(&gen, &clf, mode));
        let Some(Value::Labels(labels)) = r.output("judge", "labels") else { panic!("{:?}", r.status) };
        let s = success(&labels.probs.tensor(), &typed(&r, "edit", "layout"), &labels.schema);
        let mean = s.iter().map(|(_, v)| v).sum::<f64>() / s.len() as f64;
        assert!(mean >= 0.75, "{mode}: {s:?}");
    }
    let multi = pipeline(&gen, &clf, "lerp").set("edit", "target", json!("red.yes+blue.yes, red.no+blue.no")).set(
        "edit",
        "zs",
        json!("mean"),
    );
    let r = run_at(&e, dir.path(), &multi);
    let Some(Value::Labels(labels)) = r.output("judge", "labels") else { panic!("{:?}", r.status) };
    assert_eq!(typed::<EditLayout>(&r, "edit", "layout").targets, ["red.yes+blue.yes", "red.no+blue.no"]);
    let p = labels.probs.tensor().view([2, 10, 3, 4]).select(2, 2); // ratio 1
    let both_yes = p
        .get(0)
        .narrow(1, 1, 1)
        .gt(0.5)
        .logical_and(&p.get(0).narrow(1, 3, 1).gt(0.5))
        .to_kind(tch::Kind::Float)
        .mean(tch::Kind::Float)
        .double_value(&[]);
    let both_no = p
        .get(1)
        .narrow(1, 0, 1)
        .gt(0.5)
        .logical_and(&p.get(1).narrow(1, 2, 1).gt(0.5))
        .to_kind(tch::Kind::Float)
        .mean(tch::Kind::Float)
        .double_value(&[]);
    assert!(both_yes >= 0.8 && both_no >= 0.8, "two attributes at once: {both_yes}, {both_no}");

    // spread truncates sampled control vectors toward the component mean: 0 gives the mean's edit, 1 does not.
    let codes = |spread: f64, zs: &str| -> tch::Tensor {
        let g = pipeline(&gen, &clf, "lerp")
            .set("edit", "spread", json!(spread))
            .set("edit", "zs", json!(zs))
            .out("edit.codes");
        match run_at(&e, dir.path(), &g).output("edit", "codes") {
            Some(Value::Latents(t)) => t.tensor(),
            other => panic!("{other:?}"),
        }
    };
    let mean = codes(1.0, "mean");
    assert!(codes(0.0, "sample").allclose(&mean, 1e-5, 1e-5, false), "spread 0 should edit toward the component mean");
    let (full, half) = (codes(1.0, "sample"), codes(0.5, "sample"));
    let dist = |t: &tch::Tensor| (t - &mean).square().mean(tch::Kind::Float).double_value(&[]);
    assert!(
        dist(&half) > 0.0 && dist(&half) < dist(&full),
        "spread 0.5 should lie between: {} vs {}",
        dist(&half),
        dist(&full)
    );

    // Region path "line": the a = 1 column is the "solve" path's, and a = 0.5 lies halfway along the line to it.
    let region = |path: &str| -> tch::Tensor {
        let g = pipeline(&gen, &clf, "region").set("edit", "path", json!(path)).out("edit.codes");
        match run_at(&e, dir.path(), &g).output("edit", "codes") {
            Some(Value::Latents(t)) => t.tensor().view([4, 10, 3, -1]), // targets, samples, ratios 0, 0.5, 1
            other => panic!("{other:?}"),
        }
    };
    let (solve, line) = (region("solve"), region("line"));
    let (z, end) = (line.select(2, 0), line.select(2, 2));
    assert!(end.allclose(&solve.select(2, 2), 1e-4, 1e-4, false), "a = 1 should be the solved point");
    assert!(line.select(2, 1).allclose(&((&z + &end) * 0.5), 1e-5, 1e-5, false), "a = 0.5 should be the midpoint");
    assert!((&end - &z).abs().max().double_value(&[]) > 0.1, "the edit should move the codes");
    // The toy world's groups have two classes each, so the default ("auto") takes the line.
    assert!(region("auto").allclose(&line, 1e-5, 1e-5, false), "auto should take the line for two-class groups");

    let bad = run_at(&e, dir.path(), &pipeline(&gen, &clf, "lerp").set("edit", "target", json!("red.maybe")));
    match &bad.status["edit"] {
        NodeStatus::Failed { error } => {
            assert_eq!(error.kind, ErrorKind::InvalidParam);
            assert!(error.message.contains("red.maybe") && error.message.contains("red.yes"), "{}", error.message);
        }
        s => panic!("{s:?}"),
    }
}

/// a = 0 is the unedited code in every mode, exactly; scored against the render of the unedited codes, the
/// ratio-0 column has not moved, and the report says what it was measured against.
#[test]
fn ratio_zero_is_the_unedited_code_in_every_mode_and_scores_use_the_unedited_render() {
    let dir = tempfile::tempdir().unwrap();
    let gen = toy::generator(dir.path()).display().to_string();
    let clf = toy::classifier(dir.path()).display().to_string();
    let e = evaluator(product_registry());
    let latents = |r: &subspace_host::RunReport, node: &str| match r.output(node, "codes") {
        Some(Value::Latents(t)) => t.tensor(),
        other => panic!("{node}: {other:?}; {:?}", r.status),
    };
    for (mode, path) in
        [("lerp", "auto"), ("slerp", "auto"), ("shift", "auto"), ("region", "solve"), ("region", "line")]
    {
        let g = pipeline(&gen, &clf, mode)
            .set("edit", "path", json!(path))
            .node("unedited", "subspace.generator", json!({"model": gen}))
            .node("judge_unedited", "subspace.classifier", json!({"model": clf}))
            .node("honest", "subspace.edit_score", json!({"method": mode}))
            .link("fresh.codes", "unedited.codes")
            .link("unedited.images", "judge_unedited.images")
            .link("judge.labels", "honest.labels")
            .link("edit.layout", "honest.layout")
            .link("render.images", "honest.images")
            .link("judge_unedited.labels", "honest.unedited_labels")
            .link("unedited.images", "honest.unedited_images")
            .out("edit.codes")
            .out("fresh.codes")
            .out("honest.report");
        let r = run_at(&e, dir.path(), &g);
        let (z, edited) = (latents(&r, "fresh"), latents(&r, "edit"));
        let first = edited.view([4, 10, 3, -1]).select(2, 0);
        for t in 0..4 {
            let gap = (first.get(t) - &z).abs().max().double_value(&[]);
            assert!(first.get(t).equal(&z), "{mode}/{path}: target {t}'s a = 0 column is {gap} from z");
        }
        let scores: EditScores = typed(&r, "honest", "report");
        assert_eq!(scores.reference, "unedited");
        for t in &scores.targets {
            let p0 = &t.points[0];
            assert!(p0.movement.unwrap() < 1e-4 && p0.leakage < 1e-4, "{mode}: {} moved at a = 0: {p0:?}", t.target);
            assert!(p0.ssim.unwrap() > 0.999, "{p0:?}");
            let last = t.points.last().unwrap();
            assert!(last.movement.unwrap() > 0.01 && last.ssim.unwrap() < p0.ssim.unwrap(), "{mode}: {last:?}");
            assert_eq!(t.pictures.as_ref().unwrap().success[0].len(), 10);
        }
    }
}

#[test]
fn fitting_refuses_labels_that_miss_a_class_or_disagree_in_length() {
    let dir = tempfile::tempdir().unwrap();
    let gen = toy::generator(dir.path()).display().to_string();
    let clf = toy::classifier(dir.path()).display().to_string();
    let e = evaluator(product_registry());
    // Two samples cannot cover all four classes.
    let g = G::new()
        .node("sample", "subspace.generator", json!({"model": gen, "count": 2, "seed": 1}))
        .node("label", "subspace.classifier", json!({"model": clf}))
        .node("other", "subspace.generator", json!({"model": gen, "count": 3, "seed": 1, "render": false}))
        .node("fit", "subspace.single_gauss_fit", json!({"holdout": 0.0}))
        .node("mismatch", "subspace.single_gauss_fit", json!({}))
        .link("sample.images", "label.images")
        .link("sample.codes", "fit.codes")
        .link("label.labels", "fit.labels")
        .link("other.codes", "mismatch.codes")
        .link("label.labels", "mismatch.labels")
        .out("fit")
        .out("mismatch");
    let r = run_at(&e, dir.path(), &g);
    let msg = |n: &str| match &r.status[n] {
        NodeStatus::Failed { error } => {
            (error.location.clone().into_option().map(|s| s.to_string()), error.message.to_string())
        }
        s => panic!("{n}: {s:?}"),
    };
    let (loc, m) = msg("mismatch");
    assert_eq!(loc.as_deref(), Some("labels"));
    assert!(m.contains("2 label rows for 3 codes"), "{m}");
    let (_, m) = msg("fit");
    assert!(m.contains("too rare over 2 codes") && m.contains("more codes"), "{m}");
}

#[test]
fn edit_layouts_and_scores_refuse_wrong_links_at_validation() {
    let r = registry_of(&["subspace_plugin_method"]);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    let g = G::new()
        .node("gauss", "subspace.single_gauss_fit", json!({}))
        .node("edit", "subspace.attribute_edit", json!({}))
        .node("score", "subspace.edit_score", json!({}))
        .node("rescore", "subspace.edit_score", json!({}))
        .node("compare", "subspace.compare_edits", json!({}))
        .link("edit.layout", "compare.a")
        .link("gauss.report", "compare.b")
        .link("score.report", "rescore.layout")
        .link("score.report", "compare.c")
        .out("compare.report");
    let errors = subspace_host::validate(&g.0, &r).err().expect("invalid");
    let mismatch = |node: &str, port: &str| {
        let at = |e: &ValidationError| e.node.as_deref() == Some(node) && e.location.as_deref() == Some(port);
        errors.iter().any(|e| e.problem == Problem::TypeMismatch && at(e))
    };
    assert!(mismatch("compare", "a"), "a layout is not edit scores: {errors:#?}");
    assert!(mismatch("compare", "b"), "text is not edit scores: {errors:#?}");
    assert!(mismatch("rescore", "layout"), "edit scores are not a layout: {errors:#?}");
    assert!(!mismatch("compare", "c"), "edit scores feed a comparison: {errors:#?}");
}

/// How far two runs of one fit may differ (largest absolute difference of any fitted tensor, relative to that
/// tensor's largest magnitude) when the worker count and libtorch's thread count differ: docs/EVALUATION.md.
const FIT_TOLERANCE: f64 = 1e-3;

/// The same graph with 1 and 4 workers and 1 and 2 libtorch threads gives the same fit within FIT_TOLERANCE, and
/// the same settings twice give the same fit exactly.
#[test]
fn a_fit_agrees_with_itself_across_worker_and_thread_counts() {
    let dir = tempfile::tempdir().unwrap();
    let gen = toy::generator(dir.path()).display().to_string();
    let clf = toy::classifier(dir.path()).display().to_string();
    let graph =
        toy_fit(&gen, &clf, 2000, json!({"steps": 60, "covariance": "full"}), json!({"steps": 40, "samples": 8}))
            .node("save", "subspace.save_fit", json!({"file": "mix"}))
            .link("gmm.mixture", "save.fit")
            .out("save");
    let file = dir.path().join("fit.json");
    std::fs::write(&file, serde_json::to_string(&graph.0).unwrap()).unwrap();
    let fit = |name: &str, workers: &str, threads: &str| -> Vec<(String, tch::Tensor)> {
        let out = dir.path().join(name);
        let status = std::process::Command::new(host_binary())
            .args(["--device", "cpu", "run"])
            .arg(&file)
            .args(["--no-cache", "--workers", workers, "--out"])
            .arg(&out)
            .env("OMP_NUM_THREADS", threads)
            .output()
            .unwrap();
        assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
        let mut t = tch::Tensor::read_safetensors(out.join("mix.safetensors")).unwrap();
        t.sort_by(|a, b| a.0.cmp(&b.0));
        t
    };
    let gap = |a: &[(String, tch::Tensor)], b: &[(String, tch::Tensor)]| -> f64 {
        assert_eq!(a.iter().map(|x| &x.0).collect::<Vec<_>>(), b.iter().map(|x| &x.0).collect::<Vec<_>>());
        a.iter()
            .zip(b)
            .map(|((_, x), (_, y))| {
                let scale = x.abs().max().double_value(&[]).max(1e-6);
                (x - y).abs().max().double_value(&[]) / scale
            })
            .fold(0.0, f64::max)
    };
    let base = fit("one", "1", "1");
    assert_eq!(gap(&base, &fit("again", "1", "1")), 0.0, "the same settings should give the same fit");
    let other = fit("four", "4", "2");
    let g = gap(&base, &other);
    eprintln!("largest relative difference between 1 worker / 1 thread and 4 workers / 2 threads: {g:e}");
    assert!(g <= FIT_TOLERANCE, "fits differ by {g} (tolerance {FIT_TOLERANCE})");
}
