// The tunnel stream as the "socket" Node's HTTP servers read and write. Node's HTTP/1 server writes its
// response head as a latin1 string through writev; an HTTP/2 stream passes string chunks to the native
// layer, and on Node 20 the bytes of such a head arrive corrupted (seen in the lab: the status line
// replaced by garbage). This adapter hands the stream Buffers only, one write at a time, and keeps
// backpressure both ways; it also answers the socket methods the HTTP servers may call. It counts the
// bytes each way (a drain tells an idle connection from a busy one by them).
import { Duplex } from 'node:stream';

export class TunnelSocket extends Duplex {
  readonly #inner: Duplex;
  /** Bytes read from the tunnel, and written to it. */
  bytesRead = 0;
  bytesWritten = 0;

  constructor(inner: Duplex) {
    // decodeStrings: every chunk reaching _write is a Buffer, whatever the caller wrote.
    super({ allowHalfOpen: true, decodeStrings: true });
    this.#inner = inner;
    inner.on('data', (chunk: Buffer) => {
      this.bytesRead += chunk.length;
      if (!this.push(chunk)) inner.pause();
    });
    inner.once('end', () => this.push(null));
    inner.once('error', (err) => this.destroy(err));
    inner.once('close', () => {
      if (!this.destroyed) this.destroy();
    });
  }

  override _read(): void {
    this.#inner.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.bytesWritten += chunk.length;
    if (this.#inner.write(chunk)) callback();
    else this.#inner.once('drain', () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#inner.end(() => callback());
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#inner.destroy(error ?? undefined);
    callback(error);
  }

  // What Node's HTTP servers call on a net.Socket; a tunnel stream has no such knobs.
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  setTimeout(_ms: number, _callback?: () => void): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
}
