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
    // request without its upgrade, on a connection closed after the answer.
    const websocket = String(req.headers.upgrade ?? '').toLowerCase() === 'websocket';
    const { headers, authority } = this.handler.upstreamHeaders(req, decision, ex, websocket);
    if (!websocket) headers.connection = 'close';
    const endpoints = decision.destination.endpoints;
    const ep = endpoints[Math.floor(Math.random() * endpoints.length)]!;
    const lines = [`${req.method ?? 'GET'} ${decision.sendPath} HTTP/1.1`, `host: ${authority}`];
    for (const [name, value] of Object.entries(headers))
      for (const v of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${v}`);
    this.connector.open(ep, ex.traceparent).then(
      (upstream) => {
        upstream.write(lines.join('\r\n') + '\r\n\r\n');
        if (head.length > 0) upstream.write(head);
        splice(socket, upstream, (sent, received) =>
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
          ),
        );
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
