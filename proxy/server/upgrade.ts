// HTTP/1.1 upgrades (WebSocket and any other token) through the waypoint: the request is checked,
// authorized and routed like any other; then its head goes to the chosen endpoint with `Upgrade` kept,
// and from there bytes are piped both ways, so the backend's 101 and everything after pass unchanged.
// Retries, mirrors and timeouts do not apply to an upgraded connection.
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../core/log.js';
import { errorMessage } from '../../core/errors.js';
import { applyHeaderEdits } from '../routing/index.js';
import type { Tunnel } from '../tunnel/hbone-server.js';
import type { UpstreamConnector } from '../forward/connector.js';
import type { RequestHandler } from './request-handler.js';
import { splice } from './tcp-forward.js';

export class UpgradeHandler {
  constructor(
    readonly handler: RequestHandler,
    readonly connector: UpstreamConnector,
    readonly log: Logger,
  ) {}

  handle(req: IncomingMessage, socket: Duplex, head: Buffer, tunnel: Tunnel): void {
    socket.on('error', () => undefined);
    const ex = this.handler.newExchange(req, tunnel);
    const decision = this.handler.decide(req, tunnel, ex);
    if (decision.kind === 'local') {
      const headers = applyHeaderEdits({}, decision.headers);
      const lines = Object.entries(headers).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(', ') : v}`);
      const body = Buffer.from(decision.body);
      socket.end(
        `HTTP/1.1 ${decision.status} ${STATUS_CODES[decision.status] ?? 'Error'}\r\n` +
          [...lines, 'connection: close', `content-length: ${body.length}`, '', ''].join('\r\n') +
          decision.body,
      );
      return;
    }
    // Only WebSocket is tunnelled (Istio's default upgrade list). Any other token (h2c above all, which
    // would turn the connection into one the waypoint no longer inspects) is sent on as a plain
    // request without its upgrade, on a connection closed after the answer. Either way no byte of the
    // client's after the request goes upstream unless the backend answered 101 to a WebSocket upgrade:
    // bytes sent before that would be a request nobody parsed, authorized or routed (found by
    // fuzz/targets/waypoint-http1).
    const websocket = String(req.headers.upgrade ?? '').toLowerCase() === 'websocket';
    const bodyBytes = Number(req.headers['content-length'] ?? 0);
    if (!websocket && (req.headers['transfer-encoding'] !== undefined || !Number.isSafeInteger(bodyBytes))) {
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    const { headers, authority } = this.handler.upstreamHeaders(req, decision, ex, websocket);
    if (!websocket) headers.connection = 'close';
    const endpoints = decision.destination.endpoints;
    const ep = endpoints[Math.floor(Math.random() * endpoints.length)]!;
    const lines = [`${req.method ?? 'GET'} ${decision.sendPath} HTTP/1.1`, `host: ${authority}`];
    for (const [name, value] of Object.entries(headers))
      for (const v of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${v}`);
    // Until the backend answers, the client's bytes wait here (bounded: the socket is paused).
    socket.pause();
    this.connector.open(ep, ex.traceparent).then(
      (upstream) => {
        upstream.write(lines.join('\r\n') + '\r\n\r\n');
        const logClosed = (sent: number, received: number): void =>
          this.log.info(
            {
              'src.identity': tunnel.peerId,
              upstream: `${ep.ip}:${ep.port}`,
              path: decision.sendPath,
              upgrade: req.headers.upgrade,
              sent,
              received,
              request_id: ex.requestId,
            },
            'upgraded connection closed',
          );
        if (!websocket) return sendOnce(socket, upstream, head, bodyBytes, logClosed);
        awaitSwitch(socket, upstream, head, logClosed);
      },
      (err: unknown) => {
        this.log.info(
          { upstream: `${ep.ip}:${ep.port}`, error: errorMessage(err) },
          'upgrade: upstream connect failed',
        );
        socket.end('HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      },
    );
  }
}

/** The longest response head read while waiting for a 101. */
const MAX_RESPONSE_HEAD_BYTES = 64 * 1024;

/**
 * A WebSocket upgrade: the backend's answer goes back as it comes; the client's bytes follow only once
 * that answer is `101`. Any other answer ends the exchange with the response.
 */
function awaitSwitch(
  socket: Duplex,
  upstream: Duplex,
  head: Buffer,
  done: (sent: number, received: number) => void,
): void {
  let seen = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    socket.write(chunk);
    seen = Buffer.concat([seen, chunk]);
    const end = seen.indexOf('\r\n\r\n');
    if (end < 0) {
      if (seen.length > MAX_RESPONSE_HEAD_BYTES) abortBoth(socket, upstream);
      return;
    }
    upstream.off('data', onData);
    const switched = /^HTTP\/1\.[01] 101[ \r]/.test(seen.subarray(0, end).toString('latin1'));
    if (!switched) {
      // Not upgraded: the rest of the response, then the end; nothing of the client's is sent on.
      upstream.pipe(socket);
      socket.resume();
      socket.on('data', noop);
      return;
    }
    socket.off('end', onEnd);
    if (head.length > 0) upstream.write(head);
    splice(socket, upstream, done);
    socket.resume();
  };
  upstream.on('data', onData);
  upstream.once('error', () => abortBoth(socket, upstream));
  // A client that half-closes before any switch is done: the backend learns it too (and closes).
  const onEnd = (): void => void upstream.end();
  socket.once('end', onEnd);
  socket.once('close', () => upstream.destroy());
  upstream.once('close', () => socket.off('end', onEnd));
}

/** A non-WebSocket upgrade sent on as a plain request: its declared body only, then the answer. */
function sendOnce(
  socket: Duplex,
  upstream: Duplex,
  head: Buffer,
  bodyBytes: number,
  done: (sent: number, received: number) => void,
): void {
  let remaining = bodyBytes;
  let received = 0;
  const forward = (chunk: Buffer): void => {
    if (remaining <= 0) return;
    const part = chunk.subarray(0, remaining);
    remaining -= part.length;
    upstream.write(part);
  };
  forward(head);
  // Bytes past the declared body are the client's next request: dropped, the connection closes after.
  socket.on('data', forward);
  socket.once('end', () => upstream.end());
  socket.resume();
  upstream.on('data', (c: Buffer) => (received += c.length));
  upstream.pipe(socket);
  upstream.once('end', () => done(bodyBytes - remaining, received));
  upstream.once('error', () => abortBoth(socket, upstream));
  socket.once('close', () => upstream.destroy());
}

function abortBoth(a: Duplex, b: Duplex): void {
  a.destroy();
  b.destroy();
}

function noop(): void {}
