// A TCP connection to a port on a pod's loopback, through the API server, as `kubectl port-forward` makes
// it: a WebSocket to `pods/NAME/portforward?ports=N` (subprotocol v4.channel.k8s.io), opened and framed by
// @kubernetes/client-node's PortForward. Each frame starts with its channel byte: channel 0 carries the
// bytes, channel 1 the server's error text; the server's first frame on each channel carries the port
// (2 bytes, little-endian), which PortForward strips. The socket is a Duplex so that an HTTP client runs
// over it as over a TCP socket (http.request's `createConnection`).
//
// Invariants: bytes written before the WebSocket opens wait in `#input` and are sent once it opens; a
// reader that stops reading pauses the WebSocket (and so, through TCP, the API server and the pod's
// port), so nothing buffers without bound here; any text on the error channel ends the socket with that
// text as its error. v4.channel.k8s.io has no way to end one direction alone (v5 does, but the portforward
// endpoint does not speak it), so ending the write side closes the whole forward: fine for HTTP, which
// ends its side only once the response is complete.
import { Duplex, PassThrough, Writable } from 'node:stream';
import { PortForward, type KubeConfig } from '@kubernetes/client-node';

/** Opens a connection to `port` on a pod's loopback. Tests may pass their own. */
export interface PodPortForwarder {
  open(namespace: string, pod: string, port: number): ForwardedSocket;
}

/** A forwarded connection: a byte stream with net.Socket's idle timeout, which the HTTP client sets. */
export interface ForwardedSocket extends Duplex {
  setTimeout(ms: number, callback?: () => void): this;
}

/** Port-forwards through the API server `config` names (the user needs `create` on pods/portforward). */
export class KubernetesPortForwarder implements PodPortForwarder {
  readonly #portForward: PortForward;

  constructor(config: KubeConfig) {
    // disconnectOnErr (the default) closes the WebSocket on a frame for a channel that was not asked for.
    this.#portForward = new PortForward(config);
  }

  open(namespace: string, pod: string, port: number): PortForwardSocket {
    return new PortForwardSocket(this.#portForward, namespace, pod, port);
  }
}

/**
 * The members of the WebSocket PortForward resolves with (the `ws` package's) that this uses; client-node
 * types it through @types/ws, which is not installed, so it arrives untyped.
 */
interface ForwardWebSocket {
  on(event: 'close', listener: () => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  pause(): void;
  resume(): void;
  close(): void;
  terminate(): void;
}

export class PortForwardSocket extends Duplex implements ForwardedSocket {
  readonly namespace: string;
  readonly pod: string;
  readonly port: number;
  /** What PortForward sends on channel 0: our writes. */
  readonly #input = new PassThrough();
  #ws: ForwardWebSocket | undefined = undefined;
  /** The reader is behind: pause the WebSocket as soon as it is there. */
  #paused = false;
  #idleTimer: NodeJS.Timeout | undefined = undefined;

  constructor(portForward: PortForward, namespace: string, pod: string, port: number) {
    // Once the far end is done, so is our side: there is no half-close to wait for (see above).
    super({ allowHalfOpen: false });
    this.namespace = namespace;
    this.pod = pod;
    this.port = port;
    const output = new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        this.#received(chunk);
        done();
      },
    });
    const errors = new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        // The first error frame is empty once its port prefix is stripped; the text follows.
        if (chunk.length > 0) this.destroy(new Error(chunk.toString('utf8').trim()));
        done();
      },
    });
    portForward.portForward(namespace, pod, [port], output, errors, this.#input).then(
      (ws: unknown) => this.#opened(ws as ForwardWebSocket),
      (err: unknown) => this.destroy(refusal(err, port)),
    );
  }

  /** As net.Socket's: emits 'timeout' after `ms` without bytes either way; 0 turns it off. */
  setTimeout(ms: number, callback?: () => void): this {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    if (ms > 0) {
      this.#idleTimer = setTimeout(emitTimeout, ms, this).unref();
      if (callback !== undefined) this.once('timeout', callback);
    } else if (callback !== undefined) this.removeListener('timeout', callback);
    return this;
  }

  #opened(ws: ForwardWebSocket): void {
    if (this.destroyed) {
      ws.terminate();
      return;
    }
    this.#ws = ws;
    ws.on('error', (err) => this.destroy(err));
    ws.on('close', () => this.push(null));
    if (this.#paused) ws.pause();
  }

  #received(chunk: Buffer): void {
    // The first data frame is empty once its port prefix is stripped.
    if (chunk.length === 0 || this.destroyed) return;
    this.#idleTimer?.refresh();
    if (!this.push(chunk)) {
      this.#paused = true;
      this.#ws?.pause();
    }
  }

  override _read(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#ws?.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    this.#idleTimer?.refresh();
    this.#input.write(chunk);
    done();
  }

  override _final(done: (err?: Error | null) => void): void {
    // PortForward closes the WebSocket when its input ends.
    this.#input.end();
    done();
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    this.#input.destroy();
    // A normal end closes politely; an error or an abort does not wait for the server's close frame.
    if (err === null) this.#ws?.close();
    else this.#ws?.terminate();
    done(err);
  }
}

function emitTimeout(socket: PortForwardSocket): void {
  socket.emit('timeout');
}

/**
 * Why the WebSocket did not open. client-node rejects with the `ws` ErrorEvent (`Unexpected server
 * response: 403`), not an Error; 403 means the user may not port-forward.
 */
function refusal(err: unknown, port: number): Error {
  const message =
    err instanceof Error
      ? err.message
      : typeof err === 'object' && err !== null && 'message' in err
        ? String(err.message)
        : String(err);
  const hint = / 403$/.test(message) ? ' (port-forwarding needs create on pods/portforward)' : '';
  return new Error(`port-forward to port ${port} failed: ${message}${hint}`, { cause: err });
}
