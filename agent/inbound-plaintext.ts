// Plaintext arriving for an enrolled pod from outside the mesh (captured to :15006): no peer identity,
// so PeerAuthentication STRICT refuses it and AuthorizationPolicy sees an unauthenticated peer.
// The original destination is the accepted socket's local address (transparent listener).
import type net from 'node:net';
import type { Logger } from '../core/log.js';
import type { TcpMetrics } from '../core/telemetry/tcp-metrics.js';
import { formatHboneAuthority } from '../core/hbone/authority.js';
import type { InboundAuthorizer, L4Connection } from './authorizer.js';
import type { ConnectionRegistry } from './connections.js';
import { ConnectionResult } from './connection-result.js';
import { deliver } from './delivery.js';
import type { ConnectionBudget } from './connection-budget.js';
import type { UpstreamDialer } from './socket.js';
import { LocalWorkloads } from './workloads.js';
import { unmapIpv4 } from '../core/address.js';
import type { FlowRing } from '../core/flows/ring.js';

export interface PlaintextInboundInputs {
  readonly local: LocalWorkloads;
  readonly authorizer: InboundAuthorizer;
  readonly connections: ConnectionRegistry;
  readonly metrics: TcpMetrics;
  readonly flows: FlowRing;
  readonly log: Logger;
  /** Dials the pod; with capture it binds the client's address and marks the socket. */
  readonly dial: UpstreamDialer;
  readonly agentPorts: ReadonlySet<number>;
  /** Connection bounds (per agent, per destination pod); unbounded without. */
  readonly budget?: ConnectionBudget;
}

export class PlaintextInbound {
  readonly #in: PlaintextInboundInputs;

  constructor(inputs: PlaintextInboundInputs) {
    this.#in = inputs;
  }

  /** Handles one captured connection; its local address is where the client meant to go. */
  handle(socket: net.Socket): void {
    const { local, log } = this.#in;
    const dstIp = unmapIpv4(socket.localAddress);
    const dstPort = socket.localPort ?? 0;
    const srcIp = unmapIpv4(socket.remoteAddress);
    const srcPort = socket.remotePort ?? 0;
    const dst = local.owning(dstIp);
    const result = new ConnectionResult(
      this.#in.metrics,
      log,
      {
        direction: 'inbound',
        srcAddr: formatHboneAuthority(srcIp, srcPort),
        src: local.store.workloadByIp(srcIp),
        srcIdentity: undefined,
        dstAddr: formatHboneAuthority(dstIp, dstPort),
        dstHboneAddr: undefined,
        dst,
        dstIdentity: dst && local.spiffeIdOf(dst),
        service: undefined,
        clusterDomain: local.store.clusterDomain,
        path: 'direct',
      },
      this.#in.flows,
    );
    socket.on('error', () => undefined);
    if (!dst || this.#in.agentPorts.has(dstPort)) {
      result.failed(
        'CONNECT',
        dst ? `port ${dstPort} is the agent's own` : `${dstIp} is not a workload of this node`,
      );
      result.close(0, 0);
      socket.destroy();
      return;
    }
    const conn: L4Connection = { srcIp, srcIdentity: undefined, dstIp, dstPort };
    const verdict = this.#in.authorizer.authorize(dst, conn);
    result.decided({
      verdict: verdict.allowed ? 'allowed' : 'denied',
      policy: verdict.policy,
      rule: verdict.rule,
      reason: verdict.message,
    });
    if (!verdict.allowed) {
      result.failed('DENY', verdict.message);
      result.close(0, 0);
      // A reset, as ztunnel does: the client learns at once, and nothing was delivered.
      socket.resetAndDestroy();
      return;
    }
    const budget = this.#in.budget;
    if (budget) {
      const refused = budget.acquire('inbound', dstIp);
      if (refused !== undefined) {
        result.failed('OVERLOAD', `connection bound reached (${refused})`);
        result.close(0, 0);
        socket.resetAndDestroy();
        return;
      }
      socket.once('close', () => budget.release('inbound', dstIp));
    }
    const entry = this.#in.connections.register(dst, conn, socket, result);
    deliver(
      this.#in.dial,
      { ip: dstIp, port: dstPort, sourceIp: srcIp },
      socket,
      entry,
      result,
      { connected: () => !socket.destroyed, unreachable: () => socket.resetAndDestroy() },
      log,
    );
  }
}
