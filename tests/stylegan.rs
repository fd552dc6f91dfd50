//! StyleGAN-style generators (a mapping and a synthesis method named in the sidecar): sampling in z, W and W+,
//! truncation toward the average w, fitting and editing in W+, SeFa on the style affine weights, and the latent
//! space checked at validation. The fixture is a TorchScript module with several methods and named parameters,
//! built by the default world's module builder.

use serde_json::json;
use std::path::{Path, PathBuf};
use subspace_host::{NodeStatus, Problem, ValidationError};
use subspace_sdk::{declare::PortValue, edits::EditLayout, Value};
use subspace_tests::*;
use tch::{Kind, Tensor};

const Z_DIM: i64 = 8;
const W_DIM: i64 = 8;
const NUM_WS: i64 = 4;
const SIDE: i64 = 16;
const W_AVG: [f32; 8] = [0.5, -0.5, 0.25, -0.25, 0.1, -0.1, 0.3, 0.0];

/// A StyleGAN-shaped generator: `mapping(z)` gives N x num_ws x w_dim as StyleGAN2 does (the same w on every
/// layer); `synthesis(ws)` sends each layer's w through its style affine (`affine{l}.weight`) and a to-RGB weight
/// and sums the layers into N x 3 x 16 x 16 images in [-1, 1]; the average w is the parameter `w_avg` and what the
/// method `average_w()` returns. No `forward`.
pub(crate) fn stylegan(dir: &Path, name: &str) -> PathBuf {
    // A local generator, not torch's global one, which tests running at the same time also draw from.
    let mut rng =
        <subspace_sdk::rand_chacha::ChaCha8Rng as subspace_sdk::rand_chacha::rand_core::SeedableRng>::seed_from_u64(11);
    let mut randn = |shape: &[i64]| subspace_sdk::context::randn(&mut rng, shape);
    let cpu = (Kind::Float, tch::Device::Cpu);
    let mut params: Vec<(String, Tensor)> = vec![
        ("fc.weight".into(), randn(&[W_DIM, Z_DIM]) * 0.6),
        ("fc.bias".into(), randn(&[W_DIM]) * 0.1),
        ("w_avg".into(), Tensor::from_slice(&W_AVG)),
    ];
    let mut source = String::from(
        "def mapping(self, z):\n    w = torch.tanh(torch.linear(z, self.fc.weight, self.fc.bias))\n    \
         return w.unsqueeze(1).repeat([1, 4, 1])\n\ndef average_w(self):\n    return self.w_avg\n\n\
         def synthesis(self, ws):\n    x = torch.zeros([ws.size(0), 768])\n",
    );
    for l in 0..NUM_WS {
        params.push((format!("affine{l}.weight"), randn(&[8, W_DIM]) * 0.5));
        params.push((format!("affine{l}.bias"), Tensor::ones([8], cpu)));
        // A part constant over each channel's pixels, so that the channel means (what the toy classifier reads)
        // move with w.
        let rgb = randn(&[3, 1, 8]) * 0.3 + randn(&[3, SIDE * SIDE, 8]) * 0.1;
        params.push((format!("rgb{l}.weight"), rgb.reshape([3 * SIDE * SIDE, 8])));
        source += &format!(
            "    x = x + torch.linear(torch.linear(ws[:, {l}], self.affine{l}.weight, self.affine{l}.bias), \
             self.rgb{l}.weight)\n"
        );
    }
    source += "    return torch.tanh(x).view([-1, 3, 16, 16])\n";
    let path = dir.join(format!("{name}.pt"));
    subspace_world::nets::save_script_module("ToyStyle", &source, &params, &path).unwrap();
    let affine: Vec<String> = (0..NUM_WS).map(|l| format!("affine{l}.weight")).collect();
    let meta = json!({"format": "subspace.generator/1", "name": "toy-style",
        "latent": {"dim": Z_DIM},
        "output": {"channels": 3, "height": SIDE, "width": SIDE, "range": [-1.0, 1.0]},
        "style": {"mapping": "mapping", "synthesis": "synthesis", "w_dim": W_DIM, "num_ws": NUM_WS,
                  "w_avg": "average_w", "affine": affine}});
    std::fs::write(path.with_extension("json"), meta.to_string()).unwrap();
    path
}

fn world() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let g = stylegan(dir.path(), "style").display().to_string();
    let c = toy::classifier_sized(dir.path(), "clf", SIDE, SIDE).display().to_string();
    (dir, g, c)
}

fn tensor(r: &subspace_host::RunReport, node: &str, port: &str) -> Tensor {
    match r.output(node, port) {
        Some(Value::Images(t)) | Some(Value::Latents(t)) | Some(Value::Tensor(t)) => t.tensor(),
        Some(Value::Labels(l)) => l.probs.tensor(),
        other => panic!("{node}.{port}: {other:?}; status {:?}", r.status),
    }
}

fn text(r: &subspace_host::RunReport, node: &str, port: &str) -> serde_json::Value {
    match r.output(node, port) {
        Some(Value::Text(t)) => serde_json::from_str(t.as_str()).unwrap(),
        other => panic!("{node}.{port}: {other:?}; status {:?}", r.status),
    }
}

fn failure(r: &subspace_host::RunReport, node: &str) -> subspace_sdk::NodeError {
    match &r.status[node] {
        NodeStatus::Failed { error } => error.clone(),
        s => panic!("{node} did not fail: {s:?}"),
    }
}

fn sample(gen: &str, space: &str, psi: f64) -> G {
    G::new()
        .node("gen", "subspace.generator", json!({"model": gen, "count": 12, "seed": 5, "space": space, "psi": psi}))
        .out("gen")
}

fn close(a: &Tensor, b: &Tensor) -> bool {
    a.allclose(b, 1e-5, 1e-5, false)
}

#[test]
fn stylegan_generator_samples_in_z_w_and_wplus_and_renders_the_same_images() {
    let (_dir, gen, _) = world();
    let e = evaluator(product_registry());
    let [z, w, wp] = ["z", "w", "wplus"].map(|space| run(&e, &sample(&gen, space, 1.0)));
    let (zc, wc, wpc) = (tensor(&z, "gen", "codes"), tensor(&w, "gen", "codes"), tensor(&wp, "gen", "codes"));
    assert_eq!(zc.size(), [12, Z_DIM]);
    assert_eq!(wc.size(), [12, W_DIM]);
    assert_eq!(wpc.size(), [12, NUM_WS * W_DIM]);
    // W+ codes are the sampled w on every layer.
    for l in 0..NUM_WS {
        assert!(close(&wpc.narrow(1, l * W_DIM, W_DIM), &wc), "layer {l} of the W+ codes is not w");
    }
    // w = tanh(...): inside (-1, 1), and not z.
    assert!(wc.abs().max().double_value(&[]) < 1.0 && !close(&wc, &zc));
    // The same seed renders the same pictures whichever space the codes are in.
    let images = tensor(&z, "gen", "images");
    assert_eq!(images.size(), [12, 3, SIDE, SIDE]);
    assert!(images.std(true).double_value(&[]) > 0.05, "flat images");
    assert!(close(&images, &tensor(&w, "gen", "images")), "W renders other images than z");
    assert!(close(&images, &tensor(&wp, "gen", "images")), "W+ renders other images than z");

    // Given W+ codes render as they were sampled, through a second Generator in W+.
    let again = sample(&gen, "wplus", 1.0)
        .node("render", "subspace.generator", json!({"model": gen, "space": "wplus"}))
        .link("gen.codes", "render.codes")
        .out("render");
    let r = run(&e, &again);
    assert!(close(&tensor(&r, "render", "images"), &images));
    // One layer changed moves the picture: the layers are independent in W+.
    let edited = wpc.copy();
    let _ = edited.narrow(1, 2 * W_DIM, W_DIM).fill_(0.9);
    let m = match r.output("render", "generator") {
        Some(Value::Model(m)) => m.clone(),
        other => panic!("{other:?}"),
    };
    let moved = m.forward(&edited.into()).into_result().unwrap().tensor();
    assert!(!close(&moved, &images), "W+ layer 2 has no effect");
    let info: serde_json::Value = serde_json::from_str(m.info().as_str()).unwrap();
    assert_eq!(info["space"], "wplus");
    assert_eq!(info["code_dim"], NUM_WS * W_DIM);
}

#[test]
fn truncation_pulls_w_codes_toward_the_average_w() {
    let (dir, gen, _) = world();
    let e = evaluator(product_registry());
    let avg = Tensor::from_slice(&W_AVG).unsqueeze(0);
    for space in ["w", "wplus"] {
        let full = tensor(&run(&e, &sample(&gen, space, 1.0)), "gen", "codes");
        let half = tensor(&run(&e, &sample(&gen, space, 0.5)), "gen", "codes");
        let avg = if space == "w" { avg.shallow_clone() } else { avg.repeat([1, NUM_WS]) };
        assert!(close(&(&half - &avg), &((&full - &avg) * 0.5)), "{space}: psi 0.5 is not halfway to w_avg");
        let (d_full, d_half) = ((&full - &avg).norm().double_value(&[]), (&half - &avg).norm().double_value(&[]));
        assert!(d_half < 0.51 * d_full, "{space}: {d_half} vs {d_full}");
        let zero = tensor(&run(&e, &sample(&gen, space, 0.0)), "gen", "codes");
        assert!(close(&zero, &avg.expand_as(&zero)), "{space}: psi 0 is not w_avg");
    }
    // z codes stay z; psi enters where they are mapped, so the pictures move toward the average picture.
    let z_full = run(&e, &sample(&gen, "z", 1.0));
    let z_zero = run(&e, &sample(&gen, "z", 0.0));
    assert!(close(&tensor(&z_full, "gen", "codes"), &tensor(&z_zero, "gen", "codes")));
    let flat = tensor(&z_zero, "gen", "images");
    assert!(close(&flat, &flat.narrow(0, 0, 1).expand_as(&flat)), "psi 0 renders different pictures");
    assert!(!close(&flat, &tensor(&z_full, "gen", "images")));

    // The average w as a parameter, as numbers, or estimated from mapped codes when the sidecar gives none.
    let avg_from = |w_avg: Option<serde_json::Value>| {
        let copy = dir.path().join("copy.pt");
        std::fs::copy(&gen, &copy).unwrap();
        std::fs::copy(Path::new(&gen).with_extension("json"), copy.with_extension("json")).unwrap();
        toy::edit_sidecar(&copy, |m| match w_avg {
            Some(v) => m["style"]["w_avg"] = v,
            None => {
                m["style"].as_object_mut().unwrap().remove("w_avg");
            }
        });
        let r = run(&evaluator(product_registry()), &sample(&copy.display().to_string(), "w", 0.0));
        let info = match r.output("gen", "generator") {
            Some(Value::Model(m)) => serde_json::from_str::<serde_json::Value>(m.info().as_str()).unwrap(),
            other => panic!("{other:?}; {:?}", r.status),
        };
        (tensor(&r, "gen", "codes").narrow(0, 0, 1), info["style"]["w_avg_from"].as_str().unwrap().to_string())
    };
    let (codes, from) = avg_from(Some(json!("w_avg")));
    assert!(close(&codes, &avg) && from == "parameter w_avg", "{from}");
    let listed = [0.0f32, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7];
    let (codes, from) = avg_from(Some(json!(listed)));
    assert!(close(&codes, &Tensor::from_slice(&listed).unsqueeze(0)), "{from}");
    let (codes, from) = avg_from(None);
    assert!(from.starts_with("mean of 4096 mapped codes"), "{from}");
    // The mean of tanh(...) over many codes: inside (-1, 1) and not the fixture's own w_avg.
    assert!(codes.abs().max().double_value(&[]) < 1.0 && !close(&codes, &avg));
}

/// Fit in W+ on the StyleGAN-shaped fixture, edit 10 fresh W+ codes toward every class, render them in W+ and
/// re-label them.
fn wplus_pipeline(gen: &str, clf: &str) -> G {
    pipeline_in(gen, clf, "wplus")
}

/// The fit, edit and render chain with every Generator in `space`.
fn pipeline_in(gen: &str, clf: &str, space: &str) -> G {
    toy_fit(gen, clf, 3000, json!({"steps": 60, "rank": 2}), json!({"steps": 60, "samples": 8, "lr": 0.01}))
        .set("sample", "space", json!(space))
        .node("fresh", "subspace.generator", json!({"model": gen, "count": 10, "seed": 99, "space": space}))
        .node("edit", "subspace.attribute_edit", json!({"target": "all", "steps": 3}))
        .node("render", "subspace.generator", json!({"model": gen, "space": space}))
        .node("judge", "subspace.classifier", json!({"model": clf}))
        .link("fresh.codes", "edit.codes")
        .link("gmm.mixture", "edit.mixture")
        .link("edit.codes", "render.codes")
        .link("render.images", "judge.images")
        .out("gauss.report")
        .out("gmm.report")
        .out("edit")
        .out("render.images")
        .out("judge.labels")
}

#[test]
fn fit_edit_and_render_in_w_and_wplus_end_to_end() {
    let (dir, gen, clf) = world();
    let e = evaluator(product_registry());
    for (space, width) in [("w", W_DIM), ("wplus", NUM_WS * W_DIM)] {
        let r = run_at(&e, dir.path(), &pipeline_in(&gen, &clf, space));
        assert!(r.ok(), "{space}: {:#?}", r.status);
        check_edits(&r, space, width);
    }
}

/// The fit separates the classes, the edits are codes of the space's width, and every edit reaches its class.
fn check_edits(r: &subspace_host::RunReport, space: &str, width: i64) {
    let gauss = text(r, "gauss", "report");
    assert!(gauss["min_auc"].as_f64().unwrap() >= 0.85, "held-out AUC in {space}: {gauss}");
    let edited = tensor(r, "edit", "codes");
    assert_eq!(edited.size(), [4 * 10 * 3, width], "edits are not {space} codes");
    assert_eq!(tensor(r, "render", "images").size(), [120, 3, SIDE, SIDE]);
    let layout = match r.output("edit", "layout") {
        Some(v) => EditLayout::from_value("layout", v).unwrap(),
        None => panic!("{:?}", r.status),
    };
    let Some(Value::Labels(labels)) = r.output("judge", "labels") else { panic!("{:?}", r.status) };
    let probs = labels.probs.tensor();
    let (s, t) = (layout.samples, layout.steps);
    for (i, name) in layout.targets.iter().enumerate() {
        let col = labels.schema.column(name).unwrap() as i64;
        let rows = probs.narrow(0, i as i64 * s * t, s * t).view([s, t, -1]);
        let (before, after) = (
            rows.select(1, 0).select(1, col).mean(Kind::Float).double_value(&[]),
            rows.select(1, t - 1).select(1, col).mean(Kind::Float).double_value(&[]),
        );
        assert!(after >= 0.7 && after > before, "edit toward {name} in {space}: {before:.3} -> {after:.3}");
    }
}

/// A fit on W+ codes refit from the disk cache: the sampling node is a disk hit, and the W+ generator GMMFit
/// renders through is re-created in W+ (a z handle would refuse the 32-wide samples).
#[test]
fn a_refit_from_the_disk_cache_renders_through_the_wplus_generator() {
    let (dir, gen, clf) = world();
    let cache = tempfile::tempdir().unwrap();
    let disk = || {
        let mut e = evaluator(product_registry());
        e.set_disk_cache(Some(subspace_host::DiskCache::open(cache.path(), 1 << 30).unwrap()));
        e
    };
    let first = run_at(&disk(), dir.path(), &wplus_pipeline(&gen, &clf));
    assert!(first.ok(), "{:#?}", first.status);
    let refit = wplus_pipeline(&gen, &clf).set("gmm", "steps", json!(61));
    let second = run_at(&disk(), dir.path(), &refit);
    assert!(second.ok(), "{:#?}", second.status);
    assert!(second.from_disk.contains("sample"), "sampling was not a disk hit: {:?}", second.from_disk);
    assert!(matches!(second.status["gmm"], NodeStatus::Ran { .. }), "{:?}", second.status["gmm"]);
    check_edits(&second, "wplus", NUM_WS * W_DIM);
}

fn errors_of(g: &G) -> Vec<ValidationError> {
    subspace_host::validate(&g.0, &all_product_plugins()).err().unwrap_or_default()
}

fn space_error<'a>(errors: &'a [ValidationError], node: &str, port: &str) -> Option<&'a ValidationError> {
    errors.iter().find(|e| {
        e.problem == Problem::SpaceMismatch && e.node.as_deref() == Some(node) && e.location.as_deref() == Some(port)
    })
}

#[test]
fn codes_of_one_space_into_another_are_refused_at_validation() {
    let (_dir, gen, clf) = world();
    // W codes to a Generator rendering z codes.
    let g = sample(&gen, "w", 1.0)
        .node("render", "subspace.generator", json!({"model": gen}))
        .link("gen.codes", "render.codes")
        .out("render");
    let errors = errors_of(&g);
    let e = space_error(&errors, "render", "codes").unwrap_or_else(|| panic!("{errors:#?}"));
    assert!(e.message.contains("latent space W (from gen.codes)") && e.message.contains("works in z"), "{e}");
    // The same in W is valid, and so is every space with a Generator of that space.
    for space in ["w", "wplus"] {
        let g = sample(&gen, space, 1.0)
            .node("render", "subspace.generator", json!({"model": gen, "space": space}))
            .link("gen.codes", "render.codes")
            .out("render");
        assert!(errors_of(&g).is_empty(), "{space}: {:#?}", errors_of(&g));
    }

    // A fit in W+ edits only W+ codes: fresh z codes into the edit are refused at the edit.
    let g = wplus_pipeline(&gen, &clf).set("fresh", "space", json!("z"));
    let errors = errors_of(&g);
    let at_edit = errors.iter().find(|e| e.problem == Problem::SpaceMismatch && e.node.as_deref() == Some("edit"));
    let e = at_edit.unwrap_or_else(|| panic!("{errors:#?}"));
    assert!(["codes", "mixture"].contains(&e.location.as_deref().unwrap()), "{e}");
    // ... and what the edit makes from them is not passed on as W+ codes either (one error, at the first mixing).
    assert_eq!(errors.iter().filter(|e| e.problem == Problem::SpaceMismatch).count(), 1, "{errors:#?}");

    // GMMFit renders its samples through the generator: a z generator for W+ codes is refused at its port.
    let g = toy_fit(&gen, &clf, 100, json!({}), json!({})).set("sample", "space", json!("wplus")).node(
        "zgen",
        "subspace.generator",
        json!({"model": gen, "count": 1}),
    );
    let mut g = g;
    g.0.links.retain(|l| l.to != "gmm.generator");
    let g = g.link("zgen.generator", "gmm.generator").out("gmm");
    let errors = errors_of(&g);
    assert!(
        space_error(&errors, "gmm", "generator").is_some() || space_error(&errors, "gmm", "codes").is_some(),
        "{errors:#?}"
    );
    // The unchanged chain in W+ is valid.
    assert!(errors_of(&wplus_pipeline(&gen, &clf)).is_empty());
}

#[test]
fn sefa_factorises_the_named_style_affine_weights() {
    let (_dir, gen, clf) = world();
    let e = evaluator(all_product_plugins());
    let graph = |space: &str| {
        G::new()
            .node("gen", "subspace.generator", json!({"model": gen, "count": 400, "seed": 2, "space": space}))
            .node("label", "subspace.classifier", json!({"model": clf}))
            .node("sefa", "subspace.sefa", json!({"components": 8}))
            .link("gen.images", "label.images")
            .link("gen.generator", "sefa.generator")
            .link("gen.codes", "sefa.codes")
            .link("label.labels", "sefa.labels")
            .out("sefa")
    };
    // SeFa's matrix by hand: the four affine weights, each row normalised, stacked.
    let module = tch::CModule::load(&gen).unwrap();
    let params = module.named_parameters().unwrap();
    let rows: Vec<Tensor> = (0..NUM_WS)
        .map(|l| {
            let w = params.iter().find(|(n, _)| *n == format!("affine{l}.weight")).unwrap().1.to_kind(Kind::Double);
            &w / w.square().sum_dim_intlist([1i64].as_slice(), true, Kind::Double).sqrt()
        })
        .collect();
    let a = Tensor::cat(&rows, 0);
    let (values, _) = a.tr().matmul(&a).linalg_eigh("L");
    let top = values.max().double_value(&[]);
    for space in ["w", "wplus"] {
        let r = run(&e, &graph(space));
        let report = text(&r, "sefa", "report");
        assert_eq!(report["param"], "affine0.weight, affine1.weight, affine2.weight, affine3.weight", "{report}");
        assert_eq!(report["space"], space);
        let eigen = report["eigenvalues"][0].as_f64().unwrap();
        assert!((eigen - top).abs() < 1e-6 * top, "{space}: top eigenvalue {eigen}, by hand {top}");
        let normals = match r.output("sefa", "directions") {
            Some(Value::Bundle(b)) => b.get("normals").unwrap(),
            other => panic!("{other:?}"),
        };
        let width = if space == "w" { W_DIM } else { NUM_WS * W_DIM };
        assert_eq!(normals.size(), [4, width]);
        if space == "wplus" {
            // One w direction on every layer.
            for l in 1..NUM_WS {
                assert!(close(&normals.narrow(1, l * W_DIM, W_DIM), &normals.narrow(1, 0, W_DIM)), "layer {l}");
            }
        }
    }
}

#[test]
fn bad_style_metadata_is_refused_naming_the_field() {
    let (dir, gen, _) = world();
    let cases: Vec<(&str, Box<dyn Fn(&mut serde_json::Value)>, &str)> = vec![
        ("method", Box::new(|m| m["style"]["mapping"] = json!("mapp")), "no method 'mapp' (style.mapping)"),
        (
            "w_dim",
            Box::new(|m| {
                m["style"]["w_dim"] = json!(6);
                m["style"]["affine"] = json!([]);
            }),
            "style.w_dim 6",
        ),
        ("num_ws", Box::new(|m| m["style"]["num_ws"] = json!(3)), "style.num_ws 3"),
        ("synthesis", Box::new(|m| m["style"]["synthesis"] = json!("average_w")), "style.synthesis 'average_w'"),
        ("affine", Box::new(|m| m["style"]["affine"] = json!(["nope.weight"])), "style.affine[0] 'nope.weight'"),
        (
            "affine shape",
            Box::new(|m| m["style"]["affine"] = json!(["fc.bias"])),
            "style.affine[0] 'fc.bias' has shape",
        ),
        ("w_avg", Box::new(|m| m["style"]["w_avg"] = json!([1.0, 2.0])), "style.w_avg lists 2 entries"),
        ("w_avg name", Box::new(|m| m["style"]["w_avg"] = json!("mean_w")), "style.w_avg 'mean_w'"),
        ("unknown", Box::new(|m| m["style"]["layers"] = json!(4)), "unknown field `layers`"),
        ("arguments", Box::new(|m| m["arguments"] = json!([{"name": "c", "zeros": 0}])), "style.mapping_arguments"),
    ];
    for (i, (what, edit, expected)) in cases.into_iter().enumerate() {
        let copy = dir.path().join(format!("bad{i}.pt"));
        std::fs::copy(&gen, &copy).unwrap();
        std::fs::copy(Path::new(&gen).with_extension("json"), copy.with_extension("json")).unwrap();
        toy::edit_sidecar(&copy, edit);
        let r = run(&evaluator(product_registry()), &sample(&copy.display().to_string(), "w", 1.0));
        let NodeStatus::Failed { error: err } = &r.status["gen"] else { panic!("{what}: not refused") };
        assert!(err.message.contains(expected), "{what}: {}", err.message);
        assert!(
            err.message.contains("bad") && err.message.contains(".json"),
            "{what} names no sidecar: {}",
            err.message
        );
    }
    // A plain generator has no W space and no average w: the parameters are named.
    let plain = toy::generator(dir.path()).display().to_string();
    let e = evaluator(product_registry());
    let err = failure(&run(&e, &sample(&plain, "w", 1.0)), "gen");
    assert_eq!(err.location.as_ref().map(|l| l.as_str()).into_option(), Some("space"), "{err:?}");
    assert!(err.message.contains("no W space") && err.message.contains("style block"), "{}", err.message);
    let err = failure(&run(&e, &sample(&plain, "z", 0.7)), "gen");
    assert_eq!(err.location.as_ref().map(|l| l.as_str()).into_option(), Some("psi"), "{err:?}");
}
