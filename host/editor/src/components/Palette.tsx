// Every node type the loaded plugins offer, grouped by category, with a search box. Drag an entry onto the
// canvas, or press Enter on it to add it in the middle of the view.
import { useMemo, useState } from "react";
import type { Catalog, NodeType } from "../types";

export const DRAG_TYPE = "application/x-subspace-node";

export function matches(t: NodeType, q: string): boolean {
  const s = q.trim().toLowerCase();
  return !s || [t.display_name, t.id, t.category, t.description].some((x) => x.toLowerCase().includes(s));
}

export function Palette({ catalog, onAdd }: { catalog: Catalog; onAdd: (type: string) => void }) {
  const [query, setQuery] = useState("");
  const groups = useMemo(() => {
    const g: Record<string, NodeType[]> = {};
    for (const t of Object.values(catalog)) if (matches(t, query)) (g[t.category] ??= []).push(t);
    for (const list of Object.values(g)) list.sort((a, b) => a.display_name.localeCompare(b.display_name));
    return Object.entries(g).sort(([a], [b]) => a.localeCompare(b));
  }, [catalog, query]);
  return (
    <nav className="palette" aria-label="Node palette">
      <input type="search" placeholder="Search nodes" aria-label="Search nodes" value={query}
        onChange={(e) => setQuery(e.target.value)} />
      {groups.map(([category, list]) => (
        <section key={category}>
          <h2>{category}</h2>
          <ul>
            {list.map((t) => (
              <li key={t.id} draggable tabIndex={0} className="palette-item" data-type={t.id}
                title={`${t.id} ${t.version}: ${t.description}`}
                onDragStart={(e) => {
                  e.dataTransfer.setData(DRAG_TYPE, t.id);
                  e.dataTransfer.effectAllowed = "move";
                }}
                onKeyDown={(e) => e.key === "Enter" && onAdd(t.id)}
                onDoubleClick={() => onAdd(t.id)}>
                {t.display_name}
              </li>
            ))}
          </ul>
        </section>
      ))}
      {groups.length === 0 && <p className="hint">No node matches “{query}”.</p>}
    </nav>
  );
}
