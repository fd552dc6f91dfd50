//! The node author's side: the [`Node`] trait, typed access to inputs and parameters ([`NodeIo`]), and the glue
//! that turns a list of nodes into a [`PluginModule`], catching panics at the boundary.

use crate::{
    context::{Ctx, ModelRef, NodeContext},
    error::{ErrorKind, NodeError, NodeResult},
    module::{BuildInfo, PluginAbout, PluginModule, PluginModuleRef},
    schema::NodeDescriptor,
    value::{Bundle, Labels, NamedValue, Value},
};
use abi_stable::{
    prefix_type::PrefixTypeTrait,
    std_types::{RErr, ROk, RResult, RSlice, RStr, RVec},
};
use std::panic::{catch_unwind, AssertUnwindSafe};
use tch::Tensor;

/// One node type. Implementations are stateless: everything a run needs comes in through `io` and `ctx`.
pub trait Node: Send + Sync + 'static {
    /// Identity, ports and parameters.
    fn descriptor(&self) -> NodeDescriptor;
    /// Reads inputs and parameters from `io`, writes outputs to it.
    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()>;
    /// Mistakes in the declaration (names declared twice, defaults outside their range): the plugin is refused at
    /// load with these, naming the node.
    fn problems(&self) -> Vec<String> {
        Vec::new()
    }
    /// [`crate::module::flags`] bits: what the host may do with this node's results (0: nothing special).
    fn flags(&self) -> u64 {
        0
    }
}

/// Inputs, parameters (already validated and defaulted by the host) and outputs of one evaluation.
pub struct NodeIo<'a> {
    inputs: RSlice<'a, NamedValue>,
    params: RSlice<'a, NamedValue>,
    pub(crate) outputs: RVec<NamedValue>,
}

impl<'a> NodeIo<'a> {
    /// The inputs and parameters of one evaluation (made by the plugin glue).
    pub fn new(inputs: RSlice<'a, NamedValue>, params: RSlice<'a, NamedValue>) -> Self {
        NodeIo { inputs, params, outputs: RVec::new() }
    }

    /// The value on input `port`, if connected.
    pub fn get(&self, port: &str) -> Option<&Value> {
        self.inputs.iter().find(|v| v.name.as_str() == port).map(|v| &v.value)
    }
    /// The value on input `port`; an error naming the port when it is missing.
    pub fn input(&self, port: &str) -> NodeResult<&Value> {
        self.get(port).ok_or_else(|| NodeError::input(port, "input is not connected"))
    }

    /// A tensor-valued input (any of the tensor kinds), checked to be non-empty and free of NaN/inf.
    pub fn tensor(&self, port: &str) -> NodeResult<Tensor> {
        let t = match self.input(port)? {
            Value::Tensor(t) | Value::Latents(t) | Value::Images(t) => t.tensor(),
            Value::Labels(l) => l.probs.tensor(),
            other => return Err(NodeError::input(port, format!("expected a tensor, got {}", other.port_type()))),
        };
        check_finite(port, &t)?;
        Ok(t)
    }
    /// Latent codes N x D.
    pub fn latents(&self, port: &str) -> NodeResult<Tensor> {
        let t = self.tensor(port)?;
        if t.dim() != 2 {
            return Err(NodeError::input(port, format!("latent codes must be N x D, got shape {:?}", t.size())));
        }
        Ok(t)
    }
    /// Images N x C x H x W in [0, 1].
    pub fn images(&self, port: &str) -> NodeResult<Tensor> {
        let t = self.tensor(port)?;
        if t.dim() != 4 {
            return Err(NodeError::input(port, format!("images must be N x C x H x W, got shape {:?}", t.size())));
        }
        Ok(t)
    }
    /// Labels on input `port`, checked finite.
    pub fn labels(&self, port: &str) -> NodeResult<Labels> {
        match self.input(port)? {
            Value::Labels(l) => {
                check_finite(port, &l.probs.tensor())?;
                Ok(l.clone())
            }
            other => Err(NodeError::input(port, format!("expected labels, got {}", other.port_type()))),
        }
    }
    /// A model on input `port`.
    pub fn model(&self, port: &str) -> NodeResult<ModelRef> {
        match self.input(port)? {
            Value::Model(m) => Ok(m.clone()),
            other => Err(NodeError::input(port, format!("expected a model, got {}", other.port_type()))),
        }
    }
    /// A bundle of kind `kind`.
    pub fn bundle(&self, port: &str, kind: &str) -> NodeResult<Bundle> {
        match self.input(port)? {
            Value::Bundle(b) if b.kind.as_str() == kind => Ok(b.clone()),
            other => Err(NodeError::input(port, format!("expected {kind}, got {}", other.port_type()))),
        }
    }

    /// The value of parameter `name` (validated and defaulted by the host).
    ///
    /// # Errors
    /// The node did not declare `name`.
    pub fn param_value(&self, name: &str) -> NodeResult<&Value> {
        self.params
            .iter()
            .find(|v| v.name.as_str() == name)
            .map(|v| &v.value)
            .ok_or_else(|| NodeError::param(name, "parameter missing (not declared by the node?)"))
    }
    /// Float parameter `name` (an int is widened).
    pub fn float(&self, name: &str) -> NodeResult<f64> {
        match self.param_value(name)? {
            Value::Float(x) => Ok(*x),
            Value::Int(x) => Ok(*x as f64),
            other => Err(NodeError::param(name, format!("expected float, got {}", other.port_type()))),
        }
    }
    /// Int parameter `name`.
    pub fn int(&self, name: &str) -> NodeResult<i64> {
        match self.param_value(name)? {
            Value::Int(x) => Ok(*x),
            other => Err(NodeError::param(name, format!("expected int, got {}", other.port_type()))),
        }
    }
    /// Bool parameter `name`.
    pub fn bool(&self, name: &str) -> NodeResult<bool> {
        match self.param_value(name)? {
            Value::Bool(x) => Ok(*x),
            other => Err(NodeError::param(name, format!("expected bool, got {}", other.port_type()))),
        }
    }
    /// Text parameter `name`.
    pub fn text(&self, name: &str) -> NodeResult<String> {
        match self.param_value(name)? {
            Value::Text(x) => Ok(x.to_string()),
            other => Err(NodeError::param(name, format!("expected text, got {}", other.port_type()))),
        }
    }

    /// Sets output `port`.
    pub fn output(&mut self, port: &str, value: Value) {
        self.outputs.push(NamedValue::new(port, value));
    }
    /// The outputs written (for the plugin glue).
    pub fn into_outputs(self) -> RVec<NamedValue> {
        self.outputs
    }
}

/// Errors when `t` holds NaN or infinity (floating tensors only).
pub fn check_finite(port: &str, t: &Tensor) -> NodeResult<()> {
    if t.numel() == 0 {
        return Err(NodeError::input(port, format!("tensor is empty (shape {:?})", t.size())));
    }
    if t.is_floating_point() {
        let bad = t.isfinite().logical_not().any().int64_value(&[]) != 0;
        if bad {
            return Err(NodeError::input(port, "tensor contains NaN or infinity"));
        }
    }
    Ok(())
}

/// The node list of a plugin and what it says of itself (implemented by [`crate::export_plugin!`]).
pub trait PluginNodes: 'static {
    /// Every node the plugin exports.
    fn nodes() -> &'static [Box<dyn Node>];
    /// The plugin crate's name, version and description.
    fn about() -> PluginAbout;
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

extern "C" fn build_info<P: PluginNodes>() -> BuildInfo {
    let about = P::about();
    BuildInfo::current(&format!("{} {}", about.name, about.version))
}

extern "C" fn about<P: PluginNodes>() -> PluginAbout {
    P::about()
}

/// Every declaration mistake of the plugin's nodes, each naming its node; what a host refuses the plugin for.
pub fn declaration_problems(nodes: &[Box<dyn Node>]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for n in nodes {
        let d = n.descriptor();
        let id = d.id.to_string();
        if !ids.insert(id.clone()) {
            problems.push(format!("node '{id}' is exported twice"));
        }
        let mut all = n.problems();
        for p in d.params.iter() {
            if let Err(e) = p.check(&p.default) {
                all.push(format!("the default of {e}"));
            }
        }
        problems.extend(all.into_iter().map(|p| format!("node '{id}': {p}")));
    }
    problems.dedup();
    problems
}

extern "C" fn describe<P: PluginNodes>() -> RResult<RVec<NodeDescriptor>, NodeError> {
    let described = catch_unwind(|| {
        let problems = declaration_problems(P::nodes());
        if problems.is_empty() {
            Ok(P::nodes().iter().map(|n| n.descriptor()).collect::<RVec<_>>())
        } else {
            Err(problems.join("; "))
        }
    });
    match described {
        Ok(Ok(list)) => ROk(list),
        Ok(Err(problems)) => RErr(NodeError::internal(format!("declaration mistakes: {problems}"))),
        Err(p) => RErr(NodeError::new(ErrorKind::Panic, format!("describe panicked: {}", panic_message(p)))),
    }
}

extern "C" fn node_flags<P: PluginNodes>(node_type: RStr<'_>) -> u64 {
    // A panic must not unwind across the boundary; a node that cannot say has no flags.
    catch_unwind(|| {
        P::nodes().iter().find(|n| n.descriptor().id.as_str() == node_type.as_str()).map_or(0, |n| n.flags())
    })
    .unwrap_or(0)
}

extern "C" fn evaluate<P: PluginNodes>(
    node_type: RStr<'_>,
    inputs: RSlice<'_, NamedValue>,
    params: RSlice<'_, NamedValue>,
    ctx: &NodeContext<'_>,
) -> RResult<RVec<NamedValue>, NodeError> {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let node = P::nodes()
            .iter()
            .find(|n| n.descriptor().id.as_str() == node_type.as_str())
            .ok_or_else(|| NodeError::internal(format!("this plugin has no node type '{node_type}'")))?;
        let mut io = NodeIo::new(inputs, params);
        let ctx = Ctx { raw: ctx };
        node.run(&mut io, &ctx)?;
        Ok(io.into_outputs())
    }));
    match result {
        Ok(Ok(out)) => ROk(out),
        Ok(Err(e)) => RErr(e),
        Err(p) => RErr(NodeError::new(ErrorKind::Panic, format!("node panicked: {}", panic_message(p)))),
    }
}

/// Builds the root module for the node list `P`.
pub fn plugin_module<P: PluginNodes>() -> PluginModuleRef {
    PluginModule {
        build_info: build_info::<P>,
        describe: describe::<P>,
        evaluate: evaluate::<P>,
        about: about::<P>,
        node_flags: node_flags::<P>,
    }
    .leak_into_prefix()
}
