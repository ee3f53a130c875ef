// A live follow across agents and waypoints that come and go: the targets are discovered again every
// RESCAN_MS, so a waypoint deployed (or an agent restarted) after `weft observe -f` started is followed
// too. A target met later, or read again after its stream ended, is asked for its whole ring and only
// events newer than what was already seen from it (or than the follow's start) are passed on.
import { setTimeout as sleep } from 'node:timers/promises';
import type { FlowEvent, FlowStreamLine } from '../core/flows/event.js';
import { readFlows, type FlowRequest } from './stream-client.js';
import type { FlowTarget } from './targets.js';

export const RESCAN_MS = 1_000;

export interface FollowHandlers {
  line(line: FlowStreamLine, target: FlowTarget): void;
  /** Reported once per target until it is read successfully again. */
  failed(target: FlowTarget, error: Error): void;
}

function keyOf(target: FlowTarget): string {
  return target.kind === 'unix' ? `unix:${target.path}` : `${target.kind}:${target.name}`;
}

interface Followed {
  /** The newest event time passed on from this target; later readings skip what is not newer. */
  since: number;
  /** The sequence number of that event, to tell apart events of the same millisecond. */
  seq: number;
  reading: boolean;
  failing: boolean;
}

/** Follows until `signal` aborts; `discover` may throw (reported, retried on the next scan). */
export async function followFlows(
  discover: () => FlowTarget[] | Promise<FlowTarget[]>,
  request: Omit<FlowRequest, 'follow'>,
  handlers: FollowHandlers,
  signal: AbortSignal,
  onDiscoveryError: (error: Error) => void,
): Promise<void> {
  const start = Date.now();
  const followed = new Map<string, Followed>();
  const readings = new Set<Promise<void>>();
  let first = true;

  const read = (target: FlowTarget, state: Followed, fresh: boolean): void => {
    state.reading = true;
    // The first targets give what the user asked for; any other reading catches up on its whole ring.
    const last = fresh ? request.last : Number.MAX_SAFE_INTEGER;
    const newer = (e: FlowEvent): boolean =>
      fresh || e.time > state.since || (e.time === state.since && e.seq > state.seq);
    const reading = readFlows(
      target,
      { ...request, follow: true, last },
      {
        line: (line, t) => {
          if (line.type === 'lost') return handlers.line(line, t);
          if (!newer(line)) return;
          state.since = line.time;
          state.seq = line.seq;
          state.failing = false;
          handlers.line(line, t);
        },
        failed: (t, error) => {
          if (!state.failing) handlers.failed(t, error);
          state.failing = true;
        },
      },
      signal,
    ).finally(() => {
      state.reading = false;
      readings.delete(reading);
    });
    readings.add(reading);
  };

  while (!signal.aborted) {
    let targets: FlowTarget[] = [];
    try {
      targets = await discover();
    } catch (err) {
      onDiscoveryError(err as Error);
    }
    for (const target of targets) {
      const key = keyOf(target);
      let state = followed.get(key);
      if (state === undefined) {
        // Strictly after the start: an event of the same millisecond may be one from before it.
        state = { since: start, seq: Number.MAX_SAFE_INTEGER, reading: false, failing: false };
        followed.set(key, state);
        read(target, state, first);
      } else if (!state.reading) read(target, state, false);
    }
    first = false;
    // Rejects on abort, which only ends the loop.
    await sleep(RESCAN_MS, undefined, { signal }).catch(() => undefined);
  }
  await Promise.all(readings);
}
