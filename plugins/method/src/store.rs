//! Fits on disk: `<stem>.safetensors` holds the tensors and, in its header's `__metadata__` (key [`META_KEY`]),
//! the fit's metadata JSON; `<stem>.json` beside it is a copy for people to read.
//!
//! One self-sufficient file rather than a pair: the tensors and their description are renamed into place in one
//! step, so a reader never sees new tensors with old metadata, whenever the writer is killed. A manifest with a
//! hash would need a third file and a check on every load; this needs neither. Files written before the metadata
//! was embedded are still read, with the .json beside them.

use safetensors::tensor::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use subspace_sdk::files::write_bytes_atomic;
use subspace_sdk::tch::{Device, Kind, Tensor};
use subspace_sdk::{Bundle, NodeError, NodeResult};

/// The key of the fit's metadata in the safetensors header.
pub const META_KEY: &str = "subspace.fit";

/// One tensor's bytes, as the safetensors writer takes them.
struct Raw {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for Raw {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn raw(name: &str, t: &Tensor) -> Result<Raw, String> {
    let t = t.detach().to_device(Device::Cpu).contiguous();
    let dtype = match t.kind() {
        Kind::Float => Dtype::F32,
        Kind::Double => Dtype::F64,
        Kind::Half => Dtype::F16,
        Kind::BFloat16 => Dtype::BF16,
        k => return Err(format!("tensor '{name}' has dtype {k:?}; a fit holds floating-point tensors")),
    };
    let numel = t.numel();
    let mut data = vec![0u8; numel * t.kind().elt_size_in_bytes()];
    t.f_copy_data_u8(&mut data, numel).map_err(|e| format!("tensor '{name}': {e}"))?;
    Ok(Raw { dtype, shape: t.size().iter().map(|&s| s as usize).collect(), data })
}

/// Writes bundle `b` to `st` (tensors and metadata, atomically), then its metadata alone to `js`.
pub fn save(st: &Path, js: &Path, b: &Bundle) -> NodeResult<()> {
    let meta = b.meta_json();
    let tensors = b
        .tensors
        .iter()
        .map(|t| Ok((t.name.to_string(), raw(t.name.as_str(), &t.tensor.tensor())?)))
        .collect::<Result<Vec<_>, String>>()
        .map_err(|m| NodeError::input("fit", m))?;
    let header = HashMap::from([(META_KEY.to_string(), meta.to_string())]);
    let bytes = safetensors::tensor::serialize(tensors, &Some(header))
        .map_err(|e| NodeError::internal(format!("{}: cannot encode: {e:?}", st.display())))?;
    write_bytes_atomic(st, &bytes)?;
    let pretty = serde_json::to_string_pretty(&meta).unwrap_or_default();
    write_bytes_atomic(js, pretty.as_bytes())
}

/// Reads a fit written by [`save`]: its metadata (from the .safetensors, or from the .json `js` beside a file
/// written before the metadata was embedded) and its tensors. Errors name the file (and the tensor).
pub fn load(st: &Path, js: &Path) -> Result<(serde_json::Value, Vec<(String, Tensor)>), String> {
    let bytes = std::fs::read(st).map_err(|e| format!("{}: cannot read: {e}", st.display()))?;
    let not_one = |e| format!("{}: not a safetensors file: {e:?}", st.display());
    let file = SafeTensors::deserialize(&bytes).map_err(not_one)?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| format!("{}: {e:?}", st.display()))?;
    let meta: serde_json::Value = match header.metadata().as_ref().and_then(|m| m.get(META_KEY)) {
        Some(text) => {
            serde_json::from_str(text).map_err(|e| format!("{}: invalid embedded metadata: {e}", st.display()))?
        }
        None => {
            let text = std::fs::read_to_string(js).map_err(|e| format!("{}: cannot read: {e}", js.display()))?;
            serde_json::from_str(&text).map_err(|e| format!("{}: invalid JSON: {e}", js.display()))?
        }
    };
    let mut tensors = Vec::new();
    for (name, view) in file.tensors() {
        let t = Tensor::try_from(view).map_err(|e| format!("{}: tensor '{name}': {e}", st.display()))?;
        tensors.push((name, t));
    }
    Ok((meta, tensors))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gauss::{Gaussians, Normalization};
    use subspace_sdk::{port, LabelGroup, LabelSchema};

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("subspace-method-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn mixture(rank: i64) -> Bundle {
        let group = LabelGroup { name: "g".into(), classes: vec!["a".into(), "b".into()].into() };
        let schema = LabelSchema { groups: vec![group].into() };
        let opts = (Kind::Float, Device::Cpu);
        let g = Gaussians {
            mu: Tensor::randn([2, 5], opts),
            log_sd: Tensor::randn([2, 5], opts) * 0.1,
            u: Tensor::randn([2, 5, rank], opts),
            log_w: Tensor::zeros([2], opts),
            schema,
            norm: Normalization::Group,
        };
        g.to_bundle(port::MIXTURE, serde_json::json!({"report": {"note": format!("rank {rank}")}}))
    }

    fn same(a: &Bundle, meta: &serde_json::Value, tensors: &[(String, Tensor)]) {
        assert_eq!(&a.meta_json(), meta);
        assert_eq!(tensors.len(), a.tensors.len());
        for (name, t) in tensors {
            assert!(a.get(name).unwrap().equal(t), "tensor {name} differs");
        }
    }

    #[test]
    fn the_safetensors_file_alone_holds_the_fit() {
        let dir = scratch("alone");
        let (st, js) = (dir.join("m.safetensors"), dir.join("m.json"));
        let first = mixture(1);
        save(&st, &js, &first).unwrap();
        let (meta, tensors) = load(&st, &js).unwrap();
        same(&first, &meta, &tensors);
        let readable: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&js).unwrap()).unwrap();
        assert_eq!(readable, meta);

        // A kill between the two renames leaves a new .safetensors beside an old .json: the reader still sees
        // the new fit whole, and without the .json at all.
        let old_json = std::fs::read(&js).unwrap();
        let second = mixture(3);
        save(&st, &js, &second).unwrap();
        std::fs::write(&js, &old_json).unwrap();
        let (meta, tensors) = load(&st, &js).unwrap();
        same(&second, &meta, &tensors);
        std::fs::remove_file(&js).unwrap();
        assert!(load(&st, &js).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn files_without_embedded_metadata_are_read_with_their_json() {
        let dir = scratch("older");
        let (st, js) = (dir.join("m.safetensors"), dir.join("m.json"));
        let b = mixture(2);
        let named: Vec<(String, Tensor)> = b.tensors.iter().map(|t| (t.name.to_string(), t.tensor.tensor())).collect();
        Tensor::write_safetensors(&named, &st).unwrap();
        let e = load(&st, &js).unwrap_err();
        assert!(e.contains("m.json"), "{e}");
        std::fs::write(&js, b.meta_json().to_string()).unwrap();
        let (meta, tensors) = load(&st, &js).unwrap();
        same(&b, &meta, &tensors);
        std::fs::write(&st, b"not safetensors").unwrap();
        assert!(load(&st, &js).unwrap_err().contains("m.safetensors"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn loaded_fits_are_checked_tensor_by_tensor() {
        let good = mixture(2);
        assert!(Gaussians::from_bundle_checked(&good).is_ok());
        let with = |name: &str, t: Tensor| {
            let mut b = Bundle::new(port::MIXTURE, &good.meta_json());
            for nt in good.tensors.iter() {
                let keep = if nt.name.as_str() == name { t.shallow_clone() } else { nt.tensor.tensor() };
                b = b.with(nt.name.as_str(), keep);
            }
            Gaussians::from_bundle_checked(&b).err().unwrap_or_default()
        };
        let mu = good.get("mu").unwrap();
        let cases = [
            ("mu", mu.copy().fill_(f64::NAN), "NaN or infinite"),
            ("log_sd", good.get("log_sd").unwrap().copy().fill_(f64::INFINITY), "NaN or infinite"),
            ("log_w", Tensor::from_slice(&[0.0f32, f32::NEG_INFINITY]), "NaN or infinite"),
            ("mu", mu.to_kind(Kind::Int64), "dtype Int64"),
            ("log_w", Tensor::zeros([3], (Kind::Float, Device::Cpu)), "disagree"),
            ("u", Tensor::zeros([2, 5, 4], (Kind::Float, Device::Cpu)), "rank 2, the tensors 4"),
            ("mu", Tensor::zeros([2, 5, 1], (Kind::Float, Device::Cpu)), "K x D"),
        ];
        for (name, t, says) in cases {
            let e = with(name, t);
            assert!(e.contains(says) && (says == "disagree" || e.contains(name)), "{name}: {e}");
        }
    }
}
