//! Run reports, in one place for the CLI and the editor server: the report as JSON (`run-report.json`, the
//! server's run result), as Markdown (`run-report.md`), how a value shows in them, and one line of text per event.

use crate::{exec::Event, NodeStatus, Plan, RunReport};
use anyhow::Result;
use std::path::Path;
use subspace_sdk::Value;

/// A value in a report: scalars and text as themselves, typed documents (bundles without tensors) as their JSON,
/// tensors and models as a summary.
pub fn value_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Bundle(b) if b.tensors.is_empty() => b.meta_json(),
        _ => v.to_json().unwrap_or_else(|| serde_json::Value::String(v.summary())),
    }
}

/// [`report_json`], with outputs of preset nodes also under the name the graph gives them (`fit/gmm` `mixture`
/// and `fit` `mixture`).
pub fn report_json_named(r: &RunReport, plan: &Plan) -> serde_json::Value {
    let mut j = report_json(r);
    let Some(outputs) = j["outputs"].as_object_mut() else { return j };
    for (name, (i, port)) in &plan.aliases {
        let (Some(v), Some((node, outer_port))) = (r.output(&plan.nodes[*i].id, port), name.rsplit_once('.')) else {
            continue;
        };
        if let Some(map) = outputs.entry(node.to_string()).or_insert_with(|| serde_json::json!({})).as_object_mut() {
            map.insert(outer_port.to_string(), value_json(v));
        }
    }
    j
}

/// The report as JSON: status and time per node, requested outputs, missing outputs, cache figures.
pub fn report_json(r: &RunReport) -> serde_json::Value {
    let status: serde_json::Map<String, serde_json::Value> = r
        .status
        .iter()
        .map(|(k, s)| {
            let v = match s {
                NodeStatus::Ran { seconds } => serde_json::json!({"status": "ran", "seconds": seconds}),
                NodeStatus::Cached => {
                    let from = if r.from_disk.contains(k) { "disk" } else { "memory" };
                    serde_json::json!({"status": "cached", "from": from})
                }
                NodeStatus::Failed { error } => serde_json::json!({"status": "failed", "error": error.to_string()}),
                NodeStatus::Skipped { because } => serde_json::json!({"status": "skipped", "because": because}),
            };
            (k.clone(), v)
        })
        .collect();
    let outputs: serde_json::Map<String, serde_json::Value> = r
        .outputs
        .iter()
        .map(|(k, outs)| {
            (
                k.clone(),
                outs.iter()
                    .map(|o| (o.name.to_string(), value_json(&o.value)))
                    .collect::<serde_json::Map<_, _>>()
                    .into(),
            )
        })
        .collect();
    let c = &r.cache;
    let disk = c.disk.map(|d| {
        serde_json::json!({"entries": d.entries, "bytes": d.bytes, "budget": d.budget, "hits": d.hits,
            "written": d.written, "evicted": d.evicted, "ignored": d.ignored, "warnings": r.warnings})
    });
    let cache = serde_json::json!({"entries": c.entries, "bytes": c.bytes, "budget": c.budget, "evicted": c.evicted,
        "disk": disk});
    serde_json::json!({"ok": r.ok(), "seconds": r.seconds, "cancelled": r.cancelled, "missing": r.missing, "nodes": status,
        "outputs": outputs, "cache": cache})
}

/// Writes `run-report.json` and `run-report.md` into the output folder (atomically): what ran, how long each node
/// took, what failed and why, and the text outputs (node reports).
pub fn write_run_report(out: &Path, graph: &Path, device: &str, plan: &Plan, report: &RunReport) -> Result<()> {
    let json = report_json_named(report, plan);
    let mut md = format!(
        "# Run report\n\nGraph `{}` on `{device}`, {:.2} s in all.\n\n| node | type | status | seconds |\n|---|---|---|---|\n",
        graph.display(),
        report.seconds
    );
    for i in plan.needed_order() {
        let n = &plan.nodes[i];
        let (status, secs) = match report.status.get(&n.id) {
            Some(NodeStatus::Ran { seconds }) => ("ran".to_string(), format!("{seconds:.2}")),
            Some(NodeStatus::Cached) if report.from_disk.contains(&n.id) => {
                ("cached (disk)".to_string(), String::new())
            }
            Some(NodeStatus::Cached) => ("cached".to_string(), String::new()),
            Some(NodeStatus::Failed { error }) => (format!("FAILED: {error}"), String::new()),
            Some(NodeStatus::Skipped { because }) => (format!("skipped ({because})"), String::new()),
            None => ("not needed".to_string(), String::new()),
        };
        md += &format!("| {} | {} | {} | {} |\n", n.id, n.node_type.descriptor.id, status.replace('|', "/"), secs);
    }
    let c = &report.cache;
    md += &format!(
        "\nCache: {} results, {} of a {} budget; {} evicted during the run.\n",
        c.entries,
        bytesize::ByteSize(c.bytes),
        bytesize::ByteSize(c.budget),
        c.evicted
    );
    if let Some(d) = c.disk {
        md += &format!(
            "\nDisk cache: {} results loaded, {} written; {} entries, {} of a {} budget; {} evicted, {} ignored.\n",
            d.hits,
            d.written,
            d.entries,
            bytesize::ByteSize(d.bytes),
            bytesize::ByteSize(d.budget),
            d.evicted,
            d.ignored
        );
        if !report.warnings.is_empty() {
            md += "\n";
        }
        for w in &report.warnings {
            md += &format!("- warning: {}\n", w.replace('\n', " "));
        }
    }
    if !report.missing.is_empty() {
        md += &format!("\nRequested outputs not produced: {}.\n", report.missing.join(", "));
    }
    for (node, outs) in &report.outputs {
        for o in outs {
            let body = match &o.value {
                Value::Text(t) => serde_json::from_str::<serde_json::Value>(t.as_str())
                    .map(|v| format!("```json\n{}\n```", serde_json::to_string_pretty(&v).unwrap_or_default()))
                    .unwrap_or_else(|_| t.to_string()),
                Value::Bundle(b) if b.tensors.is_empty() => {
                    format!("```json\n{}\n```", serde_json::to_string_pretty(&b.meta_json()).unwrap_or_default())
                }
                _ => continue,
            };
            md += &format!("\n## {node}.{}\n\n{body}\n", o.name);
        }
    }
    write_atomic(&out.join("run-report.json"), serde_json::to_string_pretty(&json)?.as_bytes())?;
    write_atomic(&out.join("run-report.md"), md.as_bytes())
}

/// `bytes` written to `path` atomically (the SDK's writer), as an `anyhow` error naming the file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    subspace_sdk::files::write_bytes_atomic(path, bytes).map_err(|e| anyhow::anyhow!("{}", e.message))
}

/// One line of text for an event (`None` for progress, which a listener shows its own way).
pub fn event_line(e: &Event) -> Option<String> {
    Some(match e {
        Event::NodeStarted { node, node_type } => format!("{node:>14}: started ({node_type})"),
        Event::NodeCached { node } => format!("{node:>14}: cached"),
        Event::NodeProgress { .. } => return None,
        Event::NodeLog { node, message } => format!("{node:>14}: {message}"),
        Event::NodeFinished { node, seconds } => format!("{node:>14}: done in {seconds:.2} s"),
        Event::NodeFailed { node, error } => format!("{node:>14}: FAILED: {error}"),
        Event::NodeSkipped { node, because } => format!("{node:>14}: skipped ({because})"),
    })
}
