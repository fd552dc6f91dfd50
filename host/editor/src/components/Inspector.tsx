// The side panel: every parameter of the selected node with its range and documentation, whether the node is
// a requested output, and (with nothing selected) the graph's description and its exposed parameters.
import { useView } from "../context";
import { LIVE_PARAMS, paramValue, type FlowNode } from "../model";
import type { GraphDoc } from "../types";
import { ParamField } from "./ParamField";
import { PresetForm } from "./PresetForm";

interface Props {
  node: FlowNode | null;
  doc: GraphDoc;
  nodes: FlowNode[];
  onToggleOutput: (id: string, on: boolean) => void;
  onRemove: (id: string) => void;
}

export function Inspector({ node, doc, nodes, onToggleOutput, onRemove }: Props) {
  const view = useView();
  if (!node) {
    return (
      <aside className="inspector" aria-label="Graph">
        <h2>Graph</h2>
        {doc.description && <p className="doc">{doc.description}</p>}
        <PresetForm doc={doc} nodes={nodes} />
        <p className="hint">
          Select a node to edit its parameters. Drag nodes from the palette (or double-click the canvas to search),
          drag from an output socket to an input socket to link them. Ctrl+Enter runs; Ctrl+Z undoes.
        </p>
      </aside>
    );
  }
  const t = view.catalog[node.data.type];
  const requested = view.outputs.includes(node.id);
  const note = doc.editor?.notes?.[node.id];
  return (
    <aside className="inspector" aria-label={`Node ${node.id}`}>
      <h2>{node.id}</h2>
      <p className="doc">
        <strong>{t?.display_name ?? node.data.type}</strong> <code>{node.data.type}</code> {t?.version}
      </p>
      {note && <p className="note">{note}</p>}
      {t && <p className="doc">{t.description}</p>}
      <label className="check">
        <input type="checkbox" checked={requested} onChange={(e) => onToggleOutput(node.id, e.target.checked)} />
        requested output (a run computes it and what it needs)
      </label>
      {t?.params.map((p) => (
        <div key={p.name} className="inspector-param">
          <ParamField spec={p} nodeType={node.data.type} value={paramValue(p, node.data.params)}
            classes={view.classesFor(node.id)}
            onChange={(v, live) => view.setParam(node.id, p.name, v, live && LIVE_PARAMS[node.data.type] === p.name)} />
          <div className="doc small">{p.description}</div>
          {p.name in node.data.params && (
            <button className="link" onClick={() => view.setParam(node.id, p.name, undefined)}>
              reset to default
            </button>
          )}
        </div>
      ))}
      <p>
        <button onClick={() => onRemove(node.id)}>Remove node</button>
      </p>
    </aside>
  );
}
