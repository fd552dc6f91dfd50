// A preset's exposed parameters (the graph's `params`, docs/GRAPH_FORMAT.md) as one form: each sets its
// target node parameters; kind, range and default come from the first target, narrowed by the preset.
import { useView } from "../context";
import { paramValue, type FlowNode } from "../model";
import type { GraphDoc, ParamSpec } from "../types";
import { ParamField } from "./ParamField";

function targets(t: string | string[]): [string, string][] {
  return (Array.isArray(t) ? t : [t]).map((s) => {
    const i = s.lastIndexOf(".");
    return [s.slice(0, i), s.slice(i + 1)];
  });
}

export function PresetForm({ doc, nodes }: { doc: GraphDoc; nodes: FlowNode[] }) {
  const view = useView();
  if (!doc.params?.length) return null;
  return (
    <section className="preset-form" aria-label="Preset parameters">
      <h3>Preset parameters</h3>
      {doc.params.map((p) => {
        const all = targets(p.target);
        const [nodeId, param] = all[0] ?? ["", ""];
        const node = nodes.find((n) => n.id === nodeId);
        const base = node && view.catalog[node.data.type]?.params.find((s) => s.name === param);
        if (!node || !base) {
          return <p key={p.name} className="node-error">{p.name}: its target {String(p.target)} is not in the graph</p>;
        }
        const spec: ParamSpec = {
          ...base,
          name: p.name,
          description: p.description || base.description,
          min: p.min ?? base.min,
          max: p.max ?? base.max,
          choices: p.choices ?? base.choices,
          kind: p.choices && base.kind === "text" ? "choice" : base.kind,
        };
        return (
          <div key={p.name} className="inspector-param">
            <ParamField spec={spec} nodeType={node.data.type} value={paramValue(base, node.data.params)}
              classes={view.classesFor(nodeId)}
              onChange={(v) => all.forEach(([n, k]) => view.setParam(n, k, v))} />
            <div className="doc small">{spec.description} <code>{all.map((a) => a.join(".")).join(", ")}</code></div>
          </div>
        );
      })}
    </section>
  );
}
