//! The embedded default world of Subspace: a procedural renderer of labelled cartoon faces, and the GAN generator
//! and the two attribute classifiers trained on its renders (TorchScript files in `models/default/`).
//!
//! [`render`] is plain Rust; the rest uses tch (libtorch).

pub mod gates;
pub mod meta;
pub mod nets;
pub mod render;
pub mod sheet;
pub mod train;

pub use render::{render, Attributes, NUM_CLASSES, SCHEMA};

/// The committed default models folder (`models/default`, next to this crate).
pub fn default_models_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../default")
}
