// What a chaos run's timelines say, read against its events (restarts or kills): per event window and
// outside them, the requests, failures by kind, retries and latency of each load; for kills, the outage
// the probes saw; for the long-lived connections, which survived and when and why the others ended.
// Pure functions of the recorded data, so they are tested on made-up runs.
import type { LoadErrorKind } from '../load/types.js';
import type { StreamConnectionRecord, StreamsResult } from './streams.js';
import { failureKind, wasRetried, type Timeline } from './timeline.js';

/** After an event's command returned, what still counts as its window (late failures, slow requests). */
export const EVENT_SETTLE_MS = 1000;
/** A line of a long-lived connection that waits this long for its echo is on a silently broken one. */
export const SILENT_BREAK_MS = 2000;
/** Consecutive successful probes (0.5 s at one per 50 ms) that mark the end of an outage. */
export const RECOVERED_RUN = 10;
/** How close to an agent's drain deadline a close must be to count as made at the deadline. */
const DEADLINE_SLACK_MS = 150;

export type ChaosMode = 'restart' | 'kill';

export interface ChaosEvent {
  readonly mode: ChaosMode;
  /** `agent node-1`, `waypoint default/waypoint`. */
  readonly target: string;
  readonly kind: 'agent' | 'waypoint';
  /** What was run: a weft command, or the signal sent to a pid. */
  readonly action: string;
  /** Epoch ms: the action was started / returned. */
  readonly startedAtMs: number;
  readonly endedAtMs: number;
  /** Kill mode: epoch ms when the lab reported a new process ready. */
  readonly replacedAtMs?: number;
  /** Kill mode: the new process's start as its log shows it (see processStartFromLog). */
  readonly newProcess?: ProcessStart;
  readonly pidBefore: number | null;
  readonly pidAfter: number | null;
  /** Why it was not done, or failed. */
  readonly problem?: string;
}

/** A drain as the draining process logged it ('… draining', then 'drain finished…'). */
export interface LoggedDrain {
  /** `agent node-1`, `waypoint default/waypoint`. */
  readonly target: string;
  readonly pid: number;
  readonly startedAtMs: number;
  readonly finishedAtMs: number | null;
  /** The 'drain finished' line's fields (closedIdle, closedAtLastCall, reset, …). */
  readonly report: Readonly<Record<string, unknown>> | null;
}

export interface LatencyFigures {
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  readonly maxMs: number | null;
}

export interface WindowFigures extends LatencyFigures {
  readonly requests: number;
  readonly answered: number;
  readonly failed: number;
  readonly failedByKind: Partial<Record<LoadErrorKind, number>>;
  readonly retried: number;
  /** Of the failed, those that failed on their retry (the rest were not retryable). */
  readonly failedAfterRetry: number;
}

export interface EventWindow {
  /** The event's target, or `outside` (the run outside every event's window). */
  readonly window: string;
  /** Epoch ms; for `outside`, the run's. */
  readonly fromMs: number;
  readonly toMs: number;
  readonly keepAlive: WindowFigures;
  readonly newConnection: WindowFigures;
  readonly probes: WindowFigures;
}

export interface Outage {
  readonly target: string;
  /** Epoch ms the kill was done (its command returned). */
  readonly killedAtMs: number;
  /** Probes that failed after the kill, before the path came back. */
  readonly failedProbes: number;
  /** Probes that failed after it came back, before the next event (isolated: not the outage). */
  readonly laterFailedProbes: number;
  /** Epoch ms of the first failed probe's start, and of the end of the first probe of the recovery. */
  readonly firstFailureAtMs: number | null;
  readonly recoveredAtMs: number | null;
  /** From the kill to the first success through that node again; null when it never came back. */
  readonly outageMs: number | null;
  /** From the new process's start (the lab's mark) to its own ready line, and to the first success. */
  readonly startToReadyMs: number | null;
  readonly startToServingMs: number | null;
}

export type StreamCloseCause =
  /** Closed by an agent's drain at its deadline (last call or reset). */
  | 'drain-deadline'
  /** Closed by a drain before its deadline (idle). */
  | 'drain'
  /** Inside an event's window, not matched to a logged drain. */
  | 'event'
  | 'outside-events';

export interface StreamClose {
  readonly slot: number;
  readonly generation: number;
  readonly closedAtMs: number;
  readonly end: StreamConnectionRecord['end'];
  readonly cause: StreamCloseCause;
  /** The event or drain it falls in. */
  readonly during: string | null;
  readonly unechoedBytes: number;
}

export interface StreamsSummary {
  readonly slots: number;
  /** The slots' first connections: open to the end, or closed. */
  readonly firstSurvived: number;
  readonly firstClosed: number;
  /** Every connection of the run, reconnections included. */
  readonly connections: number;
  readonly survived: number;
  /** Open at the end but no longer echoing. */
  readonly stalled: number;
  readonly closedAtDrainDeadline: number;
  readonly closedOtherwise: number;
  readonly closedByFin: number;
  readonly closedByReset: number;
  readonly mismatches: number;
  /** Sent bytes never echoed on connections that closed: what the closes lost in flight. */
  readonly unechoedBytes: number;
  /** Closes that lost bytes in flight (sent, their echo never came back). */
  readonly closesLosingData: number;
  /** The longest any line waited for its echo (or for its connection to end): a silent break's length. */
  readonly longestWaitMs: number;
  /**
   * Connections where a line waited that long or more (closed or not), and the first
   * MAX_CLOSES_LISTED of them whole: when each opened and ended, and how.
   */
  readonly waitedOver: {
    readonly ms: number;
    readonly connections: number;
    readonly listed: readonly StreamConnectionRecord[];
  };
  readonly openFailures: number;
  readonly reconnectFailures: number;
  /** The closes in time order, the first MAX_CLOSES_LISTED of them (all are counted above). */
  readonly closes: readonly StreamClose[];
}

/** Closes listed one by one: a kill mode run has thousands (every refused reconnection). */
export const MAX_CLOSES_LISTED = 200;

/** The epoch-ms window an event disturbs: from its start to a little after its end. */
export function eventWindow(e: ChaosEvent): { fromMs: number; toMs: number } {
  return { fromMs: e.startedAtMs, toMs: Math.max(e.endedAtMs, e.replacedAtMs ?? 0) + EVENT_SETTLE_MS };
}

function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)]!;
}

function ms(us: number | null): number | null {
  return us === null ? null : Math.round(us / 100) / 10;
}

/** The requests of `timeline` whose scheduled start (epoch ms) is in [from, to) and passes `keep`. */
export function windowFigures(
  timeline: Timeline,
  originAtMs: number,
  fromMs: number,
  toMs: number,
  keep: (startMs: number) => boolean = () => true,
): WindowFigures {
  const latencies: number[] = [];
  const failedByKind: Partial<Record<LoadErrorKind, number>> = {};
  let requests = 0;
  let failed = 0;
  let retried = 0;
  let failedAfterRetry = 0;
  for (let i = 0; i < timeline.t.length; i++) {
    const at = originAtMs + timeline.t[i]!;
    if (at < fromMs || at >= toMs || !keep(at)) continue;
    requests++;
    const letter = timeline.outcomes[i]!;
    if (wasRetried(letter)) retried++;
    const kind = failureKind(letter);
    if (kind === undefined) latencies.push(timeline.us[i]!);
    else {
      failed++;
      failedByKind[kind] = (failedByKind[kind] ?? 0) + 1;
      if (wasRetried(letter)) failedAfterRetry++;
    }
  }
  latencies.sort((a, b) => a - b);
  return {
    requests,
    answered: latencies.length,
    failed,
    failedByKind,
    retried,
    failedAfterRetry,
    p50Ms: ms(percentile(latencies, 50)),
    p99Ms: ms(percentile(latencies, 99)),
    maxMs: ms(latencies.at(-1) ?? null),
  };
}

export interface RunTimelines {
  readonly originAtMs: number;
  readonly startedAtMs: number;
  readonly stoppedAtMs: number;
  readonly keepAlive: Timeline;
  readonly newConnection: Timeline;
  readonly probes: Timeline;
}

/** One row per event window, then `outside`: the run minus every window. */
export function eventWindows(run: RunTimelines, events: readonly ChaosEvent[]): EventWindow[] {
  const windows = events.filter((e) => e.problem === undefined).map((e) => ({ e, ...eventWindow(e) }));
  const rows: EventWindow[] = windows.map(({ e, fromMs, toMs }) => ({
    window: e.target,
    fromMs,
    toMs,
    keepAlive: windowFigures(run.keepAlive, run.originAtMs, fromMs, toMs),
    newConnection: windowFigures(run.newConnection, run.originAtMs, fromMs, toMs),
    probes: windowFigures(run.probes, run.originAtMs, fromMs, toMs),
  }));
  const outside = (at: number): boolean => !windows.some((w) => at >= w.fromMs && at < w.toMs);
  const [from, to] = [run.startedAtMs, run.stoppedAtMs];
  rows.push({
    window: 'outside',
    fromMs: from,
    toMs: to,
    keepAlive: windowFigures(run.keepAlive, run.originAtMs, from, to, outside),
    newConnection: windowFigures(run.newConnection, run.originAtMs, from, to, outside),
    probes: windowFigures(run.probes, run.originAtMs, from, to, outside),
  });
  return rows;
}

/**
 * The outage each kill caused, from the probes started after it (until the next event, or the end): it
 * ends with the first success of a run of RECOVERED_RUN successes (0.5 s of probes) after the first
 * failure, so the path is back, not flapping. Failures after that are counted apart (not the kill's). A
 * kill no probe noticed has a 0 outage.
 */
export function outages(run: RunTimelines, events: readonly ChaosEvent[]): Outage[] {
  const kills = events.filter((e) => e.mode === 'kill' && e.problem === undefined);
  const probes = run.probes;
  const order = probes.t.map((_, i) => i).sort((a, b) => probes.t[a]! - probes.t[b]!);
  const ok = (i: number): boolean => failureKind(probes.outcomes[i]!) === undefined;
  return kills.map((e, k) => {
    const killedAtMs = e.endedAtMs;
    const until = kills[k + 1]?.startedAtMs ?? run.stoppedAtMs;
    const inRange = order.filter((i) => {
      const at = run.originAtMs + probes.t[i]!;
      // From the kill's start: a probe under way when the process died fails too.
      return at >= e.startedAtMs && at < until;
    });
    const first = inRange.findIndex((i) => !ok(i));
    if (first < 0)
      return {
        target: e.target,
        killedAtMs,
        failedProbes: 0,
        laterFailedProbes: 0,
        firstFailureAtMs: null,
        recoveredAtMs: null,
        outageMs: 0,
        ...startFigures(e, null),
      };
    // The first success followed by RECOVERED_RUN - 1 more (or by successes to the end of the range).
    let back = -1;
    for (let j = first + 1; j < inRange.length && back < 0; j++)
      if (inRange.slice(j, j + RECOVERED_RUN).every(ok)) back = j;
    const before = back < 0 ? inRange : inRange.slice(0, back);
    const success = back < 0 ? undefined : inRange[back]!;
    const recoveredAtMs =
      success === undefined
        ? null
        : Math.round(run.originAtMs + probes.t[success]! + probes.us[success]! / 1000);
    return {
      target: e.target,
      killedAtMs,
      failedProbes: before.filter((i) => !ok(i)).length,
      laterFailedProbes: back < 0 ? 0 : inRange.slice(back).filter((i) => !ok(i)).length,
      firstFailureAtMs: Math.round(run.originAtMs + probes.t[inRange[first]!]!),
      recoveredAtMs,
      outageMs: recoveredAtMs === null ? null : Math.max(0, recoveredAtMs - killedAtMs),
      ...startFigures(e, recoveredAtMs),
    };
  });
}

function startFigures(
  e: ChaosEvent,
  recoveredAtMs: number | null,
): Pick<Outage, 'startToReadyMs' | 'startToServingMs'> {
  const started = e.newProcess?.startedAtMs ?? null;
  const ready = e.newProcess?.readyAtMs ?? null;
  return {
    startToReadyMs: started === null || ready === null ? null : ready - started,
    startToServingMs: started === null || recoveredAtMs === null ? null : recoveredAtMs - started,
  };
}

/** Why a long-lived connection closed at `at`: a logged drain's deadline, a drain, an event, or none. */
function closeCause(
  at: number,
  events: readonly ChaosEvent[],
  drains: readonly LoggedDrain[],
  deadlineMs: number,
): { cause: StreamCloseCause; during: string | null } {
  for (const d of drains) {
    const end = (d.finishedAtMs ?? d.startedAtMs + deadlineMs + 1000) + DEADLINE_SLACK_MS;
    if (at < d.startedAtMs || at > end) continue;
    // The drain's own clock starts after the process stops accepting (the agent lingers ~1 s after it
    // logs 'draining'): from its report when there is one.
    const ranMs = Number(d.report?.durationMs);
    const deadline =
      d.finishedAtMs !== null && Number.isFinite(ranMs)
        ? d.finishedAtMs - ranMs + deadlineMs
        : d.startedAtMs + deadlineMs;
    const atDeadline = at >= deadline - DEADLINE_SLACK_MS;
    return { cause: atDeadline ? 'drain-deadline' : 'drain', during: `${d.target} (pid ${d.pid})` };
  }
  for (const e of events) {
    const w = eventWindow(e);
    if (at >= w.fromMs && at < w.toMs) return { cause: 'event', during: e.target };
  }
  return { cause: 'outside-events', during: null };
}

export function summarizeStreams(
  streams: StreamsResult,
  events: readonly ChaosEvent[],
  drains: readonly LoggedDrain[],
  deadlineMs: number,
): StreamsSummary {
  const closes: StreamClose[] = [];
  for (const c of streams.connections) {
    if (c.closedAtMs === null) continue;
    closes.push({
      slot: c.slot,
      generation: c.generation,
      closedAtMs: c.closedAtMs,
      end: c.end,
      ...closeCause(c.closedAtMs, events, drains, deadlineMs),
      unechoedBytes: c.unechoedBytes,
    });
  }
  const first = streams.connections.filter((c) => c.generation === 0);
  const atDeadline = closes.filter((c) => c.cause === 'drain-deadline').length;
  return {
    slots: streams.slots,
    firstSurvived: first.filter((c) => c.end === 'survived').length,
    firstClosed: first.filter((c) => c.end !== 'survived').length,
    connections: streams.connections.length,
    survived: streams.connections.filter((c) => c.end === 'survived').length,
    stalled: streams.connections.filter((c) => c.end === 'stalled').length,
    closedAtDrainDeadline: atDeadline,
    closedOtherwise: closes.length - atDeadline,
    closedByFin: closes.filter((c) => c.end === 'fin').length,
    closedByReset: closes.filter((c) => c.end === 'reset').length,
    mismatches: closes.filter((c) => c.end === 'mismatch').length,
    unechoedBytes: closes.reduce((s, c) => s + c.unechoedBytes, 0),
    closesLosingData: closes.filter((c) => c.unechoedBytes > 0).length,
    longestWaitMs: Math.max(0, ...streams.connections.map((c) => c.maxWaitMs)),
    waitedOver: {
      ms: SILENT_BREAK_MS,
      connections: streams.connections.filter((c) => c.maxWaitMs >= SILENT_BREAK_MS).length,
      listed: streams.connections.filter((c) => c.maxWaitMs >= SILENT_BREAK_MS).slice(0, MAX_CLOSES_LISTED),
    },
    openFailures: streams.openFailures,
    reconnectFailures: streams.reconnectFailures,
    closes: closes.sort((a, b) => a.closedAtMs - b.closedAtMs).slice(0, MAX_CLOSES_LISTED),
  };
}

/** One second of a load: [second from the measured start, requests, failed, p99 ms, max ms]. */
export type SecondFigures = readonly [
  second: number,
  requests: number,
  failed: number,
  p99Ms: number | null,
  maxMs: number | null,
];

/** Each second of the measured window of `timeline` (requests by scheduled start). */
export function perSecond(timeline: Timeline, run: RunTimelines): SecondFigures[] {
  const seconds = Math.ceil((run.stoppedAtMs - run.startedAtMs) / 1000);
  return Array.from({ length: seconds }, (_, k) => {
    const from = run.startedAtMs + k * 1000;
    const w = windowFigures(timeline, run.originAtMs, from, Math.min(from + 1000, run.stoppedAtMs));
    return [k, w.requests, w.failed, w.p99Ms, w.maxMs] as const;
  });
}

/** One failed request, for the report. */
export interface FailedRequest {
  readonly load: 'keep-alive' | 'new-connection' | 'probe';
  /** Epoch ms of its scheduled start. */
  readonly atMs: number;
  /** Until it failed. */
  readonly afterMs: number;
  readonly kind: LoadErrorKind;
  /** Whether the failure was its retry's. */
  readonly onRetry: boolean;
}

/** The failed requests of the run in time order, at most `max` (the first ones). */
export function failedRequests(run: RunTimelines, max: number): FailedRequest[] {
  const all: FailedRequest[] = [];
  const loads = [
    ['keep-alive', run.keepAlive],
    ['new-connection', run.newConnection],
    ['probe', run.probes],
  ] as const;
  for (const [load, tl] of loads)
    for (let i = 0; i < tl.t.length; i++) {
      const letter = tl.outcomes[i]!;
      const kind = failureKind(letter);
      if (kind === undefined) continue;
      all.push({
        load,
        atMs: Math.round(run.originAtMs + tl.t[i]!),
        afterMs: Math.round(tl.us[i]! / 100) / 10,
        kind,
        onRetry: wasRetried(letter),
      });
    }
  return all.sort((a, b) => a.atMs - b.atMs).slice(0, max);
}

/** Drains from a process log: each '… draining' line paired with the same pid's 'drain finished…'. */
export function drainsFromLog(text: string, target: string, sinceMs: number): LoggedDrain[] {
  const started = new Map<number, number>();
  const drains: LoggedDrain[] = [];
  for (const line of text.split('\n')) {
    if (!line.includes('drain')) continue;
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    const msg = typeof rec.msg === 'string' ? rec.msg : '';
    const pid = typeof rec.pid === 'number' ? rec.pid : -1;
    const time = typeof rec.time === 'string' ? Date.parse(rec.time) : Number(rec.time);
    if (!Number.isFinite(time) || time < sinceMs) continue;
    if (/ draining$/.test(msg)) started.set(pid, time);
    else if (msg.startsWith('drain finished')) {
      const { level: _l, time: _t, pid: _p, component: _c, msg: _m, ...report } = rec;
      const startedAtMs = started.get(pid) ?? time - Number(report.durationMs ?? 0);
      started.delete(pid);
      drains.push({ target, pid, startedAtMs, finishedAtMs: time, report });
    }
  }
  // Draining when the log was read (it did not finish, or the process died first).
  for (const [pid, startedAtMs] of started)
    drains.push({ target, pid, startedAtMs, finishedAtMs: null, report: null });
  return drains.sort((a, b) => a.startedAtMs - b.startedAtMs);
}

/** When a process began (the lab's mark before its first line) and when it logged itself ready. */
export interface ProcessStart {
  readonly startedAtMs: number | null;
  readonly readyAtMs: number | null;
}

/** The lab's mark of a start: `--- weft lab: <time> agent started (pid N)` or `… starting [argv]`. */
const START_MARK = /^--- weft lab: (\S+) (?:agent started|starting)\b/;

/**
 * The start of process `pid` as its log shows it: the last start mark the lab wrote before the process's
 * first line, and its first line whose `msg` is `readyMsg`. The time from one to the other is the
 * process's own start-up (runtime, modules, config, certificates, listeners), apart from any delay
 * before the lab started it.
 */
export function processStartFromLog(text: string, pid: number, readyMsg: string): ProcessStart {
  let lastMark: number | null = null;
  let startedAtMs: number | null = null;
  const pidField = `"pid":${pid},`;
  for (const line of text.split('\n')) {
    const mark = START_MARK.exec(line);
    if (mark) {
      lastMark = Date.parse(mark[1]!);
      continue;
    }
    if (!line.includes(pidField)) continue;
    startedAtMs ??= lastMark;
    let rec: { msg?: unknown; time?: unknown };
    try {
      rec = JSON.parse(line) as { msg?: unknown; time?: unknown };
    } catch {
      continue;
    }
    if (rec.msg === readyMsg && typeof rec.time === 'string')
      return { startedAtMs, readyAtMs: Date.parse(rec.time) };
  }
  return { startedAtMs, readyAtMs: null };
}
