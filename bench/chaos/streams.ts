// Long-lived streaming connections: each of `count` slots holds one TCP connection to an echo server and
// sends a short line every `intervalMs`, checking that what comes back is exactly what was sent, in
// order. A connection that ends (FIN or reset) or echoes wrong bytes is recorded with when and how; the
// slot then reconnects, as a streaming client does, so the mesh keeps carrying `count` of them. At the
// end each slot's last connection, if still open, survived, unless its echoes had stopped (stalled).
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { dial, type DialOptions } from '../load/protocols/dial.js';

/** How long a slot waits before reconnecting, and between failed attempts. */
const RECONNECT_PAUSE_MS = 100;
/** Connections opened at once at the start. */
const OPEN_CONCURRENCY = 10;
/**
 * An open connection with lines unechoed and no echo for this many intervals (2 s at least) at the end
 * stalled: far longer than an echo takes, even on a loaded machine.
 */
const STALLED_INTERVALS = 20;
const STALLED_MIN_MS = 2000;

export type StreamEnd =
  /** Still open when the run ended, and still echoing. */
  | 'survived'
  /** Still open when the run ended, but nothing echoed for a while: the path behind it is gone. */
  | 'stalled'
  /** The other side ended it (FIN). */
  | 'fin'
  /** Reset, or another socket error. */
  | 'reset'
  /** Bytes came back that were not the ones sent. */
  | 'mismatch';

export interface StreamConnectionRecord {
  readonly slot: number;
  /** 0 for the slot's first connection, then one more per reconnection. */
  readonly generation: number;
  /** The client's port: what the mesh's logs name the connection by (`src.addr`). */
  readonly localPort: number | null;
  /** Epoch ms. */
  readonly openedAtMs: number;
  /** Epoch ms; null when it survived. */
  readonly closedAtMs: number | null;
  readonly end: StreamEnd;
  /** The socket error, for `reset`. */
  readonly error?: string;
  /** Lines sent and lines echoed back whole. */
  readonly sent: number;
  readonly echoed: number;
  /** Bytes sent whose echo had not come back when it ended. */
  readonly unechoedBytes: number;
  /** The slowest echo of a line on it. */
  readonly maxEchoMs: number;
  /**
   * The longest a line waited: for its echo, or, never echoed, until the connection ended: how long the
   * connection was silently broken, if it was.
   */
  readonly maxWaitMs: number;
  /** Epoch ms of the last line echoed whole; null when none was. */
  readonly lastEchoAtMs: number | null;
}

export interface StreamsResult {
  readonly slots: number;
  readonly intervalMs: number;
  /** First connections of the slots that could not be opened at all. */
  readonly openFailures: number;
  /** Reconnection attempts that failed (the mesh refused or reset them while opening). */
  readonly reconnectFailures: number;
  readonly connections: readonly StreamConnectionRecord[];
}

export interface StreamsOptions extends DialOptions {
  readonly count: number;
  readonly intervalMs: number;
  /** Starts every line (so a capture can look for it). */
  readonly marker: string;
}

interface Sent {
  /** Offset of the line's end in everything sent on the connection. */
  readonly end: number;
  readonly atMs: number;
}

class StreamConnection {
  readonly openedAtMs = Date.now();
  readonly #socket: net.Socket;
  readonly #pending: Buffer[] = [];
  readonly #lines: Sent[] = [];
  #sentBytes = 0;
  #echoedBytes = 0;
  #sent = 0;
  #echoed = 0;
  #maxEchoMs = 0;
  #lastEchoAtMs: number | null = null;
  #seq = 0;
  #timer: NodeJS.Timeout | undefined;
  #record: StreamConnectionRecord | undefined;
  readonly ended: Promise<StreamConnectionRecord>;
  /** Ends it now (the first call decides how it is recorded; `survived` may become `stalled`). */
  readonly finish: (end: StreamEnd, error?: string) => void;

  constructor(
    socket: net.Socket,
    readonly slot: number,
    readonly generation: number,
    readonly options: StreamsOptions,
  ) {
    this.#socket = socket;
    let resolve!: (r: StreamConnectionRecord) => void;
    this.ended = new Promise((r) => (resolve = r));
    const finish = (how: StreamEnd, error?: string): void => {
      if (this.#record !== undefined) return;
      clearInterval(this.#timer);
      const now = Date.now();
      const quietMs = now - (this.#lastEchoAtMs ?? this.openedAtMs);
      const stalled =
        this.#sentBytes > this.#echoedBytes &&
        quietMs >= Math.max(STALLED_MIN_MS, STALLED_INTERVALS * options.intervalMs);
      const end = how === 'survived' && stalled ? 'stalled' : how;
      const oldestWaitMs = this.#lines.length > 0 ? performance.now() - this.#lines[0]!.atMs : 0;
      const open = end === 'survived' || end === 'stalled';
      this.#record = {
        slot,
        generation,
        localPort: socket.localPort ?? null,
        openedAtMs: this.openedAtMs,
        closedAtMs: open ? null : now,
        end,
        ...(error === undefined ? {} : { error }),
        sent: this.#sent,
        echoed: this.#echoed,
        unechoedBytes: this.#sentBytes - this.#echoedBytes,
        maxEchoMs: Math.round(this.#maxEchoMs * 10) / 10,
        maxWaitMs: Math.round(Math.max(this.#maxEchoMs, oldestWaitMs)),
        lastEchoAtMs: this.#lastEchoAtMs,
      };
      resolve(this.#record);
      socket.destroy();
    };
    this.finish = finish;
    socket.on('data', (chunk: Buffer) => {
      if (!this.#check(chunk)) finish('mismatch');
    });
    socket.on('end', () => finish('fin'));
    socket.on('error', (err: NodeJS.ErrnoException) => finish('reset', err.code ?? err.message));
    socket.on('close', () => finish('reset', 'closed'));
    // Slots start spread over one interval, so the lines of all slots do not go out at once.
    const offset = (slot * options.intervalMs) / Math.max(1, options.count);
    setTimeout(() => {
      if (this.#record !== undefined) return;
      this.#send();
      this.#timer = setInterval(() => this.#send(), options.intervalMs);
    }, offset).unref();
  }

  #send(): void {
    const line = Buffer.from(
      `${this.options.marker} stream ${this.slot}.${this.generation} seq ${this.#seq++}\n`,
      'latin1',
    );
    this.#pending.push(line);
    this.#sentBytes += line.length;
    this.#lines.push({ end: this.#sentBytes, atMs: performance.now() });
    this.#sent++;
    this.#socket.write(line);
  }

  /** Compares echoed bytes with what was sent, in order; false on a difference. */
  #check(chunk: Buffer): boolean {
    let at = 0;
    while (at < chunk.length) {
      const expected = this.#pending[0];
      if (expected === undefined) return false;
      const n = Math.min(expected.length, chunk.length - at);
      if (chunk.compare(expected, 0, n, at, at + n) !== 0) return false;
      at += n;
      this.#echoedBytes += n;
      if (n === expected.length) this.#pending.shift();
      else this.#pending[0] = expected.subarray(n);
    }
    const now = performance.now();
    while (this.#lines.length > 0 && this.#lines[0]!.end <= this.#echoedBytes) {
      this.#maxEchoMs = Math.max(this.#maxEchoMs, now - this.#lines.shift()!.atMs);
      this.#echoed++;
      this.#lastEchoAtMs = Date.now();
    }
    return true;
  }
}

/** The running slots; `stop()` ends them and returns every connection they had. */
export class LongLivedStreams {
  readonly #options: StreamsOptions;
  readonly #records: StreamConnectionRecord[] = [];
  readonly #current = new Map<number, StreamConnection>();
  readonly #loops: Promise<void>[] = [];
  #stopped = false;
  #openFailures = 0;
  #reconnectFailures = 0;

  private constructor(options: StreamsOptions) {
    this.#options = options;
  }

  /** Opens the slots' first connections (resolves when each is open or failed), then keeps them. */
  static async start(options: StreamsOptions): Promise<LongLivedStreams> {
    const streams = new LongLivedStreams(options);
    let next = 0;
    const opener = async (): Promise<void> => {
      while (next < options.count) {
        const slot = next++;
        try {
          const socket = await dial(options);
          streams.#loops.push(streams.#keep(slot, new StreamConnection(socket, slot, 0, options)));
        } catch {
          streams.#openFailures++;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(OPEN_CONCURRENCY, options.count) }, opener));
    return streams;
  }

  /** Connections open now. */
  get open(): number {
    return this.#current.size;
  }

  /** Holds slot `slot` open: records each connection's end and opens the next, until stopped. */
  async #keep(slot: number, first: StreamConnection): Promise<void> {
    let conn: StreamConnection | undefined = first;
    let generation = 0;
    while (conn !== undefined) {
      this.#current.set(slot, conn);
      const record = await conn.ended;
      this.#current.delete(slot);
      this.#records.push(record);
      conn = undefined;
      while (!this.#stopped && conn === undefined) {
        await sleep(RECONNECT_PAUSE_MS);
        if (this.#stopped) break;
        try {
          const socket = await dial(this.#options);
          if (this.#stopped) {
            socket.destroy();
            break;
          }
          conn = new StreamConnection(socket, slot, ++generation, this.#options);
        } catch {
          this.#reconnectFailures++;
        }
      }
    }
  }

  async stop(): Promise<StreamsResult> {
    this.#stopped = true;
    for (const conn of this.#current.values()) conn.finish('survived');
    await Promise.all(this.#loops);
    return {
      slots: this.#options.count,
      intervalMs: this.#options.intervalMs,
      openFailures: this.#openFailures,
      reconnectFailures: this.#reconnectFailures,
      connections: [...this.#records].sort((a, b) => a.slot - b.slot || a.generation - b.generation),
    };
  }
}
