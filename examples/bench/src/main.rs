//! `subspace-bench`: prints the figures docs/PERFORMANCE.md records, as a markdown report (and JSON with --json).
//! It drives the host library with the built plugins (target/release/plugins) like every other client: the
//! default world through the Generator and Classifier, and synthetic codes (for the scaling sweep and 512
//! dimensions) from the benchmark's own node plugin (`examples/bench/nodes`), so every fit is timed as the node's
//! run through the plugin ABI. The classifier of realistic size that `gmm-heavy` times GMMFit with is built at run
//! time ([`fixture`]), not shipped.

use anyhow::{bail, Context, Result};
use clap::Parser;
use rand::SeedableRng;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use subspace_host::{validate, Evaluator, Graph, NodeStatus, Registry, RunOptions, RunReport};
use subspace_sdk::DeviceSpec;
use tch::{CModule, Kind, Tensor};

mod fixture;

#[derive(Parser)]
#[command(about = "Measure Subspace's speed and memory on this machine.")]
struct Args {
    /// Device: auto, cpu, cuda, cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Folder with the product plugins (default: plugins/ next to this binary).
    #[arg(long)]
    plugins: Option<PathBuf>,
    /// The test-node plugin library, for the per-node overhead (default: next to this binary).
    #[arg(long)]
    test_plugin: Option<PathBuf>,
    /// The benchmark's node plugin (synthetic codes; default: next to this binary).
    #[arg(long)]
    bench_plugin: Option<PathBuf>,
    /// Smaller sizes (a quick look, not the recorded figures).
    #[arg(long)]
    quick: bool,
    /// Sections to run (comma-separated): sampling, fit, directions, sklearn, gmm-heavy, separability, edit,
    /// overhead, all.
    #[arg(long, default_value = "all")]
    only: String,
    /// `gmm-heavy`: codes sampled and labelled by the ResNet-18 fixture (default 20,000; 2,000 with --quick).
    #[arg(long)]
    heavy_codes: Option<i64>,
    /// `gmm-heavy`: GMMFit settings to time, each `key=value,key=value` of GMMFit parameters over the presets'
    /// (100 steps, 8 samples, lr 0.002), separated by `;` (default: the presets as they are).
    #[arg(long, default_value = "")]
    heavy_gmm: String,
    /// Python with scikit-learn for the `sklearn` section (the Makefile's bench target installs it into the
    /// libtorch venv and sets BENCH_PYTHON); without it the section is skipped.
    #[arg(long)]
    python: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

fn exe_dir() -> PathBuf {
    std::env::current_exe().unwrap().parent().unwrap().to_path_buf()
}

fn run(e: &Evaluator, g: &Graph) -> Result<RunReport> {
    let plan = validate(g, &e.registry).map_err(|errs| anyhow::anyhow!("{errs:?}"))?;
    let r = e.run(&plan, &RunOptions::default());
    if !r.ok() {
        bail!("run failed: {:?}", r.status);
    }
    Ok(r)
}

fn node_seconds(r: &RunReport, node: &str) -> f64 {
    match r.status.get(node) {
        Some(NodeStatus::Ran { seconds }) => *seconds,
        _ => f64::NAN,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    format!(
        "{} x {cpu}, libtorch threads {}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        tch::get_num_threads()
    )
}

/// Renders `n` codes with the default generator driven directly by tch (the baseline for the host's overhead).
fn direct_sampling(model: &std::path::Path, device: tch::Device, n: i64, batch: i64, seed: u64) -> Result<f64> {
    let g = CModule::load_on_device(model, device)?;
    let _guard = tch::no_grad_guard();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let warm = subspace_sdk::context::randn(&mut rng, &[batch, 64]).to_device(device);
    let _ = g.forward_ts(&[warm])?;
    let t = Instant::now();
    let z = subspace_sdk::context::randn(&mut rng, &[n, 64]).to_device(device);
    let mut done = 0;
    while done < n {
        let len = batch.min(n - done);
        let img = g.forward_ts(&[z.narrow(0, done, len)])?;
        let img = ((img + 1.0) / 2.0).clamp(0.0, 1.0);
        let _ = img.sum(Kind::Float).double_value(&[]);
        done += len;
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let device = subspace_host::parse_device(&args.device)?;
    let sections: Vec<&str> = args.only.split(',').collect();
    let want = |s: &str| sections.contains(&"all") || sections.contains(&s);
    let plugins = args.plugins.clone().unwrap_or_else(|| exe_dir().join("plugins"));
    let mut registry = Registry::load(std::slice::from_ref(&plugins));
    let bench_lib = args.bench_plugin.clone().unwrap_or_else(|| exe_dir().join(library("subspace_bench_nodes")));
    registry.load_file(&bench_lib);
    if registry.node(SYNTHETIC).is_none() {
        bail!("the benchmark's node plugin {} did not load: {:?}", bench_lib.display(), registry.problems);
    }
    let registry = Arc::new(registry);
    for p in &registry.problems {
        eprintln!("warning: {p}");
    }
    let mut report = json!({"machine": machine(), "device": device.to_string()});
    let mut md = format!("Machine: {}; device {device}.\n\n", machine());
    let gen_path = std::env::var("SUBSPACE_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| exe_dir().join("../../models/default"))
        .join("generator.pt");

    if want("sampling") {
        let n = if args.quick { 1024 } else { 8192 };
        let mut direct = Vec::new();
        let mut host = Vec::new();
        let e = Evaluator::new(registry.clone(), device);
        // Warm: model loaded once into the evaluator's model cache, as in a running session.
        run(
            &e,
            &Graph::new()
                .with_node("g", "subspace.generator", json!({"count": 256, "seed": 999}))
                .with_output("g.images"),
        )?;
        for rep in 0..3 {
            direct.push(direct_sampling(&gen_path, device.to_tch(), n, 256, rep)?);
            let g = Graph::new()
                .with_node("g", "subspace.generator", json!({"count": n, "seed": 100 + rep, "batch": 256}))
                .with_output("g.images");
            let t = Instant::now();
            run(&e, &g)?;
            host.push(n as f64 / t.elapsed().as_secs_f64());
        }
        let (d, h) = (median(direct), median(host));
        md += &format!("## Sampling throughput ({n} images 64x64, batch 256, median of 3)\n\n| path | images/s |\n|---|---|\n| direct tch program | {d:.0} |\n| host + Generator plugin | {h:.0} |\n| ratio | {:.3} |\n\n", h / d);
        report["sampling"] = json!({"images": n, "direct_images_per_s": d, "host_images_per_s": h, "ratio": h / d});
    }

    if want("fit") {
        let sizes: Vec<i64> = if args.quick { vec![1000, 10000] } else { vec![1000, 10000, 100000] };
        md += "## SingleGaussFit time (13 classes in groups 4,2,2,2,3; rank 8; 200 Adam steps, batch 2048)\n\n| codes | d = 64 (s) | d = 512 (s) |\n|---|---|---|\n";
        let mut rows = Vec::new();
        for &n in &sizes {
            let mut cells = Vec::new();
            for d in [64i64, 512] {
                // The node's run alone: the label-weighted start and 200 steps, no held-out or validation split.
                let fit = json!({"covariance": "lowrank", "rank": 8, "steps": 200, "lr": 0.01, "batch": 2048,
                    "holdout": 0.0, "validation": 0.0});
                let g = synthetic_fit(n, d, "4,2,2,2,3", fit).with_output("fit.gaussians");
                // A fresh evaluator per size: nothing of the previous fit stays cached.
                let r = run(&Evaluator::new(registry.clone(), device), &g)?;
                cells.push(node_seconds(&r, "fit"));
            }
            md += &format!("| {n} | {:.2} | {:.2} |\n", cells[0], cells[1]);
            rows.push(json!({"codes": n, "d64_s": cells[0], "d512_s": cells[1]}));
        }
        md += "\n";
        report["fit_scaling"] = rows.into();
    }

    // The default world's codes, labels and fit results, for the scikit-learn comparison.
    let mut world: Option<World> = None;
    if want("directions") || want("fit") || want("sklearn") {
        // The default world at 20,000 codes: sampling + labelling against fitting every class, through the host.
        let n = if args.quick { 4000 } else { 20000 };
        let e = Evaluator::new(registry.clone(), device);
        let mut g = Graph::new()
            .with_node("sample", "subspace.generator", json!({"count": n, "seed": 5}))
            .with_node("label", "subspace.classifier", json!({}))
            .with_node("gauss", "subspace.single_gauss_fit", json!({}))
            .with_node("gmm", "subspace.gmm_fit", json!({}))
            .with_link("sample.images", "label.images")
            .with_link("sample.codes", "gauss.codes")
            .with_link("label.labels", "gauss.labels")
            .with_link("gauss.gaussians", "gmm.gaussians")
            .with_link("sample.codes", "gmm.codes")
            .with_link("label.labels", "gmm.labels")
            .with_link("sample.generator", "gmm.generator")
            .with_link("label.classifier", "gmm.classifier")
            .with_output("gmm")
            .with_output("sample.codes")
            .with_output("label.labels");
        // The presets' fit (examples/presets/compare.json), run afterwards on the same evaluator so that sampling and
        // labelling are cached and no two fits share the cores.
        let mut full = g.clone().with_output("gauss.report");
        for p in ["gauss.steps=300", "gauss.covariance=full", "gmm.steps=100", "gmm.samples=8", "gmm.lr=0.002"] {
            full.set_param(p)?;
        }
        // The same with the render-relabel samples rendered at every step (GMMFit 1.x's schedule).
        let mut every_step = full.clone();
        every_step.set_param("gmm.relabel_every=1")?;
        let has_ifg = registry.node("subspace.interfacegan").is_some();
        if has_ifg {
            g = g
                .with_node("ifg", "subspace.interfacegan", json!({}))
                .with_link("sample.codes", "ifg.codes")
                .with_link("label.labels", "ifg.labels")
                .with_output("ifg");
        }
        let r = run(&e, &g)?;
        let (s, l, f1, f2) =
            (node_seconds(&r, "sample"), node_seconds(&r, "label"), node_seconds(&r, "gauss"), node_seconds(&r, "gmm"));
        md += &format!("## Default world, {n} codes, through the host (node defaults, then the presets' full covariance)\n\n| stage | seconds |\n|---|---|\n| sample + render (Generator) | {s:.2} |\n| label (Classifier) | {l:.2} |\n| SingleGaussFit, all 13 classes | {f1:.2} |\n| GMMFit (render-relabel term on) | {f2:.2} |\n");
        let rf = run(&e, &full)?;
        let (f3, f4) = (node_seconds(&rf, "gauss"), node_seconds(&rf, "gmm"));
        let re = run(&e, &every_step)?;
        let f5 = node_seconds(&re, "gmm");
        md += &format!("| SingleGaussFit, full covariance, at most 300 steps (the presets) | {f3:.2} |\n| GMMFit, full covariance (the presets; samples rendered every 2nd step, the default) | {f4:.2} |\n| GMMFit, full covariance, samples rendered every step (relabel_every 1, as GMMFit 1.x) | {f5:.2} |\n");
        let mut j = json!({"codes": n, "sample_s": s, "label_s": l, "single_gauss_fit_s": f1, "gmm_fit_s": f2, "single_gauss_fit_full_s": f3, "gmm_fit_full_s": f4, "gmm_fit_full_every_step_s": f5});
        if has_ifg {
            let i = node_seconds(&r, "ifg");
            md += &format!("| InterFaceGAN boundaries, all 13 classes | {i:.2} |\n");
            j["interfacegan_s"] = i.into();
        }
        md += "\n";
        report["default_world"] = j;
        let (z, (labels, schema), gauss_report) =
            (codes(&r, "sample")?, labels(&r, "label")?, json_report(&rf, "gauss")?);
        world = Some(World { evaluator: e, codes: n, z, labels, schema, gauss_s: f3, gauss_report, gmm_s: f4 });
    }

    if want("sklearn") {
        let python = args.python.clone().or_else(|| std::env::var_os("BENCH_PYTHON").map(PathBuf::from));
        match (&python, &world) {
            (Some(python), Some(w)) => {
                let (md_part, j) = sklearn(python, w, args.quick)?;
                md += &md_part;
                report["sklearn"] = j;
            }
            _ => md += "## Against scikit-learn\n\nSkipped: no Python with scikit-learn (set BENCH_PYTHON, or run `make bench`).\n\n",
        }
    }

    if want("gmm-heavy") {
        let n = args.heavy_codes.unwrap_or(if args.quick { 2000 } else { 20000 });
        let schema = gen_path.with_file_name("classifier-fit.json");
        let (md_part, j) = gmm_heavy(&registry, device, n, &schema, &args.heavy_gmm)?;
        md += &md_part;
        report["gmm_heavy"] = j;
    }

    if want("separability") {
        let (n, md_part, j) = separability(&registry, device, args.quick)?;
        md += &md_part;
        report["separability"] = json!({"codes": n, "classes": j});
    }

    if want("edit") {
        let e = Evaluator::new(registry.clone(), device);
        let g = |ratio: f64| {
            Graph::new()
                .with_node(
                    "mix",
                    "subspace.load_mixture",
                    json!({"file": std::env::var("BENCH_MIXTURE").unwrap_or_else(|_| "results/mixture".into())}),
                )
                .with_node("pictures", "subspace.generator", json!({"count": 4, "seed": 3, "render": false}))
                .with_node(
                    "edit",
                    "subspace.attribute_edit",
                    json!({"target": "hair.red", "ratio": ratio, "zs": "mean"}),
                )
                .with_node("render", "subspace.generator", json!({}))
                .with_node("preview", "subspace.image_preview", json!({"count": 4}))
                .with_link("pictures.codes", "edit.codes")
                .with_link("mix.mixture", "edit.mixture")
                .with_link("edit.codes", "render.codes")
                .with_link("render.images", "preview.images")
                .with_output("preview")
        };
        run(&e, &g(0.0)).context("edit latency needs a saved mixture: run `make demo` first or set BENCH_MIXTURE")?;
        let mut times = Vec::new();
        let stages = ["edit", "render", "preview"];
        let mut per_node: Vec<Vec<f64>> = vec![Vec::new(); stages.len()];
        for i in 1..=40 {
            let t = Instant::now();
            let r = run(&e, &g(i as f64 / 40.0))?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            assert!(r.cached().contains(&"mix") || r.cached().contains(&"pictures"));
            for (k, node) in stages.iter().enumerate() {
                per_node[k].push(node_seconds(&r, node) * 1000.0);
            }
        }
        let (m, p95) = (median(times.clone()), percentile(times, 0.95));
        let parts: Vec<f64> = per_node.into_iter().map(median).collect();
        md += &format!(
            "## Slider latency: change a, re-render a 4-image preview (upstream cached), 40 changes\n\n| median (ms) | p95 (ms) | of which AttributeEdit / Generator / Preview, medians (ms) |\n|---|---|---|\n| {m:.1} | {p95:.1} | {:.1} / {:.1} / {:.1} |\n\n",
            parts[0], parts[1], parts[2]
        );
        report["edit_latency_ms"] =
            json!({"median": m, "p95": p95, "edit": parts[0], "render": parts[1], "preview": parts[2]});
    }

    if want("overhead") {
        let lib = args
            .test_plugin
            .clone()
            .unwrap_or_else(|| exe_dir().join(format!("libsubspace_test_nodes{}", std::env::consts::DLL_SUFFIX)));
        let mut reg = Registry::default();
        reg.load_file(&lib);
        if reg.plugins.is_empty() {
            bail!("test plugin {} did not load: {:?}", lib.display(), reg.problems);
        }
        let e = Evaluator::new(Arc::new(reg), DeviceSpec::CPU);
        let chain = 500;
        let mut g = Graph::new().with_node("n0", "test.constant", json!({"value": 1.0}));
        for i in 1..chain {
            g = g
                .with_node(&format!("n{i}"), "test.scale", json!({"factor": 1.0}))
                .with_link(&format!("n{}.value", i - 1), &format!("n{i}.value"));
        }
        g = g.with_output(&format!("n{}", chain - 1));
        let t = Instant::now();
        run(&e, &g)?;
        let cold = t.elapsed().as_secs_f64() / chain as f64 * 1e6;
        let t = Instant::now();
        run(&e, &g)?;
        let cached = t.elapsed().as_secs_f64() * 1e3;
        md += &format!("## Host overhead (a chain of {chain} trivial nodes)\n\n| per node evaluated (us) | whole chain cached (ms) |\n|---|---|\n| {cold:.1} | {cached:.2} |\n\n");
        report["overhead"] = json!({"per_node_us": cold, "cached_chain_ms": cached});
    }

    let peak = peak_rss_mib();
    md += &format!("Peak resident memory of the benchmark process: {peak:.0} MiB.\n");
    report["peak_rss_mib"] = peak.into();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{md}");
    }
    let _ = Tensor::zeros([1], (Kind::Float, tch::Device::Cpu));
    Ok(())
}

/// The benchmark's own nodes (examples/bench/nodes).
const SYNTHETIC: &str = "bench.synthetic_world";
const ROUND: &str = "bench.round";

/// SingleGaussFit's parameters in the presets (examples/presets/compare.json): full covariance, at most 300 steps.
fn presets_single_gauss() -> serde_json::Value {
    json!({"covariance": "full", "steps": 300})
}

/// A shared library's file name on this system.
fn library(name: &str) -> String {
    format!("{}{name}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX)
}

/// A synthetic world of `n` codes in `d` dimensions (attribute groups `groups`, the method's test world: scale 4,
/// seed 1) fitted by a SingleGaussFit node `fit` with parameters `fit`; the world's node is `world`.
fn synthetic_fit(n: i64, d: i64, groups: &str, fit: serde_json::Value) -> Graph {
    Graph::new()
        .with_node("world", SYNTHETIC, json!({"count": n, "dim": d, "groups": groups, "scale": 4.0, "seed": 1}))
        .with_node("fit", "subspace.single_gauss_fit", fit)
        .with_link("world.codes", "fit.codes")
        .with_link("world.labels", "fit.labels")
}

/// One output of a finished run.
fn output(r: &RunReport, node: &str, port: &str) -> Result<subspace_sdk::Value> {
    r.outputs
        .get(node)
        .and_then(|v| v.iter().find(|nv| nv.name.as_str() == port))
        .map(|nv| nv.value.clone())
        .with_context(|| format!("no output {node}.{port}"))
}

/// Output `codes` of `node`, float on the CPU.
fn codes(r: &RunReport, node: &str) -> Result<Tensor> {
    match output(r, node, "codes")? {
        subspace_sdk::Value::Latents(t) => Ok(t.tensor().to_kind(Kind::Float).to_device(tch::Device::Cpu)),
        _ => bail!("{node}.codes is not latents"),
    }
}

/// Output `labels` of `node`: probabilities (float, on the CPU) and schema.
fn labels(r: &RunReport, node: &str) -> Result<(Tensor, subspace_sdk::LabelSchema)> {
    match output(r, node, "labels")? {
        subspace_sdk::Value::Labels(l) => {
            Ok((l.probs.tensor().to_kind(Kind::Float).to_device(tch::Device::Cpu), l.schema.clone()))
        }
        _ => bail!("{node}.labels is not labels"),
    }
}

/// Output `report` of `node`, a JSON document.
fn json_report(r: &RunReport, node: &str) -> Result<serde_json::Value> {
    match output(r, node, "report")? {
        subspace_sdk::Value::Text(t) => Ok(serde_json::from_str(t.as_str())?),
        _ => bail!("{node}.report is not text"),
    }
}

/// How well each class can be told from the others as a function of the code, on the SingleGaussFit's own held-out
/// split: the fitted Gaussians (full covariance, the presets' fit) against probes trained on the same codes and
/// labels: logistic regression on z (linear), on z and all products z_i z_j (quadratic: the family a pair of
/// Gaussians belongs to), and a two-hidden-layer MLP. A class no quadratic separates well cannot be held by one
/// Gaussian per class, whatever the fit.
fn separability(registry: &Arc<Registry>, device: DeviceSpec, quick: bool) -> Result<(i64, String, serde_json::Value)> {
    let n = if quick { 4000 } else { 12000 };
    let e = Evaluator::new(registry.clone(), device);
    let g = Graph::new()
        .with_node("sample", "subspace.generator", json!({"count": n, "seed": 11}))
        .with_node("label", "subspace.classifier", json!({}))
        .with_node("gauss", "subspace.single_gauss_fit", json!({"steps": 300, "covariance": "full"}))
        .with_link("sample.images", "label.images")
        .with_link("sample.codes", "gauss.codes")
        .with_link("label.labels", "gauss.labels")
        .with_output("sample.codes")
        .with_output("label.labels")
        .with_output("gauss.report");
    let r = run(&e, &g)?;
    let z = match output(&r, "sample", "codes")? {
        subspace_sdk::Value::Latents(t) => t.tensor().to_kind(Kind::Float),
        _ => bail!("sample.codes is not latents"),
    };
    let (probs, schema) = match output(&r, "label", "labels")? {
        subspace_sdk::Value::Labels(l) => (l.probs.tensor().to_kind(Kind::Float), l.schema.clone()),
        _ => bail!("label.labels is not labels"),
    };
    let gauss = json_report(&r, "gauss")?;
    let dev = z.device();
    // The node's split: the last 20% of the codes are held out.
    let n_fit = n - ((n as f64) * 0.2).round() as i64;
    let (zf, zv) = (z.narrow(0, 0, n_fit), z.narrow(0, n_fit, n - n_fit));
    let (pf, pv) = (probs.narrow(0, 0, n_fit), probs.narrow(0, n_fit, n - n_fit));
    // Hard labels of the held-out codes: the argmax within each group, one-hot.
    let mut hard = Vec::new();
    for gi in 0..schema.groups.len() {
        let r = schema.group_range(gi);
        let part = pv.narrow(1, r.start as i64, r.len() as i64);
        hard.push(part.argmax(1, false).one_hot(r.len() as i64).to_kind(Kind::Float));
    }
    let hard = Tensor::cat(&hard, 1).to_device(tch::Device::Cpu);
    let iu = Tensor::triu_indices(64, 64, 0, (Kind::Int64, dev));
    let quad = |z: &Tensor| {
        let outer = z.unsqueeze(2) * z.unsqueeze(1);
        Tensor::cat(&[z.shallow_clone(), outer.index(&[None, Some(iu.get(0)), Some(iu.get(1))])], 1)
    };
    let k = probs.size()[1];
    let probe = |xf: &Tensor, xv: &Tensor, hidden: i64, steps: i64, lr: f64| -> Vec<f64> {
        tch::manual_seed(3);
        let vs = tch::nn::VarStore::new(dev);
        let root = vs.root();
        let d = xf.size()[1];
        let model: Box<dyn tch::nn::Module> = if hidden == 0 {
            Box::new(tch::nn::linear(&root / "l", d, k, Default::default()))
        } else {
            Box::new(
                tch::nn::seq()
                    .add(tch::nn::linear(&root / "a", d, hidden, Default::default()))
                    .add_fn(|x| x.relu())
                    .add(tch::nn::linear(&root / "b", hidden, hidden, Default::default()))
                    .add_fn(|x| x.relu())
                    .add(tch::nn::linear(&root / "c", hidden, k, Default::default())),
            )
        };
        let mut opt =
            tch::nn::OptimizerConfig::build(tch::nn::Adam { wd: 1e-4, ..Default::default() }, &vs, lr).unwrap();
        // Standardised inputs; one-vs-rest logistic loss against the classifier's probabilities, full batch.
        let (m, s) =
            (xf.mean_dim([0i64].as_slice(), true, Kind::Float), xf.std_dim([0i64].as_slice(), true, true) + 1e-6);
        let (xf, xv) = ((xf - &m) / &s, (xv - &m) / &s);
        for _ in 0..steps {
            let loss =
                model.forward(&xf).binary_cross_entropy_with_logits::<Tensor>(&pf, None, None, tch::Reduction::Mean);
            opt.backward_step(&loss);
        }
        let scores = tch::no_grad(|| model.forward(&xv)).to_kind(Kind::Double).to_device(tch::Device::Cpu);
        (0..k)
            .map(|c| {
                let sc: Vec<f64> = Vec::try_from(scores.select(1, c)).unwrap_or_default();
                let pos: Vec<bool> =
                    Vec::<f32>::try_from(hard.select(1, c)).unwrap_or_default().iter().map(|&h| h > 0.5).collect();
                subspace_sdk::stats::roc_auc(&sc, &pos).unwrap_or(f64::NAN)
            })
            .collect()
    };
    let steps = if quick { 300 } else { 1500 };
    let linear = probe(&zf, &zv, 0, steps, 1e-2);
    let quadratic = probe(&quad(&zf), &quad(&zv), 0, steps, 1e-2);
    let mlp = probe(&zf, &zv, 256, steps, 1e-3);
    let names = schema.class_names();
    let mut md = format!(
        "## Separability: held-out ROC AUC per class ({n} codes, last 20% held out, labels by the fit classifier)\n\n| class | Gaussians (SingleGaussFit, full) | linear probe | quadratic probe | MLP probe |\n|---|---|---|---|---|\n"
    );
    let mut rows = Vec::new();
    for (c, name) in names.iter().enumerate() {
        let ga = gauss["auc"][name.as_str()].as_f64().unwrap_or(f64::NAN);
        md += &format!("| {name} | {ga:.3} | {:.3} | {:.3} | {:.3} |\n", linear[c], quadratic[c], mlp[c]);
        rows.push(
            json!({"class": name, "gaussians": ga, "linear": linear[c], "quadratic": quadratic[c], "mlp": mlp[c]}),
        );
    }
    md += "\n";
    Ok((n, md, rows.into()))
}

/// GMMFit with a classifier of realistic size: the ResNet-18 fixture at 128 px ([`fixture`]) labels `n` codes of
/// the default generator, and GMMFit (the presets' settings, started from SingleGaussFit on the default fit
/// classifier's labels, which a random classifier's labels cannot support) fits those codes and labels with the
/// fixture in its render-relabel term. Each setting in `variants` (`;`-separated `key=value,...` over the presets)
/// re-runs GMMFit alone on the same evaluator, sampling and labelling cached.
fn gmm_heavy(
    registry: &Arc<Registry>,
    device: DeviceSpec,
    n: i64,
    schema: &std::path::Path,
    variants: &str,
) -> Result<(String, serde_json::Value)> {
    let dir = std::env::temp_dir().join(format!("subspace-bench-fixture-{}", std::process::id()));
    let (model, params) = fixture::write(&dir, schema)?;
    let e = Evaluator::new(registry.clone(), device);
    let base = Graph::new()
        .with_node("sample", "subspace.generator", json!({"count": n, "seed": 5}))
        .with_node("label", "subspace.classifier", json!({}))
        .with_node("heavy", "subspace.classifier", json!({"model": model.to_string_lossy()}))
        .with_node("gauss", "subspace.single_gauss_fit", presets_single_gauss())
        .with_node("gmm", "subspace.gmm_fit", json!({"steps": 100, "samples": 8, "lr": 0.002}))
        .with_link("sample.images", "label.images")
        .with_link("sample.images", "heavy.images")
        .with_link("sample.codes", "gauss.codes")
        .with_link("label.labels", "gauss.labels")
        .with_link("gauss.gaussians", "gmm.gaussians")
        .with_link("sample.codes", "gmm.codes")
        .with_link("heavy.labels", "gmm.labels")
        .with_link("sample.generator", "gmm.generator")
        .with_link("heavy.classifier", "gmm.classifier")
        .with_output("gmm.report");
    let mut md = format!(
        "## GMMFit with a ResNet-18 classifier at {0} px ({1:.1}M parameters, random weights), {n} codes\n\nThe default generator's {n} pictures (64 px) labelled by the fixture (resized to {0} px), and GMMFit on those codes and labels with the fixture re-labelling its component samples (the presets: 100 steps, 8 samples per class, lr 0.002).\n\n| GMMFit setting | label {n} codes (s) | GMMFit (s) | GMMFit / labelling | samples rendered | held-out AUC mean |\n|---|---|---|---|---|---|\n",
        fixture::SIZE,
        params as f64 / 1e6
    );
    let mut rows = Vec::new();
    let mut label_s = f64::NAN;
    let settings: Vec<&str> = if variants.trim().is_empty() { vec![""] } else { variants.split(';').collect() };
    for (i, setting) in settings.iter().enumerate() {
        let mut g = base.clone();
        for kv in setting.split(',').map(str::trim).filter(|kv| !kv.is_empty()) {
            g.set_param(&format!("gmm.{kv}"))?;
        }
        let r = run(&e, &g)?;
        if i == 0 {
            label_s = node_seconds(&r, "heavy");
        }
        let gmm_s = node_seconds(&r, "gmm");
        let rep = json_report(&r, "gmm")?;
        let aucs: Vec<f64> =
            rep["auc"].as_object().map(|o| o.values().filter_map(|v| v.as_f64()).collect()).unwrap_or_default();
        let auc = aucs.iter().sum::<f64>() / aucs.len().max(1) as f64;
        let name = if setting.trim().is_empty() { "the presets" } else { setting.trim() };
        md += &format!(
            "| {name} | {label_s:.1} | {gmm_s:.1} | {:.2} | {} | {auc:.4} |\n",
            gmm_s / label_s,
            rep["renders"]
        );
        rows.push(json!({"setting": name, "label_s": label_s, "gmm_s": gmm_s, "ratio": gmm_s / label_s, "renders": rep["renders"], "relabel_every": rep["relabel_every"], "auc_mean": auc}));
    }
    md += "\n";
    let _ = std::fs::remove_dir_all(&dir);
    Ok((md, json!({"codes": n, "classifier_parameters": params, "size": fixture::SIZE, "runs": rows})))
}

/// The default world as the `directions` section sampled, labelled and fitted it.
struct World {
    /// The evaluator that ran it (its sampling and labelling stay cached) and the number of codes.
    evaluator: Evaluator,
    codes: i64,
    z: Tensor,
    labels: Tensor,
    schema: subspace_sdk::LabelSchema,
    /// SingleGaussFit with the presets' full covariance, through the host: seconds and report.
    gauss_s: f64,
    gauss_report: serde_json::Value,
    /// GMMFit with the presets' settings, through the host.
    gmm_s: f64,
}

/// Runs examples/bench/sklearn_reference.py on codes and labels written to a temporary folder; its JSON answer.
fn sklearn_run(
    python: &std::path::Path,
    z: &Tensor,
    labels: &Tensor,
    groups: &[usize],
    gmm: bool,
    repeats: usize,
) -> Result<serde_json::Value> {
    let dir = std::env::temp_dir().join(format!("subspace-bench-sklearn-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    z.write_npy(dir.join("z.npy"))?;
    labels.write_npy(dir.join("labels.npy"))?;
    std::fs::write(dir.join("groups.json"), serde_json::to_string(groups)?)?;
    let script = std::env::var("BENCH_SKLEARN_SCRIPT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| exe_dir().join("../../examples/bench/sklearn_reference.py"));
    let mut cmd = std::process::Command::new(python);
    cmd.arg(&script).arg(&dir).arg("--repeats").arg(repeats.to_string());
    if gmm {
        cmd.arg("--gmm");
    }
    let out = cmd.output().with_context(|| format!("running {} {}", python.display(), script.display()))?;
    let _ = std::fs::remove_dir_all(&dir);
    if !out.status.success() {
        bail!("{} failed: {}", script.display(), String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Mean and minimum of the non-null values.
fn mean_min(v: &[Option<f64>]) -> (f64, f64) {
    let x: Vec<f64> = v.iter().flatten().copied().collect();
    (x.iter().sum::<f64>() / x.len().max(1) as f64, x.iter().cloned().fold(f64::INFINITY, f64::min))
}

/// Our fits against scikit-learn's on the same codes and split, timed in one run: SingleGaussFit (full covariance)
/// against QuadraticDiscriminantAnalysis, on the default world (20,000 x 64, the node through the host) and on
/// synthetic codes (20,000 x 512, the node's code called directly: no generator has 512 dimensions); GMMFit
/// against GaussianMixture (full covariance, 13 components) on the default world. QDA is fitted per attribute
/// group on hard labels (argmax), as the held-out AUC judges them.
fn sklearn(python: &std::path::Path, w: &World, quick: bool) -> Result<(String, serde_json::Value)> {
    let groups: Vec<usize> = w.schema.groups.iter().map(|g| g.classes.len()).collect();
    let groups_text = groups.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",");
    let names = w.schema.class_names();
    // At 64 dimensions each fit takes a fraction of a second, where other work on the shared cores moves either
    // side's time by 2x: three rounds, each one run of ours (the SingleGaussFit node with the presets'
    // parameters, on the cached codes and labels, behind a `bench.round` node that makes it run again) then QDA
    // (the median of 3 fits in one process), and the medians over the rounds. GaussianMixture runs once, in the
    // first round.
    let (mut runs, mut qda_runs) = (Vec::new(), Vec::new());
    let mut world = serde_json::Value::Null;
    for round in 0..3 {
        let g = Graph::new()
            .with_node("sample", "subspace.generator", json!({"count": w.codes, "seed": 5}))
            .with_node("label", "subspace.classifier", json!({}))
            .with_node("round", ROUND, json!({"round": round + 1}))
            .with_node("gauss", "subspace.single_gauss_fit", presets_single_gauss())
            .with_link("sample.images", "label.images")
            .with_link("sample.codes", "round.codes")
            .with_link("label.labels", "round.labels")
            .with_link("round.codes", "gauss.codes")
            .with_link("round.labels", "gauss.labels")
            .with_output("gauss.report");
        let r = run(&w.evaluator, &g)?;
        if r.ran() != ["gauss", "round"] {
            bail!("the round ran {:?}, not only the fit behind its pass-through", r.ran());
        }
        runs.push(node_seconds(&r, "gauss"));
        let r = sklearn_run(python, &w.z, &w.labels, &groups, round == 0, 3)?;
        qda_runs.push(r["qda_s"].as_f64().unwrap_or(f64::NAN));
        if round == 0 {
            world = r;
        }
    }
    let (ours_s, qda_s) = (median(runs.clone()), median(qda_runs.clone()));
    let gm_s = world["gmm_s"].as_f64().unwrap_or(f64::NAN);
    let ours_auc: Vec<Option<f64>> = names.iter().map(|n| w.gauss_report["auc"][n.as_str()].as_f64()).collect();
    let qda_auc: Vec<Option<f64>> =
        world["qda_auc"].as_array().map(|a| a.iter().map(|v| v.as_f64()).collect()).unwrap_or_default();

    // 20,000 x 512: the node's defaults with full covariance and the presets' step limit.
    let n = if quick { 4000 } else { 20000 };
    let g = synthetic_fit(n, 512, &groups_text, presets_single_gauss())
        .with_output("world.codes")
        .with_output("world.labels")
        .with_output("fit.report");
    let r = run(&Evaluator::new(w.evaluator.registry.clone(), w.evaluator.device), &g)?;
    let ours512_s = node_seconds(&r, "fit");
    let (z, (l, schema), r512) = (codes(&r, "world")?, labels(&r, "world")?, json_report(&r, "fit")?);
    let synth = sklearn_run(python, &z, &l, &groups, false, 1)?;
    let ours512_auc: Vec<Option<f64>> = schema.class_names().iter().map(|c| r512["auc"][c.as_str()].as_f64()).collect();
    let qda512_auc: Vec<Option<f64>> =
        synth["qda_auc"].as_array().map(|a| a.iter().map(|v| v.as_f64()).collect()).unwrap_or_default();
    let qda512_s = synth["qda_s"].as_f64().unwrap_or(f64::NAN);

    let (om, on) = mean_min(&ours_auc);
    let (qm, qn) = mean_min(&qda_auc);
    let (o5m, o5n) = mean_min(&ours512_auc);
    let (q5m, q5n) = mean_min(&qda512_auc);
    let steps = |r: &serde_json::Value| format!("{} steps, shrinkage {}", r["steps_run"], r["shrinkage"]);
    let dim = w.z.size()[1];
    let rows = w.z.size()[0];
    let mut md = format!(
        "## Against scikit-learn {} (same codes, same split: the last 20% held out)\n\n| fit | codes | ours (s) | scikit-learn (s) | ours / theirs | held-out AUC mean / min, ours | scikit-learn |\n|---|---|---|---|---|---|---|\n",
        world["sklearn_version"].as_str().unwrap_or("")
    );
    md += &format!("| SingleGaussFit full ({}) vs QDA, medians of 3 rounds | default world {rows} x {dim} | {ours_s:.2} | {qda_s:.2} | {:.2} | {om:.4} / {on:.4} | {qm:.4} / {qn:.4} |\n", steps(&w.gauss_report), ours_s / qda_s);
    md += &format!("| SingleGaussFit full ({}) vs QDA | synthetic {n} x 512 | {ours512_s:.2} | {qda512_s:.2} | {:.2} | {o5m:.4} / {o5n:.4} | {q5m:.4} / {q5n:.4} |\n", steps(&r512), ours512_s / qda512_s);
    md += &format!(
        "| GMMFit (the presets: 100 steps, 8 samples per class every 2nd step) vs GaussianMixture full, 13 components ({} EM iterations) | default world {rows} x {dim} | {:.2} | {gm_s:.2} | {:.2} | | |\n\n",
        world["gmm_iterations"], w.gmm_s, w.gmm_s / gm_s
    );
    let secs = |v: &[f64]| v.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(", ");
    md += &format!("The 3 rounds at 64 dimensions: ours {} s, QDA {} s. Ours fits on 95% of the non-held-out codes (5% decide when to stop), QDA on all of them.\n\n", secs(&runs), secs(&qda_runs));
    md += "Held-out ROC AUC per class, default world (SingleGaussFit full covariance / QDA):\n\n| class | ours | QDA |\n|---|---|---|\n";
    let f = |a: &Option<f64>| a.map_or("-".to_string(), |v| format!("{v:.4}"));
    for (c, name) in names.iter().enumerate() {
        md += &format!("| {name} | {} | {} |\n", f(&ours_auc[c]), f(qda_auc.get(c).unwrap_or(&None)));
    }
    md += "\n";
    let j = json!({
        "default_world": {"single_gauss_fit_s": ours_s, "single_gauss_fit_runs_s": runs, "single_gauss_fit_node_s": w.gauss_s, "qda_s": qda_s, "qda_runs_s": qda_runs, "ratio": ours_s / qda_s, "ours_auc": ours_auc, "qda_auc": qda_auc,
            "gmm_fit_s": w.gmm_s, "gaussian_mixture_s": gm_s, "gmm_ratio": w.gmm_s / gm_s, "gaussian_mixture": world, "ours_report": w.gauss_report},
        "synthetic_512": {"codes": n, "single_gauss_fit_s": ours512_s, "qda_s": qda512_s, "ratio": ours512_s / qda512_s, "ours_auc": ours512_auc, "qda_auc": qda512_auc, "ours_report": r512},
    });
    Ok((md, j))
}
