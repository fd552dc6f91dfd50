//! Save fit and Load mixture: fits on disk (see [`crate::store`]), so editing needs no refit.

use crate::gauss::Gaussians;
use crate::store;
use std::path::{Path, PathBuf};
use subspace_sdk::files::output_param;
use subspace_sdk::kinds;
use subspace_sdk::prelude::*;

const FILES: &str = "Method: Files";

pub(crate) struct SaveFit {
    fit: Input<Value>,
    file: Param<String>,
    written: Output<String>,
}

impl Declared for SaveFit {
    const INFO: NodeInfo = NodeInfo {
        id: "subspace.save_fit",
        version: "1.0.0",
        name: "Save fit",
        category: FILES,
        doc: "Saves a Gaussian group or mixture as <file>.safetensors (tensors and metadata, atomically), plus a \
              readable copy of the metadata in <file>.json.",
    };

    fn declare(d: &mut Declare) -> Self {
        // Writes into the run's output folder, which is not part of the cache key.
        d.volatile();
        SaveFit {
            fit: d.input("fit", "a gaussians or mixture bundle"),
            file: d.path("file", "mixture", "file stem, relative to the run's output folder"),
            written: d.output("file", "the .safetensors path written"),
        }
    }

    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let port = self.fit.name();
        let b = match io.read(&self.fit)? {
            Value::Bundle(b) if b.kind.as_str() == port::GAUSSIANS || b.kind.as_str() == port::MIXTURE => b,
            other => {
                let m = format!("expected gaussians or mixture, got {}", other.port_type());
                return Err(NodeError::input(port, m));
            }
        };
        Gaussians::from_bundle(&b, port)?;
        // Both files pass the output-path policy (either could be a link).
        let (param, file) = (self.file.name(), io.read(&self.file)?);
        let stem = Path::new(&file);
        let st = output_param(ctx, param, &stem.with_extension("safetensors").to_string_lossy())?;
        let js = output_param(ctx, param, &stem.with_extension("json").to_string_lossy())?;
        store::save(&st, &js, &b)?;
        io.write(&self.written, st.display().to_string());
        Ok(())
    }
}

pub(crate) struct LoadMixture {
    file: Param<String>,
    mixture: Output<kinds::Mixture>,
}

impl Declared for LoadMixture {
    const INFO: NodeInfo = NodeInfo {
        id: "subspace.load_mixture",
        // 1.1: `file` is an input path (the host resolves it: docs/GRAPH_FORMAT.md, "Paths"); its default names
        // what Save fit's default writes in the run's output folder.
        version: "1.1.0",
        name: "Load mixture",
        category: FILES,
        doc: "Loads a mixture saved by Save fit, checked (finite values, float dtypes, shapes that agree with \
              its schema), so editing needs no refit. The default reads what Save fit's default writes in the run's \
              output folder.",
    };

    fn declare(d: &mut Declare) -> Self {
        LoadMixture {
            file: d.input_path(
                "file",
                "$out/mixture",
                "file stem or .safetensors path (read, not written); $out/... is in the run's output folder",
            ),
            mixture: d.output("mixture", "the mixture"),
        }
    }

    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let param = self.file.name();
        let file = io.read(&self.file)?;
        let stem = PathBuf::from(file.strip_suffix(".safetensors").unwrap_or(&file));
        let st = stem.with_extension("safetensors");
        let js = stem.with_extension("json");
        let (meta, tensors) = store::load(&st, &js).map_err(|m| NodeError::param(param, m))?;
        if meta["kind"] != port::MIXTURE {
            let m = format!("{} holds a {}, not a mixture", st.display(), meta["kind"]);
            return Err(NodeError::param(param, m));
        }
        let mut b = Bundle::new(port::MIXTURE, &meta);
        for (name, t) in tensors {
            b = b.with(&name, t);
        }
        let refuse = |m: String| NodeError::param(param, format!("{}: {m}", st.display()));
        let g = Gaussians::from_bundle_checked(&b).map_err(refuse)?;
        let extra = serde_json::Value::Object(meta.as_object().cloned().unwrap_or_default());
        io.write(&self.mixture, kinds::Mixture(g.to_device(ctx.device()).to_bundle(port::MIXTURE, extra)));
        Ok(())
    }
}
