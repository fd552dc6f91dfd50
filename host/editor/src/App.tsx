// The editor: toolbar, palette, canvas (React Flow), side panel and results. The canvas state (nodes, edges,
// requested outputs) is the graph; the file is made from it on save, run and preview (model.ts).
import {
  Background,
  Controls,
  MiniMap,
  Panel,
  ReactFlow,
  ReactFlowProvider,
  applyEdgeChanges,
  applyNodeChanges,
  useReactFlow,
  type Connection,
  type EdgeChange,
  type NodeChange,
} from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import * as api from "./api";
import { ConnectionHint } from "./components/ConnectionHint";
import { GraphNode } from "./components/GraphNode";
import { Inspector } from "./components/Inspector";
import { Legend } from "./components/Legend";
import { Lightbox, type Shown } from "./components/Lightbox";
import { DRAG_TYPE, Palette } from "./components/Palette";
import { QuickAdd } from "./components/QuickAdd";
import { Results } from "./components/Results";
import { Toolbar } from "./components/Toolbar";
import { ViewContext, type EditorView } from "./context";
import { History } from "./history";
import {
  canConnect,
  docToFlow,
  flowToDoc,
  makeEdge,
  normalise,
  previewOutputs,
  tidy,
  uniqueId,
  upstreamClasses,
  type FlowEdge,
  type FlowNode,
  withPresetProgress,
} from "./model";
import { Previewer, attachedRun, follow, type PreviewJob } from "./runs";
import type { Catalog, GraphDoc, NodeState, Phase, PictureSet, RunResult } from "./types";

const nodeTypes = { graph: GraphNode };
const EMPTY: GraphDoc = { version: 1, nodes: [], links: [], outputs: [] };
const DOC_KEY = "subspace.doc";

interface Snapshot {
  nodes: FlowNode[];
  edges: FlowEdge[];
  outputs: string[];
}

export interface Message {
  text: string;
  kind: "info" | "ok" | "error";
}

/** Timings the browser tests read: slider input to new picture on the node, per preview. */
declare global {
  interface Window {
    subspaceProbe: { previews: { ms: number; answerMs: number; nodes: Record<string, NodeState> }[] };
  }
}
window.subspaceProbe = { previews: [] };

function nextFrame(): Promise<void> {
  return new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r())));
}

function Editor() {
  const rf = useReactFlow<FlowNode, FlowEdge>();
  const [catalog, setCatalog] = useState<Catalog>({});
  const [graphList, setGraphList] = useState<api.GraphList | null>(null);
  const [nodes, setNodes] = useState<FlowNode[]>([]);
  const [edges, setEdges] = useState<FlowEdge[]>([]);
  const [outputs, setOutputs] = useState<string[]>([]);
  const [base, setBase] = useState<GraphDoc>(EMPTY);
  const [name, setName] = useState("untitled.json");
  const [dirty, setDirty] = useState(false);
  const [status, setStatus] = useState<Record<string, NodeState>>({});
  const [pictures, setPictures] = useState<Record<string, Record<string, PictureSet>>>({});
  const [classes, setClasses] = useState<Record<string, string[]>>({});
  const [problems, setProblems] = useState<Record<string, string[]>>({});
  const [previewing, setPreviewing] = useState<Set<string>>(new Set());
  const [run, setRun] = useState<{ id: number; phase: Phase; ahead: number } | null>(null);
  const [result, setResult] = useState<RunResult | null>(null);
  const [message, setMessage] = useState<Message>({ text: "loading…", kind: "info" });
  const [quickAdd, setQuickAdd] = useState<{ screen: { x: number; y: number }; flow: { x: number; y: number } } | null>(null);
  const [shown, setShown] = useState<Shown | null>(null);
  const history = useRef(new History<Snapshot>());
  const clipboard = useRef<Snapshot | null>(null);
  const lastEdit = useRef({ key: "", at: 0 });
  const stopFollowing = useRef<(() => void) | null>(null);
  const wrapper = useRef<HTMLDivElement>(null);

  // Callbacks read the latest state through this, so they stay stable across renders.
  const now = useRef({ nodes, edges, outputs, base, catalog, status, run, name });
  now.current = { nodes, edges, outputs, base, catalog, status, run, name };

  const doc = useCallback(() => {
    const c = now.current;
    return flowToDoc(c.base, c.nodes, c.edges, c.outputs);
  }, []);

  /** Records the state before a change for undo; edits of one parameter in a row count as one. */
  const remember = useCallback((key = "") => {
    const t = performance.now();
    const same = key !== "" && key === lastEdit.current.key && t - lastEdit.current.at < 1500;
    lastEdit.current = { key, at: t };
    if (!same) {
      const c = now.current;
      history.current.push({ nodes: c.nodes, edges: c.edges, outputs: c.outputs });
    }
    setDirty(true);
  }, []);

  const restore = useCallback((s: Snapshot | undefined) => {
    if (!s) return;
    setNodes(s.nodes);
    setEdges(s.edges);
    setOutputs(s.outputs);
    setDirty(true);
  }, []);
  const undo = useCallback(() => {
    const c = now.current;
    restore(history.current.undo({ nodes: c.nodes, edges: c.edges, outputs: c.outputs }));
  }, [restore]);
  const redo = useCallback(() => {
    const c = now.current;
    restore(history.current.redo({ nodes: c.nodes, edges: c.edges, outputs: c.outputs }));
  }, [restore]);

  const load = useCallback((raw: Partial<GraphDoc>, file: string, cat: Catalog, isDirty = false) => {
    const d = normalise(raw);
    const flow = docToFlow(d, cat);
    setBase(d);
    setNodes(flow.nodes);
    setEdges(flow.edges);
    setOutputs(d.outputs);
    setName(file);
    setDirty(isDirty);
    setStatus({});
    setPictures({});
    setProblems({});
    history.current.clear();
    setTimeout(() => rf.fitView({ padding: 0.1 }), 50);
  }, [rf]);

  // --- runs ---------------------------------------------------------------------------------------------
  const finish = useCallback((r: RunResult) => {
    setRun((x) => (x ? { ...x, phase: "finished" } : x));
    setResult(r);
    if (r.nodes) setStatus(r.nodes);
    setPictures((p) => ({ ...p, ...(r.pictures ?? {}) }));
    setClasses((c) => ({ ...c, ...(r.classes ?? {}) }));
    const failed = Object.values(r.nodes ?? {}).filter((s) => s.state === "failed").length;
    const secs = r.report ? ` in ${r.report.seconds.toFixed(2)} s` : "";
    if (r.stopped) setMessage({ text: `Stopped${secs}: what finished stays cached`, kind: "info" });
    else if (r.ok) setMessage({ text: `Done${secs}`, kind: "ok" });
    else setMessage({ text: r.error ?? `Finished${secs} with ${failed} failed node(s): see the nodes marked red`, kind: "error" });
  }, []);

  const attach = useCallback((id: number) => {
    stopFollowing.current?.();
    setRun({ id, phase: "queued", ahead: 0 });
    stopFollowing.current = follow(id, {
      phase: (phase, ahead) => {
        setRun({ id, phase, ahead });
        if (phase === "queued") setMessage({ text: `Queued behind ${ahead} run(s)`, kind: "info" });
        if (phase === "running") setMessage({ text: `Running (run ${id})…`, kind: "info" });
      },
      nodes: (n, replace) => setStatus((s) => (replace ? n : { ...s, ...n })),
      done: finish,
      lost: (why) => {
        setRun(null);
        setMessage({ text: why, kind: "error" });
      },
    });
  }, [finish]);

  const showProblems = useCallback((r: RunResult) => {
    const byNode: Record<string, string[]> = {};
    const general: string[] = [];
    for (const p of r.details ?? []) {
      const text = p.location ? `${p.location}: ${p.message}` : p.message;
      if (p.node && now.current.nodes.some((n) => n.id === p.node)) (byNode[p.node] ??= []).push(text);
      else general.push(p.node ? `${p.node}: ${text}` : text);
    }
    setProblems(byNode);
    const count = (r.details ?? r.errors ?? []).length;
    setMessage({
      text: `Not valid (${count} problem${count === 1 ? "" : "s"}, shown on the nodes)${general.length ? ": " + general.join("; ") : ""}`,
      kind: "error",
    });
  }, []);

  const runGraph = useCallback(async () => {
    const c = now.current;
    if (c.run && c.run.phase !== "finished") return;
    setProblems({});
    try {
      const r = await api.startRun(doc(), c.name);
      if (!r.ok || r.id === undefined) return showProblems(r);
      setStatus({});
      attach(r.id);
    } catch (e) {
      setMessage({ text: (e as Error).message, kind: "error" });
    }
  }, [attach, doc, showProblems]);

  const stop = useCallback(async () => {
    const r = now.current.run;
    if (!r) return;
    await api.cancel(r.id).catch(() => undefined);
    setMessage({ text: "Stopping: nodes stop at their next check", kind: "info" });
  }, []);

  const validate = useCallback(async () => {
    try {
      const r = await api.validate(doc(), now.current.name);
      if (r.ok) {
        setProblems({});
        setMessage({ text: `Valid: ${r.needed?.length ?? 0} node(s) needed for the requested outputs`, kind: "ok" });
      } else showProblems(r);
    } catch (e) {
      setMessage({ text: (e as Error).message, kind: "error" });
    }
  }, [doc, showProblems]);

  // --- live preview -------------------------------------------------------------------------------------
  const previewer = useMemo(
    () =>
      new Previewer(
        async (r: RunResult, job: PreviewJob) => {
          const answered = performance.now();
          if (!r.ok) {
            setPreviewing(new Set());
            if (r.details) showProblems(r);
            else setMessage({ text: r.error ?? "the preview failed: see the nodes", kind: "error" });
            if (r.nodes) setStatus((s) => ({ ...s, ...r.nodes }));
            return;
          }
          // Decode before drawing, so the time measured ends with a picture, not a blank.
          const urls = Object.values(r.pictures ?? {}).flatMap((ports) => Object.values(ports).flatMap((p) => p.urls));
          await Promise.all(urls.map((u) => Object.assign(new Image(), { src: u }).decode().catch(() => undefined)));
          setPictures((p) => ({ ...p, ...(r.pictures ?? {}) }));
          setStatus((s) => ({ ...s, ...(r.nodes ?? {}) }));
          setPreviewing(new Set());
          await nextFrame();
          const ms = performance.now() - job.t0;
          window.subspaceProbe.previews.push({ ms, answerMs: answered - job.t0, nodes: r.nodes ?? {} });
          document.body.dataset.previews = String(window.subspaceProbe.previews.length);
        },
        (e) => {
          setPreviewing(new Set());
          setMessage({ text: `preview: ${e.message}`, kind: "error" });
        },
      ),
    [showProblems],
  );

  const schedulePreview = useCallback((node: string, nextNodes: FlowNode[], t0: number) => {
    const c = now.current;
    if (c.run && c.run.phase !== "finished") {
      setMessage({ text: "The live preview waits until the run ends", kind: "info" });
      return;
    }
    const st = c.status[node]?.state;
    if (st !== "done" && st !== "cached") {
      setMessage({ text: "Run the graph once: then this slider previews live", kind: "info" });
      return;
    }
    const outs = previewOutputs(c.catalog, nextNodes, c.edges, node);
    if (outs.length === 0) return;
    const d = { ...flowToDoc(c.base, nextNodes, c.edges, c.outputs), outputs: outs };
    setPreviewing(new Set(outs.map((o) => o.slice(0, o.lastIndexOf(".")))));
    previewer.request({ doc: d, t0, node, graph: c.name });
  }, [previewer]);

  const setParam = useCallback((node: string, name: string, value: unknown, live = false) => {
    const t0 = performance.now();
    remember(`${node}.${name}`);
    const next = now.current.nodes.map((n) => {
      if (n.id !== node) return n;
      const params = { ...n.data.params };
      if (value === undefined) delete params[name];
      else params[name] = value;
      return { ...n, data: { ...n.data, params } };
    });
    now.current.nodes = next;
    setNodes(next);
    if (live) schedulePreview(node, next, t0);
  }, [remember, schedulePreview]);

  // --- editing ------------------------------------------------------------------------------------------
  const addNode = useCallback((type: string, at?: { x: number; y: number }) => {
    const c = now.current;
    const pos = at ?? (() => {
      const box = wrapper.current?.getBoundingClientRect();
      const centre = box ? { x: box.left + box.width / 2, y: box.top + box.height / 2 } : { x: 400, y: 300 };
      return rf.screenToFlowPosition(centre);
    })();
    const id = uniqueId(type.split(".").pop() ?? "node", new Set(c.nodes.map((n) => n.id)));
    remember();
    const node: FlowNode = { id, type: "graph", position: pos, data: { type, params: {} }, selected: true };
    setNodes([...c.nodes.map((n) => ({ ...n, selected: false })), node]);
    setMessage({ text: `Added ${id}`, kind: "info" });
  }, [remember, rf]);

  const onNodesChange = useCallback((changes: NodeChange<FlowNode>[]) => {
    setNodes((ns) => applyNodeChanges(changes, ns));
  }, []);
  const onEdgesChange = useCallback((changes: EdgeChange<FlowEdge>[]) => {
    setEdges((es) => applyEdgeChanges(changes, es));
  }, []);

  const isValidConnection = useCallback((c: Connection | FlowEdge) => {
    const n = now.current;
    return canConnect(n.catalog, n.nodes, n.edges, c).ok;
  }, []);

  const onConnect = useCallback((c: Connection) => {
    const n = now.current;
    const verdict = canConnect(n.catalog, n.nodes, n.edges, c);
    if (!verdict.ok) {
      setMessage({ text: `Not linked: ${verdict.reason ?? "incompatible"}`, kind: "error" });
      return;
    }
    remember();
    // An input takes one link: a new one replaces the old.
    const kept = n.edges.filter((e) => !(e.target === c.target && e.targetHandle === c.targetHandle));
    setEdges([...kept, makeEdge(n.catalog, n.nodes, c.source, c.sourceHandle ?? "", c.target, c.targetHandle ?? "")]);
    setMessage({ text: `Linked ${c.source}.${c.sourceHandle} → ${c.target}.${c.targetHandle}`, kind: "info" });
  }, [remember]);

  const copy = useCallback(() => {
    const c = now.current;
    const sel = c.nodes.filter((n) => n.selected);
    const ids = new Set(sel.map((n) => n.id));
    clipboard.current = { nodes: sel, edges: c.edges.filter((e) => ids.has(e.source) && ids.has(e.target)), outputs: [] };
    setMessage({ text: `Copied ${sel.length} node(s)`, kind: "info" });
  }, []);

  const paste = useCallback(() => {
    const clip = clipboard.current;
    if (!clip?.nodes.length) return;
    const c = now.current;
    const taken = new Set(c.nodes.map((n) => n.id));
    const rename: Record<string, string> = {};
    for (const n of clip.nodes) {
      rename[n.id] = uniqueId(n.id.replace(/_\d+$/, ""), taken);
      taken.add(rename[n.id]!);
    }
    remember();
    const pasted = clip.nodes.map((n) => ({
      ...n,
      id: rename[n.id]!,
      selected: true,
      position: { x: n.position.x + 40, y: n.position.y + 40 },
      data: { ...n.data, params: { ...n.data.params } },
    }));
    const all = [...c.nodes.map((n) => ({ ...n, selected: false })), ...pasted];
    const links = clip.edges.map((e) =>
      makeEdge(c.catalog, all, rename[e.source]!, e.sourceHandle ?? "", rename[e.target]!, e.targetHandle ?? ""),
    );
    setNodes(all);
    setEdges([...c.edges, ...links]);
    setMessage({ text: `Pasted ${pasted.length} node(s)`, kind: "info" });
  }, [remember]);

  const toggleOutput = useCallback((id: string, on: boolean) => {
    remember();
    setOutputs((o) => (on ? [...o.filter((x) => x !== id), id] : o.filter((x) => x !== id && !x.startsWith(`${id}.`))));
  }, [remember]);

  const removeNode = useCallback((id: string) => {
    void rf.deleteElements({ nodes: [{ id }] });
  }, [rf]);

  // --- files --------------------------------------------------------------------------------------------
  const refreshList = useCallback(async () => setGraphList(await api.graphs()), []);
  const keepChanges = useCallback(() => !dirty || window.confirm("Discard the unsaved changes to this graph?"), [dirty]);

  const open = useCallback(async (file: string) => {
    if (!keepChanges()) return;
    try {
      load(await api.openGraph(file), file, now.current.catalog);
      setResult(null);
      setMessage({ text: `Opened ${file}`, kind: "info" });
    } catch (e) {
      setMessage({ text: (e as Error).message, kind: "error" });
    }
  }, [keepChanges, load]);

  const save = useCallback(async (as?: string) => {
    const target = as ?? name;
    try {
      const r = await api.saveGraph(target, doc());
      setName(target);
      setDirty(false);
      await refreshList();
      setMessage({ text: `Saved ${r.saved}`, kind: "ok" });
    } catch (e) {
      setMessage({ text: (e as Error).message, kind: "error" });
    }
  }, [doc, name, refreshList]);

  // --- start-up: the catalog, the graph list, then this tab's graph (kept across reloads) and its run --------
  useEffect(() => {
    (async () => {
      const [cat, list] = await Promise.all([api.catalog(), api.graphs()]);
      setCatalog(cat);
      setGraphList(list);
      const kept = sessionStorage.getItem(DOC_KEY);
      if (kept) {
        const k = JSON.parse(kept) as { name: string; doc: GraphDoc; dirty: boolean };
        load(k.doc, k.name, cat, k.dirty);
      } else if (list.graphs.length) {
        const first = list.graphs.includes("demo.json") ? "demo.json" : list.graphs[0]!;
        load(await api.openGraph(first), first, cat);
      }
      const running = attachedRun();
      if (running !== null) attach(running);
      else setMessage({ text: `${Object.keys(cat).length} node types; graphs in ${list.folder}; device ${list.device}`, kind: "info" });
    })().catch((e: Error) => setMessage({ text: e.message, kind: "error" }));
  }, [attach, load]);

  // This tab's graph survives a reload (sessionStorage is per tab): kept shortly after each change, and at once
  // when the page goes; a warning guards unsaved changes.
  useEffect(() => {
    const keep = () => {
      if (Object.keys(catalog).length) sessionStorage.setItem(DOC_KEY, JSON.stringify({ name, dirty, doc: doc() }));
    };
    const t = setTimeout(keep, 200);
    window.addEventListener("pagehide", keep);
    return () => {
      clearTimeout(t);
      window.removeEventListener("pagehide", keep);
    };
  }, [nodes, edges, outputs, base, name, dirty, catalog, doc]);
  useEffect(() => {
    const warn = (e: BeforeUnloadEvent) => {
      if (dirty) e.preventDefault();
    };
    window.addEventListener("beforeunload", warn);
    return () => window.removeEventListener("beforeunload", warn);
  }, [dirty]);

  // Shortcuts; the editing ones stay out of text fields.
  useEffect(() => {
    const key = (e: KeyboardEvent) => {
      const mod = e.ctrlKey || e.metaKey;
      const typing = (e.target as HTMLElement).closest?.("input, textarea, select, [contenteditable]");
      if (mod && e.key === "Enter") {
        e.preventDefault();
        void runGraph();
      } else if (mod && e.key.toLowerCase() === "s") {
        e.preventDefault();
        void save();
      } else if (typing) {
        return;
      } else if (mod && e.key.toLowerCase() === "z") {
        e.preventDefault();
        if (e.shiftKey) redo();
        else undo();
      } else if (mod && e.key.toLowerCase() === "y") {
        e.preventDefault();
        redo();
      } else if (mod && e.key.toLowerCase() === "c") copy();
      else if (mod && e.key.toLowerCase() === "v") paste();
      else if (mod && e.key.toLowerCase() === "a") {
        e.preventDefault();
        setNodes((ns) => ns.map((n) => ({ ...n, selected: true })));
      } else if (e.key === "f" && !mod) void rf.fitView({ padding: 0.1, duration: 200 });
    };
    window.addEventListener("keydown", key);
    return () => window.removeEventListener("keydown", key);
  }, [copy, paste, redo, rf, runGraph, save, undo]);

  const view: EditorView = useMemo(() => ({
    catalog,
    // A preset node shows the progress of the nodes inside it.
    status: withPresetProgress(status),
    pictures,
    classes,
    problems,
    outputs,
    previewing,
    setParam,
    openPicture: (urls, index, title) => setShown({ urls, index, title }),
    classesFor: (node) => upstreamClasses(edges, node, classes),
  }), [catalog, status, pictures, classes, problems, outputs, previewing, setParam, edges]);

  const selected = nodes.filter((n) => n.selected);
  const running = run !== null && run.phase !== "finished";

  return (
    <ViewContext.Provider value={view}>
      <div className="app">
        <Toolbar name={name} dirty={dirty} graphs={graphList?.graphs ?? []} running={running} message={message}
          canUndo={history.current.canUndo} canRedo={history.current.canRedo}
          onOpen={open} onNew={() => keepChanges() && load(EMPTY, "untitled.json", catalog)}
          onSave={() => void save()} onSaveAs={(n) => void save(n)}
          onDownload={() => {
            const a = document.createElement("a");
            a.href = URL.createObjectURL(new Blob([JSON.stringify(doc(), null, 2) + "\n"], { type: "application/json" }));
            a.download = name;
            a.click();
            URL.revokeObjectURL(a.href);
          }}
          onUpload={(file, text) => {
            if (!keepChanges()) return;
            try {
              load(JSON.parse(text) as GraphDoc, file, catalog, true);
              setMessage({ text: `Loaded ${file} (not saved to the graphs folder yet)`, kind: "info" });
            } catch (e) {
              setMessage({ text: `${file}: ${(e as Error).message}`, kind: "error" });
            }
          }}
          onValidate={() => void validate()} onRun={() => void runGraph()} onStop={() => void stop()}
          onUndo={undo} onRedo={redo}
          onTidy={() => {
            remember();
            setNodes(tidy(now.current.nodes, now.current.edges));
            setTimeout(() => rf.fitView({ padding: 0.05, duration: 200 }), 50);
          }} />
        <Palette catalog={catalog} onAdd={(t) => addNode(t)} />
        <main className="canvas" ref={wrapper}
          onDragOver={(e) => {
            if (e.dataTransfer.types.includes(DRAG_TYPE)) {
              e.preventDefault();
              e.dataTransfer.dropEffect = "move";
            }
          }}
          onDrop={(e) => {
            const type = e.dataTransfer.getData(DRAG_TYPE);
            if (!type) return;
            e.preventDefault();
            addNode(type, rf.screenToFlowPosition({ x: e.clientX, y: e.clientY }));
          }}
          onDoubleClick={(e) => {
            if (!(e.target as Element).classList.contains("react-flow__pane")) return;
            const box = wrapper.current!.getBoundingClientRect();
            setQuickAdd({
              screen: { x: e.clientX - box.left, y: e.clientY - box.top },
              flow: rf.screenToFlowPosition({ x: e.clientX, y: e.clientY }),
            });
          }}>
          <ReactFlow<FlowNode, FlowEdge> nodes={nodes} edges={edges} nodeTypes={nodeTypes}
            onNodesChange={onNodesChange} onEdgesChange={onEdgesChange} onConnect={onConnect}
            isValidConnection={isValidConnection}
            onBeforeDelete={async () => {
              remember();
              return true;
            }}
            onNodeDragStart={() => remember()}
            deleteKeyCode={["Delete", "Backspace"]} zoomOnDoubleClick={false} minZoom={0.1} maxZoom={2.5}
            fitView proOptions={{ hideAttribution: false }}>
            <Background gap={20} />
            <Controls showInteractive={false} />
            <MiniMap pannable zoomable ariaLabel="Overview of the graph" />
            <Panel position="top-left"><ConnectionHint /></Panel>
            <Panel position="bottom-center"><Legend /></Panel>
          </ReactFlow>
          {quickAdd && (
            <QuickAdd catalog={catalog} at={quickAdd.screen} onClose={() => setQuickAdd(null)}
              onPick={(t) => {
                addNode(t, quickAdd.flow);
                setQuickAdd(null);
              }} />
          )}
        </main>
        <Inspector node={selected.length === 1 ? selected[0]! : null} doc={base} nodes={nodes}
          onToggleOutput={toggleOutput} onRemove={removeNode} />
        <Results result={result} />
        {shown && <Lightbox shown={shown} onChange={setShown} onClose={() => setShown(null)} />}
      </div>
    </ViewContext.Provider>
  );
}

export function App() {
  return (
    <ReactFlowProvider>
      <Editor />
    </ReactFlowProvider>
  );
}
