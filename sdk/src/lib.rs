//! # subspace-sdk: the one crate a Subspace node author depends on
//!
//! It defines everything that crosses the boundary between the host and its dynamically loaded plugins: the
//! root module a plugin exports ([`PluginModule`]), the node descriptions a UI can render ([`NodeDescriptor`]),
//! the values that travel on links ([`Value`], carrying libtorch tensors by reference count, never by copy), the
//! context a node runs in ([`NodeContext`]: device, seed, progress, cancellation, a shared model cache) and the
//! structured error a node returns ([`NodeError`]). All of it is `abi_stable`, so a plugin built against an older
//! SDK keeps loading while only fields after the last prefix field are added.
//!
//! A node is declared once ([`declare`]: a [`Declared`] impl whose `declare` hands back typed handles that `run`
//! reads and writes through); [`kinds`] are the typed values on ports, [`edits`] the contracts editing nodes share;
//! [`export_plugin!`] turns a list of nodes into a plugin and catches any panic inside the boundary, turning it
//! into a [`NodeError`]. Start with [`prelude`] and `docs/WRITING_A_PLUGIN.md`.
//!
//! This crate touches nothing outside the process (no network) except through [`files`], the atomic-write helper
//! nodes and the host use for every file they produce.

#![deny(missing_docs)]

pub mod context;
pub mod declare;
pub mod edits;
pub mod error;
pub mod files;
pub mod kinds;
pub mod module;
pub mod node;
pub mod schema;
pub mod stats;
pub mod tensor;
pub mod value;

pub use context::{Ctx, DeviceSpec, HostServices, HostServices_TO, Model, ModelRef, Model_TO, NodeContext};
pub use declare::{Declare, Declared, Input, NodeInfo, Optional, Output, Param};
pub use error::{ErrorKind, NodeError, NodeResult};
pub use module::{BuildInfo, PluginAbout, PluginModule, PluginModuleRef, SDK_ABI_MAJOR, SDK_ABI_MINOR};
pub use node::{plugin_module, Node, NodeIo, PluginNodes};
pub use schema::{NodeDescriptor, ParamKind, ParamSpec, PortSpec};
pub use tensor::TensorRef;
pub use value::{port, Bundle, LabelGroup, LabelSchema, Labels, NamedTensor, NamedValue, Value};

#[doc(hidden)]
pub use abi_stable;
/// The random generator of [`Ctx::rng`], so plugins name it without depending on the crate.
pub use rand_chacha;
/// JSON, as bundle metadata and typed documents use it.
pub use serde_json;
pub use tch;

/// Everything a node author uses, in one import: `use subspace_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::declare::{Choice, Declare, Declared, Input, NodeInfo, Optional, Output, Param, PortValue};
    pub use crate::edits::{EditLayout, EditTarget};
    pub use crate::kinds::{Classifier, Curves, Directions, Gaussians, Generator, Images, Latents, Mixture};
    pub use crate::{port, Bundle, Ctx, LabelSchema, Labels, NodeError, NodeIo, NodeResult, Value};
    pub use tch::{Device, Kind, Tensor};
}

/// Exports the listed nodes as a Subspace plugin: types implementing [`Declared`], or, with `nodes: [...]`,
/// values implementing the low-level [`Node`] trait (nodes built at run time).
///
/// ```ignore
/// subspace_sdk::export_plugin!(Scale, Brighten);
/// subspace_sdk::export_plugin!(nodes: [MyRawNode::new("a"), MyRawNode::new("b")]);
/// ```
///
/// The exported symbol is abi_stable's root-module loader (what `#[export_root_module]` would emit), written
/// out here so that plugins depend on this SDK only.
#[macro_export]
macro_rules! export_plugin {
    (nodes: [$($node:expr),* $(,)?]) => {
        $crate::export_plugin!(@boxed $(::std::boxed::Box::new($node) as ::std::boxed::Box<dyn $crate::Node>),*);
    };
    (@boxed $($boxed:expr),*) => {
        #[doc(hidden)]
        pub struct __SubspacePlugin;
        impl $crate::PluginNodes for __SubspacePlugin {
            fn nodes() -> &'static [::std::boxed::Box<dyn $crate::Node>] {
                static NODES: ::std::sync::OnceLock<::std::vec::Vec<::std::boxed::Box<dyn $crate::Node>>> =
                    ::std::sync::OnceLock::new();
                NODES.get_or_init(|| ::std::vec![$($boxed),*])
            }
            fn about() -> $crate::module::PluginAbout {
                $crate::module::PluginAbout {
                    name: env!("CARGO_PKG_NAME").into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    description: env!("CARGO_PKG_DESCRIPTION").into(),
                }
            }
        }
        #[doc(hidden)]
        pub fn __subspace_root_module() -> $crate::PluginModuleRef {
            $crate::plugin_module::<__SubspacePlugin>()
        }
        // The name is abi_stable's `ROOT_MODULE_LOADER_NAME` (checked by a test in the SDK).
        #[doc(hidden)]
        #[no_mangle]
        pub static _1as_0lib_1header_0root_bmodule_bloader: $crate::abi_stable::library::LibHeader = {
            extern "C" fn erased() -> $crate::abi_stable::library::RootModuleResult {
                $crate::abi_stable::library::__call_root_module_loader(__subspace_root_module)
            }
            // SAFETY: `erased` builds the root module of exactly the type named here (what abi_stable's
            // `#[export_root_module]` emits), and the layout check stays on.
            unsafe {
                $crate::abi_stable::library::LibHeader::from_constructor::<$crate::PluginModuleRef>(
                    erased,
                    $crate::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
    ($($node:ty),* $(,)?) => {
        $crate::export_plugin!(@boxed $(::std::boxed::Box::new($crate::declare::DeclaredNode::<$node>::default())
            as ::std::boxed::Box<dyn $crate::Node>),*);
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn loader_symbol_matches_abi_stable() {
        assert_eq!(abi_stable::library::ROOT_MODULE_LOADER_NAME, "_1as_0lib_1header_0root_bmodule_bloader");
    }
}
