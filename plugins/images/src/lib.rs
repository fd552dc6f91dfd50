//! Your own pictures as nodes: load PNG/JPEG files or a folder (sized for the generator, names kept), invert them
//! into the generator's latent space (Adam on the codes, no encoder), and save edited pictures one file each,
//! named after their sources; plus a before/after batch for grids and agreement of labels with ground truth. The
//! inverted codes edit like sampled ones, so every editing and scoring node applies to them.
//!
//! Reads only the files its path parameters name; writes only under the run's output folder, through the SDK's
//! output-path policy and atomic writes.

pub mod invert;
pub mod load;

/// The nodes, by family.
pub mod nodes {
    pub mod compare;
    pub mod files;
    pub mod inversion;
}

use nodes::compare::{BeforeAfter, LabelAgreement};
use nodes::files::{LoadImages, SaveImages};
use nodes::inversion::Invert;
use serde::{Deserialize, Serialize};

/// The file names of loaded pictures, in order (port type `image.names`): what Save images names its files after.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct PictureNames {
    /// File names as found (`photo1.jpg`), one per picture.
    pub names: Vec<String>,
}
subspace_sdk::json_kind!(PictureNames = "image.names");

subspace_sdk::export_plugin!(LoadImages, Invert, SaveImages, BeforeAfter, LabelAgreement);

#[cfg(test)]
mod tests {
    use super::*;
    use subspace_sdk::declare::DeclaredNode;
    use subspace_sdk::Node;

    #[test]
    fn descriptors_are_complete_and_declared_once() {
        let nodes: [Box<dyn Node>; 5] = [
            Box::new(DeclaredNode::<LoadImages>::default()),
            Box::new(DeclaredNode::<Invert>::default()),
            Box::new(DeclaredNode::<SaveImages>::default()),
            Box::new(DeclaredNode::<BeforeAfter>::default()),
            Box::new(DeclaredNode::<LabelAgreement>::default()),
        ];
        for n in &nodes {
            assert_eq!(n.problems(), Vec::<String>::new());
            let d = n.descriptor();
            assert!(d.id.starts_with("subspace."), "{}", d.id);
            let version = if d.id.as_str() == "subspace.invert" { "1.1.0" } else { "1.0.0" };
            assert_eq!(d.version.as_str(), version, "{}", d.id);
            assert!(d.category.starts_with("Images: "));
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
