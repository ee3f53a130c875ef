// One record per proxied connection: labels fixed at open, bytes and verdict added as it goes, written
// once at close as one access-log line and Istio's TCP metrics (ztunnel's ConnectionResult), and as flow
// events (`open` when established, `close` at the end, denials included) for `weft observe`.
import type { Logger } from '../core/log.js';
import type { FlowPath, FlowPeer, FlowService, FlowVerdict } from '../core/flows/event.js';
import type { FlowRing } from '../core/flows/ring.js';
import { serviceFqdn, type Service } from '../core/model/service.js';
import type { Workload } from '../core/model/workload.js';
import { workloadNames } from '../core/telemetry/workload-names.js';
import type { ResponseFlag, TcpMetrics, TrafficLabels } from '../core/telemetry/tcp-metrics.js';

export type Direction = 'inbound' | 'outbound';

export interface ConnectionEnds {
  readonly direction: Direction;
  readonly srcAddr: string;
  readonly src: Workload | undefined;
  /** SPIFFE ID, without scheme stripping; undefined for plaintext. */
  readonly srcIdentity: string | undefined;
  /** The L4 next hop (`podIP:15008` for a tunnel). */
  readonly dstAddr: string;
  /** The CONNECT authority, when tunnelled. */
  readonly dstHboneAddr: string | undefined;
  readonly dst: Workload | undefined;
  readonly dstIdentity: string | undefined;
  readonly service: Service | undefined;
  readonly clusterDomain: string;
  /** How the connection travels (flow events): `direct`, `tunnel`, `waypoint`, or `none` when refused. */
  readonly path: FlowPath;
}

function principal(id: string | undefined): string {
  return id ?? 'unknown';
}

function trafficLabels(ends: ConnectionEnds, flag: ResponseFlag): TrafficLabels {
  const s = ends.src ? workloadNames(ends.src) : undefined;
  const d = ends.dst ? workloadNames(ends.dst) : undefined;
  const svc = ends.service;
  const mtls = ends.srcIdentity !== undefined && ends.dstIdentity !== undefined;
  return {
    reporter: ends.direction === 'outbound' ? 'source' : 'destination',
    source_workload: s?.workload ?? 'unknown',
    source_canonical_service: s?.canonicalService ?? 'unknown',
    source_canonical_revision: s?.canonicalRevision ?? 'unknown',
    source_workload_namespace: ends.src?.namespace ?? 'unknown',
    source_principal: principal(ends.srcIdentity),
    source_app: s?.app ?? 'unknown',
    source_version: s?.version ?? 'unknown',
    source_cluster: 'Kubernetes',
    destination_service: svc ? serviceFqdn(svc, ends.clusterDomain) : 'unknown',
    destination_service_namespace: svc?.namespace ?? 'unknown',
    destination_service_name: svc?.name ?? 'unknown',
    destination_workload: d?.workload ?? 'unknown',
    destination_canonical_service: d?.canonicalService ?? 'unknown',
    destination_canonical_revision: d?.canonicalRevision ?? 'unknown',
    destination_workload_namespace: ends.dst?.namespace ?? 'unknown',
    destination_principal: principal(ends.dstIdentity),
    destination_app: d?.app ?? 'unknown',
    destination_version: d?.version ?? 'unknown',
    destination_cluster: 'Kubernetes',
    request_protocol: 'tcp',
    response_flags: flag,
    connection_security_policy: mtls ? 'mutual_tls' : 'unknown',
  };
}

export interface ConnectionDecision {
  readonly verdict: 'allowed' | 'denied' | 'passthrough';
  readonly policy?: string | undefined;
  readonly rule?: number | undefined;
  readonly reason?: string | undefined;
}

function flowPeer(addr: string, w: Workload | undefined, identity: string | undefined): FlowPeer {
  const colon = addr.lastIndexOf(':');
  const ip = colon < 0 ? addr : addr.slice(0, colon).replace(/^\[|\]$/g, '');
  const port = colon < 0 ? 0 : Number(addr.slice(colon + 1)) || 0;
  if (!w) return identity === undefined ? { ip, port } : { ip, port, identity };
  return {
    ip,
    port,
    namespace: w.namespace,
    pod: w.name,
    workload: workloadNames(w).workload,
    ...(identity === undefined ? {} : { identity }),
  };
}

function flowService(svc: Service | undefined, clusterDomain: string): FlowService | undefined {
  return svc && { namespace: svc.namespace, name: svc.name, host: serviceFqdn(svc, clusterDomain) };
}

export class ConnectionResult {
  readonly #metrics: TcpMetrics;
  readonly #log: Logger;
  readonly #ends: ConnectionEnds;
  readonly #flows: FlowRing;
  readonly #startMs = Date.now();
  #flag: ResponseFlag = '-';
  #error: string | undefined = undefined;
  #decision: ConnectionDecision | undefined = undefined;
  #opened = false;
  #done = false;

  constructor(metrics: TcpMetrics, log: Logger, ends: ConnectionEnds, flows: FlowRing) {
    this.#metrics = metrics;
    this.#log = log;
    this.#ends = ends;
    this.#flows = flows;
  }

  /** The connection is established end to end: count it as opened. */
  opened(): void {
    if (this.#opened) return;
    this.#opened = true;
    this.#metrics.opened.inc(trafficLabels(this.#ends, this.#flag));
    this.#recordFlow('open', 'ALLOWED', undefined);
  }

  #recordFlow(
    type: 'open' | 'close',
    verdict: FlowVerdict,
    bytes: readonly [number, number] | undefined,
  ): void {
    const e = this.#ends;
    const d = this.#decision;
    const now = Date.now();
    const service = flowService(e.service, e.clusterDomain);
    this.#flows.record({
      time: now,
      type,
      direction: e.direction,
      path: e.path,
      protocol: 'tcp',
      source: flowPeer(e.srcAddr, e.src, e.srcIdentity),
      destination: flowPeer(e.dstHboneAddr ?? e.dstAddr, e.dst, e.dstIdentity),
      ...(service && { service }),
      verdict,
      ...(d?.policy !== undefined && { policy: d.policy }),
      ...(d?.rule !== undefined && { rule: d.rule }),
      ...((this.#error ?? d?.reason) !== undefined && { reason: this.#error ?? d?.reason }),
      flags: this.#flag,
      ...(bytes && { requestBytes: bytes[0], responseBytes: bytes[1], durationMs: now - this.#startMs }),
    });
  }

  decided(decision: ConnectionDecision): void {
    this.#decision = decision;
  }

  failed(flag: ResponseFlag, error: string): void {
    this.#flag = flag;
    this.#error = error;
  }

  /**
   * Writes the access log and metrics; later calls do nothing. `requestBytes` went from the client
   * towards the server, `responseBytes` back. Istio counts `istio_tcp_sent_bytes_total` as response
   * bytes and `istio_tcp_received_bytes_total` as request bytes for both reporters (ztunnel's copy.rs).
   */
  close(requestBytes: number, responseBytes: number): void {
    if (this.#done) return;
    this.#done = true;
    const labels = trafficLabels(this.#ends, this.#flag);
    if (this.#opened) {
      this.#metrics.closed.inc(labels);
      this.#metrics.sentBytes.inc(labels, responseBytes);
      this.#metrics.receivedBytes.inc(labels, requestBytes);
    }
    if (this.#flag !== '-') this.#metrics.failed.inc(labels);
    const e = this.#ends;
    const d = this.#decision;
    const verdict: FlowVerdict =
      d?.verdict === 'denied'
        ? 'DENIED'
        : this.#flag !== '-' || this.#error !== undefined
          ? 'ERROR'
          : 'ALLOWED';
    this.#recordFlow('close', verdict, [requestBytes, responseBytes]);
    const fields = {
      direction: e.direction,
      'src.addr': e.srcAddr,
      'src.workload': e.src?.name,
      'src.namespace': e.src?.namespace,
      'src.identity': e.srcIdentity,
      'dst.addr': e.dstAddr,
      'dst.hbone_addr': e.dstHboneAddr,
      'dst.service': labels.destination_service === 'unknown' ? undefined : labels.destination_service,
      'dst.workload': e.dst?.name,
      'dst.namespace': e.dst?.namespace,
      'dst.identity': e.dstIdentity,
      request_bytes: requestBytes,
      response_bytes: responseBytes,
      duration_ms: Date.now() - this.#startMs,
      verdict: d?.verdict,
      policy: d?.policy,
      rule: d?.rule,
      reason: d?.reason,
      response_flags: this.#flag,
      error: this.#error,
    };
    if (this.#error) this.#log.warn(fields, 'connection complete');
    else this.#log.info(fields, 'connection complete');
  }
}
