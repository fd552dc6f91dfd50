//! Atomic file writes for nodes: nothing half-written is ever left under the final name.

use crate::error::{NodeError, NodeResult};
use std::io::Write;
use std::path::Path;

/// Writes `path` atomically: `write` fills a temporary file in the same folder, which is then renamed over `path`.
/// The folder is created; on any failure the temporary file is removed and the error names the file.
pub fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> Result<(), String>) -> NodeResult<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| NodeError::io(format!("cannot create {}: {e}", dir.display())))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    if let Err(e) = write(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(NodeError::io(format!("cannot write {}: {e}", path.display())));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        NodeError::io(format!("cannot move {} to {}: {e}", tmp.display(), path.display()))
    })
}

/// Writes `bytes` to `path` atomically (see [`write_atomic`]), flushed to disk before the rename.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> NodeResult<()> {
    write_atomic(path, |tmp| {
        let mut f = std::fs::File::create(tmp).map_err(|e| e.to_string())?;
        f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("subspace-sdk-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn replaces_the_file_creates_folders_and_leaves_no_temporary() {
        let dir = scratch("atomic");
        let path = dir.join("sub/folder/report.md");
        write_bytes_atomic(&path, b"first").unwrap();
        write_bytes_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into())
            .collect();
        assert_eq!(names, vec!["report.md".to_string()]);
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
}
