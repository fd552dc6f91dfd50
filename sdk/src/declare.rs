//! Nodes declared once. A node's ports and parameters are declared in [`Declared::declare`], which hands back
//! typed handles; `run` reads and writes through those handles, so a name is written in one place and a value's
//! type is checked where it is read. The smallest node:
//!
//! ```ignore
//! use subspace_sdk::prelude::*;
//!
//! struct Scale { value: Input<f64>, factor: Param<f64>, out: Output<f64> }
//!
//! impl Declared for Scale {
//!     const INFO: NodeInfo = NodeInfo { id: "acme.scale", version: "1.0.0", name: "Scale", category: "Math",
//!                                        doc: "value x factor" };
//!     fn declare(d: &mut Declare) -> Self {
//!         Scale {
//!             value: d.input("value", "the number"),
//!             factor: d.float("factor", 2.0, -1e6..=1e6, "the multiplier"),
//!             out: d.output("value", "value x factor"),
//!         }
//!     }
//!     fn run(&self, io: &mut NodeIo<'_>, _ctx: &Ctx<'_, '_>) -> NodeResult<()> {
//!         let v = io.read(&self.value)? * io.read(&self.factor)?;
//!         io.write(&self.out, v);
//!         Ok(())
//!     }
//! }
//!
//! subspace_sdk::export_plugin!(Scale);
//! ```
//!
//! Mistakes that cannot be compile errors (two ports with one name, a default outside its range) are found when
//! the plugin is loaded: the host refuses the plugin with a message naming the node.

use crate::{
    context::Ctx,
    error::{NodeError, NodeResult},
    node::{Node, NodeIo},
    schema::{NodeDescriptor, ParamSpec, PortSpec},
    value::Value,
};
use std::marker::PhantomData;
use std::ops::RangeInclusive;

/// What a node is: its id (`vendor.name`, unique across plugins), semantic version, display name, category
/// (`Domain: Sub`) and a description that becomes UI text.
#[derive(Debug, Clone, Copy)]
pub struct NodeInfo {
    /// `vendor.name`, unique across plugins.
    pub id: &'static str,
    /// Semantic version; bump the major when a port's type or a parameter's meaning changes.
    pub version: &'static str,
    /// Display name.
    pub name: &'static str,
    /// Palette category, `Domain: Sub`.
    pub category: &'static str,
    /// One paragraph; becomes UI help.
    pub doc: &'static str,
}

/// A node declared once: [`Declared::declare`] builds its ports and parameters and returns the handles that
/// [`Declared::run`] uses. Export with [`crate::export_plugin!`].
pub trait Declared: Send + Sync + Sized + 'static {
    /// What the node is.
    const INFO: NodeInfo;
    /// Declares the node's ports and parameters, in the order a UI shows them, and keeps their handles.
    fn declare(d: &mut Declare) -> Self;
    /// Runs the node: reads inputs and parameters through the handles, writes every output.
    ///
    /// # Errors
    /// A [`NodeError`] that names the port or parameter at fault where there is one. Panics are caught at the
    /// plugin boundary and reported as errors too, but an error says more.
    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()>;
}

/// Collects a node's ports and parameters while [`Declared::declare`] runs.
pub struct Declare {
    descriptor: NodeDescriptor,
    problems: Vec<String>,
    flags: u64,
}

/// A typed handle to an input port.
pub struct Input<T> {
    name: &'static str,
    _t: PhantomData<fn() -> T>,
}
/// A typed handle to an optional input port (read as `Option<T>`).
pub struct Optional<T> {
    name: &'static str,
    _t: PhantomData<fn() -> T>,
}
/// A typed handle to an output port.
pub struct Output<T> {
    name: &'static str,
    _t: PhantomData<fn() -> T>,
}
/// A typed handle to a parameter.
pub struct Param<T> {
    name: &'static str,
    _t: PhantomData<fn() -> T>,
}

macro_rules! handle_impls {
    ($($h:ident),*) => {$(
        impl<T> $h<T> {
            fn new(name: &'static str) -> Self {
                $h { name, _t: PhantomData }
            }
            /// The declared name.
            pub fn name(&self) -> &'static str {
                self.name
            }
        }
        impl<T> Clone for $h<T> {
            fn clone(&self) -> Self {
                *self
            }
        }
        impl<T> Copy for $h<T> {}
        impl<T> std::fmt::Debug for $h<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({:?})", stringify!($h), self.name)
            }
        }
    )*};
}
handle_impls!(Input, Optional, Output, Param);

/// A Rust type that travels on a port: its port type name, and how it is read from and written to a [`Value`].
pub trait PortValue: Sized {
    /// The port type (a name from [`crate::port`] or a vendor type).
    fn port_type() -> String;
    /// Reads the value arriving on `port`.
    ///
    /// # Errors
    /// An input error naming `port` when the value is of another kind or breaks the type's contract (shape,
    /// finiteness).
    fn from_value(port: &str, value: &Value) -> NodeResult<Self>;
    /// The value as it travels on a link.
    fn into_value(self) -> Value;
}

/// A Rust type a parameter holds: its [`ParamSpec`] (kind, default, range) and how it is read.
pub trait ParamValue: Sized {
    /// Reads the (validated, defaulted) parameter value.
    ///
    /// # Errors
    /// A parameter error naming `name` when the value is of another kind.
    fn from_param(name: &str, value: &Value) -> NodeResult<Self>;
}

/// A choice parameter's Rust enum; implement it with [`crate::choice!`].
pub trait Choice: Sized + Copy + 'static {
    /// Every value with its name, in the order a UI lists them.
    const ALL: &'static [(&'static str, Self)];
    /// The name of this value.
    fn name(self) -> &'static str;
}

/// Anything [`NodeIo::read`] can read: input, optional input and parameter handles.
pub trait Handle {
    /// What reading the handle gives.
    type Value;
    /// # Errors
    /// As [`PortValue::from_value`] / [`ParamValue::from_param`], or a missing required input.
    fn read(&self, io: &NodeIo<'_>) -> NodeResult<Self::Value>;
}

impl<T: PortValue> Handle for Input<T> {
    type Value = T;
    fn read(&self, io: &NodeIo<'_>) -> NodeResult<T> {
        T::from_value(self.name, io.input(self.name)?)
    }
}

impl<T: PortValue> Handle for Optional<T> {
    type Value = Option<T>;
    fn read(&self, io: &NodeIo<'_>) -> NodeResult<Option<T>> {
        io.get(self.name).map(|v| T::from_value(self.name, v)).transpose()
    }
}

impl<T: ParamValue> Handle for Param<T> {
    type Value = T;
    fn read(&self, io: &NodeIo<'_>) -> NodeResult<T> {
        T::from_param(self.name, io.param_value(self.name)?)
    }
}

impl NodeIo<'_> {
    /// Reads an input, optional input or parameter through its handle.
    ///
    /// # Errors
    /// The input is missing or of the wrong kind; the error names the port or parameter.
    pub fn read<H: Handle>(&self, handle: &H) -> NodeResult<H::Value> {
        handle.read(self)
    }
    /// Whether an optional input is connected.
    pub fn connected<T>(&self, handle: &Optional<T>) -> bool {
        self.get(handle.name).is_some()
    }
    /// Sets an output through its handle.
    pub fn write<T: PortValue>(&mut self, handle: &Output<T>, value: T) {
        self.output(handle.name, value.into_value());
    }
}

impl Declare {
    fn new(info: &NodeInfo) -> Self {
        Declare {
            descriptor: NodeDescriptor::new(info.id, info.version, info.name, info.category, info.doc),
            problems: Vec::new(),
            flags: 0,
        }
    }

    fn taken(&mut self, what: &str, name: &str, taken: bool) {
        if taken {
            self.problems.push(format!("{what} '{name}' is declared twice"));
        }
    }

    /// A required input of type `T`.
    pub fn input<T: PortValue>(&mut self, name: &'static str, doc: &str) -> Input<T> {
        self.taken("input", name, self.descriptor.find_input(name).is_some());
        self.descriptor.inputs.push(PortSpec::new(name, &T::port_type(), doc));
        Input::new(name)
    }
    /// An input the node runs without.
    pub fn optional<T: PortValue>(&mut self, name: &'static str, doc: &str) -> Optional<T> {
        self.taken("input", name, self.descriptor.find_input(name).is_some());
        self.descriptor.inputs.push(PortSpec::new(name, &T::port_type(), doc).optional());
        Optional::new(name)
    }
    /// An output of type `T`; `run` must write it.
    pub fn output<T: PortValue>(&mut self, name: &'static str, doc: &str) -> Output<T> {
        self.taken("output", name, self.descriptor.find_output(name).is_some());
        self.descriptor.outputs.push(PortSpec::new(name, &T::port_type(), doc));
        Output::new(name)
    }

    fn param<T>(&mut self, name: &'static str, spec: ParamSpec) -> Param<T> {
        self.taken("parameter", name, self.descriptor.find_param(name).is_some());
        if let Err(e) = spec.check(&spec.default) {
            self.problems.push(format!("the default of {e}"));
        }
        self.descriptor.params.push(spec);
        Param::new(name)
    }
    /// A number in `range`.
    pub fn float(&mut self, name: &'static str, default: f64, range: RangeInclusive<f64>, doc: &str) -> Param<f64> {
        self.param(name, ParamSpec::float(name, default, *range.start(), *range.end(), doc))
    }
    /// An integer in `range`.
    pub fn int(&mut self, name: &'static str, default: i64, range: RangeInclusive<i64>, doc: &str) -> Param<i64> {
        self.param(name, ParamSpec::int(name, default, *range.start(), *range.end(), doc))
    }
    /// A flag.
    pub fn bool(&mut self, name: &'static str, default: bool, doc: &str) -> Param<bool> {
        self.param(name, ParamSpec::bool(name, default, doc))
    }
    /// Free text.
    pub fn text(&mut self, name: &'static str, default: &str, doc: &str) -> Param<String> {
        self.param(name, ParamSpec::text(name, default, doc))
    }
    /// A file or folder path the node writes (text a UI may offer a picker for), passed on as written: the node
    /// resolves it under the run's output folder with [`crate::files::output_param`].
    pub fn path(&mut self, name: &'static str, default: &str, doc: &str) -> Param<String> {
        self.param(name, ParamSpec::path(name, default, doc))
    }
    /// A file or folder path the node reads. The host resolves a relative value before the node runs (against the
    /// folder of the graph file it is written in; `$out/...` in the run's output folder; `default/...` is left to
    /// the node) and `subspace validate` reports one that names nothing, so the node gets a path it can open.
    pub fn input_path(&mut self, name: &'static str, default: &str, doc: &str) -> Param<String> {
        let index = self.descriptor.params.len();
        if index >= 64 - crate::module::flags::READS_PATH as usize {
            self.problems.push(format!("input path '{name}' is parameter {index}; only the first 56 can be"));
        } else {
            self.flags |= 1u64 << (crate::module::flags::READS_PATH as usize + index);
        }
        self.param(name, ParamSpec::path(name, default, doc))
    }
    /// One of the values of enum `C`.
    pub fn choice<C: Choice>(&mut self, name: &'static str, default: C, doc: &str) -> Param<C> {
        let names: Vec<&str> = C::ALL.iter().map(|(n, _)| *n).collect();
        self.param(name, ParamSpec::choice(name, default.name(), &names, doc))
    }
    /// The latent space of the codes the node makes or renders (the parameter [`crate::port::SPACE_PARAM`]):
    /// validation gives this space to the node's space-carrying outputs and refuses inputs from another one.
    pub fn space(&mut self, default: crate::kinds::Space, doc: &str) -> Param<crate::kinds::Space> {
        self.choice(crate::port::SPACE_PARAM, default, doc)
    }
    /// The node's output may differ between runs with the same inputs (it writes files, reads a clock): it is
    /// never cached across runs.
    pub fn volatile(&mut self) {
        self.descriptor.volatile = true;
    }
    /// The node's outputs depend only on its inputs, its parameters and the files those name, and are worth
    /// keeping (sampling, labelling, fits): the host may store them on disk and reuse them in later runs
    /// (`--cache`). Model outputs are not stored; the host re-creates them by calling the node without inputs in a
    /// run that reads as cancelled and taking the models it loaded through [`Ctx::shared_model`], and runs the
    /// node again when that gives no model. So load models with `shared_model` before anything slow. A node may
    /// not be both volatile and cacheable.
    pub fn cacheable(&mut self) {
        self.flags |= crate::module::flags::CACHEABLE;
    }
}

/// A [`Declared`] node as the plugin glue sees it: its handles and descriptor, built once.
pub struct DeclaredNode<T: Declared> {
    node: T,
    descriptor: NodeDescriptor,
    problems: Vec<String>,
    flags: u64,
}

impl<T: Declared> Default for DeclaredNode<T> {
    fn default() -> Self {
        let mut d = Declare::new(&T::INFO);
        let node = T::declare(&mut d);
        if d.descriptor.volatile && d.flags & crate::module::flags::CACHEABLE != 0 {
            d.problems.push("declared both volatile and cacheable".into());
        }
        DeclaredNode { node, descriptor: d.descriptor, problems: d.problems, flags: d.flags }
    }
}

impl<T: Declared> Node for DeclaredNode<T> {
    fn descriptor(&self) -> NodeDescriptor {
        self.descriptor.clone()
    }
    fn problems(&self) -> Vec<String> {
        self.problems.clone()
    }
    fn flags(&self) -> u64 {
        self.flags
    }
    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        self.node.run(io, ctx)
    }
}

fn wrong(what: &str, name: &str, expected: &str, got: &Value) -> NodeError {
    let message = format!("expected {expected}, got {}", got.port_type());
    if what == "param" {
        NodeError::param(name, message)
    } else {
        NodeError::input(name, message)
    }
}

impl PortValue for f64 {
    fn port_type() -> String {
        crate::port::FLOAT.into()
    }
    fn from_value(port: &str, value: &Value) -> NodeResult<Self> {
        match value {
            Value::Float(x) => Ok(*x),
            Value::Int(x) => Ok(*x as f64),
            other => Err(wrong("input", port, "a float", other)),
        }
    }
    fn into_value(self) -> Value {
        Value::Float(self)
    }
}

impl PortValue for i64 {
    fn port_type() -> String {
        crate::port::INT.into()
    }
    fn from_value(port: &str, value: &Value) -> NodeResult<Self> {
        match value {
            Value::Int(x) => Ok(*x),
            other => Err(wrong("input", port, "an int", other)),
        }
    }
    fn into_value(self) -> Value {
        Value::Int(self)
    }
}

impl PortValue for bool {
    fn port_type() -> String {
        crate::port::BOOL.into()
    }
    fn from_value(port: &str, value: &Value) -> NodeResult<Self> {
        match value {
            Value::Bool(x) => Ok(*x),
            other => Err(wrong("input", port, "a bool", other)),
        }
    }
    fn into_value(self) -> Value {
        Value::Bool(self)
    }
}

impl PortValue for String {
    fn port_type() -> String {
        crate::port::TEXT.into()
    }
    fn from_value(port: &str, value: &Value) -> NodeResult<Self> {
        match value {
            Value::Text(x) => Ok(x.to_string()),
            other => Err(wrong("input", port, "text", other)),
        }
    }
    fn into_value(self) -> Value {
        Value::Text(self.into())
    }
}

/// Any value (port type `any`): the node looks at the kind itself.
impl PortValue for Value {
    fn port_type() -> String {
        crate::port::ANY.into()
    }
    fn from_value(_: &str, value: &Value) -> NodeResult<Self> {
        Ok(value.clone())
    }
    fn into_value(self) -> Value {
        self
    }
}

impl ParamValue for f64 {
    fn from_param(name: &str, value: &Value) -> NodeResult<Self> {
        match value {
            Value::Float(x) => Ok(*x),
            Value::Int(x) => Ok(*x as f64),
            other => Err(wrong("param", name, "a float", other)),
        }
    }
}

impl ParamValue for i64 {
    fn from_param(name: &str, value: &Value) -> NodeResult<Self> {
        match value {
            Value::Int(x) => Ok(*x),
            other => Err(wrong("param", name, "an int", other)),
        }
    }
}

impl ParamValue for bool {
    fn from_param(name: &str, value: &Value) -> NodeResult<Self> {
        match value {
            Value::Bool(x) => Ok(*x),
            other => Err(wrong("param", name, "a bool", other)),
        }
    }
}

impl ParamValue for String {
    fn from_param(name: &str, value: &Value) -> NodeResult<Self> {
        match value {
            Value::Text(x) => Ok(x.to_string()),
            other => Err(wrong("param", name, "text", other)),
        }
    }
}

impl<C: Choice> ParamValue for C {
    fn from_param(name: &str, value: &Value) -> NodeResult<Self> {
        let Value::Text(text) = value else { return Err(wrong("param", name, "a choice", value)) };
        C::ALL.iter().find(|(n, _)| *n == text.as_str()).map(|(_, c)| *c).ok_or_else(|| {
            let names: Vec<&str> = C::ALL.iter().map(|(n, _)| *n).collect();
            NodeError::param(name, format!("{:?} is not one of {names:?}", text.as_str()))
        })
    }
}

/// Declares a choice parameter's enum: the variants and the names users write.
///
/// ```ignore
/// subspace_sdk::choice! {
///     /// How codes move toward the target.
///     pub enum Mode { Lerp = "lerp", Shift = "shift" }
/// }
/// ```
#[macro_export]
macro_rules! choice {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name { $($(#[$vmeta])* $variant),+ }
        impl $crate::declare::Choice for $name {
            const ALL: &'static [(&'static str, Self)] = &[$(($text, $name::$variant)),+];
            fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str($crate::declare::Choice::name(*self))
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::choice! {
        /// A test choice.
        pub enum Mode { A = "a", B = "b" }
    }

    struct Twice {
        _x: Input<f64>,
        _y: Input<f64>,
        _m: Param<Mode>,
        _k: Param<f64>,
    }
    impl Declared for Twice {
        const INFO: NodeInfo = NodeInfo { id: "t.twice", version: "1.0.0", name: "Twice", category: "T", doc: "" };
        fn declare(d: &mut Declare) -> Self {
            Twice {
                _x: d.input("x", ""),
                _y: d.input("x", ""),
                _m: d.choice("mode", Mode::B, ""),
                _k: d.float("k", 5.0, 0.0..=1.0, ""),
            }
        }
        fn run(&self, _: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
            Ok(())
        }
    }

    #[test]
    fn declaration_mistakes_are_found_and_choices_are_enums() {
        let n = DeclaredNode::<Twice>::default();
        let problems = n.problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("input 'x' is declared twice"), "{problems:?}");
        assert!(problems[1].contains("'k'") && problems[1].contains("outside"), "{problems:?}");
        let d = n.descriptor();
        assert_eq!(d.find_param("mode").unwrap().default.to_json(), Some(serde_json::json!("b")));
        assert_eq!(Mode::from_param("mode", &Value::Text("a".into())).unwrap(), Mode::A);
        let e = Mode::from_param("mode", &Value::Text("c".into())).unwrap_err();
        assert!(e.message.contains("\"c\"") && e.message.contains("[\"a\", \"b\"]"), "{}", e.message);
        assert_eq!(Mode::B.to_string(), "b");
    }

    struct Kept<const VOLATILE: bool>;
    impl<const VOLATILE: bool> Declared for Kept<VOLATILE> {
        const INFO: NodeInfo = NodeInfo { id: "t.kept", version: "1.0.0", name: "Kept", category: "T", doc: "" };
        fn declare(d: &mut Declare) -> Self {
            if VOLATILE {
                d.volatile();
            }
            d.cacheable();
            Kept
        }
        fn run(&self, _: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
            Ok(())
        }
    }

    #[test]
    fn cacheable_is_a_flag_and_never_volatile() {
        let kept = DeclaredNode::<Kept<false>>::default();
        assert_eq!(kept.flags(), crate::module::flags::CACHEABLE);
        assert!(kept.problems().is_empty(), "{:?}", kept.problems());
        assert_eq!(DeclaredNode::<Twice>::default().flags(), 0);
        let both = DeclaredNode::<Kept<true>>::default().problems();
        assert_eq!(both, vec!["declared both volatile and cacheable".to_string()]);
    }

    struct Reads;
    impl Declared for Reads {
        const INFO: NodeInfo = NodeInfo { id: "t.reads", version: "1.0.0", name: "Reads", category: "T", doc: "" };
        fn declare(d: &mut Declare) -> Self {
            d.cacheable();
            d.int("n", 1, 0..=2, "");
            d.input_path("model", "m.pt", "");
            d.path("file", "out.png", "");
            d.input_path("table", "t.csv", "");
            Reads
        }
        fn run(&self, _: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
            Ok(())
        }
    }

    #[test]
    fn input_paths_are_told_from_written_paths_by_flag_bits() {
        use crate::module::flags::{reads_path, CACHEABLE};
        let n = DeclaredNode::<Reads>::default();
        assert!(n.problems().is_empty(), "{:?}", n.problems());
        let f = n.flags();
        assert_ne!(f & CACHEABLE, 0);
        let reads: Vec<bool> = (0..5).map(|i| reads_path(f, i)).collect();
        assert_eq!(reads, vec![false, true, false, true, false]);
        assert!(matches!(n.descriptor().params[1].kind, crate::ParamKind::Path));
        assert!(!reads_path(u64::MAX, 56) && reads_path(u64::MAX, 55));
    }

    #[test]
    fn the_plugin_glue_refuses_declaration_mistakes_naming_the_node() {
        let nodes: Vec<Box<dyn Node>> =
            vec![Box::new(DeclaredNode::<Twice>::default()), Box::new(DeclaredNode::<Twice>::default())];
        let problems = crate::node::declaration_problems(&nodes);
        assert!(problems.iter().any(|p| p == "node 't.twice' is exported twice"), "{problems:?}");
        assert!(problems.iter().any(|p| p.starts_with("node 't.twice': input 'x' is declared twice")), "{problems:?}");
    }
}
