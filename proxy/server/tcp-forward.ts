// Non-HTTP traffic through the waypoint: checked against the TCP views of the bound policies, then piped
// to an endpoint of the dialled Service (or to the dialled pod) over the connector's stream.
import { constants as h2c, type ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import { pump } from '../../core/copy.js';
import type { Logger } from '../../core/log.js';
import type { ConfigStore } from '../../core/store.js';
import { errorMessage } from '../../core/errors.js';
import {
  evaluateRequest,
  type NamespacedName,
  type WaypointPolicyCache,
  type WaypointVerdict,
} from '../authz/index.js';
import type { Tunnel } from '../tunnel/hbone-server.js';
import { tcpConnectionRequest } from '../authz/tcp.js';
import type { Endpoint, UpstreamConnector } from '../forward/connector.js';
import type { RandomSource } from '../routing/index.js';
import { endpointsOf } from './request-handler.js';
import type { TcpForwarder } from './dispatch.js';

export interface TcpOutcome {
  readonly tunnel: Tunnel;
  readonly upstream: Endpoint | undefined;
  readonly allowed: boolean;
  readonly policy: string | undefined;
  /** The authorization decision (its policy and rule name what decided). */
  readonly verdict: WaypointVerdict;
  readonly error: string | undefined;
  readonly sentBytes: number;
  readonly receivedBytes: number;
  readonly durationMs: number;
}

export class WaypointTcpForwarder implements TcpForwarder {
  constructor(
    readonly store: ConfigStore,
    readonly waypoint: NamespacedName,
    /** A cache over the TCP views of the policies (authz/tcp.ts). */
    readonly policies: WaypointPolicyCache,
    readonly connector: UpstreamConnector,
    readonly log: Logger,
    readonly observe: (outcome: TcpOutcome) => void,
    readonly random: RandomSource = Math.random,
  ) {}

  forward(tunnel: Tunnel): void {
    const start = performance.now();
    const { target, stream } = tunnel;
    const service = target.kind === 'service' ? target.service : undefined;
    const verdict = evaluateRequest(
      this.policies.get({
        waypoint: this.waypoint,
        service: service && { namespace: service.namespace, name: service.name },
      }),
      tcpConnectionRequest(tunnel.source.ip, tunnel.peer, target.dialled.ip, target.dialled.port),
    );
    const report = (
      upstream: Endpoint | undefined,
      error: string | undefined,
      sent = 0,
      received = 0,
    ): void =>
      this.observe({
        tunnel,
        upstream,
        allowed: verdict.allowed,
        policy: verdict.responseDetails,
        verdict,
        error,
        sentBytes: sent,
        receivedBytes: received,
        durationMs: performance.now() - start,
      });
    if (!verdict.allowed) {
      // A TCP denial closes the connection (authz.md §6.5); the client sees it end.
      stream.destroy();
      report(undefined, 'denied by policy');
      return;
    }
    const endpoints =
      target.kind === 'workload'
        ? [{ ip: target.dialled.ip, port: target.dialled.port, workload: target.workload }]
        : endpointsOf(this.store, target.service, target.port);
    if (endpoints.length === 0) {
      refuseStream(stream);
      report(undefined, 'no healthy upstream');
      return;
    }
    const ep = endpoints[Math.floor(this.random() * endpoints.length)]!;
    this.connector.open(ep, tunnel.traceparent).then(
      (upstream) => splice(stream, upstream, (sent, received) => report(ep, undefined, sent, received)),
      (err: unknown) => {
        this.log.info(
          { upstream: `${ep.ip}:${ep.port}`, error: errorMessage(err) },
          'tcp upstream connect failed',
        );
        refuseStream(stream);
        report(ep, errorMessage(err));
      },
    );
  }
}

/**
 * The upstream could not be reached after the tunnel was accepted: RST_STREAM(CONNECT_ERROR), as RFC 9113
 * §8.5 has a proxy signal a failed TCP connection. Not destroy(), which sends RST_STREAM(NO_ERROR): Node
 * ends the peer's readable side on it as on END_STREAM, so the source agent would pass on a FIN, and the
 * application would take the refused connection for one the server closed.
 */
function refuseStream(stream: ServerHttp2Stream): void {
  if (!stream.destroyed) stream.close(h2c.NGHTTP2_CONNECT_ERROR);
}

/**
 * Pipes both ways with the agent's pump (half-close, linger, resets); `done` once both sides are over,
 * with the bytes each way (counted by a listener: tunnel streams keep no byte counters of their own).
 */
export function splice(
  client: Duplex,
  upstream: Duplex,
  done: (sent: number, received: number) => void,
): void {
  let sent = 0;
  let received = 0;
  client.on('data', (c: Buffer) => (sent += c.length));
  upstream.on('data', (c: Buffer) => (received += c.length));
  pump(client, upstream, () => done(sent, received));
}
