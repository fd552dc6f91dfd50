//! A plugin as built against SDK ABI 1.0: its root module has the 1.0 layout (no `about`) and its build info says
//! 1.0. The host, built against a later compatible SDK, must load it and run its node. The node code is today's;
//! only the boundary is frozen, which is what a compatible SDK change may not break.

use subspace_sdk::abi_stable::{
    library::{CheckTypeLayout, LibHeader, RootModuleResult},
    prefix_type::PrefixTypeTrait,
};
use subspace_sdk::module::v1_0;
use subspace_sdk::prelude::*;
use subspace_sdk::{BuildInfo, PluginNodes};

struct Double {
    value: Input<f64>,
    out: Output<f64>,
}
impl Declared for Double {
    const INFO: NodeInfo =
        NodeInfo { id: "old.double", version: "1.0.0", name: "Double", category: "Test", doc: "2 x value" };
    fn declare(d: &mut Declare) -> Self {
        Double { value: d.input("value", "a number"), out: d.output("value", "twice the number") }
    }
    fn run(&self, io: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
        let v = io.read(&self.value)?;
        io.write(&self.out, 2.0 * v);
        Ok(())
    }
}

/// The node list, as `export_plugin!` would make it (the macro would also export today's root module).
struct Nodes;
impl PluginNodes for Nodes {
    fn nodes() -> &'static [Box<dyn subspace_sdk::Node>] {
        static NODES: std::sync::OnceLock<Vec<Box<dyn subspace_sdk::Node>>> = std::sync::OnceLock::new();
        NODES.get_or_init(|| vec![Box::new(subspace_sdk::declare::DeclaredNode::<Double>::default())])
    }
    fn about() -> subspace_sdk::PluginAbout {
        unreachable!("SDK ABI 1.0 has no `about`")
    }
}

extern "C" fn build_info() -> BuildInfo {
    BuildInfo { sdk_abi_minor: 0, ..BuildInfo::current("subspace-test-old-sdk (SDK ABI 1.0)") }
}

fn root_module() -> v1_0::PluginModuleRef {
    // Today's node glue (describe, evaluate) behind the 1.0 layout.
    let today = subspace_sdk::plugin_module::<Nodes>();
    v1_0::PluginModule { build_info, describe: today.describe(), evaluate: today.evaluate() }.leak_into_prefix()
}

#[no_mangle]
pub static _1as_0lib_1header_0root_bmodule_bloader: LibHeader = {
    extern "C" fn erased() -> RootModuleResult {
        subspace_sdk::abi_stable::library::__call_root_module_loader(root_module)
    }
    // SAFETY: `erased` builds the root module of the type named here, as abi_stable's own macro would.
    unsafe { LibHeader::from_constructor::<v1_0::PluginModuleRef>(erased, CheckTypeLayout::Yes) }
};
