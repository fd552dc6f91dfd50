// The graph as the canvas holds it (React Flow nodes and edges) and as the file holds it (GraphDoc), and the
// rules both follow. Pure functions, unit-tested in model.test.ts.
import type { Edge, Node } from "@xyflow/react";
import type { Catalog, DocNode, GraphDoc, NodeState, ParamSpec } from "./types";

export interface NodeData extends Record<string, unknown> {
  type: string;
  params: Record<string, unknown>;
  version?: string;
}

export type FlowNode = Node<NodeData, "graph">;
export type FlowEdge = Edge;

/** Socket colours by port type; chosen apart in hue and all readable on white. */
const COLORS: Record<string, string> = {
  latents: "#7b3fc4",
  images: "#1f8a3b",
  labels: "#c26a00",
  "model.generator": "#1c64c8",
  "model.classifier": "#0f8a8a",
  gaussians: "#c2185b",
  mixture: "#d32f2f",
  directions: "#8d5524",
  curves: "#9a8400",
  text: "#5f6b7a",
  tensor: "#37474f",
  any: "#9e9e9e",
};

export function portColor(type: string): string {
  return COLORS[type] ?? "#455a64";
}

export const portTypes = Object.keys(COLORS);

/** Mirrors the host's rule (host/src/validate.rs `compatible`). */
export function compatible(out: string, input: string): boolean {
  return out === input || input === "any" || (input === "tensor" && ["latents", "images", "labels"].includes(out));
}

/** The parameter a live slider moves, per node type: the edit's strength. */
export const LIVE_PARAMS: Record<string, string> = {
  "subspace.attribute_edit": "ratio",
  "subspace.direction_edit": "distance",
};

/** Input ports whose upstream node's classes fill a `target` picker. */
const CLASS_INPUTS = ["mixture", "directions", "labels", "gaussians"];

export interface Verdict {
  ok: boolean;
  reason?: string;
}

/** Whether a link may be made, and why not: types, self-links and cycles. */
export function canConnect(
  catalog: Catalog,
  nodes: FlowNode[],
  edges: FlowEdge[],
  c: { source: string | null; sourceHandle?: string | null; target: string | null; targetHandle?: string | null },
): Verdict {
  if (!c.source || !c.target) return { ok: false };
  if (c.source === c.target) return { ok: false, reason: "a node cannot feed itself" };
  const from = nodes.find((n) => n.id === c.source);
  const to = nodes.find((n) => n.id === c.target);
  const out = from && catalog[from.data.type]?.outputs.find((p) => p.name === c.sourceHandle);
  const inp = to && catalog[to.data.type]?.inputs.find((p) => p.name === c.targetHandle);
  if (!out || !inp) return { ok: false, reason: "unknown port" };
  if (!compatible(out.type, inp.type)) {
    return {
      ok: false,
      reason: `${c.source}.${out.name} gives ${out.type}; ${c.target}.${inp.name} takes ${inp.type}`,
    };
  }
  if (downstream(edges, c.target).has(c.source)) {
    return { ok: false, reason: `${c.target} already feeds ${c.source}: the link would make a cycle` };
  }
  return { ok: true };
}

/** Every node fed (directly or not) by `id`, `id` included. */
export function downstream(edges: FlowEdge[], id: string): Set<string> {
  const seen = new Set([id]);
  const stack = [id];
  while (stack.length) {
    const n = stack.pop()!;
    for (const e of edges) {
      if (e.source === n && !seen.has(e.target)) {
        seen.add(e.target);
        stack.push(e.target);
      }
    }
  }
  return seen;
}

/** The `images` outputs below a changed node: what a live preview asks the server for. */
export function previewOutputs(catalog: Catalog, nodes: FlowNode[], edges: FlowEdge[], id: string): string[] {
  const below = downstream(edges, id);
  const out: string[] = [];
  for (const n of nodes) {
    if (n.id === id || !below.has(n.id)) continue;
    for (const p of catalog[n.data.type]?.outputs ?? []) if (p.type === "images") out.push(`${n.id}.${p.name}`);
  }
  return out;
}

/** The class names that feed a node's `target` parameter (from the last run's outputs upstream). */
export function upstreamClasses(edges: FlowEdge[], id: string, classes: Record<string, string[]>): string[] {
  for (const e of edges) {
    if (e.target === id && CLASS_INPUTS.includes(e.targetHandle ?? "") && classes[e.source]) return classes[e.source]!;
  }
  return [];
}

export function edgeId(source: string, sourceHandle: string, target: string, targetHandle: string): string {
  return `${source}.${sourceHandle}->${target}.${targetHandle}`;
}

function split(endpoint: string): [string, string] {
  const i = endpoint.lastIndexOf(".");
  return i < 0 ? [endpoint, ""] : [endpoint.slice(0, i), endpoint.slice(i + 1)];
}

export function makeEdge(catalog: Catalog, nodes: FlowNode[], s: string, sh: string, t: string, th: string): FlowEdge {
  const type = catalog[nodes.find((n) => n.id === s)?.data.type ?? ""]?.outputs.find((p) => p.name === sh)?.type;
  return {
    id: edgeId(s, sh, t, th),
    source: s,
    sourceHandle: sh,
    target: t,
    targetHandle: th,
    style: { stroke: portColor(type ?? "any"), strokeWidth: 2.5 },
  };
}

/** Columns by depth along the links, for nodes the file gives no position. */
function layout(doc: GraphDoc): Record<string, [number, number]> {
  const pos: Record<string, [number, number]> = { ...(doc.editor?.positions ?? {}) };
  const depth: Record<string, number> = {};
  const d = (id: string, seen: Set<string>): number => {
    if (depth[id] !== undefined) return depth[id]!;
    if (seen.has(id)) return 0;
    seen.add(id);
    const ups = doc.links.filter((l) => split(l.to)[0] === id).map((l) => split(l.from)[0]);
    return (depth[id] = ups.length ? 1 + Math.max(...ups.map((u) => d(u, seen))) : 0);
  };
  const rows: Record<number, number> = {};
  for (const n of doc.nodes) {
    if (pos[n.id]) continue;
    const c = d(n.id, new Set());
    rows[c] = (rows[c] ?? 0) + 1;
    pos[n.id] = [c * 300, (rows[c]! - 1) * 260];
  }
  return pos;
}

export function normalise(raw: Partial<GraphDoc>): GraphDoc {
  const nodes = (raw.nodes ?? []).map((n) => ({ ...n, params: n.params ?? {} }));
  return { ...raw, version: raw.version ?? 1, nodes, links: raw.links ?? [], outputs: raw.outputs ?? [] };
}

export function docToFlow(doc: GraphDoc, catalog: Catalog): { nodes: FlowNode[]; edges: FlowEdge[] } {
  const pos = layout(doc);
  const nodes: FlowNode[] = doc.nodes.map((n) => ({
    id: n.id,
    type: "graph",
    position: { x: pos[n.id]![0], y: pos[n.id]![1] },
    data: { type: n.type, params: { ...n.params }, ...(n.version ? { version: n.version } : {}) },
  }));
  const edges = doc.links.map((l) => {
    const [s, sh] = split(l.from);
    const [t, th] = split(l.to);
    return makeEdge(catalog, nodes, s, sh, t, th);
  });
  return { nodes, edges };
}

/** The file again: `base` keeps what the canvas does not edit (description, exposed params, ports, notes). */
export function flowToDoc(base: GraphDoc, nodes: FlowNode[], edges: FlowEdge[], outputs: string[]): GraphDoc {
  const positions: Record<string, [number, number]> = {};
  for (const n of nodes) positions[n.id] = [Math.round(n.position.x), Math.round(n.position.y)];
  const docNodes: DocNode[] = nodes.map((n) => ({
    id: n.id,
    type: n.data.type,
    ...(n.data.version ? { version: n.data.version } : {}),
    params: n.data.params,
  }));
  const links = edges.map((e) => ({ from: `${e.source}.${e.sourceHandle}`, to: `${e.target}.${e.targetHandle}` }));
  const ids = new Set(nodes.map((n) => n.id));
  const keep = outputs.filter((o) => ids.has(split(o)[0]) || ids.has(o));
  return { ...base, nodes: docNodes, links, outputs: keep, editor: { ...(base.editor ?? {}), positions } };
}

export function uniqueId(base: string, taken: Set<string>): string {
  if (!taken.has(base)) return base;
  for (let i = 2; ; i++) if (!taken.has(`${base}_${i}`)) return `${base}_${i}`;
}

export type Checked = { ok: true; value: unknown } | { ok: false; error: string };

/** A typed value for a parameter from what was typed, refused at once when out of range. */
export function checkParam(spec: ParamSpec, raw: string | boolean): Checked {
  if (spec.kind === "bool") return { ok: true, value: Boolean(raw) };
  const text = String(raw);
  if (spec.kind === "choice") {
    return spec.choices?.includes(text) ? { ok: true, value: text } : { ok: false, error: `one of ${spec.choices}` };
  }
  if (spec.kind === "text" || spec.kind === "path") return { ok: true, value: text };
  if (text.trim() === "") return { ok: false, error: "a number is needed" };
  const v = Number(text);
  if (!Number.isFinite(v)) return { ok: false, error: `'${text}' is not a number` };
  if (spec.kind === "int" && !Number.isInteger(v)) return { ok: false, error: "a whole number is needed" };
  if (spec.min !== undefined && v < spec.min) return { ok: false, error: `at least ${spec.min}` };
  if (spec.max !== undefined && v > spec.max) return { ok: false, error: `at most ${spec.max}` };
  return { ok: true, value: v };
}

/** Slider ranges for live strengths whose declared range is too wide to sweep (InterFaceGAN edits use |d| <= 3). */
const SOFT_RANGES: Record<string, { min: number; max: number; step: number }> = {
  "subspace.direction_edit.distance": { min: -10, max: 10, step: 0.05 },
};

/** A slider fits ranges a hand can sweep; huge integer ranges (counts, seeds) get a number box only. */
export function sliderRange(spec: ParamSpec, nodeType = ""): { min: number; max: number; step: number } | null {
  const soft = SOFT_RANGES[`${nodeType}.${spec.name}`];
  if (soft) return soft;
  if ((spec.kind !== "float" && spec.kind !== "int") || spec.min === undefined || spec.max === undefined) return null;
  const span = spec.max - spec.min;
  if (!(span > 0) || span > (spec.kind === "int" ? 256 : 100)) return null;
  const step = spec.kind === "int" ? 1 : span <= 10 ? 0.01 : 0.1;
  return { min: spec.min, max: spec.max, step };
}

export function paramValue(spec: ParamSpec, params: Record<string, unknown>): unknown {
  return Object.prototype.hasOwnProperty.call(params, spec.name) ? params[spec.name] : spec.default;
}

/** Columns by depth along the links, spaced by each node's drawn size: for graphs whose nodes grew pictures. */
export function tidy(nodes: FlowNode[], edges: FlowEdge[]): FlowNode[] {
  const depth: Record<string, number> = {};
  const d = (id: string, seen: Set<string>): number => {
    if (depth[id] !== undefined) return depth[id]!;
    if (seen.has(id)) return 0;
    seen.add(id);
    const ups = edges.filter((e) => e.target === id).map((e) => e.source);
    return (depth[id] = ups.length ? 1 + Math.max(...ups.map((u) => d(u, seen))) : 0);
  };
  const columns: FlowNode[][] = [];
  for (const n of [...nodes].sort((a, b) => a.position.y - b.position.y)) (columns[d(n.id, new Set())] ??= []).push(n);
  const placed: Record<string, { x: number; y: number }> = {};
  let x = 0;
  for (const column of columns) {
    if (!column) continue;
    let y = 0;
    for (const n of column) {
      placed[n.id] = { x, y };
      y += (n.measured?.height ?? 200) + 40;
    }
    x += Math.max(...column.map((n) => n.measured?.width ?? 220)) + 80;
  }
  return nodes.map((n) => ({ ...n, position: placed[n.id] ?? n.position }));
}

const FINISHED: NodeState["state"][] = ["done", "cached", "failed", "skipped", "stopped"];

/**
 * `status` with a state for every preset node drawn from the nodes inside it, which the server names
 * `outer/inner` (`outer/a/b` when presets nest): failed if one failed, started while any has not finished (done/total:
 * inner nodes finished of those reported so far), else cached when all were cached, stopped or skipped when one was,
 * else done with their summed time. A state the server gave the node itself is kept.
 */
export function withPresetProgress(status: Record<string, NodeState>): Record<string, NodeState> {
  const inner: Record<string, NodeState[]> = {};
  for (const [id, s] of Object.entries(status)) {
    const i = id.indexOf("/");
    if (i > 0) (inner[id.slice(0, i)] ??= []).push(s);
  }
  const outers = Object.keys(inner).filter((o) => !status[o]);
  if (outers.length === 0) return status;
  const out = { ...status };
  for (const o of outers) {
    const states = inner[o]!;
    const has = (k: NodeState["state"]) => states.some((s) => s.state === k);
    const finished = states.filter((s) => FINISHED.includes(s.state)).length;
    const failed = states.find((s) => s.state === "failed");
    if (failed) out[o] = { state: "failed", error: failed.error };
    else if (finished < states.length) {
      out[o] = has("started") || finished > 0
        ? { state: "started", done: finished, total: states.length, message: `${finished}/${states.length} inside` }
        : { state: "queued" };
    } else if (states.every((s) => s.state === "cached")) out[o] = { state: "cached" };
    else if (has("stopped")) out[o] = { state: "stopped" };
    else if (has("skipped")) out[o] = { state: "skipped" };
    else out[o] = { state: "done", seconds: states.reduce((t, s) => t + (s.seconds ?? 0), 0) };
  }
  return out;
}
