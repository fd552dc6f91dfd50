//! The root module every plugin exports, and the build-info handshake.

use crate::{context::NodeContext, error::NodeError, schema::NodeDescriptor, value::NamedValue};
use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings,
    sabi_types::VersionStrings,
    std_types::{RResult, RSlice, RStr, RString, RVec},
    StableAbi,
};

/// Bumped when a change breaks built plugins (the host refuses other majors).
pub const SDK_ABI_MAJOR: u32 = 1;
/// Bumped when fields are appended after the last prefix field (older plugins still load).
/// 1.1 appended [`PluginModule::about`], 1.2 [`PluginModule::node_flags`].
pub const SDK_ABI_MINOR: u32 = 2;

/// Bits of [`PluginModule::node_flags`]: what the host may do with a node type's results.
pub mod flags {
    /// The node's outputs depend only on its inputs, its parameters and the files those name: the host may keep
    /// them on disk across runs (see [`crate::declare::Declare::cacheable`]).
    pub const CACHEABLE: u64 = 1;
    /// Bit of the first parameter: parameter `i` (in declaration order, `i < 56`) is a file or folder the node
    /// reads ([`crate::declare::Declare::input_path`]) when bit `READS_PATH + i` is set. The host resolves such a
    /// value before the node sees it (docs/GRAPH_FORMAT.md, "Paths"); other parameters, and every parameter of a
    /// plugin built before this bit, reach the node as written.
    pub const READS_PATH: u32 = 8;

    /// Whether `flags` mark parameter `index` as a path the node reads.
    pub fn reads_path(flags: u64, index: usize) -> bool {
        index < (64 - READS_PATH as usize) && flags & (1u64 << (READS_PATH as usize + index)) != 0
    }
}

/// What a plugin was built against. The host refuses a plugin whose SDK major, libtorch version or C++ ABI
/// differs from its own, naming the file and both versions.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct BuildInfo {
    /// SDK ABI major the plugin was built against: the host refuses other majors.
    pub sdk_abi_major: u32,
    /// SDK ABI minor: the host refuses plugins newer than itself.
    pub sdk_abi_minor: u32,
    /// libtorch version, e.g. `2.11.0+cu130`.
    pub libtorch: RString,
    /// `_GLIBCXX_USE_CXX11_ABI` libtorch was compiled with.
    pub cxx11_abi: bool,
    /// The plugin crate's own name and version.
    pub plugin: RString,
}

impl BuildInfo {
    /// The build info of the code calling this (the SDK compiled into that binary).
    pub fn current(plugin: &str) -> BuildInfo {
        BuildInfo {
            sdk_abi_major: SDK_ABI_MAJOR,
            sdk_abi_minor: SDK_ABI_MINOR,
            libtorch: env!("SUBSPACE_LIBTORCH_VERSION").into(),
            cxx11_abi: env!("SUBSPACE_CXX11_ABI") == "1",
            plugin: plugin.into(),
        }
    }

    /// Why `self` (a plugin) cannot run in a host built as `host`, if it cannot.
    pub fn incompatibility(&self, host: &BuildInfo) -> Option<String> {
        if self.sdk_abi_major != host.sdk_abi_major || self.sdk_abi_minor > host.sdk_abi_minor {
            return Some(format!(
                "SDK ABI {}.{} (host has {}.{})",
                self.sdk_abi_major, self.sdk_abi_minor, host.sdk_abi_major, host.sdk_abi_minor
            ));
        }
        if self.libtorch != host.libtorch {
            return Some(format!("libtorch {} (host has {})", self.libtorch, host.libtorch));
        }
        if self.cxx11_abi != host.cxx11_abi {
            return Some(format!("C++11 ABI {} (host has {})", self.cxx11_abi, host.cxx11_abi));
        }
        None
    }
}

/// The root module of a plugin.
///
/// A prefix type: fields may only be appended after `evaluate` (the last prefix field), so that a host built
/// against a later SDK still loads plugins built against this one; moving the marker breaks every built plugin.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
#[sabi(missing_field(panic))]
pub struct PluginModule {
    /// The build-info handshake.
    pub build_info: extern "C" fn() -> BuildInfo,
    /// The plugin's node types.
    pub describe: extern "C" fn() -> RResult<RVec<NodeDescriptor>, NodeError>,
    /// Runs one node: `(node type id, inputs, parameters, context)` to named outputs.
    #[sabi(last_prefix_field)]
    pub evaluate: extern "C" fn(
        RStr<'_>,
        RSlice<'_, NamedValue>,
        RSlice<'_, NamedValue>,
        &NodeContext<'_>,
    ) -> RResult<RVec<NamedValue>, NodeError>,
    /// Since SDK ABI 1.1: the plugin crate's name, version and description (from its Cargo.toml). A plugin built
    /// against 1.0 lacks it; the host then reads `None`.
    #[sabi(missing_field(option))]
    pub about: extern "C" fn() -> PluginAbout,
    /// Since SDK ABI 1.2: the [`flags`] of the node type with this id (0 for an unknown id). A plugin built against
    /// 1.0 or 1.1 lacks it; the host then reads `None` and treats every node as having no flags.
    #[sabi(missing_field(option))]
    pub node_flags: extern "C" fn(RStr<'_>) -> u64,
}

/// What a plugin says of itself: its crate's name, version and description.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct PluginAbout {
    /// Crate name.
    pub name: RString,
    /// Crate version.
    pub version: RString,
    /// Crate description.
    pub description: RString,
}

impl RootModule for PluginModuleRef {
    declare_root_module_statics! {PluginModuleRef}
    const BASE_NAME: &'static str = "subspace_plugin";
    const NAME: &'static str = "subspace_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// The root module exactly as SDK ABI 1.1 laid it out, frozen. Not for new plugins: the test plugin
/// `subspace-test-sdk-1-1` exports it, to prove that a host of a later SDK still loads plugins built against 1.1.
#[doc(hidden)]
pub mod v1_1 {
    use super::*;

    /// The 1.1 root module: `build_info`, `describe`, `evaluate`, then `about`.
    #[repr(C)]
    #[derive(StableAbi)]
    #[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
    #[sabi(missing_field(panic))]
    pub struct PluginModule {
        pub build_info: extern "C" fn() -> BuildInfo,
        pub describe: extern "C" fn() -> RResult<RVec<NodeDescriptor>, NodeError>,
        #[sabi(last_prefix_field)]
        pub evaluate: extern "C" fn(
            RStr<'_>,
            RSlice<'_, NamedValue>,
            RSlice<'_, NamedValue>,
            &NodeContext<'_>,
        ) -> RResult<RVec<NamedValue>, NodeError>,
        #[sabi(missing_field(option))]
        pub about: extern "C" fn() -> PluginAbout,
    }

    impl RootModule for PluginModuleRef {
        declare_root_module_statics! {PluginModuleRef}
        const BASE_NAME: &'static str = "subspace_plugin";
        const NAME: &'static str = "subspace_plugin";
        const VERSION_STRINGS: VersionStrings = package_version_strings!();
    }
}

/// The root module exactly as SDK ABI 1.0 laid it out, frozen. Not for new plugins: the test plugin
/// `subspace-test-old-sdk` exports it, to prove that a host of a later SDK still loads plugins built against 1.0.
#[doc(hidden)]
pub mod v1_0 {
    use super::*;

    /// The 1.0 root module: `build_info`, `describe`, `evaluate`.
    #[repr(C)]
    #[derive(StableAbi)]
    #[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
    #[sabi(missing_field(panic))]
    pub struct PluginModule {
        pub build_info: extern "C" fn() -> BuildInfo,
        pub describe: extern "C" fn() -> RResult<RVec<NodeDescriptor>, NodeError>,
        #[sabi(last_prefix_field)]
        pub evaluate: extern "C" fn(
            RStr<'_>,
            RSlice<'_, NamedValue>,
            RSlice<'_, NamedValue>,
            &NodeContext<'_>,
        ) -> RResult<RVec<NamedValue>, NodeError>,
    }

    impl RootModule for PluginModuleRef {
        declare_root_module_statics! {PluginModuleRef}
        const BASE_NAME: &'static str = "subspace_plugin";
        const NAME: &'static str = "subspace_plugin";
        const VERSION_STRINGS: VersionStrings = package_version_strings!();
    }
}
