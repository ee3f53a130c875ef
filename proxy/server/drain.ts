// How a waypoint leaves without failing a request: on SIGTERM (a restart, an upgrade, a scale-down) it
// stops accepting, asks its HBONE peers to open their next tunnels elsewhere, ends the connections inside
// its tunnels where each protocol allows, lets requests in flight finish, and at a deadline resets what
// is left. Istio's waypoint (Envoy) drains the same way; being L7-aware, the waypoint can end most
// connections between two requests, where the client expects it, instead of at the deadline.
//
// The steps (the HBONE server and the tunnel dispatcher carry them out):
//   1. The HBONE listener closes. With a successor on the same port (SO_REUSEPORT, proxy/listeners.ts)
//      new connections go to it; with net.ipv4.tcp_migrate_req=1 so do the ones queued on ours.
//   2. GOAWAY naming the highest stream id on every HBONE session (sessions set up later get theirs),
//      the final GOAWAY a second later (tunnel/goaway.ts): peers open new tunnels elsewhere, and no
//      CONNECT already on the wire is refused. A session closes once its tunnels have ended.
//   3. Inside the tunnels: an HTTP/1 connection answers its next response with `connection: close`
//      and ends; one that has answered everything and carried nothing for `idleMs` is ended as an idle
//      keep-alive connection is (a FIN; the client opens a new one for its next request). An HTTP/2
//      session gets the same two GOAWAYs; its open streams finish. TCP and upgraded (WebSocket) tunnels
//      run until they end.
//   4. At `deadlineMs`, HTTP/1 connections with nothing in flight are ended; every other tunnel is reset.
//
// The residual risk is HTTP/1.1's own: a client that sends a request on an idle connection at the very
// moment it is ended (RFC 9112 §9.3.1 lets it retry an idempotent one). A connection in steady use is
// never idle for `idleMs`, so it is always ended after a response that said so.
import type { Logger } from '../../core/log.js';
import { noTunnels, type SweepResult, type TunnelCounts } from './dispatch.js';

export interface DrainTimings {
  /** From the start of the drain until what is left is reset. */
  readonly deadlineMs: number;
  /** An HTTP/1 connection with nothing in flight and no byte either way for this long is ended. */
  readonly idleMs: number;
  /** How often connections are looked at. */
  readonly sweepMs: number;
}

/** Within Kubernetes' default 30 s termination grace, with time left to close after the drain. */
export const DEFAULT_DRAIN_TIMINGS: DrainTimings = { deadlineMs: 25_000, idleMs: 1000, sweepMs: 50 };

/** What the drain needs of the HBONE server. */
export interface DrainableHbone {
  /** Stops accepting and sends GOAWAY (steps 1 and 2). */
  drain(): void;
  readonly sessionCount: number;
}

/** What the drain needs of the tunnel dispatcher. */
export interface DrainableTunnels {
  drain(): void;
  sweep(idleMs: number, now?: number): SweepResult;
  resetAll(): { reset: TunnelCounts; requestsCut: number };
  readonly openTunnels: number;
  openByKind(): TunnelCounts;
  drainCounts(): { closedAfterResponse: number; closedIdle: number; http2GoAways: number };
}

export interface DrainInputs {
  readonly hbone: DrainableHbone;
  readonly tunnels: DrainableTunnels;
  readonly log: Logger;
}

export interface DrainReport {
  readonly durationMs: number;
  /** Tunnels open when the drain began, by what they carried. */
  readonly openAtStart: TunnelCounts;
  readonly sessionsAtStart: number;
  /** HTTP/1 connections ended after a response that said `connection: close`. */
  readonly closedAfterResponse: number;
  /** HTTP/1 connections ended while idle (before or at the deadline). */
  readonly closedIdle: number;
  /** HTTP/2 sessions inside tunnels that were sent GOAWAY. */
  readonly http2GoAways: number;
  /** Tunnels reset at the deadline, by what they carried (all zero when everything ended in time). */
  readonly resetAtDeadline: TunnelCounts;
  /** Requests being answered on the tunnels reset at the deadline. */
  readonly requestsCut: number;
}

export class WaypointDrain {
  readonly #in: DrainInputs;
  readonly #t: DrainTimings;

  constructor(inputs: DrainInputs, timings: DrainTimings = DEFAULT_DRAIN_TIMINGS) {
    this.#in = inputs;
    this.#t = timings;
  }

  /** Runs the drain to its end: nothing left open, or the deadline. */
  async run(): Promise<DrainReport> {
    const { hbone, tunnels, log } = this.#in;
    const start = Date.now();
    const openAtStart = tunnels.openByKind();
    const sessionsAtStart = hbone.sessionCount;
    log.info(
      { tunnels: openAtStart, sessions: sessionsAtStart, deadline_ms: this.#t.deadlineMs },
      'drain started',
    );
    hbone.drain();
    tunnels.drain();
    const deadline = start + this.#t.deadlineMs;
    // Done when no tunnel is open and every peer has closed its session (a CONNECT that crossed our
    // GOAWAY may still arrive until it has).
    for (;;) {
      const now = Date.now();
      const { open } = tunnels.sweep(this.#t.idleMs, now);
      if ((open === 0 && hbone.sessionCount === 0) || now >= deadline) break;
      await sleep(Math.min(this.#t.sweepMs, Math.max(1, deadline - now)));
    }
    const { reset, requestsCut } =
      tunnels.openTunnels > 0 ? tunnels.resetAll() : { reset: noTunnels(), requestsCut: 0 };
    const report: DrainReport = {
      durationMs: Date.now() - start,
      openAtStart,
      sessionsAtStart,
      ...tunnels.drainCounts(),
      resetAtDeadline: reset,
      requestsCut,
    };
    const resetTotal = Object.values(reset).reduce((a, b) => a + b, 0);
    if (resetTotal > 0) log.warn({ ...report }, 'drain finished at the deadline; the rest was reset');
    else log.info({ ...report }, 'drain finished');
    return report;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
