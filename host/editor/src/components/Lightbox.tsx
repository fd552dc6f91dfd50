// A picture from a node's strip, large; arrows go through the strip, Escape or a click closes it.
import { useEffect } from "react";

export interface Shown {
  urls: string[];
  index: number;
  title: string;
}

export function Lightbox({ shown, onChange, onClose }: { shown: Shown; onChange: (s: Shown) => void; onClose: () => void }) {
  const { urls, index, title } = shown;
  useEffect(() => {
    const key = (e: KeyboardEvent) => {
      if (e.key === "Escape") onClose();
      if (e.key === "ArrowRight") onChange({ ...shown, index: Math.min(index + 1, urls.length - 1) });
      if (e.key === "ArrowLeft") onChange({ ...shown, index: Math.max(index - 1, 0) });
    };
    window.addEventListener("keydown", key);
    return () => window.removeEventListener("keydown", key);
  }, [shown, index, urls.length, onChange, onClose]);
  return (
    <div className="lightbox" role="dialog" aria-modal="true" aria-label={`${title} picture ${index + 1}`} onClick={onClose}>
      <figure onClick={(e) => e.stopPropagation()}>
        <img src={urls[index]} alt={`${title} picture ${index + 1}`} />
        <figcaption>
          {title}: picture {index + 1} of {urls.length} (← → to browse, Esc to close)
          <button autoFocus onClick={onClose}>Close</button>
        </figcaption>
      </figure>
    </div>
  );
}
