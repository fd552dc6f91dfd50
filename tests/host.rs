//! The host with the test plugin: loading, refusal, validation, laziness, caching, parallelism, failure isolation,
//! panics, zero-copy tensors, cancellation, and the CLI.

use serde_json::json;
use std::collections::BTreeSet;
use std::process::Command;
use subspace_host::{validate, CancelToken, Event, NodeStatus, Problem, Registry, RunOptions};
use subspace_sdk::{ErrorKind, Value};
use subspace_tests::*;

fn float(r: &subspace_host::RunReport, node: &str, port: &str) -> f64 {
    match r.output(node, port) {
        Some(Value::Float(x)) => *x,
        other => panic!("{node}.{port}: expected a float, got {other:?} (status {:?})", r.status),
    }
}

fn int(r: &subspace_host::RunReport, node: &str, port: &str) -> i64 {
    match r.output(node, port) {
        Some(Value::Int(x)) => *x,
        other => panic!("{node}.{port}: expected an int, got {other:?}"),
    }
}

fn set(v: Vec<&str>) -> BTreeSet<String> {
    v.into_iter().map(String::from).collect()
}

#[test]
fn loads_and_lists_the_test_plugin() {
    let r = test_registry();
    assert_eq!(r.plugins.len(), 1);
    for id in ["test.add", "test.sleep", "test.panic", "test.pass", "test.clock"] {
        assert!(r.node(id).is_some(), "{id} not listed");
    }
    let add = &r.node("test.add").unwrap().descriptor;
    assert_eq!(add.version.as_str(), "1.2.0");
    assert_eq!(add.inputs.len(), 2);
}

#[test]
fn incompatible_and_broken_plugins_are_refused_by_name_while_the_others_load() {
    let dir = plugin_dir(&["subspace_test_nodes", "subspace_test_mismatch"]);
    std::fs::write(dir.path().join(format!("libbroken{}", std::env::consts::DLL_SUFFIX)), b"not a library").unwrap();
    let r = Registry::load(&[dir.path().to_path_buf()]);
    assert_eq!(r.plugins.len(), 1, "only the good plugin loads");
    assert!(r.node("test.add").is_some());
    assert!(r.node("mismatch.node").is_none(), "a refused plugin's nodes are never listed");
    let mismatch =
        r.problems.iter().find(|p| p.path.to_string_lossy().contains("mismatch")).expect("mismatch reported");
    let host = format!("host has {}.{}", subspace_sdk::SDK_ABI_MAJOR, subspace_sdk::SDK_ABI_MINOR);
    assert!(mismatch.message.contains("99.0") && mismatch.message.contains(&host), "{}", mismatch.message);
    let broken = r.problems.iter().find(|p| p.path.to_string_lossy().contains("broken")).expect("broken reported");
    assert!(broken.message.contains("not a Subspace plugin"), "{}", broken.message);
}

#[test]
fn duplicate_node_ids_across_plugins_are_reported() {
    let a = plugin_dir(&["subspace_test_nodes"]);
    let b = plugin_dir(&["subspace_test_nodes"]);
    let r = Registry::load(&[a.path().to_path_buf(), b.path().to_path_buf()]);
    assert_eq!(r.plugins.len(), 2);
    assert!(r.problems.iter().any(|p| p.message.contains("duplicate node id 'test.add'")), "{:?}", r.problems);
    assert_eq!(r.node("test.add").unwrap().plugin, 0, "the first plugin keeps the id");
}

#[test]
fn validation_reports_every_problem_at_once_with_node_and_port() {
    let r = test_registry();
    let g = G::new()
        .node("c", "test.constant", json!({"value": 1.0}))
        .node("c", "test.constant", json!({}))
        .node("u", "test.nope", json!({}))
        .node("v", "test.add", json!({}))
        .node("p", "test.choose", json!({"mode": "z", "steps": 11, "bogus": 1}))
        .node("w", "test.choose", json!({"steps": "three"}))
        .node("t", "test.address", json!({}))
        .node("x", "test.scale", json!({}))
        .node("y", "test.scale", json!({}))
        .link("c.value", "v.augend")
        .link("c.value", "v.augend")
        .link("ghost.value", "v.addend")
        .link("c.nothing", "x.value")
        .link("c.value", "t.tensor")
        .link("x.value", "y.value")
        .link("y.value", "x.value")
        .link("novalid", "x.value")
        .out("v")
        .out("c.missing")
        .out("nobody");
    let mut g = g;
    g.0.nodes.push(subspace_host::graph::GraphNode {
        id: "old".into(),
        node_type: "test.add".into(),
        version: Some("^2".into()),
        params: Default::default(),
    });
    let errors = validate(&g.0, &r).err().expect("invalid");
    let has = |p: Problem, node: &str, loc: Option<&str>| {
        errors.iter().any(|e| {
            e.problem == p && e.node.as_deref() == Some(node) && (loc.is_none() || e.location.as_deref() == loc)
        })
    };
    assert!(has(Problem::DuplicateId, "c", None), "{errors:#?}");
    assert!(has(Problem::UnknownNodeType, "u", None));
    assert!(has(Problem::VersionMismatch, "old", None));
    assert!(has(Problem::BadParam, "p", Some("mode")));
    assert!(has(Problem::BadParam, "p", Some("steps")));
    assert!(has(Problem::UnknownParam, "p", Some("bogus")));
    assert!(has(Problem::BadParam, "w", Some("steps")));
    assert!(has(Problem::InputLinkedTwice, "v", Some("augend")));
    assert!(has(Problem::DanglingLink, "ghost", None));
    assert!(has(Problem::DanglingLink, "c", Some("nothing")));
    assert!(has(Problem::TypeMismatch, "t", Some("tensor")));
    assert!(has(Problem::MissingInput, "v", Some("addend")) || has(Problem::DanglingLink, "ghost", None));
    assert!(has(Problem::MissingInput, "old", Some("augend")));
    assert!(errors.iter().any(|e| e.problem == Problem::Cycle), "{errors:#?}");
    assert!(errors.iter().any(|e| e.problem == Problem::BadLink));
    assert!(has(Problem::UnknownOutput, "c", Some("missing")));
    assert!(has(Problem::UnknownOutput, "nobody", None));
    let msg = errors
        .iter()
        .find(|e| e.problem == Problem::BadParam && e.location.as_deref() == Some("steps"))
        .unwrap()
        .to_string();
    assert!(msg.contains("node 'p'") && msg.contains("[1, 10]"), "{msg}");

    let nothing = validate(&G::new().node("c", "test.constant", json!({})).0, &r).err().unwrap();
    assert_eq!(nothing.len(), 1);
    assert_eq!(nothing[0].problem, Problem::NothingRequested);
}

#[test]
fn only_what_the_requested_outputs_need_runs() {
    let e = evaluator(test_registry());
    let g = G::new()
        .node("a", "test.constant", json!({"value": 2.0}))
        .node("wanted", "test.scale", json!({"factor": 3.0}))
        .node("b", "test.constant", json!({"value": 5.0}))
        .node("unwanted", "test.count", json!({"tag": "lazy"}))
        .link("a.value", "wanted.value")
        .link("b.value", "unwanted.value")
        .out("wanted");
    let r = run(&e, &g);
    assert_eq!(float(&r, "wanted", "value"), 6.0);
    assert_eq!(set(r.ran()), set(vec!["a", "wanted"]));
    assert!(!r.status.contains_key("unwanted") && !r.status.contains_key("b"));
}

#[test]
fn changing_one_parameter_reruns_exactly_that_node_and_its_dependents() {
    let e = evaluator(test_registry());
    let g = G::new()
        .node("c1", "test.constant", json!({"value": 1.0}))
        .node("c2", "test.constant", json!({"value": 10.0}))
        .node("s1", "test.scale", json!({"factor": 2.0}))
        .node("s2", "test.scale", json!({"factor": 3.0}))
        .node("sum", "test.add", json!({}))
        .link("c1.value", "s1.value")
        .link("c2.value", "s2.value")
        .link("s1.value", "sum.augend")
        .link("s2.value", "sum.addend")
        .out("sum");
    let first = run(&e, &g);
    assert_eq!(float(&first, "sum", "sum"), 32.0);
    assert_eq!(first.ran().len(), 5);

    let same = run(&e, &g);
    assert_eq!(same.ran().len(), 0);
    assert_eq!(set(same.cached()), set(vec!["sum"]), "a cached output needs nothing upstream");

    let changed = run(&e, &g.clone().set("s1", "factor", json!(4.0)));
    assert_eq!(float(&changed, "sum", "sum"), 34.0);
    assert_eq!(set(changed.ran()), set(vec!["s1", "sum"]));
    assert_eq!(set(changed.cached()), set(vec!["c1", "s2"]));

    // Keys do not depend on node ids: the same graph under other ids is fully cached.
    let mut renamed = g.clone().set("s1", "factor", json!(4.0));
    for n in renamed.0.nodes.iter_mut() {
        n.id = format!("other_{}", n.id);
    }
    for l in renamed.0.links.iter_mut() {
        l.from = format!("other_{}", l.from);
        l.to = format!("other_{}", l.to);
    }
    renamed.0.outputs = vec!["other_sum".into()];
    let r = run(&e, &renamed);
    assert!(r.ran().is_empty(), "{:?}", r.status);
}

#[test]
fn volatile_nodes_rerun_every_run() {
    let e = evaluator(test_registry());
    let g = G::new().node("clock", "test.clock", json!({})).node("k", "test.constant", json!({})).out("clock").out("k");
    let a = run(&e, &g);
    let b = run(&e, &g);
    assert_eq!(set(b.ran()), set(vec!["clock"]));
    assert_eq!(set(b.cached()), set(vec!["k"]));
    assert!(float(&b, "clock", "value") >= float(&a, "clock", "value"));
}

#[test]
fn independent_branches_run_in_parallel() {
    let e = evaluator(test_registry());
    let g = G::new()
        .node("left", "test.sleep", json!({"ms": 400}))
        .node("right", "test.sleep", json!({"ms": 400}))
        .node("sum", "test.add", json!({}))
        .link("left.value", "sum.augend")
        .link("right.value", "sum.addend")
        .out("sum")
        .out("left")
        .out("right");
    let r = run(&e, &g);
    let (ls, lf) = (float(&r, "left", "started"), float(&r, "left", "finished"));
    let (rs, rf) = (float(&r, "right", "started"), float(&r, "right", "finished"));
    assert!(ls < rf && rs < lf, "the two sleeps did not overlap: left {ls}..{lf}, right {rs}..{rf}");
}

#[test]
fn a_failing_node_stops_only_its_dependents_and_keeps_finished_results() {
    let e = evaluator(test_registry());
    let g = G::new()
        .node("bad", "test.fail", json!({}))
        .node("after_bad", "test.scale", json!({}))
        .node("good", "test.constant", json!({"value": 7.0}))
        .node("after_good", "test.scale", json!({"factor": 2.0}))
        .link("bad.value", "after_bad.value")
        .link("good.value", "after_good.value")
        .out("after_bad")
        .out("after_good");
    let r = run(&e, &g);
    assert_eq!(float(&r, "after_good", "value"), 14.0);
    match &r.status["bad"] {
        NodeStatus::Failed { error } => {
            assert_eq!(error.kind, ErrorKind::InvalidInput);
            assert_eq!(error.location.clone().into_option().as_deref(), Some("value"));
        }
        s => panic!("bad: {s:?}"),
    }
    assert!(matches!(&r.status["after_bad"], NodeStatus::Skipped { because } if because.contains("'bad'")));
    assert!(!r.ok());
}

#[test]
fn a_panicking_node_becomes_an_error_and_the_host_stays_usable() {
    let e = evaluator(test_registry());
    let r = run(&e, &G::new().node("p", "test.panic", json!({})).out("p"));
    match &r.status["p"] {
        NodeStatus::Failed { error } => {
            assert_eq!(error.kind, ErrorKind::Panic);
            assert!(error.message.contains("deliberate panic"), "{}", error.message);
        }
        s => panic!("{s:?}"),
    }
    let after = run(&e, &G::new().node("k", "test.constant", json!({"value": 3.0})).out("k"));
    assert_eq!(float(&after, "k", "value"), 3.0);
}

#[test]
fn a_node_that_breaks_its_output_contract_fails_with_a_clear_error() {
    let e = evaluator(test_registry());
    let r = run(&e, &G::new().node("w", "test.wrong_output", json!({})).out("w"));
    match &r.status["w"] {
        NodeStatus::Failed { error } => assert!(error.message.contains("declared float"), "{}", error.message),
        s => panic!("{s:?}"),
    }
}

#[test]
fn a_tensor_passes_through_three_nodes_without_a_copy() {
    let e = evaluator(test_registry());
    let g = G::new()
        .node("src", "test.tensor", json!({"n": 1000}))
        .node("p1", "test.pass", json!({}))
        .node("p2", "test.pass", json!({}))
        .node("p3", "test.pass", json!({}))
        .node("addr", "test.address", json!({}))
        .link("src.tensor", "p1.tensor")
        .link("p1.tensor", "p2.tensor")
        .link("p2.tensor", "p3.tensor")
        .link("p3.tensor", "addr.tensor")
        .out("src")
        .out("addr");
    let r = run(&e, &g);
    let Some(Value::Tensor(t)) = r.output("src", "tensor") else { panic!() };
    assert_eq!(int(&r, "addr", "address"), t.tensor().data_ptr() as i64, "storage was copied");
    assert_eq!(float(&r, "addr", "sum"), 499_500.0);
}

#[test]
fn seeded_randomness_repeats_and_changes_with_the_inputs() {
    let g = |n: i64| {
        G::new()
            .node("t", "test.tensor", json!({"n": n, "random": true}))
            .node("a", "test.address", json!({}))
            .link("t.tensor", "a.tensor")
            .out("a.sum")
    };
    let a = run(&evaluator(test_registry()), &g(64));
    let b = run(&evaluator(test_registry()), &g(64));
    let c = run(&evaluator(test_registry()), &g(65));
    assert_eq!(float(&a, "a", "sum"), float(&b, "a", "sum"));
    assert_ne!(float(&a, "a", "sum"), float(&c, "a", "sum"));
}

#[test]
fn a_run_can_be_cancelled_and_reports_progress_events() {
    let e = evaluator(test_registry());
    let g = G::new()
        .node("wait", "test.wait_for_cancel", json!({}))
        .node("s", "test.sleep", json!({"ms": 50}))
        .out("wait")
        .out("s");
    let plan = g.plan(&e.registry);
    let cancel = CancelToken::default();
    let (tx, rx) = crossbeam::channel::unbounded();
    let opts = RunOptions { events: Some(tx), cancel: cancel.clone(), ..Default::default() };
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        cancel.cancel();
    });
    let r = e.run(&plan, &opts);
    canceller.join().unwrap();
    drop(opts);
    match &r.status["wait"] {
        NodeStatus::Failed { error } => assert_eq!(error.kind, ErrorKind::Cancelled),
        s => panic!("{s:?}"),
    }
    let events: Vec<Event> = rx.iter().collect();
    assert!(events.iter().any(|e| matches!(e, Event::NodeProgress { node, .. } if node == "s")));
    assert!(events.iter().any(|e| matches!(e, Event::NodeFinished { node, .. } if node == "s")));
    assert!(events.iter().any(|e| matches!(e, Event::NodeFailed { node, .. } if node == "wait")));
}

#[test]
fn cli_validates_runs_with_overrides_and_lists_nodes() {
    let dir = plugin_dir(&["subspace_test_nodes"]);
    let tmp = tempfile::tempdir().unwrap();
    let graph = tmp.path().join("g.json");
    let g = G::new()
        .node("k", "test.constant", json!({"value": 2.0}))
        .node("s", "test.scale", json!({"factor": 3.0}))
        .link("k.value", "s.value")
        .out("s");
    std::fs::write(&graph, serde_json::to_string_pretty(&g.0).unwrap()).unwrap();
    let cli = |args: &[&str]| {
        Command::new(host_binary())
            .args(["--no-default-plugins", "--plugins", dir.path().to_str().unwrap(), "--device", "cpu"])
            .args(args)
            .output()
            .unwrap()
    };
    let out = cli(&[
        "run",
        graph.to_str().unwrap(),
        "--set",
        "s.factor=5",
        "--out",
        tmp.path().join("o").to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outputs"]["s"]["value"], json!(10.0));

    let bad = cli(&["run", graph.to_str().unwrap(), "--set", "s.factor=\"x\""]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("node 's'") && err.contains("factor") && err.contains("nothing was run"), "{err}");

    let listing = cli(&["nodes", "--json"]);
    let nodes: serde_json::Value = serde_json::from_slice(&listing.stdout).unwrap();
    let scale = nodes["nodes"].as_array().unwrap().iter().find(|n| n["id"] == "test.scale").unwrap();
    assert_eq!(scale["params"][0]["name"], "factor");
    assert_eq!(scale["inputs"][0]["type"], "float");
}

#[test]
fn a_cancelled_run_never_reports_ok_with_a_requested_output_missing() {
    // `s` does not check for cancellation and finishes after the cancel; `k` becomes ready only then.
    let e = evaluator(test_registry());
    let g = G::new()
        .node("s", "test.sleep", json!({"ms": 400}))
        .node("k", "test.scale", json!({"factor": 2.0}))
        .link("s.value", "k.value")
        .out("k");
    let plan = g.plan(&e.registry);
    let opts = RunOptions::default();
    let cancel = opts.cancel.clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(100));
        cancel.cancel();
    });
    let r = e.run(&plan, &opts);
    canceller.join().unwrap();
    assert!(matches!(r.status["s"], NodeStatus::Ran { .. }), "{:?}", r.status);
    match r.status.get("k") {
        Some(NodeStatus::Skipped { because }) => assert!(because.contains("cancelled"), "{because}"),
        s => panic!("the dependent ready after the cancel must be reported skipped, got {s:?}"),
    }
    assert!(r.cancelled);
    assert_eq!(r.missing, vec!["k".to_string()]);
    assert!(!r.ok(), "a cancelled run with a missing output is not ok");
}

#[test]
fn the_cache_stays_within_its_byte_budget_evicting_the_least_recently_used() {
    let e = evaluator(test_registry());
    // Each tensor is 1,000,000 bytes; the budget holds three.
    e.set_cache_budget(3_200_000);
    let tensor = |n: i64| G::new().node("t", "test.tensor", json!({"n": n})).out("t");
    let status = |n: i64| {
        let r = run(&e, &tensor(n));
        assert!(r.cache.bytes <= r.cache.budget, "{:?}", r.cache);
        (matches!(r.status["t"], NodeStatus::Cached), r.cache)
    };
    for n in [250_000, 250_001, 250_002] {
        assert!(!status(n).0);
    }
    assert!(status(250_000).0, "still cached, and now the most recently used");
    let (cached, stats) = status(250_003);
    assert!(!cached);
    assert_eq!((stats.entries, stats.evicted), (3, 1), "{stats:?}");
    assert!(!status(250_001).0, "the least recently used result was evicted and runs again");
    assert!(status(250_003).0);
    // A result larger than the whole budget is used by its run but not kept.
    let r = run(&e, &tensor(1_000_000));
    assert!(r.ok() && r.output("t", "tensor").is_some());
    assert!(r.cache.bytes <= r.cache.budget && r.cache.evicted >= 1, "{:?}", r.cache);
    assert!(!status(1_000_000).0);
}

/// The CLI with only the test plugin loaded, and a one-node graph file `g.json` in a fresh folder.
fn cli_with_constant(args: &[&str]) -> (tempfile::TempDir, std::process::Output) {
    let tmp = tempfile::tempdir().unwrap();
    let graph = tmp.path().join("g.json");
    std::fs::write(
        &graph,
        serde_json::to_string(&G::new().node("k", "test.constant", json!({"value": 4.0})).out("k").0).unwrap(),
    )
    .unwrap();
    let dir = plugin_dir(&["subspace_test_nodes"]);
    let args: Vec<String> = args.iter().map(|a| a.replace("TMP", tmp.path().to_str().unwrap())).collect();
    let out = Command::new(host_binary())
        .args(["--no-default-plugins", "--plugins", dir.path().to_str().unwrap(), "--device", "cpu", "run"])
        .arg(&graph)
        .args(&args)
        .output()
        .unwrap();
    (tmp, out)
}

#[test]
fn absurd_worker_counts_are_refused_by_the_cli_and_clamped_by_the_library() {
    let (_tmp, out) = cli_with_constant(&["--workers", "100000", "--out", "TMP/o"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "an argument error, not a signal: {err}");
    assert!(err.contains("--workers") && err.contains("100000"), "{err}");
    // The library clamps instead of spawning 100,000 threads.
    let mut e = evaluator(test_registry());
    e.workers = 100_000;
    assert!(run(&e, &G::new().node("k", "test.constant", json!({"value": 1.0})).out("k")).ok());
}

#[test]
fn an_output_folder_that_cannot_be_written_is_refused_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let blocker = tmp.path().join("a-file");
    std::fs::write(&blocker, b"x").unwrap();
    let (_g, out) = cli_with_constant(&["--out", blocker.join("out").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("output folder") && err.contains("a-file"), "{err}");
    assert!(!err.contains("running"), "nothing should run: {err}");
}

#[test]
fn the_outputs_are_printed_even_when_the_run_report_cannot_be_written() {
    // A folder where the report file should go makes its rename fail after the run.
    let (tmp, out) = cli_with_constant(&["--out", "TMP/o", "--json"]);
    assert!(out.status.success());
    std::fs::remove_file(tmp.path().join("o/run-report.json")).unwrap();
    std::fs::create_dir_all(tmp.path().join("o/run-report.json/blocked")).unwrap();
    let graph = tmp.path().join("g.json");
    let dir = plugin_dir(&["subspace_test_nodes"]);
    let out = Command::new(host_binary())
        .args(["--no-default-plugins", "--plugins", dir.path().to_str().unwrap(), "--device", "cpu", "run"])
        .args([graph.to_str().unwrap(), "--out", tmp.path().join("o").to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a report that cannot be written is a failure");
    assert!(err.contains("run report") && err.contains("run-report.json"), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {err}"));
    assert_eq!(report["outputs"]["k"]["value"], json!(4.0), "the outputs still reach stdout");
}

#[test]
fn a_plugin_built_against_the_older_compatible_sdk_layout_still_loads_and_runs() {
    let r = registry_of(&["subspace_test_old_sdk", "subspace_test_nodes"]);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    let old = r.plugins.iter().find(|p| p.nodes.iter().any(|n| n.id.as_str() == "old.double")).unwrap();
    assert_eq!((old.info.sdk_abi_major, old.info.sdk_abi_minor), (subspace_sdk::SDK_ABI_MAJOR, 0));
    assert!(old.about.is_none(), "a 1.0 plugin has no `about`; the host reads None instead of failing");
    let new = r.plugins.iter().find(|p| p.nodes.iter().any(|n| n.id.as_str() == "test.add")).unwrap();
    assert_eq!(new.about.as_ref().map(|a| a.name.to_string()), Some("subspace-test-nodes".to_string()));
    // The old plugin's node runs, linked to a node of a current plugin.
    let e = evaluator(std::sync::Arc::new(r));
    let g = G::new()
        .node("k", "test.constant", json!({"value": 21.0}))
        .node("d", "old.double", json!({}))
        .link("k.value", "d.value")
        .out("d");
    assert_eq!(float(&run(&e, &g), "d", "value"), 42.0);
}
