// Request/response load over plain TCP against an echo server, and bulk upload against a discard
// server. Two modes: closed loop (each connection sends its next request when the last one returned:
// maximum rate) and open loop at a fixed rate (requests start on schedule whether or not earlier ones
// returned; latency counts from the scheduled start, so a stall shows up in full instead of being
// hidden by coordinated omission).
import net from 'node:net';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import * as hdr from 'hdr-histogram-js';
import type { HostPort } from '../core/address.js';
import { socks5Connect } from './socks5-connect.js';

export interface TcpLoadOptions {
  readonly target: HostPort;
  /** Enter through this SOCKS5 proxy (the agent's :15080) instead of connecting directly. */
  readonly socks5?: HostPort | undefined;
  readonly localAddress?: string | undefined;
  readonly connections: number;
  readonly payloadBytes: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  /** Requests per second over all connections; undefined runs closed loop at maximum rate. */
  readonly rate?: number | undefined;
}

export interface LatencySummaryUs {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly mean: number;
}

export interface TcpLoadResult {
  readonly mode: 'closed-loop' | 'fixed-rate';
  /**
   * Fixed rate: latency from the scheduled start (what a user waiting on schedule sees, coordinated
   * omission included). Closed loop: from the send.
   */
  readonly latencyUs: LatencySummaryUs;
  /** Fixed rate only: from the actual send, i.e. without the generator's own timer lateness. */
  readonly serviceUs?: LatencySummaryUs;
  /** Fixed rate only: how late the generator sent requests against their schedule. */
  readonly sendLagUs?: LatencySummaryUs;
  readonly connections: number;
  readonly payloadBytes: number;
  readonly seconds: number;
  readonly requests: number;
  readonly achievedRps: number;
  readonly errors: number;
}

async function open(opts: Pick<TcpLoadOptions, 'target' | 'socks5' | 'localAddress'>): Promise<net.Socket> {
  if (opts.socks5) return socks5Connect(opts.socks5, opts.target, opts.localAddress);
  const s = net.connect({
    host: opts.target.host,
    port: opts.target.port,
    localAddress: opts.localAddress,
    noDelay: true,
  });
  await once(s, 'connect');
  return s;
}

function summarize(h: hdr.Histogram): LatencySummaryUs {
  const r = (v: number) => Math.round(v);
  return {
    p50: r(h.getValueAtPercentile(50)),
    p90: r(h.getValueAtPercentile(90)),
    p99: r(h.getValueAtPercentile(99)),
    p999: r(h.getValueAtPercentile(99.9)),
    max: r(h.maxValue),
    mean: r(h.mean),
  };
}

/** One connection: sends payloads, matches echoed bytes to requests in order. */
class LoadConnection {
  /** Scheduled start and actual send times (ms) of requests in flight, oldest first. */
  readonly #starts: number[] = [];
  readonly #sent: number[] = [];
  #received = 0;

  constructor(
    readonly socket: net.Socket,
    readonly payload: Buffer,
    readonly onDone: (conn: LoadConnection, startMs: number, sentMs: number, endMs: number) => void,
  ) {
    socket.on('data', this.onData.bind(this));
  }

  get inFlight(): number {
    return this.#starts.length;
  }

  send(startMs: number): void {
    this.#starts.push(startMs);
    this.#sent.push(performance.now());
    this.socket.write(this.payload);
  }

  onData(chunk: Buffer): void {
    this.#received += chunk.length;
    const size = this.payload.length;
    while (this.#received >= size && this.#starts.length > 0) {
      this.#received -= size;
      this.onDone(this, this.#starts.shift()!, this.#sent.shift()!, performance.now());
    }
  }
}

export async function runTcpLoad(opts: TcpLoadOptions): Promise<TcpLoadResult> {
  const payload = Buffer.alloc(opts.payloadBytes, 0x61);
  const newHistogram = () =>
    hdr.build({
      lowestDiscernibleValue: 1,
      highestTrackableValue: 120_000_000,
      numberOfSignificantValueDigits: 3,
    });
  const histogram = newHistogram();
  const service = newHistogram();
  const lag = newHistogram();
  let errors = 0;
  let requests = 0;
  let recordFrom = Infinity;
  let running = true;
  const closedLoop = opts.rate === undefined;

  const us = (ms: number) => Math.max(1, Math.round(ms * 1000));
  const onDone = (conn: LoadConnection, startMs: number, sentMs: number, endMs: number): void => {
    if (startMs >= recordFrom) {
      histogram.recordValue(us(endMs - startMs));
      service.recordValue(us(endMs - sentMs));
      lag.recordValue(us(sentMs - startMs));
      requests++;
    }
    if (closedLoop && running) conn.send(performance.now());
  };
  const conns: LoadConnection[] = [];
  for (let i = 0; i < opts.connections; i++) {
    const socket = await open(opts);
    socket.on('error', () => errors++);
    conns.push(new LoadConnection(socket, payload, onDone));
  }

  const t0 = performance.now();
  recordFrom = t0 + opts.warmupMs;
  const end = recordFrom + opts.durationMs;
  if (closedLoop) {
    for (const c of conns) c.send(performance.now());
    await new Promise((r) => setTimeout(r, opts.warmupMs + opts.durationMs));
    running = false;
  } else {
    // Open loop: request k is due at t0 + k/rate; a timer wakes at each due time and sends what is due.
    // No busy-waiting: on a 2-core machine a spinning generator would take a core from the system under
    // test. Node timers are late by up to ~1 ms; that lateness is measured (sendLagUs) and reported.
    const intervalMs = 1000 / opts.rate!;
    let k = 0;
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        const now = performance.now();
        while (t0 + k * intervalMs <= now) {
          const due = t0 + k * intervalMs;
          if (due >= end) return resolve();
          conns[k % conns.length]!.send(due);
          k++;
        }
        setTimeout(tick, Math.max(0, t0 + k * intervalMs - now));
      };
      tick();
    });
  }
  // Let the last requests return (bounded), then close.
  const drainUntil = performance.now() + 5000;
  while (conns.some((c) => c.inFlight > 0) && performance.now() < drainUntil)
    await new Promise((r) => setTimeout(r, 5));
  errors += conns.reduce((n, c) => n + c.inFlight, 0);
  for (const c of conns) c.socket.destroy();
  const seconds = opts.durationMs / 1000;
  return {
    mode: closedLoop ? 'closed-loop' : 'fixed-rate',
    connections: opts.connections,
    payloadBytes: opts.payloadBytes,
    seconds,
    requests,
    achievedRps: Math.round(requests / seconds),
    errors,
    latencyUs: summarize(histogram),
    ...(closedLoop ? {} : { serviceUs: summarize(service), sendLagUs: summarize(lag) }),
  };
}

export interface BulkOptions {
  readonly target: HostPort;
  readonly socks5?: HostPort | undefined;
  readonly localAddress?: string | undefined;
  readonly durationMs: number;
  readonly streams: number;
}

export interface BulkResult {
  readonly streams: number;
  readonly bytes: number;
  readonly seconds: number;
  readonly gbitPerSecond: number;
}

/** Uploads as fast as back-pressure allows on `streams` connections; rate from what the server counted. */
export async function runBulk(opts: BulkOptions): Promise<BulkResult> {
  const chunk = Buffer.alloc(256 * 1024, 0x62);
  const sockets = await Promise.all(Array.from({ length: opts.streams }, () => open(opts)));
  const t0 = performance.now();
  const stopAt = t0 + opts.durationMs;
  const counts = await Promise.all(
    sockets.map(async (s) => {
      const reply: Buffer[] = [];
      s.on('data', (d: Buffer) => reply.push(d));
      while (performance.now() < stopAt) {
        if (!s.write(chunk)) await once(s, 'drain');
      }
      s.end();
      await once(s, 'close');
      return Number(Buffer.concat(reply).readBigUInt64BE(0));
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const bytes = counts.reduce((a, b) => a + b, 0);
  return {
    streams: opts.streams,
    bytes,
    seconds: Math.round(seconds * 100) / 100,
    gbitPerSecond: Math.round(((bytes * 8) / seconds / 1e9) * 100) / 100,
  };
}
