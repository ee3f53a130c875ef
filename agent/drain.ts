// How an agent leaves without failing the connections it carries: it has stopped accepting (a successor
// took over steering, or nothing will) and asked its HBONE peers to move on; from then on the open
// connections end by themselves, or are closed at a quiet moment, or at the deadline.
//
// Closing at a quiet moment: an application connection with no byte either way for `idleMs` is ended
// as a client ends an idle keep-alive connection: what the asking side sends is no longer passed on,
// and the answering side gets the end (FIN, END_STREAM) and closes, which reaches the client as a FIN;
// the client opens a new connection, through the successor, for its next request. (Without the pump's
// help the application-facing socket is ended with a FIN.) A keep-alive connection busy with requests
// is never idle that long; at the deadline those get a last call: chosen in the first gap of
// `lastCallQuietMs` (between two requests, at L4 we cannot see where one ends), held `lastCallHoldMs`
// (the client's next bytes wait unread) to make sure the answer was over, and ended; for up to
// `lastCallMs`; whatever is left is reset. Only a connection whose last bytes went the answer's way (to
// the client, from the server) is ended that way: one quiet while a request is outstanding is left for
// its answer. A request whose bytes cross the end is never delivered and fails on a reused connection
// before any response byte: the case HTTP clients retry for idempotent requests (RFC 9110 §9.2.2).
//
// Reading activity costs nothing on the data path: the sweep compares the sockets' own byte counters.
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { PumpHandle } from '../core/copy.js';
import type { Logger } from '../core/log.js';

export interface DrainTimings {
  /** From the start of the drain until what is left is closed. */
  readonly deadlineMs: number;
  /** A connection this long without a byte either way is ended. */
  readonly idleMs: number;
  /** How often activity is read. */
  readonly sweepMs: number;
  /** After the deadline: a connection this quiet is ended gracefully… */
  readonly lastCallQuietMs: number;
  /** …for this long, reading activity this often; then the rest are reset. */
  readonly lastCallMs: number;
  readonly lastCallSweepMs: number;
  /**
   * A connection chosen at the last call is first held this long (the application's next bytes wait,
   * unread): answer bytes in that time mean the answer was not over (a pause inside it), and it is let
   * go; none, and it is ended. Only for connections whose pump can hold (`AppSocket.exchange`).
   */
  readonly lastCallHoldMs: number;
}

export const DEFAULT_DRAIN_TIMINGS: DrainTimings = {
  deadlineMs: 25_000,
  idleMs: 1000,
  sweepMs: 50,
  // Between two requests of a busy keep-alive connection (a request every 20 ms answered in 2 ms leaves
  // 18 ms): the FIN reaches the client before its next request, which then goes on a new connection.
  lastCallQuietMs: 5,
  lastCallMs: 1000,
  lastCallSweepMs: 2,
  lastCallHoldMs: 20,
};

export interface DrainInputs {
  /**
   * The application-facing sockets of the connections still open (each at most once), with which end
   * of the connection the application is: `client` (a captured client socket: its answers are what the
   * agent writes) or `server` (the socket to a workload: its answers are what the agent reads).
   */
  appSockets(): Iterable<AppSocket>;
  /**
   * What else is still open and must end before the drain does, with no application socket to end:
   * connections still dialling their destination, HBONE sessions their peers have not closed yet (a
   * peer that got our GOAWAY closes its session once its streams end; destroying it earlier would reset
   * a stream that crossed the GOAWAY on the wire).
   */
  pending?(): number;
  readonly log: Logger;
}

export interface DrainReport {
  readonly durationMs: number;
  /** Ended by their own ends during the drain (the agent neither ended nor reset them). */
  readonly endedByThemselves: number;
  /** Ended by the agent after `idleMs` without traffic. */
  readonly closedIdle: number;
  /** Ended gracefully in a quiet moment after the deadline. */
  readonly closedAtLastCall: number;
  /** Reset when the last call ran out (also those ended before whose peer never closed its side). */
  readonly reset: number;
}

export interface AppSocket {
  readonly socket: Socket;
  readonly peer: 'client' | 'server';
  /**
   * The connection's pump, seen from the side that asks (the client, or the stream from it): ending
   * through it stops passing on the asker's bytes and ends the answerer's side, so a request crossing
   * the end is never delivered and an answer still under way is not cut. Without it, the socket is ended
   * with a FIN.
   */
  readonly exchange?: ExchangeControl;
}

export interface ExchangeControl {
  hold(): void;
  release(): void;
  end(): void;
}

/** The drain's view of a pump, from its asking side. */
export function exchangeControl(handle: PumpHandle, asker: Duplex): ExchangeControl {
  return {
    hold: () => handle.hold(asker),
    release: () => handle.release(asker),
    end: () => handle.endAsks(asker),
  };
}

interface Held {
  readonly since: number;
  readonly read: number;
  readonly written: number;
}

interface Seen {
  read: number;
  written: number;
  since: number;
  /** Whether the last bytes seen went the answer's way (server to client), or none went yet. */
  answeredLast: boolean;
}

/** Runs the drain until no application connection is left; `cancel` ends it early (the process exits). */
export class ConnectionDrain {
  readonly #in: DrainInputs;
  readonly #t: DrainTimings;
  readonly #seen = new Map<Socket, Seen>();
  readonly #ended = new WeakSet<Socket>();
  readonly #held = new Map<Socket, Held>();
  #closedIdle = 0;
  #closedAtLastCall = 0;
  #reset = 0;
  /** Every connection the drain saw; those it never ended or reset ended by themselves. */
  readonly #all = new Set<Socket>();
  readonly #touched = new Set<Socket>();

  constructor(inputs: DrainInputs, timings: DrainTimings = DEFAULT_DRAIN_TIMINGS) {
    this.#in = inputs;
    this.#t = timings;
  }

  async run(): Promise<DrainReport> {
    const start = Date.now();
    const deadline = start + this.#t.deadlineMs;
    while (Date.now() < deadline && this.#sweep(this.#t.idleMs) + this.#pending() > 0)
      await sleep(this.#t.sweepMs);
    const lastCallEnd = Date.now() + this.#t.lastCallMs;
    let left = this.#sweep(this.#t.lastCallQuietMs, true) + this.#pending();
    while (left > 0 && Date.now() < lastCallEnd) {
      await sleep(this.#t.lastCallSweepMs);
      left = this.#sweep(this.#t.lastCallQuietMs, true) + this.#pending();
    }
    for (const { socket } of this.#in.appSockets()) {
      if (socket.destroyed) continue;
      this.#reset++;
      this.#touched.add(socket);
      socket.resetAndDestroy();
    }
    const report: DrainReport = {
      durationMs: Date.now() - start,
      endedByThemselves: [...this.#all].filter((s) => !this.#touched.has(s)).length,
      closedIdle: this.#closedIdle,
      closedAtLastCall: this.#closedAtLastCall,
      reset: this.#reset,
    };
    this.#in.log.info({ ...report }, 'drain finished');
    return report;
  }

  #pending(): number {
    return this.#in.pending?.() ?? 0;
  }

  /** Ends the sockets quiet for `quietMs`; returns how many connections are still open. */
  #sweep(quietMs: number, lastCall = false): number {
    const now = Date.now();
    let open = 0;
    const present = new Set<Socket>();
    for (const { socket, peer, exchange } of this.#in.appSockets()) {
      if (socket.destroyed) continue;
      open++;
      present.add(socket);
      this.#all.add(socket);
      if (this.#ended.has(socket)) continue;
      const read = socket.bytesRead;
      const written = socket.bytesWritten;
      const held = this.#held.get(socket);
      if (held && exchange) {
        if (held.read !== read || held.written !== written) {
          // Bytes while held: the answer was not over. Let go; it counts as busy from now.
          this.#held.delete(socket);
          exchange.release();
          this.#seen.set(socket, { read, written, since: now, answeredLast: true });
          continue;
        }
        if (now - held.since < this.#t.lastCallHoldMs) continue;
        this.#held.delete(socket);
        this.#end(socket, exchange, lastCall);
        continue;
      }
      const seen = this.#seen.get(socket);
      if (!seen) {
        this.#seen.set(socket, { read, written, since: now, answeredLast: true });
        continue;
      }
      if (seen.read !== read || seen.written !== written) {
        // Answers are what the agent writes to a client and reads from a server.
        const answered = peer === 'client' ? written !== seen.written : read !== seen.read;
        const asked = peer === 'client' ? read !== seen.read : written !== seen.written;
        seen.answeredLast = answered && !asked ? true : asked && !answered ? false : seen.answeredLast;
        seen.read = read;
        seen.written = written;
        seen.since = now;
        continue;
      }
      // A quiet connection whose last bytes were a question (a request still being answered, a long
      // poll) is not ended: that would lose the answer. It waits for its answer, or the final reset.
      if (now - seen.since < quietMs || !seen.answeredLast) continue;
      if (lastCall && exchange) {
        // A few milliseconds of quiet may be a pause inside an answer: hold first, end if it stays quiet.
        exchange.hold();
        this.#held.set(socket, { since: now, read, written });
        continue;
      }
      this.#end(socket, exchange, lastCall);
    }
    for (const socket of this.#seen.keys()) if (!present.has(socket)) this.#seen.delete(socket);
    for (const socket of this.#held.keys()) if (!present.has(socket)) this.#held.delete(socket);
    return open;
  }

  #end(socket: Socket, exchange: ExchangeControl | undefined, lastCall: boolean): void {
    this.#ended.add(socket);
    this.#touched.add(socket);
    if (lastCall) this.#closedAtLastCall++;
    else this.#closedIdle++;
    if (exchange) exchange.end();
    else socket.end();
    // A peer that never closes its side must not hold the drain: it is reset at the end.
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
