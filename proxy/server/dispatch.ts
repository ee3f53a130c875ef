// Where an accepted tunnel goes: into Node's HTTP/1.1 or HTTP/2 server (the tunnel stream is the
// "socket"), or straight to an endpoint as opaque TCP. The HTTP servers never listen: they only parse
// what the tunnels hand them, so every HTTP request here arrived through HBONE.
//
// It also keeps the open tunnels (what each carries, requests being answered), so a drain can end each
// the way its protocol allows without failing a request (proxy/server/drain.ts): an HTTP/1 connection
// with `connection: close` on its next response, or when it has been idle a while; an HTTP/2 one with
// GOAWAY; TCP and upgraded connections only by their own end, or at the drain's deadline.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2, { type Http2ServerRequest, type Http2ServerResponse, type Http2Session } from 'node:http2';
import type { ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../core/log.js';
import { errorMessage } from '../../core/errors.js';
import type { Tunnel } from '../tunnel/hbone-server.js';
import { askToMoveOn } from '../tunnel/goaway.js';
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

/** What an open tunnel carries: not known yet while its first bytes are awaited. */
export type TunnelKind = 'detecting' | 'http1' | 'h2' | 'tcp' | 'upgraded';

export type TunnelCounts = Record<TunnelKind, number>;

export function noTunnels(): TunnelCounts {
  return { detecting: 0, http1: 0, h2: 0, tcp: 0, upgraded: 0 };
}

/** One tunnel handed on, from dispatch until its stream closes. */
class OpenTunnel {
  kind: TunnelKind = 'detecting';
  /** The HTTP servers' socket (http1, h2, upgraded). */
  socket: TunnelSocket | undefined = undefined;
  session: Http2Session | undefined = undefined;
  /** Requests being answered. */
  active = 0;
  /** HTTP/1: the newest response, while its head is not written (a drain makes it the last). */
  head: ServerResponse | undefined = undefined;
  /** For the drain's idle check: bytes both ways when last looked at, and since when unchanged. */
  seenBytes = -1;
  seenSince = 0;
  /** Ended by the drain (idle, or `connection: close` on its last response). */
  closing = false;

  constructor(readonly tunnel: Tunnel) {}
}

/** What a drain's sweep found and did. */
export interface SweepResult {
  /** Tunnels still open. */
  readonly open: number;
  /** Requests still being answered on them. */
  readonly requests: number;
}

export class TunnelDispatcher {
  readonly #http1: http.Server;
  readonly #h2: http2.Http2Server;
  readonly #byStream = new WeakMap<Duplex, OpenTunnel>();
  readonly #bySession = new WeakMap<Http2Session, OpenTunnel>();
  readonly #open = new Map<ServerHttp2Stream, OpenTunnel>();
  #pending: OpenTunnel | undefined;
  #draining = false;
  /** Drain accounting: HTTP/1 connections told `connection: close`, ended idle, HTTP/2 sent GOAWAY. */
  #closedAfterResponse = 0;
  #closedIdle = 0;
  #goaways = 0;

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
      const open = this.#byStream.get(req.socket);
      if (!open) return res.destroy();
      open.active++;
      open.head = res;
      res.once('close', () => {
        open.active--;
        if (open.head === res) open.head = undefined;
      });
      if (this.#draining) this.#lastResponse(open, res);
      handler.handle(req, res, open.tunnel);
    });
    this.#http1.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const open = this.#byStream.get(req.socket);
      if (!open) return socket.destroy();
      if (!this.onUpgrade || !isWebSocketUpgrade(req)) {
        // Node's parser let go of the socket at the upgrade: a new one reads the request again, plain.
        socket.unshift(withoutUpgrade(req, head));
        this.#http1.emit('connection', socket);
        return;
      }
      // From here on the bytes are the application's: it runs until it ends, or the drain's deadline.
      open.kind = 'upgraded';
      this.onUpgrade(req, socket, head, open.tunnel);
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
      const open = this.#pending;
      if (open) {
        this.#bySession.set(session, open);
        open.session = session;
      }
      session.on('error', () => undefined);
      if (this.#draining) this.#goAway(session);
    });
    const onRequest = (req: Http2ServerRequest, res: Http2ServerResponse): void => {
      const open = req.stream.session && this.#bySession.get(req.stream.session);
      if (!open) return res.stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      open.active++;
      res.once('close', () => open.active--);
      handler.handle(req, res, open.tunnel);
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
    const open = new OpenTunnel(tunnel);
    const stream = tunnel.stream;
    this.#open.set(stream, open);
    stream.once('close', () => this.#open.delete(stream));
    const declared = declaredProtocol(tunnel.target.kind === 'service' ? tunnel.target.port : undefined);
    if (declared.kind === 'tcp') {
      open.kind = 'tcp';
      return this.tcp.forward(tunnel);
    }
    sniffProtocol(stream, DETECTION_TIMEOUT_MS).then(
      (seen) => this.#hand(open, declared.kind === 'http' && seen === 'tcp' ? 'http1' : seen),
      (err: unknown) => {
        this.log.debug({ error: errorMessage(err) }, 'protocol detection failed');
        stream.destroy();
      },
    );
  }

  #hand(open: OpenTunnel, protocol: TunnelProtocol): void {
    const tunnel = open.tunnel;
    const stream = tunnel.stream;
    if (stream.destroyed) return;
    open.kind = protocol;
    if (protocol === 'tcp') {
      // Detection read in paused mode; piping restarts the flow.
      return this.tcp.forward(tunnel);
    }
    const socket = new TunnelSocket(stream);
    open.socket = socket;
    if (protocol === 'http1') {
      this.#byStream.set(socket, open);
      this.#http1.emit('connection', socket);
    } else {
      this.#pending = open;
      try {
        this.#h2.emit('connection', socket);
      } finally {
        this.#pending = undefined;
      }
    }
  }

  /** Tunnels open now. */
  get openTunnels(): number {
    return this.#open.size;
  }

  /** Open tunnels by what they carry. */
  openByKind(): TunnelCounts {
    const counts = noTunnels();
    for (const open of this.#open.values()) counts[open.kind]++;
    return counts;
  }

  /** How the drain has ended connections so far. */
  drainCounts(): { closedAfterResponse: number; closedIdle: number; http2GoAways: number } {
    return {
      closedAfterResponse: this.#closedAfterResponse,
      closedIdle: this.#closedIdle,
      http2GoAways: this.#goaways,
    };
  }

  /**
   * The start of a drain: every HTTP/1 connection is closed after its next response (the one being
   * answered, if its head is not written yet), every HTTP/2 session is sent GOAWAY; tunnels dispatched
   * later are treated the same. TCP and upgraded tunnels are left to run.
   */
  drain(): void {
    if (this.#draining) return;
    this.#draining = true;
    for (const open of this.#open.values()) {
      if (open.kind === 'http1' && open.head !== undefined) this.#lastResponse(open, open.head);
      else if (open.kind === 'h2' && open.session !== undefined) this.#goAway(open.session);
    }
  }

  /**
   * Ends HTTP/1 connections that have answered everything and carried no byte for `idleMs` (a FIN, as
   * a server ends an idle keep-alive connection: the client opens a new one for its next request).
   */
  sweep(idleMs: number, now = Date.now()): SweepResult {
    let requests = 0;
    for (const open of this.#open.values()) {
      requests += open.active;
      if (open.kind !== 'http1' || open.closing || open.active > 0 || open.socket === undefined) continue;
      const bytes = open.socket.bytesRead + open.socket.bytesWritten;
      if (bytes !== open.seenBytes) {
        open.seenBytes = bytes;
        open.seenSince = now;
        continue;
      }
      if (now - open.seenSince < idleMs) continue;
      open.closing = true;
      this.#closedIdle++;
      open.socket.end();
    }
    return { open: this.#open.size, requests };
  }

  /**
   * The drain's deadline: HTTP/1 connections with nothing in flight are ended; every other tunnel is
   * reset (RST_STREAM CANCEL: the peer must not take a cut stream for a complete one). Returns what was
   * reset, by kind, and the requests that were cut.
   */
  resetAll(): { reset: TunnelCounts; requestsCut: number } {
    const reset = noTunnels();
    let requestsCut = 0;
    for (const open of [...this.#open.values()]) {
      const stream = open.tunnel.stream;
      if (stream.destroyed) continue;
      if (open.kind === 'http1' && open.active === 0 && open.socket !== undefined) {
        if (!open.closing) {
          open.closing = true;
          this.#closedIdle++;
          open.socket.end();
        }
        continue;
      }
      reset[open.kind]++;
      requestsCut += open.active;
      stream.close(http2.constants.NGHTTP2_CANCEL);
    }
    return { reset, requestsCut };
  }

  /** Marks `res` as the connection's last: its head says `connection: close`, and the socket ends after. */
  #lastResponse(open: OpenTunnel, res: ServerResponse): void {
    if (res.headersSent || open.closing) return;
    open.closing = true;
    res.shouldKeepAlive = false;
    this.#closedAfterResponse++;
  }

  #goAway(session: Http2Session): void {
    if (session.closed || session.destroyed) return;
    this.#goaways++;
    askToMoveOn(session);
  }

  close(): void {
    this.#http1.closeAllConnections();
    this.#http1.close();
    this.#h2.close();
  }
}
