//! What travels on a link between two nodes.

use crate::{context::ModelRef, tensor::TensorRef};
use abi_stable::{
    std_types::{RString, RVec},
    StableAbi,
};
use serde::{Deserialize, Serialize};

/// Port type names. A link is valid when both ends name the same type, or the input accepts [`port::ANY`].
/// Third-party nodes may define their own names (`vendor.thing`); bundles use their `kind` as their port type.
pub mod port {
    /// Accepts any value.
    pub const ANY: &str = "any";
    /// A number.
    pub const FLOAT: &str = "float";
    /// An integer.
    pub const INT: &str = "int";
    /// A flag.
    pub const BOOL: &str = "bool";
    /// Text.
    pub const TEXT: &str = "text";
    /// Any tensor.
    pub const TENSOR: &str = "tensor";
    /// Latent codes, float N x D.
    pub const LATENTS: &str = "latents";
    /// Images, float N x C x H x W in [0, 1].
    pub const IMAGES: &str = "images";
    /// Label vectors, float N x K in [0, 1], with their schema.
    pub const LABELS: &str = "labels";
    /// A loaded generator (latents to images).
    pub const GENERATOR: &str = "model.generator";
    /// A loaded classifier (images to labels).
    pub const CLASSIFIER: &str = "model.classifier";
    /// A fitted group of Gaussians, one per semantic class.
    pub const GAUSSIANS: &str = "gaussians";
    /// A fitted Gaussian mixture, one component per semantic class.
    pub const MIXTURE: &str = "mixture";
    /// A named series of numbers (loss curves).
    pub const CURVES: &str = "curves";
    /// Linear directions in latent space, one per class (baselines, imports).
    pub const DIRECTIONS: &str = "directions";
    /// Named (x, y) series for scatter plots (a comparison's leakage and success per method).
    pub const POINTS: &str = "points";

    /// The parameter through which a node states the latent space of the codes it makes and renders (a choice of
    /// [`space::ALL`]; see [`crate::declare::Declare::space`]). Validation gives that space to the node's
    /// space-carrying outputs and refuses inputs from another space.
    pub const SPACE_PARAM: &str = "space";

    /// Latent spaces. A port type may be qualified with one, `latents/w`: a subtype of `latents` that validation
    /// keeps apart from codes of another space. Validation also infers the space of every space-carrying output
    /// ([`space::CARRIERS`]) from the node's `space` parameter or from its inputs, and refuses a node whose inputs
    /// come from two spaces.
    pub mod space {
        /// The generator's input codes (StyleGAN's z).
        pub const Z: &str = "z";
        /// StyleGAN's intermediate space: one w per code, broadcast to every synthesis layer.
        pub const W: &str = "w";
        /// StyleGAN's extended space: one w per synthesis layer, flattened to N x (layers x w_dim).
        pub const WPLUS: &str = "wplus";
        /// Every space, in the order a UI lists them.
        pub const ALL: &[&str] = &[Z, W, WPLUS];
        /// Port types whose values live in a latent space: codes, the generator rendering them, and what is fitted
        /// on codes.
        pub const CARRIERS: &[&str] =
            &[super::LATENTS, super::GENERATOR, super::GAUSSIANS, super::MIXTURE, super::DIRECTIONS];
    }

    /// `base/space`, the port type `base` qualified with a latent space.
    pub fn qualified(base: &str, space: &str) -> String {
        format!("{base}/{space}")
    }

    /// A port type split into its base and, when it is qualified with a known latent space, that space:
    /// `latents/w` -> (`latents`, Some(`w`)); `latents` and vendor types with other slashes are returned whole.
    pub fn split_space(ty: &str) -> (&str, Option<&str>) {
        match ty.rsplit_once('/') {
            Some((base, q)) if space::ALL.contains(&q) && !base.is_empty() => (base, Some(q)),
            _ => (ty, None),
        }
    }
}

/// One attribute group (e.g. hair) and its classes (black, brown, ...).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelGroup {
    /// Group name, e.g. `hair`.
    pub name: RString,
    /// Class names, e.g. `black`, `red`.
    pub classes: RVec<RString>,
}

/// The label schema a classifier carries: columns of L are the groups' classes in order.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelSchema {
    /// The groups, in column order.
    pub groups: RVec<LabelGroup>,
}

impl LabelSchema {
    /// Total number of classes K.
    pub fn len(&self) -> usize {
        self.groups.iter().map(|g| g.classes.len()).sum()
    }
    /// True when the schema has no classes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `(group index, class index within group)` of every column.
    pub fn columns(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (g, group) in self.groups.iter().enumerate() {
            for c in 0..group.classes.len() {
                out.push((g, c));
            }
        }
        out
    }
    /// Column range of group `g`.
    pub fn group_range(&self, g: usize) -> std::ops::Range<usize> {
        let start: usize = self.groups.iter().take(g).map(|x| x.classes.len()).sum();
        start..start + self.groups[g].classes.len()
    }
    /// Column names `group.class`.
    pub fn class_names(&self) -> Vec<String> {
        self.groups.iter().flat_map(|g| g.classes.iter().map(move |c| format!("{}.{}", g.name, c))).collect()
    }
    /// Column of `group.class` (or of a bare class name when unique).
    pub fn column(&self, name: &str) -> Option<usize> {
        let names = self.class_names();
        if let Some(i) = names.iter().position(|n| n == name) {
            return Some(i);
        }
        let mut hits = names.iter().enumerate().filter(|(_, n)| n.rsplit('.').next() == Some(name));
        match (hits.next(), hits.next()) {
            (Some((i, _)), None) => Some(i),
            _ => None,
        }
    }
}

/// Label vectors and their schema.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct Labels {
    /// N x K probabilities in [0, 1].
    pub probs: TensorRef,
    /// What the K columns are.
    pub schema: LabelSchema,
}

/// A named tensor inside a [`Bundle`].
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct NamedTensor {
    /// Tensor name.
    pub name: RString,
    /// The tensor.
    pub tensor: TensorRef,
}

/// A fitted artifact or any structured result: a kind (its port type), named tensors and JSON metadata.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct Bundle {
    /// The bundle's kind, which is its port type.
    pub kind: RString,
    /// Named tensors.
    pub tensors: RVec<NamedTensor>,
    /// JSON text.
    pub meta: RString,
}

impl Bundle {
    /// A bundle of `kind` with JSON metadata and no tensors yet.
    pub fn new(kind: &str, meta: &serde_json::Value) -> Self {
        Bundle { kind: kind.into(), tensors: RVec::new(), meta: meta.to_string().into() }
    }
    /// Adds tensor `name`.
    pub fn with(mut self, name: &str, t: tch::Tensor) -> Self {
        self.tensors.push(NamedTensor { name: name.into(), tensor: TensorRef::new(t) });
        self
    }
    /// The tensor named `name`.
    pub fn get(&self, name: &str) -> Option<tch::Tensor> {
        self.tensors.iter().find(|t| t.name.as_str() == name).map(|t| t.tensor.tensor())
    }
    /// The metadata, parsed (`null` when it is not JSON).
    pub fn meta_json(&self) -> serde_json::Value {
        serde_json::from_str(self.meta.as_str()).unwrap_or(serde_json::Value::Null)
    }
}

/// A value on a link (or a parameter value: only the scalar and text cases).
#[repr(u8)]
#[derive(StableAbi, Debug, Clone)]
pub enum Value {
    /// A number.
    Float(f64),
    /// An integer.
    Int(i64),
    /// A flag.
    Bool(bool),
    /// Text.
    Text(RString),
    /// Any tensor.
    Tensor(TensorRef),
    /// Latent codes, N x D.
    Latents(TensorRef),
    /// Images, N x C x H x W in [0, 1].
    Images(TensorRef),
    /// Label probabilities with their schema.
    Labels(Labels),
    /// A loaded model.
    Model(ModelRef),
    /// Named tensors with JSON metadata (fits, typed documents).
    Bundle(Bundle),
}

impl Value {
    /// The port type this value satisfies.
    pub fn port_type(&self) -> String {
        match self {
            Value::Float(_) => port::FLOAT.into(),
            Value::Int(_) => port::INT.into(),
            Value::Bool(_) => port::BOOL.into(),
            Value::Text(_) => port::TEXT.into(),
            Value::Tensor(_) => port::TENSOR.into(),
            Value::Latents(_) => port::LATENTS.into(),
            Value::Images(_) => port::IMAGES.into(),
            Value::Labels(_) => port::LABELS.into(),
            Value::Model(m) => m.kind().into_string(),
            Value::Bundle(b) => b.kind.to_string(),
        }
    }

    /// A one-line human description (shape of tensors, scalar values).
    pub fn summary(&self) -> String {
        match self {
            Value::Float(x) => format!("{x}"),
            Value::Int(x) => format!("{x}"),
            Value::Bool(x) => format!("{x}"),
            Value::Text(x) => format!("{:?}", x.as_str()),
            Value::Tensor(t) | Value::Latents(t) | Value::Images(t) => format!("{t:?}"),
            Value::Labels(l) => format!("labels {:?}, {} groups", l.probs, l.schema.groups.len()),
            Value::Model(m) => format!("{} {}", m.kind(), m.name()),
            Value::Bundle(b) => format!("{} ({} tensors)", b.kind, b.tensors.len()),
        }
    }

    /// Parameter values as JSON (for cache keys and listings).
    pub fn to_json(&self) -> Option<serde_json::Value> {
        Some(match self {
            Value::Float(x) => serde_json::json!(x),
            Value::Int(x) => serde_json::json!(x),
            Value::Bool(x) => serde_json::json!(x),
            Value::Text(x) => serde_json::json!(x.as_str()),
            _ => return None,
        })
    }
}

/// A value with the port or parameter name it belongs to.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct NamedValue {
    /// Port or parameter name.
    pub name: RString,
    /// The value.
    pub value: Value,
}

impl NamedValue {
    /// `value` named `name`.
    pub fn new(name: &str, value: Value) -> Self {
        NamedValue { name: name.into(), value }
    }
}

#[cfg(test)]
mod tests {
    use super::port;
    use crate::declare::Choice;

    #[test]
    fn qualified_port_types_split_into_base_and_space() {
        assert_eq!(port::split_space("latents/w"), ("latents", Some("w")));
        assert_eq!(port::split_space(&port::qualified(port::MIXTURE, port::space::WPLUS)), ("mixture", Some("wplus")));
        assert_eq!(port::split_space("latents"), ("latents", None));
        // A vendor type with a slash that is not a space stays whole.
        assert_eq!(port::split_space("acme/thing"), ("acme/thing", None));
        assert_eq!(port::split_space("/w"), ("/w", None));
    }

    #[test]
    fn the_space_choice_names_the_port_spaces() {
        let names: Vec<&str> = crate::kinds::Space::ALL.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, port::space::ALL);
    }
}
