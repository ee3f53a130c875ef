// The shape of `weft bench chaos`'s result, and its judgement: whether the run measured what it claims
// (the check) and whether the mesh met the scenario's targets (the criteria).
import type { LoadErrorKind } from '../load/types.js';
import type { LoadResult } from '../load/run.js';
import type {
  ChaosEvent,
  ChaosMode,
  EventWindow,
  FailedRequest,
  LoggedDrain,
  SecondFigures,
  Outage,
  StreamsSummary,
} from './analysis.js';
import type { CpuUse } from './cpu-watch.js';
import type { LinkCaptureResult } from './link-capture.js';

/** Kill mode: the longest outage a kill may cause (the new process's start, readiness). */
export const MAX_OUTAGE_MS = 5000;
/** Kill mode: a new agent serves within this long of its start. */
export const MAX_AGENT_START_TO_SERVING_MS = 1000;
/** Below this share of a target rate, the rate was not sustained (reported, not failed). */
const SUSTAINED_SHARE = 0.95;
/** A capture that saw fewer HBONE packets than this per second of run did not see the load. */
const MIN_HBONE_PACKETS_PER_SECOND = 100;

export interface LoadTotals {
  readonly targetRps: number;
  /** Answered per second. */
  readonly achievedRps: number;
  /**
   * Answered or failed per second, not counting those still unanswered at the end (timeouts): below the
   * target, requests queued in the generator faster than the mesh served them (the rate was too high).
   */
  readonly completedRps: number;
  /** Requests scheduled in the measured window (answered + failed). */
  readonly sent: number;
  readonly answered: number;
  readonly failed: number;
  readonly failedByKind: Partial<Record<LoadErrorKind, number>>;
  readonly retried: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

export interface CaptureSummary {
  /** Per device captured: each node uplink (a packet between nodes is on two) and the waypoint pod. */
  readonly links: readonly LinkCaptureResult[];
  /** Packets on the links holding the run's marker: plaintext of an enrolled pod. */
  readonly markerPackets: number;
  /** Packets holding the control string sent in plaintext on purpose between the nodes. */
  readonly controlPackets: number;
  readonly hbonePackets: number;
}

export interface Criterion {
  readonly what: string;
  readonly value: number | null;
  readonly bound: string;
  readonly passed: boolean;
}

export interface ChaosScenarioResult {
  readonly mode: ChaosMode;
  readonly marker: string;
  readonly startedAt: string;
  /** The measured window. */
  readonly seconds: number;
  readonly keepAlive: LoadTotals & { readonly connections: number };
  readonly newConnection: LoadTotals;
  readonly probes: {
    readonly intervalMs: number;
    readonly timeoutMs: number;
    readonly sent: number;
    readonly failed: number;
  };
  /** All HTTP requests of the two loads. */
  readonly requests: { readonly sent: number; readonly failed: number; readonly retried: number };
  /** Whether both loads completed requests at 95 % of their target rates (see LoadTotals). */
  readonly sustained: boolean;
  readonly events: readonly ChaosEvent[];
  readonly windows: readonly EventWindow[];
  /** Second by second, from the measured start: [second, requests, failed, p99 ms, max ms]. */
  readonly perSecond: {
    readonly keepAlive: readonly SecondFigures[];
    readonly newConnection: readonly SecondFigures[];
  };
  /** The failed requests, in time order (the first 200; all are counted in the loads and windows). */
  readonly failures: readonly FailedRequest[];
  readonly outages: readonly Outage[];
  readonly drains: readonly LoggedDrain[];
  /** CPUs busy during the events' sequence, per process role and for the whole machine. */
  readonly cpu: CpuUse;
  readonly streams: StreamsSummary;
  readonly capture: CaptureSummary;
  /** Evidence the load crossed the mesh: lines logged by each part since the run started. */
  readonly mesh: {
    readonly waypointRequestsWithMarker: number;
    readonly agentConnectionsLogged: Readonly<Record<string, number>>;
  };
  readonly check: { readonly passed: boolean; readonly problems: readonly string[] };
  readonly criteria: readonly Criterion[];
  readonly criteriaPassed: boolean;
  /** The loads' own results (histograms summarized), for reference. */
  readonly loads: { readonly keepAlive: LoadResult; readonly newConnection: LoadResult };
}

export interface ChaosReport {
  readonly command: string;
  readonly date: string;
  readonly commit: string;
  readonly labId: string;
  /** Where the waypoint pod ran. */
  readonly waypointNode: string;
  readonly path: string;
  readonly machine: {
    readonly cpus: number;
    readonly loadavgAtStart: readonly number[];
    /** Other weft labs running on the machine when this one started (they compete for the CPUs). */
    readonly otherLabs: readonly string[];
  };
  readonly scenarios: readonly ChaosScenarioResult[];
}

export function loadTotals(r: LoadResult, failedByKind: Partial<Record<LoadErrorKind, number>>): LoadTotals {
  const completed = r.requests + r.errorCount - r.errors.timeout;
  return {
    targetRps: r.targetRps ?? 0,
    achievedRps: r.achievedRps,
    completedRps: r.seconds > 0 ? Math.round(completed / r.seconds) : 0,
    sent: r.requests + r.errorCount,
    answered: r.requests,
    failed: r.errorCount,
    failedByKind,
    retried: r.retried ?? 0,
    p99Ms: Math.round(r.latencyUs.p99 / 100) / 10,
    maxMs: Math.round(r.latencyUs.max / 100) / 10,
  };
}

/** Whether every load completed requests (answered or failed) at 95 % of its target rate. */
export function isSustained(...loads: readonly LoadTotals[]): boolean {
  return loads.every((l) => l.completedRps >= l.targetRps * SUSTAINED_SHARE);
}

/** Why the figures do not measure what they claim, if they do not. */
export function scenarioProblems(
  s: Pick<ChaosScenarioResult, 'mode' | 'events' | 'capture' | 'mesh' | 'streams' | 'seconds'>,
): string[] {
  const problems: string[] = [];
  for (const e of s.events) {
    if (e.problem !== undefined) problems.push(`${e.mode} ${e.target}: ${e.problem}`);
    else if (e.pidAfter === null || e.pidAfter === e.pidBefore)
      problems.push(`${e.mode} ${e.target}: no new process (pid ${e.pidBefore} before, ${e.pidAfter} after)`);
  }
  const minHbone = MIN_HBONE_PACKETS_PER_SECOND * s.seconds;
  for (const l of s.capture.links) {
    const where = `capture on ${l.node} ${l.what} ${l.device}`;
    if (l.problem !== undefined) problems.push(`${where}: ${l.problem}`);
    const control = l.needles.find((n) => n.needle.startsWith('chaos-control-'))?.packets ?? 0;
    if (l.what === 'uplink' && control === 0)
      problems.push(
        `${where}: the plaintext control request between the nodes was not seen: payloads are not`,
      );
    if (l.hbonePackets < minHbone)
      problems.push(`${where}: ${l.hbonePackets} packets on :15008, fewer than ${minHbone}: not the load`);
  }
  if (s.mesh.waypointRequestsWithMarker === 0)
    problems.push('the waypoint logged none of the run’s requests');
  for (const [node, n] of Object.entries(s.mesh.agentConnectionsLogged))
    if (n === 0) problems.push(`the agent of ${node} logged no connection during the run`);
  if (s.streams.openFailures > 0)
    problems.push(`${s.streams.openFailures} of the ${s.streams.slots} long-lived connections did not open`);
  return problems;
}

export function scenarioCriteria(
  s: Pick<
    ChaosScenarioResult,
    'mode' | 'keepAlive' | 'newConnection' | 'probes' | 'outages' | 'capture' | 'streams'
  >,
): Criterion[] {
  const criteria: Criterion[] = [
    {
      what: 'packets with the marker on the links (plaintext of an enrolled pod)',
      value: s.capture.markerPackets,
      bound: '= 0',
      passed: s.capture.markerPackets === 0,
    },
    {
      what: 'long-lived connections open at the end but no longer echoing',
      value: s.streams.stalled,
      bound: '= 0',
      passed: s.streams.stalled === 0,
    },
    {
      // A connection the mesh can no longer carry must end (and be reopened), not hang: a line may
      // wait out an outage, not longer.
      what: 'longest a long-lived connection’s line waited for its echo or its connection’s end (ms)',
      value: s.streams.longestWaitMs,
      bound: `< ${MAX_OUTAGE_MS}`,
      passed: s.streams.longestWaitMs < MAX_OUTAGE_MS,
    },
  ];
  if (s.mode === 'restart') {
    for (const [what, n] of [
      ['keep-alive requests failed', s.keepAlive.failed],
      ['new-connection requests failed', s.newConnection.failed],
      ['probes failed', s.probes.failed],
    ] as const)
      criteria.push({ what, value: n, bound: '= 0', passed: n === 0 });
  } else {
    for (const o of s.outages)
      criteria.push({
        what: `outage after the kill of ${o.target} (ms)`,
        value: o.outageMs,
        bound: `< ${MAX_OUTAGE_MS}`,
        passed: o.outageMs !== null && o.outageMs < MAX_OUTAGE_MS,
      });
    // Issue 9: a crashed agent is "back to serving within a second of the new process starting".
    for (const o of s.outages.filter((x) => x.target.startsWith('agent ')))
      criteria.push({
        what: `the new agent of ${o.target.slice('agent '.length)} serving, from its start (ms)`,
        value: o.startToServingMs,
        bound: `<= ${MAX_AGENT_START_TO_SERVING_MS}`,
        passed: o.startToServingMs !== null && o.startToServingMs <= MAX_AGENT_START_TO_SERVING_MS,
      });
  }
  return criteria;
}
