//! The node catalog, in one place for the CLI (`subspace nodes`, `--json`) and the editor server (`/api/nodes`):
//! what an editor needs to draw nodes, sockets and widgets, and the same as text.

use crate::report::value_json;
use crate::Registry;
use std::fmt::Write;
use subspace_sdk::ParamKind;

/// The node catalog as JSON: what an editor needs to draw nodes, sockets and widgets.
pub fn nodes_json(registry: &Registry) -> serde_json::Value {
    let nodes: Vec<serde_json::Value> = registry
        .nodes
        .values()
        .map(|nt| {
            let d = &nt.descriptor;
            let ports = |list: &[subspace_sdk::PortSpec]| -> Vec<serde_json::Value> {
                list.iter().map(|p| serde_json::json!({"name": p.name.as_str(), "type": p.ty.as_str(), "description": p.description.as_str(), "optional": p.optional})).collect()
            };
            let params: Vec<serde_json::Value> = d
                .params
                .iter()
                .map(|p| {
                    let mut j = serde_json::json!({"name": p.name.as_str(), "kind": p.kind.type_name(), "default": value_json(&p.default), "description": p.description.as_str()});
                    match &p.kind {
                        ParamKind::Float { min, max } => { j["min"] = (*min).into(); j["max"] = (*max).into(); }
                        ParamKind::Int { min, max } => { j["min"] = (*min).into(); j["max"] = (*max).into(); }
                        ParamKind::Choice { choices } => { j["choices"] = choices.iter().map(|c| c.as_str()).collect::<Vec<_>>().into(); }
                        _ => {}
                    }
                    j
                })
                .collect();
            serde_json::json!({
                "id": d.id.as_str(), "version": d.version.as_str(), "display_name": d.display_name.as_str(),
                "category": d.category.as_str(), "description": d.description.as_str(), "volatile": d.volatile,
                "cacheable": nt.cacheable(),
                "inputs": ports(&d.inputs), "outputs": ports(&d.outputs), "params": params,
                "plugin": registry.plugins[nt.plugin].path.display().to_string(),
            })
        })
        .collect();
    serde_json::json!({"nodes": nodes})
}

/// The catalog as text, grouped by category.
pub fn nodes_text(registry: &Registry) -> String {
    let mut out = String::new();
    let mut last_category = String::new();
    let mut list: Vec<_> = registry.nodes.values().collect();
    list.sort_by(|a, b| {
        (a.descriptor.category.as_str(), a.descriptor.id.as_str())
            .cmp(&(b.descriptor.category.as_str(), b.descriptor.id.as_str()))
    });
    for nt in list {
        let d = &nt.descriptor;
        if d.category.as_str() != last_category {
            let _ = writeln!(out, "\n{}", d.category);
            last_category = d.category.to_string();
        }
        let _ = writeln!(out, "  {} {} - {}: {}", d.id, d.version, d.display_name, d.description);
        for p in d.inputs.iter() {
            let _ = writeln!(
                out,
                "      in  {:<12} {:<18}{} {}",
                p.name,
                p.ty,
                if p.optional { " (optional)" } else { "" },
                p.description
            );
        }
        for p in d.outputs.iter() {
            let _ = writeln!(out, "      out {:<12} {:<18} {}", p.name, p.ty, p.description);
        }
        for p in d.params.iter() {
            let range = match &p.kind {
                ParamKind::Float { min, max } => format!("float in [{min}, {max}]"),
                ParamKind::Int { min, max } => format!("int in [{min}, {max}]"),
                ParamKind::Choice { choices } => {
                    format!("one of {:?}", choices.iter().map(|c| c.as_str()).collect::<Vec<_>>())
                }
                k => k.type_name().to_string(),
            };
            let _ = writeln!(out, "      param {:<10} {} = {} - {}", p.name, range, p.default.summary(), p.description);
        }
    }
    out
}
