// The server's JSON shapes (docs/EDITOR.md, docs/GRAPH_FORMAT.md).

export interface PortSpec {
  name: string;
  type: string;
  description: string;
  optional: boolean;
}

export type ParamKind = "float" | "int" | "bool" | "text" | "choice" | "path";

export interface ParamSpec {
  name: string;
  kind: ParamKind;
  default: unknown;
  description: string;
  min?: number;
  max?: number;
  choices?: string[];
}

export interface NodeType {
  id: string;
  version: string;
  display_name: string;
  category: string;
  description: string;
  volatile: boolean;
  inputs: PortSpec[];
  outputs: PortSpec[];
  params: ParamSpec[];
}

export type Catalog = Record<string, NodeType>;

export interface DocNode {
  id: string;
  type: string;
  version?: string;
  params: Record<string, unknown>;
}

export interface ExposedParam {
  name: string;
  target: string | string[];
  description?: string;
  min?: number;
  max?: number;
  choices?: string[];
}

export interface EditorState {
  positions?: Record<string, [number, number]>;
  notes?: Record<string, string>;
  [key: string]: unknown;
}

/** A graph file; fields this page does not know (ports, ...) are kept as they came. */
export interface GraphDoc {
  version: number;
  description?: string;
  nodes: DocNode[];
  links: { from: string; to: string }[];
  outputs: string[];
  params?: ExposedParam[];
  editor?: EditorState;
  [key: string]: unknown;
}

export type Phase = "queued" | "running" | "finished";

export interface NodeState {
  state: "queued" | "started" | "cached" | "done" | "failed" | "skipped" | "stopped";
  done?: number;
  total?: number;
  message?: string;
  seconds?: number;
  error?: string;
}

export interface PictureSet {
  total: number;
  urls: string[];
}

export interface Problem {
  node: string | null;
  location: string | null;
  message: string;
}

export interface RunResult {
  ok: boolean;
  id?: number;
  run?: string | null;
  stopped?: boolean;
  error?: string;
  errors?: string[];
  details?: Problem[];
  nodes?: Record<string, NodeState>;
  files?: string[];
  pictures?: Record<string, Record<string, PictureSet>>;
  classes?: Record<string, string[]>;
  report?: {
    seconds: number;
    outputs: Record<string, Record<string, unknown>>;
    missing: string[];
    cache: { entries: number; bytes: number; budget: number; evicted: number };
  } | null;
}

export interface RunSnapshot {
  id: number;
  phase: Phase;
  ahead: number;
  nodes: Record<string, NodeState>;
  result: RunResult | null;
}
