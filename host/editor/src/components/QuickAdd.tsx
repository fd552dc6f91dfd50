// The search box a double click on the canvas opens: type, pick with the arrows, Enter adds the node there.
import { useMemo, useState } from "react";
import type { Catalog } from "../types";
import { matches } from "./Palette";

interface Props {
  catalog: Catalog;
  at: { x: number; y: number };
  onPick: (type: string) => void;
  onClose: () => void;
}

export function QuickAdd({ catalog, at, onPick, onClose }: Props) {
  const [query, setQuery] = useState("");
  const [index, setIndex] = useState(0);
  const found = useMemo(
    () => Object.values(catalog).filter((t) => matches(t, query)).sort((a, b) => a.display_name.localeCompare(b.display_name)).slice(0, 12),
    [catalog, query],
  );
  return (
    <div className="quick-add" style={{ left: at.x, top: at.y }} role="dialog" aria-label="Add a node">
      <input autoFocus aria-label="Node to add" placeholder="Add a node…" value={query}
        onChange={(e) => {
          setQuery(e.target.value);
          setIndex(0);
        }}
        onBlur={() => setTimeout(onClose, 150)}
        onKeyDown={(e) => {
          if (e.key === "Escape") onClose();
          if (e.key === "ArrowDown") setIndex((i) => Math.min(i + 1, found.length - 1));
          if (e.key === "ArrowUp") setIndex((i) => Math.max(i - 1, 0));
          if (e.key === "Enter" && found[index]) onPick(found[index].id);
        }} />
      <ul role="listbox">
        {found.map((t, i) => (
          <li key={t.id} role="option" aria-selected={i === index} className={i === index ? "active" : ""}
            onMouseDown={(e) => {
              e.preventDefault();
              onPick(t.id);
            }}>
            {t.display_name} <small>{t.category}</small>
          </li>
        ))}
      </ul>
    </div>
  );
}
