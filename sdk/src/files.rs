//! Atomic file writes for nodes: nothing half-written is ever left under the final name.

use crate::error::{NodeError, NodeResult};
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
