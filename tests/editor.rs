//! The graph editor's server (`subspace serve`) over real HTTP: the catalog, listing, opening and saving graph
//! files, validation errors that name node and port, a run whose written files are served back, and refusals of
//! names and paths that would leave their folders.

use serde_json::{json, Value as Json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use subspace_tests::*;

/// The server process, stopped when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(graphs: &std::path::Path, out: &std::path::Path) -> Server {
    let mut child = Command::new(host_binary())
        .current_dir(repo_root())
        .args(["--device", "cpu", "serve", "--port", "0", "--graphs", graphs.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.split("http://").nth(1).and_then(|s| s.split('/').next()).unwrap_or_else(|| panic!("no address in {line:?}")).to_string();
    Server { child, addr }
}

/// One HTTP/1.1 request; returns the status code and the body.
fn request(addr: &str, method: &str, path: &str, body: &str) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
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
    assert!(String::from_utf8_lossy(&page).contains("/api/nodes"), "the page should drive the API");
    let (code, nodes) = json_of(request(&s.addr, "GET", "/api/nodes", ""));
    assert_eq!(code, 200);
    let ids: Vec<&str> = nodes["nodes"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect();
    for t in ["subspace.generator", "subspace.classifier", "subspace.single_gauss_fit", "subspace.gmm_fit", "subspace.attribute_edit"] {
        assert!(ids.contains(&t), "{t} missing from {ids:?}");
    }
    let (_, list) = json_of(request(&s.addr, "GET", "/api/graphs", ""));
    assert_eq!(list["graphs"], json!(["small.json"]), "only .json graph files are listed");
    let (code, opened) = json_of(request(&s.addr, "GET", "/api/graph/small.json", ""));
    assert_eq!((code, &opened["editor"]["positions"]["g"]), (200, &json!([10, 20])), "editor state is kept");

    // A wrong link is reported with the node and the port.
    let mut bad = small.clone();
    bad["links"] = json!([{"from": "g.codes", "to": "grid.images"}]);
    let (code, v) = json_of(request(&s.addr, "POST", "/api/validate", &bad.to_string()));
    assert_eq!((code, &v["ok"]), (200, &json!(false)));
    let errors = v["errors"].to_string();
    assert!(errors.contains("grid") && errors.contains("images") && errors.contains("latents"), "{errors}");
    let (code, v) = json_of(request(&s.addr, "POST", "/api/validate", "{not json"));
    assert_eq!(code, 400);
    assert!(v["error"].as_str().unwrap().contains("invalid graph JSON"), "{v}");

    // A run writes its files under out/run-N and serves them back.
    let (code, r) = json_of(request(&s.addr, "POST", "/api/run", &small.to_string()));
    assert_eq!((code, &r["ok"]), (200, &json!(true)), "{r}");
    assert_eq!(r["report"]["nodes"]["g"]["status"], "ran");
    assert_eq!(r["files"], json!(["run-1/grid.png"]));
    let (_, progress) = json_of(request(&s.addr, "GET", "/api/progress", ""));
    assert_eq!(progress, json!({"g": "done", "grid": "done"}), "the last run's state per node");
    let (code, png) = request(&s.addr, "GET", "/files/run-1/grid.png", "");
    assert_eq!(code, 200);
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // The same graph again: the session's cache answers, in a new run folder.
    let (_, r2) = json_of(request(&s.addr, "POST", "/api/run", &small.to_string()));
    assert_eq!((&r2["run"], &r2["report"]["nodes"]["g"]["status"]), (&json!("run-2"), &json!("cached")));

    // Saving writes the file (parsed and re-serialised); bad names and paths are refused.
    let (code, _) = json_of(request(&s.addr, "PUT", "/api/graph/copy.json", &opened.to_string()));
    assert_eq!(code, 200);
    let saved: Json = serde_json::from_str(&std::fs::read_to_string(graphs.path().join("copy.json")).unwrap()).unwrap();
    assert_eq!(saved["nodes"], opened["nodes"]);
    for name in ["..%2Fescape.json", ".hidden.json", "copy.txt"] {
        assert_eq!(request(&s.addr, "PUT", &format!("/api/graph/{name}"), &opened.to_string()).0, 400, "{name}");
    }
    assert_eq!(request(&s.addr, "PUT", "/api/graph/broken.json", "{\"version\": 1, \"nodes\": 5}").0, 400);
    assert!(!graphs.path().join("broken.json").exists(), "an invalid graph is not saved");
    assert_eq!(request(&s.addr, "GET", "/files/run-1/../../etc/passwd", "").0, 404);
    assert_eq!(request(&s.addr, "GET", "/files/run-1/..%2F..%2Fetc%2Fpasswd", "").0, 404);

    // A run can be stopped: a long sampling stops at its next batch and the run reports it.
    assert_eq!(json_of(request(&s.addr, "POST", "/api/cancel", "")).1["cancelled"], json!(false), "nothing runs yet");
    let mut long = small.clone();
    long["nodes"][0]["params"] = json!({"count": 2_000_000, "seed": 4, "batch": 64});
    let addr = s.addr.clone();
    let runner = std::thread::spawn(move || json_of(request(&addr, "POST", "/api/run", &long.to_string())));
    let mut cancelled = false;
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        if json_of(request(&s.addr, "POST", "/api/cancel", "")).1["cancelled"] == json!(true) {
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
    let (_, r3) = json_of(request(&s.addr, "POST", "/api/run", &spaced.to_string()));
    let folder = r3["run"].as_str().unwrap().to_string();
    assert_eq!(r3["files"], json!([format!("{folder}/my grid.png")]), "{r3}");
    assert_eq!(request(&s.addr, "GET", &format!("/files/{folder}/my%20grid.png"), "").0, 200);
}
