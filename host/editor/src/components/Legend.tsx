// What the colours mean: node states and socket types.
import { portColor, portTypes } from "../model";

const STATES = [
  ["started", "running"],
  ["done", "ran (seconds)"],
  ["cached", "cached: not recomputed"],
  ["failed", "failed: the error is on the node"],
  ["skipped", "skipped: an input failed"],
  ["stopped", "stopped by you"],
] as const;

export function Legend() {
  return (
    <details className="legend">
      <summary>Legend</summary>
      <ul>
        {STATES.map(([s, text]) => (
          <li key={s}>
            <span className={`badge state-${s}`}>{s === "done" ? "ran" : s === "started" ? "running" : s}</span> {text}
          </li>
        ))}
      </ul>
      <ul className="types">
        {portTypes.map((t) => (
          <li key={t}>
            <span className="swatch" style={{ background: portColor(t) }} /> {t}
          </li>
        ))}
      </ul>
    </details>
  );
}
