//! Where result files go: always under the run's output folder.

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

#[cfg(test)]
mod tests {
    use super::*;

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
