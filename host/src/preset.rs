//! Presets: graph files with exposed parameters and ports (format in docs/GRAPH_FORMAT.md). A preset runs on its
//! own (`subspace run PRESET --param name=value`) or as one node of another graph (`"type": "preset:NAME"`).
//!
//! A preset node is expanded into the outer graph at validation: its inner nodes join the plan with their ids
//! prefixed by the preset node's (`fit/sample`), its ports become links to and from them. Cache keys never hold
//! node ids, so the same preset used twice, or run again, re-uses its results. Presets are looked up in the
//! folder of the graph that uses them, then in the search folders ([`PresetSearch`]).

use crate::graph::{split_endpoint, ExposedParam, Graph, GraphNode, Link, PRESET_PREFIX};
use crate::plugins::Registry;
use crate::validate::{param_value, Problem, ValidationError};
use abi_stable::std_types::{RString, RVec};
use serde_json::{json, Value as Json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use subspace_sdk::{ParamKind, ParamSpec};

/// Where presets are found when no folder is given (relative to the working directory).
pub const DEFAULT_DIR: &str = "examples/presets";

/// Presets nested deeper than this are refused (a cycle the file names did not reveal, e.g. through links).
const MAX_DEPTH: usize = 16;

/// Where `preset:NAME` nodes are looked up: `near` first (the folder of the graph that uses them), then `dirs`.
#[derive(Debug, Clone, Default)]
pub struct PresetSearch {
    /// The graph file being validated, so that a preset that includes it is refused as a cycle.
    pub file: Option<PathBuf>,
    pub near: Option<PathBuf>,
    pub dirs: Vec<PathBuf>,
}

impl PresetSearch {
    /// Search only `dirs`.
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        PresetSearch { file: None, near: None, dirs }
    }

    /// The default: [`DEFAULT_DIR`].
    pub fn standard() -> Self {
        Self::new(vec![PathBuf::from(DEFAULT_DIR)])
    }

    /// For the graph file `file`: its own folder first, then `dirs`.
    pub fn for_file(file: &Path, dirs: Vec<PathBuf>) -> Self {
        let near = file.parent().map(|p| if p.as_os_str().is_empty() { PathBuf::from(".") } else { p.to_path_buf() });
        PresetSearch { file: Some(file.to_path_buf()), near, dirs }
    }

    /// The file of preset `name`; the error says where it looked.
    pub fn find(&self, name: &str) -> Result<PathBuf, String> {
        let name = name.strip_suffix(".json").unwrap_or(name);
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid {
            return Err(format!("'{name}' is not a preset name (letters, digits, '-', '_' and '.', no folders)"));
        }
        let folders: Vec<&PathBuf> = self.near.iter().chain(self.dirs.iter()).collect();
        for dir in &folders {
            let p = dir.join(format!("{name}.json"));
            if p.is_file() {
                return Ok(p);
            }
        }
        let looked: Vec<String> = folders.iter().map(|d| d.display().to_string()).collect();
        Err(format!(
            "no preset '{name}' ({name}.json not found in {})",
            if looked.is_empty() { "no folder".into() } else { looked.join(", ") }
        ))
    }

    /// The search inside the preset at `file`: its own folder first.
    fn inside(&self, file: &Path) -> Self {
        Self::for_file(file, self.dirs.clone())
    }
}

/// The graph file `arg` names: the file itself when it exists, else a preset of that name in `dirs`.
pub fn resolve(arg: &Path, dirs: &[PathBuf]) -> anyhow::Result<PathBuf> {
    if arg.is_file() {
        return Ok(arg.to_path_buf());
    }
    let name = arg.to_string_lossy();
    if arg.components().count() == 1 && !name.is_empty() {
        if let Ok(p) = PresetSearch::new(dirs.to_vec()).find(&name) {
            return Ok(p);
        }
    }
    let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    anyhow::bail!("{}: no such graph file, nor a preset of that name in {}", arg.display(), looked.join(", "))
}

/// What the values of a parameter may be, for messages: "a float in [0, 4]", "one of [\"a\", \"b\"]".
pub fn allowed(spec: &ParamSpec) -> String {
    match &spec.kind {
        ParamKind::Float { min, max } => format!("a float in [{min}, {max}]"),
        ParamKind::Int { min, max } => format!("an integer in [{min}, {max}]"),
        ParamKind::Bool => "true or false".into(),
        ParamKind::Text => "text".into(),
        ParamKind::Path => "a path".into(),
        ParamKind::Choice { choices } => format!("one of {:?}", choices.iter().map(|c| c.as_str()).collect::<Vec<_>>()),
    }
}

/// A parameter specification as JSON, the shape `subspace nodes --json` uses.
pub fn param_json(spec: &ParamSpec) -> Json {
    let default = spec.default.to_json().unwrap_or_else(|| Json::String(spec.default.summary()));
    let mut j = json!({"name": spec.name.as_str(), "kind": spec.kind.type_name(), "default": default,
        "description": spec.description.as_str()});
    match &spec.kind {
        ParamKind::Float { min, max } => {
            j["min"] = (*min).into();
            j["max"] = (*max).into();
        }
        ParamKind::Int { min, max } => {
            j["min"] = (*min).into();
            j["max"] = (*max).into();
        }
        ParamKind::Choice { choices } => j["choices"] = choices.iter().map(|c| c.as_str()).collect::<Vec<_>>().into(),
        _ => {}
    }
    j
}

/// The specification of one `node.param` target of graph `g`: a plugin node's parameter, or a nested preset
/// node's exposed parameter.
fn target_spec(
    g: &Graph,
    target: &str,
    registry: &Registry,
    search: &PresetSearch,
    depth: usize,
) -> Result<ParamSpec, String> {
    let (node, param) =
        split_endpoint(target).ok_or_else(|| format!("target '{target}' must be written node.param"))?;
    let n = g.node(node).ok_or_else(|| format!("target '{target}': the graph has no node '{node}'"))?;
    if let Some(name) = n.node_type.strip_prefix(PRESET_PREFIX) {
        if depth >= MAX_DEPTH {
            return Err(format!(
                "target '{target}': presets nested more than {MAX_DEPTH} deep (do they include each other?)"
            ));
        }
        let path = search.find(name).map_err(|e| format!("target '{target}': {e}"))?;
        let inner = Graph::load(&path).map_err(|e| format!("target '{target}': {e:#}"))?;
        let p = inner.params.iter().find(|p| p.name == param).ok_or_else(|| {
            format!("target '{target}': preset '{name}' has no parameter '{param}' (its parameters: {})", names(&inner))
        })?;
        return exposed_spec(&inner, p, registry, &search.inside(&path), depth + 1);
    }
    let nt =
        registry.node(&n.node_type).ok_or_else(|| format!("target '{target}': unknown node type '{}'", n.node_type))?;
    let spec = nt.descriptor.find_param(param).ok_or_else(|| {
        let known: Vec<&str> = nt.descriptor.params.iter().map(|p| p.name.as_str()).collect();
        format!("target '{target}': '{}' has no parameter '{param}' (it has {known:?})", n.node_type)
    })?;
    Ok(spec.clone())
}

/// The names of `g`'s exposed parameters, for messages.
fn names(g: &Graph) -> String {
    if g.params.is_empty() {
        return "none".into();
    }
    g.params.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// An exposed parameter as a node parameter: kind, range and description of its first target, narrowed by the
/// declared `min`, `max` and `choices`; the default is the value the first target holds in `g`.
pub fn exposed_spec(
    g: &Graph,
    p: &ExposedParam,
    registry: &Registry,
    search: &PresetSearch,
    depth: usize,
) -> Result<ParamSpec, String> {
    let first = p.target.0.first().ok_or("no target")?;
    let mut spec = target_spec(g, first, registry, search, depth)?;
    for t in &p.target.0[1..] {
        let other = target_spec(g, t, registry, search, depth)?;
        if other.kind.type_name() != spec.kind.type_name() {
            return Err(format!(
                "targets '{first}' ({}) and '{t}' ({}) are of different kinds",
                spec.kind.type_name(),
                other.kind.type_name()
            ));
        }
    }
    spec.kind = match (spec.kind, p.min, p.max, &p.choices) {
        (ParamKind::Float { min, max }, lo, hi, None) => {
            let (lo, hi) = (lo.map_or(min, |l| l.max(min)), hi.map_or(max, |h| h.min(max)));
            if lo > hi {
                return Err(format!("min/max leave nothing of the target's range [{min}, {max}]"));
            }
            ParamKind::Float { min: lo, max: hi }
        }
        (ParamKind::Int { min, max }, lo, hi, None) => {
            let (lo, hi) =
                (lo.map_or(min, |l| (l.ceil() as i64).max(min)), hi.map_or(max, |h| (h.floor() as i64).min(max)));
            if lo > hi {
                return Err(format!("min/max leave nothing of the target's range [{min}, {max}]"));
            }
            ParamKind::Int { min: lo, max: hi }
        }
        (kind @ (ParamKind::Text | ParamKind::Path | ParamKind::Choice { .. }), None, None, Some(choices)) => {
            if choices.is_empty() {
                return Err("an empty list of choices".into());
            }
            if let ParamKind::Choice { choices: theirs } = &kind {
                if let Some(c) = choices.iter().find(|c| !theirs.iter().any(|t| t.as_str() == c.as_str())) {
                    return Err(format!(
                        "choice '{c}' is not one of the target's {:?}",
                        theirs.iter().map(|t| t.as_str()).collect::<Vec<_>>()
                    ));
                }
            }
            ParamKind::Choice { choices: choices.iter().map(|c| RString::from(c.as_str())).collect::<RVec<_>>() }
        }
        (kind, None, None, None) => kind,
        (kind, ..) => {
            return Err(format!("min/max apply to numbers and choices to text; the target is {}", kind.type_name()))
        }
    };
    spec.name = p.name.as_str().into();
    if !p.description.is_empty() {
        spec.description = p.description.as_str().into();
    }
    let (node, param) = split_endpoint(first).ok_or("bad target")?;
    if let Some(current) = g.node(node).and_then(|n| n.params.get(param)) {
        spec.default = param_value(&spec, current).map_err(|e| format!("its value in the file ('{first}'): {e}"))?;
    } else if let Err(e) = spec.check(&spec.default) {
        return Err(format!("the target's default does not fit: {e}"));
    }
    Ok(spec)
}

/// Whether target `node.param` of `g` is, through any nested presets, a parameter its node reads as a path.
fn target_reads_path(g: &Graph, target: &str, registry: &Registry, search: &PresetSearch, depth: usize) -> bool {
    let Some((node, param)) = split_endpoint(target) else { return false };
    let Some(n) = g.node(node) else { return false };
    let Some(name) = n.node_type.strip_prefix(PRESET_PREFIX) else {
        return registry.node(&n.node_type).is_some_and(|nt| crate::paths::reads_path(nt, param));
    };
    let (Ok(path), true) = (search.find(name), depth < MAX_DEPTH) else { return false };
    let Ok(inner) = Graph::load(&path) else { return false };
    let Some(p) = inner.params.iter().find(|p| p.name == param) else { return false };
    p.target.0.iter().any(|t| target_reads_path(&inner, t, registry, &search.inside(&path), depth + 1))
}

/// Resolves the input paths of `g`'s plugin nodes against `g`'s folder (`base`), as [`crate::paths::anchor`] says.
fn anchor_nodes(g: &mut Graph, base: Option<&Path>, registry: &Registry) {
    for n in &mut g.nodes {
        let Some(nt) = registry.node(&n.node_type) else { continue };
        for (param, value) in n.params.iter_mut() {
            if let (Json::String(s), true) = (&*value, crate::paths::reads_path(nt, param)) {
                if let Some(abs) = crate::paths::anchor(s, base) {
                    *value = Json::String(abs);
                }
            }
        }
    }
}

/// Checks `value` against exposed parameter `p` of `g` and writes it into every target; a target that reads a
/// path gets it resolved against `base`, the folder of the graph the value is written in (None: the working
/// directory).
fn assign_from(
    g: &mut Graph,
    p: &ExposedParam,
    value: &Json,
    registry: &Registry,
    search: &PresetSearch,
    depth: usize,
    base: Option<&Path>,
) -> Result<(), String> {
    let spec = exposed_spec(g, p, registry, search, depth)?;
    if let Err(e) = param_value(&spec, value) {
        // Range and choice messages already say what is allowed; a wrong kind does not.
        return Err(if e.contains("expects") { format!("{e} (allowed: {})", allowed(&spec)) } else { e });
    }
    for t in &p.target.0 {
        let (node, param) = split_endpoint(t).ok_or("bad target")?;
        let mut value = value.clone();
        if let Json::String(s) = &value {
            if target_reads_path(g, t, registry, search, depth) {
                if let Some(abs) = crate::paths::anchor(s, base) {
                    value = Json::String(abs);
                }
            }
        }
        if let Some(n) = g.nodes.iter_mut().find(|n| n.id == node) {
            n.params.insert(param.to_string(), value);
        }
    }
    Ok(())
}

/// Applies `--param name=value` (value read as JSON, else as text) to preset graph `g`. The error names the
/// parameter and its allowed values, or lists the parameters there are. A path it gives for a node to read is
/// read against the working directory, where it was typed.
pub fn set_param(g: &mut Graph, assignment: &str, registry: &Registry, search: &PresetSearch) -> Result<(), String> {
    let (name, value) =
        assignment.split_once('=').ok_or_else(|| format!("--param '{assignment}': expected name=value"))?;
    let Some(p) = g.params.iter().find(|p| p.name == name).cloned() else {
        return Err(if g.params.is_empty() {
            format!("--param {name}: this graph exposes no parameters (--set node.param=value sets any node's)")
        } else {
            format!("--param {name}: no parameter '{name}' (its parameters: {})", names(g))
        });
    };
    let value = serde_json::from_str(value).unwrap_or_else(|_| Json::String(value.to_string()));
    assign_from(g, &p, &value, registry, search, 0, None).map_err(|e| format!("--param {assignment}: {e}"))
}

/// After `--set node.param=value` was applied to `g`: a path the value gives for a node to read is read against
/// the working directory, where it was typed (as [`set_param`]'s).
pub fn anchor_set(g: &mut Graph, assignment: &str, registry: &Registry, search: &PresetSearch) {
    let Some((target, _)) = assignment.split_once('=') else { return };
    if !target_reads_path(g, target, registry, search, 0) {
        return;
    }
    let Some((node, param)) = split_endpoint(target) else { return };
    if let Some(v) = g.nodes.iter_mut().find(|n| n.id == node).and_then(|n| n.params.get_mut(param)) {
        if let Some(abs) = v.as_str().and_then(|s| crate::paths::anchor(s, None)) {
            *v = Json::String(abs);
        }
    }
}

/// How a preset node looks from outside, in the expanded graph's ids.
#[derive(Clone, Default)]
struct Face {
    name: String,
    inputs: BTreeMap<String, Vec<(String, String)>>,
    outputs: BTreeMap<String, (String, String)>,
    /// What requesting the whole node produces: the preset's own requested outputs and its output ports.
    requests: Vec<String>,
}

/// A graph with its preset nodes expanded: plugin nodes only, inner ids prefixed with their preset node's id.
pub struct Expanded {
    pub graph: Graph,
    /// Problems with presets (files, parameters, ports, cycles); validation adds the graph's own.
    pub errors: Vec<ValidationError>,
    /// Outputs of the graph's preset nodes as it names them (`fit.mixture`) -> inner node id and port.
    pub aliases: BTreeMap<String, (String, String)>,
    /// An inner input a preset input feeds -> that preset node and input (to name them in errors).
    fed: HashMap<(String, String), (String, String)>,
    /// An expanded link -> the link as written, where they differ.
    written: HashMap<(String, String), (String, String)>,
    /// Links with the depth of the graph that made them (a link from further out replaces a deeper one).
    links: Vec<(Link, usize)>,
}

/// Expands the preset nodes of `graph` (see the module documentation). Problems are collected, never fatal.
pub fn expand(graph: &Graph, registry: &Registry, search: &PresetSearch) -> Expanded {
    let mut x = Expanded::empty();
    let mut stack: Vec<PathBuf> = search.file.iter().map(|f| f.canonicalize().unwrap_or_else(|_| f.clone())).collect();
    let faces = x.level(graph, "", search, &mut stack, registry);
    for p in &graph.params {
        if let Err(m) = exposed_spec(graph, p, registry, search, 0) {
            x.errors.push(verr(
                Problem::BadPreset,
                None,
                Some(&p.name),
                format!("exposed parameter '{}': {m}", p.name),
            ));
        }
    }
    // The graph's own ports are checked here; they matter when another graph uses it.
    x.face(graph, "", "", &faces, registry, false);
    let (requests, aliases) = x.requests(graph, "", &faces);
    x.graph.outputs = requests;
    x.aliases = aliases;
    for (id, face) in faces.iter().filter_map(|(id, f)| Some((id, f.as_ref()?))) {
        for (port, endpoint) in &face.outputs {
            x.aliases.entry(format!("{id}.{port}")).or_insert_with(|| endpoint.clone());
        }
    }
    x.graph.links = std::mem::take(&mut x.links).into_iter().map(|(l, _)| l).collect();
    x
}

fn verr(problem: Problem, node: Option<&str>, location: Option<&str>, message: String) -> ValidationError {
    ValidationError { problem, node: node.map(String::from), location: location.map(String::from), message }
}

impl Expanded {
    fn empty() -> Self {
        Expanded {
            graph: Graph::new(),
            errors: vec![],
            aliases: BTreeMap::new(),
            fed: HashMap::new(),
            written: HashMap::new(),
            links: vec![],
        }
    }

    /// Rewrites a validation error of the expanded graph in the terms of the graph as written: a problem at an
    /// input a preset node's input feeds names that node and input; links read as written.
    pub fn name_outer(&self, mut e: ValidationError) -> ValidationError {
        for ((from, to), (wfrom, wto)) in &self.written {
            e.message = e.message.replace(&format!("link {from} -> {to}"), &format!("link {wfrom} -> {wto}"));
        }
        if let (Some(node), Some(port)) = (&e.node, &e.location) {
            if let Some((outer, input)) = self.fed.get(&(node.clone(), port.clone())) {
                let inner = node.strip_prefix(&format!("{outer}/")).unwrap_or(node);
                e.message = if e.problem == Problem::MissingInput {
                    format!("preset input '{input}' (it feeds '{inner}.{port}') is not connected")
                } else {
                    format!("preset input '{input}' (it feeds '{inner}.{port}'): {}", e.message)
                };
                e.node = Some(outer.clone());
                e.location = Some(input.clone());
            }
        }
        e
    }

    /// Adds the nodes and links of `g` at `prefix`, expanding its preset nodes; returns their faces by id (None
    /// for a preset node that could not be expanded: its links are dropped, its problem reported).
    fn level(
        &mut self,
        g: &Graph,
        prefix: &str,
        search: &PresetSearch,
        stack: &mut Vec<PathBuf>,
        registry: &Registry,
    ) -> HashMap<String, Option<Face>> {
        let mut faces: HashMap<String, Option<Face>> = HashMap::new();
        let mut ids = HashSet::new();
        for n in &g.nodes {
            let id = format!("{prefix}{}", n.id);
            let Some(name) = n.node_type.strip_prefix(PRESET_PREFIX) else {
                ids.insert(n.id.as_str());
                self.graph.nodes.push(GraphNode { id, ..n.clone() });
                continue;
            };
            if !ids.insert(n.id.as_str()) {
                self.errors.push(verr(Problem::DuplicateId, Some(&id), None, format!("duplicate node id '{}'", n.id)));
                continue;
            }
            let face = self.preset_node(n, name, &id, search, stack, registry);
            faces.insert(n.id.clone(), face);
        }
        let depth = stack.len();
        for l in &g.links {
            let Some(from) = self.source(&l.from, prefix, &faces) else { continue };
            let Some(to) = self.targets(&l.to, prefix, &faces) else { continue };
            for (to, via_preset) in to {
                let flat = Link { from: from.clone(), to };
                if via_preset {
                    // A link from further out replaces the preset's own link to that input.
                    self.links.retain(|(l, d)| !(l.to == flat.to && *d > depth));
                }
                if flat.from != format!("{prefix}{}", l.from) || flat.to != format!("{prefix}{}", l.to) {
                    self.written.insert((flat.from.clone(), flat.to.clone()), (l.from.clone(), l.to.clone()));
                }
                self.links.push((flat, depth));
            }
        }
        faces
    }

    /// The expanded `node.port` a link's source names.
    fn source(&mut self, endpoint: &str, prefix: &str, faces: &HashMap<String, Option<Face>>) -> Option<String> {
        let Some((node, port)) = split_endpoint(endpoint) else { return Some(format!("{prefix}{endpoint}")) };
        match faces.get(node) {
            None => Some(format!("{prefix}{endpoint}")),
            Some(None) => None,
            Some(Some(face)) => match face.outputs.get(port) {
                Some((n, p)) => Some(format!("{n}.{p}")),
                None => {
                    let known: Vec<&String> = face.outputs.keys().collect();
                    let id = format!("{prefix}{node}");
                    let msg = format!("preset '{}' has no output '{port}' (its outputs: {known:?})", face.name);
                    self.errors.push(verr(Problem::DanglingLink, Some(&id), Some(port), msg));
                    None
                }
            },
        }
    }

    /// The expanded inputs a link's target names, each with whether it goes through a preset node's input.
    fn targets(
        &mut self,
        endpoint: &str,
        prefix: &str,
        faces: &HashMap<String, Option<Face>>,
    ) -> Option<Vec<(String, bool)>> {
        let Some((node, port)) = split_endpoint(endpoint) else {
            return Some(vec![(format!("{prefix}{endpoint}"), false)]);
        };
        match faces.get(node) {
            None => Some(vec![(format!("{prefix}{endpoint}"), false)]),
            Some(None) => None,
            Some(Some(face)) => match face.inputs.get(port) {
                Some(list) => Some(list.iter().map(|(n, p)| (format!("{n}.{p}"), true)).collect()),
                None => {
                    let known: Vec<&String> = face.inputs.keys().collect();
                    let id = format!("{prefix}{node}");
                    let msg = format!("preset '{}' has no input '{port}' (its inputs: {known:?})", face.name);
                    self.errors.push(verr(Problem::DanglingLink, Some(&id), Some(port), msg));
                    None
                }
            },
        }
    }

    /// Expands preset node `n` (`preset:name`) as `id`.
    fn preset_node(
        &mut self,
        n: &GraphNode,
        name: &str,
        id: &str,
        search: &PresetSearch,
        stack: &mut Vec<PathBuf>,
        registry: &Registry,
    ) -> Option<Face> {
        if n.version.is_some() {
            let msg = "a preset node takes no \"version\" (its inner nodes record theirs)".to_string();
            self.errors.push(verr(Problem::BadPreset, Some(id), None, msg));
        }
        let path = match search.find(name) {
            Ok(p) => p,
            Err(m) => {
                self.errors.push(verr(Problem::UnknownPreset, Some(id), None, m));
                return None;
            }
        };
        let canonical = path.canonicalize().unwrap_or_else(|_| path.clone());
        if stack.contains(&canonical) || stack.len() >= MAX_DEPTH {
            let chain: Vec<String> = stack
                .iter()
                .chain([&canonical])
                .map(|p| p.file_stem().unwrap_or_default().to_string_lossy().into_owned())
                .collect();
            let msg = format!("presets include each other: {} (a preset cannot contain itself)", chain.join(" -> "));
            self.errors.push(verr(Problem::PresetCycle, Some(id), None, msg));
            return None;
        }
        let mut inner = match Graph::load(&path) {
            Ok(g) => g,
            Err(e) => {
                self.errors.push(verr(Problem::BadPreset, Some(id), None, format!("preset '{name}': {e:#}")));
                return None;
            }
        };
        let inner_search = search.inside(&path);
        // Paths the preset's own nodes read are written relative to its folder; the values given to it here,
        // relative to the folder of the graph using it.
        anchor_nodes(&mut inner, inner_search.near.as_deref(), registry);
        for (key, value) in &n.params {
            let Some(p) = inner.params.iter().find(|p| &p.name == key).cloned() else {
                let msg = format!("preset '{name}' has no parameter '{key}' (its parameters: {})", names(&inner));
                self.errors.push(verr(Problem::UnknownParam, Some(id), Some(key), msg));
                continue;
            };
            let outer = search.near.as_deref();
            if let Err(m) = assign_from(&mut inner, &p, value, registry, &inner_search, stack.len(), outer) {
                self.errors.push(verr(Problem::BadParam, Some(id), Some(key), format!("preset '{name}': {m}")));
            }
        }
        stack.push(canonical);
        let faces = self.level(&inner, &format!("{id}/"), &inner_search, stack, registry);
        for p in &inner.params {
            if n.params.contains_key(&p.name) {
                continue; // checked (or reported) when assigned
            }
            if let Err(m) = exposed_spec(&inner, p, registry, &inner_search, stack.len()) {
                let msg = format!("preset '{name}', exposed parameter '{}': {m}", p.name);
                self.errors.push(verr(Problem::BadPreset, Some(id), Some(&p.name), msg));
            }
        }
        let face = self.face(&inner, id, name, &faces, registry, true);
        stack.pop();
        Some(face)
    }

    /// The face of preset graph `g` expanded as `id`: its declared ports in expanded ids, checked.
    fn face(
        &mut self,
        g: &Graph,
        id: &str,
        name: &str,
        faces: &HashMap<String, Option<Face>>,
        registry: &Registry,
        record: bool,
    ) -> Face {
        let prefix = if id.is_empty() { String::new() } else { format!("{id}/") };
        let node = (!id.is_empty()).then_some(id);
        let what = if id.is_empty() { String::new() } else { format!("preset '{name}', ") };
        let mut face = Face { name: name.to_string(), ..Face::default() };
        for (port, targets) in &g.ports.inputs {
            let mut list = Vec::new();
            for t in &targets.0 {
                match resolve_port(g, t, &prefix, faces, registry, true) {
                    Ok(Some(found)) => list.extend(found),
                    Ok(None) => {}
                    Err(m) => {
                        let msg = format!("{what}input '{port}' -> '{t}': {m}");
                        self.errors.push(verr(Problem::BadPreset, node, Some(port), msg));
                    }
                }
            }
            if record {
                for (n, p) in &list {
                    self.fed.insert((n.clone(), p.clone()), (id.to_string(), port.clone()));
                }
            }
            face.inputs.insert(port.clone(), list);
        }
        for (port, t) in &g.ports.outputs {
            match resolve_port(g, t, &prefix, faces, registry, false) {
                Ok(Some(mut found)) => {
                    face.outputs.insert(port.clone(), found.remove(0));
                }
                Ok(None) => {}
                Err(m) => {
                    let msg = format!("{what}output '{port}' -> '{t}': {m}");
                    self.errors.push(verr(Problem::BadPreset, node, Some(port), msg));
                }
            }
        }
        if record {
            let (mut requests, _) = self.requests(g, &prefix, faces);
            for (n, p) in face.outputs.values() {
                requests.push(format!("{n}.{p}"));
            }
            let mut seen = HashSet::new();
            requests.retain(|r| seen.insert(r.clone()));
            face.requests = requests;
        }
        face
    }

    /// The expanded requests of `g`'s `outputs`, and the names of those that went through preset nodes.
    fn requests(
        &mut self,
        g: &Graph,
        prefix: &str,
        faces: &HashMap<String, Option<Face>>,
    ) -> (Vec<String>, BTreeMap<String, (String, String)>) {
        let mut out = Vec::new();
        let mut aliases = BTreeMap::new();
        for o in &g.outputs {
            if let Some(face) = faces.get(o.as_str()) {
                out.extend(face.iter().flat_map(|f| f.requests.clone()));
                continue;
            }
            let Some((node, port)) = split_endpoint(o) else {
                out.push(format!("{prefix}{o}"));
                continue;
            };
            match faces.get(node) {
                None => out.push(format!("{prefix}{o}")),
                Some(None) => {}
                Some(Some(face)) => match face.outputs.get(port) {
                    Some((n, p)) => {
                        out.push(format!("{n}.{p}"));
                        aliases.insert(format!("{prefix}{o}"), (n.clone(), p.clone()));
                    }
                    None => {
                        let known: Vec<&String> = face.outputs.keys().collect();
                        let msg = format!(
                            "requested output '{o}': preset '{}' has no output '{port}' (its outputs: {known:?})",
                            face.name
                        );
                        self.errors.push(verr(
                            Problem::UnknownOutput,
                            Some(&format!("{prefix}{node}")),
                            Some(port),
                            msg,
                        ));
                    }
                },
            }
        }
        let mut seen = HashSet::new();
        out.retain(|r| seen.insert(r.clone()));
        (out, aliases)
    }
}

/// The expanded input(s) (or output) an inner `node.port` of preset graph `g` stands for; None when it goes
/// through a preset node that could not be expanded (already reported).
fn resolve_port(
    g: &Graph,
    endpoint: &str,
    prefix: &str,
    faces: &HashMap<String, Option<Face>>,
    registry: &Registry,
    input: bool,
) -> Result<Option<Vec<(String, String)>>, String> {
    let (node, port) = split_endpoint(endpoint).ok_or("must be written node.port")?;
    let kind = if input { "input" } else { "output" };
    if let Some(face) = faces.get(node) {
        let Some(face) = face else { return Ok(None) };
        let found =
            if input { face.inputs.get(port).cloned() } else { face.outputs.get(port).map(|e| vec![e.clone()]) };
        return found.map(Some).ok_or_else(|| format!("preset '{}' has no {kind} '{port}'", face.name));
    }
    let n = g.node(node).ok_or_else(|| format!("no node '{node}'"))?;
    let Some(nt) = registry.node(&n.node_type) else { return Ok(None) }; // reported as an unknown type
    let d = &nt.descriptor;
    let exists = if input { d.find_input(port).is_some() } else { d.find_output(port).is_some() };
    if !exists {
        return Err(format!("'{}' has no {kind} '{port}'", n.node_type));
    }
    Ok(Some(vec![(format!("{prefix}{node}"), port.to_string())]))
}

/// A preset port as listed: name, type, and the inner `node.port`(s) it stands for.
#[derive(Debug, Clone, PartialEq)]
pub struct PortInfo {
    pub name: String,
    pub ty: String,
    pub inner: Vec<String>,
}

/// One preset as `subspace presets` lists it (and an editor shows it: a form, or a node's sockets and widgets).
#[derive(Debug, Clone)]
pub struct PresetInfo {
    /// The file name without `.json`: `preset:NAME` in another graph, or `subspace run NAME`.
    pub name: String,
    pub path: PathBuf,
    pub description: String,
    /// Each exposed parameter as a node parameter (kind, range or choices, default), with its targets.
    pub params: Vec<(ParamSpec, Vec<String>)>,
    pub inputs: Vec<PortInfo>,
    pub outputs: Vec<PortInfo>,
    /// What is wrong with the file or its declarations (the preset is still listed).
    pub problems: Vec<String>,
}

impl PresetInfo {
    /// As JSON: name, file, description, params (as `subspace nodes --json` writes them, plus `targets`), inputs
    /// and outputs (name, type, inner), problems.
    pub fn to_json(&self) -> Json {
        let params: Vec<Json> = self
            .params
            .iter()
            .map(|(spec, targets)| {
                let mut j = param_json(spec);
                j["targets"] = targets.clone().into();
                j
            })
            .collect();
        let ports = |list: &[PortInfo]| -> Vec<Json> {
            list.iter().map(|p| json!({"name": p.name, "type": p.ty, "inner": p.inner})).collect()
        };
        json!({"name": self.name, "type": format!("{PRESET_PREFIX}{}", self.name),
            "file": self.path.display().to_string(), "description": self.description, "params": params, "inputs": ports(&self.inputs),
            "outputs": ports(&self.outputs), "problems": self.problems})
    }
}

/// Describes the preset at `path`; `dirs` are searched for the presets it uses.
pub fn info(path: &Path, registry: &Registry, dirs: &[PathBuf]) -> PresetInfo {
    let name = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
    let mut info = PresetInfo {
        name: name.clone(),
        path: path.to_path_buf(),
        description: String::new(),
        params: vec![],
        inputs: vec![],
        outputs: vec![],
        problems: vec![],
    };
    let g = match Graph::load(path) {
        Ok(g) => g,
        Err(e) => {
            info.problems.push(format!("{e:#}"));
            return info;
        }
    };
    info.description = g.description.clone();
    let search = PresetSearch::for_file(path, dirs.to_vec());
    for p in &g.params {
        // A parameter that does not resolve is reported by the expansion below.
        if let Ok(spec) = exposed_spec(&g, p, registry, &search, 0) {
            info.params.push((spec, p.target.0.clone()));
        }
    }
    // Problems and port types: expand the preset as a node, then read the inner ports' types.
    let mut x = Expanded::empty();
    let mut stack = vec![];
    let node = GraphNode {
        id: name.clone(),
        node_type: format!("{PRESET_PREFIX}{name}"),
        version: None,
        params: Default::default(),
    };
    // Its own folder first, so that the file itself is found even where a search folder holds the same name.
    let face = x.preset_node(&node, &name, &name, &search, &mut stack, registry);
    info.problems.extend(x.errors.iter().map(|e| e.to_string()));
    let Some(face) = face else { return info };
    let ty = |(node, port): &(String, String), input: bool| -> String {
        let d = x.graph.node(node).and_then(|n| registry.node(&n.node_type)).map(|nt| &nt.descriptor);
        let p = d.and_then(|d| if input { d.find_input(port) } else { d.find_output(port) });
        p.map_or_else(|| "?".to_string(), |p| p.ty.to_string())
    };
    for (port, inner) in &g.ports.inputs {
        let types: Vec<String> = face.inputs.get(port).into_iter().flatten().map(|e| ty(e, true)).collect();
        // An input feeding several inner ports takes what all of them take: the first type is shown.
        let ty = types.first().cloned().unwrap_or_else(|| "?".into());
        info.inputs.push(PortInfo { name: port.clone(), ty, inner: inner.0.clone() });
    }
    for (port, inner) in &g.ports.outputs {
        let ty = face.outputs.get(port).map_or_else(|| "?".to_string(), |e| ty(e, false));
        info.outputs.push(PortInfo { name: port.clone(), ty, inner: vec![inner.clone()] });
    }
    info
}

/// Every preset (`*.json`) in `dirs`, by name; a name found in an earlier folder hides the same name later.
pub fn list(dirs: &[PathBuf], registry: &Registry) -> Vec<PresetInfo> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for dir in dirs {
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(dir).map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
        files.retain(|p| p.is_file() && p.extension().is_some_and(|e| e == "json"));
        files.sort();
        for f in files {
            let name = f.file_stem().unwrap_or_default().to_string_lossy().into_owned();
            if seen.insert(name) {
                out.push(info(&f, registry, dirs));
            }
        }
    }
    out
}
