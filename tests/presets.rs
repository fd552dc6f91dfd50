//! Presets: graph files with exposed parameters and ports, listed and run through the CLI (`presets`, `run
//! --param`), used as nodes of other graphs (expanded at validation, type-checked, cached like any node), refused
//! when they include each other; and node versions recorded in graph files.

use serde_json::{json, Value as Json};
use std::path::Path;
use std::process::Command;
use subspace_host::{preset, validate_with, NodeStatus, PresetSearch, Problem, RunOptions, ValidationError};
use subspace_sdk::Value;
use subspace_tests::*;

/// `scaled`: k (2) -> s (x3) -> t (x3) -> c (count); exposes `value` (k, narrowed to [0, 100]) and `factor`
/// (both scales); input `x` feeds s (replacing k's link), outputs `y` (t) and `count` (c).
fn scaled() -> Json {
    json!({
        "version": 1,
        "description": "k times factor, twice",
        "params": [
            {"name": "value", "target": "k.value", "description": "the number", "min": 0, "max": 100},
            {"name": "factor", "target": ["s.factor", "t.factor"], "description": "both factors"}
        ],
        "ports": {"inputs": {"x": "s.value"}, "outputs": {"y": "t.value", "count": "c.count"}},
        "nodes": [
            {"id": "k", "type": "test.constant", "version": "^1", "params": {"value": 2.0}},
            {"id": "s", "type": "test.scale", "version": "^1", "params": {"factor": 3.0}},
            {"id": "t", "type": "test.scale", "version": "^1", "params": {"factor": 3.0}},
            {"id": "c", "type": "test.count", "version": "^1", "params": {"tag": "presets"}}
        ],
        "links": [
            {"from": "k.value", "to": "s.value"},
            {"from": "s.value", "to": "t.value"},
            {"from": "t.value", "to": "c.value"}
        ],
        "outputs": ["t.value"]
    })
}

fn write(dir: &Path, name: &str, graph: &Json) {
    std::fs::write(dir.join(format!("{name}.json")), serde_json::to_string_pretty(graph).unwrap()).unwrap();
}

/// The CLI with only the test plugin.
fn cli(args: &[&str]) -> std::process::Output {
    let plugins = plugin_dir(&["subspace_test_nodes"]);
    Command::new(host_binary())
        .args(["--no-default-plugins", "--plugins", plugins.path().to_str().unwrap(), "--device", "cpu"])
        .args(args)
        .output()
        .unwrap()
}

fn float(r: &subspace_host::RunReport, node: &str, port: &str) -> f64 {
    match r.output(node, port) {
        Some(Value::Float(x)) => *x,
        other => panic!("{node}.{port}: expected a float, got {other:?} (status {:?})", r.status),
    }
}

fn errors_of(g: &Json, dir: &Path) -> Vec<ValidationError> {
    let g: subspace_host::Graph = serde_json::from_value(g.clone()).unwrap();
    match validate_with(&g, &test_registry(), &PresetSearch::new(vec![dir.to_path_buf()])) {
        Ok(_) => panic!("expected validation errors"),
        Err(e) => e,
    }
}

#[test]
fn cli_lists_presets_with_their_parameters_and_ports() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "scaled", &scaled());
    std::fs::write(dir.path().join("broken.json"), "{ not json").unwrap();
    let out = cli(&["presets", dir.path().to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list: Json = serde_json::from_slice(&out.stdout).unwrap();
    let presets = list["presets"].as_array().unwrap();
    let p = presets.iter().find(|p| p["name"] == "scaled").expect("scaled listed");
    assert_eq!(p["type"], "preset:scaled");
    assert_eq!(p["description"], "k times factor, twice");
    let value = &p["params"][0];
    assert_eq!((value["name"].as_str(), value["kind"].as_str()), (Some("value"), Some("float")));
    assert_eq!((value["min"].as_f64(), value["max"].as_f64()), (Some(0.0), Some(100.0)), "the declared range: {value}");
    assert_eq!(value["default"], json!(2.0), "the default is the target's value in the file");
    assert_eq!(value["targets"], json!(["k.value"]));
    let factor = &p["params"][1];
    assert_eq!(factor["min"].as_f64(), Some(-1e6), "range taken from the target's specification: {factor}");
    assert_eq!(factor["description"], "both factors");
    assert_eq!(factor["targets"], json!(["s.factor", "t.factor"]));
    assert_eq!(p["inputs"], json!([{"name": "x", "type": "float", "inner": ["s.value"]}]));
    let outputs: Vec<(String, String)> = p["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["name"].as_str().unwrap().into(), o["type"].as_str().unwrap().into()))
        .collect();
    assert_eq!(outputs, vec![("count".to_string(), "int".to_string()), ("y".to_string(), "float".to_string())]);
    assert_eq!(p["problems"], json!([]));
    let broken = presets.iter().find(|p| p["name"] == "broken").expect("a broken file is listed");
    assert!(broken["problems"][0].as_str().unwrap().contains("invalid graph JSON"), "{broken}");

    let text = cli(&["presets", dir.path().to_str().unwrap()]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("scaled") && text.contains("value") && text.contains("a float in [0, 100]"), "{text}");
}

#[test]
fn cli_runs_a_preset_with_params_and_refuses_a_bad_param_by_name() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "scaled", &scaled());
    let file = dir.path().join("scaled.json");
    let out = dir.path().join("out");
    let run = |extra: &[&str]| {
        let mut args = vec!["run", file.to_str().unwrap(), "--out", out.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        cli(&args)
    };
    let value = |o: &std::process::Output| -> f64 {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let report: Json = serde_json::from_slice(&o.stdout).unwrap();
        report["outputs"]["t"]["value"].as_f64().unwrap()
    };
    assert_eq!(value(&run(&[])), 18.0);
    assert_eq!(value(&run(&["--param", "value=5"])), 45.0);
    assert_eq!(value(&run(&["--param", "factor=2"])), 8.0, "one parameter drives both scales");
    assert_eq!(value(&run(&["--param", "value=5", "--set", "t.factor=1"])), 15.0, "--set still works, after --param");

    // By name, from a preset folder.
    let by_name = cli(&[
        "run",
        "scaled",
        "--presets",
        dir.path().to_str().unwrap(),
        "--param",
        "value=1",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(value(&by_name), 9.0);

    let bad = run(&["--param", "value=500"]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(err.contains("preset 'scaled'") && err.contains("value") && err.contains("[0, 100]"), "{err}");
    assert!(!err.contains("running"), "nothing runs: {err}");
    let wrong_kind = run(&["--param", "factor=big"]);
    let err = String::from_utf8_lossy(&wrong_kind.stderr);
    assert!(!wrong_kind.status.success() && err.contains("factor") && err.contains("a float in"), "{err}");
    let unknown = run(&["--param", "nope=1"]);
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(!unknown.status.success());
    assert!(err.contains("preset 'scaled'") && err.contains("'nope'") && err.contains("value, factor"), "{err}");
}

#[test]
fn cli_runs_a_graph_using_a_preset_from_its_own_folder() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "scaled", &scaled());
    let outer = json!({
        "version": 1,
        "nodes": [
            {"id": "src", "type": "test.constant", "params": {"value": 10.0}},
            {"id": "p", "type": "preset:scaled", "params": {"factor": 2.0}}
        ],
        "links": [{"from": "src.value", "to": "p.x"}],
        "outputs": ["p.y"]
    });
    write(dir.path(), "outer", &outer);
    let out = dir.path().join("out");
    // No --presets: the folder of the graph is searched first.
    let o = cli(&["run", dir.path().join("outer.json").to_str().unwrap(), "--out", out.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: Json = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["outputs"]["p"]["y"], json!(40.0), "named as the outer graph names it: {report}");
    assert_eq!(report["outputs"]["p/t"]["value"], json!(40.0), "and under the inner node");
    assert!(
        report["nodes"]["p/s"]["status"] == "ran" && report["nodes"].get("p/k").is_none(),
        "k's link was replaced: {report}"
    );
    let text = cli(&["run", dir.path().join("outer.json").to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("p.y = 40"), "{}", String::from_utf8_lossy(&text.stdout));
}

#[test]
fn a_preset_node_runs_its_ports_are_type_checked_and_a_rerun_is_all_cache_hits() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "scaled", &scaled());
    let search = PresetSearch::new(vec![dir.path().to_path_buf()]);
    let r = test_registry();
    // p: 10 x 2 x 2 (its input replaces k); q: the preset's own 2 x 3 x 3.
    let g = G::new()
        .node("src", "test.constant", json!({"value": 10.0}))
        .node("p", "preset:scaled", json!({"factor": 2.0}))
        .node("q", "preset:scaled", json!({}))
        .node("a", "test.add", json!({}))
        .link("src.value", "p.x")
        .link("p.y", "a.augend")
        .link("q.y", "a.addend")
        .out("a")
        .out("q.count");
    let plan = validate_with(&g.0, &r, &search).unwrap_or_else(|e| panic!("{e:#?}"));
    assert!(plan.index("p/s").is_some() && plan.index("q/t").is_some(), "inner ids are prefixed");
    assert_eq!(plan.outer_name("q/c", "count"), Some("q.count"));
    let e = evaluator(r.clone());
    let first = e.run(&plan, &RunOptions::default());
    assert!(first.ok(), "{:?}", first.status);
    assert_eq!(float(&first, "a", "sum"), 40.0 + 18.0);
    assert!(first.status.keys().any(|k| k == "q/k") && !first.status.contains_key("p/k"), "{:?}", first.status);

    let again = e.run(&plan, &RunOptions::default());
    assert_eq!(float(&again, "a", "sum"), 58.0);
    assert!(
        !again.status.is_empty() && again.status.values().all(|s| matches!(s, NodeStatus::Cached)),
        "{:?}",
        again.status
    );

    // The same preset under another id, in another graph: cache keys never hold ids.
    let other = G::new().node("z", "preset:scaled", json!({})).out("z.y");
    let other = e.run(&validate_with(&other.0, &r, &search).unwrap(), &RunOptions::default());
    assert_eq!(float(&other, "z/t", "value"), 18.0);
    assert!(other.status.values().all(|s| matches!(s, NodeStatus::Cached)), "{:?}", other.status);
    let changed = G::new().node("z", "preset:scaled", json!({"value": 3.0})).out("z.y");
    let changed = e.run(&validate_with(&changed.0, &r, &search).unwrap(), &RunOptions::default());
    assert_eq!(float(&changed, "z/t", "value"), 27.0, "a preset parameter reaches its target");

    // A wrong link into a preset input is refused at validation, naming the outer node and its input.
    let wrong = json!({"version": 1,
        "nodes": [{"id": "t", "type": "test.tensor"}, {"id": "p", "type": "preset:scaled"}],
        "links": [{"from": "t.tensor", "to": "p.x"}, {"from": "t.tensor", "to": "p.nope"}],
        "outputs": ["p.y"]});
    let errors = errors_of(&wrong, dir.path());
    let mismatch = errors.iter().find(|e| e.problem == Problem::TypeMismatch).unwrap_or_else(|| panic!("{errors:#?}"));
    assert_eq!((mismatch.node.as_deref(), mismatch.location.as_deref()), (Some("p"), Some("x")), "{mismatch}");
    assert!(mismatch.message.contains("t.tensor -> p.x") && mismatch.message.contains("'tensor'"), "{mismatch}");
    assert!(
        errors.iter().any(|e| e.problem == Problem::DanglingLink
            && e.node.as_deref() == Some("p")
            && e.message.contains("nope")),
        "{errors:#?}"
    );
}

#[test]
fn problems_inside_a_preset_name_the_outer_and_the_inner_node() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "scaled", &scaled());
    let mut broken = scaled();
    broken["nodes"].as_array_mut().unwrap().push(json!({"id": "ch", "type": "test.choose", "params": {"steps": 11}}));
    broken["outputs"] = json!(["t.value", "ch"]);
    write(dir.path(), "broken", &broken);
    let g = json!({"version": 1,
        "nodes": [
            {"id": "b", "type": "preset:broken"},
            {"id": "p", "type": "preset:scaled", "params": {"value": 500, "bogus": 1}},
            {"id": "m", "type": "preset:missing"},
            {"id": "src", "type": "test.constant"}
        ],
        "outputs": ["b", "p.y", "p.nothing", "m"]});
    let errors = errors_of(&g, dir.path());
    let has = |p: Problem, node: &str, loc: Option<&str>| {
        errors.iter().find(|e| e.problem == p && e.node.as_deref() == Some(node) && e.location.as_deref() == loc)
    };
    let inner = has(Problem::BadParam, "b/ch", Some("steps")).unwrap_or_else(|| panic!("{errors:#?}"));
    assert!(inner.to_string().contains("node 'b/ch'") && inner.message.contains("[1, 10]"), "{inner}");
    let range = has(Problem::BadParam, "p", Some("value")).unwrap_or_else(|| panic!("{errors:#?}"));
    assert!(range.message.contains("[0, 100]"), "{range}");
    let unknown = has(Problem::UnknownParam, "p", Some("bogus")).unwrap_or_else(|| panic!("{errors:#?}"));
    assert!(unknown.message.contains("value, factor"), "{unknown}");
    assert!(has(Problem::UnknownOutput, "p", Some("nothing")).is_some(), "{errors:#?}");
    assert!(has(Problem::UnknownPreset, "m", None).is_some_and(|e| e.message.contains("missing.json")), "{errors:#?}");
    // A preset input nobody links, whose inner input has no link of its own, is named as the preset's.
    let mut open = scaled();
    open["links"] = json!([{"from": "s.value", "to": "t.value"}, {"from": "t.value", "to": "c.value"}]);
    write(dir.path(), "open", &open);
    let errors = errors_of(
        &json!({"version": 1, "nodes": [{"id": "o", "type": "preset:open"}], "outputs": ["o.y"]}),
        dir.path(),
    );
    let missing = errors.iter().find(|e| e.problem == Problem::MissingInput).unwrap_or_else(|| panic!("{errors:#?}"));
    assert_eq!((missing.node.as_deref(), missing.location.as_deref()), (Some("o"), Some("x")), "{missing}");
}

#[test]
fn presets_that_include_each_other_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let uses = |other: &str| {
        json!({"version": 1,
            "ports": {"outputs": {"y": "inner.y"}},
            "nodes": [{"id": "inner", "type": format!("preset:{other}")}],
            "outputs": ["inner.y"]})
    };
    write(dir.path(), "ping", &uses("pong"));
    write(dir.path(), "pong", &uses("ping"));
    write(dir.path(), "me", &uses("me"));
    let errors =
        errors_of(&json!({"version": 1, "nodes": [{"id": "x", "type": "preset:ping"}], "outputs": ["x"]}), dir.path());
    let cycle = errors.iter().find(|e| e.problem == Problem::PresetCycle).unwrap_or_else(|| panic!("{errors:#?}"));
    assert!(cycle.message.contains("ping -> pong -> ping"), "{cycle}");
    assert_eq!(cycle.node.as_deref(), Some("x/inner/inner"));
    // Running the file itself: it may not include itself.
    let file = dir.path().join("me.json");
    let g = subspace_host::Graph::load(&file).unwrap();
    let errors = validate_with(&g, &test_registry(), &PresetSearch::for_file(&file, vec![])).err().expect("refused");
    assert!(errors.iter().any(|e| e.problem == Problem::PresetCycle && e.message.contains("me -> me")), "{errors:#?}");
    let out = cli(&["validate", file.to_str().unwrap()]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("include each other"));
}

#[test]
fn node_versions_are_recorded_and_a_changed_or_missing_one_names_the_node_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let r = test_registry();
    let mut g = G::new()
        .node("a", "test.add", json!({}))
        .node("k", "test.constant", json!({}))
        .link("k.value", "a.augend")
        .link("k.value", "a.addend")
        .out("a");
    g.0.record_versions(&r);
    assert_eq!(g.0.node("a").unwrap().version.as_deref(), Some("^1"), "test.add is 1.2.0");
    assert!(validate_with(&g.0, &r, &PresetSearch::default()).is_ok());

    // The node changed incompatibly since the file was saved (the file wants 2.x), inside a preset.
    g.0.nodes[0].version = Some("^2".into());
    write(dir.path(), "adds", &serde_json::to_value(&g.0).unwrap());
    let errors =
        errors_of(&json!({"version": 1, "nodes": [{"id": "p", "type": "preset:adds"}], "outputs": ["p"]}), dir.path());
    let e = errors.iter().find(|e| e.problem == Problem::VersionMismatch).unwrap_or_else(|| panic!("{errors:#?}"));
    assert_eq!(e.node.as_deref(), Some("p/a"));
    assert!(e.message.contains("1.2.0") && e.message.contains("^2") && e.message.contains("\"^1\""), "what to do: {e}");

    // The node type is gone from the loaded plugins.
    let gone = json!({"version": 1, "nodes": [{"id": "n", "type": "acme.walk", "version": "^3"}], "outputs": ["n"]});
    let errors = errors_of(&gone, dir.path());
    let e = errors.iter().find(|e| e.problem == Problem::UnknownNodeType).unwrap_or_else(|| panic!("{errors:#?}"));
    assert!(
        e.node.as_deref() == Some("n")
            && e.message.contains("'acme.walk' (the graph wants ^3)")
            && e.message.contains("--plugins"),
        "{e}"
    );

    // A parameter the file does not mention (added to the node later) takes its default.
    let g = G::new().node("c", "test.choose", json!({"mode": "b"})).out("c");
    let plan = validate_with(&g.0, &r, &PresetSearch::default()).unwrap();
    let steps = plan.nodes[0].params.iter().find(|p| p.name.as_str() == "steps").expect("steps filled in");
    assert!(matches!(steps.value, Value::Int(1)), "{:?}", steps.value);
}

#[test]
fn the_shipped_presets_validate_and_list_their_parameters() {
    // Every product plugin: the picture presets need the images plugin too.
    let r = all_product_plugins();
    let dir = repo_root().join("examples/presets");
    let list = preset::list(std::slice::from_ref(&dir), &r);
    let shipped = [
        "demo",
        "compare",
        "compare-seed",
        "gpu-check",
        "fit-mixture",
        "edit-mixture",
        "fit-and-edit",
        "edit-my-pictures",
        "invert-eval",
    ];
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.strip_suffix(".json").map(String::from))
        .collect();
    on_disk.sort();
    let mut listed: Vec<&str> = shipped.to_vec();
    listed.sort();
    assert_eq!(on_disk, listed, "every shipped preset is checked here");
    let format = std::fs::read_to_string(repo_root().join("docs/GRAPH_FORMAT.md")).unwrap();
    for name in shipped {
        assert!(format.contains(&format!("`{name}`")), "docs/GRAPH_FORMAT.md does not list the preset {name}");
    }
    for name in shipped {
        let p = list.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("{name} not listed"));
        assert!(p.problems.is_empty(), "{name}: {:?}", p.problems);
        assert!(!p.params.is_empty(), "{name} exposes parameters");
        let g = subspace_host::Graph::load(&p.path).unwrap();
        let plan = validate_with(&g, &r, &PresetSearch::for_file(&p.path, vec![]))
            .unwrap_or_else(|e| panic!("{name}: {e:#?}"));
        assert!(!plan.needed_order().is_empty());
        for n in &g.nodes {
            assert!(
                n.version.is_some() || n.node_type.starts_with("preset:"),
                "{name}: node {} records no version",
                n.id
            );
        }
    }
    let demo = list.iter().find(|p| p.name == "demo").unwrap();
    let (ratio, _) = demo.params.iter().find(|(s, _)| s.name.as_str() == "ratio").unwrap();
    assert!(matches!(ratio.default, Value::Float(x) if x == 1.0));
    let edit = list.iter().find(|p| p.name == "edit-mixture").unwrap();
    assert_eq!(
        edit.inputs.iter().map(|p| (p.name.as_str(), p.ty.as_str())).collect::<Vec<_>>(),
        vec![("codes", "latents"), ("mixture", "mixture")]
    );
    // Composed: fit-mixture's mixture replaces edit-mixture's loading of a saved one.
    let file = dir.join("fit-and-edit.json");
    let plan =
        validate_with(&subspace_host::Graph::load(&file).unwrap(), &r, &PresetSearch::for_file(&file, vec![])).unwrap();
    let needed: Vec<&str> = plan.needed_order().iter().map(|&i| plan.nodes[i].id.as_str()).collect();
    assert!(
        needed.contains(&"fit/gmm") && needed.contains(&"edit/grids") && needed.contains(&"fit/save"),
        "{needed:?}"
    );
    assert!(!needed.contains(&"edit/load"), "the linked mixture replaces the loaded one: {needed:?}");
}
