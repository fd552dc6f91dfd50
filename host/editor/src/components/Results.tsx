// Below the canvas: the last run's summary, its text outputs (reports, tables) and the files it wrote.
import { fileUrl } from "../api";
import type { RunResult } from "../types";

export function Results({ result }: { result: RunResult | null }) {
  if (!result) return <section className="results" aria-label="Run results"><p className="hint">No run yet.</p></section>;
  const outs = Object.entries(result.report?.outputs ?? {}).flatMap(([node, ports]) =>
    Object.entries(ports).map(([port, v]) => [`${node}.${port}`, typeof v === "string" ? v : JSON.stringify(v, null, 1)] as const),
  );
  return (
    <section className="results" aria-label="Run results">
      <h2>
        {result.run ?? "run"}: {result.stopped ? "stopped" : result.ok ? "finished" : "finished with problems"}
        {result.report && `, ${result.report.seconds.toFixed(2)} s`}
      </h2>
      {result.error && <p className="node-error">{result.error}</p>}
      {result.report?.missing.length ? <p>Not produced: {result.report.missing.join(", ")}</p> : null}
      {outs.map(([name, text]) => (
        <details key={name}>
          <summary>{name}</summary>
          <pre>{text.length > 20000 ? text.slice(0, 20000) + "…" : text}</pre>
        </details>
      ))}
      {result.files && result.files.length > 0 && (
        <details>
          <summary>{result.files.length} files written</summary>
          <ul className="files">
            {result.files.map((f) => (
              <li key={f}>
                <a href={fileUrl(f)} target="_blank" rel="noreferrer">{f}</a>
              </li>
            ))}
          </ul>
        </details>
      )}
    </section>
  );
}
