// The byte pump between the two ends of a proxied connection (the agent's application socket and tunnel
// stream; the waypoint's tunnel and upstream): two pipes, FIN carried both ways (and a stream reset as
// a socket reset), back-pressure by pipe(), and one `done` callback when both directions are over. No
// per-chunk work here: the agent counts bytes on its sockets (bytesRead/bytesWritten) at close.
//
// A reset or broken pipe on an established connection is a normal ending; the callback gets the
// error so the access log can say how the connection ended.
import type { Duplex } from 'node:stream';
import { Socket } from 'node:net';
import { constants as h2constants, type Http2Stream } from 'node:http2';

export type PumpDone = (error: Error | undefined) => void;

/** What a drain may do to a pumped connection (agent/drain.ts). */
export interface PumpHandle {
  /** Stops reading what `side` sends (it waits in the kernel, or in its peer's window) until release. */
  hold(side: Duplex): void;
  release(side: Duplex): void;
  /**
   * Ends the connection between two exchanges, as a client closing an idle keep-alive connection does:
   * what `asker` sends from now on is read and dropped, never passed on; the other side gets the end
   * (FIN, END_STREAM) and closes; its close reaches `asker` the usual way, after any answer still under
   * way. So a request that crosses the end is never delivered (the client may safely send it again),
   * and an answer is never cut by it.
   */
  endAsks(asker: Duplex): void;
}

function isHttp2Stream(s: Duplex): s is Http2Stream {
  // `rstCode` is a getter on Http2Stream's prototype; sockets have nothing of the name.
  return 'rstCode' in s;
}

/** How long one side may stay open after the other closed cleanly. */
const LINGER_MS = 10_000;
/**
 * An HTTP/2 stream destroyed along with its session does not always emit 'close' (Node 20); after this
 * long a destroyed side counts as closed, so `done` cannot be lost.
 */
const DESTROYED_GRACE_MS = 1_000;

class Pump implements PumpHandle {
  #closedA = false;
  #closedB = false;
  #finished = false;
  #error: Error | undefined = undefined;
  #timer: NodeJS.Timeout | undefined = undefined;
  #asksEnded = false;

  constructor(
    readonly a: Duplex,
    readonly b: Duplex,
    readonly done: PumpDone,
  ) {
    this.onCloseA = this.onCloseA.bind(this);
    this.onCloseB = this.onCloseB.bind(this);
    this.onError = this.onError.bind(this);
    a.once('close', this.onCloseA);
    b.once('close', this.onCloseB);
    a.on('error', this.onError);
    b.on('error', this.onError);
    // An HTTP/2 stream's readable side also ends when the peer resets the stream (Node pushes the end
    // after RST_STREAM): its end is passed on by `#streamEnded`, which tells the two apart.
    const aIsStream = isHttp2Stream(a);
    const bIsStream = isHttp2Stream(b);
    a.pipe(b, { end: !aIsStream });
    b.pipe(a, { end: !bIsStream });
    if (aIsStream) a.once('end', () => this.#streamEnded(a, b));
    if (bIsStream) b.once('end', () => this.#streamEnded(b, a));
    // A side can be over before the pump starts, its 'close' already emitted: a tunnel answered 200 and
    // reset in one read closes its stream on the next tick, before the code awaiting the answer runs.
    if (a.destroyed || b.destroyed) process.nextTick(() => this.#overBeforeStart());
  }

  /**
   * A side that was over before the pump started carried nothing to the other, which is reset, whatever
   * the code of its end: a peer's RST_STREAM(NO_ERROR) cannot be told from a clean close once the
   * stream is gone (Node ends the readable side of both), and a FIN after nothing would make a refused
   * connection look like an empty answer.
   */
  #overBeforeStart(): void {
    if (this.a.destroyed && !this.#closedA) {
      this.#closedA = true;
      abort(this.b);
    }
    if (this.b.destroyed && !this.#closedB) {
      this.#closedB = true;
      abort(this.a);
    }
    if (this.#closedA && this.#closedB) this.#finish();
    else this.#armGrace();
  }

  /** The peer ended the stream: END_STREAM is a FIN for the other side, RST_STREAM a reset. */
  #streamEnded(stream: Http2Stream, other: Duplex): void {
    if (stream.rstCode !== undefined && stream.rstCode !== h2constants.NGHTTP2_NO_ERROR) {
      abort(other);
      this.#armGrace();
    } else other.end();
  }

  onError(err: Error): void {
    this.#error ??= err;
    // One side failed: the other cannot complete its half meaningfully; tear both down.
    abort(this.a);
    abort(this.b);
    this.#armGrace();
  }

  onCloseA(): void {
    if (this.#closedA) return;
    this.#closedA = true;
    this.#sideClosed(this.a, this.b);
  }

  onCloseB(): void {
    if (this.#closedB) return;
    this.#closedB = true;
    this.#sideClosed(this.b, this.a);
  }

  #sideClosed(closed: Duplex, other: Duplex): void {
    if (this.#closedA && this.#closedB) return this.#finish();
    // A side that closed without ending both directions cleanly (reset, RST_STREAM) will never send
    // the rest: the other side must not wait for it. After a clean close the other side has its FIN and
    // normally closes by itself; LINGER_MS bounds the wait, so a peer that never finishes cannot pin
    // a connection (and its registry entry) forever.
    if (!cleanlyEnded(closed)) {
      abort(other);
      this.#armGrace();
    } else {
      clearTimeout(this.#timer);
      this.#timer = setTimeout(this.#expire.bind(this), LINGER_MS).unref();
    }
  }

  hold(side: Duplex): void {
    side.pause();
  }

  release(side: Duplex): void {
    if (!this.#asksEnded) side.resume();
  }

  endAsks(asker: Duplex): void {
    if (this.#asksEnded || (asker !== this.a && asker !== this.b)) return;
    this.#asksEnded = true;
    const other = asker === this.a ? this.b : this.a;
    asker.unpipe(other);
    asker.on('data', dropChunk);
    asker.resume();
    if (!other.destroyed && !other.writableEnded) other.end();
  }

  #armGrace(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(this.#expire.bind(this), DESTROYED_GRACE_MS).unref();
  }

  /** Time is up for whatever is still open: abort it, and count destroyed sides as closed. */
  #expire(): void {
    abort(this.a);
    abort(this.b);
    if (!this.#closedA && this.a.destroyed) this.#closedA = true;
    if (!this.#closedB && this.b.destroyed) this.#closedB = true;
    if (this.#closedA && this.#closedB) this.#finish();
    else this.#armGrace();
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    clearTimeout(this.#timer);
    this.done(this.#error);
  }
}

/** True when a stream both received and sent its end (FIN / END_STREAM) before closing. */
function cleanlyEnded(s: Duplex): boolean {
  if (isHttp2Stream(s) && s.rstCode !== undefined && s.rstCode !== h2constants.NGHTTP2_NO_ERROR) return false;
  return s.readableEnded && s.writableFinished;
}

/**
 * Tears down one side: RST_STREAM(CANCEL) for an HTTP/2 stream (never `destroy()`, which on Node 20
 * can spin in native code once the peer has reset another stream of the session), destroy for a socket.
 */
export function abort(s: Duplex): void {
  if (s.destroyed) return;
  if (isHttp2Stream(s)) s.close(h2constants.NGHTTP2_CANCEL);
  // A reset, not a FIN: the application must not take a truncated stream for a complete one.
  else if (s instanceof Socket) s.resetAndDestroy();
  else s.destroy();
}

function dropChunk(): void {}

/** Pipes `a` and `b` into each other until both are closed; `done` runs once. */
export function pump(a: Duplex, b: Duplex, done: PumpDone): PumpHandle {
  return new Pump(a, b, done);
}
