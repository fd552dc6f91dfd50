//! Evaluation: runs what the requested outputs need, re-using cached results, on a crossbeam worker pool.
//!
//! A node's cache key is its type and version, the device, its parameter values and, recursively, its inputs'
//! keys (never its id), so two runs that differ in one parameter re-run only that node and what depends on it.
//! Volatile nodes get a per-run nonce in their key. A failing node stops only its dependents.
//!
//! With a disk cache ([`Evaluator::set_disk_cache`]), results of cacheable nodes are also kept on disk under a key
//! that adds the providing plugins' build ids and the size and time of files named by path parameters, so a later
//! process loads them instead of running the node. Model outputs are not stored: when a node that runs needs one,
//! the evaluator re-creates it by calling the node without inputs in a run that reads as cancelled, taking the
//! models it loaded through the shared model cache (nodes load models first, so this costs a model load); when that
//! gives no model, the node runs.

mod schedule;

pub use schedule::{CancelToken, MAX_WORKERS};

use crate::cache::{CacheStats, Key, OutputCache};
use crate::disk_cache::{DiskCache, Slot};
use crate::plugins::Registry;
use crate::validate::Plan;
use abi_stable::std_types::{RErr, RNone, ROk, ROption, RSome, RStr};
use crossbeam::channel::Sender;
use schedule::{Coordinator, Ending, Finish, Skip};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use subspace_sdk::{
    DeviceSpec, ErrorKind, HostServices, HostServices_TO, ModelRef, NamedValue, NodeContext, NodeError, ParamKind,
    Value,
};

/// A node's outputs, shared between the cache and the run report.
pub type Outputs = Arc<Vec<NamedValue>>;

/// What happened during a run, for any listener (CLI progress, a UI over a socket, tests).
#[derive(Debug, Clone)]
pub enum Event {
    NodeCached { node: String },
    NodeStarted { node: String, node_type: String },
    NodeProgress { node: String, done: u64, total: u64, message: String },
    NodeLog { node: String, message: String },
    NodeFinished { node: String, seconds: f64 },
    NodeFailed { node: String, error: String },
    NodeSkipped { node: String, because: String },
}

/// How a node ended in one run.
#[derive(Debug, Clone)]
pub enum NodeStatus {
    Ran {
        seconds: f64,
    },
    Cached,
    Failed {
        error: NodeError,
    },
    /// An input's node failed or the run was cancelled first.
    Skipped {
        because: String,
    },
}

/// The result of a run: every needed node's status and the requested outputs that were produced.
#[derive(Debug)]
pub struct RunReport {
    pub status: BTreeMap<String, NodeStatus>,
    /// Requested outputs by node id (only the requested ports when a port was named).
    pub outputs: BTreeMap<String, Vec<NamedValue>>,
    /// Requested outputs (`node` or `node.port`) that the run did not produce.
    pub missing: Vec<String>,
    pub cancelled: bool,
    /// The evaluator's cache after the run, and what it evicted during it.
    pub cache: CacheStats,
    /// Nodes whose results came from the disk cache (their status is `Cached`).
    pub from_disk: BTreeSet<String>,
    /// Disk-cache problems met during the run (corrupt entries ignored, writes that failed); none stops it.
    pub warnings: Vec<String>,
    pub seconds: f64,
}

impl RunReport {
    pub fn ran(&self) -> Vec<&str> {
        self.filter(|s| matches!(s, NodeStatus::Ran { .. }))
    }
    pub fn cached(&self) -> Vec<&str> {
        self.filter(|s| matches!(s, NodeStatus::Cached))
    }
    pub fn failed(&self) -> Vec<&str> {
        self.filter(|s| matches!(s, NodeStatus::Failed { .. }))
    }
    fn filter(&self, f: impl Fn(&NodeStatus) -> bool) -> Vec<&str> {
        self.status.iter().filter(|(_, s)| f(s)).map(|(k, _)| k.as_str()).collect()
    }
    /// Output `port` of node `node`, if produced.
    pub fn output(&self, node: &str, port: &str) -> Option<&Value> {
        self.outputs.get(node)?.iter().find(|v| v.name.as_str() == port).map(|v| &v.value)
    }
    /// Every needed node ran or was cached, and every requested output is there.
    pub fn ok(&self) -> bool {
        self.missing.is_empty()
            && self.status.values().all(|s| matches!(s, NodeStatus::Ran { .. } | NodeStatus::Cached))
    }
}

/// Options of one run.
#[derive(Clone, Default)]
pub struct RunOptions {
    pub out_dir: PathBuf,
    pub events: Option<Sender<Event>>,
    pub cancel: CancelToken,
}

/// A lock that survives a panic elsewhere: the guarded maps stay consistent between single inserts and removals.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Evaluates plans; keeps its output cache and its loaded models across runs.
pub struct Evaluator {
    pub registry: Arc<Registry>,
    pub device: DeviceSpec,
    /// Worker threads for independent nodes, at most [`MAX_WORKERS`] (larger values are clamped).
    pub workers: usize,
    cache: Mutex<OutputCache>,
    disk: Option<DiskCache>,
    models: Mutex<HashMap<String, ModelRef>>,
    runs: AtomicU64,
}

impl Evaluator {
    pub fn new(registry: Arc<Registry>, device: DeviceSpec) -> Self {
        Evaluator {
            registry,
            device,
            workers: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(2, 8),
            cache: Mutex::new(OutputCache::new(crate::cache::DEFAULT_BUDGET)),
            disk: None,
            models: Mutex::new(HashMap::new()),
            runs: AtomicU64::new(0),
        }
    }

    /// Bytes of node results the cache may hold across runs (least recently used evicted first).
    pub fn set_cache_budget(&self, bytes: u64) {
        lock(&self.cache).set_budget(bytes);
    }

    /// Keeps results of cacheable nodes in `cache` across processes too (`None`: in memory only, the default).
    pub fn set_disk_cache(&mut self, cache: Option<DiskCache>) {
        self.disk = cache;
    }

    /// Keys of the models nodes have loaded into the shared model cache.
    pub fn loaded_models(&self) -> Vec<String> {
        let mut keys: Vec<String> = lock(&self.models).keys().cloned().collect();
        keys.sort();
        keys
    }

    /// Cache keys of every node of `plan` (nodes are listed with their inputs before them or not; keys recurse). The
    /// files a node reads count by their size and modification time ([`crate::paths::stamp`]).
    fn keys(&self, plan: &Plan, run: u64) -> Vec<Key> {
        let mut keys: Vec<Option<Key>> = vec![None; plan.nodes.len()];
        fn key_of(plan: &Plan, i: usize, device: DeviceSpec, run: u64, keys: &mut Vec<Option<Key>>) -> Key {
            if let Some(k) = keys[i] {
                return k;
            }
            let n = &plan.nodes[i];
            let d = &n.node_type.descriptor;
            let mut h = blake3::Hasher::new();
            h.update(d.id.as_bytes());
            h.update(b"\0");
            h.update(d.version.as_bytes());
            h.update(format!("\0{device}\0").as_bytes());
            for p in &n.params {
                h.update(p.name.as_bytes());
                h.update(b"=");
                h.update(p.value.to_json().unwrap_or_default().to_string().as_bytes());
                h.update(b"\0");
                // A file the node reads, by its size and time too: a file saved again is read again (a long-lived
                // session must not keep the mixture or model it loaded before).
                if let Value::Text(t) = &p.value {
                    if crate::paths::reads_path(&n.node_type, p.name.as_str()) {
                        if let Some(stamp) = crate::paths::stamp(t.as_str()) {
                            h.update(stamp.as_bytes());
                            h.update(b"\0");
                        }
                    }
                }
            }
            for (port, (src, src_port)) in &n.inputs {
                let k = key_of(plan, *src, device, run, keys);
                h.update(port.as_bytes());
                h.update(b"<-");
                h.update(&k);
                h.update(src_port.as_bytes());
                h.update(b"\0");
            }
            if d.volatile {
                h.update(&run.to_le_bytes());
            }
            let k = *h.finalize().as_bytes();
            keys[i] = Some(k);
            k
        }
        (0..plan.nodes.len()).map(|i| key_of(plan, i, self.device, run, &mut keys)).collect()
    }

    /// Disk-cache keys: for each cacheable node with no volatile node upstream, a hash of its cache key, its
    /// plugin's build id, the size and time of the files its path parameters name, and the same of every node
    /// upstream (so a rebuilt plugin or a replaced file anywhere above changes the key). `None` for the others.
    fn disk_keys(&self, plan: &Plan, keys: &[Key]) -> Vec<Option<Key>> {
        type Memo = Vec<Option<(Key, bool)>>;
        fn lineage(e: &Evaluator, plan: &Plan, keys: &[Key], i: usize, memo: &mut Memo) -> (Key, bool) {
            if let Some(l) = memo[i] {
                return l;
            }
            let n = &plan.nodes[i];
            let d = &n.node_type.descriptor;
            let mut volatile = d.volatile;
            let mut h = blake3::Hasher::new();
            h.update(DISK_KEY_FORMAT);
            h.update(&keys[i]);
            if let Some(p) = e.registry.plugins.get(n.node_type.plugin) {
                h.update(&p.build_id);
            }
            for p in &n.params {
                let path = d.params.iter().any(|s| s.name == p.name && matches!(s.kind, ParamKind::Path));
                if let (true, Value::Text(t)) = (path, &p.value) {
                    if let Some(stamp) = crate::paths::stamp(t.as_str()) {
                        h.update(format!("\0{}\0{stamp}", p.name).as_bytes());
                    }
                }
            }
            for (port, (src, _)) in &n.inputs {
                let (k, v) = lineage(e, plan, keys, *src, memo);
                volatile |= v;
                h.update(port.as_bytes());
                h.update(&k);
            }
            let l = (*h.finalize().as_bytes(), volatile);
            memo[i] = Some(l);
            l
        }
        let mut memo = vec![None; plan.nodes.len()];
        (0..plan.nodes.len())
            .map(|i| {
                let (k, volatile) = lineage(self, plan, keys, i, &mut memo);
                (plan.nodes[i].node_type.cacheable() && !volatile).then_some(k)
            })
            .collect()
    }

    /// Runs `plan`: only what its requested outputs need, re-using the cache.
    pub fn run(&self, plan: &Plan, opts: &RunOptions) -> RunReport {
        let started = Instant::now();
        // `$out/...` input paths name this run's output folder (before keys: the key holds the path read).
        let plan = &*crate::paths::with_out_dir(plan, &opts.out_dir);
        let run = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        let keys = self.keys(plan, run);
        let emit = |e: Event| {
            if let Some(tx) = &opts.events {
                let _ = tx.send(e);
            }
        };

        // Walk back from the requested outputs; a cached node cuts the walk (its inputs are not needed).
        let disk_keys = if self.disk.is_some() { self.disk_keys(plan, &keys) } else { vec![None; plan.nodes.len()] };
        let warnings = Mutex::new(Vec::new());
        let warn = |node: &str, message: String| {
            emit(Event::NodeLog { node: node.to_string(), message: format!("warning: {message}") });
            lock(&warnings).push(format!("{node}: {message}"));
        };
        let mut got =
            Found { plan, emit: &emit, values: HashMap::new(), status: BTreeMap::new(), from_disk: BTreeSet::new() };
        let mut to_run: Vec<usize> = Vec::new();
        // Disk hits that lack their model outputs, until it is known whether a node that runs needs one.
        let mut partial: BTreeMap<usize, Vec<Slot>> = BTreeMap::new();
        let mut seen = HashSet::new();
        let mut stack: Vec<usize> = plan.requested.iter().map(|(i, _)| *i).collect();
        loop {
            while let Some(i) = stack.pop() {
                if !seen.insert(i) {
                    continue;
                }
                if let Some(outputs) = lock(&self.cache).get(&keys[i]) {
                    got.cached(i, outputs);
                    continue;
                }
                if let (Some(disk), Some(dk)) = (&self.disk, &disk_keys[i]) {
                    match disk.load(dk, &plan.nodes[i].node_type.descriptor, self.device.to_tch()) {
                        Ok(Some(slots)) if slots.iter().all(|(_, v)| v.is_some()) => {
                            got.disk_hit(i, slots, Some((&self.cache, keys[i])), "loaded from the disk cache");
                            continue;
                        }
                        Ok(Some(slots)) => {
                            partial.insert(i, slots);
                            continue;
                        }
                        Ok(None) => {}
                        Err(why) => {
                            warn(&plan.nodes[i].id, format!("ignored a disk-cache entry ({why}); running the node"))
                        }
                    }
                }
                to_run.push(i);
                stack.extend(plan.nodes[i].inputs.values().map(|(s, _)| *s));
            }
            // A partial hit whose model output a running node (or the request) needs gets its models back, or runs.
            let mut grew = false;
            for i in partial.keys().copied().collect::<Vec<_>>() {
                let needed = |port: &str| {
                    plan.requested.iter().any(|(r, p)| *r == i && p.as_deref().is_none_or(|p| p == port))
                        || to_run.iter().any(|&j| plan.nodes[j].inputs.values().any(|(s, sp)| *s == i && sp == port))
                };
                if !partial[&i].iter().any(|(port, v)| v.is_none() && needed(port)) {
                    continue;
                }
                let Some(mut slots) = partial.remove(&i) else { continue };
                let ports: Vec<String> = slots.iter().filter(|(_, v)| v.is_none()).map(|(p, _)| p.clone()).collect();
                match self.restore_models(plan, i, &keys[i], &ports, opts) {
                    Ok(models) => {
                        for (port, v) in slots.iter_mut() {
                            if v.is_none() {
                                *v = models.get(port.as_str()).cloned();
                            }
                        }
                        let note = "loaded from the disk cache (models loaded again)";
                        got.disk_hit(i, slots, Some((&self.cache, keys[i])), note);
                    }
                    Err(why) => {
                        let message = format!("disk-cache entry without its models ({why}); running the node");
                        emit(Event::NodeLog { node: plan.nodes[i].id.clone(), message });
                        to_run.push(i);
                        stack.extend(plan.nodes[i].inputs.values().map(|(s, _)| *s));
                        grew = true;
                    }
                }
            }
            if !grew {
                break;
            }
        }
        // The rest are used without their models (never needed); they stay out of the memory cache, which holds
        // whole results only.
        for (i, slots) in partial {
            got.disk_hit(i, slots, None, "loaded from the disk cache");
        }

        // Run what remains on the workers, each node once its inputs that run are done (schedule.rs).
        let position: HashMap<usize, usize> = to_run.iter().enumerate().map(|(k, &i)| (i, k)).collect();
        let deps: Vec<Vec<usize>> = to_run
            .iter()
            .map(|&i| plan.nodes[i].inputs.values().filter_map(|(s, _)| position.get(s).copied()).collect())
            .collect();
        let work = |k: usize, inputs: Vec<NamedValue>, finish: Finish<'_, Vec<NamedValue>>| {
            let i = to_run[k];
            let result = self.evaluate_node(plan, i, &inputs, &keys[i], opts);
            let store = match (&self.disk, &disk_keys[i], &result) {
                (Some(disk), Some(dk), Ok(out)) => Some((disk, dk, out.clone())),
                _ => None,
            };
            finish(result);
            // Written after the node is reported done, so that its dependents start meanwhile.
            if let Some((disk, dk, out)) = store {
                if let Err(why) = disk.store(dk, &plan.nodes[i].node_type.descriptor, &out) {
                    warn(&plan.nodes[i].id, format!("not kept in the disk cache: {why}"));
                }
            }
        };
        let mut running = Running { found: &mut got, to_run: &to_run, keys: &keys, cache: &self.cache };
        schedule::run(&deps, self.workers, &opts.cancel, &mut running, &work);
        let Found { values, status, from_disk, .. } = got;

        let mut outputs = BTreeMap::new();
        let mut missing = Vec::new();
        for (i, port) in &plan.requested {
            let id = &plan.nodes[*i].id;
            let list: Vec<NamedValue> = values
                .get(i)
                .map(|v| v.iter().filter(|nv| port.as_deref().is_none_or(|p| nv.name.as_str() == p)).cloned().collect())
                .unwrap_or_default();
            if list.is_empty() {
                missing.push(port.as_ref().map_or(id.clone(), |p| format!("{id}.{p}")));
            }
            outputs.entry(id.clone()).or_insert_with(Vec::new).extend(list);
        }
        outputs.retain(|_, v| !v.is_empty());
        let mut cache = lock(&self.cache).take_stats();
        cache.disk = self.disk.as_ref().map(DiskCache::take_stats);
        let warnings = warnings.into_inner().unwrap_or_else(|p| p.into_inner());
        let cancelled = opts.cancel.is_cancelled();
        let seconds = started.elapsed().as_secs_f64();
        RunReport { status, outputs, missing, cancelled, cache, from_disk, warnings, seconds }
    }

    /// The model outputs `ports` of node `i`, re-created for a disk hit: the node is called without inputs in a
    /// run that reads as cancelled, so it stops at its first look at an input or at cancellation; the models it
    /// loaded through the shared model cache by then are matched to the ports by kind (one model per kind). An
    /// error says why not; then the node runs.
    fn restore_models(
        &self,
        plan: &Plan,
        i: usize,
        key: &Key,
        ports: &[String],
        opts: &RunOptions,
    ) -> Result<HashMap<String, Value>, String> {
        let n = &plan.nodes[i];
        let captured = Mutex::new(Vec::new());
        let cancelled = CancelToken::default();
        cancelled.cancel();
        let models = &self.models;
        let services = Services { node: &n.id, events: None, cancel: &cancelled, models, captured: Some(&captured) };
        let returned = self.call(plan, i, &[], key, &services, opts);
        let mut captured = captured.into_inner().unwrap_or_else(|p| p.into_inner());
        captured.sort_by(|a, b| a.0.cmp(&b.0));
        captured.dedup_by(|a, b| a.0 == b.0);
        let mut found = HashMap::new();
        for port in ports {
            let model = match &returned {
                // A node that needs no input finishes: its own outputs.
                Ok(out) => out.iter().find(|v| v.name.as_str() == port).and_then(|v| match &v.value {
                    Value::Model(m) => Some(m.clone()),
                    _ => None,
                }),
                Err(_) => {
                    let ty = n.node_type.descriptor.find_output(port).map(|p| p.ty.to_string()).unwrap_or_default();
                    let mut of_kind = captured.iter().filter(|(_, m)| m.kind().as_str() == ty);
                    match (of_kind.next(), of_kind.next()) {
                        (Some((_, m)), None) => Some(m.clone()),
                        (None, _) => None,
                        (Some(_), Some(_)) => return Err(format!("it loaded several models of kind {ty}")),
                    }
                }
            };
            let model = model.ok_or_else(|| format!("it loaded no model for its output '{port}' before stopping"))?;
            found.insert(port.clone(), Value::Model(model));
        }
        Ok(found)
    }

    /// Runs one node in its plugin and checks what it returned.
    fn evaluate_node(
        &self,
        plan: &Plan,
        i: usize,
        inputs: &[NamedValue],
        key: &Key,
        opts: &RunOptions,
    ) -> Result<Vec<NamedValue>, NodeError> {
        let n = &plan.nodes[i];
        let d = &n.node_type.descriptor;
        let (events, cancel, models) = (opts.events.as_ref(), &opts.cancel, &self.models);
        let services = Services { node: &n.id, events, cancel, models, captured: None };
        let outputs = self.call(plan, i, inputs, key, &services, opts)?;
        for p in d.outputs.iter() {
            match outputs.iter().find(|v| v.name == p.name) {
                None => {
                    return Err(NodeError::internal(format!("node did not produce its output '{}'", p.name))
                        .at(p.name.as_str()))
                }
                Some(v)
                    if !crate::validate::compatible(&v.value.port_type(), p.ty.as_str())
                        && p.ty.as_str() != v.value.port_type() =>
                {
                    return Err(NodeError::internal(format!(
                        "output '{}' is declared {} but the node produced {}",
                        p.name,
                        p.ty,
                        v.value.port_type()
                    ))
                    .at(p.name.as_str()))
                }
                _ => {}
            }
        }
        Ok(outputs)
    }

    /// Calls node `i` in its plugin with `inputs` and `services`, catching a panic.
    fn call(
        &self,
        plan: &Plan,
        i: usize,
        inputs: &[NamedValue],
        key: &Key,
        services: &Services<'_>,
        opts: &RunOptions,
    ) -> Result<Vec<NamedValue>, NodeError> {
        let n = &plan.nodes[i];
        let d = &n.node_type.descriptor;
        let plugin = &self.registry.plugins[n.node_type.plugin];
        let out_dir = opts.out_dir.to_string_lossy().to_string();
        let seed = u64::from_le_bytes([key[0], key[1], key[2], key[3], key[4], key[5], key[6], key[7]]);
        let ctx = NodeContext {
            node_id: RStr::from(n.id.as_str()),
            device: self.device,
            seed,
            out_dir: RStr::from(out_dir.as_str()),
            services: HostServices_TO::from_const(services, abi_stable::sabi_trait::TD_Opaque),
        };
        let call = catch_unwind(AssertUnwindSafe(|| {
            (plugin.evaluate)(d.id.as_rstr(), inputs.into(), n.params.as_slice().into(), &ctx)
        }));
        match call {
            Ok(ROk(out)) => Ok(out.into_vec()),
            Ok(RErr(e)) => Err(e),
            Err(_) => Err(NodeError::new(ErrorKind::Panic, "the host panicked while calling this node")),
        }
    }
}

/// Versions the disk keys: bumped when what goes into them changes, so old entries are never read.
const DISK_KEY_FORMAT: &[u8] = b"subspace disk cache key 1\0";

/// A disk hit's outputs: those present (all of them, unless model outputs were not needed).
fn whole(slots: Vec<Slot>) -> Outputs {
    Arc::new(slots.into_iter().filter_map(|(n, v)| Some(NamedValue::new(&n, v?))).collect())
}

/// What a run has found or produced so far: outputs by node, statuses, and which results came from disk.
struct Found<'r> {
    plan: &'r Plan,
    emit: &'r dyn Fn(Event),
    values: HashMap<usize, Outputs>,
    status: BTreeMap<String, NodeStatus>,
    from_disk: BTreeSet<String>,
}

impl Found<'_> {
    /// Node `i`'s results are there without running it.
    fn cached(&mut self, i: usize, outputs: Outputs) {
        let id = &self.plan.nodes[i].id;
        self.values.insert(i, outputs);
        self.status.insert(id.clone(), NodeStatus::Cached);
        (self.emit)(Event::NodeCached { node: id.clone() });
    }

    /// Node `i`'s results came from the disk cache: used, kept in `memory` under the key when given (whole
    /// results only), reported cached with `note`.
    fn disk_hit(&mut self, i: usize, slots: Vec<Slot>, memory: Option<(&Mutex<OutputCache>, Key)>, note: &str) {
        let outputs = whole(slots);
        if let Some((cache, key)) = memory {
            lock(cache).insert(key, outputs.clone());
        }
        self.cached(i, outputs);
        let id = &self.plan.nodes[i].id;
        self.from_disk.insert(id.clone());
        (self.emit)(Event::NodeLog { node: id.clone(), message: note.into() });
    }
}

/// The evaluator's side of scheduling: job `k` is node `to_run[k]`; its input is gathered from the outputs found
/// so far, and its results are cached and reported when it ends.
struct Running<'a, 'r> {
    found: &'a mut Found<'r>,
    to_run: &'a [usize],
    keys: &'a [Key],
    cache: &'a Mutex<OutputCache>,
}

impl Coordinator for Running<'_, '_> {
    type Input = Vec<NamedValue>;
    type Output = Vec<NamedValue>;

    fn start(&mut self, k: usize) -> Vec<NamedValue> {
        let n = &self.found.plan.nodes[self.to_run[k]];
        let values = &self.found.values;
        let inputs = n
            .inputs
            .iter()
            .filter_map(|(port, (src, src_port))| {
                values[src]
                    .iter()
                    .find(|v| v.name.as_str() == src_port.as_str())
                    .map(|v| NamedValue::new(port, v.value.clone()))
            })
            .collect();
        (self.found.emit)(Event::NodeStarted { node: n.id.clone(), node_type: n.node_type.descriptor.id.to_string() });
        inputs
    }

    fn ended(&mut self, k: usize, ending: Ending<Vec<NamedValue>>) {
        let i = self.to_run[k];
        let plan = self.found.plan;
        let id = plan.nodes[i].id.clone();
        let emit = self.found.emit;
        let status = match ending {
            Ending::Done { output, seconds } => {
                let outputs = Arc::new(output);
                lock(self.cache).insert(self.keys[i], outputs.clone());
                self.found.values.insert(i, outputs);
                emit(Event::NodeFinished { node: id.clone(), seconds });
                NodeStatus::Ran { seconds }
            }
            Ending::Failed { error } => {
                emit(Event::NodeFailed { node: id.clone(), error: error.to_string() });
                NodeStatus::Failed { error }
            }
            Ending::Skipped(why) => {
                let because = match why {
                    Skip::InputFailed(j) => format!("input node '{}' failed", plan.nodes[self.to_run[j]].id),
                    Skip::Cancelled => "run cancelled".to_string(),
                    Skip::NotReached => "not reached".to_string(),
                };
                emit(Event::NodeSkipped { node: id.clone(), because: because.clone() });
                NodeStatus::Skipped { because }
            }
        };
        self.found.status.insert(id, status);
    }
}

/// The host services one running node sees.
struct Services<'a> {
    node: &'a str,
    events: Option<&'a Sender<Event>>,
    cancel: &'a CancelToken,
    models: &'a Mutex<HashMap<String, ModelRef>>,
    /// While models are re-created for a disk hit: every model the node gets from or puts in the shared cache.
    captured: Option<&'a Mutex<Vec<(String, ModelRef)>>>,
}

impl HostServices for Services<'_> {
    fn progress(&self, done: u64, total: u64, message: RStr<'_>) {
        if let Some(tx) = self.events {
            let _ = tx.send(Event::NodeProgress { node: self.node.into(), done, total, message: message.into() });
        }
    }
    fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
    fn log(&self, message: RStr<'_>) {
        if let Some(tx) = self.events {
            let _ = tx.send(Event::NodeLog { node: self.node.into(), message: message.into() });
        }
    }
    fn cached_model(&self, key: RStr<'_>) -> ROption<ModelRef> {
        match lock(self.models).get(key.as_str()) {
            Some(m) => {
                if let Some(c) = self.captured {
                    lock(c).push((key.to_string(), m.clone()));
                }
                RSome(m.clone())
            }
            None => RNone,
        }
    }
    fn cache_model(&self, key: RStr<'_>, model: ModelRef) {
        if let Some(c) = self.captured {
            lock(c).push((key.to_string(), model.clone()));
        }
        lock(self.models).insert(key.into(), model);
    }
}
