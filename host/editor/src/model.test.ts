import { describe, expect, it } from "vitest";
import { History } from "./history";
import { canConnect, checkParam, docToFlow, flowToDoc, previewOutputs, sliderRange, withPresetProgress } from "./model";
import type { Catalog, NodeState, NodeType, ParamSpec } from "./types";

const node = (id: string, inputs: [string, string][], outputs: [string, string][]): NodeType => ({
  id,
  version: "1.0.0",
  display_name: id,
  category: "test",
  description: "",
  volatile: false,
  inputs: inputs.map(([name, type]) => ({ name, type, description: "", optional: false })),
  outputs: outputs.map(([name, type]) => ({ name, type, description: "", optional: false })),
  params: [],
});

const catalog: Catalog = {
  gen: node("gen", [["codes", "latents"]], [["codes", "latents"], ["images", "images"]]),
  edit: node("edit", [["codes", "latents"], ["mixture", "mixture"]], [["codes", "latents"]]),
  any: node("any", [["x", "any"]], []),
};

const doc = {
  version: 1,
  description: "kept",
  ports: { outputs: { pictures: "render.images" } },
  nodes: [
    { id: "pictures", type: "gen", params: { count: 4 } },
    { id: "edit", type: "edit", params: {} },
    { id: "render", type: "gen", params: {} },
  ],
  links: [
    { from: "pictures.codes", to: "edit.codes" },
    { from: "edit.codes", to: "render.codes" },
  ],
  outputs: ["render", "gone"],
  editor: { positions: { pictures: [0, 0] as [number, number] }, notes: { edit: "n" } },
};

describe("the graph model", () => {
  it("round-trips a file, keeping what the canvas does not edit", () => {
    const { nodes, edges } = docToFlow(doc, catalog);
    expect(nodes.map((n) => n.id)).toEqual(["pictures", "edit", "render"]);
    const back = flowToDoc(doc, nodes, edges, doc.outputs);
    expect(back.links).toEqual(doc.links);
    expect(back.description).toBe("kept");
    expect(back.ports).toEqual(doc.ports);
    expect(back.editor?.notes).toEqual({ edit: "n" });
    expect(back.outputs).toEqual(["render"]);
    expect(back.editor?.positions?.render).toBeDefined();
  });

  it("refuses links whose types differ, self-links and cycles, with the reason", () => {
    const { nodes, edges } = docToFlow(doc, catalog);
    const bad = canConnect(catalog, nodes, edges, { source: "render", sourceHandle: "images", target: "edit", targetHandle: "codes" });
    expect(bad).toEqual({ ok: false, reason: "render.images gives images; edit.codes takes latents" });
    const cycle = canConnect(catalog, nodes, edges, { source: "render", sourceHandle: "codes", target: "edit", targetHandle: "codes" });
    expect(cycle.ok).toBe(false);
    expect(cycle.reason).toContain("cycle");
    const any = { source: "render", sourceHandle: "images", target: "x", targetHandle: "x" };
    const withAny = [...nodes, { id: "x", type: "graph" as const, position: { x: 0, y: 0 }, data: { type: "any", params: {} } }];
    expect(canConnect(catalog, withAny, edges, any).ok).toBe(true);
  });

  it("previews only the pictures below the moved node", () => {
    const { nodes, edges } = docToFlow(doc, catalog);
    expect(previewOutputs(catalog, nodes, edges, "edit")).toEqual(["render.images"]);
  });

  it("refuses out-of-range values at once", () => {
    const ratio: ParamSpec = { name: "ratio", kind: "float", default: 1, description: "", min: 0, max: 4 };
    expect(checkParam(ratio, "0.5")).toEqual({ ok: true, value: 0.5 });
    expect(checkParam(ratio, "5")).toEqual({ ok: false, error: "at most 4" });
    expect(checkParam({ ...ratio, kind: "int" }, "1.5").ok).toBe(false);
    expect(sliderRange(ratio)).toEqual({ min: 0, max: 4, step: 0.01 });
    expect(sliderRange({ ...ratio, kind: "int", max: 10_000_000 })).toBeNull();
  });

  it("undoes and redoes", () => {
    const h = new History<number>();
    h.push(1);
    h.push(2);
    expect(h.undo(3)).toBe(2);
    expect(h.undo(2)).toBe(1);
    expect(h.redo(1)).toBe(2);
    expect(h.canRedo).toBe(true);
  });
});

describe("a preset node's progress", () => {
  const s = (state: NodeState["state"], seconds?: number): NodeState => ({ state, seconds });
  it("sums the nodes inside it, named outer/inner, onto the outer node", () => {
    const running = withPresetProgress({ g: s("done"), "fit/sample": s("done"), "fit/label": s("started"), "fit/x/y": s("queued") });
    expect(running.fit).toEqual({ state: "started", done: 1, total: 3, message: "1/3 inside" });
    expect(running.g).toEqual(s("done"));
    expect(withPresetProgress({ "fit/a": s("queued") }).fit?.state).toBe("queued");
    expect(withPresetProgress({ "fit/a": s("done", 1.5), "fit/b": s("cached"), "fit/c": s("done", 0.5) }).fit)
      .toEqual({ state: "done", seconds: 2 });
    expect(withPresetProgress({ "fit/a": s("cached"), "fit/b": s("cached") }).fit?.state).toBe("cached");
    expect(withPresetProgress({ "fit/a": { state: "failed", error: "boom" }, "fit/b": s("started") }).fit)
      .toEqual({ state: "failed", error: "boom" });
    expect(withPresetProgress({ "fit/a": s("done"), "fit/b": s("stopped") }).fit?.state).toBe("stopped");
  });
  it("keeps a state the server gave the node itself and leaves plain graphs alone", () => {
    expect(withPresetProgress({ fit: s("cached"), "fit/a": s("started") }).fit?.state).toBe("cached");
    const plain = { a: s("done") };
    expect(withPresetProgress(plain)).toBe(plain);
  });
});
