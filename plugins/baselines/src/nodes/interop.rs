//! Interop with InterFaceGAN's scripts: export codes and scores as `.npy`, import its boundaries as directions.

use super::DIRECTIONS_DOC;
use crate::directions::Directions;
use crate::files;
use std::path::Path;
use subspace_sdk::edits::codes_and_labels;
use subspace_sdk::files::output_param;
use subspace_sdk::prelude::*;

const CATEGORY: &str = "Baselines: Interop";

/// Writes codes and per-class scores in InterFaceGAN's layout.
pub struct ExportCodes {
    codes: Input<Latents>,
    labels: Input<Labels>,
    folder: Param<String>,
    written: Output<String>,
}

impl Declared for ExportCodes {
    const INFO: NodeInfo = NodeInfo {
        id: "subspace.export_codes",
        version: "1.0.0",
        name: "Export codes and scores",
        category: CATEGORY,
        doc: "Writes codes.npy (N x D float32), one <group>.<class>.npy of scores (N x 1 float32) per class (the \
              files InterFaceGAN's train_boundary reads), codes_labels.safetensors and schema.json, each atomically.",
    };

    fn declare(d: &mut Declare) -> Self {
        // Writes into the run's output folder, which is not part of the cache key.
        d.volatile();
        ExportCodes {
            codes: d.input("codes", "latent codes, N x D"),
            labels: d.input("labels", "their labels, N x K"),
            folder: d.path("folder", "export", "folder to write, relative to the run's output folder"),
            written: d.output("folder", "the folder written"),
        }
    }

    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        // The files are written from the CPU.
        let (z, l, schema) = codes_and_labels(io, &self.codes, &self.labels, Device::Cpu)?;
        let at = self.folder.name();
        let folder = io.read(&self.folder)?;
        // A folder, so a trailing '/' is allowed; otherwise the SDK's output-path policy.
        let dir = output_param(ctx, at, folder.trim_end_matches('/'))?;
        let written = files::export(&dir, &z, &l, &schema).map_err(|e| e.at(at))?;
        ctx.log(&format!("exported {} files to {}", written.len(), dir.display()));
        io.write(&self.written, dir.display().to_string());
        Ok(())
    }
}

/// Reads InterFaceGAN's boundary files as directions.
pub struct ImportDirections {
    folder: Param<String>,
    classes: Param<String>,
    directions: Output<Directions>,
}

impl Declared for ImportDirections {
    const INFO: NodeInfo = NodeInfo {
        id: "subspace.import_directions",
        version: "1.1.0",
        name: "Import boundaries",
        category: CATEGORY,
        doc: "Reads boundaries written by InterFaceGAN (<folder>/<group>.<class>.npy, a unit normal of shape (1, D) \
              or (D,)) as directions, grouped by <folder>/schema.json when present, else by each name's group.",
    };

    fn declare(d: &mut Declare) -> Self {
        ImportDirections {
            folder: d.input_path(
                "folder",
                "",
                "folder holding <group>.<class>.npy boundaries (and optionally schema.json); a relative path is read \
                 against the graph file's folder",
            ),
            classes: d.text(
                "classes",
                "",
                "comma-separated group.class names to read; empty: every class of \
                                            schema.json",
            ),
            directions: d.output("directions", DIRECTIONS_DOC),
        }
    }

    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let folder = io.read(&self.folder)?;
        if folder.trim().is_empty() {
            return Err(NodeError::param(self.folder.name(), "name the folder holding the boundaries"));
        }
        let at = files::ImportParams { folder: self.folder.name(), classes: self.classes.name() };
        let d = files::import(Path::new(folder.trim()), &io.read(&self.classes)?, at)?;
        io.write(&self.directions, d.to_device(ctx.device()));
        Ok(())
    }
}
