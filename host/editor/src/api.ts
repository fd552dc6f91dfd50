// Every call to the server. The server hands its session token to this page only (a meta tag); each
// state-changing call carries it with a JSON body, and reading a run's state carries it in the query
// (docs/SECURITY.md).
import type { Catalog, GraphDoc, NodeType, RunResult, RunSnapshot } from "./types";

export const token = document.querySelector<HTMLMetaElement>('meta[name="subspace-token"]')?.content ?? "";

async function call<T>(method: string, url: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> =
    method === "GET" ? {} : { "Content-Type": "application/json", "X-Subspace-Token": token };
  const r = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const j = (await r.json().catch(() => ({ error: `not JSON (${r.status})` }))) as T & { error?: string };
  if (!r.ok) throw new Error(j.error ?? r.statusText);
  return j;
}

export async function catalog(): Promise<Catalog> {
  const r = await call<{ nodes: NodeType[] }>("GET", "/api/nodes");
  return Object.fromEntries(r.nodes.map((t) => [t.id, t]));
}

export interface GraphList {
  folder: string;
  graphs: string[];
  device: string;
}

export const graphs = () => call<GraphList>("GET", "/api/graphs");
export const openGraph = (name: string) => call<GraphDoc>("GET", `/api/graph/${encodeURIComponent(name)}`);
export const saveGraph = (name: string, doc: GraphDoc) =>
  call<{ saved: string }>("PUT", `/api/graph/${encodeURIComponent(name)}`, doc);
/** `url` naming the graph file `name` in the served folder: relative paths in the graph are read against it. */
const ofGraph = (url: string, name?: string) => (name ? `${url}?graph=${encodeURIComponent(name)}` : url);
export const validate = (doc: GraphDoc, name?: string) =>
  call<RunResult & { needed?: string[] }>("POST", ofGraph("/api/validate", name), doc);
/** Queues a run; answers at once with its id (or the validation errors). */
export const startRun = (doc: GraphDoc, name?: string) =>
  call<RunResult & { ahead?: number }>("POST", ofGraph("/api/runs", name), doc);
/** Runs only the requested outputs (the live preview) and answers when done. */
export const preview = (doc: GraphDoc, name?: string) => call<RunResult>("POST", ofGraph("/api/preview", name), doc);
export const cancel = (run: number) => call<{ cancelled: boolean }>("POST", "/api/cancel", { run });
export const runState = (run: number) => call<RunSnapshot>("GET", `/api/runs/${run}?token=${token}`);

export function runEvents(run: number): EventSource {
  return new EventSource(`/api/runs/${run}/events?token=${encodeURIComponent(token)}`);
}

export function fileUrl(path: string): string {
  return "/files/" + path.split("/").map(encodeURIComponent).join("/");
}
