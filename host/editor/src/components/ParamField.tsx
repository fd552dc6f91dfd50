// One parameter's widget, from its schema: a slider with a number box for sweepable ranges, a number box
// otherwise, a list for choices, a class picker for edit targets, a check box for flags. A value out of range
// is refused as it is typed (shown, never applied).
import { useEffect, useId, useState } from "react";
import { checkParam, sliderRange } from "../model";
import type { ParamSpec } from "../types";

interface Props {
  spec: ParamSpec;
  nodeType: string;
  value: unknown;
  /** Class names for a `target` parameter (from the upstream fit or labels), empty when unknown. */
  classes: string[];
  onChange: (value: unknown, live: boolean) => void;
  compact?: boolean;
}

function show(v: unknown): string {
  if (v === null || v === undefined) return "";
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

export function ParamField({ spec, nodeType, value, classes, onChange, compact }: Props) {
  const id = useId();
  const [text, setText] = useState(show(value));
  const [error, setError] = useState<string | null>(null);
  // Follow changes from elsewhere (undo, the other copy of this field) unless the user is mid-typing an error.
  useEffect(() => {
    // "0." stays as typed while it means the value already set.
    setText((prev) => (prev.trim() !== "" && Number(prev) === value ? prev : show(value)));
    setError(null);
  }, [value]);

  const isDefault = JSON.stringify(value) === JSON.stringify(spec.default);
  const label = (
    <label htmlFor={id} className="param-label" title={spec.description}>
      {spec.name}
      {isDefault && <span className="default-mark"> (default)</span>}
    </label>
  );
  const commit = (raw: string | boolean, live = false) => {
    const c = checkParam(spec, raw);
    if (c.ok) {
      setError(null);
      onChange(c.value, live);
    } else {
      setError(c.error);
    }
  };
  const errorBox = error && (
    <div className="field-error" role="alert" id={`${id}-err`}>
      {spec.name}: {error}
    </div>
  );
  const common = {
    id,
    className: "nodrag nowheel",
    "aria-invalid": error ? true : undefined,
    "aria-describedby": error ? `${id}-err` : undefined,
  };

  if (spec.kind === "bool") {
    return (
      <div className={`param ${compact ? "compact" : ""}`}>
        <label className="param-label check" title={spec.description}>
          <input type="checkbox" className="nodrag" checked={Boolean(value)} onChange={(e) => commit(e.target.checked)} />
          {spec.name}
        </label>
      </div>
    );
  }
  if (spec.kind === "choice") {
    return (
      <div className={`param ${compact ? "compact" : ""}`}>
        {label}
        <select {...common} value={show(value)} onChange={(e) => commit(e.target.value)}>
          {spec.choices?.map((c) => (
            <option key={c} value={c}>
              {c}
            </option>
          ))}
        </select>
      </div>
    );
  }
  if (spec.name === "target" && classes.length > 0) {
    const current = show(value);
    const options = ["all", ...classes];
    const custom = !options.includes(current);
    return (
      <div className={`param ${compact ? "compact" : ""}`}>
        {label}
        <select {...common} data-param="target" value={custom ? "__custom" : current} onChange={(e) => {
          if (e.target.value !== "__custom") commit(e.target.value);
        }}>
          {options.map((c) => (
            <option key={c} value={c}>
              {c}
            </option>
          ))}
          <option value="__custom">{custom ? current : "several (type below)"}</option>
        </select>
        {custom && (
          <input className="nodrag" aria-label={`${spec.name} as text`} value={text}
            onChange={(e) => setText(e.target.value)} onBlur={() => commit(text)}
            onKeyDown={(e) => e.key === "Enter" && commit(text)} />
        )}
      </div>
    );
  }
  const range = sliderRange(spec, nodeType);
  const numeric = spec.kind === "float" || spec.kind === "int";
  return (
    <div className={`param ${compact ? "compact" : ""}`}>
      {label}
      <div className="param-row">
        {range && (
          <input type="range" className="nodrag nowheel" aria-label={`${spec.name} slider`} data-param={spec.name}
            min={range.min} max={range.max} step={range.step} value={Number(value)}
            onChange={(e) => commit(e.target.value, true)} />
        )}
        <input {...common} type="text" inputMode={numeric ? "decimal" : undefined} value={text}
          size={numeric ? 7 : 16} data-param-text={spec.name}
          onChange={(e) => {
            setText(e.target.value);
            // Numbers are checked as typed, so an out-of-range value is refused at once.
            if (numeric) commit(e.target.value);
          }}
          onBlur={() => !numeric && text !== show(value) && commit(text)}
          onKeyDown={(e) => e.key === "Enter" && commit(text)} />
      </div>
      {numeric && spec.min !== undefined && !compact && (
        <div className="hint">
          {spec.min} to {spec.max}, default {show(spec.default)}
        </div>
      )}
      {errorBox}
    </div>
  );
}
