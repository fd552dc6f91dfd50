//! Typed port values: the Rust types a declared node reads and writes ([`crate::declare::PortValue`]). Tensor
//! kinds check their shape and finiteness when read; models and bundles check their kind, so a wrong value is an
//! error naming the port. Plugins add their own bundle kinds with [`crate::bundle_kind!`].

use crate::{
    context::ModelRef,
    declare::PortValue,
    error::{NodeError, NodeResult},
    node::check_finite,
    port,
    value::{Bundle, Labels, Value},
};
use tch::Tensor;

impl PortValue for Tensor {
    fn port_type() -> String {
        port::TENSOR.into()
    }
    /// Any tensor kind (latents, images, label probabilities), non-empty and finite.
    fn from_value(name: &str, value: &Value) -> NodeResult<Self> {
        let t = match value {
            Value::Tensor(t) | Value::Latents(t) | Value::Images(t) => t.tensor(),
            Value::Labels(l) => l.probs.tensor(),
            other => return Err(NodeError::input(name, format!("expected a tensor, got {}", other.port_type()))),
        };
        check_finite(name, &t)?;
        Ok(t)
    }
    fn into_value(self) -> Value {
        Value::Tensor(self.into())
    }
}

/// Latent codes, float N x D (port type `latents`).
#[derive(Debug)]
pub struct Latents(pub Tensor);

impl PortValue for Latents {
    fn port_type() -> String {
        port::LATENTS.into()
    }
    fn from_value(name: &str, value: &Value) -> NodeResult<Self> {
        let t = Tensor::from_value(name, value)?;
        if t.dim() != 2 {
            return Err(NodeError::input(name, format!("latent codes must be N x D, got shape {:?}", t.size())));
        }
        Ok(Latents(t))
    }
    fn into_value(self) -> Value {
        Value::Latents(self.0.into())
    }
}

/// Images, float N x C x H x W in [0, 1] (port type `images`).
#[derive(Debug)]
pub struct Images(pub Tensor);

impl PortValue for Images {
    fn port_type() -> String {
        port::IMAGES.into()
    }
    fn from_value(name: &str, value: &Value) -> NodeResult<Self> {
        let t = Tensor::from_value(name, value)?;
        if t.dim() != 4 {
            return Err(NodeError::input(name, format!("images must be N x C x H x W, got shape {:?}", t.size())));
        }
        Ok(Images(t))
    }
    fn into_value(self) -> Value {
        Value::Images(self.0.into())
    }
}

impl PortValue for Labels {
    fn port_type() -> String {
        port::LABELS.into()
    }
    fn from_value(name: &str, value: &Value) -> NodeResult<Self> {
        match value {
            Value::Labels(l) => {
                check_finite(name, &l.probs.tensor())?;
                Ok(l.clone())
            }
            other => Err(NodeError::input(name, format!("expected labels, got {}", other.port_type()))),
        }
    }
    fn into_value(self) -> Value {
        Value::Labels(self)
    }
}

macro_rules! model_kind {
    ($(#[$meta:meta])* $name:ident = $port:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        pub struct $name(pub ModelRef);

        impl PortValue for $name {
            fn port_type() -> String {
                $port.into()
            }
            fn from_value(name: &str, value: &Value) -> NodeResult<Self> {
                match value {
                    Value::Model(m) if m.kind().as_str() == $port => Ok($name(m.clone())),
                    other => Err(NodeError::input(name, format!("expected {}, got {}", $port, other.port_type()))),
                }
            }
            fn into_value(self) -> Value {
                Value::Model(self.0)
            }
        }
    };
}

model_kind!(
    /// A loaded generator: latents to images in [0, 1].
    Generator = port::GENERATOR
);
model_kind!(
    /// A loaded classifier: images in [0, 1] to label probabilities.
    Classifier = port::CLASSIFIER
);

crate::choice! {
    /// The latent space codes are in (see [`crate::port::space`]): z, StyleGAN's W (one w per code) or W+ (one w
    /// per synthesis layer, flattened).
    pub enum Space {
        /// The generator's input codes.
        Z = "z",
        /// One w per code.
        W = "w",
        /// One w per synthesis layer.
        WPlus = "wplus",
    }
}

/// Declares a bundle kind: a newtype over [`Bundle`] whose port type is the kind, checked when read.
///
/// ```ignore
/// subspace_sdk::bundle_kind!(
///     /// Fitted directions.
///     pub Directions = "directions"
/// );
/// ```
#[macro_export]
macro_rules! bundle_kind {
    ($(#[$meta:meta])* $vis:vis $name:ident = $kind:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        $vis struct $name(pub $crate::Bundle);

        impl $crate::declare::PortValue for $name {
            fn port_type() -> ::std::string::String {
                ::std::string::String::from($kind)
            }
            fn from_value(name: &str, value: &$crate::Value) -> $crate::NodeResult<Self> {
                match value {
                    $crate::Value::Bundle(b) if b.kind.as_str() == $kind => Ok($name(b.clone())),
                    other => Err($crate::NodeError::input(name, format!("expected {}, got {}", $kind, other.port_type()))),
                }
            }
            fn into_value(self) -> $crate::Value {
                $crate::Value::Bundle(self.0)
            }
        }
    };
}

crate::bundle_kind!(
    /// Fitted Gaussians, one per semantic class.
    pub Gaussians = port::GAUSSIANS
);
crate::bundle_kind!(
    /// A fitted Gaussian mixture, one component per semantic class.
    pub Mixture = port::MIXTURE
);
crate::bundle_kind!(
    /// Named series of numbers (loss curves).
    pub Curves = port::CURVES
);
crate::bundle_kind!(
    /// Linear directions in latent space, one per class.
    pub Directions = port::DIRECTIONS
);
crate::bundle_kind!(
    /// Named (x, y) series for scatter plots: one M x 2 float tensor per series; the metadata may give `title`,
    /// `x_label`, `y_label` and per-point text `labels: {series: [text, ...]}`.
    pub Points = port::POINTS
);

/// Structured data travelling as a typed value: a JSON document in a bundle of its own kind, so validation refuses
/// a link between different kinds and the document is parsed in one place. Implement with [`crate::json_kind!`].
pub trait JsonKind: serde::Serialize + serde::de::DeserializeOwned {
    /// The port type.
    const KIND: &'static str;
}

/// Reads a [`JsonKind`] from a value.
///
/// # Errors
/// The value is another kind, or its document does not parse as `T`; the error names the port.
pub fn read_json<T: JsonKind>(name: &str, value: &Value) -> NodeResult<T> {
    match value {
        Value::Bundle(b) if b.kind.as_str() == T::KIND => serde_json::from_str(b.meta.as_str())
            .map_err(|e| NodeError::input(name, format!("{} is malformed: {e}", T::KIND))),
        other => Err(NodeError::input(name, format!("expected {}, got {}", T::KIND, other.port_type()))),
    }
}

/// Writes a [`JsonKind`] as a value.
pub fn json_value<T: JsonKind>(doc: &T) -> Value {
    let meta = serde_json::to_string(doc).unwrap_or_else(|_| "null".into());
    Value::Bundle(Bundle { kind: T::KIND.into(), tensors: Default::default(), meta: meta.into() })
}

/// Makes a serde type a typed port value ([`JsonKind`] + [`PortValue`]) of port type `$kind`.
#[macro_export]
macro_rules! json_kind {
    ($name:ty = $kind:expr) => {
        impl $crate::kinds::JsonKind for $name {
            const KIND: &'static str = $kind;
        }
        impl $crate::declare::PortValue for $name {
            fn port_type() -> ::std::string::String {
                ::std::string::String::from($kind)
            }
            fn from_value(name: &str, value: &$crate::Value) -> $crate::NodeResult<Self> {
                $crate::kinds::read_json(name, value)
            }
            fn into_value(self) -> $crate::Value {
                $crate::kinds::json_value(&self)
            }
        }
    };
}
