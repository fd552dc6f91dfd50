// The bar above everything: graph files (open, new, save, save as, download, load), validate, run and stop,
// undo and redo, and the status line (announced to screen readers).
import { useRef, useState } from "react";
import type { Message } from "../App";

interface Props {
  name: string;
  dirty: boolean;
  graphs: string[];
  running: boolean;
  message: Message;
  canUndo: boolean;
  canRedo: boolean;
  onOpen: (name: string) => void;
  onNew: () => void;
  onSave: () => void;
  onSaveAs: (name: string) => void;
  onDownload: () => void;
  onUpload: (file: string, text: string) => void;
  onValidate: () => void;
  onRun: () => void;
  onStop: () => void;
  onUndo: () => void;
  onRedo: () => void;
  onTidy: () => void;
}

const NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]*\.json$/;

export function Toolbar(p: Props) {
  const [pick, setPick] = useState("");
  const file = useRef<HTMLInputElement>(null);
  return (
    <header className="toolbar">
      <strong className="brand">Subspace</strong>
      <span className="group">
        <label htmlFor="graph-list" className="sr-only">Graphs</label>
        <select id="graph-list" value={pick} onChange={(e) => setPick(e.target.value)}>
          <option value="">Open a graph…</option>
          {p.graphs.map((g) => <option key={g} value={g}>{g}</option>)}
        </select>
        <button disabled={!pick} onClick={() => p.onOpen(pick)}>Open</button>
        <button onClick={p.onNew}>New</button>
      </span>
      <span className="group">
        <span className="file-name" title="the graph's file name in the graphs folder">
          {p.name}{p.dirty && <span aria-label="unsaved changes"> •</span>}
        </span>
        <button onClick={p.onSave} title="Save (Ctrl+S)">Save</button>
        <button onClick={() => {
          const n = window.prompt("Save as (letters, digits, . _ -, ending in .json)", p.name);
          if (n === null) return;
          if (NAME.test(n)) p.onSaveAs(n);
          else window.alert(`'${n}': use letters, digits, '.', '_' or '-', ending in .json`);
        }}>Save as…</button>
        <button onClick={p.onDownload} title="Download the graph as a file">Download</button>
        <button onClick={() => file.current?.click()} title="Load a graph file from this computer">Load file…</button>
        <input ref={file} type="file" accept=".json,application/json" hidden onChange={async (e) => {
          const f = e.target.files?.[0];
          if (f) p.onUpload(f.name, await f.text());
          e.target.value = "";
        }} />
      </span>
      <span className="group">
        <button onClick={p.onUndo} disabled={!p.canUndo} title="Undo (Ctrl+Z)">Undo</button>
        <button onClick={p.onRedo} disabled={!p.canRedo} title="Redo (Ctrl+Shift+Z)">Redo</button>
        <button onClick={p.onTidy} title="Lay the nodes out in columns along the links">Tidy</button>
      </span>
      <span className="group">
        <button onClick={p.onValidate}>Validate</button>
        <button className="primary" onClick={p.onRun} disabled={p.running} title="Run (Ctrl+Enter)">Run</button>
        <button onClick={p.onStop} disabled={!p.running}>Stop</button>
      </span>
      <output className={`message ${p.message.kind}`} aria-live="polite" title={p.message.text}>
        {p.message.text}
      </output>
    </header>
  );
}
