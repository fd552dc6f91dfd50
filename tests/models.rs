//! Contracts of the Generator and Classifier nodes, on toy TorchScript models traced by the test (tests/src/lib.rs).

use serde_json::json;
use subspace_host::NodeStatus;
use subspace_sdk::{ErrorKind, Value};
use subspace_tests::*;

fn tensor(r: &subspace_host::RunReport, node: &str, port: &str) -> tch::Tensor {
    match r.output(node, port) {
        Some(Value::Images(t)) | Some(Value::Latents(t)) | Some(Value::Tensor(t)) => t.tensor(),
        Some(Value::Labels(l)) => l.probs.tensor(),
        other => panic!("{node}.{port}: {other:?}; status {:?}", r.status),
    }
}

fn failure(r: &subspace_host::RunReport, node: &str) -> subspace_sdk::NodeError {
    match &r.status[node] {
        NodeStatus::Failed { error } => error.clone(),
        s => panic!("{node} did not fail: {s:?}"),
    }
}

fn world() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let g = toy::generator(dir.path()).display().to_string();
    let c = toy::classifier(dir.path()).display().to_string();
    (dir, g, c)
}

fn sample(gen: &str, count: i64, seed: i64) -> G {
    G::new().node("gen", "subspace.generator", json!({"model": gen, "count": count, "seed": seed, "batch": 7})).out("gen")
}

#[test]
fn generator_samples_seeded_codes_and_renders_images_in_unit_range() {
    let (_dir, gen, _) = world();
    let e = evaluator(product_registry());
    let a = run(&e, &sample(&gen, 20, 1));
    let (codes, images) = (tensor(&a, "gen", "codes"), tensor(&a, "gen", "images"));
    assert_eq!(codes.size(), [20, 8]);
    assert_eq!(images.size(), [20, 3, 8, 8]);
    assert!(images.min().double_value(&[]) >= 0.0 && images.max().double_value(&[]) <= 1.0);
    assert!(images.std(true).double_value(&[]) > 0.05, "images are flat");
    let b = run(&evaluator(product_registry()), &sample(&gen, 20, 1));
    assert!(codes.equal(&tensor(&b, "gen", "codes")), "same seed, other codes");
    assert!(images.allclose(&tensor(&b, "gen", "images"), 1e-6, 1e-6, false));
    let c = run(&e, &sample(&gen, 20, 2));
    assert!(!codes.equal(&tensor(&c, "gen", "codes")));
    let m = codes.mean(tch::Kind::Float).double_value(&[]);
    assert!(m.abs() < 0.3, "codes are not N(0, I): mean {m}");
}

#[test]
fn generator_renders_given_codes_and_rejects_wrong_dimension_or_nan() {
    let (_dir, gen, _) = world();
    let e = evaluator(product_registry());
    let g = sample(&gen, 6, 0)
        .node("again", "subspace.generator", json!({"model": gen}))
        .link("gen.codes", "again.codes")
        .out("again");
    let r = run(&e, &g);
    assert!(tensor(&r, "gen", "images").allclose(&tensor(&r, "again", "images"), 1e-6, 1e-6, false));

    // Codes of dimension 4 from a tensor source, fed to an 8-dimensional generator.
    let dir = tempfile::tempdir().unwrap();
    let small = toy::generator(dir.path());
    let meta = std::fs::read_to_string(small.with_extension("json")).unwrap().replace("\"dim\":8", "\"dim\":4");
    std::fs::write(small.with_extension("json"), meta).unwrap();
    let bad = G::new()
        .node("four", "subspace.generator", json!({"model": small.display().to_string(), "count": 3, "render": false}))
        .node("eight", "subspace.generator", json!({"model": gen}))
        .link("four.codes", "eight.codes")
        .out("eight");
    let err = failure(&run(&e, &bad), "eight");
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(err.message.contains("dimension 4") && err.message.contains("expects 8"), "{}", err.message);
}

#[test]
fn a_file_that_is_not_torchscript_is_a_clear_model_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fake.pt");
    std::fs::write(&path, b"definitely not a zip archive").unwrap();
    std::fs::write(path.with_extension("json"), r#"{"format":"subspace.generator/1","latent":{"dim":8},"output":{"height":8,"width":8}}"#).unwrap();
    let r = run(&evaluator(product_registry()), &sample(&path.display().to_string(), 2, 0));
    let err = failure(&r, "gen");
    assert_eq!(err.kind, ErrorKind::Model);
    assert!(err.message.contains("fake.pt") && err.message.contains("TorchScript"), "{}", err.message);

    let missing = run(&evaluator(product_registry()), &sample("/nonexistent/gen.pt", 2, 0));
    assert!(failure(&missing, "gen").message.contains("/nonexistent/gen.pt"));
}

#[test]
fn classifier_labels_are_probabilities_per_group_with_the_schema() {
    let (_dir, gen, clf) = world();
    let g = sample(&gen, 30, 4).node("clf", "subspace.classifier", json!({"model": clf, "batch": 8})).link("gen.images", "clf.images").out("clf");
    let r = run(&evaluator(product_registry()), &g);
    let Some(Value::Labels(labels)) = r.output("clf", "labels") else { panic!("{:?}", r.status) };
    let p = labels.probs.tensor();
    assert_eq!(p.size(), [30, 4]);
    assert_eq!(labels.schema.class_names(), vec!["red.no", "red.yes", "blue.no", "blue.yes"]);
    let sums = p.view([30, 2, 2]).sum_dim_intlist([2i64].as_slice(), false, tch::Kind::Float);
    assert!((sums - 1.0).abs().max().double_value(&[]) < 1e-5);
    assert!(p.std(true).double_value(&[]) > 0.01, "labels do not vary");
}

#[test]
fn classifier_outputs_outside_unit_range_or_schema_size_are_refused() {
    let (dir, gen, _) = world();
    for (path, needle) in [
        (toy::unbounded_classifier(dir.path()), "leaves [0, 1]"),
        (toy::mis_sized_classifier(dir.path()), "schema lists 3 classes"),
    ] {
        let g = sample(&gen, 5, 0)
            .node("clf", "subspace.classifier", json!({"model": path.display().to_string()}))
            .link("gen.images", "clf.images")
            .out("clf");
        let err = failure(&run(&evaluator(product_registry()), &g), "clf");
        assert_eq!(err.kind, ErrorKind::Model);
        assert!(err.message.contains(needle), "{}", err.message);
    }
}

#[test]
fn an_empty_sample_is_refused_before_anything_runs() {
    let (_dir, gen, _) = world();
    let errors = subspace_host::validate(&sample(&gen, 0, 0).0, &product_registry()).err().expect("invalid");
    assert!(errors.iter().any(|e| e.location.as_deref() == Some("count")), "{errors:?}");
}

#[test]
fn nan_codes_are_refused_with_the_port_named() {
    let (_dir, gen, _) = world();
    let r = registry_of(&["subspace_plugin_models", "subspace_plugin_method", "subspace_test_nodes"]);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    let e = evaluator(std::sync::Arc::new(r));
    let g = G::new()
        .node("z", "test.latents", json!({"n": 5, "dim": 8, "nan": true}))
        .node("gen", "subspace.generator", json!({"model": gen}))
        .link("z.codes", "gen.codes")
        .out("gen");
    let err = failure(&run(&e, &g), "gen");
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert_eq!(err.location.clone().into_option().as_deref(), Some("codes"));
    assert!(err.message.contains("NaN"), "{}", err.message);
}

#[test]
fn two_nodes_naming_the_same_weights_load_them_once() {
    let (dir, gen, clf) = world();
    let e = evaluator(product_registry());
    let g = G::new()
        .node("a", "subspace.generator", json!({"model": gen, "count": 3, "seed": 1}))
        .node("b", "subspace.generator", json!({"model": gen, "count": 5, "seed": 2}))
        .node("c", "subspace.classifier", json!({"model": clf}))
        .link("a.images", "c.images")
        .out("b")
        .out("c");
    assert!(run(&e, &g).ok());
    assert_eq!(e.loaded_models().len(), 2, "{:?}", e.loaded_models());
    let copy = dir.path().join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    let other = toy::generator(&copy);
    let r = run(&e, &G::new().node("d", "subspace.generator", json!({"model": other.display().to_string(), "count": 2})).out("d"));
    assert!(r.ok());
    assert_eq!(e.loaded_models().len(), 3, "another file is another model: {:?}", e.loaded_models());
}

