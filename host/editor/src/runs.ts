// Following a run (server-sent events, reattached after a reload through sessionStorage, which is per tab) and
// the live preview queue (one request in flight, the latest change waiting: a moving slider never piles up).
import * as api from "./api";
import type { GraphDoc, NodeState, Phase, RunResult, RunSnapshot } from "./types";

const RUN_KEY = "subspace.run";

export interface RunHandlers {
  phase: (phase: Phase, ahead: number) => void;
  nodes: (nodes: Record<string, NodeState>, replace: boolean) => void;
  done: (result: RunResult) => void;
  lost: (why: string) => void;
}

/** Follows run `id` until it ends; returns a function that stops following (the run goes on). */
export function follow(id: number, on: RunHandlers): () => void {
  sessionStorage.setItem(RUN_KEY, String(id));
  const es = api.runEvents(id);
  let finished = false;
  const end = (r: RunResult) => {
    finished = true;
    es.close();
    sessionStorage.removeItem(RUN_KEY);
    on.done(r);
  };
  es.addEventListener("state", (e) => {
    const s = JSON.parse((e as MessageEvent<string>).data) as RunSnapshot;
    on.nodes(s.nodes, true);
    on.phase(s.phase, s.ahead);
    if (s.result) end(s.result);
  });
  es.addEventListener("phase", (e) => on.phase(JSON.parse((e as MessageEvent<string>).data).phase, 0));
  es.addEventListener("node", (e) => {
    const { node, state } = JSON.parse((e as MessageEvent<string>).data) as { node: string; state: NodeState };
    on.nodes({ [node]: state }, false);
  });
  es.addEventListener("done", (e) => end(JSON.parse((e as MessageEvent<string>).data) as RunResult));
  let stopped = false;
  let again: (() => void) | null = null;
  es.onerror = () => {
    // The browser retries a dropped stream by itself; a refused one is closed. The key stays until the server
    // says the run is gone (this also fires while the page unloads, and the run must be found after a reload).
    if (finished || stopped || es.readyState !== EventSource.CLOSED) return;
    api.runState(id).then(
      () => {
        if (!stopped) again = follow(id, on);
      },
      (e: Error) => {
        sessionStorage.removeItem(RUN_KEY);
        on.lost(`lost run ${id}: ${e.message}`);
      },
    );
  };
  return () => {
    stopped = true;
    es.close();
    again?.();
  };
}

/** The run this tab was following before a reload, if any. */
export function attachedRun(): number | null {
  const v = sessionStorage.getItem(RUN_KEY);
  return v && /^\d+$/.test(v) ? Number(v) : null;
}

export interface PreviewJob {
  doc: GraphDoc;
  /** When the input that asked for it happened (performance.now()). */
  t0: number;
  node: string;
  /** The graph file's name in the served folder (its relative paths are read against it). */
  graph?: string;
}

export class Previewer {
  private pending: PreviewJob | null = null;
  private busy = false;

  constructor(
    private readonly onResult: (r: RunResult, job: PreviewJob) => Promise<void>,
    private readonly onError: (e: Error) => void,
  ) {}

  request(job: PreviewJob): void {
    this.pending = job;
    if (!this.busy) void this.pump();
  }

  private async pump(): Promise<void> {
    this.busy = true;
    while (this.pending) {
      const job = this.pending;
      this.pending = null;
      try {
        // Drawn even when a newer change waits: the picture keeps following a slider being dragged.
        await this.onResult(await api.preview(job.doc, job.graph), job);
      } catch (e) {
        this.onError(e as Error);
      }
    }
    this.busy = false;
  }
}
