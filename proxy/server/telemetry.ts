// The waypoint's telemetry for each finished request or TCP connection: Istio's metrics with
// reporter="waypoint", one access-log line, a flow event (`weft observe`), and the request's span
// (exported only when an OTLP endpoint is configured; otherwise the client's trace context passes through
// unchanged).
import type { Registry } from 'prom-client';
import type { Logger } from '../../core/log.js';
import type { ConfigStore } from '../../core/store.js';
import { serviceFqdn } from '../../core/model/service.js';
import { formatHboneAuthority } from '../../core/hbone/authority.js';
import { accessLogRecord, ACCESS_LOG_MESSAGE } from '../telemetry/access-log.js';
import { RequestLabelCache, RequestMetrics, waypointTcpLabels } from '../telemetry/request-metrics.js';
import { TcpMetrics } from '../../core/telemetry/tcp-metrics.js';
import { formatTraceparent, parseTraceContext } from '../telemetry/trace-context.js';
import { createTracer, spanName, type RequestTracer } from '../telemetry/tracing.js';
import type { NamespacedName } from '../authz/index.js';
import type { Tunnel } from '../tunnel/hbone-server.js';
import type { DownstreamRequest, RequestOutcome, RequestTrace } from './request-handler.js';
import type { TcpOutcome } from './tcp-forward.js';
import type { FlowRing } from '../../core/flows/ring.js';
import type { FlowPeer, FlowService, FlowVerdict } from '../../core/flows/event.js';
import type { Workload } from '../../core/model/workload.js';
import type { Service } from '../../core/model/service.js';
import type { Endpoint } from '../forward/connector.js';
import { formatSpiffeId } from '../../core/spiffe.js';
import { workloadNames } from '../../core/telemetry/workload-names.js';
import type { WaypointVerdict } from '../authz/index.js';

export interface TelemetryInputs {
  readonly registry: Registry;
  readonly waypoint: NamespacedName;
  readonly store: ConfigStore;
  readonly trustDomain: string;
  readonly otlpEndpoint: string | undefined;
  readonly log: Logger;
  readonly flows: FlowRing;
}

function peerOf(ip: string, port: number, w: Workload | undefined, identity: string | undefined): FlowPeer {
  const names = w && { namespace: w.namespace, pod: w.name, workload: workloadNames(w).workload };
  return { ip, port, ...names, ...(identity !== undefined && { identity }) };
}

function serviceOf(svc: Service | undefined, clusterDomain: string): FlowService | undefined {
  return svc && { namespace: svc.namespace, name: svc.name, host: serviceFqdn(svc, clusterDomain) };
}

/** The deciding policy and rule of a verdict, as flow events carry them. */
function decidedBy(verdict: WaypointVerdict | undefined): { policy?: string; rule?: number } {
  const policy = verdict?.policy;
  const rule = verdict?.rule;
  if (policy === undefined) return {};
  return rule === undefined ? { policy } : { policy, rule };
}

const NO_FLAGS: readonly [] = [];

export class WaypointTelemetry {
  readonly #in: TelemetryInputs;
  readonly #metrics: RequestMetrics;
  readonly #labels: RequestLabelCache;
  readonly #tracer: RequestTracer;
  readonly #tcp: TcpMetrics;

  constructor(inputs: TelemetryInputs) {
    this.#in = inputs;
    this.#metrics = new RequestMetrics(inputs.registry);
    this.#tcp = new TcpMetrics(inputs.registry);
    this.#labels = new RequestLabelCache({
      clusterDomain: inputs.store.clusterDomain,
      trustDomain: inputs.trustDomain,
    });
    this.#tracer = createTracer({
      otlpEndpoint: inputs.otlpEndpoint,
      serviceName: `${inputs.waypoint.name}.${inputs.waypoint.namespace}`,
      attributes: { 'k8s.namespace.name': inputs.waypoint.namespace },
      logger: inputs.log,
    });
  }

  /** The span of one request, child of the client's context; its context is what goes upstream. */
  startTrace(req: DownstreamRequest, tunnel: Tunnel): RequestTrace {
    const parent = parseTraceContext(req.headers.traceparent, req.headers.tracestate);
    const { dialled } = tunnel.target;
    const host =
      tunnel.target.kind === 'service'
        ? serviceFqdn(tunnel.target.service, this.#in.store.clusterDomain)
        : dialled.ip;
    const span = this.#tracer.startServerSpan(parent, spanName(host, dialled.port), {
      'http.method': req.method,
      'http.url': req.url,
      'istio.namespace': this.#in.waypoint.namespace,
      'istio.source_principal': tunnel.peerId,
    });
    return {
      traceparent: span.context ? formatTraceparent(span.context) : undefined,
      end: (status) => span.end(status),
    };
  }

  request(o: RequestOutcome): void {
    const flags = o.flag === '-' ? NO_FLAGS : [o.flag];
    const store = this.#in.store;
    const destinationWorkload = o.upstream
      ? (o.upstream.workload ?? store.workloadByIp(o.upstream.ip))
      : undefined;
    const grpc = o.grpcStatus === undefined ? undefined : Number(o.grpcStatus);
    const labels = this.#labels.labels(
      {
        sourceIdentity: o.tunnel.peerId,
        sourceWorkload: o.tunnel.sourceWorkload,
        destinationService: o.service,
        destinationWorkload,
      },
      {
        protocol: o.requestProtocol,
        responseCode: o.status,
        grpcStatus: Number.isInteger(grpc) ? grpc : undefined,
        responseFlags: flags,
      },
    );
    this.#metrics.record(labels, {
      durationMs: o.durationMs,
      requestBytes: o.requestBytes,
      responseBytes: o.responseBytes,
    });
    const destinationService = o.service ? serviceFqdn(o.service, store.clusterDomain) : undefined;
    const denied = o.verdict !== undefined && !o.verdict.allowed;
    const verdict: FlowVerdict = denied
      ? 'DENIED'
      : o.verdict === undefined || o.flag !== '-'
        ? 'ERROR'
        : 'ALLOWED';
    const service = serviceOf(o.service, store.clusterDomain);
    const query = o.path.indexOf('?');
    this.#in.flows.record({
      time: Date.now(),
      type: 'request',
      path: 'waypoint',
      protocol: o.requestProtocol,
      source: peerOf(o.tunnel.source.ip, o.tunnel.source.port, o.tunnel.sourceWorkload, o.tunnel.peerId),
      destination: this.#destination(o.tunnel, o.upstream, destinationWorkload),
      ...(service && { service }),
      verdict,
      ...decidedBy(o.verdict),
      reason: denied ? o.verdict!.message : o.details,
      flags: o.flag,
      requestBytes: o.requestBytes,
      responseBytes: o.responseBytes,
      durationMs: o.durationMs,
      http: {
        method: o.method,
        path: o.normalizedPath ?? (query < 0 ? o.path : o.path.slice(0, query)),
        ...(o.authority !== undefined && { host: o.authority }),
        status: o.status,
        ...(grpc !== undefined && Number.isInteger(grpc) && { grpcStatus: grpc }),
        ...(o.route !== undefined && { route: o.route }),
      },
    });
    this.#in.log.info(
      accessLogRecord({
        startTimeMs: o.startTime.getTime(),
        method: o.method,
        path: o.path,
        protocol: o.protocol,
        authority: o.authority,
        responseCode: o.status,
        responseFlags: flags,
        responseCodeDetails: o.details,
        bytesReceived: o.requestBytes,
        bytesSent: o.responseBytes,
        durationMs: o.durationMs,
        upstreamHost: o.upstream && formatHboneAuthority(o.upstream.ip, o.upstream.port),
        upstreamCluster:
          o.service && o.upstream
            ? `outbound|${o.service.ports[0]?.port ?? 0}||${destinationService ?? ''}`
            : undefined,
        upstreamServiceTimeMs: o.upstreamMs,
        upstreamAttempts: o.attempts,
        forwardedFor: o.forwardedFor,
        userAgent: o.userAgent,
        requestId: o.requestId,
        sourceIdentity: o.tunnel.peerId,
        sourceAddress: formatHboneAuthority(o.tunnel.source.ip, o.tunnel.source.port),
        destinationService,
        routeName: o.route,
        traceId: o.traceparent?.split('-')[1],
      }),
      ACCESS_LOG_MESSAGE,
    );
  }

  tcp(o: TcpOutcome): void {
    const store = this.#in.store;
    const flag = !o.allowed ? 'DENY' : o.error !== undefined ? (o.upstream ? 'UF' : 'UH') : '-';
    const labels = waypointTcpLabels(
      {
        sourceIdentity: o.tunnel.peerId,
        sourceWorkload: o.tunnel.sourceWorkload,
        destinationService: o.tunnel.target.kind === 'service' ? o.tunnel.target.service : undefined,
        destinationWorkload: o.upstream
          ? (o.upstream.workload ?? store.workloadByIp(o.upstream.ip))
          : undefined,
      },
      { clusterDomain: store.clusterDomain, trustDomain: this.#in.trustDomain },
      flag,
    );
    // Counted when the connection ends (opened and closed together), with its bytes each way.
    this.#tcp.opened.inc(labels);
    this.#tcp.closed.inc(labels);
    if (flag !== '-') this.#tcp.failed.inc(labels);
    this.#tcp.receivedBytes.inc(labels, o.sentBytes);
    this.#tcp.sentBytes.inc(labels, o.receivedBytes);
    this.#in.log.info(
      {
        'src.identity': o.tunnel.peerId,
        'src.addr': formatHboneAuthority(o.tunnel.source.ip, o.tunnel.source.port),
        'dst.addr': formatHboneAuthority(o.tunnel.target.dialled.ip, o.tunnel.target.dialled.port),
        upstream_host: o.upstream && formatHboneAuthority(o.upstream.ip, o.upstream.port),
        allowed: o.allowed,
        policy: o.policy,
        error: o.error,
        bytes_sent: o.receivedBytes,
        bytes_received: o.sentBytes,
        duration: Math.floor(o.durationMs),
      },
      'tcp connection complete',
    );
    const upstreamWorkload = o.upstream
      ? (o.upstream.workload ?? store.workloadByIp(o.upstream.ip))
      : undefined;
    const service = serviceOf(
      o.tunnel.target.kind === 'service' ? o.tunnel.target.service : undefined,
      store.clusterDomain,
    );
    this.#in.flows.record({
      time: Date.now(),
      type: 'close',
      path: 'waypoint',
      protocol: 'tcp',
      source: peerOf(o.tunnel.source.ip, o.tunnel.source.port, o.tunnel.sourceWorkload, o.tunnel.peerId),
      destination: this.#destination(o.tunnel, o.upstream, upstreamWorkload),
      ...(service && { service }),
      verdict: !o.allowed ? 'DENIED' : o.error !== undefined ? 'ERROR' : 'ALLOWED',
      ...decidedBy(o.verdict),
      reason: !o.allowed ? o.verdict.message : (o.error ?? o.verdict.message),
      flags: flag,
      requestBytes: o.sentBytes,
      responseBytes: o.receivedBytes,
      durationMs: o.durationMs,
    });
  }

  /** The endpoint the waypoint chose, or, before any was, the address the client dialled. */
  #destination(tunnel: Tunnel, upstream: Endpoint | undefined, workload: Workload | undefined): FlowPeer {
    const identity =
      workload &&
      formatSpiffeId({
        trustDomain: this.#in.trustDomain,
        namespace: workload.namespace,
        serviceAccount: workload.serviceAccount,
      });
    return upstream
      ? peerOf(upstream.ip, upstream.port, workload, identity)
      : peerOf(tunnel.target.dialled.ip, tunnel.target.dialled.port, undefined, undefined);
  }

  close(): Promise<void> {
    return this.#tracer.shutdown();
  }
}
