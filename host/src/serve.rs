//! `subspace serve`: the graph editor in a browser. One page (built from `host/editor` by vite and embedded by
//! `build.rs`) and a small JSON API over the same registry, validator and evaluator as the CLI. Graph files are
//! listed, opened and saved in one folder; runs are queued (`runs.rs`), stream their progress to the page as
//! server-sent events, and write under one output folder, one subfolder per run, whose files the page can show.
//!
//! Every web page the user opens can reach 127.0.0.1, so the server trusts only its own page (docs/SECURITY.md):
//! the Host must be the served address (no DNS rebinding), an Origin must be the page's own, cross-site fetches are
//! refused, and every state-changing request carries the session token that only the served page holds, with a JSON
//! Content-Type and a bounded body. Files are served and written only inside their folders, symbolic links refused.

use anyhow::{anyhow, Context, Result};
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use subspace_host::{validate_with, Evaluator, Graph, PresetSearch, Registry};
use tiny_http::{Header, Method, Request, Response, Server};

mod runs;

/// The built page and its assets (`BUILT`, `ASSETS`), written by `build.rs`.
mod assets {
    include!(concat!(env!("OUT_DIR"), "/editor_assets.rs"));
}
/// Largest request body accepted (a graph document); the shipped presets are under 20 KB.
pub const MAX_BODY: usize = 1 << 20;
/// Requests answered at once; more get 503 rather than a thread each.
const MAX_IN_FLIGHT: usize = 32;
/// The header that carries the session token.
pub const TOKEN_HEADER: &str = "X-Subspace-Token";

pub struct Editor {
    pub registry: Arc<Registry>,
    /// Folder of graph files the page lists, opens and saves (its real path).
    pub graphs: PathBuf,
    /// Runs write into `out/run-N/` (its real path).
    pub out: PathBuf,
    pub device: String,
    /// Secret of this session, handed to the served page only; state-changing requests must carry it.
    token: String,
    /// `host:port` values this server answers to, known once it is bound.
    hosts: OnceLock<Vec<String>>,
    /// One evaluator for the session, so a rerun after a change recomputes only what the change touches; the
    /// number is the last run folder made.
    evaluator: Mutex<(Evaluator, u64)>,
    /// The current (or last) full run's state per node: "started", "cached", "done", "failed", "skipped", or
    /// progress "done/total message" (the page itself follows its own run's events).
    progress: Mutex<serde_json::Map<String, serde_json::Value>>,
    /// Queued, running and recently finished runs of every tab.
    runs: runs::Runs,
    in_flight: AtomicUsize,
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
    let ok = name.ends_with(".json")
        && name.len() > 5
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && !name.starts_with('.');
    if ok {
        Ok(name)
    } else {
        Err(error(400, format!("graph name '{name}': use letters, digits, '.', '_' or '-', ending in .json")))
    }
}

/// A regular file below `root` (a real path) from a URL tail: no `..` or root, and after resolving symbolic
/// links still inside `root`.
fn inside(root: &Path, rel: &str) -> Result<PathBuf, Reply> {
    let rel_path = Path::new(rel);
    if rel.is_empty() || !rel_path.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(error(404, format!("no file '{rel}'")));
    }
    let real = root.join(rel_path).canonicalize().map_err(|_| error(404, format!("no file '{rel}'")))?;
    if !real.starts_with(root) {
        return Err(error(403, format!("'{rel}' leads outside {} (a symbolic link): refused", root.display())));
    }
    if !real.is_file() {
        return Err(error(404, format!("'{rel}' is not a file")));
    }
    Ok(real)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("md") | Some("txt") | Some("csv") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Every regular file under `dir`, as paths relative to `base`, sorted. Symbolic links are not followed.
fn files_under(dir: &Path, base: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(ty) = entry.file_type() else { continue };
            let p = entry.path();
            if ty.is_dir() {
                stack.push(p);
            } else if ty.is_file() && !entry.file_name().to_string_lossy().starts_with('.') {
                if let Ok(rel) = p.strip_prefix(base) {
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
    }
    out.sort();
    out
}

/// The highest N of the `run-N` folders in `out`, so a new session never reuses a folder of an earlier one.
fn last_run_number(out: &Path) -> u64 {
    std::fs::read_dir(out)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("run-")?.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
}

/// 32 random bytes as hex, from the operating system's generator (through `rand`'s thread RNG, a CSPRNG).
fn new_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers().iter().find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
}

impl Editor {
    pub fn new(
        registry: Arc<Registry>,
        device: subspace_sdk::DeviceSpec,
        graphs: &Path,
        out: &Path,
        cache_budget: u64,
        disk: Option<subspace_host::DiskCache>,
    ) -> Result<Editor> {
        let graphs = graphs.canonicalize().with_context(|| format!("--graphs {}", graphs.display()))?;
        let out = out.canonicalize().with_context(|| format!("--out {}", out.display()))?;
        let mut evaluator = Evaluator::new(registry.clone(), device);
        evaluator.set_cache_budget(cache_budget);
        evaluator.set_disk_cache(disk);
        let last = last_run_number(&out);
        Ok(Editor {
            registry,
            graphs,
            out,
            device: device.to_string(),
            token: new_token(),
            hosts: OnceLock::new(),
            evaluator: Mutex::new((evaluator, last)),
            progress: Mutex::new(serde_json::Map::new()),
            runs: runs::Runs::default(),
            in_flight: AtomicUsize::new(0),
        })
    }

    /// Serves until the process ends; `on_ready` gets the bound address (port 0 picks a free one).
    pub fn serve(self: Arc<Self>, port: u16, on_ready: impl FnOnce(&str)) -> Result<()> {
        let server =
            Server::http(("127.0.0.1", port)).map_err(|e| anyhow!("cannot listen on 127.0.0.1:{port}: {e}"))?;
        let bound = server.server_addr().to_ip().ok_or_else(|| anyhow!("the server has no IP address"))?;
        let p = bound.port();
        let _ = self.hosts.set(vec![format!("127.0.0.1:{p}"), format!("localhost:{p}")]);
        if !assets::BUILT {
            eprintln!("warning: this binary carries no built editor page (run `make build`); the API works");
        }
        let worker = self.clone();
        std::thread::Builder::new().name("subspace-runs".into()).spawn(move || runs::work(worker))?;
        on_ready(&bound.to_string());
        for request in server.incoming_requests() {
            if self.in_flight.fetch_add(1, Ordering::SeqCst) >= MAX_IN_FLIGHT {
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                respond(request, error(503, format!("more than {MAX_IN_FLIGHT} requests at once: try again")), false);
                continue;
            }
            let me = self.clone();
            // One thread per request: a long run must not block the page's other calls.
            let spawned = std::thread::Builder::new().name("subspace-request".into()).spawn(move || {
                let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| me.answer(request)));
                if reply.is_err() {
                    eprintln!("warning: a request failed inside the server; the server keeps serving");
                }
                me.in_flight.fetch_sub(1, Ordering::SeqCst);
            });
            if spawned.is_err() {
                // The request went with the closure; the client sees the connection close.
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
            }
        }
        Ok(())
    }

    fn answer(&self, mut request: Request) {
        let method = request.method().clone();
        let url = request.url().to_string();
        let reply = match self.admit(&request, &method, &url) {
            Err(refusal) => refusal,
            Ok(()) if method == Method::Get && url.starts_with("/api/runs/") => {
                // A run's state, or its event stream (which holds this request's thread until the run ends).
                let tail = &url["/api/runs/".len()..];
                let (rest, query) = tail.split_once('?').unwrap_or((tail, ""));
                match runs::find(self, rest, query) {
                    Ok((run, true)) => return runs::stream(request, &self.runs, &run),
                    Ok((run, false)) => runs::snapshot_reply(self, &run),
                    Err(refusal) => refusal,
                }
            }
            Ok(()) => match read_body(&mut request) {
                Ok(body) => {
                    let run =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.route(&method, &url, &body)));
                    run.unwrap_or_else(|_| error(500, "the request failed inside the host; the server keeps serving"))
                }
                Err(refusal) => refusal,
            },
        };
        let page = method == Method::Get && (url == "/" || url.starts_with("/?"));
        respond(request, reply, page);
    }

    /// The checks every request passes before it is read: Host, Origin, fetch site, and for state-changing
    /// requests the token and a JSON Content-Type.
    fn admit(&self, request: &Request, method: &Method, url: &str) -> Result<(), Reply> {
        let hosts = self.hosts.get().map(Vec::as_slice).unwrap_or_default();
        match header(request, "Host") {
            Some(h) if hosts.iter().any(|a| a.eq_ignore_ascii_case(h)) => {}
            Some(h) => {
                return Err(error(403, format!("Host '{h}' is not this server ({}): refused", hosts.join(" or "))))
            }
            None => return Err(error(400, "the request has no Host header")),
        }
        if let Some(origin) = header(request, "Origin") {
            if !hosts.iter().any(|a| origin.eq_ignore_ascii_case(&format!("http://{a}"))) {
                return Err(error(403, format!("Origin '{origin}' is not this editor's page: refused")));
            }
        }
        // Navigating to the page from elsewhere is fine; anything else from another site is not.
        let page = *method == Method::Get && url == "/";
        if let Some(site) = header(request, "Sec-Fetch-Site") {
            if !page && !matches!(site, "same-origin" | "none") {
                return Err(error(403, format!("a {site} request to {url}: refused")));
            }
        }
        if matches!(method, Method::Post | Method::Put | Method::Delete | Method::Patch) {
            if header(request, TOKEN_HEADER) != Some(self.token.as_str()) {
                return Err(error(
                    403,
                    format!("{method} {url} needs the session token ({TOKEN_HEADER}) that the editor page carries"),
                ));
            }
            let ty = header(request, "Content-Type").unwrap_or("");
            if !ty.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")) {
                return Err(error(415, format!("{method} {url} needs Content-Type: application/json, not '{ty}'")));
            }
        }
        Ok(())
    }

    fn route(&self, method: &Method, url: &str, body: &[u8]) -> Reply {
        let raw = url.split('?').next().unwrap_or("");
        // Names arrive percent-encoded (a file "my grid.png"); decoded before any check on them.
        let Ok(decoded) = percent_encoding::percent_decode_str(raw).decode_utf8() else {
            return error(400, format!("{raw}: not UTF-8 once decoded"));
        };
        let path: &str = &decoded;
        match (method, path) {
            (Method::Get, "/") => (200, "text/html; charset=utf-8", self.page().into_bytes()),
            (Method::Get, p) if p.starts_with("/assets/") => match assets::ASSETS.iter().find(|(u, _, _)| *u == p) {
                Some((_, ty, bytes)) => (200, *ty, bytes.to_vec()),
                None => error(404, format!("no asset {p}")),
            },
            (Method::Get, "/api/nodes") => json_reply(200, &subspace_host::catalog::nodes_json(&self.registry)),
            (Method::Get, "/api/graphs") => {
                let mut names: Vec<String> = std::fs::read_dir(&self.graphs)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| graph_name(n).is_ok())
                    .collect();
                names.sort();
                let folder = self.graphs.display().to_string();
                json_reply(200, &serde_json::json!({ "folder": folder, "graphs": names, "device": self.device }))
            }
            (Method::Get, p) if p.starts_with("/api/graph/") => match self.graph_file(&p["/api/graph/".len()..]) {
                Ok(file) => match std::fs::read(&file) {
                    Ok(bytes) => (200, "application/json", bytes),
                    Err(e) => error(404, format!("{}: {e}", file.display())),
                },
                Err(r) => r,
            },
            (Method::Put, p) if p.starts_with("/api/graph/") => {
                match self.writable_graph_file(&p["/api/graph/".len()..]) {
                    Ok(file) => save(&file, body),
                    Err(r) => r,
                }
            }
            (Method::Post, "/api/validate") => match parse(body).and_then(|g| Ok((g, self.search(url)?))) {
                Ok((g, search)) => match validate_with(&g, &self.registry, &search) {
                    Ok(plan) => {
                        let needed: Vec<String> =
                            plan.needed_order().iter().map(|&i| plan.nodes[i].id.clone()).collect();
                        json_reply(200, &serde_json::json!({ "ok": true, "needed": needed }))
                    }
                    Err(errors) => json_reply(200, &invalid(&errors)),
                },
                Err(r) => r,
            },
            (Method::Get, "/api/progress") => {
                let p = self.progress.lock().map(|p| p.clone()).unwrap_or_default();
                json_reply(200, &serde_json::Value::Object(p))
            }
            (Method::Post, "/api/cancel") => {
                // An empty body stops the running run; {"run": ID} stops that one, queued or running.
                let which: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
                let cancelled = self.runs.cancel(which["run"].as_u64());
                json_reply(200, &serde_json::json!({ "cancelled": cancelled }))
            }
            // The whole run in one answer (scripts, tests), or queued with an id to follow (the page).
            (Method::Post, "/api/run") => self.submit(url, body, false, true),
            (Method::Post, "/api/runs") => self.submit(url, body, false, false),
            // A live preview: only the requested outputs, nothing listed as a run; answered when done.
            (Method::Post, "/api/preview") => self.submit(url, body, true, true),
            (Method::Get, p) if p.starts_with("/files/") => match inside(&self.out, &p["/files/".len()..]) {
                Ok(file) => match std::fs::read(&file) {
                    Ok(bytes) => (200, content_type(&file), bytes),
                    Err(e) => error(500, format!("{}: {e}", file.display())),
                },
                Err(r) => r,
            },
            _ => error(404, format!("no route {method} {path}")),
        }
    }

    /// The page with this session's token in a meta tag, where its script reads it.
    fn page(&self) -> String {
        let page = assets::ASSETS.iter().find(|(u, _, _)| *u == "/index.html").map(|(_, _, b)| *b).unwrap_or_default();
        let page = String::from_utf8_lossy(page);
        page.replacen("<head>", &format!("<head>\n<meta name=\"subspace-token\" content=\"{}\">", self.token), 1)
    }

    /// An existing graph file: a regular file in the graphs folder, not a symbolic link.
    fn graph_file(&self, name: &str) -> Result<PathBuf, Reply> {
        let path = self.graphs.join(graph_name(name)?);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                Err(error(403, format!("{}: a symbolic link, refused", path.display())))
            }
            Ok(m) if m.is_file() => Ok(path),
            Ok(_) => Err(error(404, format!("{}: not a file", path.display()))),
            Err(e) => Err(error(404, format!("{}: {e}", path.display()))),
        }
    }

    /// A graph file to write: new, or an existing regular file (never a link or a folder).
    fn writable_graph_file(&self, name: &str) -> Result<PathBuf, Reply> {
        let path = self.graphs.join(graph_name(name)?);
        match std::fs::symlink_metadata(&path) {
            Err(_) => Ok(path),
            Ok(m) if m.is_file() => Ok(path),
            Ok(m) if m.file_type().is_symlink() => {
                Err(error(403, format!("{}: a symbolic link, refused", path.display())))
            }
            Ok(_) => Err(error(409, format!("{}: not a file", path.display()))),
        }
    }

    /// A new run folder `out/run-N`, never one that exists (another session may share `out`).
    fn new_run_dir(&self, last: &mut u64) -> Result<(String, PathBuf), Reply> {
        for _ in 0..10_000 {
            *last += 1;
            let name = format!("run-{last}");
            let dir = self.out.join(&name);
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok((name, dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(error(500, format!("cannot create {}: {e}", dir.display()))),
            }
        }
        Err(error(500, format!("no free run folder in {}", self.out.display())))
    }

    /// Where a posted graph's presets are found and its relative paths point (docs/GRAPH_FORMAT.md, "Paths"): the
    /// graph file `?graph=NAME` in the graphs folder (it need not exist yet: an unsaved graph), else a graph in that
    /// folder; presets also in the shipped presets folder under the working directory.
    fn search(&self, url: &str) -> Result<PresetSearch, Reply> {
        let dirs = vec![PathBuf::from(subspace_host::preset::DEFAULT_DIR)];
        let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
        let named = query.split('&').find_map(|kv| kv.strip_prefix("graph="));
        match named {
            Some(raw) => {
                let Ok(name) = percent_encoding::percent_decode_str(raw).decode_utf8() else {
                    return Err(error(400, format!("graph={raw}: not UTF-8 once decoded")));
                };
                Ok(PresetSearch::for_file(&self.graphs.join(graph_name(&name)?), dirs))
            }
            None => Ok(PresetSearch { file: None, near: Some(self.graphs.clone()), dirs }),
        }
    }

    /// Validates a graph and queues it; `wait`: answers with the result, else with the run's id at once.
    fn submit(&self, url: &str, body: &[u8], preview: bool, wait: bool) -> Reply {
        let (g, search) = match parse(body).and_then(|g| Ok((g, self.search(url)?))) {
            Ok(v) => v,
            Err(r) => return r,
        };
        let plan = match validate_with(&g, &self.registry, &search) {
            Ok(p) => p,
            Err(errors) => return json_reply(200, &invalid(&errors)),
        };
        let (run, ahead) = self.runs.submit(plan, preview);
        if wait {
            json_reply(200, &run.wait())
        } else {
            json_reply(200, &serde_json::json!({ "ok": true, "id": run.id, "ahead": ahead }))
        }
    }
}

/// A graph that did not validate: every error as text, and as node, port or parameter, and message (for the
/// page to show on the node).
fn invalid(errors: &[subspace_host::ValidationError]) -> serde_json::Value {
    let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    let details: Vec<serde_json::Value> = errors
        .iter()
        .map(|e| serde_json::json!({ "node": e.node, "location": e.location, "message": e.message }))
        .collect();
    serde_json::json!({ "ok": false, "errors": text, "details": details })
}

/// The body, at most [`MAX_BODY`] bytes (a larger one is refused before it is read whole).
fn read_body(request: &mut Request) -> Result<Vec<u8>, Reply> {
    if request.body_length().is_some_and(|n| n > MAX_BODY) {
        return Err(error(413, format!("the request body is over the limit of {MAX_BODY} bytes")));
    }
    let mut body = Vec::new();
    match request.as_reader().take(MAX_BODY as u64 + 1).read_to_end(&mut body) {
        Ok(n) if n > MAX_BODY => Err(error(413, format!("the request body is over the limit of {MAX_BODY} bytes"))),
        Ok(_) => Ok(body),
        Err(e) => Err(error(400, format!("cannot read the request body: {e}"))),
    }
}

fn respond(request: Request, (status, ty, bytes): Reply, page: bool) {
    let mut response = Response::from_data(bytes).with_status_code(status);
    let mut headers = vec![("Content-Type", ty), ("X-Content-Type-Options", "nosniff"), ("Cache-Control", "no-store")];
    if page {
        // No other site may frame the editor (a click on Run there would be the user's own); the page loads only
        // its own scripts and talks only to this server.
        let csp = "frame-ancestors 'none'; default-src 'self'; img-src 'self' data: blob:; \
                   style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; form-action 'none'";
        headers.extend([("X-Frame-Options", "DENY"), ("Content-Security-Policy", csp)]);
    }
    for (k, v) in headers {
        if let Ok(h) = Header::from_bytes(k, v) {
            response.add_header(h);
        }
    }
    let _ = request.respond(response);
}

fn save(path: &Path, body: &[u8]) -> Reply {
    let g = match parse(body) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let text = match serde_json::to_string_pretty(&g) {
        Ok(t) => t + "\n",
        Err(e) => return error(500, e.to_string()),
    };
    match subspace_host::report::write_atomic(path, text.as_bytes()) {
        Ok(()) => json_reply(200, &serde_json::json!({ "saved": path.display().to_string() })),
        Err(e) => error(500, format!("{e:#}")),
    }
}

fn parse(body: &[u8]) -> Result<Graph, Reply> {
    let text = std::str::from_utf8(body).map_err(|_| error(400, "the graph is not UTF-8 text"))?;
    Graph::parse(text).map_err(|e| error(400, format!("{e:#}")))
}
