//! Links libtorch, and embeds the graph editor's built page (`host/editor/dist`, made by `make build`: npm ci and
//! vite build) into the binary as a table of `include_bytes!`, so `subspace serve` needs no Node.js at run time.
//! Without a built page a small one saying to run `make build` is embedded instead, so a plain `cargo build` works.

use std::path::{Path, PathBuf};

fn main() {
    subspace_link::libtorch();
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let dist = dir.join("editor/dist");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    // Watching a missing folder would rerun this script on every build; watch the editor folder until it exists.
    if dist.is_dir() {
        println!("cargo:rerun-if-changed={}", dist.display());
    } else {
        println!("cargo:rerun-if-changed={}", dir.join("editor").display());
    }
    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        collect(&dist, &dist, &mut files);
    }
    files.sort();
    let built = !files.is_empty();
    if !built {
        let page = out.join("fallback.html");
        std::fs::write(&page, FALLBACK).unwrap();
        files.push(("/index.html".to_string(), page));
    }
    let mut code = "/// True when the page was built with vite (not the fallback).\n".to_string();
    code += &format!("pub const BUILT: bool = {built};\n");
    code += "/// (URL path, content type, bytes) of every embedded file.\n";
    code += "pub static ASSETS: &[(&str, &str, &[u8])] = &[\n";
    for (url, path) in &files {
        let file = path.display().to_string();
        code += &format!("    ({url:?}, {:?}, include_bytes!({file:?})),\n", content_type(path));
    }
    code += "];\n";
    std::fs::write(out.join("editor_assets.rs"), code).unwrap();
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if let Ok(rel) = path.strip_prefix(root) {
            files.push((format!("/{}", rel.to_string_lossy().replace('\\', "/")), path.clone()));
        }
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

const FALLBACK: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Subspace graph editor (not built)</title>
</head>
<body style="font: 15px system-ui, sans-serif; margin: 3em; max-width: 40em">
<h1>The editor page was not built</h1>
<p>This <code>subspace</code> binary was compiled without the graph editor's page. Run <code>make build</code>
(it runs <code>npm ci</code> and <code>vite build</code> in <code>host/editor</code>, then cargo), and start
<code>subspace serve</code> again. The JSON API (<code>/api/nodes</code>, <code>/api/run</code>, ...) works
without it: see docs/EDITOR.md.</p>
</body>
</html>
"#;
