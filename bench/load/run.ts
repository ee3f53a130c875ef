// The load runner: N connections of a protocol, driven either open loop at a fixed rate (requests start
// on schedule whether or not earlier ones returned; latency counts from the scheduled start, so a stall
// is measured in full instead of hidden by coordinated omission) or closed loop (each connection keeps
// `depth` requests in flight: the maximum rate). Optionally a new connection per request, to measure
// connection setup. Only requests scheduled after the warm-up are recorded. Optionally, as real HTTP
// clients do, a request that failed retryably (see types.ts: an idempotent request on a reused
// keep-alive connection closed before its answer began, an HTTP/2 stream refused) is sent once more on a
// new connection of its own; its latency still counts from the first schedule.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { runPacer } from './pacer.js';
import {
  percentileCurve,
  Recorder,
  summarize,
  type LatencySummaryUs,
  type PercentileCurve,
} from './recorder.js';
import type { LoadConnection, LoadErrorKind, LoadProtocol, RequestDone } from './types.js';

/** After the schedule ends, requests still in flight get this long before they count as timeouts. */
const DRAIN_MS = 5000;
/** A closed loop whose request failed waits this long before the next, so a dead target is not hammered. */
const ERROR_PAUSE_MS = 10;
const PROGRESS_INTERVAL_MS = 1000;

export interface LoadOptions {
  readonly protocol: LoadProtocol;
  readonly connections: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  /** Requests per second over all connections (open loop); undefined runs closed loop at maximum rate. */
  readonly rate?: number | undefined;
  /** Every request on a connection of its own, opened for it and closed after. */
  readonly connectionPerRequest?: boolean;
  /** Retry a retryably failed request once, on a new connection (counted in `retried`). */
  readonly retryIdempotent?: boolean;
  /** Told of every recorded request when it ends (after its retry, if any): for timelines. */
  readonly onRequest?: (outcome: RequestOutcome) => void;
  readonly onProgress?: (progress: LoadProgress) => void;
  readonly signal?: AbortSignal;
}

/** One recorded request, on this process's performance.now() clock. */
export interface RequestOutcome {
  readonly scheduledMs: number;
  readonly endMs: number;
  readonly error: LoadErrorKind | undefined;
  /** Whether it was sent a second time (its outcome is the second attempt's). */
  readonly retried: boolean;
}

export interface LoadProgress {
  readonly elapsedMs: number;
  readonly totalMs: number;
  readonly warmingUp: boolean;
  readonly completed: number;
  readonly errors: number;
  /** Completed per second over the last interval. */
  readonly rps: number;
}

export interface LoadResult {
  readonly protocol: string;
  readonly mode: 'fixed-rate' | 'closed-loop';
  readonly connectionPerRequest: boolean;
  readonly connections: number;
  /** Requests in flight per connection in the closed loop (HTTP/2 and gRPC streams). */
  readonly depth: number;
  readonly targetRps: number | null;
  readonly seconds: number;
  readonly requests: number;
  readonly achievedRps: number;
  readonly errors: Record<LoadErrorKind, number>;
  readonly errorCount: number;
  /**
   * With `retryIdempotent`: requests sent a second time (those whose retry failed are in `errors` too).
   * Absent without it, so other runs' results are unchanged.
   */
  readonly retried?: number;
  /** Fixed rate: from the scheduled start. Closed loop: from the send. */
  readonly latencyUs: LatencySummaryUs;
  /** From the hand-over to the connection (without the generator's own lateness). */
  readonly serviceUs: LatencySummaryUs;
  /** Fixed rate: how late requests were handed over against their schedule: the generator's own share. */
  readonly sendLagUs: LatencySummaryUs;
  readonly latencyCurve: PercentileCurve;
}

/** One connection slot: opens (and after a break, reopens) its connection; requests wait meanwhile. */
class Slot {
  readonly #protocol: LoadProtocol;
  #conn: LoadConnection | undefined;
  #opening = false;
  #waiting: RequestDone[] = [];

  constructor(protocol: LoadProtocol) {
    this.#protocol = protocol;
  }

  get depth(): number {
    return this.#conn?.depth ?? 1;
  }

  async open(): Promise<void> {
    this.#conn = await this.#protocol.connect();
  }

  request(done: RequestDone): void {
    if (this.#conn?.usable === true) return this.#conn.request(done);
    this.#waiting.push(done);
    if (this.#opening) return;
    this.#opening = true;
    this.#protocol.connect().then(
      (conn) => {
        this.#opening = false;
        this.#conn = conn;
        const waiting = this.#waiting;
        this.#waiting = [];
        for (const d of waiting) this.request(d);
      },
      () => {
        this.#opening = false;
        const waiting = this.#waiting;
        this.#waiting = [];
        for (const d of waiting) d('connect');
      },
    );
  }

  close(): void {
    this.#conn?.close();
    for (const d of this.#waiting.splice(0)) d('reset');
  }
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const { protocol, connections } = options;
  const recorder = new Recorder();
  const perRequest = options.connectionPerRequest === true;
  const slots = perRequest ? [] : Array.from({ length: connections }, () => new Slot(protocol));
  // Connections are opened before the clock starts (a failure here is the target's, reported as such).
  await Promise.all(slots.map((s) => s.open()));
  let inFlight = 0;
  /** In flight and scheduled in the window: what counts as a timeout if it never comes back. */
  let inFlightRecorded = 0;
  let timedOut: number;
  /** Connections of their own (a connection per request) still open: closed at the end with the slots. */
  const ownConnections = new Set<LoadConnection>();
  let finished = false;
  let retried = 0;

  /** Sends one request on a connection opened for it, closed after. */
  const onOwnConnection = (done: RequestDone): void => {
    protocol.connect().then(
      (conn) => {
        if (finished) {
          conn.close();
          return done('reset');
        }
        ownConnections.add(conn);
        conn.request((error) => {
          ownConnections.delete(conn);
          conn.close();
          done(error);
        });
      },
      () => done('connect'),
    );
  };

  /** Starts one request scheduled at `scheduledMs` on `slot` (or on a connection of its own). */
  const issue = (
    scheduledMs: number,
    slot: Slot | undefined,
    then?: (error?: LoadErrorKind) => void,
  ): void => {
    const sentMs = performance.now();
    const recorded = recorder.inWindow(scheduledMs);
    inFlight++;
    if (recorded) inFlightRecorded++;
    let again = false;
    const done: RequestDone = (error, retryable) => {
      if (
        error !== undefined &&
        retryable === true &&
        options.retryIdempotent === true &&
        !again &&
        !finished
      ) {
        again = true;
        if (recorded) retried++;
        return onOwnConnection(done);
      }
      inFlight--;
      if (recorded) inFlightRecorded--;
      if (finished) return;
      const endMs = performance.now();
      recorder.done(scheduledMs, sentMs, endMs, error);
      if (recorded) options.onRequest?.({ scheduledMs, endMs, error, retried: again });
      then?.(error);
    };
    if (slot !== undefined) return slot.request(done);
    onOwnConnection(done);
  };

  const t0 = performance.now();
  recorder.recordFromMs = t0 + options.warmupMs;
  const endMs = recorder.recordFromMs + options.durationMs;
  const progress = startProgress(options, recorder, t0, endMs);
  /** When the schedule stopped: its end, or earlier when the run was aborted. */
  let stoppedMs: number;
  try {
    if (options.rate !== undefined) {
      let k = 0;
      await runPacer(
        {
          rate: options.rate,
          startMs: t0,
          endMs,
          fire: (dueMs) => issue(dueMs, perRequest ? undefined : slots[k++ % slots.length]),
        },
        options.signal,
      );
    } else {
      let running = true;
      const loop = (slot: Slot | undefined): void => {
        if (!running) return;
        issue(performance.now(), slot, (error) => {
          if (error === undefined) loop(slot);
          else setTimeout(() => loop(slot), ERROR_PAUSE_MS);
        });
      };
      if (perRequest) for (let i = 0; i < connections; i++) loop(undefined);
      else for (const slot of slots) for (let i = 0; i < slot.depth; i++) loop(slot);
      await sleep(endMs - performance.now(), undefined, { signal: options.signal }).catch(() => undefined);
      running = false;
    }
    stoppedMs = Math.min(performance.now(), endMs);
    const drainUntil = performance.now() + DRAIN_MS;
    while (inFlight > 0 && performance.now() < drainUntil) await sleep(5);
  } finally {
    finished = true;
    // Counted before closing: closing fails what is still in flight (some of it synchronously).
    timedOut = inFlightRecorded;
    progress.stop();
    for (const s of slots) s.close();
    for (const c of ownConnections) c.close();
  }
  // What never came back counts against the run (a request without an answer is not a fast one); the
  // warm-up's do not, like the rest of the warm-up.
  recorder.errors.timeout += timedOut;
  // Stopped early (aborted), a run measured only until then: its rate is over that time.
  const seconds =
    options.signal?.aborted === true
      ? Math.max(0, Math.round(stoppedMs - recorder.recordFromMs)) / 1000
      : options.durationMs / 1000;
  const result: LoadResult = {
    protocol: protocol.name,
    mode: options.rate === undefined ? 'closed-loop' : 'fixed-rate',
    connectionPerRequest: perRequest,
    connections,
    depth: slots[0]?.depth ?? 1,
    targetRps: options.rate ?? null,
    seconds,
    requests: recorder.completed,
    achievedRps: seconds > 0 ? Math.round(recorder.completed / seconds) : 0,
    errors: { ...recorder.errors },
    errorCount: recorder.errorCount,
    // Only when retrying: without it a result is as it always was.
    ...(options.retryIdempotent === true ? { retried } : {}),
    latencyUs: summarize(recorder.latency),
    serviceUs: summarize(recorder.service),
    sendLagUs: summarize(recorder.lag),
    latencyCurve: percentileCurve(recorder.latency),
  };
  recorder.close();
  return result;
}

function startProgress(
  options: LoadOptions,
  recorder: Recorder,
  t0: number,
  endMs: number,
): { stop(): void } {
  const report = options.onProgress;
  if (report === undefined) return { stop: () => undefined };
  let last = 0;
  let lastAt = t0;
  const timer = setInterval(() => {
    const now = performance.now();
    const completed = recorder.completed;
    report({
      elapsedMs: now - t0,
      totalMs: endMs - t0,
      warmingUp: now < recorder.recordFromMs,
      completed,
      errors: recorder.errorCount,
      rps: Math.round(((completed - last) * 1000) / (now - lastAt)),
    });
    last = completed;
    lastAt = now;
  }, PROGRESS_INTERVAL_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
