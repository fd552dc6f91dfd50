//! Node descriptions: what a node is, its typed ports and its parameters, as data a host and a UI can render.

use crate::value::Value;
use abi_stable::{
    std_types::{RString, RVec},
    StableAbi,
};

/// A typed input or output port.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct PortSpec {
    /// Port name, unique among the node's inputs (or outputs).
    pub name: RString,
    /// A name from [`crate::port`] or a vendor type.
    pub ty: RString,
    /// One line; becomes the port's tooltip.
    pub description: RString,
    /// Inputs only: the node runs without it.
    pub optional: bool,
}

impl PortSpec {
    /// A required port.
    pub fn new(name: &str, ty: &str, description: &str) -> Self {
        PortSpec { name: name.into(), ty: ty.into(), description: description.into(), optional: false }
    }
    /// Marks an input optional.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }
}

/// A parameter's type and its constraints.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone)]
pub enum ParamKind {
    /// A number in `[min, max]`.
    Float {
        /// Smallest allowed value.
        min: f64,
        /// Largest allowed value.
        max: f64,
    },
    /// An integer in `[min, max]`.
    Int {
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
    },
    /// A flag.
    Bool,
    /// Free text.
    Text,
    /// One of a fixed set of strings.
    /// One of `choices`.
    Choice {
        /// The allowed values, in display order.
        choices: RVec<RString>,
    },
    /// A file or folder path (text; a UI may offer a picker).
    Path,
}

/// A parameter: name, kind, default and a one-line description (docs become UI text).
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct ParamSpec {
    /// Parameter name, unique within the node.
    pub name: RString,
    /// Kind and range.
    pub kind: ParamKind,
    /// The value used when a graph gives none.
    pub default: Value,
    /// One line; becomes UI help.
    pub description: RString,
}

impl ParamSpec {
    /// A float in `[min, max]`.
    pub fn float(name: &str, default: f64, min: f64, max: f64, description: &str) -> Self {
        ParamSpec {
            name: name.into(),
            kind: ParamKind::Float { min, max },
            default: Value::Float(default),
            description: description.into(),
        }
    }
    /// An int in `[min, max]`.
    pub fn int(name: &str, default: i64, min: i64, max: i64, description: &str) -> Self {
        ParamSpec {
            name: name.into(),
            kind: ParamKind::Int { min, max },
            default: Value::Int(default),
            description: description.into(),
        }
    }
    /// A flag.
    pub fn bool(name: &str, default: bool, description: &str) -> Self {
        ParamSpec {
            name: name.into(),
            kind: ParamKind::Bool,
            default: Value::Bool(default),
            description: description.into(),
        }
    }
    /// Free text.
    pub fn text(name: &str, default: &str, description: &str) -> Self {
        ParamSpec {
            name: name.into(),
            kind: ParamKind::Text,
            default: Value::Text(default.into()),
            description: description.into(),
        }
    }
    /// A file or folder path.
    pub fn path(name: &str, default: &str, description: &str) -> Self {
        ParamSpec {
            name: name.into(),
            kind: ParamKind::Path,
            default: Value::Text(default.into()),
            description: description.into(),
        }
    }
    /// One of `choices`.
    pub fn choice(name: &str, default: &str, choices: &[&str], description: &str) -> Self {
        ParamSpec {
            name: name.into(),
            kind: ParamKind::Choice { choices: choices.iter().map(|c| RString::from(*c)).collect() },
            default: Value::Text(default.into()),
            description: description.into(),
        }
    }

    /// Checks a value against this parameter's kind and range; the error names the parameter.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        let name = self.name.as_str();
        match (&self.kind, value) {
            (ParamKind::Float { min, max }, Value::Float(x)) => {
                if !x.is_finite() || x < min || x > max {
                    return Err(format!("parameter '{name}' = {x} is outside [{min}, {max}]"));
                }
            }
            (ParamKind::Int { min, max }, Value::Int(x)) => {
                if x < min || x > max {
                    return Err(format!("parameter '{name}' = {x} is outside [{min}, {max}]"));
                }
            }
            (ParamKind::Bool, Value::Bool(_))
            | (ParamKind::Text, Value::Text(_))
            | (ParamKind::Path, Value::Text(_)) => {}
            (ParamKind::Choice { choices }, Value::Text(x)) => {
                if !choices.iter().any(|c| c == x) {
                    let list: Vec<&str> = choices.iter().map(|c| c.as_str()).collect();
                    return Err(format!("parameter '{name}' = {:?} is not one of {list:?}", x.as_str()));
                }
            }
            (kind, v) => return Err(format!("parameter '{name}' expects {}, got {}", kind.type_name(), v.port_type())),
        }
        Ok(())
    }
}

impl ParamKind {
    /// `float`, `int`, `bool`, `text`, `choice` or `path`.
    pub fn type_name(&self) -> &'static str {
        match self {
            ParamKind::Float { .. } => "float",
            ParamKind::Int { .. } => "int",
            ParamKind::Bool => "bool",
            ParamKind::Text => "text",
            ParamKind::Choice { .. } => "choice",
            ParamKind::Path => "path",
        }
    }
}

/// Everything about a node type: identity, documentation, ports, parameters.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct NodeDescriptor {
    /// `vendor.name`, unique across plugins.
    pub id: RString,
    /// Semantic version; a graph may pin `^1` etc.
    pub version: RString,
    /// Name shown in the palette and on the node.
    pub display_name: RString,
    /// `Domain: Sub`, e.g. `Method: Fitting`.
    pub category: RString,
    /// One paragraph; becomes UI help.
    pub description: RString,
    /// Input ports, in display order.
    pub inputs: RVec<PortSpec>,
    /// Output ports, in display order.
    pub outputs: RVec<PortSpec>,
    /// Parameters, in display order.
    pub params: RVec<ParamSpec>,
    /// Output may differ between runs with the same inputs (never cached across runs).
    pub volatile: bool,
}

impl NodeDescriptor {
    /// A node with no ports or parameters yet.
    pub fn new(id: &str, version: &str, display_name: &str, category: &str, description: &str) -> Self {
        NodeDescriptor {
            id: id.into(),
            version: version.into(),
            display_name: display_name.into(),
            category: category.into(),
            description: description.into(),
            inputs: RVec::new(),
            outputs: RVec::new(),
            params: RVec::new(),
            volatile: false,
        }
    }
    /// Adds an input.
    pub fn input(mut self, p: PortSpec) -> Self {
        self.inputs.push(p);
        self
    }
    /// Adds an output.
    pub fn output(mut self, p: PortSpec) -> Self {
        self.outputs.push(p);
        self
    }
    /// Adds a parameter.
    pub fn param(mut self, p: ParamSpec) -> Self {
        self.params.push(p);
        self
    }
    /// Marks the node volatile (never cached across runs).
    pub fn volatile(mut self) -> Self {
        self.volatile = true;
        self
    }
    /// Parameter `name`, if declared.
    pub fn find_param(&self, name: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.name.as_str() == name)
    }
    /// Input `name`, if declared.
    pub fn find_input(&self, name: &str) -> Option<&PortSpec> {
        self.inputs.iter().find(|p| p.name.as_str() == name)
    }
    /// Output `name`, if declared.
    pub fn find_output(&self, name: &str) -> Option<&PortSpec> {
        self.outputs.iter().find(|p| p.name.as_str() == name)
    }
}
