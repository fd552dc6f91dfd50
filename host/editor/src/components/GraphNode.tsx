// A node on the canvas: title and status badge, sockets coloured by port type, the parameters worth having at
// hand (the ones the graph sets, and an edit's live strength), progress, the error that stopped it, and a
// strip of pictures for every `images` output of the last run.
import { Handle, Position, type NodeProps } from "@xyflow/react";
import { memo } from "react";
import { useView } from "../context";
import { LIVE_PARAMS, paramValue, portColor, type FlowNode } from "../model";
import type { NodeState, PictureSet } from "../types";
import { ParamField } from "./ParamField";

const STATE_LABEL: Record<NodeState["state"], string> = {
  queued: "queued",
  started: "running",
  cached: "cached",
  done: "ran",
  failed: "failed",
  skipped: "skipped",
  stopped: "stopped",
};

function Badge({ state }: { state?: NodeState }) {
  if (!state) return null;
  const s = state.seconds;
  const time = state.state !== "done" || s === undefined ? "" : s < 0.1 ? ` ${(s * 1000).toFixed(1)} ms` : ` ${s.toFixed(2)} s`;
  return (
    <span className={`badge state-${state.state}`} data-state={state.state}>
      {STATE_LABEL[state.state]}
      {time}
    </span>
  );
}

function Strip({ node, port, set }: { node: string; port: string; set: PictureSet }) {
  const view = useView();
  const title = `${node}.${port}`;
  return (
    <div className="strip" data-pictures={title}>
      {set.urls.map((u, i) => (
        <button key={i} className="thumb nodrag" title={`${title} #${i + 1}: open large`}
          onClick={() => view.openPicture(set.urls, i, title)}>
          <img src={u} alt={`${title} picture ${i + 1}`} width={48} height={48} />
        </button>
      ))}
      {set.total > set.urls.length && <span className="more">+{set.total - set.urls.length}</span>}
    </div>
  );
}

function GraphNodeView({ id, data, selected }: NodeProps<FlowNode>) {
  const view = useView();
  const t = view.catalog[data.type];
  const state = view.status[id];
  const problems = view.problems[id] ?? [];
  const pictures = view.pictures[id] ?? {};
  const live = LIVE_PARAMS[data.type];
  const requested = view.outputs.some((o) => o === id || o.startsWith(`${id}.`));
  const shown = t?.params.filter((p) => p.name === live || p.name in data.params) ?? [];
  const failed = state?.state === "failed" || problems.length > 0;
  const progress = state?.state === "started" && state.total ? (state.done ?? 0) / state.total : null;
  return (
    <div className={`gnode ${selected ? "selected" : ""} ${failed ? "has-error" : ""} ${state ? `is-${state.state}` : ""}`}
      data-node={id}>
      <header>
        <span className="title">{t?.display_name ?? data.type}</span>
        <Badge state={state} />
        {view.previewing.has(id) && <span className="badge state-started">preview</span>}
        <div className="subtitle">
          {id}
          {requested && <span className="out-mark" title="a requested output of the graph"> ● output</span>}
        </div>
      </header>
      {!t && <div className="node-error">{data.type} is not loaded: no plugin provides it</div>}
      <div className="ports">
        <div className="inputs">
          {t?.inputs.map((p) => (
            <div key={p.name} className="port in" title={`${p.name}: ${p.type}${p.optional ? " (optional)" : ""} — ${p.description}`}>
              <Handle type="target" position={Position.Left} id={p.name} className="socket"
                style={{ background: portColor(p.type) }} aria-label={`input ${p.name} (${p.type})`} />
              <span>{p.name}{p.optional ? "?" : ""}</span>
            </div>
          ))}
        </div>
        <div className="outputs">
          {t?.outputs.map((p) => (
            <div key={p.name} className="port out" title={`${p.name}: ${p.type} — ${p.description}`}>
              <span>{p.name}</span>
              <Handle type="source" position={Position.Right} id={p.name} className="socket"
                style={{ background: portColor(p.type) }} aria-label={`output ${p.name} (${p.type})`} />
            </div>
          ))}
        </div>
      </div>
      {shown.length > 0 && (
        <div className="node-params">
          {shown.map((p) => (
            <NodeParam key={p.name} node={id} nodeType={data.type} name={p.name} live={p.name === live}
              value={paramValue(p, data.params)} />
          ))}
        </div>
      )}
      {progress !== null && (
        <div className="progress" role="progressbar" aria-valuemin={0} aria-valuemax={100}
          aria-valuenow={Math.round(progress * 100)} title={state?.message}>
          <div style={{ width: `${progress * 100}%` }} />
        </div>
      )}
      {state?.message && state.state === "started" && <div className="node-message">{state.message}</div>}
      {state?.state === "failed" && state.error && <div className="node-error" role="alert">{state.error}</div>}
      {problems.map((m, i) => (
        <div key={i} className="node-error" role="alert">{m}</div>
      ))}
      {Object.entries(pictures).map(([port, set]) => (
        <Strip key={port} node={id} port={port} set={set} />
      ))}
    </div>
  );
}


function NodeParam({ node, nodeType, name, value, live }: { node: string; nodeType: string; name: string; value: unknown; live: boolean }) {
  const view = useView();
  const spec = view.catalog[nodeType]?.params.find((p) => p.name === name);
  if (!spec) return null;
  return (
    <div className={live ? "live-param" : undefined}>
      <ParamField spec={spec} nodeType={nodeType} value={value} compact classes={view.classesFor(node)}
        onChange={(v, isLive) => view.setParam(node, name, v, isLive && live)} />
    </div>
  );
}

export const GraphNode = memo(GraphNodeView);
