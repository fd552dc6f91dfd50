//! Build-script helper shared by every Subspace crate that produces a binary or a plugin.
//!
//! torch-sys links libtorch dynamically, but its `-rpath` does not reach the final artifacts, and without
//! `--no-as-needed` the linker drops `libtorch_cuda.so` (nothing references it directly), after which
//! `Device::cuda_if_available()` quietly answers CPU on a CUDA machine. Call [`libtorch`] from `build.rs`.
//! It touches nothing but the link arguments of the crate that calls it.

use std::path::PathBuf;

/// Where libtorch lives: `$LIBTORCH` (set to the repo's `.libtorch` link by `.cargo/config.toml`), resolved.
pub fn libtorch_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("LIBTORCH")?);
    Some(dir.canonicalize().unwrap_or(dir))
}

/// Emits the link arguments: keep `torch_cuda` when present, and an rpath to libtorch's `lib/`.
pub fn libtorch() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Some(dir) = libtorch_dir() else {
        println!("cargo:warning=LIBTORCH is not set; run `make build` (it installs libtorch and links .libtorch)");
        return;
    };
    let lib = dir.join("lib");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-L{}", lib.display());
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}

/// The libtorch version string of the wheel (`torch/version.py`), e.g. `2.11.0+cu130`.
pub fn libtorch_version() -> String {
    libtorch_dir()
        .and_then(|d| std::fs::read_to_string(d.join("version.py")).ok())
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.strip_prefix("__version__ = ").map(|v| v.trim().trim_matches('\'').trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "unknown".to_string())
}
