//! Finding and loading plugins: every shared library in the plugin directories is opened, its ABI checked by
//! abi_stable, its build info compared with the host's, and its node types listed. A broken or incompatible
//! plugin is reported and skipped; the others load.

use abi_stable::library::lib_header_from_path;
use abi_stable::std_types::{RErr, ROk, RResult, RSlice, RStr, RVec};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use subspace_sdk::module::{v1_0, v1_1};
use subspace_sdk::{BuildInfo, NamedValue, NodeContext, NodeDescriptor, NodeError, PluginAbout, PluginModuleRef};

/// A plugin's node entry point: `(node type id, inputs, parameters, context)` to named outputs.
pub type EvaluateFn = extern "C" fn(
    RStr<'_>,
    RSlice<'_, NamedValue>,
    RSlice<'_, NamedValue>,
    &NodeContext<'_>,
) -> RResult<RVec<NamedValue>, NodeError>;

/// A plugin that loaded.
pub struct Plugin {
    pub path: PathBuf,
    /// Runs one of its nodes.
    pub evaluate: EvaluateFn,
    pub info: BuildInfo,
    /// The plugin's name, version and description; `None` for plugins built against SDK ABI 1.0.
    pub about: Option<PluginAbout>,
    pub nodes: Vec<NodeDescriptor>,
    /// Each node's `subspace_sdk::module::flags`, in the order of `nodes` (all 0 before SDK ABI 1.2).
    pub flags: Vec<u64>,
    /// blake3 of the library file, read once at load: part of the disk cache's keys, so a rebuilt plugin never
    /// reads results of its earlier build.
    pub build_id: [u8; 32],
}

/// A node type and the plugin that provides it.
#[derive(Clone)]
pub struct NodeType {
    pub descriptor: NodeDescriptor,
    pub plugin: usize,
    /// The node's `subspace_sdk::module::flags`.
    pub flags: u64,
}

impl NodeType {
    /// Declared cacheable (`d.cacheable()`) and not volatile: its results may be kept on disk.
    pub fn cacheable(&self) -> bool {
        self.flags & subspace_sdk::module::flags::CACHEABLE != 0 && !self.descriptor.volatile
    }
}

/// Something wrong with a plugin file or with the set of plugins.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginProblem {
    pub path: PathBuf,
    pub message: String,
}

impl std::fmt::Display for PluginProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

/// All loaded plugins and their node types, by id.
#[derive(Default)]
pub struct Registry {
    pub plugins: Vec<Plugin>,
    pub nodes: BTreeMap<String, NodeType>,
    /// Plugins refused or skipped, duplicate node ids.
    pub problems: Vec<PluginProblem>,
}

/// The host's own build info: what every plugin must match.
pub fn host_build_info() -> BuildInfo {
    BuildInfo::current(concat!("subspace-host ", env!("CARGO_PKG_VERSION")))
}

/// Shared-library files directly inside `dir`, sorted.
pub fn library_files(dir: &Path) -> Vec<PathBuf> {
    let suffix = std::env::consts::DLL_SUFFIX;
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
    files.retain(|p| p.is_file() && p.to_string_lossy().ends_with(suffix));
    files.sort();
    files
}

impl Registry {
    /// Loads every plugin in `dirs` (missing directories are reported, not fatal).
    pub fn load(dirs: &[PathBuf]) -> Registry {
        let mut reg = Registry::default();
        for dir in dirs {
            if !dir.is_dir() {
                reg.problems
                    .push(PluginProblem { path: dir.clone(), message: "plugin directory does not exist".into() });
                continue;
            }
            for file in library_files(dir) {
                reg.load_file(&file);
            }
        }
        reg
    }

    /// Loads one plugin file; on failure records a problem naming the file.
    pub fn load_file(&mut self, path: &Path) {
        // The same file reached through two directories loads once.
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if self.plugins.iter().any(|p| p.path.canonicalize().ok().as_ref() == Some(&canonical)) {
            return;
        }
        match open(path) {
            Ok(plugin) => {
                let index = self.plugins.len();
                for (d, &flags) in plugin.nodes.iter().zip(&plugin.flags) {
                    let id = d.id.to_string();
                    if let Some(existing) = self.nodes.get(&id) {
                        self.problems.push(PluginProblem {
                            path: path.to_path_buf(),
                            message: format!(
                                "duplicate node id '{id}': already provided by {}; this one is ignored",
                                self.plugins[existing.plugin].path.display()
                            ),
                        });
                        continue;
                    }
                    self.nodes.insert(id, NodeType { descriptor: d.clone(), plugin: index, flags });
                }
                self.plugins.push(plugin);
            }
            Err(message) => self.problems.push(PluginProblem { path: path.to_path_buf(), message }),
        }
    }

    pub fn node(&self, id: &str) -> Option<&NodeType> {
        self.nodes.get(id)
    }
}

/// The root module's entry points, whichever SDK layout the plugin was built with.
struct Entry {
    build_info: extern "C" fn() -> BuildInfo,
    describe: extern "C" fn() -> RResult<RVec<NodeDescriptor>, NodeError>,
    evaluate: EvaluateFn,
    about: Option<PluginAbout>,
    node_flags: Option<extern "C" fn(RStr<'_>) -> u64>,
}

/// Opens the root module with today's layout, else with a frozen earlier one. abi_stable accepts a library whose
/// prefix type has more fields than the host's (a newer plugin), not fewer, so a host keeps every earlier SDK
/// minor's layout (`subspace_sdk::module::v1_1`, `v1_0`) and tries them newest first.
fn entry(header: &abi_stable::library::LibHeader) -> Result<Entry, String> {
    let today = match header.init_root_module::<PluginModuleRef>() {
        Ok(m) => {
            let (about, node_flags) = (m.about().map(|f| f()), m.node_flags());
            let (build_info, describe, evaluate) = (m.build_info(), m.describe(), m.evaluate());
            return Ok(Entry { build_info, describe, evaluate, about, node_flags });
        }
        Err(e) => e,
    };
    if let Ok(m) = header.init_root_module::<v1_1::PluginModuleRef>() {
        let about = m.about().map(|f| f());
        let (build_info, describe, evaluate) = (m.build_info(), m.describe(), m.evaluate());
        return Ok(Entry { build_info, describe, evaluate, about, node_flags: None });
    }
    match header.init_root_module::<v1_0::PluginModuleRef>() {
        Ok(m) => {
            let (build_info, describe, evaluate) = (m.build_info(), m.describe(), m.evaluate());
            Ok(Entry { build_info, describe, evaluate, about: None, node_flags: None })
        }
        Err(_) => Err(format!("incompatible plugin ABI (the plugin was built against another SDK): {today}")),
    }
}

fn open(path: &Path) -> Result<Plugin, String> {
    // Read once here: plugin files are a few MB, and hashing them costs milliseconds.
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let build_id = *blake3::hash(&bytes).as_bytes();
    drop(bytes);
    let header = lib_header_from_path(path).map_err(|e| format!("not a Subspace plugin: {e}"))?;
    let entry = entry(header)?;
    let info = (entry.build_info)();
    let host = host_build_info();
    if let Some(why) = info.incompatibility(&host) {
        return Err(format!(
            "refused: plugin '{}' was built for {why}; rebuild it against this host's SDK",
            info.plugin
        ));
    }
    let nodes = match (entry.describe)() {
        ROk(list) => list.into_vec(),
        RErr(e) => return Err(format!("could not list its nodes: {e}")),
    };
    let flags = nodes.iter().map(|d| entry.node_flags.map_or(0, |f| f(d.id.as_rstr()))).collect();
    Ok(Plugin { path: path.to_path_buf(), evaluate: entry.evaluate, info, about: entry.about, nodes, flags, build_id })
}
