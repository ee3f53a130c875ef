// The `/flows` readers `weft bench observe` attaches to an agent's admin socket, one per kind of observer:
//
// - stalled: sends `GET /flows?follow=1&last=0`, reads the response head, then never reads again (the
//   socket is paused), like an observer stuck on a full terminal; released at the end to count what it
//   was told it lost;
// - fast: reads and discards everything as it comes;
// - slow: reads at about SLOW_READER_BYTES_PER_SECOND (64 KiB/s), in reads of SLOW_READ_BYTES.
//
// They speak HTTP/1.1 over a raw socket rather than through node:http, so that "never reads" means the
// socket's own reads stop: node:http would keep reading into its own buffers first. Reads go into one
// fixed buffer per client (`onread`), so a read is at most that buffer's size and the slow reader's pace
// is real. The body is chunked, and the agent writes whole lines only (several joined per write, never
// one split across two: core/flows/ring.ts), so every chunk holds whole lines and splitting the raw
// bytes at '\n' yields the JSON lines whole, with the chunk framing (`SIZE\r`, `\r`) as separate pieces
// that start with no '{'.
import net from 'node:net';

export type FlowReaderKind = 'stalled' | 'fast' | 'slow';

/**
 * Far slower than an agent under this bench's load writes (~1.5 MB/s of events per reader), yet fast
 * enough to drain its socket's buffers (~125 KB of lines) a few times per run: the agent writes to a
 * reader again only once the kernel can take more (a Unix socket: when its send buffer is three-quarters
 * empty), so a reader at ~4 KiB/s would not get there within a 12 s run and would be a stalled reader
 * that reads a little. At this pace the agent resumes the reader every ~2 s, tells it what it lost and
 * writes until the socket is full again: the skip-and-resume path, under load.
 */
export const SLOW_READER_BYTES_PER_SECOND = 64 * 1024;
/** One read of the slow reader: small, so it reads steadily rather than in a few large gulps. */
export const SLOW_READ_BYTES = 4 * 1024;
/** One read of the others: as large as libuv's own default read. */
const READ_BYTES = 64 * 1024;
const HEAD_TIMEOUT_MS = 5_000;
const MAX_HEAD_BYTES = 16 * 1024;

const EVENT_PREFIX = '{"seq":';
const LOST_PREFIX = '{"type":"lost"';

/** What one reader received. */
export interface FlowReaderStats {
  readonly kind: FlowReaderKind;
  /** Body bytes received, in whole lines (chunk framing included). */
  readonly bytes: number;
  readonly events: number;
  /** `lost` lines received, and the events they said were lost. */
  readonly lostLines: number;
  readonly lost: number;
  /**
   * Body bytes received before the first `lost` line: for a stalled reader, what sat in buffers for it
   * (the agent's writable buffer and the socket's kernel buffers) while it did not read. Null: no loss.
   */
  readonly bytesBeforeLost: number | null;
  readonly eventsBeforeLost: number | null;
  /**
   * The first `lost` count equals the gap in sequence numbers around it (the last event before it, the
   * first after): the events were skipped, not delivered late. Null when there was no event on a side.
   */
  readonly lostMatchesSeqGap: boolean | null;
  /** Why the stream ended before the bench closed it, if it did. */
  readonly endedEarly?: string;
}

/** One `/flows` reader on a Unix socket. */
export class FlowStreamClient {
  readonly kind: FlowReaderKind;
  readonly #socket: net.Socket;
  #head = '';
  #headDone = false;
  #pending = '';
  #bytes = 0;
  #events = 0;
  #lostLines = 0;
  #lost = 0;
  #bytesBeforeLost: number | null = null;
  #eventsBeforeLost: number | null = null;
  #lastSeq: number | undefined;
  #seqBeforeLost: number | undefined;
  #firstLostCount = 0;
  #seqAfterLost: number | undefined;
  #closedByUs = false;
  #endedEarly: string | undefined;
  /** Slow reader: when its next read may happen (performance.now() ms). */
  #nextReadAt = 0;
  #paceTimer: NodeJS.Timeout | undefined;
  readonly #waiters = new Set<() => void>();
  /** Settles `open` once the response head arrived (or could not be read). */
  #onHead: (err?: Error) => void = () => {};

  private constructor(kind: FlowReaderKind, socket: net.Socket) {
    this.kind = kind;
    this.#socket = socket;
  }

  /** Connects to `socketPath`, asks for `path`, and resolves once the agent answered 200. */
  static open(socketPath: string, path: string, kind: FlowReaderKind): Promise<FlowStreamClient> {
    return new Promise((resolve, reject) => {
      const fail = (err: Error): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      const buffer = Buffer.alloc(kind === 'slow' ? SLOW_READ_BYTES : READ_BYTES);
      // The read callback may only run once connected, by when `client` is set.
      const socket: net.Socket = net.connect({
        path: socketPath,
        onread: { buffer, callback: (n) => client.#onRead(buffer.subarray(0, n)) },
      });
      const client = new FlowStreamClient(kind, socket);
      const timer = setTimeout(
        () => fail(new Error(`${socketPath}: no response head within ${HEAD_TIMEOUT_MS} ms`)),
        HEAD_TIMEOUT_MS,
      );
      client.#onHead = (err) => {
        if (err) return fail(err);
        clearTimeout(timer);
        resolve(client);
      };
      socket.on('connect', () =>
        socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`),
      );
      socket.on('error', (err) => {
        if (!client.#headDone) return fail(new Error(`${socketPath}: ${err.message}`, { cause: err }));
        client.#endedEarly ??= err.message;
      });
      socket.on('close', () => {
        clearTimeout(client.#paceTimer);
        if (!client.#headDone) return fail(new Error(`${socketPath}: closed before the response head`));
        if (!client.#closedByUs) client.#endedEarly ??= 'the agent closed the stream';
        for (const w of client.#waiters) w();
      });
    });
  }

  /** The socket's read callback; returning false pauses the socket (no more reads until resume). */
  #onRead(chunk: Buffer): boolean {
    if (!this.#headDone) {
      this.#head += chunk.toString('latin1');
      const end = this.#head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (this.#head.length > MAX_HEAD_BYTES) this.#onHead(new Error('a response head over 16 KiB'));
        return true;
      }
      const status = this.#head.slice(0, this.#head.indexOf('\r\n'));
      if (!/^HTTP\/1\.1 200 /.test(status)) {
        this.#onHead(new Error(`${status}: ${this.#head.slice(end + 4, end + 400).trim()}`));
        return false;
      }
      this.#headDone = true;
      const rest = this.#head.slice(end + 4);
      this.#head = '';
      this.#consume(rest);
      this.#onHead();
      // A stalled reader reads nothing more from here on, until released.
      return this.kind !== 'stalled' && this.#pace(chunk.length);
    }
    this.#consume(chunk.toString('latin1'));
    for (const w of this.#waiters) w();
    return this.#pace(chunk.length);
  }

  /** Slow reader: pause until the read just done is paid for at the reader's rate. */
  #pace(bytes: number): boolean {
    if (this.kind !== 'slow' || this.#closedByUs) return true;
    const now = performance.now();
    this.#nextReadAt = Math.max(this.#nextReadAt, now) + (bytes * 1000) / SLOW_READER_BYTES_PER_SECOND;
    this.#paceTimer = setTimeout(() => this.#socket.resume(), this.#nextReadAt - now);
    return false;
  }

  #consume(text: string): void {
    this.#pending += text;
    let start = 0;
    let nl: number;
    while ((nl = this.#pending.indexOf('\n', start)) >= 0) {
      this.#line(this.#pending.slice(start, nl));
      this.#bytes += nl + 1 - start;
      start = nl + 1;
    }
    this.#pending = this.#pending.slice(start);
  }

  #line(piece: string): void {
    if (piece.startsWith(EVENT_PREFIX)) {
      this.#events++;
      const seq = Number.parseInt(piece.slice(EVENT_PREFIX.length, piece.indexOf(',')), 10);
      if (this.#lostLines > 0 && this.#seqAfterLost === undefined) this.#seqAfterLost = seq;
      this.#lastSeq = seq;
    } else if (piece.startsWith(LOST_PREFIX)) {
      const count = (JSON.parse(piece) as { count: number }).count;
      if (this.#lostLines === 0) {
        this.#bytesBeforeLost = this.#bytes;
        this.#eventsBeforeLost = this.#events;
        this.#seqBeforeLost = this.#lastSeq;
        this.#firstLostCount = count;
      }
      this.#lostLines++;
      this.#lost += count;
    }
  }

  /**
   * Resolves true once `done(stats)` holds after some data arrived, false if the stream closed or
   * `timeoutMs` passed first.
   */
  until(done: (stats: FlowReaderStats) => boolean, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const finish = (ok: boolean): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(ok);
      };
      const check = (): void => {
        if (done(this.stats())) finish(true);
        else if (this.#socket.destroyed) finish(false);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      this.#waiters.add(check);
      check();
    });
  }

  /**
   * A stalled reader starts reading: resolves once it has been told what it lost and has seen the event
   * after the gap, or after `timeoutMs` (then it was told of no loss).
   */
  async release(timeoutMs: number): Promise<void> {
    this.#socket.resume();
    await this.until(() => this.#seqAfterLost !== undefined, timeoutMs);
  }

  close(): void {
    this.#closedByUs = true;
    clearTimeout(this.#paceTimer);
    this.#socket.destroy();
  }

  stats(): FlowReaderStats {
    const matches =
      this.#lostLines === 0 || this.#seqBeforeLost === undefined || this.#seqAfterLost === undefined
        ? null
        : this.#seqAfterLost - this.#seqBeforeLost - 1 === this.#firstLostCount;
    return {
      kind: this.kind,
      bytes: this.#bytes,
      events: this.#events,
      lostLines: this.#lostLines,
      lost: this.#lost,
      bytesBeforeLost: this.#bytesBeforeLost,
      eventsBeforeLost: this.#eventsBeforeLost,
      lostMatchesSeqGap: matches,
      ...(this.#endedEarly !== undefined && { endedEarly: this.#endedEarly }),
    };
  }
}
