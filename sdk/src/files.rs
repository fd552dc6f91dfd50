//! Files that nodes write: where they may go ([`output_path`]) and how they are written ([`write_atomic`]), so
//! that nothing lands outside the run's output folder and nothing half-written is ever seen under a final name.

use crate::context::Ctx;
use crate::error::{NodeError, NodeResult};
use std::io::Write;
use std::path::{Component, Path, PathBuf};

/// The output-path policy every writing node follows. `rel` (a parameter's value) is resolved under `out_dir`
/// (the run's output folder, [`Ctx::out_dir`]) and refused when it is empty, has a root or a `..`, ends in a
/// separator or names no file, or when an existing component below `out_dir` (the file included) is a symbolic
/// link: nodes never write through links. `out_dir` itself may be a link the user made.
///
/// The check runs when the node runs; a link swapped in between the check and the write is not guarded against.
pub fn output_path(out_dir: &str, rel: &str) -> Result<PathBuf, String> {
    if rel.trim().is_empty() {
        return Err("the path is empty: name a file relative to the run's output folder".into());
    }
    let path = Path::new(rel);
    if !path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(format!("{rel:?} must be a path relative to the run's output folder (no root, no '..')"));
    }
    let last = path.components().next_back();
    if rel.ends_with(std::path::MAIN_SEPARATOR) || !matches!(last, Some(Component::Normal(_))) {
        return Err(format!("{rel:?} names no file (give a name after the last '/')"));
    }
    let base = Path::new(out_dir);
    let mut at = base.to_path_buf();
    for c in path.components() {
        let Component::Normal(part) = c else { continue };
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                let shown = at.strip_prefix(base).unwrap_or(&at).display().to_string();
                let rule = "files are never written through links";
                return Err(format!("{rel:?}: {shown:?} in the output folder is a symbolic link; {rule}"));
            }
            Ok(_) => {}
            // Nothing below a missing component can exist yet.
            Err(_) => break,
        }
    }
    Ok(base.join(path))
}

/// [`output_path`] for parameter `param` of a node: the refusal is a [`NodeError::param`] naming it.
pub fn output_param(ctx: &Ctx<'_, '_>, param: &str, rel: &str) -> NodeResult<PathBuf> {
    output_path(ctx.out_dir(), rel).map_err(|m| NodeError::param(param, m))
}

/// A temporary name beside `name`: `.{name}.{pid}.{16 hex digits}.tmp`. The random part makes it unique per call
/// across threads and across plugins (each library has its own statics, so a counter alone would repeat); the pid
/// lets [`sweep_stale_temps`] tell a dead writer's leftovers from a live one's.
fn temp_name(name: &str) -> String {
    format!(".{name}.{}.{:016x}.tmp", std::process::id(), rand::random::<u64>())
}

/// Writes `path` atomically: `write` fills a fresh temporary file in the same folder (unique per call), which is
/// flushed to disk and then renamed over `path`. Concurrent writers of one path each land whole; the last rename
/// wins. The folder is created; on any failure the temporary file is removed and the error names the file.
pub fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> Result<(), String>) -> NodeResult<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| NodeError::io(format!("cannot create {}: {e}", dir.display())))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    // create_new: the temporary is a new regular file of ours, never something already there (or a link).
    let mut attempt = 0;
    let tmp = loop {
        let tmp = dir.join(temp_name(name));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(_) => break tmp,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 8 => attempt += 1,
            Err(e) => return Err(NodeError::io(format!("cannot write {}: {e}", path.display()))),
        }
    };
    let filled = write(&tmp)
        .and_then(|_| std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| format!("cannot flush: {e}")));
    if let Err(e) = filled {
        let _ = std::fs::remove_file(&tmp);
        return Err(NodeError::io(format!("cannot write {}: {e}", path.display())));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        NodeError::io(format!("cannot move {} to {}: {e}", tmp.display(), path.display()))
    })
}

/// Writes `bytes` to `path` atomically (see [`write_atomic`]).
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> NodeResult<()> {
    write_atomic(path, |tmp| {
        let mut f = std::fs::File::create(tmp).map_err(|e| e.to_string())?;
        f.write_all(bytes).map_err(|e| e.to_string())
    })
}

/// The writer's pid when `file_name` is a temporary name of [`write_atomic`].
fn temp_owner(file_name: &str) -> Option<u32> {
    let inner = file_name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let mut parts = inner.rsplitn(3, '.');
    let (unique, pid, name) = (parts.next()?, parts.next()?, parts.next()?);
    let hex = unique.len() == 16 && unique.bytes().all(|b| b.is_ascii_hexdigit());
    let digits = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
    if hex && digits && !name.is_empty() {
        pid.parse().ok()
    } else {
        None
    }
}

/// Removes, under `dir` and its subfolders (links are not followed), the temporary files [`write_atomic`] left
/// behind in processes that are gone (`/proc/<pid>` missing), and returns how many it removed. Temporaries of live
/// processes, this one included, are kept. Where there is no `/proc` nothing is removed.
pub fn sweep_stale_temps(dir: &Path) -> usize {
    if !Path::new("/proc/self").exists() {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else { continue };
        let path = entry.path();
        if kind.is_dir() {
            removed += sweep_stale_temps(&path);
        } else if kind.is_file() {
            let owner = entry.file_name().to_str().and_then(temp_owner);
            let dead = owner.is_some_and(|pid| !Path::new("/proc").join(pid.to_string()).exists());
            if dead && std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("subspace-sdk-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn names(dir: &Path) -> Vec<String> {
        let entries = std::fs::read_dir(dir).unwrap();
        let mut v: Vec<String> = entries.map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_the_file_creates_folders_and_leaves_no_temporary() {
        let dir = scratch("atomic");
        let path = dir.join("sub/folder/report.md");
        write_bytes_atomic(&path, b"first").unwrap();
        write_bytes_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(names(path.parent().unwrap()), vec!["report.md".to_string()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_write_names_the_file_and_keeps_the_old_one() {
        let dir = scratch("failed");
        let path = dir.join("kept.txt");
        write_bytes_atomic(&path, b"old").unwrap();
        let err = write_atomic(&path, |_| Err("disk full".into())).unwrap_err();
        assert!(err.message.contains("kept.txt") && err.message.contains("disk full"), "{}", err.message);
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::write(dir.join("blocker"), b"x").unwrap();
        assert!(write_bytes_atomic(&dir.join("blocker/out.png"), b"data").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn output_paths_stay_in_the_output_folder_and_never_pass_a_link() {
        let dir = scratch("policy");
        let out = dir.join("out");
        std::fs::create_dir_all(out.join("plots")).unwrap();
        let o = out.to_str().unwrap();
        assert_eq!(output_path(o, "grid.png").unwrap(), out.join("grid.png"));
        assert_eq!(output_path(o, "plots/loss.png").unwrap(), out.join("plots/loss.png"));
        assert_eq!(output_path(o, "./new/deeper/a.json").unwrap(), out.join("new/deeper/a.json"));
        for (bad, rule) in [
            ("/etc/passwd", "no root"),
            ("../escape.png", "no '..'"),
            ("a/../../b.png", "no '..'"),
            ("plots/..", "no '..'"),
            ("", "empty"),
            ("  ", "empty"),
            (".", "names no file"),
            ("plots/", "names no file"),
        ] {
            let e = output_path(o, bad).unwrap_err();
            assert!(e.contains(rule) && (bad.trim().is_empty() || e.contains(&format!("{bad:?}"))), "{bad:?}: {e}");
        }
        // Links below the output folder are refused wherever they are; the output folder itself may be one.
        let elsewhere = dir.join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, out.join("plots/linked")).unwrap();
        std::os::unix::fs::symlink(elsewhere.join("target.txt"), out.join("file-link.txt")).unwrap();
        for bad in ["plots/linked/x.png", "plots/linked/new/x.png", "plots/linked", "file-link.txt"] {
            let e = output_path(o, bad).unwrap_err();
            assert!(e.contains("symbolic link") && e.contains(&format!("{bad:?}")), "{bad:?}: {e}");
        }
        let linked_out = dir.join("out-link");
        std::os::unix::fs::symlink(&out, &linked_out).unwrap();
        assert!(output_path(linked_out.to_str().unwrap(), "plots/ok.png").is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn concurrent_writes_of_one_file_each_land_whole() {
        let dir = scratch("concurrent");
        let path = dir.join("graph.json");
        let bodies: Vec<String> = (0..16 * 8)
            .map(|i| serde_json::json!({"writer": i, "payload": "x".repeat(2000 + 97 * i)}).to_string())
            .collect();
        std::thread::scope(|s| {
            for t in 0..16 {
                let (path, bodies) = (&path, &bodies);
                s.spawn(move || {
                    for w in 0..8 {
                        write_bytes_atomic(path, bodies[t * 8 + w].as_bytes()).unwrap();
                        let now = std::fs::read_to_string(path).unwrap();
                        assert!(bodies.contains(&now), "a reader saw a torn file of {} bytes", now.len());
                    }
                });
            }
        });
        let last = std::fs::read_to_string(&path).unwrap();
        assert!(bodies.contains(&last));
        assert_eq!(names(&dir), vec!["graph.json".to_string()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn temp_names_are_unique_and_recognised() {
        let a = temp_name("mixture.safetensors");
        let b = temp_name("mixture.safetensors");
        assert_ne!(a, b);
        assert_eq!(temp_owner(&a), Some(std::process::id()));
        let others =
            ["mixture.safetensors", ".x.tmp", ".x.12.tmp", ".x.12.zzzzzzzzzzzzzzzz.tmp", "..1.0123456789abcdef.tmp"];
        for other in others {
            assert_eq!(temp_owner(other), None, "{other}");
        }
    }

    #[test]
    fn sweeping_removes_dead_writers_temporaries_only() {
        let dir = scratch("sweep");
        std::fs::create_dir_all(dir.join("run-1/edits")).unwrap();
        // A pid that is not running: a child that has exited and been reaped.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let live = std::process::id();
        let stale = [
            dir.join(format!(".a.png.{dead}.0123456789abcdef.tmp")),
            dir.join(format!("run-1/edits/.e.png.{dead}.fedcba9876543210.tmp")),
        ];
        let kept = [
            dir.join(format!(".b.png.{live}.0123456789abcdef.tmp")),
            dir.join(format!("run-1/.notes.{dead}.tmp")),
            dir.join("run-1/report.md"),
        ];
        for p in stale.iter().chain(&kept) {
            std::fs::write(p, b"x").unwrap();
        }
        assert_eq!(sweep_stale_temps(&dir), 2);
        assert!(stale.iter().all(|p| !p.exists()));
        assert!(kept.iter().all(|p| p.exists()));
        assert_eq!(sweep_stale_temps(&dir), 0);
        assert_eq!(sweep_stale_temps(&dir.join("missing")), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
