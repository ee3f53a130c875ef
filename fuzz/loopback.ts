// The client side of the server targets, on loopback: raw TCP and raw TLS connections that write a
// fuzzed input and read until the server closes or goes quiet, HBONE sessions for control requests,
// an echo backend, and socket sets that tell when they are empty (the leak checks).
import { EventEmitter, once } from 'node:events';
import http2, { type ClientHttp2Session } from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { ALPN_H2 } from '../core/hbone/settings.js';
import { expectIdentity, tlsOptionsFor } from '../core/hbone/tls.js';
import type { WorkloadCertificate } from '../core/identity/manager.js';

/** After the input is written, the server has this long without sending anything before we hang up. */
export const QUIET_MS = 100;
/** However chatty the server, one exchange ends after this. */
export const EXCHANGE_MAX_MS = 3_000;

/** Sockets that are open now; `whenAtMost(n)` resolves once no more than n are. */
export class SocketSet extends EventEmitter {
  readonly #sockets = new Set<net.Socket>();
  total = 0;

  add(socket: net.Socket): void {
    this.#sockets.add(socket);
    this.total++;
    socket.once('close', () => {
      this.#sockets.delete(socket);
      this.emit('change');
    });
  }

  get size(): number {
    return this.#sockets.size;
  }

  /** Ends every socket still open (at shutdown: a socket left open keeps the process alive). */
  destroyAll(): void {
    for (const socket of this.#sockets) socket.destroy();
  }

  /** Resolves when at most `n` are open; rejects naming `what` after `timeoutMs`. */
  async whenAtMost(n: number, timeoutMs: number, what: string): Promise<void> {
    if (this.size <= n) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('change', check);
        reject(new Error(`${this.size} ${what} still open after ${timeoutMs} ms (expected at most ${n})`));
      }, timeoutMs);
      const check = () => {
        if (this.size > n) return;
        clearTimeout(timer);
        this.off('change', check);
        resolve();
      };
      this.on('change', check);
    });
  }
}

/** A TCP server that sends back what it receives; counts its connections. */
export async function startEchoServer(): Promise<{ server: net.Server; port: number; sockets: SocketSet }> {
  const sockets = new SocketSet();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.pipe(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as net.AddressInfo).port, sockets };
}

/** What the server did with one input. */
export interface Exchange {
  readonly received: Buffer;
  /** The server closed (or reset) the connection before we hung up. */
  readonly closedByServer: boolean;
}

/**
 * Writes `bytes` on a connected socket and reads until the server closes, `done` says what it sent is
 * a complete answer, the server stays quiet for QUIET_MS, or EXCHANGE_MAX_MS pass; then destroys the
 * socket.
 */
export function exchange(
  socket: net.Socket,
  bytes: Uint8Array,
  done: (received: Buffer) => boolean = () => false,
): Promise<Exchange> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let quiet: NodeJS.Timeout | undefined;
    const finish = (closedByServer: boolean) => {
      clearTimeout(quiet);
      clearTimeout(hard);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.destroy();
      resolve({ received: Buffer.concat(chunks), closedByServer });
    };
    const rearm = () => {
      clearTimeout(quiet);
      quiet = setTimeout(() => finish(false), QUIET_MS);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      if (done(Buffer.concat(chunks))) finish(false);
      else rearm();
    };
    const onClose = () => finish(true);
    const hard = setTimeout(() => finish(false), EXCHANGE_MAX_MS);
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.on('error', () => undefined);
    socket.write(bytes, () => rearm());
  });
}

export async function connectTcp(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await once(socket, 'connect');
  return socket;
}

/** mTLS with `cert`, ALPN h2, the server's certificate checked for `serverId`. */
export async function connectTls(
  port: number,
  cert: WorkloadCertificate,
  serverId: string,
): Promise<tls.TLSSocket> {
  const socket = tls.connect({
    ...tlsOptionsFor(cert),
    host: '127.0.0.1',
    port,
    ALPNProtocols: [ALPN_H2],
    rejectUnauthorized: true,
    checkServerIdentity: expectIdentity(serverId),
  });
  socket.setNoDelay(true);
  await once(socket, 'secureConnect');
  return socket;
}

/** An HBONE client session over a fresh mTLS connection; resolves on the server's SETTINGS. */
export async function openSession(
  port: number,
  cert: WorkloadCertificate,
  serverId: string,
): Promise<ClientHttp2Session> {
  const socket = await connectTls(port, cert, serverId);
  const session = http2.connect(`https://127.0.0.1:${port}`, { createConnection: () => socket });
  session.on('error', () => undefined);
  await once(session, 'remoteSettings');
  return session;
}

/** The status of a CONNECT, or what ended the stream instead. */
export type ConnectAnswer =
  | { readonly kind: 'status'; readonly status: number; readonly echoed?: string }
  | { readonly kind: 'reset'; readonly reason: string };

/**
 * Sends a request with `headers` on `session`; on 200 writes `body` and reads the tunnel until it ends
 * (the echo backend returns the body). Answers within EXCHANGE_MAX_MS or reports a reset.
 *
 * A finished stream is left to close by itself: resetting streams (RST_STREAM) counts against the
 * server's rapid-reset limit (nghttp2 allows a burst of 1000, then 33 a second, per session), and the
 * long-lived control session would be closed for it.
 */
export function request(
  session: ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body: string,
): Promise<ConnectAnswer> {
  return new Promise((resolve) => {
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request(headers, { endStream: false });
    } catch (err) {
      // Node's client refuses to send it (invalid header name or value): nothing reached the server.
      resolve({ kind: 'reset', reason: `not sent: ${(err as Error).message}` });
      return;
    }
    const chunks: Buffer[] = [];
    let status: number | undefined;
    let settled = false;
    const done = (answer: ConnectAnswer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.off('error', onSessionError);
      if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
      resolve(answer);
    };
    const answer = (): ConnectAnswer =>
      status === undefined
        ? { kind: 'reset', reason: `closed with code ${stream.rstCode ?? 'none'}` }
        : { kind: 'status', status, echoed: Buffer.concat(chunks).toString() };
    // Node reports a header it refuses to send on the session, and leaves the stream pending.
    const onSessionError = (err: Error) => done({ kind: 'reset', reason: `not sent: ${err.message}` });
    session.once('error', onSessionError);
    const timer = setTimeout(
      () => done(status === undefined ? { kind: 'reset', reason: 'no answer' } : answer()),
      EXCHANGE_MAX_MS,
    );
    stream.on('error', () => undefined);
    stream.on('response', (h) => {
      status = Number(h[':status']);
      stream.end(status === 200 ? body : undefined);
    });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      if (!stream.writableEnded) stream.end();
    });
    stream.on('close', () => done(answer()));
  });
}

/** What came back through a tunnel after the input was written into it. */
export interface TunnelExchange {
  /** The CONNECT's status; undefined when it was reset before answering. */
  readonly status: number | undefined;
  readonly received: Buffer;
  /** Whether `answered` recognized a complete answer before the far end closed or went quiet. */
  readonly answered: boolean;
  /** False when the tunnel was still open `maxMs` after the client half-closed (a hang). */
  readonly finished: boolean;
}

export interface TunnelExchangeOptions {
  /** Whether what came back so far is the whole answer (e.g. the response to a sentinel request). */
  readonly answered: (received: Buffer) => boolean;
  /** Without an answer, the client half-closes after the far end was quiet this long. */
  readonly quietMs: number;
  /** After the half-close, the far end has this long to finish the tunnel. */
  readonly maxMs: number;
  /** An answer after which the far end is known not to finish the tunnel: reset it at once. */
  readonly abandon?: (received: Buffer) => boolean;
}

/**
 * Opens a CONNECT tunnel to `authority` on `session` and writes `bytes` into it. Once the answer is
 * complete, or the far end is quiet for `quietMs`, the client half-closes (as a client that is done
 * does); the far end must then finish the tunnel within `maxMs`. Only a tunnel still open then is
 * reset (see `request` on why finished streams are not).
 */
export function tunnelExchange(
  session: ClientHttp2Session,
  authority: string,
  bytes: Uint8Array,
  options: TunnelExchangeOptions,
): Promise<TunnelExchange> {
  return new Promise((resolve) => {
    const stream = session.request({ ':method': 'CONNECT', ':authority': authority }, { endStream: false });
    const chunks: Buffer[] = [];
    let status: number | undefined;
    let answered = false;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const done = (finished: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
      resolve({ status, received: Buffer.concat(chunks), answered, finished });
    };
    const halfClose = () => {
      clearTimeout(timer);
      if (!stream.writableEnded) stream.end();
      timer = setTimeout(() => done(false), options.maxMs);
    };
    const quiet = () => {
      clearTimeout(timer);
      timer = setTimeout(halfClose, options.quietMs);
    };
    stream.on('error', () => undefined);
    stream.on('response', (headers) => {
      status = Number(headers[':status']);
      if (status !== 200) return halfClose();
      stream.write(bytes, quiet);
    });
    stream.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (stream.writableEnded) return;
      const received = Buffer.concat(chunks);
      if (options.answered(received)) {
        answered = true;
        if (options.abandon?.(received)) done(false);
        else halfClose();
      } else quiet();
    });
    // The far end finished its side: finish ours, and the stream closes without a reset.
    stream.on('end', halfClose);
    stream.on('close', () => done(true));
    timer = setTimeout(halfClose, options.maxMs);
  });
}
