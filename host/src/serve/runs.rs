//! The editor's runs: one queue for every tab, one worker over the session's evaluator, and each run's state
//! (per node, then its result) kept so a page can subscribe to its own run, or reattach to it after a reload,
//! through server-sent events.
//!
//! A run's result carries what the page draws on the nodes: small PNG pictures of every `images` output (the
//! first few, as data URLs) and the class names every labels or fit output carries (for class pickers). A preview
//! run (the live edit slider) asks only for the pictures the page shows and writes into `OUT/preview`.

use super::{error, json_reply, Editor, Reply};
use serde_json::{json, Map, Value as Json};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;
use subspace_host::exec::{Event, NodeStatus};
use subspace_host::{CancelToken, Plan, RunOptions};
use subspace_sdk::{ErrorKind, Value};
use tch::{Device, Kind, Tensor};
use tiny_http::Request;

/// Pictures shown per `images` output, and the longer side they are shrunk to.
const PICTURES: i64 = 8;
const PICTURE_SIDE: i64 = 128;
/// Finished runs kept for pages that reattach late.
const KEPT_RUNS: usize = 32;
/// Output port types whose class names a run reports (labels, and the fits that carry a schema).
const CLASS_TYPES: [&str; 4] = ["labels", "gaussians", "mixture", "directions"];

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One SSE message for a subscriber, and whether it is the last of the run.
type Message = (String, bool);

#[derive(Default)]
struct RunState {
    /// "queued", "running" or "finished".
    phase: &'static str,
    /// Node id -> its latest state (what the page draws on the node).
    nodes: Map<String, Json>,
    result: Option<Json>,
    subscribers: Vec<crossbeam::channel::Sender<Message>>,
}

pub struct Run {
    pub id: u64,
    pub preview: bool,
    cancel: CancelToken,
    state: Mutex<RunState>,
    finished: Condvar,
}

fn sse(event: &str, data: &Json) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

impl Run {
    fn publish(&self, event: &str, data: &Json, last: bool) {
        let msg = sse(event, data);
        lock(&self.state).subscribers.retain(|s| s.send((msg.clone(), last)).is_ok());
    }

    fn set_node(&self, node: &str, state: Json) {
        lock(&self.state).nodes.insert(node.to_string(), state.clone());
        self.publish("node", &json!({ "node": node, "state": state }), false);
    }

    fn set_phase(&self, phase: &'static str) {
        lock(&self.state).phase = phase;
        self.publish("phase", &json!({ "phase": phase }), false);
    }

    fn finish(&self, result: Json) {
        let mut s = lock(&self.state);
        s.phase = "finished";
        s.result = Some(result.clone());
        let msg = sse("done", &result);
        for sub in s.subscribers.drain(..) {
            let _ = sub.send((msg.clone(), true));
        }
        self.finished.notify_all();
    }

    /// Blocks until the run has a result.
    pub fn wait(&self) -> Json {
        let mut s = lock(&self.state);
        while s.result.is_none() {
            s = self.finished.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        s.result.clone().unwrap_or(Json::Null)
    }

    fn snapshot(s: &RunState, id: u64, ahead: usize) -> Json {
        json!({ "id": id, "phase": s.phase, "ahead": ahead, "nodes": s.nodes, "result": s.result })
    }
}

#[derive(Default)]
pub struct Runs {
    queue: Mutex<VecDeque<(Arc<Run>, Plan)>>,
    ready: Condvar,
    all: Mutex<BTreeMap<u64, Arc<Run>>>,
    next: AtomicU64,
    current: Mutex<Option<Arc<Run>>>,
}

impl Runs {
    /// Queues a validated plan; returns the run and how many runs are ahead of it.
    pub fn submit(&self, plan: Plan, preview: bool) -> (Arc<Run>, usize) {
        let id = self.next.fetch_add(1, Ordering::SeqCst) + 1;
        let state = RunState { phase: "queued", ..Default::default() };
        let cancel = CancelToken::default();
        let run = Arc::new(Run { id, preview, cancel, state: Mutex::new(state), finished: Condvar::new() });
        {
            let mut all = lock(&self.all);
            all.insert(id, run.clone());
            while all.len() > KEPT_RUNS {
                let oldest = all.iter().find(|(_, r)| lock(&r.state).result.is_some()).map(|(k, _)| *k);
                match oldest {
                    Some(k) => all.remove(&k),
                    None => break,
                };
            }
        }
        let mut q = lock(&self.queue);
        q.push_back((run.clone(), plan));
        let ahead = q.len() - 1 + usize::from(lock(&self.current).is_some());
        self.ready.notify_one();
        (run, ahead)
    }

    pub fn get(&self, id: u64) -> Option<Arc<Run>> {
        lock(&self.all).get(&id).cloned()
    }

    fn ahead_of(&self, id: u64) -> usize {
        let q = lock(&self.queue);
        match q.iter().position(|(r, _)| r.id == id) {
            Some(i) => i + usize::from(lock(&self.current).is_some()),
            None => 0,
        }
    }

    /// The run's state now, and a channel of what happens next (atomically: nothing is missed in between).
    pub fn subscribe(&self, run: &Run) -> (Json, crossbeam::channel::Receiver<Message>) {
        let ahead = self.ahead_of(run.id);
        let (tx, rx) = crossbeam::channel::unbounded();
        let mut s = lock(&run.state);
        let snap = Run::snapshot(&s, run.id, ahead);
        if s.result.is_none() {
            s.subscribers.push(tx);
        }
        (snap, rx)
    }

    pub fn snapshot(&self, run: &Run) -> Json {
        let ahead = self.ahead_of(run.id);
        Run::snapshot(&lock(&run.state), run.id, ahead)
    }

    /// Stops run `id` (queued: dropped; running: its nodes stop at their next check), or the running one.
    pub fn cancel(&self, id: Option<u64>) -> bool {
        let current = lock(&self.current).clone();
        match (id, current) {
            (None, Some(run)) => {
                run.cancel.cancel();
                true
            }
            (None, None) => false,
            (Some(id), Some(run)) if run.id == id => {
                run.cancel.cancel();
                true
            }
            (Some(id), _) => {
                let removed = {
                    let mut q = lock(&self.queue);
                    let at = q.iter().position(|(r, _)| r.id == id);
                    at.and_then(|i| q.remove(i))
                };
                match removed {
                    Some((run, _)) => {
                        run.cancel.cancel();
                        run.finish(json!({ "ok": false, "id": id, "run": null, "stopped": true, "nodes": {} }));
                        true
                    }
                    None => false,
                }
            }
        }
    }

    fn next_job(&self) -> (Arc<Run>, Plan) {
        let mut q = lock(&self.queue);
        loop {
            if let Some(job) = q.pop_front() {
                *lock(&self.current) = Some(job.0.clone());
                return job;
            }
            q = self.ready.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// The queue's worker: runs one plan after another for as long as the server lives.
pub fn work(editor: Arc<Editor>) {
    loop {
        let (run, plan) = editor.runs.next_job();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| execute(&editor, &run, plan)));
        let result = result.unwrap_or_else(|_| {
            json!({ "ok": false, "id": run.id, "error": "the run failed inside the host; the server keeps serving" })
        });
        *lock(&editor.runs.current) = None;
        run.finish(result);
    }
}

/// Requests every `images` and class-carrying output of the needed nodes too (nodes that run anyway), so the
/// page can draw them; returns what was added.
fn request_extras(plan: &mut Plan) -> HashSet<(usize, String)> {
    let mut added = HashSet::new();
    for i in plan.needed_order() {
        for port in plan.nodes[i].node_type.descriptor.outputs.iter() {
            let ty = port.ty.as_str();
            let name = port.name.to_string();
            let wanted = ty == "images" || CLASS_TYPES.contains(&ty);
            let already = plan.requested.iter().any(|(n, p)| *n == i && p.as_deref().is_none_or(|p| p == name));
            if wanted && !already {
                plan.requested.push((i, Some(name.clone())));
                added.insert((i, name));
            }
        }
    }
    added
}

fn execute(editor: &Editor, run: &Run, mut plan: Plan) -> Json {
    let original = plan.requested.clone();
    let extras = if run.preview { HashSet::new() } else { request_extras(&mut plan) };
    run.set_phase("running");
    // One run at a time: they share the evaluator's cache and the machine.
    let mut guard = lock(&editor.evaluator);
    let (evaluator, last) = &mut *guard;
    let (name, dir) = if run.preview {
        let dir = editor.out.join("preview");
        if let Err(e) = std::fs::create_dir_all(&dir) {
            return json!({ "ok": false, "id": run.id, "error": format!("cannot create {}: {e}", dir.display()) });
        }
        (None, dir)
    } else {
        match editor.new_run_dir(last) {
            Ok((name, dir)) => (Some(name), dir),
            Err((_, _, body)) => {
                let e: Json = serde_json::from_slice(&body).unwrap_or_default();
                return json!({ "ok": false, "id": run.id, "error": e["error"] });
            }
        }
    };
    subspace_sdk::files::sweep_stale_temps(&editor.out);
    if !run.preview {
        lock(&editor.progress).clear();
    }
    let (tx, rx) = crossbeam::channel::unbounded();
    let opts = RunOptions { out_dir: dir.clone(), events: Some(tx), cancel: run.cancel.clone() };
    let report = std::thread::scope(|scope| {
        scope.spawn(|| listen(editor, run, rx));
        let report = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| evaluator.run(&plan, &opts)));
        drop(opts);
        report
    });
    let Ok(mut report) = report else {
        let error = "the run failed inside the host; the server keeps serving";
        return json!({ "ok": false, "id": run.id, "error": error });
    };
    drop(guard);

    // What the page draws, from every requested output; then the report as if only the graph's own were asked.
    let mut pictures = Map::new();
    let mut classes = Map::new();
    for (node, values) in &report.outputs {
        for v in values {
            match &v.value {
                Value::Images(t) => {
                    let t = t.tensor();
                    let urls = picture_urls(&t);
                    if urls.is_empty() {
                        continue;
                    }
                    let total = t.size().first().copied().unwrap_or(0);
                    let entry = pictures.entry(node.clone()).or_insert_with(|| json!({}));
                    entry[v.name.as_str()] = json!({ "total": total, "urls": urls });
                }
                Value::Labels(l) => {
                    classes.insert(node.clone(), json!(l.schema.class_names()));
                }
                Value::Bundle(b) if b.meta_json()["classes"].is_array() => {
                    classes.insert(node.clone(), b.meta_json()["classes"].clone());
                }
                _ => {}
            }
        }
    }
    let requested = |node: &str, port: &str| {
        original.iter().any(|(i, p)| plan.nodes[*i].id == node && p.as_deref().is_none_or(|p| p == port))
    };
    for (node, values) in report.outputs.iter_mut() {
        let mut seen = HashSet::new();
        values.retain(|v| requested(node, v.name.as_str()) && seen.insert(v.name.to_string()));
    }
    report.outputs.retain(|_, v| !v.is_empty());
    let extra_names: HashSet<String> = extras.iter().map(|(i, p)| format!("{}.{p}", plan.nodes[*i].id)).collect();
    report.missing.retain(|m| !extra_names.contains(m));

    let stopped = report.cancelled;
    let nodes: Map<String, Json> = report.status.iter().map(|(id, s)| (id.clone(), node_status(s, stopped))).collect();
    let files = super::files_under(&dir, &editor.out);
    let files = if run.preview { Vec::new() } else { files };
    json!({ "ok": report.ok(), "id": run.id, "run": name, "stopped": stopped, "report": subspace_host::report::report_json(&report),
        "nodes": nodes, "files": files, "pictures": pictures, "classes": classes })
}

/// A node's end state for the page: ran (with seconds), cached, failed (with the error), or stopped.
fn node_status(s: &NodeStatus, stopped: bool) -> Json {
    match s {
        NodeStatus::Ran { seconds } => json!({ "state": "done", "seconds": seconds }),
        NodeStatus::Cached => json!({ "state": "cached" }),
        NodeStatus::Failed { error } if error.kind == ErrorKind::Cancelled => json!({ "state": "stopped" }),
        NodeStatus::Failed { error } => json!({ "state": "failed", "error": error.to_string() }),
        NodeStatus::Skipped { .. } if stopped => json!({ "state": "stopped" }),
        NodeStatus::Skipped { because } => json!({ "state": "skipped", "error": because }),
    }
}

/// Forwards the evaluator's events to the run's subscribers, and (for full runs) to `/api/progress`.
fn listen(editor: &Editor, run: &Run, rx: crossbeam::channel::Receiver<Event>) {
    for e in rx {
        let stopped = run.cancel.is_cancelled();
        let (node, legacy, state) = match e {
            Event::NodeStarted { node, .. } => (node, "started".to_string(), json!({ "state": "started" })),
            Event::NodeCached { node } => (node, "cached".into(), json!({ "state": "cached" })),
            Event::NodeProgress { node, done, total, message } => {
                let legacy = format!("{done}/{total} {message}");
                (node, legacy, json!({ "state": "started", "done": done, "total": total, "message": message }))
            }
            Event::NodeFinished { node, seconds } => {
                (node, "done".into(), json!({ "state": "done", "seconds": seconds }))
            }
            Event::NodeFailed { node, .. } if stopped => (node, "failed".into(), json!({ "state": "stopped" })),
            Event::NodeFailed { node, error } => (node, "failed".into(), json!({ "state": "failed", "error": error })),
            Event::NodeSkipped { node, .. } if stopped => (node, "skipped".into(), json!({ "state": "stopped" })),
            Event::NodeSkipped { node, because } => {
                (node, "skipped".into(), json!({ "state": "skipped", "error": because }))
            }
            Event::NodeLog { .. } => continue,
        };
        if !run.preview {
            lock(&editor.progress).insert(node.clone(), legacy.into());
        }
        run.set_node(&node, state);
    }
}

/// The first pictures of an N x C x H x W tensor in [0, 1] as PNG data URLs, shrunk to fit the page's strips.
/// Anything else (another shape, not floats, all zero) gives none.
fn picture_urls(t: &Tensor) -> Vec<String> {
    let s = t.size();
    if s.len() != 4 || !(s[1] == 1 || s[1] == 3) || !t.is_floating_point() || s.contains(&0) {
        return Vec::new();
    }
    let k = s[0].min(PICTURES);
    let mut x = t.detach().narrow(0, 0, k).to_device(Device::Cpu).to_kind(Kind::Float);
    // All black: a placeholder (a Generator that only samples codes), not pictures worth a strip.
    if x.abs().max().double_value(&[]) == 0.0 {
        return Vec::new();
    }
    let (h, w) = (s[2], s[3]);
    let (mut nh, mut nw) = (h, w);
    if h.max(w) > PICTURE_SIDE {
        let f = PICTURE_SIDE as f64 / h.max(w) as f64;
        (nh, nw) = (((h as f64 * f).round() as i64).max(1), ((w as f64 * f).round() as i64).max(1));
        x = x.adaptive_avg_pool2d([nh, nw]);
    }
    let x = (x.nan_to_num(0.0, 0.0, 0.0).clamp(0.0, 1.0) * 255.0).round().to_kind(Kind::Uint8);
    let x = x.permute([0, 2, 3, 1]).contiguous().flatten(0, -1);
    let Ok(bytes) = Vec::<u8>::try_from(&x) else { return Vec::new() };
    let per = (nh * nw * s[1]) as usize;
    let color = if s[1] == 3 { image::ExtendedColorType::Rgb8 } else { image::ExtendedColorType::L8 };
    bytes.chunks(per).filter_map(|pixels| png_url(pixels, nw as u32, nh as u32, color)).collect()
}

fn png_url(pixels: &[u8], w: u32, h: u32, color: image::ExtendedColorType) -> Option<String> {
    use base64::Engine;
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use image::ImageEncoder;
    let mut png = Vec::new();
    // Fast compression: these go to the page while a slider moves.
    let encoder = PngEncoder::new_with_quality(&mut png, CompressionType::Fast, FilterType::Sub);
    encoder.write_image(pixels, w, h, color).ok()?;
    Some(format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(&png)))
}

/// Streams a run's state to a page as server-sent events: first everything so far (`state`), then each change
/// (`phase`, `node`) and the result (`done`), then the stream ends. A ping every 15 s finds a closed page.
pub fn stream(request: Request, runs: &Runs, run: &Run) {
    let (snapshot, rx) = runs.subscribe(run);
    let finished = !snapshot["result"].is_null();
    let mut w = request.into_writer();
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\
                X-Content-Type-Options: nosniff\r\nTransfer-Encoding: chunked\r\n\r\n";
    let chunk = |w: &mut Box<dyn Write + Send>, text: &str| -> std::io::Result<()> {
        write!(w, "{:x}\r\n{text}\r\n", text.len())?;
        w.flush()
    };
    if w.write_all(head.as_bytes()).is_err() || chunk(&mut w, &sse("state", &snapshot)).is_err() {
        return;
    }
    if !finished {
        loop {
            match rx.recv_timeout(Duration::from_secs(15)) {
                Ok((msg, last)) => {
                    if chunk(&mut w, &msg).is_err() {
                        return;
                    }
                    if last {
                        break;
                    }
                }
                Err(crossbeam::channel::RecvTimeoutError::Timeout) => {
                    if chunk(&mut w, ": ping\n\n").is_err() {
                        return;
                    }
                }
                Err(crossbeam::channel::RecvTimeoutError::Disconnected) => break,
            }
        }
    }
    let _ = w.write_all(b"0\r\n\r\n").and_then(|_| w.flush());
}

/// `GET /api/runs/ID[/events]?token=T`: a run's state is the session's own, so reading it needs the token too
/// (an EventSource cannot send headers, hence the query).
pub fn find(editor: &Editor, rest: &str, query: &str) -> Result<(Arc<Run>, bool), Reply> {
    let token = query.split('&').find_map(|kv| kv.strip_prefix("token=")).unwrap_or("");
    if token != editor.token {
        return Err(error(403, "reading a run needs the session token (?token=) that the editor page carries"));
    }
    let (id, events) = match rest.strip_suffix("/events") {
        Some(id) => (id, true),
        None => (rest, false),
    };
    let id: u64 = id.parse().map_err(|_| error(404, format!("no run '{id}'")))?;
    let gone = || error(404, format!("no run {id} (the last {KEPT_RUNS} finished runs are kept)"));
    let run = editor.runs.get(id).ok_or_else(gone)?;
    Ok((run, events))
}

pub fn snapshot_reply(editor: &Editor, run: &Run) -> Reply {
    json_reply(200, &editor.runs.snapshot(run))
}
