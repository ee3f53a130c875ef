// Flows from many agents and waypoints at once: a snapshot of what their rings hold (merged in time
// order), or a live follow for a while. What `weft observe` lists, and what the service map and the
// policy suggestion read when they are not given a saved file.
import { isFlowEvent, type FlowEvent, type FlowsLost } from '../core/flows/event.js';
import { readFlows, type FlowRequest } from './stream-client.js';
import type { FlowTarget } from './targets.js';

export interface TargetFailure {
  readonly target: FlowTarget;
  readonly error: Error;
}

export interface CollectedFlows {
  /** In time order (by reporter sequence within one reporter). */
  readonly events: FlowEvent[];
  readonly lost: FlowsLost[];
  readonly failures: TargetFailure[];
}

/**
 * Reads every target: what its ring holds (`request.follow` false), or what happens during `followMs`
 * (`request.follow` true). Resolves when all are done; `signal` ends a follow early.
 */
export async function collectFlows(
  targets: readonly FlowTarget[],
  request: FlowRequest,
  followMs: number | undefined,
  signal?: AbortSignal,
): Promise<CollectedFlows> {
  const events: FlowEvent[] = [];
  const lost: FlowsLost[] = [];
  const failures: TargetFailure[] = [];
  const stop = new AbortController();
  const onAbort = (): void => stop.abort();
  signal?.addEventListener('abort', onAbort);
  const timer = request.follow && followMs !== undefined ? setTimeout(onAbort, followMs) : undefined;
  try {
    await Promise.all(
      targets.map((target) =>
        readFlows(
          target,
          request,
          {
            line: (line) => (isFlowEvent(line) ? events.push(line) : lost.push(line)),
            failed: (t, error) => failures.push({ target: t, error }),
          },
          stop.signal,
        ),
      ),
    );
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
  events.sort(byTime);
  return { events, lost, failures };
}

export function byTime(a: FlowEvent, b: FlowEvent): number {
  return a.time - b.time || (a.reporter.name === b.reporter.name ? a.seq - b.seq : 0);
}
