//! Interop with InterFaceGAN's file layout: codes and per-class scores as `.npy` for its `train_boundary`
//! script, and its boundaries (`<group>.<class>.npy`, a unit normal of shape (1, D)) read back as directions.

use crate::directions::{restrict_schema, schema_from_names, Directions};
use std::path::{Path, PathBuf};
use subspace_sdk::files::write_atomic;
use subspace_sdk::tch::{Device, Kind, Tensor};
use subspace_sdk::{LabelSchema, NodeError, NodeResult};

/// The names of the import node's parameters, which [`import`]'s errors point at.
#[derive(Debug, Clone, Copy)]
pub struct ImportParams<'a> {
    /// The boundaries' folder.
    pub folder: &'a str,
    /// The classes to read.
    pub classes: &'a str,
}

/// A class name usable as a file name (no separators, not hidden, not empty).
fn file_safe(name: &str) -> NodeResult<()> {
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\', '\0']) {
        return Err(NodeError::io(format!("class name '{name}' cannot be used as a file name")));
    }
    Ok(())
}

/// Writes `codes.npy` (N x D float32), one `<group>.<class>.npy` per class (scores, N x 1 float32: what
/// InterFaceGAN's `train_boundary` reads), `codes_labels.safetensors` (tensors `codes` and `labels`) and
/// `schema.json` into `folder`. Returns the files written.
///
/// # Errors
/// A class name unusable as a file name, or a file that cannot be written.
pub fn export(folder: &Path, codes: &Tensor, labels: &Tensor, schema: &LabelSchema) -> NodeResult<Vec<PathBuf>> {
    let codes = codes.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
    let labels = labels.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
    let names = schema.class_names();
    if labels.dim() != 2 || labels.size()[1] != names.len() as i64 || labels.size()[0] != codes.size()[0] {
        // The node checks its inputs first (`codes_and_labels`): reaching this is a bug.
        let (shape, n, k) = (labels.size(), codes.size()[0], names.len());
        return Err(NodeError::internal(format!("labels of shape {shape:?} for {n} codes and {k} classes")));
    }
    for name in &names {
        file_safe(name)?;
    }
    let mut written = Vec::new();
    let npy = |path: PathBuf, t: &Tensor, written: &mut Vec<PathBuf>| -> NodeResult<()> {
        write_atomic(&path, |tmp| t.write_npy(tmp).map_err(|e| e.to_string()))?;
        written.push(path);
        Ok(())
    };
    npy(folder.join("codes.npy"), &codes, &mut written)?;
    for (k, name) in names.iter().enumerate() {
        let scores = labels.narrow(1, k as i64, 1).contiguous();
        npy(folder.join(format!("{name}.npy")), &scores, &mut written)?;
    }
    let st = folder.join("codes_labels.safetensors");
    let named = [("codes", &codes), ("labels", &labels)];
    write_atomic(&st, |tmp| Tensor::write_safetensors(&named, tmp).map_err(|e| e.to_string()))?;
    written.push(st);
    let js = folder.join("schema.json");
    let text = serde_json::to_string_pretty(schema).map_err(|e| NodeError::internal(format!("schema to JSON: {e}")))?;
    write_atomic(&js, |tmp| std::fs::write(tmp, text).map_err(|e| e.to_string()))?;
    written.push(js);
    Ok(written)
}

/// Reads boundaries `<folder>/<group>.<class>.npy` (shape (1, D) or (D,)) for `classes` (comma-separated; empty
/// means every class of `schema.json`). With `schema.json` the directions keep its grouping (restricted to the
/// named classes, in its order); without it each named class's group prefix becomes a group. Offsets are 0
/// (InterFaceGAN's boundary files drop the intercept).
///
/// # Errors
/// A file that cannot be read or is no boundary (at `at.folder`), a class unknown or not a `group.class` name (at
/// `at.classes`).
pub fn import(folder: &Path, classes: &str, at: ImportParams<'_>) -> NodeResult<Directions> {
    let named: Vec<String> = classes.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
    let js = folder.join("schema.json");
    let file_schema: Option<LabelSchema> = if js.exists() {
        let text = std::fs::read_to_string(&js)
            .map_err(|e| NodeError::io(format!("{}: cannot read: {e}", js.display())).at(at.folder))?;
        Some(
            serde_json::from_str(&text)
                .map_err(|e| NodeError::io(format!("{}: not a label schema: {e}", js.display())).at(at.folder))?,
        )
    } else {
        None
    };
    let schema = match (&file_schema, named.is_empty()) {
        (None, true) => {
            return Err(NodeError::param(
                at.classes,
                format!(
                    "name the classes to import (group.class, comma-separated): {} has no schema.json",
                    folder.display()
                ),
            ))
        }
        (Some(s), true) => s.clone(),
        (Some(s), false) => {
            let known = s.class_names();
            let mut full = Vec::new();
            for n in &named {
                let c = s.column(n).ok_or_else(|| {
                    NodeError::param(at.classes, format!("class '{n}' is not in {} (it has {known:?})", js.display()))
                })?;
                full.push(known[c].clone());
            }
            restrict_schema(s, &full)
        }
        (None, false) => schema_from_names(&named).map_err(|e| NodeError::param(at.classes, e))?,
    };
    let mut rows = Vec::new();
    let mut files = Vec::new();
    let mut dim: Option<(i64, PathBuf)> = None;
    for name in schema.class_names() {
        file_safe(&name).map_err(|e| e.at(at.classes))?;
        let path = folder.join(format!("{name}.npy"));
        let t = Tensor::read_npy(&path)
            .map_err(|e| NodeError::io(format!("{}: cannot read a boundary: {e}", path.display())).at(at.folder))?;
        let shape = t.size();
        let d = match shape.as_slice() {
            [d] => *d,
            [1, d] => *d,
            _ => {
                return Err(NodeError::io(format!(
                    "{}: a boundary must have shape (1, D) or (D,), found {shape:?}",
                    path.display()
                ))
                .at(at.folder))
            }
        };
        if !t.is_floating_point() {
            return Err(NodeError::io(format!(
                "{}: a boundary must hold floats, found {:?}",
                path.display(),
                t.kind()
            ))
            .at(at.folder));
        }
        if let Some((d0, first)) = &dim {
            if *d0 != d {
                return Err(NodeError::io(format!(
                    "{}: dimension {d}, but {} has dimension {d0}",
                    path.display(),
                    first.display()
                ))
                .at(at.folder));
            }
        } else {
            dim = Some((d, path.clone()));
        }
        let v = t.to_kind(Kind::Double).reshape([d]);
        let norm = v.norm().double_value(&[]);
        if !(norm > 1e-12) || !norm.is_finite() {
            return Err(NodeError::io(format!(
                "{}: the normal (shape {shape:?}) is zero or not finite",
                path.display()
            ))
            .at(at.folder));
        }
        rows.push(v / norm);
        files.push(path.display().to_string());
    }
    let normals = Tensor::stack(&rows, 0);
    let k = normals.size()[0];
    let details = serde_json::json!({"folder": folder.display().to_string(), "files": files});
    Directions::new(&normals, &Tensor::zeros([k], (Kind::Float, Device::Cpu)), schema, "imported", details)
        .map_err(|e| NodeError::io(e).at(at.folder))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directions::make_schema;

    const AT: ImportParams<'static> = ImportParams { folder: "folder", classes: "classes" };

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("subspace-baselines-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn schema() -> LabelSchema {
        make_schema(vec![("hair".into(), vec!["black".into(), "red".into()]), ("smile".into(), vec!["yes".into()])])
    }

    #[test]
    fn export_writes_interfacegan_layout_and_round_trips() {
        let dir = temp_dir("export");
        let codes = Tensor::randn([50, 8], (Kind::Float, Device::Cpu));
        let labels = Tensor::rand([50, 3], (Kind::Float, Device::Cpu));
        let written = export(&dir, &codes, &labels, &schema()).unwrap();
        assert_eq!(written.len(), 6);
        let back = Tensor::read_npy(dir.join("codes.npy")).unwrap();
        assert_eq!(back.kind(), Kind::Float);
        assert_eq!(back.eq_tensor(&codes).all().int64_value(&[]), 1);
        let red = Tensor::read_npy(dir.join("hair.red.npy")).unwrap();
        assert_eq!(red.size(), vec![50, 1]);
        assert_eq!(red.squeeze_dim(1).eq_tensor(&labels.select(1, 1)).all().int64_value(&[]), 1);
        let st = Tensor::read_safetensors(dir.join("codes_labels.safetensors")).unwrap();
        assert!(st.iter().any(|(n, t)| n == "labels" && t.eq_tensor(&labels).all().int64_value(&[]) == 1));
        let s: LabelSchema = serde_json::from_str(&std::fs::read_to_string(dir.join("schema.json")).unwrap()).unwrap();
        assert_eq!(s, schema());
        // No temporary files are left behind.
        assert!(std::fs::read_dir(&dir).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".tmp")));

        // Boundaries written as InterFaceGAN does ((1, D) float32, unit norm), one as (D,) float64 and unnormalised.
        let n0 = Tensor::randn([1, 8], (Kind::Float, Device::Cpu));
        let n0 = &n0 / n0.norm();
        n0.write_npy(dir.join("hair.black.npy")).unwrap();
        let n2 = Tensor::randn([8], (Kind::Double, Device::Cpu)) * 5.0;
        n2.write_npy(dir.join("smile.yes.npy")).unwrap();
        let d = import(&dir, "smile.yes, hair.black", AT).unwrap();
        // schema.json is present: its order, restricted to the named classes.
        assert_eq!(d.schema.class_names(), vec!["hair.black", "smile.yes"]);
        assert_eq!(d.method, "imported");
        assert!((d.normals.get(0) - n0.squeeze_dim(0)).abs().max().double_value(&[]) < 1e-6);
        let u2 = (&n2 / n2.norm()).to_kind(Kind::Float);
        assert!((d.normals.get(1) - u2).abs().max().double_value(&[]) < 1e-6);
        assert_eq!(d.offsets.abs().sum(Kind::Float).double_value(&[]), 0.0);

        // Without schema.json, groups come from the names.
        std::fs::remove_file(dir.join("schema.json")).unwrap();
        let d = import(&dir, "smile.yes,hair.black", AT).unwrap();
        assert_eq!(d.schema.class_names(), vec!["smile.yes", "hair.black"]);
        assert_eq!(d.schema.groups.len(), 2);
        assert!(import(&dir, "", AT).is_err());

        // Bad shapes are named with the file.
        Tensor::randn([2, 8], (Kind::Float, Device::Cpu)).write_npy(dir.join("bad.x.npy")).unwrap();
        let e = import(&dir, "bad.x", AT).err().unwrap();
        assert!(e.message.contains("bad.x.npy") && e.message.contains("[2, 8]"), "{}", e.message);
        assert_eq!(e.location.clone().into_option().map(|s| s.to_string()).as_deref(), Some("folder"));
        // codes.npy itself is a valid (N, D) file but not a boundary; a missing file is named too.
        let e = import(&dir, "hair.blond", AT).err().unwrap();
        assert!(e.message.contains("hair.blond.npy"), "{}", e.message);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
