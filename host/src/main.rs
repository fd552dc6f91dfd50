//! `subspace`: list node types and presets, validate and run node graphs. Thin glue over the `subspace_host`
//! library.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use subspace_host::{catalog, report, DiskCache, RunOptions};
use subspace_host::{exec::Event, preset, validate_with, Evaluator, Graph, NodeStatus, PresetSearch, Registry};

mod serve;

#[derive(Parser)]
#[command(
    name = "subspace",
    version,
    about = "Find and edit the semantic subspaces of a GAN's latent space with node graphs."
)]
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
        #[command(flatten)]
        caches: CacheArgs,
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
        #[command(flatten)]
        caches: CacheArgs,
    },
}

/// The memory and disk caches of `run` and `serve`.
#[derive(clap::Args)]
struct CacheArgs {
    /// Bytes of node results kept in memory for re-use across runs (e.g. 512MiB, 4GiB); least recently used go
    /// first.
    #[arg(long, value_name = "SIZE", default_value = "4GiB", value_parser = parse_size)]
    cache_budget: u64,
    /// Folder of the disk cache, where results of cacheable nodes (sampling, labelling, fits) are kept for later
    /// runs [default: OUT/.cache].
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    cache: Option<PathBuf>,
    /// Keep no results on disk and load none.
    #[arg(long)]
    no_cache: bool,
    /// Bytes the disk cache folder may hold (e.g. 1GiB); least recently used entries go first.
    #[arg(long, value_name = "SIZE", default_value = "4GiB", value_parser = parse_size)]
    disk_budget: u64,
}

impl CacheArgs {
    /// The disk cache these flags ask for, under `out` unless `--cache` names a folder.
    fn disk(&self, out: &Path) -> Option<DiskCache> {
        disk_cache(&self.cache, self.no_cache, out, self.disk_budget)
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    s.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("'{s}' is not a size like 512MiB or 4GiB: {e}"))
}

/// The disk cache of `run` and `serve`: `--cache DIR`, else `OUT/.cache`; none with `--no-cache`, or when the
/// folder cannot be used (a warning says why; the run goes on without it).
fn disk_cache(cache: &Option<PathBuf>, no_cache: bool, out: &Path, budget: u64) -> Option<DiskCache> {
    if no_cache {
        return None;
    }
    let dir = cache.clone().unwrap_or_else(|| out.join(".cache"));
    DiskCache::open(&dir, budget).map_err(|e| eprintln!("warning: no disk cache: {e}")).ok()
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
                println!("{}", serde_json::to_string_pretty(&catalog::nodes_json(&registry))?);
            } else {
                print!("{}", catalog::nodes_text(&registry));
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
                Ok(plan) => println!(
                    "{}: valid ({} nodes, {} needed for the requested outputs)",
                    graph.display(),
                    plan.nodes.len(),
                    plan.needed_order().len()
                ),
                Err(errors) => {
                    for e in &errors {
                        eprintln!("{}: {e}", graph.display());
                    }
                    bail!("{} problem(s) in {}", errors.len(), graph.display());
                }
            }
        }
        Command::Serve { graphs, out, port, caches } => {
            let device = subspace_host::parse_device(&cli.device)?;
            let registry = Arc::new(load_registry(&cli));
            anyhow::ensure!(graphs.is_dir(), "--graphs {}: not a folder", graphs.display());
            ensure_writable(out)?;
            let disk = caches.disk(out);
            let editor = Arc::new(serve::Editor::new(registry, device, graphs, out, caches.cache_budget, disk)?);
            editor.serve(*port, |addr| {
                println!(
                    "graph editor on http://{addr}/ (graphs in {}, runs in {}; Ctrl-C to stop)",
                    graphs.display(),
                    out.display()
                );
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
        Command::Run { graph, param, set, presets, out, workers, caches, json } => {
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
                preset::anchor_set(&mut g, s, &registry, &search);
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
            evaluator.set_cache_budget(caches.cache_budget);
            evaluator.set_disk_cache(caches.disk(out));
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
            let written = report::write_run_report(out, graph, &device.to_string(), &plan, &report);
            if *json {
                println!("{}", serde_json::to_string_pretty(&report::report_json_named(&report, &plan))?);
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
                bail!(
                    "{} node(s) did not finish: {}",
                    report
                        .status
                        .values()
                        .filter(|s| !matches!(s, NodeStatus::Ran { .. } | NodeStatus::Cached))
                        .count(),
                    failed.join(", ")
                );
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
    // A constant template: a mistake in it falls back to the default bar rather than stopping the run.
    let style = ProgressStyle::with_template("{prefix:>14} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let mut bars: HashMap<String, ProgressBar> = HashMap::new();
    for e in rx {
        match &e {
            Event::NodeProgress { node, done, total, message } => {
                let bar = bars.entry(node.clone()).or_insert_with(|| {
                    let b = multi.add(ProgressBar::new((*total).max(1)));
                    b.set_style(style.clone());
                    b.set_prefix(node.clone());
                    b
                });
                bar.set_length((*total).max(1));
                bar.set_position(*done);
                bar.set_message(message.clone());
            }
            Event::NodeFinished { node, .. } => bars.remove(node).into_iter().for_each(|b| b.finish_and_clear()),
            Event::NodeFailed { node, .. } => bars.remove(node).into_iter().for_each(|b| b.abandon()),
            _ => {}
        }
        if let Some(line) = report::event_line(&e) {
            let _ = multi.println(line);
        }
    }
}

/// Progress as plain lines (logs, CI): starts, ends, failures, and every tenth of a node's progress.
fn print_plain_events(rx: crossbeam::channel::Receiver<Event>) {
    let mut last: HashMap<String, u64> = HashMap::new();
    for e in rx {
        if let Event::NodeProgress { node, done, total, message } = &e {
            let tenth = if *total > 0 { done * 10 / total } else { 0 };
            if last.insert(node.clone(), tenth) != Some(tenth) {
                eprintln!("{node:>14}: {done}/{total} {message}");
            }
        }
        if let Some(line) = report::event_line(&e) {
            eprintln!("{line}");
        }
    }
}
