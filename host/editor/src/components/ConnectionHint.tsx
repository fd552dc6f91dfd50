// While a link is dragged over a socket that cannot take it, says why (the socket itself turns red).
import { useConnection, useReactFlow } from "@xyflow/react";
import { useView } from "../context";
import { canConnect, type FlowEdge, type FlowNode } from "../model";

export function ConnectionHint() {
  const view = useView();
  const rf = useReactFlow<FlowNode, FlowEdge>();
  const c = useConnection();
  if (!c.inProgress || !c.toHandle) return null;
  // A drag may start from either end; the link always runs output -> input.
  const [from, to] = c.fromHandle.type === "source" ? [c.fromHandle, c.toHandle] : [c.toHandle, c.fromHandle];
  const verdict = canConnect(view.catalog, rf.getNodes(), rf.getEdges(), {
    source: from.nodeId,
    sourceHandle: from.id ?? null,
    target: to.nodeId,
    targetHandle: to.id ?? null,
  });
  if (verdict.ok || from.type === to.type) return null;
  return (
    <div className="connection-hint" role="status">
      Cannot link: {verdict.reason}
    </div>
  );
}
