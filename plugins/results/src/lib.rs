//! Result nodes: image grids, curve and scatter plots and text reports written under the run's output folder, and
//! a cheap image preview for a UI. Every file is written atomically (a temporary file, then a rename), and every
//! path follows the SDK's output-path policy (`files::output_param`): inside `ctx.out_dir()`, never through a link.

pub mod grid;
pub mod plot;

/// The nodes, by family.
mod nodes {
    pub mod files;
    pub mod plots;
}

use nodes::files::{ImagePreview, SaveGrid, SaveText};
use nodes::plots::{PlotCurves, PlotPoints};
use std::path::{Path, PathBuf};
use subspace_sdk::prelude::*;

/// Parameter `file` resolved under the output folder.
fn out_path(io: &NodeIo<'_>, ctx: &Ctx<'_, '_>, file: &Param<String>) -> NodeResult<PathBuf> {
    subspace_sdk::files::output_param(ctx, file.name(), &io.read(file)?)
}

/// Writes `bytes` to `path` (which parameter `file` named) atomically and logs it; returns the path as shown.
fn write(path: &Path, bytes: &[u8], file: &Param<String>, ctx: &Ctx<'_, '_>) -> NodeResult<String> {
    subspace_sdk::files::write_bytes_atomic(path, bytes).map_err(|e| e.at(file.name()))?;
    let shown = path.display().to_string();
    ctx.log(&format!("wrote {shown}"));
    Ok(shown)
}

subspace_sdk::export_plugin!(SaveGrid, PlotCurves, PlotPoints, SaveText, ImagePreview);

/// Runs nodes as the host would, for the unit tests.
#[cfg(test)]
mod testing {
    use std::path::{Path, PathBuf};
    use subspace_sdk::abi_stable::sabi_trait::TD_Opaque;
    use subspace_sdk::abi_stable::std_types::{ROption, RStr};
    use subspace_sdk::declare::DeclaredNode;
    use subspace_sdk::prelude::*;
    use subspace_sdk::{DeviceSpec, HostServices, HostServices_TO, ModelRef, NamedValue, Node, NodeContext};

    struct Quiet;
    impl HostServices for Quiet {
        fn progress(&self, _: u64, _: u64, _: RStr<'_>) {}
        fn is_cancelled(&self) -> bool {
            false
        }
        fn log(&self, _: RStr<'_>) {}
        fn cached_model(&self, _: RStr<'_>) -> ROption<ModelRef> {
            ROption::RNone
        }
        fn cache_model(&self, _: RStr<'_>, _: ModelRef) {}
    }

    /// Node `T` as the plugin exports it.
    pub fn node<T: Declared>() -> DeclaredNode<T> {
        DeclaredNode::default()
    }

    /// Runs `node` as the host would: parameters defaulted, then overridden by `params`.
    pub fn run_node(
        node: &dyn Node,
        inputs: Vec<NamedValue>,
        params: &[(&str, Value)],
        out_dir: &Path,
    ) -> NodeResult<Vec<NamedValue>> {
        let d = node.descriptor();
        let params: Vec<NamedValue> = d
            .params
            .iter()
            .map(|p| {
                let given = params.iter().find(|(n, _)| *n == p.name.as_str());
                NamedValue::new(p.name.as_str(), given.map_or(p.default.clone(), |(_, v)| v.clone()))
            })
            .collect();
        let out_dir = out_dir.to_string_lossy().to_string();
        let svc = Quiet;
        let raw = NodeContext {
            node_id: RStr::from("test"),
            device: DeviceSpec::CPU,
            seed: 0,
            out_dir: RStr::from(out_dir.as_str()),
            services: HostServices_TO::from_const(&svc, TD_Opaque),
        };
        let ctx = Ctx { raw: &raw };
        let mut io = NodeIo::new(inputs.as_slice().into(), params.as_slice().into());
        node.run(&mut io, &ctx)?;
        Ok(io.into_outputs().into_vec())
    }

    /// A fresh scratch folder for test `name`.
    pub fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("subspace-results-node-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// The text on output `port`.
    pub fn text_of(out: &[NamedValue], port: &str) -> String {
        match &out.iter().find(|v| v.name.as_str() == port).unwrap().value {
            Value::Text(t) => t.to_string(),
            other => panic!("{port} is {}", other.port_type()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use subspace_sdk::Node;
    use testing::node;

    #[test]
    fn descriptors_are_complete_and_declared_once() {
        let nodes: [Box<dyn Node>; 5] = [
            Box::new(node::<SaveGrid>()),
            Box::new(node::<PlotCurves>()),
            Box::new(node::<PlotPoints>()),
            Box::new(node::<SaveText>()),
            Box::new(node::<ImagePreview>()),
        ];
        for n in &nodes {
            assert_eq!(n.problems(), Vec::<String>::new());
            let d = n.descriptor();
            assert!(d.id.starts_with("subspace."), "{}", d.id);
            // The layout became a typed value (2.0.0), a second edit can be drawn beside (2.1.0); save_text also
            // takes JSON documents (1.1.0).
            let version = match d.id.as_str() {
                "subspace.save_grid" => "2.1.0",
                "subspace.save_text" => "1.1.0",
                _ => "1.0.0",
            };
            assert_eq!(d.version.as_str(), version, "{}", d.id);
            assert!(d.category.starts_with("Results: "));
            for p in d.inputs.iter().chain(d.outputs.iter()) {
                assert!(!p.description.is_empty(), "{} port {}", d.id, p.name);
            }
            for p in d.params.iter() {
                assert!(!p.description.is_empty(), "{} param {}", d.id, p.name);
                p.check(&p.default).unwrap();
            }
        }
    }
}
