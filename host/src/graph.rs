//! The graph document: what a user or an editor saves. Format documented in docs/GRAPH_FORMAT.md.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The format version this host reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// A node graph as saved in a `.json` file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Graph {
    pub version: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Parameters exposed to whoever runs or embeds this graph as a preset (`--param`, a preset node's params).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<ExposedParam>,
    /// The ports this graph shows when used as one node of another graph.
    #[serde(default, skip_serializing_if = "Ports::is_empty")]
    pub ports: Ports,
    #[serde(default)]
    pub nodes: Vec<GraphNode>,
    #[serde(default)]
    pub links: Vec<Link>,
    /// What to produce: `node` (all its outputs) or `node.port`.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Editor state (positions, groups, colours). The executor never reads it.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub editor: serde_json::Value,
}

/// A parameter a preset exposes. Its kind, range and description come from its first target's specification
/// unless narrowed here; its default is the value that target holds in the file (one place for each value).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExposedParam {
    pub name: String,
    /// The node parameter(s) it sets, `node.param`; written as one string or a list.
    pub target: Targets,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Bounds inside the target's range (numbers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The values allowed (text or choice parameters; a subset of a choice parameter's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<String>>,
}

/// A preset's ports as a node: each name maps to the inner `node.port` it stands for.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Ports {
    /// Input name -> the inner input(s) it feeds; a link to it replaces the preset's own link to them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, Targets>,
    /// Output name -> the inner output it shows.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
}

impl Ports {
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty() && self.outputs.is_empty()
    }
}

/// One or several `node.port` or `node.param` names; JSON accepts a string or a list of strings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Targets(pub Vec<String>);

impl Serialize for Targets {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => s.serialize_str(one),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Targets {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        match OneOrMany::deserialize(d) {
            Ok(OneOrMany::One(s)) => Ok(Targets(vec![s])),
            Ok(OneOrMany::Many(v)) if !v.is_empty() => Ok(Targets(v)),
            Ok(OneOrMany::Many(_)) => Err(serde::de::Error::custom("an empty list of targets")),
            Err(_) => Err(serde::de::Error::custom("expected \"node.name\" or a list of them")),
        }
    }
}

/// One node instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GraphNode {
    pub id: String,
    #[serde(rename = "type")]
    pub node_type: String,
    /// A semver requirement on the node type's version, e.g. `^1` (any version when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
}

/// A link from an output port to an input port, each written `node.port`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub from: String,
    pub to: String,
}

/// Splits `node.port` at its last dot.
pub fn split_endpoint(s: &str) -> Option<(&str, &str)> {
    let (node, port) = s.rsplit_once('.')?;
    (!node.is_empty() && !port.is_empty()).then_some((node, port))
}

impl Default for Graph {
    fn default() -> Self {
        Graph::new()
    }
}

impl Graph {
    /// An empty graph, to be built with [`Graph::with_node`], [`Graph::with_link`] and [`Graph::with_output`].
    pub fn new() -> Graph {
        Graph {
            version: FORMAT_VERSION,
            description: String::new(),
            nodes: vec![],
            links: vec![],
            outputs: vec![],
            editor: serde_json::Value::Null,
            params: vec![],
            ports: Ports::default(),
        }
    }
    /// Adds a node; `params` is a JSON object of parameter values.
    pub fn with_node(mut self, id: &str, node_type: &str, params: serde_json::Value) -> Graph {
        let params = params.as_object().cloned().unwrap_or_default().into_iter().collect();
        self.nodes.push(GraphNode { id: id.into(), node_type: node_type.into(), version: None, params });
        self
    }
    /// Links output `from` (`node.port`) to input `to`.
    pub fn with_link(mut self, from: &str, to: &str) -> Graph {
        self.links.push(Link { from: from.into(), to: to.into() });
        self
    }
    /// Requests `node` or `node.port`.
    pub fn with_output(mut self, output: &str) -> Graph {
        self.outputs.push(output.into());
        self
    }

    /// Reads a graph file; errors name the file and, for JSON errors, the line and column.
    pub fn load(path: &Path) -> anyhow::Result<Graph> {
        let text =
            std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Graph> {
        let g: Graph = serde_json::from_str(text).map_err(|e| anyhow::anyhow!("invalid graph JSON: {e}"))?;
        if g.version != FORMAT_VERSION {
            anyhow::bail!(
                "graph format version {} is not supported (this host reads version {FORMAT_VERSION})",
                g.version
            );
        }
        Ok(g)
    }

    pub fn node(&self, id: &str) -> Option<&GraphNode> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Applies a `node.param=value` override (value parsed as JSON, else taken as text).
    pub fn set_param(&mut self, assignment: &str) -> anyhow::Result<()> {
        let (target, value) = assignment
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--set '{assignment}': expected node.param=value"))?;
        let (node, param) =
            split_endpoint(target).ok_or_else(|| anyhow::anyhow!("--set '{assignment}': expected node.param=value"))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        let n = self
            .nodes
            .iter_mut()
            .find(|n| n.id == node)
            .ok_or_else(|| anyhow::anyhow!("--set '{assignment}': the graph has no node '{node}'"))?;
        n.params.insert(param.to_string(), value);
        Ok(())
    }

    /// True when the graph uses presets as nodes or declares parameters or ports of its own.
    pub fn uses_presets(&self) -> bool {
        let preset_node = self.nodes.iter().any(|n| n.node_type.starts_with(PRESET_PREFIX));
        preset_node || !self.params.is_empty() || !self.ports.is_empty()
    }

    /// Records, on every plugin node that has none, a requirement on the loaded version (`^MAJOR`, or `^0.MINOR`
    /// before 1.0), so that a later incompatible node version is reported by name instead of misread.
    pub fn record_versions(&mut self, registry: &crate::plugins::Registry) {
        for n in self.nodes.iter_mut().filter(|n| n.version.is_none()) {
            let Some(nt) = registry.node(&n.node_type) else { continue };
            if let Ok(v) = semver::Version::parse(nt.descriptor.version.as_str()) {
                n.version = Some(if v.major > 0 { format!("^{}", v.major) } else { format!("^0.{}", v.minor) });
            }
        }
    }
}

/// A node whose type starts with this is a preset used as one node: `preset:NAME` (see crate::preset).
pub const PRESET_PREFIX: &str = "preset:";
