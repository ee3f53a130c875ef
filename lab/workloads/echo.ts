// The `echo` workload: an HTTP server that answers every request with JSON describing what it received,
// so tests and users can see what reached the pod (and from whom) after the mesh carried it. One port
// serves HTTP/1.1 and cleartext HTTP/2 with prior knowledge (h2c), told apart by the HTTP/2 preface, so
// a waypoint can be exercised over either, and over gRPC-shaped calls and upgrades.
//
// Request headers steer the answer, for exercising retries, timeouts, header and trailer rules:
//   x-echo-status: 503           answer with this status (200-599)
//   x-echo-delay-ms: 100         wait this long before answering (at most MAX_DELAY_MS)
//   x-echo-header: name=value    add a response header (repeat the header for several)
//   x-echo-trailer: name=value   add a response trailer (repeatable); HTTP/1.1 answers go chunked for it
//   x-echo-fail-first: N         with x-request-id: the first N attempts of that id get 503
//                                (gRPC: grpc-status 14 UNAVAILABLE)
//   x-echo-reset-first: N        with x-request-id: the first N attempts of that id are reset: a TCP
//                                reset on HTTP/1.1, RST_STREAM (INTERNAL_ERROR) on HTTP/2
//   x-echo-grpc-status: N        gRPC only: the grpc-status trailer (0-16, default 0)
//   x-echo-grpc-message: text    gRPC only: the grpc-message trailer, sent as given
// Attempts are counted per x-request-id; attempt n is reset if n <= reset-first, else fails if
// n <= fail-first, else answered normally. The JSON carries the attempt number. A bad steering header
// gets a 400 whose JSON "error" names it: x-echo-header may not set connection-specific fields over
// HTTP/2, and x-echo-trailer never sets framing or routing ones (content-length, host, ...). Answers
// without content (HEAD, 204, 205, 304) carry no trailers.
//
// What else it does:
//   - Request trailers are echoed in the JSON as "trailers".
//   - HTTP/2 with content-type application/grpc*: the body (length-prefixed messages) streams back,
//     then grpc-status/grpc-message trailers; no protobuf is involved (see echo/answer.ts).
//   - HTTP/1.1 Upgrade: websocket gets a 101 with the RFC 6455 accept key, then a raw byte echo (not a
//     WebSocket implementation; see echo/websocket.ts). Other upgrade tokens are declined.
//   - One JSON line per request on the log writer (stdout in a pod): {"msg":"request", ...}.
import { once } from 'node:events';
import { createServer as createHttp1Server } from 'node:http';
import { createServer as createHttp2Server } from 'node:http2';
import { createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { answer, type EchoContext } from './echo/answer.js';
import { http1Exchange, http2Exchange } from './echo/exchange.js';
import { sniffPreface } from './echo/preface.js';
import type { EchoIdentity } from './echo/reply.js';
import { AttemptCounter } from './echo/steering.js';
import { answerUpgrade, UPGRADED_IDLE_MS } from './echo/websocket.js';

export { MAX_ECHOED_BODY_BYTES, type EchoIdentity, type EchoReply } from './echo/reply.js';
export { MAX_DELAY_MS, MAX_TRACKED_REQUEST_IDS } from './echo/steering.js';
export { UPGRADED_IDLE_MS, webSocketAccept } from './echo/websocket.js';

/** Streams one HTTP/2 connection may have open at once (Node's default is unbounded). */
export const MAX_CONCURRENT_STREAMS = 1000;
/** A connection that sends nothing at all for this long is closed before it is handed to either server. */
export const FIRST_BYTES_TIMEOUT_MS = 60_000;

/** The identity from the pod's environment (the lab sets POD_NAME, POD_NAMESPACE, NODE_NAME). */
export function echoIdentityFromEnv(env: NodeJS.ProcessEnv = process.env): EchoIdentity {
  return {
    pod: env.POD_NAME ?? '',
    namespace: env.POD_NAMESPACE ?? '',
    service: env.SERVICE_NAME ?? '',
    version: env.VERSION ?? '',
    node: env.NODE_NAME ?? '',
  };
}

export interface EchoServerOptions {
  /** Takes each request's log line, without its newline. Default: none. */
  readonly log?: (line: string) => void;
  /** Default UPGRADED_IDLE_MS; tests shorten it. */
  readonly upgradedIdleMs?: number;
  /** Default FIRST_BYTES_TIMEOUT_MS; tests shorten it. */
  readonly firstBytesTimeoutMs?: number;
}

/** The listening socket (listen on it), and a stop that also ends every open connection. */
export interface EchoServer {
  readonly server: Server;
  close(): void;
}

export function createEchoServer(identity: EchoIdentity, options: EchoServerOptions = {}): EchoServer {
  const ctx: EchoContext = {
    identity,
    attempts: new AttemptCounter(),
    log: options.log ?? (() => {}),
    upgradedIdleMs: options.upgradedIdleMs ?? UPGRADED_IDLE_MS,
  };
  const http1 = createHttp1Server((req, res) => void answer(ctx, http1Exchange(req, res)));
  http1.on('upgrade', (req, socket: Socket, head: Buffer) => {
    answerUpgrade(ctx, req, socket, head).catch(() => socket.destroy());
  });
  const http2 = createHttp2Server(
    { settings: { maxConcurrentStreams: MAX_CONCURRENT_STREAMS } },
    (req, res) => void answer(ctx, http2Exchange(req, res)),
  );
  const sockets = new Set<Socket>();
  const server = createNetServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    // Resets and broken pipes are how peers (and reset-first) end connections, not faults; the
    // servers below add their own handling once they own the socket.
    socket.on('error', () => socket.destroy());
    void sniffPreface(socket, options.firstBytesTimeoutMs ?? FIRST_BYTES_TIMEOUT_MS).then((sniffed) => {
      if (sniffed === 'h2') http2.emit('connection', socket);
      else if (sniffed === 'http1') http1.emit('connection', socket);
    });
  });
  return {
    server,
    close() {
      server.close();
      for (const socket of sockets) socket.destroy();
    },
  };
}

export interface EchoOptions {
  readonly host: string;
  readonly port: number;
  readonly identity: EchoIdentity;
}

/** Serves until SIGTERM/SIGINT; status lines and one line per request go to `out`. */
export async function runEcho(options: EchoOptions, out: (line: string) => void): Promise<void> {
  const echo = createEchoServer(options.identity, { log: out });
  echo.server.listen(options.port, options.host);
  await once(echo.server, 'listening');
  const addr = echo.server.address() as AddressInfo;
  out(
    `echo: ${options.identity.namespace}/${options.identity.pod} listening on ${addr.address}:${addr.port} (HTTP/1.1 and h2c)`,
  );
  await untilStopped();
  echo.close();
}

/** Resolves on SIGTERM or SIGINT. */
export function untilStopped(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
}
