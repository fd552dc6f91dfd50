//! A plugin as built against SDK ABI 1.1: its root module has the 1.1 layout (`about`, no `node_flags`) and its
//! build info says 1.1. The host, built against a later compatible SDK, must load it, read its `about`, treat its
//! nodes as having no flags (never cached on disk, though this one declares itself cacheable) and run them.

use subspace_sdk::abi_stable::{
    library::{CheckTypeLayout, LibHeader, RootModuleResult},
    prefix_type::PrefixTypeTrait,
};
use subspace_sdk::module::v1_1;
use subspace_sdk::prelude::*;
use subspace_sdk::{BuildInfo, PluginNodes};

struct Triple {
    value: Input<f64>,
    out: Output<f64>,
}
impl Declared for Triple {
    const INFO: NodeInfo =
        NodeInfo { id: "old11.triple", version: "1.0.0", name: "Triple", category: "Test", doc: "3 x value" };
    fn declare(d: &mut Declare) -> Self {
        // Today's SDK records the flag; the 1.1 layout cannot carry it to the host.
        d.cacheable();
        Triple { value: d.input("value", "a number"), out: d.output("value", "three times the number") }
    }
    fn run(&self, io: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
        let v = io.read(&self.value)?;
        io.write(&self.out, 3.0 * v);
        Ok(())
    }
}

/// The node list, as `export_plugin!` would make it (the macro would also export today's root module).
struct Nodes;
impl PluginNodes for Nodes {
    fn nodes() -> &'static [Box<dyn subspace_sdk::Node>] {
        static NODES: std::sync::OnceLock<Vec<Box<dyn subspace_sdk::Node>>> = std::sync::OnceLock::new();
        NODES.get_or_init(|| vec![Box::new(subspace_sdk::declare::DeclaredNode::<Triple>::default())])
    }
    fn about() -> subspace_sdk::PluginAbout {
        subspace_sdk::PluginAbout {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }
}

extern "C" fn build_info() -> BuildInfo {
    BuildInfo { sdk_abi_minor: 1, ..BuildInfo::current("subspace-test-sdk-1-1 (SDK ABI 1.1)") }
}

fn root_module() -> v1_1::PluginModuleRef {
    // Today's node glue (describe, evaluate, about) behind the 1.1 layout.
    let today = subspace_sdk::plugin_module::<Nodes>();
    let about = today.about().expect("today's glue has `about`");
    v1_1::PluginModule { build_info, describe: today.describe(), evaluate: today.evaluate(), about }.leak_into_prefix()
}

#[no_mangle]
pub static _1as_0lib_1header_0root_bmodule_bloader: LibHeader = {
    extern "C" fn erased() -> RootModuleResult {
        subspace_sdk::abi_stable::library::__call_root_module_loader(root_module)
    }
    // SAFETY: `erased` builds the root module of the type named here, as abi_stable's own macro would.
    unsafe { LibHeader::from_constructor::<v1_1::PluginModuleRef>(erased, CheckTypeLayout::Yes) }
};
