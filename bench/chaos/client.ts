// The chaos run's client, inside the client pod (`weft bench chaos-client`): three loads at once, plus
// the outage probe, until told to stop:
//
// - keep-alive HTTP/1.1 at a fixed rate over a few connections, retrying as real clients do
//   (`retryIdempotent`: a GET that crossed a keep-alive connection's close is sent again once);
// - a new HTTP/1.1 connection per request at a fixed rate;
// - long-lived TCP connections to an echo server, a line every interval, each echo checked;
// - a probe (a new connection and a GET) every 50 ms with a short timeout.
//
// Every request path and stream line starts with the run's marker, which the bench then looks for on the
// links between nodes. Each request is kept in a timeline, so the bench can tell what happened during
// each restart from what happened outside them. Times are epoch ms: the bench, in the root namespace,
// shares the clock.
import { performance } from 'node:perf_hooks';
import type { HostPort } from '../../core/address.js';
import { http1Protocol } from '../load/protocols/http1.js';
import { runLoad, type LoadOptions, type LoadResult } from '../load/run.js';
import { OutageProbe, type ProbeResult } from './probe.js';
import { LongLivedStreams, type StreamsResult } from './streams.js';
import { newTimeline, outcomeLetter, recordOutcome, type Timeline } from './timeline.js';

/** The client's loads: what `weft bench chaos` asks of it. */
export interface ChaosLoads {
  readonly keepAliveRate: number;
  readonly keepAliveConnections: number;
  readonly newConnectionRate: number;
  readonly streams: number;
  readonly streamIntervalMs: number;
  readonly probeIntervalMs: number;
  readonly probeTimeoutMs: number;
  /** Run before the measured window starts (requests then are not recorded). */
  readonly warmupMs: number;
}

export interface ChaosClientOptions extends ChaosLoads {
  /** The HTTP Service (ClusterIP:port) the keep-alive, new-connection and probe requests go to. */
  readonly http: HostPort;
  /** The TCP echo Service the long-lived connections go to. */
  readonly tcp: HostPort;
  readonly marker: string;
  /** The longest it runs after the warm-up if never told to stop. */
  readonly maxDurationMs: number;
  /** Called once the warm-up is over: the measured window starts. */
  readonly onStarted: (info: ChaosClientStarted) => void;
  readonly signal: AbortSignal;
}

export interface ChaosClientStarted {
  readonly pid: number;
  /** Epoch ms: the measured window's start. */
  readonly startedAtMs: number;
  readonly streamsOpen: number;
}

/** A load's result with its per-request timeline. */
export interface TimedLoad {
  readonly result: LoadResult;
  readonly timeline: Timeline;
}

export interface ChaosClientResult {
  /** Epoch ms that every timeline's `t` counts from. */
  readonly originAtMs: number;
  /** Epoch ms: the measured window. */
  readonly startedAtMs: number;
  readonly stoppedAtMs: number;
  readonly keepAlive: TimedLoad;
  readonly newConnection: TimedLoad;
  readonly probes: ProbeResult;
  readonly streams: StreamsResult;
}

export async function runChaosClient(o: ChaosClientOptions): Promise<ChaosClientResult> {
  // The caller's stop, or ours when a load fails to start: the rest must not run on.
  const stop = new AbortController();
  const forward = (): void => stop.abort();
  if (o.signal.aborted) stop.abort();
  o.signal.addEventListener('abort', forward, { once: true });
  const streams = await LongLivedStreams.start({
    target: o.tcp,
    count: o.streams,
    intervalMs: o.streamIntervalMs,
    marker: o.marker,
  });
  const originAtMs = Date.now();
  // The same instant on the loads' clock.
  const originPerf = performance.now();
  const probe = new OutageProbe(
    {
      target: o.http,
      intervalMs: o.probeIntervalMs,
      timeoutMs: o.probeTimeoutMs,
      path: `/${o.marker}/probe`,
    },
    originAtMs,
  );
  const timed = (path: string, rate: number, extra: Partial<LoadOptions>): Promise<TimedLoad> => {
    const timeline = newTimeline();
    return runLoad({
      protocol: http1Protocol({ target: o.http, payloadBytes: 0, path: `/${o.marker}/${path}` }),
      connections: o.keepAliveConnections,
      durationMs: o.maxDurationMs,
      warmupMs: o.warmupMs,
      rate,
      signal: stop.signal,
      onRequest: (r) =>
        recordOutcome(
          timeline,
          r.scheduledMs - originPerf,
          r.endMs - r.scheduledMs,
          outcomeLetter(r.error, r.retried),
        ),
      ...extra,
    }).then((result) => ({ result, timeline }));
  };
  const keepAlive = timed('keep-alive', o.keepAliveRate, { retryIdempotent: true });
  const newConnection = timed('new-connection', o.newConnectionRate, { connectionPerRequest: true });
  const startedAtMs = originAtMs + o.warmupMs;
  const warm = setTimeout(
    () => o.onStarted({ pid: process.pid, startedAtMs, streamsOpen: streams.open }),
    Math.max(0, startedAtMs - Date.now()),
  );
  // The streams and the probe stop when the loads' schedule does: at the stop, or at its full length.
  let stoppedAtMs = startedAtMs + o.maxDurationMs;
  let endOthers!: () => void;
  const othersEnd = new Promise<void>((resolve) => (endOthers = resolve));
  const maxTimer = setTimeout(endOthers, stoppedAtMs - Date.now());
  const onStop = (): void => {
    stoppedAtMs = Math.min(stoppedAtMs, Date.now());
    endOthers();
  };
  if (stop.signal.aborted) onStop();
  stop.signal.addEventListener('abort', onStop, { once: true });
  const others = othersEnd.then(() => Promise.all([streams.stop(), probe.stop()]));
  try {
    const [ka, nc, [streamsResult, probes]] = await Promise.all([keepAlive, newConnection, others]);
    return {
      originAtMs,
      startedAtMs,
      stoppedAtMs,
      keepAlive: ka,
      newConnection: nc,
      probes,
      streams: streamsResult,
    };
  } catch (err) {
    // A load that could not start: the other, the streams and the probe must not run on.
    stop.abort();
    await others.catch(() => undefined);
    throw err;
  } finally {
    clearTimeout(warm);
    clearTimeout(maxTimer);
    stop.signal.removeEventListener('abort', onStop);
    o.signal.removeEventListener('abort', forward);
  }
}
