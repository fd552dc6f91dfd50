//! A plugin built as if against another SDK ABI major and another libtorch: the host must refuse it by name and
//! never call its nodes. Its root module is written out by hand (what `export_plugin!` does) to fake the build info.

use subspace_sdk::abi_stable::{
    library::{CheckTypeLayout, LibHeader, RootModuleResult},
    prefix_type::PrefixTypeTrait,
    std_types::{RResult, RSlice, RStr, RVec},
};
use subspace_sdk::*;

extern "C" fn build_info() -> BuildInfo {
    BuildInfo {
        sdk_abi_major: SDK_ABI_MAJOR + 98,
        sdk_abi_minor: 0,
        libtorch: "1.13.1+cpu".into(),
        cxx11_abi: false,
        plugin: "subspace-test-mismatch".into(),
    }
}

extern "C" fn describe() -> RResult<RVec<NodeDescriptor>, NodeError> {
    RResult::ROk(vec![NodeDescriptor::new("mismatch.node", "1.0.0", "Mismatch", "Test", "must never be listed")].into())
}

extern "C" fn evaluate(
    _: RStr<'_>,
    _: RSlice<'_, NamedValue>,
    _: RSlice<'_, NamedValue>,
    _: &NodeContext<'_>,
) -> RResult<RVec<NamedValue>, NodeError> {
    std::process::abort() // never reached: the host refuses this plugin
}

extern "C" fn about() -> PluginAbout {
    PluginAbout { name: "subspace-test-mismatch".into(), version: "0.0.0".into(), description: "".into() }
}

extern "C" fn node_flags(_: RStr<'_>) -> u64 {
    0
}

fn root_module() -> PluginModuleRef {
    PluginModule { build_info, describe, evaluate, about, node_flags }.leak_into_prefix()
}

#[no_mangle]
pub static _1as_0lib_1header_0root_bmodule_bloader: LibHeader = {
    extern "C" fn erased() -> RootModuleResult {
        subspace_sdk::abi_stable::library::__call_root_module_loader(root_module)
    }
    // SAFETY: `erased` builds the root module of the type named here, as abi_stable's own macro would.
    unsafe { LibHeader::from_constructor::<PluginModuleRef>(erased, CheckTypeLayout::Yes) }
};
