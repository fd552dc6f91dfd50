//! The graph editor's server (`subspace serve`) over real HTTP: the catalog, listing, opening and saving graph
//! files, validation errors that name node and port, a run whose written files are served back; and its safety:
//! foreign Hosts and Origins, missing tokens, wrong Content-Types and oversized bodies refused, names, paths and
//! symbolic links that would leave their folders refused, concurrent saves whole, run folders never reused; the run
//! queue, its event streams and live previews; and the page itself in a real browser (tests/browser/editor.mjs).

use serde_json::{json, Value as Json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use subspace_tests::*;

/// The server process, stopped when dropped.
struct Server {
    child: Child,
    addr: String,
    /// The session token, read from the served page as the page's script does.
    token: String,
}

impl Server {
    /// A request as the editor page makes it: its own Host, and for state-changing calls the token and JSON.
    fn call(&self, method: &str, path: &str, body: &str) -> (u16, Vec<u8>) {
        let headers: Vec<(&str, &str)> = if method == "GET" {
            vec![]
        } else {
            vec![("X-Subspace-Token", &self.token), ("Content-Type", "application/json")]
        };
        request_with(&self.addr, method, path, &headers, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(graphs: &std::path::Path, out: &std::path::Path) -> Server {
    start_with(graphs, out, &[])
}

fn start_with(graphs: &std::path::Path, out: &std::path::Path, env: &[(&str, &str)]) -> Server {
    let mut child = Command::new(host_binary())
        .current_dir(repo_root())
        .args([
            "--device",
            "cpu",
            "serve",
            "--port",
            "0",
            "--graphs",
            graphs.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    let page = String::from_utf8(request(&addr, "GET", "/", "").1).unwrap();
    let token = page
        .split("name=\"subspace-token\" content=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("token in the page");
    Server { child, addr: addr.clone(), token: token.to_string() }
}

/// One plain HTTP/1.1 request with the server's own Host; returns the status code and the body.
fn request(addr: &str, method: &str, path: &str, body: &str) -> (u16, Vec<u8>) {
    request_with(addr, method, path, &[], body)
}

/// One HTTP/1.1 request with extra headers (a `Host` among them replaces the server's own).
fn request_with(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head += &format!("Host: {addr}\r\n");
    }
    for (k, v) in headers {
        head += &format!("{k}: {v}\r\n");
    }
    // The server may refuse before reading the body and close: a failed write is then expected.
    let _ = write!(stream, "{head}\r\n").and_then(|_| stream.write_all(body.as_bytes()));
    let mut raw = Vec::new();
    // A refusal may close before the whole body was sent; what arrived is the answer.
    let _ = stream.read_to_end(&mut raw);
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("HTTP header end");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut body = raw[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = unchunk(&body);
    }
    (status, body)
}

fn unchunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&data[..end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 4 + size..];
    }
}

/// The `/assets/...` script the built page loads; None for the fallback page of a build without `make build`.
fn page_script(page: &str) -> Option<String> {
    let src = page.split("src=\"").nth(1)?.split('"').next()?;
    src.starts_with("/assets/").then(|| src.to_string())
}

fn json_of(r: (u16, Vec<u8>)) -> (u16, Json) {
    (r.0, serde_json::from_slice(&r.1).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&r.1))))
}

#[test]
fn the_editor_server_lists_opens_validates_runs_and_saves_graphs() {
    let graphs = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let small = json!({"version": 1, "nodes": [
            {"id": "g", "type": "subspace.generator", "params": {"count": 4, "seed": 3}},
            {"id": "grid", "type": "subspace.save_grid", "params": {"file": "grid.png"}}],
        "links": [{"from": "g.images", "to": "grid.images"}], "outputs": ["grid"], "editor": {"positions": {"g": [10, 20]}}});
    std::fs::write(graphs.path().join("small.json"), small.to_string()).unwrap();
    std::fs::write(graphs.path().join("notes.txt"), "not a graph").unwrap();
    let s = start(graphs.path(), out.path());

    let (code, page) = request(&s.addr, "GET", "/", "");
    assert_eq!(code, 200);
    let page = String::from_utf8_lossy(&page).to_string();
    match page_script(&page) {
        // The built page's script, embedded in the binary, drives the API.
        Some(script) => {
            let (code, js) = request(&s.addr, "GET", &script, "");
            assert_eq!(code, 200, "{script}");
            assert!(String::from_utf8_lossy(&js).contains("/api/nodes"), "the page should drive the API");
        }
        None => assert!(page.contains("make build"), "a binary without the built page says how to build it"),
    }
    let (code, nodes) = json_of(request(&s.addr, "GET", "/api/nodes", ""));
    assert_eq!(code, 200);
    let ids: Vec<&str> = nodes["nodes"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect();
    for t in [
        "subspace.generator",
        "subspace.classifier",
        "subspace.single_gauss_fit",
        "subspace.gmm_fit",
        "subspace.attribute_edit",
    ] {
        assert!(ids.contains(&t), "{t} missing from {ids:?}");
    }
    let (_, list) = json_of(request(&s.addr, "GET", "/api/graphs", ""));
    assert_eq!(list["graphs"], json!(["small.json"]), "only .json graph files are listed");
    let (code, opened) = json_of(request(&s.addr, "GET", "/api/graph/small.json", ""));
    assert_eq!((code, &opened["editor"]["positions"]["g"]), (200, &json!([10, 20])), "editor state is kept");

    // A wrong link is reported with the node and the port.
    let mut bad = small.clone();
    bad["links"] = json!([{"from": "g.codes", "to": "grid.images"}]);
    let (code, v) = json_of(s.call("POST", "/api/validate", &bad.to_string()));
    assert_eq!((code, &v["ok"]), (200, &json!(false)));
    let errors = v["errors"].to_string();
    assert!(errors.contains("grid") && errors.contains("images") && errors.contains("latents"), "{errors}");
    let (code, v) = json_of(s.call("POST", "/api/validate", "{not json"));
    assert_eq!(code, 400);
    assert!(v["error"].as_str().unwrap().contains("invalid graph JSON"), "{v}");

    // A run writes its files under out/run-N and serves them back.
    let (code, r) = json_of(s.call("POST", "/api/run", &small.to_string()));
    assert_eq!((code, &r["ok"]), (200, &json!(true)), "{r}");
    assert_eq!(r["report"]["nodes"]["g"]["status"], "ran");
    assert_eq!(r["files"], json!(["run-1/grid.png"]));
    let (_, progress) = json_of(request(&s.addr, "GET", "/api/progress", ""));
    assert_eq!(progress, json!({"g": "done", "grid": "done"}), "the last run's state per node");
    let (code, png) = request(&s.addr, "GET", "/files/run-1/grid.png", "");
    assert_eq!(code, 200);
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // The same graph again: the session's cache answers, in a new run folder.
    let (_, r2) = json_of(s.call("POST", "/api/run", &small.to_string()));
    assert_eq!((&r2["run"], &r2["report"]["nodes"]["g"]["status"]), (&json!("run-2"), &json!("cached")));

    // Saving writes the file (parsed and re-serialised); bad names and paths are refused.
    let (code, _) = json_of(s.call("PUT", "/api/graph/copy.json", &opened.to_string()));
    assert_eq!(code, 200);
    let saved: Json = serde_json::from_str(&std::fs::read_to_string(graphs.path().join("copy.json")).unwrap()).unwrap();
    assert_eq!(saved["nodes"], opened["nodes"]);
    for name in ["..%2Fescape.json", ".hidden.json", "copy.txt"] {
        assert_eq!(s.call("PUT", &format!("/api/graph/{name}"), &opened.to_string()).0, 400, "{name}");
    }
    assert_eq!(s.call("PUT", "/api/graph/broken.json", "{\"version\": 1, \"nodes\": 5}").0, 400);
    assert!(!graphs.path().join("broken.json").exists(), "an invalid graph is not saved");
    assert_eq!(request(&s.addr, "GET", "/files/run-1/../../etc/passwd", "").0, 404);
    assert_eq!(request(&s.addr, "GET", "/files/run-1/..%2F..%2Fetc%2Fpasswd", "").0, 404);

    // A run can be stopped: a long sampling stops at its next batch and the run reports it.
    assert_eq!(json_of(s.call("POST", "/api/cancel", "")).1["cancelled"], json!(false), "nothing runs yet");
    let mut long = small.clone();
    long["nodes"][0]["params"] = json!({"count": 150_000, "seed": 4, "batch": 64});
    let addr = s.addr.clone();
    let token = s.token.clone();
    let runner = std::thread::spawn(move || {
        let headers = [("X-Subspace-Token", token.as_str()), ("Content-Type", "application/json")];
        json_of(request_with(&addr, "POST", "/api/run", &headers, &long.to_string()))
    });
    let mut cancelled = false;
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        if json_of(s.call("POST", "/api/cancel", "")).1["cancelled"] == json!(true) {
            cancelled = true;
            break;
        }
    }
    assert!(cancelled, "the run never became cancellable");
    let (_, stopped) = runner.join().unwrap();
    assert_eq!(stopped["ok"], json!(false), "{stopped}");
    assert_ne!(stopped["report"]["nodes"]["g"]["status"], json!("ran"), "{stopped}");

    // Names are percent-decoded: a file with a space is served back under its encoded name.
    let mut spaced = small.clone();
    spaced["nodes"][1]["params"]["file"] = json!("my grid.png");
    let (_, r3) = json_of(s.call("POST", "/api/run", &spaced.to_string()));
    let folder = r3["run"].as_str().unwrap().to_string();
    assert_eq!(r3["files"], json!([format!("{folder}/my grid.png")]), "{r3}");
    assert_eq!(request(&s.addr, "GET", &format!("/files/{folder}/my%20grid.png"), "").0, 200);
}

/// A graph in the served folder reads its relative paths against that folder, as `subspace run` reads them against
/// the graph file's (docs/GRAPH_FORMAT.md, "Paths"), whether the page names the file or not; a missing model is
/// reported at validation with the path it was looked for at.
#[test]
fn a_graph_in_the_served_folder_reads_paths_against_that_folder() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let (models, graphs, out) = (root.join("models"), root.join("graphs"), root.join("out"));
    for d in [&models, &graphs, &out] {
        std::fs::create_dir_all(d).unwrap();
    }
    toy::generator(&models);
    let graph = |model: &str| {
        json!({"version": 1, "nodes": [
                {"id": "g", "type": "subspace.generator", "params": {"model": model, "count": 3, "seed": 2}}],
            "links": [], "outputs": ["g.codes"]})
    };
    let mine = graph("../models/gen.pt");
    std::fs::write(graphs.join("mine.json"), mine.to_string()).unwrap();
    let s = start(&graphs, &out);
    for url in ["/api/validate?graph=mine.json", "/api/validate?graph=unsaved.json", "/api/validate"] {
        let (code, v) = json_of(s.call("POST", url, &mine.to_string()));
        assert_eq!((code, &v["ok"]), (200, &json!(true)), "{url}: {v}");
    }
    let (code, r) = json_of(s.call("POST", "/api/run?graph=mine.json", &mine.to_string()));
    assert_eq!((code, &r["ok"]), (200, &json!(true)), "{r}");
    assert_eq!(r["report"]["nodes"]["g"]["status"], "ran", "{r}");

    let missing = graph("../models/missing.pt");
    let (code, v) = json_of(s.call("POST", "/api/validate?graph=mine.json", &missing.to_string()));
    assert_eq!((code, &v["ok"]), (200, &json!(false)), "{v}");
    assert_eq!((&v["details"][0]["node"], &v["details"][0]["location"]), (&json!("g"), &json!("model")), "{v}");
    let looked_at = models.join("missing.pt").display().to_string();
    assert!(v["errors"][0].as_str().unwrap().contains(&looked_at), "{v}");
    // The name is a graph file name in the served folder, nothing else.
    let (code, v) = json_of(s.call("POST", "/api/validate?graph=..%2Fescape.json", &mine.to_string()));
    assert_eq!(code, 400, "{v}");
}

/// The small graph the safety tests run: four sampled faces into a grid.
fn small_graph() -> Json {
    json!({"version": 1, "nodes": [
            {"id": "g", "type": "subspace.generator", "params": {"count": 4, "seed": 3}},
            {"id": "grid", "type": "subspace.save_grid", "params": {"file": "grid.png"}}],
        "links": [{"from": "g.images", "to": "grid.images"}], "outputs": ["grid"]})
}

fn runs_in(out: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    names.retain(|n| n.starts_with("run-"));
    names.sort();
    names
}

#[test]
fn only_the_editor_page_can_drive_the_server() {
    let graphs = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    std::fs::write(graphs.path().join("small.json"), small_graph().to_string()).unwrap();
    let s = start(graphs.path(), out.path());
    let body = small_graph().to_string();
    let token = s.token.as_str();
    let good = [("X-Subspace-Token", token), ("Content-Type", "application/json")];
    let refused = |headers: &[(&str, &str)], method: &str, path: &str, code: u16, says: &str| {
        let (got, reply) = json_of(request_with(&s.addr, method, path, headers, &body));
        let message = reply["error"].as_str().unwrap_or_default().to_string();
        assert_eq!(got, code, "{method} {path} with {headers:?}: {reply}");
        assert!(message.contains(says), "{method} {path}: the refusal should say '{says}': {message}");
    };
    // A cross-site form post: text/plain, no token (what any web page can send without a preflight).
    refused(&[("Content-Type", "text/plain")], "POST", "/api/run", 403, "token");
    refused(
        &[("Origin", "https://evil.example"), ("Content-Type", "text/plain")],
        "POST",
        "/api/run",
        403,
        "evil.example",
    );
    // The token alone is not enough: the body must be declared JSON, and come from the page's own origin.
    refused(
        &[("X-Subspace-Token", token), ("Content-Type", "text/plain")],
        "POST",
        "/api/run",
        415,
        "application/json",
    );
    let foreign_origin = [good[0], good[1], ("Origin", "http://localhost.evil.example:80")];
    refused(&foreign_origin, "POST", "/api/run", 403, "Origin");
    refused(&[good[0], good[1], ("Sec-Fetch-Site", "cross-site")], "POST", "/api/run", 403, "cross-site");
    refused(&[("X-Subspace-Token", "0000"), good[1]], "PUT", "/api/graph/new.json", 403, "token");
    refused(&[], "POST", "/api/cancel", 403, "token");
    // DNS rebinding: the right address under a foreign name is refused for reads and writes alike.
    let rebound = [("Host", "evil.example:8787"), good[0], good[1]];
    refused(&rebound, "GET", "/api/graph/small.json", 403, "evil.example");
    refused(&rebound, "GET", "/api/graphs", 403, "Host");
    refused(&rebound, "POST", "/api/run", 403, "Host");
    assert!(runs_in(out.path()).is_empty(), "no refused request may start a run");
    assert!(!graphs.path().join("new.json").exists());
    // A body over the limit is refused whole.
    let huge = format!("{{\"version\": 1, \"nodes\": [], \"pad\": \"{}\"}}", "x".repeat(2 << 20));
    let (code, _) = request_with(&s.addr, "PUT", "/api/graph/huge.json", &good, &huge);
    assert_eq!(code, 413);
    assert!(!graphs.path().join("huge.json").exists());

    // The page itself, and its own calls, work: same origin, token, JSON. Another site may not frame it.
    let page = request_with(&s.addr, "GET", "/", &[("Sec-Fetch-Site", "cross-site")], "");
    assert_eq!(page.0, 200, "navigating to the editor from a link is fine");
    let origin = format!("http://{}", s.addr);
    let own = [good[0], good[1], ("Origin", origin.as_str()), ("Sec-Fetch-Site", "same-origin")];
    let (code, r) = json_of(request_with(&s.addr, "POST", "/api/run", &own, &body));
    assert_eq!((code, &r["ok"]), (200, &json!(true)), "{r}");
    let localhost = format!("localhost:{}", s.addr.rsplit(':').next().unwrap());
    assert_eq!(request_with(&s.addr, "GET", "/api/graphs", &[("Host", localhost.as_str())], "").0, 200);
    let mut raw = TcpStream::connect(&s.addr).unwrap();
    write!(raw, "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", s.addr).unwrap();
    let mut head = String::new();
    raw.read_to_string(&mut head).unwrap();
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("x-frame-options: deny") && head.contains("frame-ancestors 'none'"),
        "{}",
        &head[..head.len().min(600)]
    );
}

#[test]
fn symbolic_links_and_traversal_cannot_leave_the_served_folders() {
    let graphs = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.json");
    std::fs::write(&secret, "{\"secret\": true}").unwrap();
    std::os::unix::fs::symlink(&secret, graphs.path().join("link.json")).unwrap();
    std::fs::create_dir(out.path().join("run-7")).unwrap();
    std::os::unix::fs::symlink(&secret, out.path().join("run-7/leak.json")).unwrap();
    std::os::unix::fs::symlink(outside.path(), out.path().join("run-7/folder")).unwrap();
    let s = start(graphs.path(), out.path());

    let (_, list) = json_of(s.call("GET", "/api/graphs", ""));
    assert_eq!(list["graphs"], json!([]), "a link is not listed as a graph");
    let (code, r) = json_of(s.call("GET", "/api/graph/link.json", ""));
    assert_eq!(code, 403, "{r}");
    let (code, _) = s.call("PUT", "/api/graph/link.json", &small_graph().to_string());
    assert_eq!(code, 403);
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "{\"secret\": true}", "nothing written through the link");
    for path in ["/files/run-7/leak.json", "/files/run-7/folder/secret.json"] {
        let (code, body) = s.call("GET", path, "");
        assert_eq!(code, 403, "{path}: {}", String::from_utf8_lossy(&body));
        assert!(!String::from_utf8_lossy(&body).contains("secret\": true"), "{path}");
    }
    for path in ["/files/run-7/../../x", "/files/%2e%2e/x", "/files//etc/passwd", "/files/"] {
        assert_eq!(s.call("GET", path, "").0, 404, "{path}");
    }
    for name in ["..%2Fescape.json", "%2Ftmp%2Fx.json", "a%2Fb.json"] {
        assert_eq!(s.call("PUT", &format!("/api/graph/{name}"), &small_graph().to_string()).0, 400, "{name}");
    }
    // A run's file list does not follow links either (run-7's links are not listed under a new run).
    let (_, r) = json_of(s.call("POST", "/api/run", &small_graph().to_string()));
    assert_eq!(r["run"], "run-8", "numbering continues after the folders already there");
    assert_eq!(r["files"], json!(["run-8/grid.png"]));
}

#[test]
fn concurrent_saves_of_one_graph_each_land_whole() {
    let graphs = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let s = std::sync::Arc::new(start(graphs.path(), out.path()));
    let bodies: Vec<String> = (0..24)
        .map(|i| {
            let mut g = small_graph();
            g["nodes"][0]["params"]["seed"] = json!(i);
            g["editor"] = json!({"note": "x".repeat(20_000 + i * 97)});
            g.to_string()
        })
        .collect();
    let threads: Vec<_> = bodies
        .iter()
        .cloned()
        .map(|b| {
            let s = s.clone();
            std::thread::spawn(move || s.call("PUT", "/api/graph/shared.json", &b).0)
        })
        .collect();
    let codes: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(codes.iter().all(|&c| c == 200), "every save succeeds: {codes:?}");
    let saved: Json =
        serde_json::from_str(&std::fs::read_to_string(graphs.path().join("shared.json")).unwrap()).unwrap();
    let seed = saved["nodes"][0]["params"]["seed"].as_u64().unwrap() as usize;
    assert_eq!(saved["editor"]["note"].as_str().unwrap().len(), 20_000 + seed * 97, "the file is one save, whole");
    let names: Vec<String> =
        std::fs::read_dir(graphs.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    assert_eq!(names, vec!["shared.json".to_string()], "no temporary file is left");
}

#[test]
fn a_restarted_server_keeps_the_earlier_runs() {
    let graphs = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let first = start(graphs.path(), out.path());
    let (_, r) = json_of(first.call("POST", "/api/run", &small_graph().to_string()));
    assert_eq!(r["run"], "run-1");
    let before = std::fs::read(out.path().join("run-1/grid.png")).unwrap();
    drop(first);
    let second = start(graphs.path(), out.path());
    let mut g = small_graph();
    g["nodes"][0]["params"]["seed"] = json!(9);
    let (_, r) = json_of(second.call("POST", "/api/run", &g.to_string()));
    assert_eq!(r["run"], "run-2", "{r}");
    assert_eq!(
        std::fs::read(out.path().join("run-1/grid.png")).unwrap(),
        before,
        "the first session's result is untouched"
    );
    assert_eq!(runs_in(out.path()), vec!["run-1", "run-2"]);
}

#[test]
fn an_input_that_used_to_abort_is_answered_by_an_error_and_the_server_keeps_serving() {
    let graphs = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let gen = toy::generator(models.path());
    let mut meta: Json = serde_json::from_str(&std::fs::read_to_string(gen.with_extension("json")).unwrap()).unwrap();
    meta["latent"]["dim"] = json!(1_000_000_000_000i64);
    std::fs::write(gen.with_extension("json"), meta.to_string()).unwrap();
    let s = start(graphs.path(), out.path());
    let mut g = small_graph();
    g["nodes"][0]["params"]["model"] = json!(gen.display().to_string());
    let (code, r) = json_of(s.call("POST", "/api/run", &g.to_string()));
    assert_eq!((code, &r["ok"]), (200, &json!(false)), "{r}");
    let error = r["report"]["nodes"]["g"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("latent.dim"), "the error names the sidecar key: {r}");
    // Same server process, still serving and running.
    assert_eq!(s.call("GET", "/api/nodes", "").0, 200);
    let (_, r) = json_of(s.call("POST", "/api/run", &small_graph().to_string()));
    assert_eq!(r["ok"], json!(true), "{r}");
}

/// The events of a run's stream (`GET /api/runs/ID/events`), read until the server ends it: (event, data).
fn events(addr: &str, id: u64, token: &str) -> Vec<(String, Json)> {
    let (code, body) = request(addr, "GET", &format!("/api/runs/{id}/events?token={token}"), "");
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    String::from_utf8_lossy(&body)
        .split("\n\n")
        .filter_map(|block| {
            let event = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((event.to_string(), serde_json::from_str(data).unwrap()))
        })
        .collect()
}

#[test]
fn runs_are_queued_streamed_and_previewed_for_the_page_only() {
    let graphs = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let s = start(graphs.path(), out.path());
    let mut long = small_graph();
    long["nodes"][0]["params"] = json!({"count": 150_000, "seed": 5, "batch": 64});

    // Two runs from two tabs: the second waits behind the first.
    let (_, first) = json_of(s.call("POST", "/api/runs", &long.to_string()));
    let (_, second) = json_of(s.call("POST", "/api/runs", &small_graph().to_string()));
    let (a, b) = (first["id"].as_u64().unwrap(), second["id"].as_u64().unwrap());
    assert_eq!(second["ahead"], json!(1), "{second}");

    // A run's state is the session's: it needs the token, and the page's own Host and origin.
    assert_eq!(request(&s.addr, "GET", &format!("/api/runs/{b}"), "").0, 403);
    assert_eq!(request(&s.addr, "GET", &format!("/api/runs/{b}/events?token=00"), "").0, 403);
    let sneaky = [("Sec-Fetch-Site", "cross-site")];
    let path = format!("/api/runs/{a}/events?token={}", s.token);
    assert_eq!(request_with(&s.addr, "GET", &path, &sneaky, "").0, 403, "a cross-site stream is refused");
    let rebound = [("Host", "evil.example:80")];
    assert_eq!(request_with(&s.addr, "GET", &path, &rebound, "").0, 403, "a rebound Host is refused");
    let (code, state) = json_of(request(&s.addr, "GET", &format!("/api/runs/{b}?token={}", s.token), ""));
    assert_eq!((code, &state["phase"]), (200, &json!("queued")), "{state}");

    // Stopping the queued run drops it; stopping the running one reports it stopped, not failed.
    assert_eq!(json_of(s.call("POST", "/api/cancel", &json!({"run": b}).to_string())).1["cancelled"], json!(true));
    let (_, state) = json_of(request(&s.addr, "GET", &format!("/api/runs/{b}?token={}", s.token), ""));
    assert_eq!(state["result"]["stopped"], json!(true), "{state}");
    for _ in 0..100 {
        let (_, st) = json_of(request(&s.addr, "GET", &format!("/api/runs/{a}?token={}", s.token), ""));
        if st["nodes"]["g"]["state"] == json!("started") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let token = s.token.clone();
    let addr = s.addr.clone();
    let stream = std::thread::spawn(move || events(&addr, a, &token));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(json_of(s.call("POST", "/api/cancel", &json!({"run": a}).to_string())).1["cancelled"], json!(true));
    let seen = stream.join().unwrap();
    assert_eq!(seen.first().map(|e| e.0.as_str()), Some("state"), "a stream starts with the state so far");
    let (last, result) = seen.last().unwrap();
    assert_eq!(last, "done");
    assert_eq!((&result["stopped"], &result["ok"]), (&json!(true), &json!(false)), "{result}");
    assert_eq!(result["nodes"]["g"]["state"], json!("stopped"), "{result}");
    // A finished run's stream answers at once with its state, result included.
    let again = events(&s.addr, a, &s.token);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].1["result"]["stopped"], json!(true));

    // A full run shows the pictures of every images output and the classes of labels; a preview asks only for
    // what it shows, reuses the cache and makes no run folder.
    let (_, r) = json_of(s.call("POST", "/api/run", &small_graph().to_string()));
    let urls = r["pictures"]["g"]["images"]["urls"].as_array().unwrap();
    assert_eq!((urls.len(), &r["pictures"]["g"]["images"]["total"]), (4, &json!(4)), "{}", r["pictures"]);
    assert!(urls[0].as_str().unwrap().starts_with("data:image/png;base64,"));
    assert!(r["report"]["outputs"].get("g").is_none(), "pictures asked for the page are not reported as outputs");
    let before = runs_in(out.path());
    let mut preview = small_graph();
    preview["outputs"] = json!(["g.images"]);
    let (_, p) = json_of(s.call("POST", "/api/preview", &preview.to_string()));
    assert_eq!((&p["ok"], &p["run"], &p["nodes"]["g"]["state"]), (&json!(true), &Json::Null, &json!("cached")), "{p}");
    assert_eq!(p["pictures"]["g"]["images"]["urls"].as_array().unwrap().len(), 4);
    assert_eq!(runs_in(out.path()), before, "a preview makes no run folder");

    // Validation problems name node and port for the page to put them on the node.
    let mut bad = small_graph();
    bad["links"] = json!([{"from": "g.codes", "to": "grid.images"}]);
    let (_, v) = json_of(s.call("POST", "/api/runs", &bad.to_string()));
    let first = &v["details"][0];
    assert_eq!(v["ok"], json!(false));
    assert_eq!((&first["node"], &first["location"]), (&json!("grid"), &json!("images")), "{v}");
}

/// The page itself in Debian's Chromium, driven by tests/browser/editor.mjs (playwright-core): see that file
/// for what it checks. `make test` installs Chromium and playwright-core and sets SUBSPACE_BROWSER_TESTS=1; without
/// them a plain `cargo test` skips this test with a note. SUBSPACE_SHOTS=DIR keeps its screenshots.
#[test]
fn the_editor_works_in_a_real_browser() {
    let required = std::env::var("SUBSPACE_BROWSER_TESTS").is_ok_and(|v| v == "1");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let browser_dir = repo_root().join("tests/browser");
    let node_ok = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    let missing: Vec<&str> = [
        (!std::path::Path::new(&chromium).exists(), "Chromium (apt-get install chromium)"),
        (!browser_dir.join("node_modules/playwright-core").exists(), "playwright-core (npm ci in tests/browser)"),
        (!node_ok, "Node.js"),
    ]
    .into_iter()
    .filter_map(|(gone, what)| gone.then_some(what))
    .collect();
    let skip = |why: String| {
        assert!(!required, "the browser test cannot run: {why}");
        eprintln!("skipped: {why} (make test installs what it needs)");
    };
    if !missing.is_empty() {
        return skip(format!("missing {}", missing.join(", ")));
    }
    let graphs = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    std::fs::copy(browser_dir.join("fit.json"), graphs.path().join("fit.json")).unwrap();
    // Your own pictures, in a folder beside the graph that names it relatively.
    std::fs::copy(browser_dir.join("pictures.json"), graphs.path().join("pictures.json")).unwrap();
    std::fs::create_dir_all(graphs.path().join("pictures")).unwrap();
    for i in 0..4 {
        let name = format!("face-00000{i}.png");
        std::fs::copy(
            repo_root().join("tests/fixtures/pictures").join(&name),
            graphs.path().join("pictures").join(&name),
        )
        .unwrap();
    }
    let s = start_with(graphs.path(), out.path(), &[("OMP_WAIT_POLICY", "PASSIVE")]);
    let page = String::from_utf8_lossy(&request(&s.addr, "GET", "/", "").1).to_string();
    if page_script(&page).is_none() {
        return skip("this binary carries no built editor page (make build)".into());
    }
    let mut cmd = Command::new("node");
    cmd.arg(browser_dir.join("editor.mjs")).arg(format!("http://{}/", s.addr)).env("CHROMIUM", &chromium);
    if let Ok(dir) = std::env::var("SUBSPACE_SHOTS") {
        cmd.args(["--shots", &dir]);
    }
    let run = cmd.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    println!("{text}");
    assert!(run.status.success(), "the browser test failed:\n{text}");
    assert!(text.contains("LATENCY {"), "{text}");
}
