// HTTP/1.1 upgrades through the waypoint. Only WebSocket is tunnelled (Istio's default upgrade list): the
// request is checked, authorized and routed like any other; then its head goes to the chosen endpoint
// with `Upgrade` kept, and once the backend answers 101 bytes are piped both ways. Retries, mirrors and
// timeouts do not apply to an upgraded connection. Any other token (h2c above all, which would turn the
// connection into one the waypoint no longer inspects) is dropped and the request parsed again as a
// plain one (`withoutUpgrade`), so it is handled like every other request, whatever the backend speaks.
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
    // A WebSocket handshake has no body (RFC 6455 4.1: a GET). One that declares a body would deadlock:
    // the backend waits for the body the waypoint holds back until it answers 101 (found by fuzzing).
    if (req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) !== 0) {
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    // The handshake is HTTP/1.1; an HTTP/2 backend would need RFC 8441's extended CONNECT.
    if (decision.destination.protocol === 'h2') {
      socket.end('HTTP/1.1 501 Not Implemented\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    const { headers, authority } = this.handler.upstreamHeaders(req, decision, ex, true);
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

function abortBoth(a: Duplex, b: Duplex): void {
  a.destroy();
  b.destroy();
}

function noop(): void {}

export function isWebSocketUpgrade(req: IncomingMessage): boolean {
  return String(req.headers.upgrade ?? '').toLowerCase() === 'websocket';
}

/** Fields that only mean something for an upgrade the waypoint does not perform. */
const UPGRADE_FIELDS = new Set(['upgrade', 'http2-settings']);

/**
 * The request's head written out again without `Upgrade` (and without its token in `Connection`), followed
 * by the bytes already read past it: fed back to the HTTP/1 server, it is parsed as a plain request, body
 * framing and all. Names and values are written as Node read them (latin1), so nothing is re-encoded.
 */
export function withoutUpgrade(req: IncomingMessage, head: Buffer): Buffer {
  const lines = [`${req.method ?? 'GET'} ${req.url ?? '/'} HTTP/${req.httpVersion}`];
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (UPGRADE_FIELDS.has(lower)) continue;
    let value = raw[i + 1]!;
    if (lower === 'connection') {
      const kept = value
        .split(',')
        .map((token) => token.trim())
        .filter((token) => token !== '' && !UPGRADE_FIELDS.has(token.toLowerCase()));
      if (kept.length === 0) continue;
      value = kept.join(', ');
    }
    lines.push(`${name}: ${value}`);
  }
  return Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), head]);
}
