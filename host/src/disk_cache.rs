//! The disk cache: results of cacheable nodes (`d.cacheable()`: sampling, labelling, fits) kept in a folder across
//! processes, so a later run with the same inputs loads them instead of computing them again.
//!
//! An entry is one self-describing `.safetensors` file named by its key (64 hex digits): the tensors of every
//! output, and in the header's metadata what the outputs are (scalars and text inline, labels with their schema,
//! bundles with their kind and metadata) and a blake3 check over the metadata and every tensor's name, dtype, shape
//! and bytes. It is written to a temporary file and renamed into place ([`subspace_sdk::files::write_atomic`]), so a
//! killed writer leaves at most a temporary, never a torn entry; an entry that fails its check or does not match
//! the node is reported, removed and recomputed. Model outputs cannot be stored: the entry names them and the
//! evaluator re-creates them (see `exec.rs`). The folder keeps within a byte budget: after each write the least
//! recently used entries (file modification time, refreshed on every hit) are removed first.

use crate::cache::Key;
use safetensors::tensor::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;
use subspace_sdk::tch::{self, Kind, Tensor};
use subspace_sdk::{Bundle, LabelSchema, Labels, NamedTensor, NamedValue, NodeDescriptor, TensorRef, Value};

/// Default budget of the cache folder.
pub const DEFAULT_DISK_BUDGET: u64 = 4 << 30;

/// The format of an entry's metadata; another format is ignored (and replaced when the node runs).
const FORMAT: &str = "subspace.node-cache/1";
/// Header metadata keys: the entry's description (JSON) and its check (blake3, hex).
const META_KEY: &str = "subspace.node-cache";
const CHECK_KEY: &str = "subspace.node-cache.check";
const SUFFIX: &str = ".safetensors";

/// What the cache folder holds, and what happened since the figures were last taken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskStats {
    pub entries: usize,
    pub bytes: u64,
    pub budget: u64,
    /// Results loaded from the folder.
    pub hits: u64,
    /// Entries written.
    pub written: u64,
    /// Entries removed to keep the budget, or not written because larger than all of it.
    pub evicted: u64,
    /// Corrupt, unreadable or mismatched entries ignored (and removed).
    pub ignored: u64,
}

/// One output read back from an entry: its value, or `None` for a model output (not stored).
pub type Slot = (String, Option<Value>);

/// A cache folder. Shared by threads; several processes may use one folder (writes are renames, readers of a
/// removed entry keep their open file).
pub struct DiskCache {
    dir: PathBuf,
    budget: u64,
    counts: Mutex<DiskStats>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `name` is an entry's file name (64 hex digits and the suffix).
fn is_entry_name(name: &str) -> bool {
    name.strip_suffix(SUFFIX).is_some_and(|k| k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// One tensor as the safetensors writer takes it: copied out of libtorch when written, one at a time.
struct Raw {
    tensor: Tensor,
    dtype: Dtype,
    shape: Vec<usize>,
}

impl Raw {
    fn new(t: &Tensor) -> Result<Raw, String> {
        let t = t.detach().to_device(tch::Device::Cpu).contiguous();
        let dtype =
            Dtype::try_from(t.kind()).map_err(|e| format!("a tensor of dtype {:?} cannot be stored: {e}", t.kind()))?;
        let shape = t.size().iter().map(|&s| s as usize).collect();
        Ok(Raw { tensor: t, dtype, shape })
    }
    fn bytes(&self) -> Vec<u8> {
        let numel = self.tensor.numel();
        let mut data = vec![0u8; numel * self.tensor.kind().elt_size_in_bytes()];
        // The tensor is contiguous on the CPU with a dtype safetensors knows, so the copy cannot fail.
        if self.tensor.f_copy_data_u8(&mut data, numel).is_err() {
            data.clear();
        }
        data
    }
}

impl View for &Raw {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.bytes())
    }
    fn data_len(&self) -> usize {
        self.tensor.numel() * self.tensor.kind().elt_size_in_bytes()
    }
}

/// The check over an entry: its metadata, then each tensor's name, dtype, shape and bytes in the listed order.
fn check(meta: &str, tensors: &mut dyn Iterator<Item = (String, Dtype, Vec<usize>, Cow<'_, [u8]>)>) -> String {
    let mut h = blake3::Hasher::new();
    h.update(meta.as_bytes());
    for (name, dtype, shape, data) in tensors {
        h.update(format!("\0{name}\0{dtype:?}\0{shape:?}\0{}\0", data.len()).as_bytes());
        h.update(&data);
    }
    hex(h.finalize().as_bytes())
}

impl DiskCache {
    /// Opens (creating it) the cache folder `dir` with a byte `budget`, after checking that it can be written;
    /// temporaries of killed writers are removed.
    pub fn open(dir: &Path, budget: u64) -> Result<DiskCache, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let probe = dir.join(format!(".subspace-write-check.{}", std::process::id()));
        std::fs::write(&probe, b"").map_err(|e| format!("{} is not writable: {e}", dir.display()))?;
        let _ = std::fs::remove_file(&probe);
        subspace_sdk::files::sweep_stale_temps(dir);
        let cache = DiskCache { dir: dir.to_path_buf(), budget, counts: Mutex::new(DiskStats::default()) };
        cache.evict(None);
        Ok(cache)
    }

    /// The cache folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of entry `key`.
    pub fn entry_path(&self, key: &Key) -> PathBuf {
        self.dir.join(format!("{}{SUFFIX}", hex(key)))
    }

    fn count(&self, f: impl FnOnce(&mut DiskStats)) {
        f(&mut self.counts.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Entry files (name, size, last use), not following links.
    fn entries(&self) -> Vec<(PathBuf, u64, SystemTime)> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        rd.flatten()
            .filter(|e| e.file_name().to_str().is_some_and(is_entry_name))
            .filter_map(|e| {
                let m = e.metadata().ok().filter(|m| m.is_file())?;
                Some((e.path(), m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
            })
            .collect()
    }

    /// The figures now, with the counters since the last call (they restart).
    pub fn take_stats(&self) -> DiskStats {
        let entries = self.entries();
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let taken = std::mem::take(&mut *counts);
        DiskStats { entries: entries.len(), bytes: entries.iter().map(|e| e.1).sum(), budget: self.budget, ..taken }
    }

    /// Removes least recently used entries until the folder is within its budget, never `keep`.
    fn evict(&self, keep: Option<&Path>) {
        let mut entries = self.entries();
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        entries.sort_by_key(|e| e.2);
        for (path, len, _) in entries {
            if total <= self.budget {
                break;
            }
            if Some(path.as_path()) == keep {
                continue;
            }
            // Another process may have removed it first; either way it no longer counts.
            let _ = std::fs::remove_file(&path);
            total -= len;
            self.count(|c| c.evicted += 1);
        }
    }

    /// Removes the entry at `path` (a corrupt one), counting it as ignored.
    fn discard(&self, path: &Path) {
        let _ = std::fs::remove_file(path);
        self.count(|c| c.ignored += 1);
    }

    /// The outputs stored under `key` for node type `node`, on `device`: `Ok(None)` when there is no entry,
    /// `Err` (naming what is wrong) when the entry is unreadable, corrupt or not this node's; such an entry is
    /// removed. A hit marks the entry as just used.
    pub fn load(&self, key: &Key, node: &NodeDescriptor, device: tch::Device) -> Result<Option<Vec<Slot>>, String> {
        let path = self.entry_path(key);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let read = || -> Result<Vec<Slot>, String> {
            // Never read through a link, nor more than the whole budget into memory.
            if !meta.is_file() {
                return Err("not a regular file".into());
            }
            if meta.len() > self.budget {
                return Err(format!("{} bytes, more than the cache's budget", meta.len()));
            }
            let bytes = std::fs::read(&path).map_err(|e| format!("cannot read: {e}"))?;
            decode(&bytes, key, node, device)
        };
        match read() {
            Ok(slots) => {
                // The modification time is the last use: what eviction goes by.
                if let Ok(f) = std::fs::File::options().append(true).open(&path) {
                    let _ = f.set_modified(SystemTime::now());
                }
                self.count(|c| c.hits += 1);
                Ok(Some(slots))
            }
            Err(why) => {
                self.discard(&path);
                Err(format!("{}: {why}", path.display()))
            }
        }
    }

    /// Stores `outputs` of node type `node` under `key` (atomically), then keeps the folder within its budget.
    /// Model outputs are named, not stored. `Ok(false)`: the entry alone would exceed the budget, so it is not
    /// written. `Err`: an output cannot be stored (a tensor of an unknown dtype) or the write failed.
    pub fn store(&self, key: &Key, node: &NodeDescriptor, outputs: &[NamedValue]) -> Result<bool, String> {
        let mut raws: Vec<Raw> = Vec::new();
        let add = |t: &TensorRef, raws: &mut Vec<Raw>| -> Result<String, String> {
            raws.push(Raw::new(&t.tensor())?);
            Ok(format!("t{}", raws.len() - 1))
        };
        let mut described = Vec::new();
        for o in outputs {
            let name = o.name.as_str();
            let at = |e: String| format!("output '{name}': {e}");
            let j = match &o.value {
                Value::Float(x) => serde_json::json!({"name": name, "float_bits": format!("{:016x}", x.to_bits())}),
                Value::Int(x) => serde_json::json!({"name": name, "int": x}),
                Value::Bool(x) => serde_json::json!({"name": name, "bool": x}),
                Value::Text(x) => serde_json::json!({"name": name, "text": x.as_str()}),
                Value::Tensor(t) | Value::Latents(t) | Value::Images(t) => {
                    let kind = o.value.port_type();
                    serde_json::json!({"name": name, "tensor": add(t, &mut raws).map_err(at)?, "kind": kind})
                }
                Value::Labels(l) => {
                    let schema = serde_json::to_value(&l.schema).map_err(|e| at(e.to_string()))?;
                    serde_json::json!({"name": name, "labels": add(&l.probs, &mut raws).map_err(at)?, "schema": schema})
                }
                Value::Bundle(b) => {
                    let mut tensors = Vec::new();
                    for nt in b.tensors.iter() {
                        tensors.push(serde_json::json!([nt.name.as_str(), add(&nt.tensor, &mut raws).map_err(at)?]));
                    }
                    let (kind, meta) = (b.kind.as_str(), b.meta.as_str());
                    serde_json::json!({"name": name, "bundle": kind, "meta": meta, "tensors": tensors})
                }
                Value::Model(m) => serde_json::json!({"name": name, "model": m.kind().as_str()}),
            };
            described.push(j);
        }
        let mut meta = serde_json::json!({
            "format": FORMAT, "key": hex(key), "node": node.id.as_str(), "version": node.version.as_str(),
            "outputs": described,
        });
        if raws.is_empty() {
            // This safetensors version cannot read back a file without tensors: one byte of padding.
            raws.push(Raw::new(&Tensor::zeros([1], (Kind::Uint8, tch::Device::Cpu)))?);
            meta["pad"] = "t0".into();
        }
        let meta = meta.to_string();
        let names: Vec<String> = (0..raws.len()).map(|i| format!("t{i}")).collect();
        let size: u64 = raws.iter().map(|r| (&r).data_len() as u64).sum::<u64>() + meta.len() as u64 + 4096;
        if size > self.budget {
            self.count(|c| c.evicted += 1);
            return Ok(false);
        }
        let sum = check(
            &meta,
            &mut names.iter().zip(&raws).map(|(n, r)| (n.clone(), r.dtype, r.shape.clone(), Cow::Owned(r.bytes()))),
        );
        let header = HashMap::from([(META_KEY.to_string(), meta), (CHECK_KEY.to_string(), sum)]);
        let path = self.entry_path(key);
        let views: Vec<(String, &Raw)> = names.into_iter().zip(raws.iter()).collect();
        subspace_sdk::files::write_atomic(&path, |tmp| {
            safetensors::tensor::serialize_to_file(views, &Some(header), tmp).map_err(|e| format!("{e:?}"))
        })
        .map_err(|e| e.message.to_string())?;
        self.count(|c| c.written += 1);
        self.evict(Some(&path));
        Ok(true)
    }
}

/// An entry's bytes back to its outputs, checked against its key, its node type and its check.
fn decode(bytes: &[u8], key: &Key, node: &NodeDescriptor, device: tch::Device) -> Result<Vec<Slot>, String> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| format!("not a whole safetensors file: {e:?}"))?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| format!("unreadable header: {e:?}"))?;
    let header = header.metadata().as_ref().ok_or("no metadata")?;
    let (meta_text, sum) = match (header.get(META_KEY), header.get(CHECK_KEY)) {
        (Some(m), Some(s)) => (m, s),
        _ => return Err("no node-cache metadata".into()),
    };
    let meta: serde_json::Value = serde_json::from_str(meta_text).map_err(|e| format!("metadata: {e}"))?;
    if meta["format"] != FORMAT {
        return Err(format!("format {} (this host reads {FORMAT})", meta["format"]));
    }
    if meta["key"] != hex(key).as_str() || meta["node"] != node.id.as_str() || meta["version"] != node.version.as_str()
    {
        return Err(format!("holds {} {} under another key", meta["node"], meta["version"]));
    }
    let mut names: Vec<&str> = Vec::new();
    let outputs = meta["outputs"].as_array().ok_or("metadata lists no outputs")?;
    if let Some(pad) = meta["pad"].as_str() {
        names.push(pad);
    }
    for o in outputs {
        for field in ["tensor", "labels"] {
            if let Some(t) = o[field].as_str() {
                names.push(t);
            }
        }
        for pair in o["tensors"].as_array().into_iter().flatten() {
            names.push(pair[1].as_str().ok_or("a bundle tensor without its name")?);
        }
    }
    let mut views = Vec::new();
    for n in &names {
        views.push((n.to_string(), file.tensor(n).map_err(|e| format!("tensor {n}: {e:?}"))?));
    }
    if file.len() != views.len() {
        return Err(format!("{} tensors, the metadata names {}", file.len(), views.len()));
    }
    let listed = &mut views.iter().map(|(n, v)| (n.clone(), v.dtype(), v.shape().to_vec(), Cow::Borrowed(v.data())));
    if check(meta_text, listed) != *sum {
        return Err("the check does not match its contents (corrupt)".into());
    }
    let tensor = |n: &str| -> Result<TensorRef, String> {
        let (_, v) = views.iter().find(|(name, _)| name == n).ok_or_else(|| format!("no tensor {n}"))?;
        let kind = Kind::try_from(v.dtype()).map_err(|e| format!("tensor {n}: {e}"))?;
        let shape: Vec<i64> = v.shape().iter().map(|&s| s as i64).collect();
        let t = Tensor::f_from_data_size(v.data(), &shape, kind).map_err(|e| format!("tensor {n}: {e}"))?;
        Ok(TensorRef::new(t.to_device(device)))
    };
    let mut slots = Vec::new();
    for o in outputs {
        let name = o["name"].as_str().ok_or("an output without a name")?.to_string();
        let text = |field: &str| o[field].as_str().ok_or_else(|| format!("output '{name}': no {field}"));
        let value = if let Some(bits) = o["float_bits"].as_str() {
            Some(Value::Float(f64::from_bits(u64::from_str_radix(bits, 16).map_err(|e| e.to_string())?)))
        } else if let Some(x) = o["int"].as_i64() {
            Some(Value::Int(x))
        } else if let Some(x) = o["bool"].as_bool() {
            Some(Value::Bool(x))
        } else if let Some(x) = o["text"].as_str() {
            Some(Value::Text(x.into()))
        } else if let Some(t) = o["tensor"].as_str() {
            let t = tensor(t)?;
            Some(match text("kind")? {
                "latents" => Value::Latents(t),
                "images" => Value::Images(t),
                "tensor" => Value::Tensor(t),
                other => return Err(format!("output '{name}': unknown tensor kind {other}")),
            })
        } else if let Some(t) = o["labels"].as_str() {
            let schema: LabelSchema =
                serde_json::from_value(o["schema"].clone()).map_err(|e| format!("schema: {e}"))?;
            Some(Value::Labels(Labels { probs: tensor(t)?, schema }))
        } else if let Some(kind) = o["bundle"].as_str() {
            let mut tensors = Vec::new();
            for pair in o["tensors"].as_array().into_iter().flatten() {
                let (n, t) = (pair[0].as_str().unwrap_or_default(), pair[1].as_str().unwrap_or_default());
                tensors.push(NamedTensor { name: n.into(), tensor: tensor(t)? });
            }
            Some(Value::Bundle(Bundle { kind: kind.into(), tensors: tensors.into(), meta: text("meta")?.into() }))
        } else if o["model"].is_string() {
            None
        } else {
            return Err(format!("output '{name}': no value"));
        };
        slots.push((name, value));
    }
    // The entry must give exactly what the node declares, with the declared types.
    for p in node.outputs.iter() {
        let Some((_, value)) = slots.iter().find(|(n, _)| n == p.name.as_str()) else {
            return Err(format!("no output '{}'", p.name));
        };
        let stored = match value {
            Some(v) => v.port_type(),
            None => outputs
                .iter()
                .find(|o| o["name"] == p.name.as_str())
                .map_or("", |o| o["model"].as_str().unwrap_or(""))
                .to_string(),
        };
        if !crate::validate::compatible(&stored, p.ty.as_str()) {
            return Err(format!("output '{}' is {stored}, the node declares {}", p.name, p.ty));
        }
    }
    if slots.len() != node.outputs.len() {
        return Err(format!("{} outputs, the node declares {}", slots.len(), node.outputs.len()));
    }
    Ok(slots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_are_keys() {
        assert!(is_entry_name(&format!("{}{SUFFIX}", "ab".repeat(32))));
        assert!(!is_entry_name(&format!(".{}{SUFFIX}.123.0123456789abcdef.tmp", "ab".repeat(32))));
        assert!(!is_entry_name("mixture.safetensors"));
    }
}
