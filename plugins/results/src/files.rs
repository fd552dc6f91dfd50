//! Where result files go (always under the run's output folder) and how they are written (atomically).

use std::fs;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

/// `file` resolved under `out_dir`. `file` must be a relative path that stays inside the folder: no root, no
/// `..`, and a file name at the end.
pub fn resolve(out_dir: &str, file: &str) -> Result<PathBuf, String> {
    if file.trim().is_empty() {
        return Err("the file name is empty".into());
    }
    let rel = Path::new(file);
    let inside = rel.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !inside {
        return Err(format!("{file:?} must be a relative path inside the output folder (no root, no '..')"));
    }
    if rel.file_name().is_none() {
        return Err(format!("{file:?} names no file"));
    }
    Ok(Path::new(out_dir).join(rel))
}

/// `path` with `suffix` added to its file name, in the same folder (`a/b.png` + `.tmp` = `a/b.png.tmp`).
fn with_suffix(path: &Path, suffix: &str) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{} names no file", path.display())))?;
    let mut tmp = name.to_os_string();
    tmp.push(suffix);
    Ok(path.with_file_name(tmp))
}

/// Writes `bytes` to `path` atomically: creates the folder, writes `<name>.tmp` beside the target, flushes it
/// and renames it over the target. A reader sees the old file or the new one, never a part; on failure the
/// temporary file is removed.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let tmp = with_suffix(path, ".tmp")?;
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("subspace-results-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn atomic_write_creates_folder_and_leaves_no_tmp() {
        let dir = scratch("atomic");
        let path = dir.join("sub/folder/report.md");
        atomic_write(&path, b"first").unwrap();
        atomic_write(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        let names: Vec<String> =
            fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        assert_eq!(names, vec!["report.md".to_string()]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn atomic_write_fails_when_folder_is_a_file() {
        let dir = scratch("blocked");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("blocker"), b"x").unwrap();
        let err = atomic_write(&dir.join("blocker/out.png"), b"data").unwrap_err();
        assert!(!err.to_string().is_empty());
        assert!(!dir.join("blocker/out.png.tmp").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn resolve_keeps_files_inside_the_output_folder() {
        assert_eq!(resolve("/run/out", "grid.png").unwrap(), PathBuf::from("/run/out/grid.png"));
        assert_eq!(resolve("/run/out", "plots/loss.png").unwrap(), PathBuf::from("/run/out/plots/loss.png"));
        assert!(resolve("/run/out", "../escape.png").is_err());
        assert!(resolve("/run/out", "/etc/passwd").is_err());
        assert!(resolve("/run/out", "a/../../b.png").is_err());
        assert!(resolve("/run/out", "").is_err());
    }
}
