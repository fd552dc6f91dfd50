//! The disk cache: results of cacheable nodes kept across evaluators and processes, keyed by the cache key, the
//! plugins' build ids and the files parameters name; identical outputs back, misses on any change, least recently
//! used entries evicted within the budget, corrupt entries ignored and recomputed, a killed writer never leaving an
//! entry that loads, volatile and non-cacheable nodes never stored, model outputs re-created, a folder counted by
//! the files in it; and the SDK 1.2 layout that carries the cacheable flag, with 1.1 plugins still loading.

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use subspace_host::{DiskCache, Evaluator, Registry, RunReport};
use subspace_sdk::{tch, Value};
use subspace_tests::*;

/// A fresh evaluator over `registry` whose disk cache is `dir`.
fn disk_evaluator(registry: Arc<Registry>, dir: &Path, budget: u64) -> Evaluator {
    let mut e = evaluator(registry);
    e.set_disk_cache(Some(DiskCache::open(dir, budget).unwrap()));
    e
}

fn fresh(dir: &Path) -> Evaluator {
    disk_evaluator(test_registry(), dir, 1 << 30)
}

/// `k` (constant, not cacheable) -> `s` (test.store, cacheable), all of `s` requested.
fn store(n: i64, tag: &str, value: f64) -> G {
    G::new()
        .node("k", "test.constant", json!({"value": value}))
        .node("s", "test.store", json!({"n": n, "tag": tag}))
        .link("k.value", "s.value")
        .out("s")
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut list: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    list.sort();
    list
}

fn ran(r: &RunReport, node: &str) -> bool {
    r.ran().contains(&node)
}

fn from_disk(r: &RunReport, node: &str) -> bool {
    r.from_disk.contains(node) && r.cached().contains(&node)
}

fn same_tensor(what: &str, a: &tch::Tensor, b: &tch::Tensor) {
    assert_eq!((a.size(), a.kind()), (b.size(), b.kind()), "{what}");
    assert!(a.equal(b), "{what}: values differ");
}

/// Two values are the same kind with the same contents (floats to the bit).
fn same(what: &str, a: &Value, b: &Value) {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => assert_eq!(x.to_bits(), y.to_bits(), "{what}"),
        (Value::Int(x), Value::Int(y)) => assert_eq!(x, y, "{what}"),
        (Value::Bool(x), Value::Bool(y)) => assert_eq!(x, y, "{what}"),
        (Value::Text(x), Value::Text(y)) => assert_eq!(x, y, "{what}"),
        (Value::Tensor(x), Value::Tensor(y))
        | (Value::Latents(x), Value::Latents(y))
        | (Value::Images(x), Value::Images(y)) => same_tensor(what, &x.tensor(), &y.tensor()),
        (Value::Labels(x), Value::Labels(y)) => {
            assert_eq!(x.schema, y.schema, "{what}");
            same_tensor(what, &x.probs.tensor(), &y.probs.tensor());
        }
        (Value::Bundle(x), Value::Bundle(y)) => {
            assert_eq!((&x.kind, &x.meta), (&y.kind, &y.meta), "{what}");
            assert_eq!(x.tensors.len(), y.tensors.len(), "{what}");
            for (p, q) in x.tensors.iter().zip(y.tensors.iter()) {
                assert_eq!(p.name, q.name, "{what}");
                same_tensor(&format!("{what}/{}", p.name), &p.tensor.tensor(), &q.tensor.tensor());
            }
        }
        _ => panic!("{what}: {} and {}", a.port_type(), b.port_type()),
    }
}

fn same_outputs(a: &RunReport, b: &RunReport, node: &str) {
    let (x, y) = (&a.outputs[node], &b.outputs[node]);
    assert_eq!(x.len(), y.len());
    for (p, q) in x.iter().zip(y.iter()) {
        assert_eq!(p.name, q.name);
        same(&format!("{node}.{}", p.name), &p.value, &q.value);
    }
}

#[test]
fn a_second_evaluator_loads_cacheable_results_from_disk_identically() {
    let dir = tempfile::tempdir().unwrap();
    let first = run(&fresh(dir.path()), &store(5, "a", 1.5));
    assert!(first.ok() && ran(&first, "s") && ran(&first, "k"), "{:?}", first.status);
    let disk = first.cache.disk.expect("disk figures in the report");
    assert_eq!((disk.written, disk.hits, disk.entries), (1, 0, 1), "only the cacheable node is stored: {disk:?}");

    let e = fresh(dir.path());
    let second = run(&e, &store(5, "a", 1.5));
    assert!(second.ok() && from_disk(&second, "s"), "{:?} {:?}", second.status, second.from_disk);
    assert!(!second.status.contains_key("k"), "a disk hit cuts the walk: its inputs are not even visited");
    assert_eq!(second.cache.disk.unwrap().hits, 1);
    assert!(second.warnings.is_empty(), "{:?}", second.warnings);
    same_outputs(&first, &second, "s");
    assert_eq!(second.outputs["s"].len(), 9, "every output came back");
    // Now in memory too: the next run of this evaluator does not read the disk.
    let third = run(&e, &store(5, "a", 1.5));
    assert!(third.cached().contains(&"s") && third.from_disk.is_empty(), "{:?}", third.from_disk);
}

#[test]
fn any_change_above_a_node_misses() {
    let dir = tempfile::tempdir().unwrap();
    run(&fresh(dir.path()), &store(5, "a", 1.5));
    for (what, g) in [
        ("its parameter", store(6, "a", 1.5)),
        ("its text parameter", store(5, "b", 1.5)),
        ("an upstream parameter", store(5, "a", 2.5)),
    ] {
        let r = run(&fresh(dir.path()), &g);
        assert!(r.ok() && ran(&r, "s") && r.from_disk.is_empty(), "{what}: {:?}", r.status);
    }
    assert!(from_disk(&run(&fresh(dir.path()), &store(5, "a", 1.5)), "s"), "the first entry is still there");

    // A file a path parameter names is part of the key by its size and time.
    let file = dir.path().join("model.pt");
    std::fs::write(&file, b"one").unwrap();
    let named = || store(5, "a", 1.5).set("s", "file", json!(file.to_str().unwrap()));
    assert!(ran(&run(&fresh(dir.path()), &named()), "s"));
    assert!(from_disk(&run(&fresh(dir.path()), &named()), "s"));
    std::fs::write(&file, b"another").unwrap();
    assert!(ran(&run(&fresh(dir.path()), &named()), "s"), "a replaced file misses");
    assert!(from_disk(&run(&fresh(dir.path()), &named()), "s"));
    std::fs::write(file.with_extension("json"), b"{}").unwrap();
    assert!(ran(&run(&fresh(dir.path()), &named()), "s"), "a new sidecar beside it misses");
}

#[test]
fn a_rebuilt_plugin_misses() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = plugin_dir(&["subspace_test_nodes"]);
    let lib = std::fs::read_dir(plugins.path()).unwrap().flatten().next().unwrap().path();
    let load = |path: &Path| {
        let mut r = Registry::default();
        r.load_file(path);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        Arc::new(r)
    };
    let copy = load(&lib);
    assert_eq!(copy.plugins[0].build_id, test_registry().plugins[0].build_id, "the same bytes, the same build id");
    run(&disk_evaluator(copy.clone(), dir.path(), 1 << 30), &store(5, "a", 1.5));
    assert!(from_disk(&run(&disk_evaluator(copy, dir.path(), 1 << 30), &store(5, "a", 1.5)), "s"));

    // Other bytes (an ELF loader ignores bytes after the file's last section): another build.
    let rebuilt = plugins.path().join(format!("librebuilt{}", std::env::consts::DLL_SUFFIX));
    let mut bytes = std::fs::read(&lib).unwrap();
    bytes.extend_from_slice(b"another build");
    std::fs::write(&rebuilt, bytes).unwrap();
    let rebuilt = load(&rebuilt);
    assert_ne!(rebuilt.plugins[0].build_id, test_registry().plugins[0].build_id);
    let r = run(&disk_evaluator(rebuilt, dir.path(), 1 << 30), &store(5, "a", 1.5));
    assert!(r.ok() && ran(&r, "s") && r.from_disk.is_empty(), "{:?}", r.status);
}

#[test]
fn the_budget_evicts_the_least_recently_used_entries() {
    let dir = tempfile::tempdir().unwrap();
    run(&fresh(dir.path()), &store(1000, "size", 0.0));
    let size = std::fs::metadata(&entries(dir.path())[0]).unwrap().len();
    std::fs::remove_file(&entries(dir.path())[0]).unwrap();
    let budget = size * 5 / 2;
    let with_budget = || disk_evaluator(test_registry(), dir.path(), budget);
    let pause = || std::thread::sleep(Duration::from_millis(20));
    run(&with_budget(), &store(1000, "a", 0.0));
    pause();
    run(&with_budget(), &store(1000, "b", 0.0));
    pause();
    assert!(from_disk(&run(&with_budget(), &store(1000, "a", 0.0)), "s"), "a hit makes a the most recently used");
    pause();
    let c = run(&with_budget(), &store(1000, "c", 0.0));
    let d = c.cache.disk.unwrap();
    assert_eq!((d.evicted, d.entries), (1, 2), "{d:?}");
    assert!(d.bytes <= budget, "{d:?}");
    assert!(from_disk(&run(&with_budget(), &store(1000, "a", 0.0)), "s"), "a stays");
    assert!(from_disk(&run(&with_budget(), &store(1000, "c", 0.0)), "s"), "c stays");
    assert!(ran(&run(&with_budget(), &store(1000, "b", 0.0)), "s"), "b, the least recently used, was evicted");

    // A result larger than the whole budget is not written, and nothing else goes for it.
    let before = entries(dir.path());
    let big = run(&with_budget(), &store(10_000, "big", 0.0));
    assert!(big.ok());
    assert_eq!((big.cache.disk.unwrap().written, entries(dir.path())), (0, before));
}

#[test]
fn a_corrupt_entry_is_ignored_with_a_warning_and_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    let good = run(&fresh(dir.path()), &store(50, "a", 1.0));
    let entry = entries(dir.path())[0].clone();
    let whole = std::fs::read(&entry).unwrap();
    let flipped = {
        let mut b = whole.clone();
        let last = b.len() - 1;
        b[last] ^= 0x40;
        b
    };
    let damages: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", whole[..whole.len() / 2].to_vec()),
        ("a flipped bit in a tensor", flipped),
        ("empty", Vec::new()),
        ("not safetensors", b"garbage".repeat(100)),
    ];
    for (what, bytes) in damages {
        std::fs::write(&entry, bytes).unwrap();
        let r = run(&fresh(dir.path()), &store(50, "a", 1.0));
        assert!(r.ok() && ran(&r, "s") && r.from_disk.is_empty(), "{what}: {:?}", r.status);
        assert!(r.warnings.iter().any(|w| w.contains("ignored") && w.contains("s:")), "{what}: {:?}", r.warnings);
        assert_eq!(r.cache.disk.unwrap().ignored, 1, "{what}");
        same_outputs(&good, &r, "s");
        // Recomputed and stored whole again.
        assert!(from_disk(&run(&fresh(dir.path()), &store(50, "a", 1.0)), "s"), "{what}");
    }
    // An entry moved under another key is not taken for that key.
    run(&fresh(dir.path()), &store(50, "b", 1.0));
    let other = entries(dir.path()).into_iter().find(|p| *p != entry).unwrap();
    std::fs::copy(&entry, &other).unwrap();
    let r = run(&fresh(dir.path()), &store(50, "b", 1.0));
    assert!(ran(&r, "s") && r.warnings.iter().any(|w| w.contains("another key")), "{:?}", r.warnings);
}

#[test]
fn volatile_and_non_cacheable_nodes_are_never_stored() {
    let dir = tempfile::tempdir().unwrap();
    // A cacheable node below a volatile one differs every run; plain nodes are never stored.
    let g = G::new()
        .node("clock", "test.clock", json!({}))
        .node("s", "test.store", json!({"n": 3}))
        .node("k", "test.constant", json!({"value": 2.0}))
        .node("x", "test.scale", json!({"factor": 3.0}))
        .link("clock.value", "s.value")
        .link("k.value", "x.value")
        .out("s")
        .out("x");
    for _ in 0..2 {
        let r = run(&fresh(dir.path()), &g);
        assert!(r.ok(), "{:?}", r.status);
        for node in ["clock", "s", "k", "x"] {
            assert!(ran(&r, node), "{node}: {:?}", r.status);
        }
        assert_eq!(r.cache.disk.unwrap().written, 0);
    }
    assert!(entries(dir.path()).is_empty());
}

#[test]
fn model_outputs_are_loaded_again_only_when_needed_else_the_node_runs() {
    let dir = tempfile::tempdir().unwrap();
    let g = |late: bool, n: i64| {
        G::new()
            .node("k", "test.constant", json!({"value": 3.0}))
            .node("m", "test.model", json!({"scale": 2.0, "late": late}))
            .node("t", "test.tensor", json!({"n": n}))
            .node("a", "test.apply", json!({}))
            .link("k.value", "m.value")
            .link("m.model", "a.model")
            .link("t.tensor", "a.tensor")
            .out("a")
            .out("m.value")
    };
    let applied = |r: &RunReport| match r.output("a", "tensor") {
        Some(Value::Tensor(t)) => Vec::<f32>::try_from(t.tensor()).unwrap(),
        other => panic!("{other:?}: {:?}", r.status),
    };
    let value = |r: &RunReport| match r.output("m", "value") {
        Some(Value::Float(x)) => *x,
        other => panic!("{other:?}"),
    };
    for late in [false, true] {
        let first = run(&fresh(dir.path()), &g(late, 2));
        assert!(first.ok() && first.warnings.is_empty(), "{:?} {:?}", first.status, first.warnings);
        // Only the number is needed: loaded from disk, no model loaded at all.
        let e = fresh(dir.path());
        let only = run(
            &e,
            &G::new()
                .node("k", "test.constant", json!({"value": 3.0}))
                .node("m", "test.model", json!({"scale": 2.0, "late": late}))
                .link("k.value", "m.value")
                .out("m.value"),
        );
        assert!(from_disk(&only, "m") && value(&only) == 6.0, "late {late}: {:?} {:?}", only.status, only.warnings);
        assert!(e.loaded_models().is_empty(), "late {late}: {:?}", e.loaded_models());

        // A node that runs needs the model: it is loaded again (the node stops before reading its input), or, when
        // the node reads its input first, the node runs.
        let e = fresh(dir.path());
        let r = run(&e, &g(late, 3));
        assert!(r.ok(), "late {late}: {:?}", r.status);
        assert_eq!(applied(&r), vec![0.0, 2.0, 4.0], "late {late}");
        assert_eq!(value(&r), 6.0);
        assert_eq!(e.loaded_models(), vec!["test.model:2".to_string()], "late {late}");
        if late {
            assert!(ran(&r, "m") && ran(&r, "k") && r.from_disk.is_empty(), "{:?}", r.status);
        } else {
            assert!(from_disk(&r, "m") && !r.status.contains_key("k"), "{:?}", r.status);
        }
    }
}

#[test]
fn the_cli_keeps_results_in_the_output_folder_or_in_cache_dir_and_no_cache_turns_it_off() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = plugin_dir(&["subspace_test_nodes"]);
    let graph = tmp.path().join("g.json");
    std::fs::write(&graph, serde_json::to_string(&store(4, "cli", 1.0).0).unwrap()).unwrap();
    let cli = |args: &[&str]| -> serde_json::Value {
        let out = Command::new(host_binary())
            .args(["--no-default-plugins", "--plugins", plugins.path().to_str().unwrap(), "--device", "cpu", "run"])
            .arg(&graph)
            .args(args)
            .arg("--json")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let out = tmp.path().join("o");
    let o = out.to_str().unwrap();
    let first = cli(&["--out", o]);
    assert_eq!(first["nodes"]["s"]["status"], "ran");
    assert_eq!(entries(&out.join(".cache")).len(), 1, "the default folder is OUT/.cache");
    let second = cli(&["--out", o]);
    assert_eq!(second["nodes"]["s"], json!({"status": "cached", "from": "disk"}), "{second}");
    assert_eq!(second["cache"]["disk"]["hits"], 1, "{second}");
    assert_eq!(second["outputs"]["s"]["float"], first["outputs"]["s"]["float"]);
    let md = std::fs::read_to_string(out.join("run-report.md")).unwrap();
    assert!(md.contains("| s | test.store | cached (disk) |") && md.contains("Disk cache: 1 results loaded"), "{md}");

    let off = cli(&["--out", o, "--no-cache"]);
    assert_eq!((&off["nodes"]["s"]["status"], &off["cache"]["disk"]), (&json!("ran"), &json!(null)), "{off}");

    let elsewhere = tmp.path().join("elsewhere");
    let e = elsewhere.to_str().unwrap();
    assert_eq!(cli(&["--out", o, "--cache", e])["nodes"]["s"]["status"], "ran");
    assert_eq!(cli(&["--out", o, "--cache", e])["nodes"]["s"]["from"], "disk");
    assert_eq!(entries(&elsewhere).len(), 1);
}

const LOOP_ENV: &str = "SUBSPACE_TEST_DISK_CACHE_LOOP";
const BIG: i64 = 1 << 19;

/// The child process of the kill test: stores large entries (a new key each time) into `$LOOP_ENV/cache` until
/// it is killed (or a minute has passed), touching `ready` after the first.
#[test]
#[ignore = "run as a child process by a_kill_during_an_entry_write_never_leaves_an_entry_that_loads"]
fn write_entries_until_killed() {
    write_until_killed(LOOP_ENV, |dir, i| {
        let r = run(&fresh(&dir.join("cache")), &store(BIG, &format!("{}-{i}", std::process::id()), 0.0));
        assert!(r.ok(), "{:#?}", r.status);
    });
}

#[test]
fn a_kill_during_an_entry_write_never_leaves_an_entry_that_loads() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let cache = dir.join("cache");
    let node = test_registry().node("test.store").unwrap().descriptor.clone();
    let mut temps_seen = 0;
    for round in 0..4 {
        kill_writer_at_random("disk_cache::write_entries_until_killed", LOOP_ENV, dir, 800_000, round);

        temps_seen += std::fs::read_dir(&cache)
            .unwrap()
            .flatten()
            .filter(|e| e.path().to_string_lossy().ends_with(".tmp"))
            .count();
        // Opening the folder sweeps the dead writer's temporaries; every entry left loads whole.
        let disk = DiskCache::open(&cache, 1 << 32).unwrap();
        let names: Vec<String> = std::fs::read_dir(&cache)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "round {round}: {names:?}");
        let list = entries(&cache);
        assert!(!list.is_empty(), "round {round}");
        for entry in list {
            let hex = entry.file_stem().unwrap().to_str().unwrap();
            let key: Vec<u8> = (0..32).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()).collect();
            let key: [u8; 32] = key.try_into().unwrap();
            let slots = disk.load(&key, &node, tch::Device::Cpu);
            let slots =
                slots.unwrap_or_else(|e| panic!("round {round}: a torn entry under its final name: {e}")).unwrap();
            let int = slots.iter().find(|(n, _)| n == "int").and_then(|(_, v)| v.clone());
            assert!(matches!(int, Some(Value::Int(BIG))), "round {round}: {int:?}");
            let Some((_, Some(Value::Images(images)))) = slots.iter().find(|(n, _)| n == "images") else { panic!() };
            assert_eq!(images.tensor().size(), vec![BIG, 3, 2, 2], "round {round}");
        }
    }
    eprintln!("temporaries left by kills mid-write and swept: {temps_seen}");
}

#[test]
fn a_plugin_with_the_sdk_1_1_layout_loads_and_its_nodes_are_never_cached() {
    let r = registry_of(&["subspace_test_sdk_1_1", "subspace_test_old_sdk", "subspace_test_nodes"]);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    let p = r.plugins.iter().find(|p| p.nodes.iter().any(|n| n.id.as_str() == "old11.triple")).unwrap();
    assert_eq!((p.info.sdk_abi_major, p.info.sdk_abi_minor), (subspace_sdk::SDK_ABI_MAJOR, 1));
    assert_eq!(p.about.as_ref().map(|a| a.name.to_string()), Some("subspace-test-sdk-1-1".to_string()));
    // Its node declares itself cacheable, but the 1.1 layout cannot say so: no flags.
    assert_eq!(r.node("old11.triple").unwrap().flags, 0);
    assert!(r.node("test.store").unwrap().cacheable() && !r.node("test.constant").unwrap().cacheable());

    let dir = tempfile::tempdir().unwrap();
    let g = G::new()
        .node("k", "test.constant", json!({"value": 7.0}))
        .node("t", "old11.triple", json!({}))
        .link("k.value", "t.value")
        .out("t");
    let registry = Arc::new(r);
    for _ in 0..2 {
        let report = run(&disk_evaluator(registry.clone(), dir.path(), 1 << 30), &g);
        assert_eq!(report.output("t", "value").map(|v| v.summary()), Some("21".to_string()));
        assert!(ran(&report, "t"), "{:?}", report.status);
    }
    assert!(entries(dir.path()).is_empty());
}

/// A folder a node reads counts by its listing: after a picture in it is rewritten in place, Load images and the
/// inversion below it run again, in the same evaluator (memory cache) and in a fresh one (disk cache); while the
/// folder is unchanged, the inversion comes from the caches.
#[test]
fn a_picture_changed_in_a_folder_runs_its_inversion_again() {
    let registry = registry_of(&["subspace_plugin_models", "subspace_plugin_images"]);
    assert!(registry.problems.is_empty(), "{:?}", registry.problems);
    let registry = Arc::new(registry);
    let dir = tempfile::tempdir().unwrap();
    let (pictures, cache) = (dir.path().join("pictures"), dir.path().join("cache"));
    std::fs::create_dir_all(&pictures).unwrap();
    let fixtures = repo_root().join("tests/fixtures/pictures");
    for name in ["face-000000.png", "face-000001.png"] {
        std::fs::copy(fixtures.join(name), pictures.join(name)).unwrap();
    }
    let g = G::new()
        .node("model", "subspace.generator", json!({"model": "default/generator.pt", "count": 1, "render": false}))
        .node("load", "subspace.load_images", json!({"path": pictures.to_str().unwrap()}))
        .node("invert", "subspace.invert", json!({"steps": 2}))
        .link("model.generator", "load.generator")
        .link("load.images", "invert.images")
        .link("model.generator", "invert.generator")
        .out("invert.codes");
    // The memory cache alone, then the disk cache alone (a fresh evaluator per run).
    let e = evaluator(registry.clone());
    let disk = || disk_evaluator(registry.clone(), &cache, 1 << 30);
    let first = run(&e, &g);
    assert!(first.ok() && ran(&first, "load") && ran(&first, "invert"), "{:?}", first.status);
    let again = run(&e, &g);
    assert!(again.cached().contains(&"invert") && !ran(&again, "load"), "unchanged folder: {:?}", again.status);
    assert!(ran(&run(&disk(), &g), "invert"));
    let fresh_run = run(&disk(), &g);
    assert!(from_disk(&fresh_run, "invert"), "unchanged folder, fresh evaluator: {:?}", fresh_run.status);

    // The same name, other pixels: the folder's name and file names are unchanged.
    std::fs::copy(fixtures.join("face-000002.png"), pictures.join("face-000000.png")).unwrap();
    let changed = run(&e, &g);
    assert!(ran(&changed, "load") && ran(&changed, "invert"), "changed picture: {:?}", changed.status);
    let codes = |r: &RunReport| match r.output("invert", "codes") {
        Some(Value::Latents(c)) => c.tensor().shallow_clone(),
        other => panic!("{other:?}"),
    };
    assert!(!codes(&changed).get(0).allclose(&codes(&first).get(0), 0.0, 0.0, false), "the old picture was inverted");
    let fresh_run = run(&disk(), &g);
    assert!(ran(&fresh_run, "invert"), "changed picture, fresh evaluator: {:?}", fresh_run.status);
    assert!(run(&e, &g).cached().contains(&"invert"), "unchanged again");
    assert!(from_disk(&run(&disk(), &g), "invert"), "unchanged again, fresh evaluator");
}
