//! Baselines for the method's edits, on the same codes and labels (see README.md): InterFaceGAN boundaries,
//! GANSpace (PCA) and SeFa directions, a linear edit along any of them (plain or conditional), and interop with
//! InterFaceGAN's own scripts through `.npy` files.

// `!(x > limit)` is how these checks also refuse NaN; the rewrite clippy asks for would let NaN through.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod directions;
pub mod files;
pub mod linear;
mod nodes;

use nodes::editing::DirectionEdit;
use nodes::fitting::{GanSpace, InterFaceGan, SeFa};
use nodes::interop::{ExportCodes, ImportDirections};

subspace_sdk::export_plugin!(InterFaceGan, GanSpace, SeFa, DirectionEdit, ExportCodes, ImportDirections);

#[cfg(test)]
mod tests {
    use subspace_sdk::{edits, node::declaration_problems, port, PluginNodes};

    #[test]
    fn every_node_is_declared_cleanly_and_described() {
        let nodes = crate::__SubspacePlugin::nodes();
        assert_eq!(nodes.len(), 6);
        assert_eq!(declaration_problems(nodes), Vec::<String>::new());
        for node in nodes {
            let d = node.descriptor();
            assert!(d.id.starts_with("subspace."));
            // direction_edit's layout became a typed value (a new major version); SeFa works in W/W+ and Import
            // boundaries reads its folder as an input path (minor versions); the others are unchanged.
            let version = match d.id.as_str() {
                "subspace.direction_edit" => "2.0.0",
                "subspace.sefa" | "subspace.import_directions" => "1.1.0",
                _ => "1.0.0",
            };
            assert_eq!(d.version.as_str(), version, "{}", d.id);
            assert!(d.category.starts_with("Baselines"));
            for p in d.inputs.iter().chain(d.outputs.iter()) {
                assert!(!p.description.is_empty(), "{}: port {}", d.id, p.name);
            }
            for p in d.params.iter() {
                assert!(!p.description.is_empty(), "{}: param {}", d.id, p.name);
                p.check(&p.default).unwrap();
            }
            assert_eq!(d.volatile, d.id.as_str() == "subspace.export_codes", "{}", d.id);
            if d.id.as_str() == "subspace.direction_edit" {
                assert_eq!(d.find_output("layout").unwrap().ty.as_str(), edits::LAYOUT);
            }
            if let Some(p) = d.find_output("directions") {
                assert_eq!(p.ty.as_str(), port::DIRECTIONS);
            }
        }
    }
}
