// Where an accepted tunnel goes: into Node's HTTP/1.1 or HTTP/2 server (the tunnel stream is the
// "socket"), or straight to an endpoint as opaque TCP. The HTTP servers never listen: they only parse
// what the tunnels hand them, so every HTTP request here arrived through HBONE.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2, { type Http2ServerRequest, type Http2ServerResponse, type Http2Session } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../core/log.js';
import { errorMessage } from '../../core/errors.js';
import type { Tunnel } from '../tunnel/hbone-server.js';
import { TunnelSocket } from '../tunnel/tunnel-socket.js';
import { declaredProtocol, sniffProtocol, type TunnelProtocol } from '../tunnel/protocol.js';
import type { RequestHandler } from './request-handler.js';
import { isWebSocketUpgrade, withoutUpgrade } from './upgrade.js';

/** How long an undeclared port waits for the client's first bytes before treating it as TCP. */
export const DETECTION_TIMEOUT_MS = 1000;
/** HTTP/1.1 head limits: Node's defaults, written down so they are a decision. */
const HTTP1_MAX_HEADER_BYTES = 16 * 1024;
/** A client has this long to send a request head (slowloris). */
const HTTP1_HEADERS_TIMEOUT_MS = 30_000;
/** Idle keep-alive connections from clients close after this. */
const HTTP1_KEEPALIVE_MS = 60_000;
/** Per client HTTP/2 connection: streams at once and the header list size. */
const H2_MAX_CONCURRENT_STREAMS = 1000;
const H2_MAX_HEADER_LIST_BYTES = 64 * 1024;

export interface TcpForwarder {
  forward(tunnel: Tunnel): void;
}

export class TunnelDispatcher {
  readonly #http1: http.Server;
  readonly #h2: http2.Http2Server;
  readonly #byStream = new WeakMap<Duplex, Tunnel>();
  readonly #bySession = new WeakMap<Http2Session, Tunnel>();
  #pending: Tunnel | undefined;

  constructor(
    readonly handler: RequestHandler,
    readonly tcp: TcpForwarder,
    readonly log: Logger,
    readonly onUpgrade?: (req: IncomingMessage, socket: Duplex, head: Buffer, tunnel: Tunnel) => void,
  ) {
    this.#http1 = http.createServer({
      maxHeaderSize: HTTP1_MAX_HEADER_BYTES,
      headersTimeout: HTTP1_HEADERS_TIMEOUT_MS,
      keepAliveTimeout: HTTP1_KEEPALIVE_MS,
      // Long requests (streams, long polls) are the route's to bound (timeouts.request), not ours.
      requestTimeout: 0,
    });
    this.#http1.on('request', (req: IncomingMessage, res: ServerResponse) => {
      const tunnel = this.#byStream.get(req.socket);
      if (!tunnel) return res.destroy();
      handler.handle(req, res, tunnel);
    });
    this.#http1.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const tunnel = this.#byStream.get(req.socket);
      if (!tunnel) return socket.destroy();
      if (!this.onUpgrade || !isWebSocketUpgrade(req)) {
        // Node's parser let go of the socket at the upgrade: a new one reads the request again, plain.
        socket.unshift(withoutUpgrade(req, head));
        this.#http1.emit('connection', socket);
        return;
      }
      this.onUpgrade(req, socket, head, tunnel);
    });
    this.#http1.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
      log.info({ error: err.message, code: err.code }, 'malformed HTTP/1 request refused');
      if (socket.writable)
        socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      else socket.destroy();
    });
    this.#h2 = http2.createServer({
      settings: {
        maxConcurrentStreams: H2_MAX_CONCURRENT_STREAMS,
        maxHeaderListSize: H2_MAX_HEADER_LIST_BYTES,
      },
      maxSessionInvalidFrames: 1000,
      maxSessionRejectedStreams: 100,
    });
    this.#h2.on('session', (session: Http2Session) => {
      if (this.#pending) this.#bySession.set(session, this.#pending);
      session.on('error', () => undefined);
    });
    const onRequest = (req: Http2ServerRequest, res: Http2ServerResponse): void => {
      const tunnel = req.stream.session && this.#bySession.get(req.stream.session);
      if (!tunnel) return res.stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      handler.handle(req, res, tunnel);
    };
    this.#h2.on('request', onRequest);
    // `expect: 100-continue`: Node's own answer throws (and kills the process) when the stream is already
    // gone, as when the client sent GOAWAY in the same write (found by fuzz/targets/waypoint-h2). Answer
    // only a live stream; the request then goes the usual way.
    this.#h2.on('checkContinue', (req: Http2ServerRequest, res: Http2ServerResponse) => {
      if (res.stream.destroyed || res.stream.closed) return;
      try {
        res.writeContinue();
      } catch {
        return;
      }
      onRequest(req, res);
    });
    this.#h2.setTimeout(0);
  }

  dispatch(tunnel: Tunnel): void {
    const declared = declaredProtocol(tunnel.target.kind === 'service' ? tunnel.target.port : undefined);
    if (declared.kind === 'tcp') return this.tcp.forward(tunnel);
    sniffProtocol(tunnel.stream, DETECTION_TIMEOUT_MS).then(
      (seen) => this.#hand(tunnel, declared.kind === 'http' && seen === 'tcp' ? 'http1' : seen),
      (err: unknown) => {
        this.log.debug({ error: errorMessage(err) }, 'protocol detection failed');
        tunnel.stream.destroy();
      },
    );
  }

  #hand(tunnel: Tunnel, protocol: TunnelProtocol): void {
    const stream = tunnel.stream;
    if (stream.destroyed) return;
    if (protocol === 'tcp') {
      // Detection read in paused mode; piping restarts the flow.
      return this.tcp.forward(tunnel);
    }
    const socket = new TunnelSocket(stream);
    if (protocol === 'http1') {
      this.#byStream.set(socket, tunnel);
      this.#http1.emit('connection', socket);
    } else {
      this.#pending = tunnel;
      try {
        this.#h2.emit('connection', socket);
      } finally {
        this.#pending = undefined;
      }
    }
  }

  close(): void {
    this.#http1.closeAllConnections();
    this.#http1.close();
    this.#h2.close();
  }
}
