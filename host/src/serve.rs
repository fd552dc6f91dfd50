//! `subspace serve`: the graph editor in a browser. One page (`host/editor/index.html`, compiled in) and a small JSON
//! API over the same registry, validator and evaluator as the CLI. Graph files are listed, opened and saved in one
//! folder; runs write under one output folder, one subfolder per run, whose files the page can show. Binds to
//! 127.0.0.1 only: it is a local tool, with no authentication.

use anyhow::{anyhow, Context, Result};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use subspace_host::{exec::Event, validate, CancelToken, Evaluator, Graph, Registry, RunOptions};
use tiny_http::{Header, Method, Request, Response, Server};

const PAGE: &str = include_str!("../editor/index.html");

pub struct Editor {
    pub registry: Arc<Registry>,
    /// Folder of graph files the page lists, opens and saves.
    pub graphs: PathBuf,
    /// Runs write into `out/run-N/`.
    pub out: PathBuf,
    pub device: String,
    /// One evaluator for the session, so a rerun after a change recomputes only what the change touches.
    evaluator: Mutex<(Evaluator, u32)>,
    /// The current (or last) run's state per node, for the page to poll: "started", "cached", "done", "failed",
    /// "skipped", or progress "done/total message".
    progress: Arc<Mutex<serde_json::Map<String, serde_json::Value>>>,
    /// The run in progress, for `POST /api/cancel`.
    cancel: Mutex<Option<CancelToken>>,
}

type Reply = (u16, &'static str, Vec<u8>);

fn json_reply(status: u16, v: &serde_json::Value) -> Reply {
    (status, "application/json", serde_json::to_vec_pretty(v).unwrap_or_default())
}

fn error(status: u16, message: impl Into<String>) -> Reply {
    json_reply(status, &serde_json::json!({ "error": message.into() }))
}

/// A graph file name inside the graphs folder: letters, digits, `.`, `_`, `-`, ending in `.json`.
fn graph_name(name: &str) -> Result<&str, Reply> {
    let ok = name.ends_with(".json") && name.len() > 5 && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) && !name.starts_with('.');
    if ok {
        Ok(name)
    } else {
        Err(error(400, format!("graph name '{name}': use letters, digits, '.', '_' or '-', ending in .json")))
    }
}

/// A path below `root` from a URL tail, refusing anything that would leave it.
fn inside(root: &Path, rel: &str) -> Option<PathBuf> {
    let rel = Path::new(rel);
    if rel.components().all(|c| matches!(c, Component::Normal(_))) {
        Some(root.join(rel))
    } else {
        None
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("md") | Some("txt") | Some("csv") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Every file under `dir`, as paths relative to `base`, sorted.
fn files_under(dir: &Path, base: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(base) {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    out
}

impl Editor {
    pub fn new(registry: Arc<Registry>, device: subspace_sdk::DeviceSpec, graphs: PathBuf, out: PathBuf) -> Editor {
        let evaluator = Evaluator::new(registry.clone(), device);
        let progress = Arc::new(Mutex::new(serde_json::Map::new()));
        Editor { registry, graphs, out, device: device.to_string(), evaluator: Mutex::new((evaluator, 0)), progress, cancel: Mutex::new(None) }
    }

    /// Serves until the process ends; `on_ready` gets the bound address (port 0 picks a free one).
    pub fn serve(self: Arc<Self>, port: u16, on_ready: impl FnOnce(&str)) -> Result<()> {
        let server = Server::http(("127.0.0.1", port)).map_err(|e| anyhow!("cannot listen on 127.0.0.1:{port}: {e}"))?;
        let addr = server.server_addr().to_ip().map(|a| a.to_string()).unwrap_or_default();
        on_ready(&addr);
        for request in server.incoming_requests() {
            let me = self.clone();
            // One thread per request: a long run must not block the page's other calls.
            std::thread::spawn(move || me.answer(request));
        }
        Ok(())
    }

    fn answer(&self, mut request: Request) {
        let mut body = Vec::new();
        let reply = match request.as_reader().read_to_end(&mut body) {
            Ok(_) => self.route(request.method(), request.url(), &body),
            Err(e) => error(400, format!("cannot read the request body: {e}")),
        };
        let (status, ty, bytes) = reply;
        let header = Header::from_bytes("Content-Type", ty).expect("static header");
        let _ = request.respond(Response::from_data(bytes).with_status_code(status).with_header(header));
    }

    fn route(&self, method: &Method, url: &str, body: &[u8]) -> Reply {
        let raw = url.split('?').next().unwrap_or("");
        // Names arrive percent-encoded (a file "my grid.png"); decoded before any check on them.
        let Ok(decoded) = percent_encoding::percent_decode_str(raw).decode_utf8() else {
            return error(400, format!("{raw}: not UTF-8 once decoded"));
        };
        let path: &str = &decoded;
        match (method, path) {
            (Method::Get, "/") => (200, "text/html; charset=utf-8", PAGE.as_bytes().to_vec()),
            (Method::Get, "/api/nodes") => json_reply(200, &crate::nodes_json(&self.registry)),
            (Method::Get, "/api/graphs") => {
                let mut names: Vec<String> = std::fs::read_dir(&self.graphs)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| graph_name(n).is_ok())
                    .collect();
                names.sort();
                json_reply(200, &serde_json::json!({ "folder": self.graphs.display().to_string(), "graphs": names, "device": self.device }))
            }
            (Method::Get, p) if p.starts_with("/api/graph/") => match graph_name(&p["/api/graph/".len()..]) {
                Ok(name) => match std::fs::read(self.graphs.join(name)) {
                    Ok(bytes) => (200, "application/json", bytes),
                    Err(e) => error(404, format!("{}: {e}", self.graphs.join(name).display())),
                },
                Err(r) => r,
            },
            (Method::Put, p) if p.starts_with("/api/graph/") => match graph_name(&p["/api/graph/".len()..]) {
                Ok(name) => self.save(name, body),
                Err(r) => r,
            },
            (Method::Post, "/api/validate") => match parse(body) {
                Ok(g) => match validate(&g, &self.registry) {
                    Ok(plan) => json_reply(200, &serde_json::json!({ "ok": true, "needed": plan.needed_order().iter().map(|&i| plan.nodes[i].id.clone()).collect::<Vec<_>>() })),
                    Err(errors) => json_reply(200, &serde_json::json!({ "ok": false, "errors": errors.iter().map(|e| e.to_string()).collect::<Vec<_>>() })),
                },
                Err(r) => r,
            },
            (Method::Get, "/api/progress") => {
                let p = self.progress.lock().map(|p| p.clone()).unwrap_or_default();
                json_reply(200, &serde_json::Value::Object(p))
            }
            (Method::Post, "/api/cancel") => {
                let token = self.cancel.lock().ok().and_then(|c| c.clone());
                if let Some(t) = &token {
                    t.cancel();
                }
                json_reply(200, &serde_json::json!({ "cancelled": token.is_some() }))
            }
            (Method::Post, "/api/run") => match parse(body) {
                Ok(g) => self.run(&g),
                Err(r) => r,
            },
            (Method::Get, p) if p.starts_with("/files/") => match inside(&self.out, &p["/files/".len()..]) {
                Some(file) if file.is_file() => match std::fs::read(&file) {
                    Ok(bytes) => (200, content_type(&file), bytes),
                    Err(e) => error(500, format!("{}: {e}", file.display())),
                },
                _ => error(404, format!("no file {p}")),
            },
            _ => error(404, format!("no route {method} {path}")),
        }
    }

    fn save(&self, name: &str, body: &[u8]) -> Reply {
        let g = match parse(body) {
            Ok(g) => g,
            Err(r) => return r,
        };
        let path = self.graphs.join(name);
        let text = match serde_json::to_string_pretty(&g) {
            Ok(t) => t + "\n",
            Err(e) => return error(500, e.to_string()),
        };
        match crate::write_atomic(&path, text.as_bytes()) {
            Ok(()) => json_reply(200, &serde_json::json!({ "saved": path.display().to_string() })),
            Err(e) => error(500, format!("{e:#}")),
        }
    }

    fn run(&self, g: &Graph) -> Reply {
        let plan = match validate(g, &self.registry) {
            Ok(p) => p,
            Err(errors) => return json_reply(200, &serde_json::json!({ "ok": false, "errors": errors.iter().map(|e| e.to_string()).collect::<Vec<_>>() })),
        };
        // One run at a time: they share the evaluator's cache and the machine.
        let mut guard = match self.evaluator.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        guard.1 += 1;
        let name = format!("run-{}", guard.1);
        let dir = self.out.join(&name);
        if let Err(e) = std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display())) {
            return error(500, format!("{e:#}"));
        }
        if let Ok(mut p) = self.progress.lock() {
            p.clear();
        }
        let (tx, rx) = crossbeam::channel::unbounded();
        let progress = self.progress.clone();
        let listener = std::thread::spawn(move || {
            for e in rx {
                let (node, state) = match e {
                    Event::NodeStarted { node, .. } => (node, "started".to_string()),
                    Event::NodeCached { node } => (node, "cached".into()),
                    Event::NodeProgress { node, done, total, message } => (node, format!("{done}/{total} {message}")),
                    Event::NodeFinished { node, .. } => (node, "done".into()),
                    Event::NodeFailed { node, .. } => (node, "failed".into()),
                    Event::NodeSkipped { node, .. } => (node, "skipped".into()),
                    Event::NodeLog { .. } => continue,
                };
                if let Ok(mut p) = progress.lock() {
                    p.insert(node, state.into());
                }
            }
        });
        let opts = RunOptions { out_dir: dir.clone(), events: Some(tx), ..Default::default() };
        if let Ok(mut c) = self.cancel.lock() {
            *c = Some(opts.cancel.clone());
        }
        let report = guard.0.run(&plan, &opts);
        if let Ok(mut c) = self.cancel.lock() {
            *c = None;
        }
        drop(opts);
        listener.join().ok();
        let files = files_under(&dir, &self.out);
        json_reply(200, &serde_json::json!({ "ok": report.ok(), "run": name, "report": crate::report_json(&report), "files": files }))
    }
}

fn parse(body: &[u8]) -> Result<Graph, Reply> {
    let text = std::str::from_utf8(body).map_err(|_| error(400, "the graph is not UTF-8 text"))?;
    Graph::parse(text).map_err(|e| error(400, format!("{e:#}")))
}
