//! `subspace`: list node types and presets, validate and run node graphs. Thin glue over the `subspace_host`
//! library.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use subspace_host::{exec::Event, preset, validate_with, Evaluator, Graph, NodeStatus, PresetSearch, Registry};
use subspace_host::RunOptions;
use subspace_sdk::{ParamKind, Value};

mod serve;

#[derive(Parser)]
#[command(name = "subspace", version, about = "Find and edit the semantic subspaces of a GAN's latent space with node graphs.")]
struct Cli {
    /// Extra plugin directory (repeatable); searched after the default `plugins/` next to this binary and
    /// $SUBSPACE_PLUGIN_PATH.
    #[arg(long = "plugins", global = true)]
    plugins: Vec<PathBuf>,
    /// Load only the listed directories, not the defaults.
    #[arg(long, global = true)]
    no_default_plugins: bool,
    /// Compute device: auto, cpu, cuda or cuda:N.
    #[arg(long, global = true, default_value = "auto")]
    device: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the node types of the loaded plugins.
    Nodes {
        /// Machine-readable, for editors.
        #[arg(long)]
        json: bool,
    },
    /// List the plugin files found, loaded or refused.
    Plugins,
    /// Check a graph file (or a preset by name) without running it.
    Validate {
        graph: PathBuf,
        /// Folder of presets, searched after the graph's own folder (repeatable; default examples/presets).
        #[arg(long = "presets", value_name = "DIR")]
        presets: Vec<PathBuf>,
    },
    /// List presets (graph files) with their parameters and ports.
    Presets {
        /// Folders to list (default examples/presets); a name in an earlier folder hides the same name later.
        dirs: Vec<PathBuf>,
        /// Machine-readable, for editors.
        #[arg(long)]
        json: bool,
    },
    /// Run a graph file, or a preset by name.
    Run {
        graph: PathBuf,
        /// Set a parameter the preset exposes: name=value (value as JSON, else text). Repeatable.
        #[arg(long = "param", value_name = "NAME=VALUE")]
        param: Vec<String>,
        /// Override any node's parameter: node.param=value (value as JSON, else text); applied after --param.
        #[arg(long = "set", value_name = "NODE.PARAM=VALUE")]
        set: Vec<String>,
        /// Folder of presets, searched after the graph's own folder (repeatable; default examples/presets).
        #[arg(long = "presets", value_name = "DIR")]
        presets: Vec<PathBuf>,
        /// Folder for files written by result nodes.
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// Worker threads for independent nodes (1 to 64).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=subspace_host::exec::MAX_WORKERS as i64))]
        workers: Option<u16>,
        /// Bytes of node results kept in memory for re-use (e.g. 512MiB, 4GiB); least recently used go first.
        #[arg(long, value_name = "SIZE", default_value = "4GiB", value_parser = parse_size)]
        cache_budget: u64,
        /// Print the run report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Open the graph editor: a local web page to compose, validate, run and save graphs.
    Serve {
        /// Folder of graph files to list, open and save.
        #[arg(long, default_value = "examples/presets")]
        graphs: PathBuf,
        /// Folder for the runs' files (one run-N subfolder per run).
        #[arg(long, default_value = "results/editor")]
        out: PathBuf,
        /// Port on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = 8787)]
        port: u16,
        /// Bytes of node results the session keeps for re-use across runs (e.g. 512MiB, 4GiB); least recently
        /// used go first.
        #[arg(long, value_name = "SIZE", default_value = "4GiB", value_parser = parse_size)]
        cache_budget: u64,
    },
}

fn parse_size(s: &str) -> Result<u64, String> {
    s.parse::<bytesize::ByteSize>().map(|b| b.as_u64()).map_err(|e| format!("'{s}' is not a size like 512MiB or 4GiB: {e}"))
}

/// Creates `out` and proves it writable before anything runs, so a long run cannot end with nowhere to write.
fn ensure_writable(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create output folder {}", out.display()))?;
    let probe = out.join(format!(".subspace-write-check.{}", std::process::id()));
    std::fs::write(&probe, b"").with_context(|| format!("output folder {} is not writable", out.display()))?;
    let _ = std::fs::remove_file(&probe);
    // Temporary files of writes that a killed run left behind.
    subspace_sdk::files::sweep_stale_temps(out);
    Ok(())
}

fn main() {
    if let Err(e) = try_main() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn plugin_dirs(cli: &Cli) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if !cli.no_default_plugins {
        if let Some(exe_dir) = std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf)) {
            if exe_dir.join("plugins").is_dir() {
                dirs.push(exe_dir.join("plugins"));
            }
        }
        if let Some(path) = std::env::var_os("SUBSPACE_PLUGIN_PATH") {
            dirs.extend(std::env::split_paths(&path));
        }
    }
    dirs.extend(cli.plugins.iter().cloned());
    dirs
}

fn load_registry(cli: &Cli) -> Registry {
    let registry = Registry::load(&plugin_dirs(cli));
    for p in &registry.problems {
        eprintln!("warning: plugin {p}");
    }
    registry
}

fn try_main() -> Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Command::Nodes { json } => {
            let registry = load_registry(&cli);
            if *json {
                println!("{}", serde_json::to_string_pretty(&nodes_json(&registry))?);
            } else {
                print_nodes(&registry);
            }
        }
        Command::Plugins => {
            let registry = load_registry(&cli);
            for p in &registry.plugins {
                let (i, n) = (&p.info, p.nodes.len());
                let sdk = format!("SDK ABI {}.{}", i.sdk_abi_major, i.sdk_abi_minor);
                println!("{}  ({}, {sdk}, libtorch {}, {n} nodes)", p.path.display(), i.plugin, i.libtorch);
                if let Some(about) = p.about.as_ref().filter(|a| !a.description.is_empty()) {
                    println!("    {}", about.description);
                }
            }
            if registry.plugins.is_empty() {
                println!("no plugins loaded from {:?}", plugin_dirs(&cli));
            }
        }
        Command::Validate { graph, presets } => {
            let registry = load_registry(&cli);
            let dirs = preset_dirs(presets);
            let graph = &preset::resolve(graph, &dirs)?;
            let g = Graph::load(graph)?;
            match validate_with(&g, &registry, &PresetSearch::for_file(graph, dirs)) {
                Ok(plan) => println!("{}: valid ({} nodes, {} needed for the requested outputs)", graph.display(), plan.nodes.len(), plan.needed_order().len()),
                Err(errors) => {
                    for e in &errors {
                        eprintln!("{}: {e}", graph.display());
                    }
                    bail!("{} problem(s) in {}", errors.len(), graph.display());
                }
            }
        }
        Command::Serve { graphs, out, port, cache_budget } => {
            let device = subspace_host::parse_device(&cli.device)?;
            let registry = Arc::new(load_registry(&cli));
            anyhow::ensure!(graphs.is_dir(), "--graphs {}: not a folder", graphs.display());
            ensure_writable(out)?;
            let editor = Arc::new(serve::Editor::new(registry, device, graphs, out, *cache_budget)?);
            editor.serve(*port, |addr| {
                println!("graph editor on http://{addr}/ (graphs in {}, runs in {}; Ctrl-C to stop)", graphs.display(), out.display());
                use std::io::Write;
                std::io::stdout().flush().ok();
            })?;
        }
        Command::Presets { dirs, json } => {
            let registry = load_registry(&cli);
            let dirs = preset_dirs(dirs);
            let list = preset::list(&dirs, &registry);
            if *json {
                let presets: Vec<serde_json::Value> = list.iter().map(|p| p.to_json()).collect();
                println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "presets": presets }))?);
            } else {
                print_presets(&list, &dirs);
            }
        }
        Command::Run { graph, param, set, presets, out, workers, cache_budget, json } => {
            let device = subspace_host::parse_device(&cli.device)?;
            let registry = Arc::new(load_registry(&cli));
            let dirs = preset_dirs(presets);
            let graph = &preset::resolve(graph, &dirs)?;
            let search = PresetSearch::for_file(graph, dirs);
            let mut g = Graph::load(graph)?;
            for p in param {
                let name = graph.file_stem().unwrap_or_default().to_string_lossy();
                preset::set_param(&mut g, p, &registry, &search)
                    .map_err(|e| anyhow::anyhow!("preset '{name}' ({}): {e}", graph.display()))?;
            }
            for s in set {
                g.set_param(s)?;
            }
            let plan = match validate_with(&g, &registry, &search) {
                Ok(p) => p,
                Err(errors) => {
                    for e in &errors {
                        eprintln!("{}: {e}", graph.display());
                    }
                    bail!("{} problem(s) in {}; nothing was run", errors.len(), graph.display());
                }
            };
            ensure_writable(out)?;
            let mut evaluator = Evaluator::new(registry, device);
            evaluator.set_cache_budget(*cache_budget);
            if let Some(w) = workers {
                evaluator.workers = *w as usize;
            }
            eprintln!("running {} on {device}", graph.display());
            let (tx, rx) = crossbeam::channel::unbounded();
            let opts = RunOptions { out_dir: out.clone(), events: Some(tx), ..Default::default() };
            let printer = std::thread::spawn(move || print_events(rx));
            let report = evaluator.run(&plan, &opts);
            drop(opts);
            printer.join().ok();
            // The outputs are printed first: a report that cannot be written must not hide them.
            let written = write_run_report(out, graph, &device.to_string(), &plan, &report);
            if *json {
                println!("{}", serde_json::to_string_pretty(&report_json_named(&report, &plan))?);
            } else {
                for (node, outs) in &report.outputs {
                    for o in outs {
                        let outer = plan.outer_name(node, o.name.as_str());
                        let name = outer.map_or_else(|| format!("{node}.{}", o.name), String::from);
                        println!("{name} = {}", o.value.summary());
                    }
                }
            }
            let failed = report.failed();
            eprintln!(
                "done in {:.2} s: {} ran, {} cached, {} failed",
                report.seconds,
                report.ran().len(),
                report.cached().len(),
                failed.len()
            );
            written.context("the run report could not be written")?;
            if report.failed().is_empty() && !report.missing.is_empty() {
                bail!("requested output(s) not produced: {}", report.missing.join(", "));
            }
            if !report.ok() {
                bail!("{} node(s) did not finish: {}", report.status.values().filter(|s| !matches!(s, NodeStatus::Ran { .. } | NodeStatus::Cached)).count(), failed.join(", "));
            }
        }
    }
    Ok(())
}

/// The preset folders: those given, else examples/presets.
fn preset_dirs(given: &[PathBuf]) -> Vec<PathBuf> {
    if given.is_empty() {
        vec![PathBuf::from(preset::DEFAULT_DIR)]
    } else {
        given.to_vec()
    }
}

fn print_presets(list: &[preset::PresetInfo], dirs: &[PathBuf]) {
    if list.is_empty() {
        println!("no presets in {}", dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "));
    }
    for p in list {
        println!("\n{}  ({})", p.name, p.path.display());
        if !p.description.is_empty() {
            println!("    {}", p.description);
        }
        for (spec, targets) in &p.params {
            let default = spec.default.summary();
            let (range, targets) = (preset::allowed(spec), targets.join(", "));
            println!("    param {:<12} {range} = {default} -> {targets}: {}", spec.name, spec.description);
        }
        for port in &p.inputs {
            println!("    in    {:<12} {:<18} -> {}", port.name, port.ty, port.inner.join(", "));
        }
        for port in &p.outputs {
            println!("    out   {:<12} {:<18} <- {}", port.name, port.ty, port.inner.join(", "));
        }
        for problem in &p.problems {
            println!("    PROBLEM: {problem}");
        }
    }
}

/// One progress bar per node that reports progress; a line per start, finish and failure.
fn print_events(rx: crossbeam::channel::Receiver<Event>) {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return print_plain_events(rx);
    }
    let multi = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:>14} [{bar:30}] {pos}/{len} {msg} ({elapsed})").unwrap().progress_chars("=> ");
    let mut bars: HashMap<String, ProgressBar> = HashMap::new();
    for e in rx {
        match e {
            Event::NodeStarted { node, node_type } => {
                let _ = multi.println(format!("{node:>14}: started ({node_type})"));
            }
            Event::NodeCached { node } => {
                let _ = multi.println(format!("{node:>14}: cached"));
            }
            Event::NodeProgress { node, done, total, message } => {
                let bar = bars.entry(node.clone()).or_insert_with(|| {
                    let b = multi.add(ProgressBar::new(total.max(1)));
                    b.set_style(style.clone());
                    b.set_prefix(node.clone());
                    b
                });
                bar.set_length(total.max(1));
                bar.set_position(done);
                bar.set_message(message);
            }
            Event::NodeLog { node, message } => {
                let _ = multi.println(format!("{node:>14}: {message}"));
            }
            Event::NodeFinished { node, seconds } => {
                if let Some(b) = bars.remove(&node) {
                    b.finish_and_clear();
                }
                let _ = multi.println(format!("{node:>14}: done in {seconds:.2} s"));
            }
            Event::NodeFailed { node, error } => {
                if let Some(b) = bars.remove(&node) {
                    b.abandon();
                }
                let _ = multi.println(format!("{node:>14}: FAILED: {error}"));
            }
            Event::NodeSkipped { node, because } => {
                let _ = multi.println(format!("{node:>14}: skipped ({because})"));
            }
        }
    }
}

/// Writes `run-report.json` and `run-report.md` into the output folder (atomically): what ran, how long each node
/// took, what failed and why, and the text outputs (node reports).
fn write_run_report(out: &Path, graph: &Path, device: &str, plan: &subspace_host::Plan, report: &subspace_host::RunReport) -> Result<()> {
    let json = report_json_named(report, plan);
    let mut md = format!(
        "# Run report\n\nGraph `{}` on `{device}`, {:.2} s in all.\n\n| node | type | status | seconds |\n|---|---|---|---|\n",
        graph.display(),
        report.seconds
    );
    for i in plan.needed_order() {
        let n = &plan.nodes[i];
        let (status, secs) = match report.status.get(&n.id) {
            Some(NodeStatus::Ran { seconds }) => ("ran".to_string(), format!("{seconds:.2}")),
            Some(NodeStatus::Cached) => ("cached".to_string(), String::new()),
            Some(NodeStatus::Failed { error }) => (format!("FAILED: {error}"), String::new()),
            Some(NodeStatus::Skipped { because }) => (format!("skipped ({because})"), String::new()),
            None => ("not needed".to_string(), String::new()),
        };
        md += &format!("| {} | {} | {} | {} |\n", n.id, n.node_type.descriptor.id, status.replace('|', "/"), secs);
    }
    let c = &report.cache;
    md += &format!(
        "\nCache: {} results, {} of a {} budget; {} evicted during the run.\n",
        c.entries,
        bytesize::ByteSize(c.bytes),
        bytesize::ByteSize(c.budget),
        c.evicted
    );
    if !report.missing.is_empty() {
        md += &format!("\nRequested outputs not produced: {}.\n", report.missing.join(", "));
    }
    for (node, outs) in &report.outputs {
        for o in outs {
            let body = match &o.value {
                Value::Text(t) => serde_json::from_str::<serde_json::Value>(t.as_str())
                    .map(|v| format!("```json\n{}\n```", serde_json::to_string_pretty(&v).unwrap_or_default()))
                    .unwrap_or_else(|_| t.to_string()),
                Value::Bundle(b) if b.tensors.is_empty() => {
                    format!("```json\n{}\n```", serde_json::to_string_pretty(&b.meta_json()).unwrap_or_default())
                }
                _ => continue,
            };
            md += &format!("\n## {node}.{}\n\n{body}\n", o.name);
        }
    }
    write_atomic(&out.join("run-report.json"), serde_json::to_string_pretty(&json)?.as_bytes())?;
    write_atomic(&out.join("run-report.md"), md.as_bytes())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    subspace_sdk::files::write_bytes_atomic(path, bytes).map_err(|e| anyhow::anyhow!("{}", e.message))
}

/// Progress as plain lines (logs, CI): starts, ends, failures, and every tenth of a node's progress.
fn print_plain_events(rx: crossbeam::channel::Receiver<Event>) {
    let mut last: HashMap<String, u64> = HashMap::new();
    for e in rx {
        match e {
            Event::NodeStarted { node, node_type } => eprintln!("{node:>14}: started ({node_type})"),
            Event::NodeCached { node } => eprintln!("{node:>14}: cached"),
            Event::NodeProgress { node, done, total, message } => {
                let tenth = if total > 0 { done * 10 / total } else { 0 };
                if last.insert(node.clone(), tenth) != Some(tenth) {
                    eprintln!("{node:>14}: {done}/{total} {message}");
                }
            }
            Event::NodeLog { node, message } => eprintln!("{node:>14}: {message}"),
            Event::NodeFinished { node, seconds } => eprintln!("{node:>14}: done in {seconds:.2} s"),
            Event::NodeFailed { node, error } => eprintln!("{node:>14}: FAILED: {error}"),
            Event::NodeSkipped { node, because } => eprintln!("{node:>14}: skipped ({because})"),
        }
    }
}

/// A value in a report: scalars and text as themselves, typed documents (bundles without tensors) as their JSON,
/// tensors and models as a summary.
fn value_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Bundle(b) if b.tensors.is_empty() => b.meta_json(),
        _ => v.to_json().unwrap_or_else(|| serde_json::Value::String(v.summary())),
    }
}

/// [`report_json`], with outputs of preset nodes also under the name the graph gives them (`fit/gmm` `mixture`
/// and `fit` `mixture`).
fn report_json_named(r: &subspace_host::RunReport, plan: &subspace_host::Plan) -> serde_json::Value {
    let mut j = report_json(r);
    let Some(outputs) = j["outputs"].as_object_mut() else { return j };
    for (name, (i, port)) in &plan.aliases {
        let (Some(v), Some((node, outer_port))) = (r.output(&plan.nodes[*i].id, port), name.rsplit_once('.')) else {
            continue;
        };
        if let Some(map) = outputs.entry(node.to_string()).or_insert_with(|| serde_json::json!({})).as_object_mut() {
            map.insert(outer_port.to_string(), value_json(v));
        }
    }
    j
}

fn report_json(r: &subspace_host::RunReport) -> serde_json::Value {
    let status: serde_json::Map<String, serde_json::Value> = r
        .status
        .iter()
        .map(|(k, s)| {
            let v = match s {
                NodeStatus::Ran { seconds } => serde_json::json!({"status": "ran", "seconds": seconds}),
                NodeStatus::Cached => serde_json::json!({"status": "cached"}),
                NodeStatus::Failed { error } => serde_json::json!({"status": "failed", "error": error.to_string()}),
                NodeStatus::Skipped { because } => serde_json::json!({"status": "skipped", "because": because}),
            };
            (k.clone(), v)
        })
        .collect();
    let outputs: serde_json::Map<String, serde_json::Value> = r
        .outputs
        .iter()
        .map(|(k, outs)| (k.clone(), outs.iter().map(|o| (o.name.to_string(), value_json(&o.value))).collect::<serde_json::Map<_, _>>().into()))
        .collect();
    let c = &r.cache;
    let cache = serde_json::json!({"entries": c.entries, "bytes": c.bytes, "budget": c.budget, "evicted": c.evicted});
    serde_json::json!({"ok": r.ok(), "seconds": r.seconds, "cancelled": r.cancelled, "missing": r.missing, "nodes": status,
        "outputs": outputs, "cache": cache})
}

/// The node catalog as JSON: what an editor needs to draw nodes, sockets and widgets.
fn nodes_json(registry: &Registry) -> serde_json::Value {
    let nodes: Vec<serde_json::Value> = registry
        .nodes
        .values()
        .map(|nt| {
            let d = &nt.descriptor;
            let ports = |list: &[subspace_sdk::PortSpec]| -> Vec<serde_json::Value> {
                list.iter().map(|p| serde_json::json!({"name": p.name.as_str(), "type": p.ty.as_str(), "description": p.description.as_str(), "optional": p.optional})).collect()
            };
            let params: Vec<serde_json::Value> = d
                .params
                .iter()
                .map(|p| {
                    let mut j = serde_json::json!({"name": p.name.as_str(), "kind": p.kind.type_name(), "default": value_json(&p.default), "description": p.description.as_str()});
                    match &p.kind {
                        ParamKind::Float { min, max } => { j["min"] = (*min).into(); j["max"] = (*max).into(); }
                        ParamKind::Int { min, max } => { j["min"] = (*min).into(); j["max"] = (*max).into(); }
                        ParamKind::Choice { choices } => { j["choices"] = choices.iter().map(|c| c.as_str()).collect::<Vec<_>>().into(); }
                        _ => {}
                    }
                    j
                })
                .collect();
            serde_json::json!({
                "id": d.id.as_str(), "version": d.version.as_str(), "display_name": d.display_name.as_str(),
                "category": d.category.as_str(), "description": d.description.as_str(), "volatile": d.volatile,
                "inputs": ports(&d.inputs), "outputs": ports(&d.outputs), "params": params,
                "plugin": registry.plugins[nt.plugin].path.display().to_string(),
            })
        })
        .collect();
    serde_json::json!({"nodes": nodes})
}

fn print_nodes(registry: &Registry) {
    let mut last_category = String::new();
    let mut list: Vec<_> = registry.nodes.values().collect();
    list.sort_by(|a, b| (a.descriptor.category.as_str(), a.descriptor.id.as_str()).cmp(&(b.descriptor.category.as_str(), b.descriptor.id.as_str())));
    for nt in list {
        let d = &nt.descriptor;
        if d.category.as_str() != last_category {
            println!("\n{}", d.category);
            last_category = d.category.to_string();
        }
        println!("  {} {} - {}: {}", d.id, d.version, d.display_name, d.description);
        for p in d.inputs.iter() {
            println!("      in  {:<12} {:<18}{} {}", p.name, p.ty, if p.optional { " (optional)" } else { "" }, p.description);
        }
        for p in d.outputs.iter() {
            println!("      out {:<12} {:<18} {}", p.name, p.ty, p.description);
        }
        for p in d.params.iter() {
            let range = match &p.kind {
                ParamKind::Float { min, max } => format!("float in [{min}, {max}]"),
                ParamKind::Int { min, max } => format!("int in [{min}, {max}]"),
                ParamKind::Choice { choices } => format!("one of {:?}", choices.iter().map(|c| c.as_str()).collect::<Vec<_>>()),
                k => k.type_name().to_string(),
            };
            println!("      param {:<10} {} = {} - {}", p.name, range, p.default.summary(), p.description);
        }
    }
}
