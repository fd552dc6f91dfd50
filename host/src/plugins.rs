//! Finding and loading plugins: every shared library in the plugin directories is opened, its ABI checked by
//! abi_stable, its build info compared with the host's, and its node types listed. A broken or incompatible
//! plugin is reported and skipped; the others load.

use abi_stable::library::lib_header_from_path;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use subspace_sdk::{BuildInfo, NodeDescriptor, PluginModuleRef};

/// A plugin that loaded.
pub struct Plugin {
    pub path: PathBuf,
    pub module: PluginModuleRef,
    pub info: BuildInfo,
    pub nodes: Vec<NodeDescriptor>,
}

/// A node type and the plugin that provides it.
#[derive(Clone)]
pub struct NodeType {
    pub descriptor: NodeDescriptor,
    pub plugin: usize,
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
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
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
                reg.problems.push(PluginProblem { path: dir.clone(), message: "plugin directory does not exist".into() });
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
                for d in &plugin.nodes {
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
                    self.nodes.insert(id, NodeType { descriptor: d.clone(), plugin: index });
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

fn open(path: &Path) -> Result<Plugin, String> {
    let header = lib_header_from_path(path).map_err(|e| format!("not a Subspace plugin: {e}"))?;
    let module = header
        .init_root_module::<PluginModuleRef>()
        .map_err(|e| format!("incompatible plugin ABI (the plugin was built against another SDK): {e}"))?;
    let info = (module.build_info())();
    let host = host_build_info();
    if let Some(why) = info.incompatibility(&host) {
        return Err(format!(
            "refused: plugin '{}' was built for {why}; rebuild it against this host's SDK",
            info.plugin
        ));
    }
    let nodes = match (module.describe())() {
        abi_stable::std_types::ROk(list) => list.into_vec(),
        abi_stable::std_types::RErr(e) => return Err(format!("could not list its nodes: {e}")),
    };
    Ok(Plugin { path: path.to_path_buf(), module, info, nodes })
}
