// Outbound: a connection from a local workload, with its original destination, becomes a plan (pure:
// `planOutbound`), then a tunnel or a plain connection (the I/O below).
//
// Fail closed: when the plan is a tunnel and anything on the way fails (no certificate, the peer's
// identity is wrong, the peer refuses), the application's connection is closed. It never falls back
// to plaintext.
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../core/log.js';
import type { ConfigStore } from '../core/store.js';
import { serviceFqdn, type Service } from '../core/model/service.js';
import { isTerminated, type Workload } from '../core/model/workload.js';
import { formatHboneAuthority } from '../core/hbone/authority.js';
import {
  baggageHeader,
  forwardedHeader,
  newTraceparent,
  HEADER_BAGGAGE,
  HEADER_FORWARDED,
  HEADER_TRACEPARENT,
} from '../core/hbone/headers.js';
import { CONNECT_TIMEOUT_MS, HBONE_PORT } from '../core/hbone/settings.js';
import type { TcpMetrics, ResponseFlag } from '../core/telemetry/tcp-metrics.js';
import { workloadNames } from '../core/telemetry/workload-names.js';
import { errorMessage } from '../core/errors.js';
import { Priority, type CertificateManager } from '../core/identity/manager.js';
import { HboneClientPool, TunnelRefusedError } from '../core/hbone/client-pool.js';
import { LocalWorkloads } from './workloads.js';
import { unmapIpv4 } from '../core/address.js';
import {
  serviceWaypoint,
  workloadWaypoint,
  GATEWAY_NAME_LABEL,
  type WaypointBinding,
} from '../core/waypoints.js';
import { ConnectionResult } from './connection-result.js';
import type { SameNodeAnswer } from './inbound.js';
import { isLoopback, type UpstreamDialer } from './socket.js';
import type { ConnectionBudget } from './connection-budget.js';
import { abort, pump, type PumpHandle } from '../core/copy.js';
import { exchangeControl, type ExchangeControl } from './drain.js';
import type { FlowPath } from '../core/flows/event.js';
import type { FlowRing } from '../core/flows/ring.js';

export interface Destination {
  readonly ip: string;
  readonly port: number;
}

export type OutboundPlan =
  | {
      readonly kind: 'hbone';
      /** Whether the next hop is a waypoint (else the destination pod itself). */
      readonly viaWaypoint: boolean;
      /** The next hop's HBONE address: the destination pod (or the waypoint pod), port 15008. */
      readonly nextHop: Destination;
      /** The CONNECT authority: pod ip:targetPort, or the original destination when via a waypoint. */
      readonly authority: string;
      /** The SPIFFE ID the next hop must prove. */
      readonly expectedIdentity: string;
      /** The final destination pod, when known (not for service traffic handed to a waypoint). */
      readonly dstWorkload: Workload | undefined;
      readonly service: Service | undefined;
    }
  | {
      readonly kind: 'passthrough';
      readonly target: Destination;
      readonly dstWorkload: Workload | undefined;
      readonly service: Service | undefined;
      readonly reason: string;
    }
  | { readonly kind: 'refuse'; readonly reason: string; readonly flag: ResponseFlag };

/** Picks an index in [0, n); injected for deterministic tests. */
export type Picker = (n: number) => number;
export const randomPicker: Picker = (n) => Math.floor(Math.random() * n);

function refuse(reason: string, flag: ResponseFlag = 'CONNECT'): OutboundPlan {
  return { kind: 'refuse', reason, flag };
}

/** The next hop into a waypoint: one of its pods (the waypoint balances further itself). */
function viaWaypoint(
  store: ConfigStore,
  local: LocalWorkloads,
  binding: Extract<WaypointBinding, { kind: 'waypoint' }>,
  dst: Destination,
  service: Service | undefined,
  dstWorkload: Workload | undefined,
  pick: Picker,
): OutboundPlan {
  const gw = binding.gateway;
  // Istio gives each waypoint a Service named after its Gateway; its endpoints are the waypoint pods.
  const wpService = store.service(gw.namespace, gw.name);
  const candidates: Workload[] = [];
  if (wpService)
    for (const ep of store.endpointsOf(wpService)) {
      const w = store.workloadByIp(ep.address);
      // Waypoint pods are not enrolled (Istio's template opts them out: they terminate HBONE themselves);
      // what makes one a next hop is being a live pod of this Gateway.
      if (w && !isTerminated(w) && w.namespace === gw.namespace && w.labels[GATEWAY_NAME_LABEL] === gw.name)
        candidates.push(w);
    }
  if (candidates.length === 0) return refuse(`waypoint ${gw.namespace}/${gw.name} has no ready pods`);
  const wp = candidates[pick(candidates.length)]!;
  return {
    kind: 'hbone',
    viaWaypoint: true,
    nextHop: { ip: wp.podIps[0]!, port: HBONE_PORT },
    authority: formatHboneAuthority(dst.ip, dst.port),
    expectedIdentity: local.spiffeIdOf(wp),
    dstWorkload,
    service,
  };
}

function toWorkload(
  local: LocalWorkloads,
  w: Workload,
  ip: string,
  port: number,
  service: Service | undefined,
): OutboundPlan {
  if (!local.isMeshWorkload(w))
    return {
      kind: 'passthrough',
      target: { ip, port },
      dstWorkload: w,
      service,
      reason: 'destination is not in the mesh',
    };
  return {
    kind: 'hbone',
    viaWaypoint: false,
    nextHop: { ip, port: HBONE_PORT },
    authority: formatHboneAuthority(ip, port),
    expectedIdentity: local.spiffeIdOf(w),
    dstWorkload: w,
    service,
  };
}

/**
 * Decides where a connection from `src` to `dst` goes, from config alone: a Service VIP is resolved
 * to one ready endpoint (or its waypoint), a pod IP to that pod (or its waypoint), anything else is
 * passed through unchanged.
 */
export function planOutbound(
  store: ConfigStore,
  local: LocalWorkloads,
  dst: Destination,
  pick: Picker = randomPicker,
): OutboundPlan {
  if (isLoopback(dst.ip)) return refuse(`destination ${dst.ip} is loopback`);
  const service = store.serviceByVip(dst.ip);
  if (service) {
    const port = service.ports.find((p) => p.port === dst.port && p.protocol === 'TCP');
    if (!port) return refuse(`service ${service.namespace}/${service.name} has no TCP port ${dst.port}`);
    const binding = serviceWaypoint(store, service);
    if (binding.kind === 'missing')
      return refuse(
        `service ${service.namespace}/${service.name} is bound to waypoint ${binding.namespace}/${binding.name}, which does not exist`,
      );
    // A waypoint does its own load balancing: service traffic goes to it before any endpoint is chosen,
    // so no endpoint state (unknown pod, none ready) can route around it.
    if (binding.kind === 'waypoint') return viaWaypoint(store, local, binding, dst, service, undefined, pick);
    const endpoints = store.endpointsOf(service).filter((ep) => ep.targetPorts[dst.port] !== undefined);
    if (endpoints.length === 0)
      return refuse(
        `service ${service.namespace}/${service.name} has no ready endpoint for port ${dst.port}`,
      );
    const ep = endpoints[pick(endpoints.length)]!;
    const targetPort = ep.targetPorts[dst.port]!;
    const w = store.workloadByIp(ep.address);
    if (!w)
      return {
        kind: 'passthrough',
        target: { ip: ep.address, port: targetPort },
        dstWorkload: undefined,
        service,
        reason: 'endpoint is not a known pod',
      };
    return toWorkload(local, w, ep.address, targetPort, service);
  }
  const w = store.workloadByIp(dst.ip);
  if (!w)
    return {
      kind: 'passthrough',
      target: dst,
      dstWorkload: undefined,
      service: undefined,
      reason: 'destination is outside the mesh',
    };
  const binding = workloadWaypoint(store, w);
  if (binding.kind === 'missing')
    return refuse(
      `pod ${w.namespace}/${w.name} is bound to waypoint ${binding.namespace}/${binding.name}, which does not exist`,
    );
  if (binding.kind === 'waypoint') return viaWaypoint(store, local, binding, dst, undefined, w, pick);
  return toWorkload(local, w, dst.ip, dst.port, undefined);
}

export interface OutboundInputs {
  readonly local: LocalWorkloads;
  readonly certificates: CertificateManager;
  readonly pool: HboneClientPool;
  readonly metrics: TcpMetrics;
  readonly flows: FlowRing;
  readonly log: Logger;
  /** Passthrough connections: from the pod's own address when capture allows it. */
  readonly dial: UpstreamDialer;
  /**
   * Tunnels to a pod on this same node (capture only: the agent's own dial to a local pod's :15008
   * crosses no capture hook, so it cannot go through the HBONE listener).
   */
  readonly sameNode?: (socket: net.Socket, src: Workload, authority: string, answer: SameNodeAnswer) => void;
  readonly pick?: Picker;
  /** Connection bounds (per agent, per source pod); unbounded without. */
  readonly budget?: ConnectionBudget;
}

/**
 * How an entry point (SOCKS5, transparent listener) learns whether the connection went through. On
 * false it may answer and end the socket; a socket it leaves open is then reset.
 */
export type OutboundReady = (ok: boolean) => void;

export class OutboundProxy {
  readonly #in: OutboundInputs;
  /** The pumps of the connections carried, by application socket: what a drain ends them through. */
  readonly #pumps = new WeakMap<net.Socket, PumpHandle>();

  constructor(inputs: OutboundInputs) {
    this.#in = inputs;
  }

  /**
   * Carries `socket` (from a local workload) to `dst`. `ready` is called once, before any byte is
   * piped, with whether the far end was reached; on false the caller answers and closes the socket.
   */
  handle(socket: net.Socket, dst: Destination, ready: OutboundReady = noopReady): void {
    const { local, log } = this.#in;
    // A reset from the application before or during setup is its business; it must not crash the agent.
    socket.on('error', noopError);
    // Bytes an entry point already exchanged (a SOCKS5 handshake) are not the application's.
    const handshakeIn = socket.bytesRead;
    const handshakeOut = socket.bytesWritten;
    const srcIp = unmapIpv4(socket.remoteAddress);
    const src = local.owning(srcIp);
    if (!src) {
      log.warn(
        { 'src.addr': srcIp, 'dst.addr': formatHboneAuthority(dst.ip, dst.port) },
        'outbound connection from an address that is no enrolled local workload; refused',
      );
      refuseSocket(socket, ready);
      return;
    }
    const budget = this.#in.budget;
    if (budget) {
      if (budget.acquire('outbound', srcIp) !== undefined) {
        // Reset: the application learns at once; its pod is over its bound, or the agent over its own.
        ready(false);
        socket.resetAndDestroy();
        return;
      }
      socket.once('close', () => budget.release('outbound', srcIp));
    }
    const plan = planOutbound(local.store, local, dst, this.#in.pick);
    const srcId = local.spiffeIdOf(src);
    const result = new ConnectionResult(
      this.#in.metrics,
      log,
      {
        direction: 'outbound',
        srcAddr: formatHboneAuthority(srcIp, socket.remotePort ?? 0),
        src,
        srcIdentity: plan.kind === 'hbone' ? srcId : undefined,
        dstAddr:
          plan.kind === 'hbone'
            ? formatHboneAuthority(plan.nextHop.ip, plan.nextHop.port)
            : plan.kind === 'passthrough'
              ? formatHboneAuthority(plan.target.ip, plan.target.port)
              : formatHboneAuthority(dst.ip, dst.port),
        dstHboneAddr: plan.kind === 'hbone' ? plan.authority : undefined,
        dst: plan.kind === 'refuse' ? undefined : plan.dstWorkload,
        dstIdentity: plan.kind === 'hbone' ? plan.expectedIdentity : undefined,
        service: plan.kind === 'refuse' ? undefined : plan.service,
        clusterDomain: local.store.clusterDomain,
        path: flowPathOf(plan),
      },
      this.#in.flows,
    );
    if (plan.kind === 'refuse') {
      result.failed(plan.flag, plan.reason);
      result.close(0, 0);
      refuseSocket(socket, ready);
      return;
    }
    if (plan.kind === 'passthrough') {
      result.decided({ verdict: 'passthrough', reason: plan.reason });
      this.#in.dial(plan.target.ip, plan.target.port, srcIp, CONNECT_TIMEOUT_MS).then(
        (upstream) => this.#splice(socket, upstream, result, ready, handshakeIn, handshakeOut),
        (err: unknown) => this.#failed(socket, result, ready, 'CONNECT', err),
      );
      return;
    }
    if (this.#in.sameNode && local.owning(plan.nextHop.ip)) {
      // Both ends on this node: the inbound side's checks run in-process; bytes never leave the node.
      this.#in.sameNode(socket, src, plan.authority, (ok, denied) => {
        if (!ok && denied) {
          // As a remote agent's 401 is logged (verdict denied, flag DENY): a denial is no connect failure.
          result.decided({
            verdict: 'denied',
            policy: denied.policy,
            rule: denied.rule,
            reason: denied.message,
          });
          return this.#failed(
            socket,
            result,
            ready,
            'DENY',
            new Error(`denied by the destination side: ${denied.message}`),
          );
        }
        if (!ok)
          return this.#failed(socket, result, ready, 'CONNECT', new Error('refused by the destination side'));
        result.decided({ verdict: 'allowed', reason: 'same-node tunnel' });
        ready(true);
        result.opened();
        socket.once('close', () =>
          result.close(socket.bytesRead - handshakeIn, socket.bytesWritten - handshakeOut),
        );
      });
      return;
    }
    const names = workloadNames(src);
    const serviceHost = plan.service ? serviceFqdn(plan.service, local.store.clusterDomain) : undefined;
    const headers = {
      [HEADER_FORWARDED]: forwardedHeader(srcIp, socket.remotePort ?? 0, serviceHost),
      [HEADER_BAGGAGE]: baggageHeader({
        namespace: src.namespace,
        workloadType: 'pod',
        workloadName: src.name,
        canonicalService: names.canonicalService,
        canonicalRevision: names.canonicalRevision,
      }),
      [HEADER_TRACEPARENT]: newTraceparent(),
    };
    this.#in.certificates
      .fetch(srcId, Priority.RealTime)
      .then((cert) =>
        this.#in.pool.connect(
          {
            srcIdentity: srcId,
            dstIdentity: plan.expectedIdentity,
            dstIp: plan.nextHop.ip,
            dstPort: plan.nextHop.port,
          },
          cert,
          plan.authority,
          headers,
        ),
      )
      .then(
        (stream) => {
          result.decided({ verdict: 'allowed' });
          this.#splice(socket, stream, result, ready, handshakeIn, handshakeOut);
        },
        (err: unknown) => {
          const flag: ResponseFlag =
            err instanceof TunnelRefusedError ? (err.status === 401 ? 'DENY' : 'CONNECT') : 'CONNECT';
          if (err instanceof TunnelRefusedError && err.status === 401)
            result.decided({ verdict: 'denied', reason: err.message });
          this.#failed(socket, result, ready, flag, err);
        },
      );
  }

  #splice(
    socket: net.Socket,
    upstream: Duplex,
    result: ConnectionResult,
    ready: OutboundReady,
    handshakeIn: number,
    handshakeOut: number,
  ): void {
    if (socket.destroyed) {
      abort(upstream);
      result.close(0, 0);
      return;
    }
    ready(true);
    result.opened();
    const handle = pump(socket, upstream, (err) => {
      if (err) result.failed('-', errorMessage(err));
      // Request = what the application sent us; response = what we wrote back to it.
      result.close(socket.bytesRead - handshakeIn, socket.bytesWritten - handshakeOut);
    });
    this.#pumps.set(socket, handle);
  }

  /** How a drain ends the connection of application socket `socket` (the client asks). */
  exchangeOf(socket: net.Socket): ExchangeControl | undefined {
    const handle = this.#pumps.get(socket);
    return handle && exchangeControl(handle, socket);
  }

  #failed(
    socket: net.Socket,
    result: ConnectionResult,
    ready: OutboundReady,
    flag: ResponseFlag,
    err: unknown,
  ): void {
    result.failed(flag, errorMessage(err));
    result.close(0, 0);
    refuseSocket(socket, ready);
  }
}

/** The way a plan sends the connection, in flow events' words. */
export function flowPathOf(plan: OutboundPlan): FlowPath {
  if (plan.kind === 'refuse') return 'none';
  if (plan.kind === 'passthrough') return 'direct';
  return plan.viaWaypoint ? 'waypoint' : 'tunnel';
}

function refuseSocket(socket: net.Socket, ready: OutboundReady): void {
  ready(false);
  // An entry point may have written a refusal (SOCKS5 reply): let it flush, then close for good —
  // a half-open socket must not outlive the refusal however the client behaves.
  if (socket.writableEnded) socket.destroySoon();
  // A reset, as ztunnel does: the application sees a failed connection, not an empty answer (EOF).
  else socket.resetAndDestroy();
}

function noopError(): void {}

function noopReady(): void {}
