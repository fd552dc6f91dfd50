//! Node descriptions: what a node is, its typed ports and its parameters, as data a host and a UI can render.

use crate::value::Value;
use abi_stable::{std_types::{RString, RVec}, StableAbi};

/// A typed input or output port.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct PortSpec {
    pub name: RString,
    /// A name from [`crate::port`] or a vendor type.
    pub ty: RString,
    pub description: RString,
    /// Inputs only: the node runs without it.
    pub optional: bool,
}

impl PortSpec {
    pub fn new(name: &str, ty: &str, description: &str) -> Self {
        PortSpec { name: name.into(), ty: ty.into(), description: description.into(), optional: false }
    }
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }
}

/// A parameter's type and its constraints.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone)]
pub enum ParamKind {
    Float { min: f64, max: f64 },
    Int { min: i64, max: i64 },
    Bool,
    Text,
    /// One of a fixed set of strings.
    Choice { choices: RVec<RString> },
    /// A file or folder path (text; a UI may offer a picker).
    Path,
}

/// A parameter: name, kind, default and a one-line description (docs become UI text).
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct ParamSpec {
    pub name: RString,
    pub kind: ParamKind,
    pub default: Value,
    pub description: RString,
}

impl ParamSpec {
    pub fn float(name: &str, default: f64, min: f64, max: f64, description: &str) -> Self {
        ParamSpec { name: name.into(), kind: ParamKind::Float { min, max }, default: Value::Float(default), description: description.into() }
    }
    pub fn int(name: &str, default: i64, min: i64, max: i64, description: &str) -> Self {
        ParamSpec { name: name.into(), kind: ParamKind::Int { min, max }, default: Value::Int(default), description: description.into() }
    }
    pub fn bool(name: &str, default: bool, description: &str) -> Self {
        ParamSpec { name: name.into(), kind: ParamKind::Bool, default: Value::Bool(default), description: description.into() }
    }
    pub fn text(name: &str, default: &str, description: &str) -> Self {
        ParamSpec { name: name.into(), kind: ParamKind::Text, default: Value::Text(default.into()), description: description.into() }
    }
    pub fn path(name: &str, default: &str, description: &str) -> Self {
        ParamSpec { name: name.into(), kind: ParamKind::Path, default: Value::Text(default.into()), description: description.into() }
    }
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
            (ParamKind::Bool, Value::Bool(_)) | (ParamKind::Text, Value::Text(_)) | (ParamKind::Path, Value::Text(_)) => {}
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
    pub display_name: RString,
    /// `Domain: Sub`, e.g. `Method: Fitting`.
    pub category: RString,
    pub description: RString,
    pub inputs: RVec<PortSpec>,
    pub outputs: RVec<PortSpec>,
    pub params: RVec<ParamSpec>,
    /// Output may differ between runs with the same inputs (never cached across runs).
    pub volatile: bool,
}

impl NodeDescriptor {
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
    pub fn input(mut self, p: PortSpec) -> Self {
        self.inputs.push(p);
        self
    }
    pub fn output(mut self, p: PortSpec) -> Self {
        self.outputs.push(p);
        self
    }
    pub fn param(mut self, p: ParamSpec) -> Self {
        self.params.push(p);
        self
    }
    pub fn volatile(mut self) -> Self {
        self.volatile = true;
        self
    }
    pub fn find_param(&self, name: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.name.as_str() == name)
    }
    pub fn find_input(&self, name: &str) -> Option<&PortSpec> {
        self.inputs.iter().find(|p| p.name.as_str() == name)
    }
    pub fn find_output(&self, name: &str) -> Option<&PortSpec> {
        self.outputs.iter().find(|p| p.name.as_str() == name)
    }
}
