//! The metadata files written next to each TorchScript model (read by the Generator and Classifier plugins).

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::render::SCHEMA;

pub const GENERATOR_FORMAT: &str = "subspace.generator/1";
pub const CLASSIFIER_FORMAT: &str = "subspace.classifier/1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latent {
    pub dim: usize,
    /// "normal": z ~ N(0, I).
    pub distribution: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageSpec {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub range: [f64; 2],
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratorTraining {
    pub seed: u64,
    pub steps: u64,
    pub minutes: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// `generator.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratorMeta {
    pub format: String,
    pub name: String,
    pub latent: Latent,
    pub output: ImageSpec,
    /// Name of the first layer's weight in the module's `named_parameters()` (for SeFa).
    pub first_layer: String,
    pub training: GeneratorTraining,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    pub classes: Vec<String>,
}

/// The label schema as metadata groups.
pub fn schema_groups() -> Vec<Group> {
    SCHEMA
        .iter()
        .map(|(name, classes)| Group {
            name: name.to_string(),
            classes: classes.iter().map(|c| c.to_string()).collect(),
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierTraining {
    pub role: String,
    pub seed: u64,
    pub steps: u64,
    pub minutes: f64,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// `classifier-fit.json` / `classifier-eval.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierMeta {
    pub format: String,
    pub name: String,
    pub input: ImageSpec,
    /// "probabilities": softmax applied per group inside the module.
    pub output: String,
    pub groups: Vec<Group>,
    pub training: ClassifierTraining,
}

pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path.file_name().context("path has no file name")?.to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}
