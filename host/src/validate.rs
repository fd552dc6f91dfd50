//! Validation: checks a whole graph against the loaded node types before anything runs, and turns it into a
//! [`Plan`]. Every problem is reported at once, each naming its node and port or parameter. Preset nodes are
//! expanded first ([`crate::preset`]), so the plan holds plugin nodes only.

use crate::graph::{split_endpoint, Graph};
use crate::plugins::{NodeType, Registry};
use crate::preset::{self, PresetSearch};
use std::collections::{BTreeMap, HashMap, HashSet};
use subspace_sdk::{port, NamedValue, ParamKind, ParamSpec, Value};

/// What kind of problem (stable for tests and for a UI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    DuplicateId,
    UnknownNodeType,
    VersionMismatch,
    UnknownParam,
    BadParam,
    BadLink,
    DanglingLink,
    InputLinkedTwice,
    TypeMismatch,
    MissingInput,
    Cycle,
    NothingRequested,
    UnknownOutput,
    /// A `preset:NAME` node whose file is not found.
    UnknownPreset,
    /// Presets that include each other.
    PresetCycle,
    /// A preset file that cannot be read, or whose exposed parameters or ports are declared wrongly.
    BadPreset,
    /// A node whose inputs come from two latent spaces (z, W, W+), or from another space than its `space`.
    SpaceMismatch,
    /// A path a needed node reads names no file or folder ([`crate::paths`]).
    MissingFile,
}

/// One validation error.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationError {
    pub problem: Problem,
    pub node: Option<String>,
    /// Port or parameter name.
    pub location: Option<String>,
    pub message: String,
}

impl std::fmt::Display for ValidationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.node, &self.location) {
            (Some(n), Some(l)) => write!(f, "node '{n}', '{l}': {}", self.message),
            (Some(n), None) => write!(f, "node '{n}': {}", self.message),
            _ => write!(f, "{}", self.message),
        }
    }
}

/// A validated graph: resolved node types, typed parameters with defaults filled in, inputs wired by index.
#[derive(Clone)]
pub struct Plan {
    pub nodes: Vec<PlanNode>,
    /// Requested outputs: node index and port (None = all outputs).
    pub requested: Vec<(usize, Option<String>)>,
    /// Outputs of preset nodes as the graph names them (`fit.mixture`) -> the inner node index and port.
    pub aliases: BTreeMap<String, (usize, String)>,
}

#[derive(Clone)]
pub struct PlanNode {
    pub id: String,
    pub node_type: NodeType,
    /// Every declared parameter, in declaration order.
    pub params: Vec<NamedValue>,
    /// input port -> (source node index, source port)
    pub inputs: BTreeMap<String, (usize, String)>,
}

impl Plan {
    pub fn index(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// The name the graph gives output `port` of plan node `id` when it is a preset node's output (`fit.mixture`
    /// for `fit/gmm`'s `mixture`).
    pub fn outer_name(&self, id: &str, port: &str) -> Option<&str> {
        let i = self.index(id)?;
        self.aliases.iter().find(|(_, (j, p))| *j == i && p == port).map(|(name, _)| name.as_str())
    }

    /// Nodes the requested outputs need, in dependency order (each after its inputs).
    pub fn needed_order(&self) -> Vec<usize> {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        fn visit(plan: &Plan, i: usize, seen: &mut HashSet<usize>, order: &mut Vec<usize>) {
            if !seen.insert(i) {
                return;
            }
            for (src, _) in plan.nodes[i].inputs.values() {
                visit(plan, *src, seen, order);
            }
            order.push(i);
        }
        for (i, _) in &self.requested {
            visit(self, *i, &mut seen, &mut order);
        }
        order
    }
}

/// True when a value of port type `out` may feed an input of type `input`. A type qualified with a latent space
/// (`latents/w`) is a subtype of its base: it fits the base and its own space, never another space.
pub fn compatible(out: &str, input: &str) -> bool {
    let ((out, out_space), (input, in_space)) = (port::split_space(out), port::split_space(input));
    if matches!((out_space, in_space), (Some(a), Some(b)) if a != b) {
        return false;
    }
    out == input
        || input == port::ANY
        || (input == port::TENSOR && [port::LATENTS, port::IMAGES, port::LABELS].contains(&out))
}

/// Where a value's latent space was decided, for messages: the space and the output or parameter that set it.
struct Spaced {
    space: String,
    from: String,
}

/// Latent spaces through the graph (no cycles): a node with a `space` parameter makes its space-carrying outputs
/// ([`port::space::CARRIERS`]) in that space and takes only inputs of it; any other node passes on the one space of
/// its inputs. A port type's own qualifier (`latents/w`) wins over both. Each input from another space is an error
/// naming the node, the port and both origins.
fn check_spaces(nodes: &[Option<PlanNode>]) -> Vec<ValidationError> {
    fn visit(i: usize, nodes: &[Option<PlanNode>], seen: &mut HashSet<usize>, order: &mut Vec<usize>) {
        if !seen.insert(i) {
            return;
        }
        if let Some(n) = &nodes[i] {
            for (src, _) in n.inputs.values() {
                visit(*src, nodes, seen, order);
            }
        }
        order.push(i);
    }
    let (mut order, mut seen) = (Vec::new(), HashSet::new());
    for i in 0..nodes.len() {
        visit(i, nodes, &mut seen, &mut order);
    }
    let carrier = |ty: &str| {
        let (base, q) = port::split_space(ty);
        q.is_some() || port::space::CARRIERS.contains(&base)
    };
    let name = |s: &str| match s {
        port::space::Z => "z",
        port::space::W => "W",
        _ => "W+",
    };
    let mut outputs: HashMap<(usize, &str), Spaced> = HashMap::new();
    let mut errors = Vec::new();
    for i in order {
        let Some(n) = &nodes[i] else { continue };
        let d = &n.node_type.descriptor;
        let own = n.params.iter().find_map(|p| {
            let is_choice = d.find_param(p.name.as_str()).is_some_and(|s| matches!(s.kind, ParamKind::Choice { .. }));
            match &p.value {
                Value::Text(t) if p.name.as_str() == port::SPACE_PARAM && is_choice => port::space::ALL
                    .contains(&t.as_str())
                    .then(|| Spaced { space: t.to_string(), from: format!("its parameter {}", port::SPACE_PARAM) }),
                _ => None,
            }
        });
        let from_param = own.is_some();
        let mut node_space = own;
        let mut mixed = false;
        for (input, (src, src_port)) in &n.inputs {
            let Some(spec) = d.find_input(input) else { continue };
            if !carrier(spec.ty.as_str()) {
                continue;
            }
            let Some(got) = outputs.get(&(*src, src_port.as_str())) else { continue };
            // The port's own qualifier, else the node's space so far.
            let wanted = match port::split_space(spec.ty.as_str()).1 {
                Some(q) => Some(Spaced { space: q.to_string(), from: format!("its type {}", spec.ty) }),
                None => node_space.as_ref().map(|s| Spaced { space: s.space.clone(), from: s.from.clone() }),
            };
            match wanted {
                Some(w) if w.space != got.space => {
                    mixed = true;
                    errors.push(ValidationError {
                        problem: Problem::SpaceMismatch,
                        node: Some(n.id.clone()),
                        location: Some(input.clone()),
                        message: format!(
                        "input '{input}' is in latent space {} (from {}) but this node works in {} (from {}): link \
                         codes, fits and generators of one latent space",
                        name(&got.space),
                        got.from,
                        name(&w.space),
                        w.from
                    ),
                    })
                }
                Some(_) => {}
                None => node_space = Some(Spaced { space: got.space.clone(), from: got.from.clone() }),
            }
        }
        for out in d.outputs.iter() {
            if !carrier(out.ty.as_str()) {
                continue;
            }
            let space = match port::split_space(out.ty.as_str()).1 {
                Some(q) => Some(q.to_string()),
                // What a node makes from two spaces is in none: one error, not one per node below it.
                None if mixed && !from_param => None,
                None => node_space.as_ref().map(|s| s.space.clone()),
            };
            if let Some(space) = space {
                outputs.insert((i, out.name.as_str()), Spaced { space, from: format!("{}.{}", n.id, out.name) });
            }
        }
    }
    errors
}

/// Converts a JSON parameter value to the parameter's kind and checks its range.
pub fn param_value(spec: &ParamSpec, json: &serde_json::Value) -> Result<Value, String> {
    let name = spec.name.as_str();
    let v = match (&spec.kind, json) {
        (ParamKind::Float { .. }, serde_json::Value::Number(n)) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        (ParamKind::Int { .. }, serde_json::Value::Number(n)) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => return Err(format!("parameter '{name}' expects an integer, got {n}")),
        },
        (ParamKind::Bool, serde_json::Value::Bool(b)) => Value::Bool(*b),
        (ParamKind::Text | ParamKind::Path | ParamKind::Choice { .. }, serde_json::Value::String(s)) => {
            Value::Text(s.as_str().into())
        }
        (kind, other) => return Err(format!("parameter '{name}' expects {}, got {other}", kind.type_name())),
    };
    spec.check(&v)?;
    Ok(v)
}

/// Validates `graph` against `registry`; preset nodes are looked up in [`PresetSearch::standard`]
/// (`examples/presets` under the working directory).
pub fn validate(graph: &Graph, registry: &Registry) -> Result<Plan, Vec<ValidationError>> {
    validate_with(graph, registry, &PresetSearch::standard())
}

/// Validates `graph` against `registry`, looking up `preset:NAME` nodes with `presets`. Paths its nodes read are
/// resolved against the graph file's folder (`presets.near`; the working directory without one) and must exist
/// ([`crate::paths`]).
pub fn validate_with(graph: &Graph, registry: &Registry, presets: &PresetSearch) -> Result<Plan, Vec<ValidationError>> {
    crate::paths::anchor_plan(validate_graph(graph, registry, presets)?, presets.near.as_deref())
}

/// [`validate_with`] before paths are resolved.
fn validate_graph(graph: &Graph, registry: &Registry, presets: &PresetSearch) -> Result<Plan, Vec<ValidationError>> {
    if !graph.uses_presets() {
        return validate_flat(graph, registry);
    }
    let flat = preset::expand(graph, registry, presets);
    let mut errors = flat.errors.clone();
    match validate_flat(&flat.graph, registry) {
        Ok(mut plan) if errors.is_empty() => {
            let mut aliases = BTreeMap::new();
            for (name, (id, port)) in &flat.aliases {
                if let Some(i) = plan.index(id) {
                    aliases.insert(name.clone(), (i, port.clone()));
                }
            }
            plan.aliases = aliases;
            Ok(plan)
        }
        Ok(_) => Err(errors),
        Err(more) => {
            for e in more {
                // Requests of a broken preset node were dropped: "nothing requested" would mislead.
                if e.problem == Problem::NothingRequested && !graph.outputs.is_empty() {
                    continue;
                }
                let e = flat.name_outer(e);
                if !errors.contains(&e) {
                    errors.push(e);
                }
            }
            Err(errors)
        }
    }
}

/// Validates a graph of plugin nodes only.
fn validate_flat(graph: &Graph, registry: &Registry) -> Result<Plan, Vec<ValidationError>> {
    let mut errors = Vec::new();
    let err = |problem, node: Option<&str>, location: Option<&str>, message: String| ValidationError {
        problem,
        node: node.map(String::from),
        location: location.map(String::from),
        message,
    };

    // Nodes: ids, types, versions, parameters.
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut nodes: Vec<Option<PlanNode>> = Vec::new();
    for gn in &graph.nodes {
        if index.contains_key(gn.id.as_str()) {
            errors.push(err(Problem::DuplicateId, Some(&gn.id), None, format!("duplicate node id '{}'", gn.id)));
            continue;
        }
        index.insert(&gn.id, nodes.len());
        let Some(nt) = registry.node(&gn.node_type) else {
            let known: Vec<&String> = registry.nodes.keys().collect();
            let wanted = gn.version.as_deref().map(|v| format!(" (the graph wants {v})")).unwrap_or_default();
            errors.push(err(
                Problem::UnknownNodeType,
                Some(&gn.id),
                None,
                format!(
                    "unknown node type '{}'{wanted}: no loaded plugin provides it; load the plugin that does \
                     (--plugins DIR, `subspace plugins` lists what loaded) or replace the node \
                     (loaded types: {known:?})",
                    gn.node_type
                ),
            ));
            nodes.push(None);
            continue;
        };
        let d = &nt.descriptor;
        if let Some(req) = &gn.version {
            match (semver::VersionReq::parse(req), semver::Version::parse(d.version.as_str())) {
                (Ok(r), Ok(v)) if r.matches(&v) => {}
                (Err(e), _) => errors.push(err(
                    Problem::VersionMismatch,
                    Some(&gn.id),
                    None,
                    format!("bad version requirement '{req}': {e}"),
                )),
                _ => errors.push(err(
                    Problem::VersionMismatch,
                    Some(&gn.id),
                    None,
                    format!(
                        "'{}' requires version {req}, loaded version is {}: load a plugin that provides {req}, or \
                         check the node's parameters and links against `subspace nodes` and then record the loaded \
                         version (\"version\": \"^{}\")",
                        gn.node_type,
                        d.version,
                        d.version.as_str().split('.').next().unwrap_or("1")
                    ),
                )),
            }
        }
        for name in gn.params.keys() {
            if d.find_param(name).is_none() {
                let known: Vec<&str> = d.params.iter().map(|p| p.name.as_str()).collect();
                errors.push(err(
                    Problem::UnknownParam,
                    Some(&gn.id),
                    Some(name),
                    format!("'{}' has no parameter '{name}' (it has {known:?})", gn.node_type),
                ));
            }
        }
        let mut params = Vec::new();
        for spec in d.params.iter() {
            let value = match gn.params.get(spec.name.as_str()) {
                Some(json) => match param_value(spec, json) {
                    Ok(v) => v,
                    Err(m) => {
                        errors.push(err(Problem::BadParam, Some(&gn.id), Some(spec.name.as_str()), m));
                        spec.default.clone()
                    }
                },
                None => spec.default.clone(),
            };
            params.push(NamedValue::new(spec.name.as_str(), value));
        }
        nodes.push(Some(PlanNode { id: gn.id.clone(), node_type: nt.clone(), params, inputs: BTreeMap::new() }));
    }

    // Links: endpoints exist, types agree, one link per input.
    for link in &graph.links {
        let (Some((fnode, fport)), Some((tnode, tport))) = (split_endpoint(&link.from), split_endpoint(&link.to))
        else {
            errors.push(err(
                Problem::BadLink,
                None,
                None,
                format!("link {} -> {}: endpoints must be written node.port", link.from, link.to),
            ));
            continue;
        };
        let (Some(&fi), Some(&ti)) = (index.get(fnode), index.get(tnode)) else {
            let missing = if index.contains_key(fnode) { tnode } else { fnode };
            errors.push(err(
                Problem::DanglingLink,
                Some(missing),
                None,
                format!("link {} -> {}: no node '{missing}'", link.from, link.to),
            ));
            continue;
        };
        let (Some(src), Some(dst)) = (&nodes[fi], &nodes[ti]) else { continue };
        let Some(out) = src.node_type.descriptor.find_output(fport) else {
            errors.push(err(
                Problem::DanglingLink,
                Some(fnode),
                Some(fport),
                format!("link {} -> {}: '{}' has no output '{fport}'", link.from, link.to, src.node_type.descriptor.id),
            ));
            continue;
        };
        let Some(inp) = dst.node_type.descriptor.find_input(tport) else {
            errors.push(err(
                Problem::DanglingLink,
                Some(tnode),
                Some(tport),
                format!("link {} -> {}: '{}' has no input '{tport}'", link.from, link.to, dst.node_type.descriptor.id),
            ));
            continue;
        };
        if !compatible(out.ty.as_str(), inp.ty.as_str()) {
            errors.push(err(
                Problem::TypeMismatch,
                Some(tnode),
                Some(tport),
                format!(
                    "link {} -> {}: output type '{}' does not fit input type '{}'",
                    link.from, link.to, out.ty, inp.ty
                ),
            ));
            continue;
        }
        if dst.inputs.contains_key(tport) {
            errors.push(err(
                Problem::InputLinkedTwice,
                Some(tnode),
                Some(tport),
                format!("input '{tport}' has more than one link"),
            ));
            continue;
        }
        if let Some(dst) = nodes[ti].as_mut() {
            dst.inputs.insert(tport.to_string(), (fi, fport.to_string()));
        }
    }

    for n in nodes.iter().flatten() {
        for p in n.node_type.descriptor.inputs.iter() {
            if !p.optional && !n.inputs.contains_key(p.name.as_str()) {
                errors.push(err(
                    Problem::MissingInput,
                    Some(&n.id),
                    Some(p.name.as_str()),
                    format!("required input '{}' ({}) is not connected", p.name, p.ty),
                ));
            }
        }
    }

    // Cycles (depth-first search, colouring).
    let mut state = vec![0u8; nodes.len()];
    fn dfs(i: usize, nodes: &[Option<PlanNode>], state: &mut [u8], cycle: &mut Option<usize>) {
        state[i] = 1;
        if let Some(n) = &nodes[i] {
            for (src, _) in n.inputs.values() {
                match state[*src] {
                    0 => dfs(*src, nodes, state, cycle),
                    1 => *cycle = cycle.or(Some(*src)),
                    _ => {}
                }
            }
        }
        state[i] = 2;
    }
    let mut cycle = None;
    for i in 0..nodes.len() {
        if state[i] == 0 {
            dfs(i, &nodes, &mut state, &mut cycle);
        }
    }
    if let Some(i) = cycle {
        let id = graph.nodes.iter().find(|g| index.get(g.id.as_str()) == Some(&i)).map(|g| g.id.as_str());
        errors.push(err(Problem::Cycle, id, None, "the graph has a cycle through this node".into()));
    } else {
        errors.extend(check_spaces(&nodes));
    }

    // Requested outputs.
    let mut requested = Vec::new();
    if graph.outputs.is_empty() {
        errors.push(err(
            Problem::NothingRequested,
            None,
            None,
            "nothing requested: list node ids or node.port in \"outputs\"".into(),
        ));
    }
    for o in &graph.outputs {
        let (node, port) = match index.get(o.as_str()) {
            Some(_) => (o.as_str(), None),
            None => match split_endpoint(o) {
                Some((n, p)) => (n, Some(p)),
                None => (o.as_str(), None),
            },
        };
        let Some(&i) = index.get(node) else {
            errors.push(err(
                Problem::UnknownOutput,
                Some(node),
                None,
                format!("requested output '{o}': no node '{node}'"),
            ));
            continue;
        };
        if let (Some(p), Some(n)) = (port, &nodes[i]) {
            if n.node_type.descriptor.find_output(p).is_none() {
                errors.push(err(
                    Problem::UnknownOutput,
                    Some(node),
                    Some(p),
                    format!("requested output '{o}': '{}' has no output '{p}'", n.node_type.descriptor.id),
                ));
                continue;
            }
        }
        requested.push((i, port.map(String::from)));
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    // A node is None only after an error was recorded for it, so with no errors every node is here.
    let Some(nodes) = nodes.into_iter().collect::<Option<Vec<PlanNode>>>() else {
        return Err(vec![err(Problem::BadParam, None, None, "a node could not be planned".to_string())]);
    };
    Ok(Plan { nodes, requested, aliases: BTreeMap::new() })
}
