// The byte pump between an application socket and a tunnel stream: two pipes, FIN carried both ways,
// back-pressure by pipe(), and one `done` callback when both directions are over. No per-chunk work
// here: bytes are counted by the sockets themselves (bytesRead/bytesWritten) at close.
//
// A reset or broken pipe on an established connection is a normal ending, not an error worth more than
// a debug line: the callback gets it so the access log can say so.
import type { Duplex } from 'node:stream';
import { constants as h2constants, type Http2Stream } from 'node:http2';

export type PumpDone = (error: Error | undefined) => void;

function isHttp2Stream(s: Duplex): s is Http2Stream {
  // `rstCode` is a getter on Http2Stream's prototype; sockets have nothing of the name.
  return 'rstCode' in s;
}

class Pump {
  #closed = 0;
  #error: Error | undefined = undefined;

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
    a.pipe(b);
    b.pipe(a);
  }

  onError(err: Error): void {
    this.#error ??= err;
    // One side failed: the other cannot complete its half meaningfully; tear both down.
    abort(this.a);
    abort(this.b);
  }

  onCloseA(): void {
    this.#sideClosed(this.a, this.b);
  }

  onCloseB(): void {
    this.#sideClosed(this.b, this.a);
  }

  #sideClosed(closed: Duplex, other: Duplex): void {
    // A side that closed without ending both directions cleanly (reset, RST_STREAM) will never send
    // the rest: the other side must not wait for it.
    if (!cleanlyEnded(closed)) abort(other);
    if (++this.#closed === 2) this.done(this.#error);
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
  else s.destroy();
}

/** Pipes `a` and `b` into each other until both are closed; `done` runs once. */
export function pump(a: Duplex, b: Duplex, done: PumpDone): void {
  new Pump(a, b, done);
}
