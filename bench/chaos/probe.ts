// The outage probe: every `intervalMs` a new connection with one HTTP/1.1 GET (`connection: close`),
// given `timeoutMs` to answer 2xx. Each is independent of the load and of each other, so when the path
// through a node breaks and comes back, the probes show it to within one interval.
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import { formatHostPort } from '../../core/address.js';
import { dial, type DialOptions } from '../load/protocols/dial.js';
import type { LoadErrorKind } from '../load/types.js';
import { newTimeline, outcomeLetter, recordOutcome, type Timeline } from './timeline.js';

export interface ProbeOptions extends DialOptions {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly path: string;
}

export interface ProbeResult {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly sent: number;
  readonly failed: number;
  readonly timeline: Timeline;
}

/** One probe: resolves with its failure kind, or undefined when it was answered 2xx in time. */
export function probeOnce(options: ProbeOptions): Promise<LoadErrorKind | undefined> {
  return new Promise((resolve) => {
    let socket: net.Socket | undefined;
    let settled = false;
    let head = '';
    const settle = (error?: LoadErrorKind): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket?.destroy();
      resolve(error);
    };
    const timer = setTimeout(() => settle('timeout'), options.timeoutMs);
    dial(options).then(
      (s) => {
        socket = s;
        if (settled) return void s.destroy();
        s.on('error', () => settle('reset'));
        s.on('close', () => settle('reset'));
        s.on('data', (chunk: Buffer) => {
          head += chunk.toString('latin1');
          const m = /^HTTP\/1\.[01] (\d{3}) /.exec(head);
          if (m !== null) settle(m[1]!.startsWith('2') ? undefined : 'status');
          else if (head.length > 64 || head.includes('\r\n')) settle('protocol');
        });
        s.write(
          `GET ${options.path} HTTP/1.1\r\nhost: ${formatHostPort(options.target)}\r\nconnection: close\r\n\r\n`,
        );
      },
      () => settle('connect'),
    );
  });
}

export class OutageProbe {
  readonly #options: ProbeOptions;
  readonly #timeline = newTimeline();
  readonly #originMs: number;
  readonly #timer: NodeJS.Timeout;
  readonly #inFlight = new Set<Promise<void>>();
  #sent = 0;
  #failed = 0;

  /** Starts probing now; times are kept as ms after `originEpochMs`. */
  constructor(options: ProbeOptions, originEpochMs: number) {
    this.#options = options;
    this.#originMs = originEpochMs;
    this.#timer = setInterval(() => this.#probe(), options.intervalMs);
  }

  #probe(): void {
    const startEpoch = Date.now();
    const t0 = performance.now();
    this.#sent++;
    const p = probeOnce(this.#options).then((error) => {
      if (error !== undefined) this.#failed++;
      recordOutcome(
        this.#timeline,
        startEpoch - this.#originMs,
        performance.now() - t0,
        outcomeLetter(error, false),
      );
      this.#inFlight.delete(p);
    });
    this.#inFlight.add(p);
  }

  /** Stops probing; waits for the probes in flight (each bounded by its timeout). */
  async stop(): Promise<ProbeResult> {
    clearInterval(this.#timer);
    await Promise.all(this.#inFlight);
    return {
      intervalMs: this.#options.intervalMs,
      timeoutMs: this.#options.timeoutMs,
      sent: this.#sent,
      failed: this.#failed,
      timeline: this.#timeline,
    };
  }
}
