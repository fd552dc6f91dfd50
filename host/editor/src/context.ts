// What the nodes on the canvas read besides their own data: the catalog, the last run's state and pictures,
// problems found by validation, and the editor's actions. One context, so a node re-renders only through it.
import { createContext, useContext } from "react";
import type { Catalog, NodeState, PictureSet } from "./types";

export interface EditorView {
  catalog: Catalog;
  status: Record<string, NodeState>;
  pictures: Record<string, Record<string, PictureSet>>;
  classes: Record<string, string[]>;
  problems: Record<string, string[]>;
  outputs: string[];
  /** Node ids whose live preview is on its way. */
  previewing: Set<string>;
  /** Sets a parameter (`undefined`: back to the default); `live`: a slider moving, preview what it changes. */
  setParam: (node: string, name: string, value: unknown, live?: boolean) => void;
  openPicture: (urls: string[], index: number, title: string) => void;
  classesFor: (node: string) => string[];
}

export const ViewContext = createContext<EditorView | null>(null);

export function useView(): EditorView {
  const v = useContext(ViewContext);
  if (!v) throw new Error("ViewContext missing");
  return v;
}
