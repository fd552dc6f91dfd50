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
    G::new()
        .node("gen", "subspace.generator", json!({"model": gen, "count": count, "seed": seed, "batch": 7}))
        .out("gen")
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

    // Codes of dimension 4 from a 4-dimensional generator, fed to an 8-dimensional one.
    let dir = tempfile::tempdir().unwrap();
    let small = toy::generator_sized(dir.path(), "gen4", 4, [3, 8, 8]);
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
    std::fs::write(
        path.with_extension("json"),
        r#"{"format":"subspace.generator/1","latent":{"dim":8},"output":{"height":8,"width":8}}"#,
    )
    .unwrap();
    let r = run(&evaluator(product_registry()), &sample(&path.display().to_string(), 2, 0));
    let err = failure(&r, "gen");
    assert_eq!(err.kind, ErrorKind::Model);
    assert!(err.message.contains("fake.pt") && err.message.contains("TorchScript"), "{}", err.message);

    // A missing file is found by validation, before anything runs (docs/GRAPH_FORMAT.md, "Paths").
    let missing = subspace_host::validate(&sample("/nonexistent/gen.pt", 2, 0).0, &product_registry()).err().unwrap();
    assert!(
        missing[0].message.contains("/nonexistent/gen.pt") && missing[0].problem == subspace_host::Problem::MissingFile
    );
}

#[test]
fn classifier_labels_are_probabilities_per_group_with_the_schema() {
    let (_dir, gen, clf) = world();
    let g = sample(&gen, 30, 4)
        .node("clf", "subspace.classifier", json!({"model": clf, "batch": 8}))
        .link("gen.images", "clf.images")
        .out("clf");
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
    let r = run(
        &e,
        &G::new().node("d", "subspace.generator", json!({"model": other.display().to_string(), "count": 2})).out("d"),
    );
    assert!(r.ok());
    assert_eq!(e.loaded_models().len(), 3, "another file is another model: {:?}", e.loaded_models());
}

/// A run's failure at `node`, checked to be about parameter `param`.
fn param_failure(r: &subspace_host::RunReport, node: &str, param: &str) -> String {
    let err = failure(r, node);
    assert_eq!(err.kind, ErrorKind::InvalidParam, "{err:?}");
    assert_eq!(err.location.clone().into_option().as_deref(), Some(param), "{err:?}");
    err.message.to_string()
}

/// Files put into a models folder the plugin searches for `default/` (for the test binary only: the folder of
/// the binary itself, target/release/deps/models/default), removed when dropped.
struct ShippedFolder(std::path::PathBuf, Vec<std::path::PathBuf>);

impl ShippedFolder {
    fn new() -> Self {
        let dir = release_dir().join("deps/models/default");
        std::fs::create_dir_all(&dir).unwrap();
        ShippedFolder(dir, Vec::new())
    }
    fn link(&mut self, name: &str, target: &std::path::Path) {
        let at = self.0.join(name);
        let _ = std::fs::remove_file(&at);
        std::os::unix::fs::symlink(target, &at).unwrap();
        self.1.push(at);
    }
    fn copy(&mut self, name: &str, from: &std::path::Path) {
        let at = self.0.join(name);
        std::fs::copy(from, &at).unwrap();
        self.1.push(at);
    }
}

impl Drop for ShippedFolder {
    fn drop(&mut self) {
        for p in &self.1 {
            let _ = std::fs::remove_file(p);
        }
        // Only when empty: another test process may be using it.
        if std::fs::remove_dir(&self.0).is_ok() {
            let _ = std::fs::remove_dir(self.0.parent().unwrap());
        }
    }
}

#[test]
fn model_paths_cannot_leave_the_models_folder() {
    let e = evaluator(product_registry());
    let traversals = [
        "default/../../../../etc/passwd",
        "default/../generator.pt",
        "default//etc/passwd",
        "default/./generator.pt",
        "default/",
    ];
    for bad in traversals {
        let msg = param_failure(&run(&e, &sample(bad, 2, 0)), "gen", "model");
        assert!(msg.contains(bad) && msg.contains("no '..'"), "{bad}: {msg}");
    }

    // A model folder searched for default/: a file inside it loads, links pointing out of it are refused.
    let outside = tempfile::tempdir().unwrap();
    let gen = toy::generator(outside.path());
    let tag = std::process::id();
    let mut shipped = ShippedFolder::new();
    shipped.copy(&format!("inside-{tag}.pt"), &gen);
    shipped.copy(&format!("inside-{tag}.json"), &gen.with_extension("json"));
    shipped.link(&format!("escape-{tag}.pt"), &gen);
    shipped.link(&format!("escape-{tag}.json"), &gen.with_extension("json"));
    shipped.link(&format!("escdir-{tag}"), outside.path());
    shipped.link(&format!("side-{tag}.json"), &gen.with_extension("json"));
    shipped.copy(&format!("side-{tag}.pt"), &gen);
    let ok = run(&e, &sample(&format!("default/inside-{tag}.pt"), 2, 0));
    assert!(ok.ok(), "the folder is searched: {:?}", ok.status);
    for name in [format!("escape-{tag}.pt"), format!("escdir-{tag}/gen.pt"), format!("side-{tag}.pt")] {
        let msg = param_failure(&run(&e, &sample(&format!("default/{name}"), 2, 0)), "gen", "model");
        assert!(msg.contains(&name) && msg.contains("outside the models folder"), "{name}: {msg}");
    }
}

#[test]
fn a_model_path_must_be_a_file_with_its_sidecar_beside_it() {
    let (dir, gen, _) = world();
    let e = evaluator(product_registry());
    let lone = dir.path().join("lone.pt");
    std::fs::copy(&gen, &lone).unwrap();
    let folder = dir.path().join("folder.pt");
    std::fs::create_dir(&folder).unwrap();
    let cases = [
        (dir.path().display().to_string(), "is a folder"),
        (folder.display().to_string(), "is a folder"),
        (lone.display().to_string(), "no sidecar"),
        (dir.path().join("gen.json").display().to_string(), "is a sidecar"),
        (String::new(), "empty"),
        ("default/no-such-model.pt".into(), "no shipped model"),
    ];
    for (path, needle) in cases {
        let msg = param_failure(&run(&e, &sample(&path, 2, 0)), "gen", "model");
        assert!(msg.contains(&path) && msg.contains(needle), "{path}: {msg}");
    }
    // A missing file is found by validation, before anything runs (docs/GRAPH_FORMAT.md, "Paths").
    let path = dir.path().join("missing.pt").display().to_string();
    let errors = subspace_host::validate(&sample(&path, 2, 0).0, &e.registry).err().unwrap();
    assert!(errors[0].message.contains(&path) && errors[0].message.contains("does not exist"), "{errors:?}");
    assert!(run(&e, &sample(&gen, 2, 0)).ok());
}

#[test]
fn absurd_sizes_are_errors_naming_the_key_and_the_process_survives() {
    let dir = tempfile::tempdir().unwrap();
    let e = evaluator(product_registry());
    let absurd: [(&str, serde_json::Value, &str); 5] = [
        ("dim", json!({"latent": {"dim": 1_000_000_000_000i64}}), "latent.dim"),
        ("height", json!({"output": {"height": 1_000_000_000_000i64}}), "output.height"),
        ("area", json!({"output": {"height": 1_000_000, "width": 1_000_000}}), "output.height x output.width"),
        ("negative", json!({"output": {"width": -8}}), "output.width"),
        ("range", json!({"output": {"range": [1.0, 1.0]}}), "output.range"),
    ];
    for (name, edit, key) in absurd {
        let gen = toy::generator_sized(dir.path(), name, 8, [3, 8, 8]);
        toy::edit_sidecar(&gen, |m| {
            for (section, values) in edit.as_object().unwrap() {
                for (k, v) in values.as_object().unwrap() {
                    m[section][k] = v.clone();
                }
            }
        });
        let err = failure(&run(&e, &sample(&gen.display().to_string(), 4, 0)), "gen");
        assert_eq!(err.kind, ErrorKind::Model, "{err:?}");
        assert!(err.message.contains(key) && err.message.contains(&format!("{name}.json")), "{key}: {}", err.message);
    }
    let clf = toy::classifier_sized(dir.path(), "huge", 8, 8);
    toy::edit_sidecar(&clf, |m| m["input"]["height"] = json!(1_000_000_000_000i64));
    let (_w, good, _) = world();
    let g = sample(&good, 4, 0).node("clf", "subspace.classifier", json!({"model": clf.display().to_string()}));
    let err = failure(&run(&e, &g.link("gen.images", "clf.images").out("clf")), "clf");
    assert!(err.message.contains("input.height") && err.message.contains("huge.json"), "{}", err.message);

    // Sizes from parameters: 10^7 codes of 3 x 32 x 32 images, and a batch resized to a large classifier input.
    let wide = toy::generator_sized(dir.path(), "wide", 8, [3, 32, 32]);
    let msg = param_failure(&run(&e, &sample(&wide.display().to_string(), 10_000_000, 0)), "gen", "count");
    assert!(msg.contains("10000000") && msg.contains("wide.json"), "{msg}");
    let big = toy::classifier_sized(dir.path(), "big", 1024, 1024);
    let g = sample(&good, 700, 0)
        .node("clf", "subspace.classifier", json!({"model": big.display().to_string(), "batch": 700}))
        .link("gen.images", "clf.images")
        .out("clf");
    let msg = param_failure(&run(&e, &g), "clf", "batch");
    assert!(msg.contains("big.json") && msg.contains("lower batch"), "{msg}");
    let msg = param_failure(&run(&e, &sample(&good, 3, 0).set("gen", "truncation", json!(0.001))), "gen", "truncation");
    assert!(msg.contains("0.05"), "{msg}");

    // The same evaluator, in the same process, still runs a good graph.
    let r = run(&e, &sample(&good, 5, 9));
    assert!(r.ok(), "{:?}", r.status);
    assert_eq!(tensor(&r, "gen", "images").size(), [5, 3, 8, 8]);
}

#[test]
fn a_sidecar_that_disagrees_with_its_model_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let e = evaluator(product_registry());
    let cases: [(&str, fn(&mut serde_json::Value), &str); 7] = [
        ("dim", |m| m["latent"]["dim"] = json!(4), "latent.dim"),
        ("size", |m| m["output"]["height"] = json!(16), "output.height is 16 but the model renders 8"),
        ("channels", |m| m["output"]["channels"] = json!(1), "output.channels is 1 but the model renders 3"),
        ("scale", |m| m["output"]["range"] = json!([0.0, 0.01]), "output.range"),
        ("misspelt", |m| m["lantent"] = m["latent"].take(), "unknown field `lantent`"),
        ("uniforn", |m| m["latent"]["distribution"] = json!("uniforn"), "latent.distribution"),
        // A misspelt optional key is refused, not replaced by its default (N(0, I) sampled instead of uniform).
        ("distrbution", |m| m["latent"]["distrbution"] = json!("uniform"), "unknown field `distrbution`"),
    ];
    for (name, edit, needle) in cases {
        let gen = toy::generator_sized(dir.path(), name, 8, [3, 8, 8]);
        toy::edit_sidecar(&gen, edit);
        let err = failure(&run(&e, &sample(&gen.display().to_string(), 2, 0)), "gen");
        assert_eq!(err.kind, ErrorKind::Model, "{err:?}");
        let msg = &err.message;
        assert!(msg.contains(needle) && msg.contains(&format!("{name}.json")), "{name}: {msg}");
        assert!(!err.message.contains('\n'), "a torch trace leaked into the message: {}", err.message);
    }
    // A classifier declaring 3 classes for its 4 outputs is refused at load, before any image is labelled.
    let clf = toy::mis_sized_classifier(dir.path());
    let gen = toy::generator(dir.path()).display().to_string();
    let g = G::new()
        .node("gen", "subspace.generator", json!({"model": gen, "count": 2}))
        .node("clf", "subspace.classifier", json!({"model": clf.display().to_string()}))
        .link("gen.images", "clf.images")
        .out("clf");
    let r = run(&e, &g);
    let err = failure(&r, "clf");
    assert!(err.message.contains("missized.json") && err.message.contains("schema lists 3 classes"), "{}", err.message);
}

#[test]
fn the_shipped_sidecars_pass_their_checks() {
    let e = evaluator(product_registry());
    let g = G::new()
        .node("gen", "subspace.generator", json!({"count": 2}))
        .node("fit", "subspace.classifier", json!({}))
        .node("eval", "subspace.classifier", json!({"model": "default/classifier-eval.pt"}))
        .link("gen.images", "fit.images")
        .link("gen.images", "eval.images")
        .out("gen")
        .out("fit")
        .out("eval");
    let r = run(&e, &g);
    assert!(r.ok(), "{:?}", r.status);
    assert_eq!(tensor(&r, "gen", "images").size(), [2, 3, 64, 64]);
}

// Call conventions of generators and multi-label classifiers, from the sidecar alone.

/// The toy classifier labelling `count` codes of `gen` (seed 5).
fn labelled(gen: &str, clf: &str, count: i64) -> G {
    sample(gen, count, 5)
        .node("clf", "subspace.classifier", json!({"model": clf}))
        .link("gen.images", "clf.images")
        .out("clf")
}

#[test]
fn generators_in_other_call_conventions_render_the_toy_images_from_their_sidecar_alone() {
    let dir = tempfile::tempdir().unwrap();
    let e = evaluator(product_registry());
    let clf = toy::classifier(dir.path()).display().to_string();
    let base = toy::generator_sized(dir.path(), "base", 8, [3, 8, 8]).display().to_string();
    let want = run(&e, &labelled(&base, &clf, 12));
    let (images, labels) = (tensor(&want, "gen", "images"), tensor(&want, "clf", "labels"));
    let forms = [
        ("conv", toy::Form::Conv),
        ("cond", toy::Form::Conditional(5)),
        ("cond0", toy::Form::Conditional(0)),
        ("nhwc", toy::Form::Nhwc),
        ("bytes", toy::Form::Bytes),
    ];
    for (name, form) in forms {
        let gen = toy::generator_form(dir.path(), name, form, 8, [3, 8, 8]).display().to_string();
        let r = run(&e, &labelled(&gen, &clf, 12));
        assert!(r.ok(), "{name}: {:?}", r.status);
        assert_eq!(tensor(&r, "gen", "images").size(), [12, 3, 8, 8], "{name}");
        assert!(tensor(&r, "gen", "images").allclose(&images, 1e-5, 1e-5, false), "{name}: other images");
        assert!(tensor(&r, "clf", "labels").allclose(&labels, 1e-4, 1e-4, false), "{name}: other labels");
    }
    // A fixed class label instead of zeros reaches the model: other images.
    let cond = toy::generator_form(dir.path(), "row", toy::Form::Conditional(3), 8, [3, 8, 8]);
    toy::edit_sidecar(&cond, |m| m["arguments"] = json!([{"name": "c", "row": [0.0, 1.0, 0.0]}]));
    let r = run(&e, &labelled(&cond.display().to_string(), &clf, 12));
    assert!(r.ok(), "{:?}", r.status);
    assert!(!tensor(&r, "gen", "images").allclose(&images, 1e-3, 1e-3, false), "the row did not reach the model");
}

#[test]
fn multi_label_classifiers_become_no_yes_groups() {
    let (dir, gen, clf) = world();
    let e = evaluator(product_registry());
    let want = tensor(&run(&e, &labelled(&gen, &clf, 30)), "clf", "labels");
    for (logits, nhwc) in [(true, false), (false, false), (true, true)] {
        let multi = toy::attribute_classifier_in(dir.path(), &format!("multi-{logits}-{nhwc}"), logits, nhwc);
        let r = run(&e, &labelled(&gen, &multi.display().to_string(), 30));
        let Some(Value::Labels(labels)) = r.output("clf", "labels") else { panic!("{:?}", r.status) };
        assert_eq!(labels.schema.class_names(), vec!["red.no", "red.yes", "blue.no", "blue.yes"]);
        let p = labels.probs.tensor();
        assert!(p.allclose(&want, 1e-4, 1e-4, false), "logits {logits}: labels differ from the grouped classifier");
        assert!(p.std(true).double_value(&[]) > 0.01, "labels do not vary");
    }
}

#[test]
fn a_dcgan_shaped_generator_and_a_multi_label_classifier_fit_a_mixture() {
    let dir = tempfile::tempdir().unwrap();
    let gen = toy::generator_form(dir.path(), "dcgan", toy::Form::Conv, 8, [3, 8, 8]).display().to_string();
    let clf = toy::attribute_classifier(dir.path(), "celeba", true).display().to_string();
    let g = toy_fit(&gen, &clf, 300, json!({"steps": 2, "rank": 1}), json!({"steps": 2, "samples": 4})).out("gmm");
    let r = run_at(&evaluator(product_registry()), dir.path(), &g);
    assert!(r.ok(), "{:#?}", r.status);
    let Some(Value::Text(report)) = r.output("gmm", "report") else { panic!("{:?}", r.status) };
    assert!(report.as_str().contains("blue.yes") && report.as_str().contains("red.no"), "{}", report.as_str());
}

#[test]
fn call_conventions_that_disagree_with_the_model_are_refused_naming_the_field() {
    use toy::Form::*;
    let dir = tempfile::tempdir().unwrap();
    let e = evaluator(product_registry());
    let cases: [(&str, Option<toy::Form>, fn(&mut serde_json::Value), &str); 15] = [
        ("flat", Some(Conv), |m| drop(m["latent"].as_object_mut().unwrap().remove("shape")), "latent.shape"),
        ("product", Some(Conv), |m| m["latent"]["shape"] = json!([4, 1, 1]), "latent.shape"),
        ("zero", None, |m| m["latent"]["shape"] = json!([8, 0]), "latent.shape"),
        ("noargs", Some(Conditional(5)), |m| m["arguments"] = json!([]), "declare the rest in arguments"),
        ("argsize", Some(Conditional(5)), |m| m["arguments"][0]["zeros"] = json!(3), "arguments"),
        (
            "argtype",
            Some(Conditional(5)),
            |m| m["arguments"][0] = json!({"name": "c", "value": 0.5}),
            "refuses the type",
        ),
        (
            "extra",
            Some(Conditional(5)),
            |m| m["arguments"] = json!([{"name": "c", "zeros": 5}, {"name": "p", "value": 0.7}]),
            "check arguments",
        ),
        ("twokinds", Some(Conditional(5)), |m| m["arguments"][0]["value"] = json!(1.0), "('c') needs exactly one"),
        ("argkey", Some(Conditional(5)), |m| m["arguments"][0]["zero"] = json!(5), "unknown field `zero`"),
        ("argname", Some(Conditional(5)), |m| m["arguments"][0]["name"] = json!(" "), "arguments[0].name"),
        ("layout", Some(Nhwc), |m| m["output"]["layout"] = json!("NCHW"), "output.layout is NCHW"),
        ("layoutname", Some(Nhwc), |m| m["output"]["layout"] = json!("NWHC"), "output.layout 'NWHC'"),
        ("bytes", Some(Bytes), |m| m["output"]["range"] = json!([-1.0, 1.0]), "output.range"),
        ("outresize", None, |m| m["output"]["resize"] = json!("bilinear"), "output.resize"),
        ("first", None, |m| m["first_layer"] = json!("main.0.weight"), "first_layer 'main.0.weight'"),
    ];
    for (name, form, edit, needle) in cases {
        let gen = match form {
            Some(f) => toy::generator_form(dir.path(), name, f, 8, [3, 8, 8]),
            None => toy::generator_sized(dir.path(), name, 8, [3, 8, 8]),
        };
        toy::edit_sidecar(&gen, edit);
        let err = failure(&run(&e, &sample(&gen.display().to_string(), 2, 0)), "gen");
        assert_eq!(err.kind, ErrorKind::Model, "{name}: {err:?}");
        let msg = &err.message;
        assert!(msg.contains(needle) && msg.contains(&format!("{name}.json")), "{name}: {msg}");
        assert!(!msg.contains('\n'), "{name}: a torch trace leaked into the message: {msg}");
    }
}

#[test]
fn classifier_schemas_and_input_policies_that_do_not_fit_are_refused_naming_the_field() {
    let (dir, gen, _) = world();
    let e = evaluator(product_registry());
    let cases: [(&str, bool, fn(&mut serde_json::Value), &str); 10] = [
        ("both", true, |m| m["groups"] = json!([{"name": "red", "classes": ["no", "yes"]}]), "not both"),
        ("neither", true, |m| m["attributes"] = json!(null), "groups (single-label) or attributes"),
        ("empty", true, |m| m["attributes"] = json!([]), "attributes is empty"),
        ("twice", true, |m| m["attributes"] = json!(["red", "red"]), "attributes[1]: 'red' is listed twice"),
        ("dotted", true, |m| m["attributes"] = json!(["red.ish", "blue"]), "attributes[0] 'red.ish'"),
        ("count", true, |m| m["attributes"] = json!(["red", "blue", "green"]), "lists 3 attributes"),
        ("kind", true, |m| m["output"] = json!("probabilities"), "\"output\": \"logits\""),
        ("resize", true, |m| m["input"]["resize"] = json!("cubic"), "input.resize 'cubic'"),
        ("inlayout", true, |m| m["input"]["layout"] = json!("CHW"), "input.layout 'CHW'"),
        ("classes", false, |m| m["groups"][0]["classes"] = json!(["no", "no"]), "lists class 'no' twice"),
    ];
    for (name, multi, edit, needle) in cases {
        let clf = match multi {
            true => toy::attribute_classifier(dir.path(), name, true),
            false => toy::classifier_sized(dir.path(), name, 8, 8),
        };
        toy::edit_sidecar(&clf, edit);
        let err = failure(&run(&e, &labelled(&gen, &clf.display().to_string(), 2)), "clf");
        assert_eq!(err.kind, ErrorKind::Model, "{name}: {err:?}");
        let msg = &err.message;
        assert!(msg.contains(needle) && msg.contains(&format!("{name}.json")), "{name}: {msg}");
    }
    // `resize: none` takes only images of the input size: 8 x 8 pictures for a 16 x 16 input are refused.
    let strict = toy::attribute_classifier(dir.path(), "strict", true);
    toy::edit_sidecar(&strict, |m| {
        m["input"]["height"] = json!(16);
        m["input"]["width"] = json!(16);
        m["input"]["resize"] = json!("none");
    });
    let err = failure(&run(&e, &labelled(&gen, &strict.display().to_string(), 2)), "clf");
    assert_eq!(err.kind, ErrorKind::InvalidInput, "{err:?}");
    assert!(err.message.contains("input.resize is none") && err.message.contains("strict.json"), "{}", err.message);
    // Both resampling policies bring 8 x 8 pictures to a 16 x 16 input.
    for policy in ["bilinear", "antialias"] {
        let c = toy::attribute_classifier(dir.path(), policy, true);
        toy::edit_sidecar(&c, |m| {
            m["input"]["height"] = json!(16);
            m["input"]["width"] = json!(16);
            m["input"]["resize"] = json!(policy);
        });
        let r = run(&e, &labelled(&gen, &c.display().to_string(), 6));
        assert!(r.ok(), "{policy}: {:?}", r.status);
        assert_eq!(tensor(&r, "clf", "labels").size(), [6, 4]);
    }
}
