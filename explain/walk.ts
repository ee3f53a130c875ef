// One way through the mesh for one flow and one choice of endpoint, as the walks (captured-walk.ts,
// plaintext-walk.ts) produce it, and the verdict it comes to: its last step's.
import type { FlowPath, FlowVerdict } from '../core/flows/event.js';
import type {
  EndpointOutcome,
  ExplainedEndpoint,
  ExplainStep,
  Explanation,
  NamespacedName,
} from './explanation.js';

/** One way through, for one choice of endpoint. */
export interface Walk {
  readonly path: FlowPath;
  readonly steps: readonly ExplainStep[];
  readonly waypoint?: NamespacedName;
  readonly http?: Explanation['http'];
  readonly endpoint?: ExplainedEndpoint;
  /** How many endpoints the flow could have gone to (0 or 1: no choice). */
  readonly candidates: number;
  readonly notes: readonly string[];
  /** The outcome when no part of the mesh is on the path (no steps). */
  readonly unseen?: { readonly verdict: FlowVerdict; readonly reason: string };
}

const NOTHING_CAPTURES = Object.freeze({
  verdict: 'ALLOWED' as const,
  reason: 'no part of the mesh is on the path: nothing captures this traffic',
});

/** The verdict fields of a walk: its last step's, or what happens with no mesh on the path. */
export function conclusion(
  walk: Walk,
): Pick<EndpointOutcome, 'verdict' | 'policy' | 'rule' | 'decidedAt' | 'reason'> {
  const last = walk.steps.at(-1);
  if (last === undefined) return { ...(walk.unseen ?? NOTHING_CAPTURES), decidedAt: 'none' };
  return {
    verdict: last.verdict,
    ...(last.policy !== undefined && { policy: last.policy }),
    ...(last.rule !== undefined && { rule: last.rule }),
    decidedAt: last.at,
    reason: last.reason,
  };
}

export function outcomeOf(walk: Walk): EndpointOutcome {
  return { endpoint: walk.endpoint ?? { ip: '', port: 0, inMesh: false }, ...conclusion(walk) };
}
