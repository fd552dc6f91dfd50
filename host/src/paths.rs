//! Paths in graphs: the one rule for where a relative path that a node reads points (docs/GRAPH_FORMAT.md,
//! "Paths"). Parameters declared with the SDK's `input_path` are resolved by the host, so the node gets a path
//! it can open: a relative value is read against the folder of the graph file it is written in (the working
//! directory for a graph that has no file), `$out/...` names the run's output folder (resolved when the run
//! starts), `default/...` is left to the node (the shipped models folder), and absolute paths stay as they are.
//! Paths a node writes are left as written: the node puts them under the run's output folder. Validation reports
//! a path a needed node reads that names nothing. Reads the file system only to see what exists.

use crate::plugins::NodeType;
use crate::validate::{Plan, Problem, ValidationError};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use subspace_sdk::module::flags;
use subspace_sdk::Value;

/// Prefix of a path in the run's output folder (`--out`), for reading what an earlier run wrote there.
pub const OUT_PREFIX: &str = "$out/";
/// Prefix of a path in the shipped models folder, which the models plugin looks up itself.
pub const SHIPPED_PREFIX: &str = "default/";

/// Whether node type `nt` reads its parameter `param` as a path.
pub fn reads_path(nt: &NodeType, param: &str) -> bool {
    nt.descriptor.params.iter().position(|p| p.name.as_str() == param).is_some_and(|i| flags::reads_path(nt.flags, i))
}

/// `value` read against `base` (the folder of the graph file it is written in; None: the working directory) as
/// an absolute path; None when it stays as written (empty, absolute, `$out/...`, `default/...`).
pub fn anchor(value: &str, base: Option<&Path>) -> Option<String> {
    let keep = value.trim().is_empty()
        || value.starts_with(OUT_PREFIX)
        || value.starts_with(SHIPPED_PREFIX)
        || Path::new(value).is_absolute();
    if keep {
        return None;
    }
    let base = match base {
        Some(b) if b.is_absolute() => b.to_path_buf(),
        Some(b) => std::env::current_dir().ok()?.join(b),
        None => std::env::current_dir().ok()?,
    };
    Some(clean(&base.join(value)).display().to_string())
}

/// `p` without `.` components and with each `..` taken off the component before it (absolute paths only; no
/// links are followed, the file need not exist).
fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// `value` with `$out/` replaced by the run's output folder `out_dir` (made absolute); None when it has no prefix.
pub fn in_out_dir(value: &str, out_dir: &Path) -> Option<String> {
    let rest = value.strip_prefix(OUT_PREFIX)?;
    let out = if out_dir.is_absolute() {
        out_dir.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(out_dir)).unwrap_or_else(|_| out_dir.to_path_buf())
    };
    Some(clean(&out.join(rest)).display().to_string())
}

/// Resolves the input paths of every node of `plan` against `base` (see [`anchor`]), then refuses a path that a
/// node the requested outputs need reads and that names nothing: no file or folder, and no file that it is the
/// stem of (`mixture` for `mixture.safetensors`). Each error names the node, the parameter and the resolved path.
/// `$out/...` and `default/...` paths are checked by their node when it runs.
pub fn anchor_plan(mut plan: Plan, base: Option<&Path>) -> Result<Plan, Vec<ValidationError>> {
    for n in &mut plan.nodes {
        let nt = n.node_type.clone();
        for p in n.params.iter_mut() {
            if let Value::Text(t) = &p.value {
                if reads_path(&nt, p.name.as_str()) {
                    if let Some(abs) = anchor(t.as_str(), base) {
                        p.value = Value::Text(abs.into());
                    }
                }
            }
        }
    }
    let mut errors = Vec::new();
    for i in plan.needed_order() {
        let n = &plan.nodes[i];
        for p in &n.params {
            let Value::Text(t) = &p.value else { continue };
            let path = Path::new(t.as_str());
            if !path.is_absolute() || !reads_path(&n.node_type, p.name.as_str()) || names_something(path) {
                continue;
            }
            errors.push(ValidationError {
                problem: Problem::MissingFile,
                node: Some(n.id.clone()),
                location: Some(p.name.to_string()),
                message: format!(
                    "'{}' reads {}, which does not exist (relative paths are read against the graph file's folder; \
                     $out/... names the run's output folder)",
                    p.name,
                    path.display()
                ),
            });
        }
    }
    if errors.is_empty() {
        Ok(plan)
    } else {
        Err(errors)
    }
}

/// A file or folder exists at `path`, or a file named `path` plus an extension.
fn names_something(path: &Path) -> bool {
    if path.exists() {
        return true;
    }
    let (Some(dir), Some(stem)) = (path.parent(), path.file_name().and_then(|s| s.to_str())) else { return false };
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    let prefix = format!("{stem}.");
    entries.flatten().any(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(&prefix)))
}

/// Size and modification time (ns since the epoch) of what `value` names from here: the file, with the `.json`
/// beside it (a model's sidecar, docs/MODELS.md) when there is one; for a folder, its listing (name, size and
/// time of every file directly in it: nodes read folders without their subfolders, e.g. Load images); for a stem
/// that names no file, every file it begins (`mixture` for `mixture.safetensors` and `mixture.json`). None when
/// it names nothing.
pub fn stamp(value: &str) -> Option<String> {
    let one = |p: &Path| -> Option<String> {
        let m = std::fs::metadata(p).ok().filter(|m| m.is_file())?;
        let nanos = m.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos();
        Some(format!("{}:{nanos}", m.len()))
    };
    let path = Path::new(value);
    if path.is_dir() {
        // A picture replaced, added or removed changes the listing; a folder's own time would miss a file
        // rewritten in place.
        let mut listed: Vec<(String, String)> = std::fs::read_dir(path)
            .ok()?
            .flatten()
            .filter_map(|e| Some((e.file_name().to_string_lossy().into_owned(), one(&e.path())?)))
            .collect();
        listed.sort();
        let mut s = String::from("folder");
        for (n, st) in listed {
            s.push_str(&format!("\0{n}={st}"));
        }
        return Some(s);
    }
    if let Some(file) = one(path) {
        let sidecar = path.with_extension("json");
        let beside = if sidecar != path { one(&sidecar).unwrap_or_default() } else { String::new() };
        return Some(format!("{file}\0{beside}"));
    }
    let (dir, stem) = (path.parent()?, path.file_name()?.to_str()?);
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let prefix = format!("{stem}.");
    let mut named: Vec<(String, String)> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            name.starts_with(&prefix).then(|| Some((name.clone(), one(&e.path())?))).flatten()
        })
        .collect();
    if named.is_empty() {
        return None;
    }
    named.sort();
    Some(named.into_iter().map(|(n, s)| format!("{n}={s}")).collect::<Vec<_>>().join("\0"))
}

/// `plan` with every `$out/...` input path in the run's output folder `out_dir`; borrowed when there is none.
pub fn with_out_dir<'p>(plan: &'p Plan, out_dir: &Path) -> Cow<'p, Plan> {
    let hit = |n: &crate::validate::PlanNode| {
        n.params.iter().any(|p| {
            matches!(&p.value, Value::Text(t) if t.as_str().starts_with(OUT_PREFIX))
                && reads_path(&n.node_type, p.name.as_str())
        })
    };
    if !plan.nodes.iter().any(hit) {
        return Cow::Borrowed(plan);
    }
    let mut plan = plan.clone();
    for n in &mut plan.nodes {
        let nt = n.node_type.clone();
        for p in n.params.iter_mut() {
            if let Value::Text(t) = &p.value {
                if reads_path(&nt, p.name.as_str()) {
                    if let Some(abs) = in_out_dir(t.as_str(), out_dir) {
                        p.value = Value::Text(abs.into());
                    }
                }
            }
        }
    }
    Cow::Owned(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_read_against_the_graph_folder_and_the_rest_stays() {
        let base = Path::new("/graphs/mine");
        assert_eq!(anchor("model.pt", Some(base)).as_deref(), Some("/graphs/mine/model.pt"));
        assert_eq!(anchor("./fits/../mixture", Some(base)).as_deref(), Some("/graphs/mine/mixture"));
        assert_eq!(anchor("../shared/m.pt", Some(base)).as_deref(), Some("/graphs/shared/m.pt"));
        for kept in ["/abs/m.pt", "default/generator.pt", "$out/mixture", "", "  "] {
            assert_eq!(anchor(kept, Some(base)), None, "{kept:?}");
        }
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(anchor("m.pt", None), Some(cwd.join("m.pt").display().to_string()));
        assert_eq!(anchor("m.pt", Some(Path::new("graphs"))), Some(cwd.join("graphs/m.pt").display().to_string()));
    }

    #[test]
    fn out_prefix_names_the_run_output_folder() {
        assert_eq!(in_out_dir("$out/mixture", Path::new("/runs/a")).as_deref(), Some("/runs/a/mixture"));
        assert_eq!(in_out_dir("$out/fits/m", Path::new("/runs/a")).as_deref(), Some("/runs/a/fits/m"));
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(in_out_dir("$out/m", Path::new("results")), Some(cwd.join("results/m").display().to_string()));
        assert_eq!(in_out_dir("mixture", Path::new("/runs/a")), None);
    }

    #[test]
    fn a_stem_names_the_files_it_begins_and_is_stamped_by_them() {
        let dir = std::env::temp_dir().join(format!("subspace-paths-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("mixture.safetensors"), b"x").unwrap();
        assert!(names_something(&dir.join("mixture")));
        assert!(names_something(&dir.join("mixture.safetensors")));
        assert!(names_something(&dir));
        assert!(!names_something(&dir.join("mix")));
        assert!(!names_something(&dir.join("other")));
        // A stem's stamp follows the files it begins.
        let before = stamp(&dir.join("mixture").display().to_string()).unwrap();
        std::fs::write(dir.join("mixture.safetensors"), b"xy").unwrap();
        let after = stamp(&dir.join("mixture").display().to_string()).unwrap();
        assert_ne!(before, after);
        assert!(after.starts_with("mixture.safetensors=2:"), "{after}");
        assert_eq!(stamp(&dir.join("other").display().to_string()), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_folder_is_stamped_by_the_files_directly_in_it() {
        let dir = std::env::temp_dir().join(format!("subspace-paths-folder-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("a.png"), b"x").unwrap();
        let of = || stamp(&dir.display().to_string()).unwrap();
        let first = of();
        assert_eq!(of(), first, "an unchanged folder keeps its stamp");
        std::fs::write(dir.join("a.png"), b"xy").unwrap();
        let rewritten = of();
        assert_ne!(rewritten, first, "a file rewritten in place changes the stamp");
        std::fs::write(dir.join("b.png"), b"z").unwrap();
        let added = of();
        assert_ne!(added, rewritten, "a file added changes the stamp");
        std::fs::write(dir.join("sub/c.png"), b"z").unwrap();
        assert_eq!(of(), added, "subfolders are not read");
        std::fs::remove_file(dir.join("b.png")).unwrap();
        assert_eq!(of(), rewritten, "a file removed changes it back");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
