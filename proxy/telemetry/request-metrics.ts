// Istio's standard HTTP metrics as a waypoint reports them (istio/proxy istio_stats.cc, reporter
// `waypoint`): the same names, label set, label values and histogram buckets, so existing Istio
// dashboards and alerts work on a Weft waypoint unchanged.
//
// Labels are Istio's TCP label set (core/telemetry/tcp-metrics.ts) plus `response_code` and
// `grpc_response_status`; Istio has no `destination_port` or locality labels on these metrics. Most
// label values depend only on who talks to whom, so RequestLabelCache builds that part once per
// (source, destination service, destination workload) and keeps one finished, frozen label object per
// outcome (protocol, code, gRPC status, flags): a steady request stream allocates no label objects.
import { Counter, Histogram, type Registry } from 'prom-client';
import { serviceFqdn, type Service } from '../../core/model/service.js';
import type { Workload } from '../../core/model/workload.js';
import { DEFAULT_TRUST_DOMAIN, formatSpiffeId, parseSpiffeId } from '../../core/spiffe.js';
import { TRAFFIC_LABEL_NAMES, type TrafficLabels } from '../../core/telemetry/tcp-metrics.js';
import { workloadNames } from '../../core/telemetry/workload-names.js';
import { formatResponseFlags, type HttpResponseFlag } from './response-flags.js';

export const REQUEST_LABEL_NAMES = [...TRAFFIC_LABEL_NAMES, 'response_code', 'grpc_response_status'] as const;
export type RequestLabelName = (typeof REQUEST_LABEL_NAMES)[number];
export type RequestLabels = Readonly<Record<RequestLabelName, string>>;

/**
 * Envoy's default histogram buckets. Istio sets no bucket override unless a pod carries the
 * `sidecar.istio.io/statsHistogramBuckets` annotation, so all three Istio histograms use these, the byte
 * histograms included: dashboards' `le` values and bucket-based quantiles line up only with these.
 */
export const ENVOY_DEFAULT_BUCKETS: readonly number[] = Object.freeze([
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000,
  3600000,
]);

export const WAYPOINT_REPORTER = 'waypoint';
/** Istio's cluster id for a single-cluster mesh; the node agent reports the same. */
export const DEFAULT_CLUSTER_ID = 'Kubernetes';
const UNKNOWN = 'unknown';

export type RequestProtocol = 'http' | 'grpc';

/** Who talks to whom: fixed for a source and the destination picked, whatever the request. */
export interface RequestPeers {
  /** The HBONE client's SPIFFE ID from its certificate; undefined when it presented none. */
  readonly sourceIdentity: string | undefined;
  /** The client's pod, when its address names one. */
  readonly sourceWorkload: Workload | undefined;
  /** The Service the request was addressed to; undefined when none matched (passthrough, no route). */
  readonly destinationService: Service | undefined;
  /** The endpoint the request was sent to; undefined when none was chosen (local reply, no endpoint). */
  readonly destinationWorkload: Workload | undefined;
}

/** What varies per request. */
export interface RequestOutcome {
  /** `grpc` when the request's content-type is application/grpc*, as Envoy decides. */
  readonly protocol: RequestProtocol;
  /** The status sent downstream; 0 when none was sent (the client went away first), as Envoy reports. */
  readonly responseCode: number;
  /** The gRPC status (trailers or a trailers-only response); undefined when absent or not gRPC. */
  readonly grpcStatus: number | undefined;
  readonly responseFlags: readonly HttpResponseFlag[];
}

export interface RequestLabelOptions {
  /** For `destination_service`, the Service's FQDN `<name>.<namespace>.svc.<clusterDomain>`. */
  readonly clusterDomain: string;
  /** For `destination_principal`, the endpoint's SPIFFE ID; default cluster.local. */
  readonly trustDomain?: string;
  /** `source_cluster` (when the source is known) and `destination_cluster`; default Kubernetes. */
  readonly clusterId?: string;
}

type PeerLabelName = Exclude<
  RequestLabelName,
  'request_protocol' | 'response_flags' | 'response_code' | 'grpc_response_status'
>;
type PeerLabels = Readonly<Record<PeerLabelName, string>>;

/** The namespace segment of a SPIFFE ID, or undefined when it does not parse. */
function identityNamespace(identity: string): string | undefined {
  try {
    return parseSpiffeId(identity).namespace;
  } catch {
    return undefined;
  }
}

/**
 * The labels that depend only on the peers, with istio_stats.cc's waypoint fallbacks: an unknown
 * source's namespace comes from its SPIFFE ID and its canonical revision is `latest`; an unknown
 * Service falls back to the endpoint's canonical service; `connection_security_policy` is `mutual_tls`
 * when the client presented an identity (HBONE always does) and `none` otherwise.
 */
function peerLabels(peers: RequestPeers, options: RequestLabelOptions): PeerLabels {
  const {
    sourceIdentity: srcId,
    sourceWorkload: src,
    destinationService: svc,
    destinationWorkload: dst,
  } = peers;
  const cluster = options.clusterId ?? DEFAULT_CLUSTER_ID;
  const s = src ? workloadNames(src) : undefined;
  const d = dst ? workloadNames(dst) : undefined;
  const dstPrincipal = dst
    ? formatSpiffeId({
        trustDomain: options.trustDomain ?? DEFAULT_TRUST_DOMAIN,
        namespace: dst.namespace,
        serviceAccount: dst.serviceAccount,
      })
    : UNKNOWN;
  return {
    reporter: WAYPOINT_REPORTER,
    source_workload: s?.workload ?? UNKNOWN,
    source_canonical_service: s?.canonicalService ?? UNKNOWN,
    source_canonical_revision: s?.canonicalRevision ?? 'latest',
    source_workload_namespace:
      src?.namespace ?? (srcId !== undefined ? identityNamespace(srcId) : undefined) ?? UNKNOWN,
    source_principal: srcId ?? UNKNOWN,
    source_app: s?.app ?? UNKNOWN,
    source_version: s?.version ?? UNKNOWN,
    source_cluster: src ? cluster : UNKNOWN,
    destination_service: svc ? serviceFqdn(svc, options.clusterDomain) : (d?.canonicalService ?? UNKNOWN),
    destination_service_namespace: svc?.namespace ?? dst?.namespace ?? UNKNOWN,
    destination_service_name: svc?.name ?? d?.canonicalService ?? UNKNOWN,
    destination_workload: d?.workload ?? UNKNOWN,
    destination_canonical_service: d?.canonicalService ?? UNKNOWN,
    destination_canonical_revision: d?.canonicalRevision ?? UNKNOWN,
    destination_workload_namespace: dst?.namespace ?? UNKNOWN,
    destination_principal: dstPrincipal,
    destination_app: d?.app ?? UNKNOWN,
    destination_version: d?.version ?? UNKNOWN,
    destination_cluster: cluster,
    connection_security_policy: srcId !== undefined ? 'mutual_tls' : 'none',
  };
}

/** `grpc_response_status` is empty for plain HTTP and for gRPC without a status, as in istio_stats.cc. */
function grpcStatusLabel(outcome: RequestOutcome): string {
  return outcome.protocol === 'grpc' && outcome.grpcStatus !== undefined ? String(outcome.grpcStatus) : '';
}

function withOutcome(base: PeerLabels, outcome: RequestOutcome, flags: string, grpc: string): RequestLabels {
  // Written out in REQUEST_LABEL_NAMES order so every object has the same shape.
  return Object.freeze({
    reporter: base.reporter,
    source_workload: base.source_workload,
    source_canonical_service: base.source_canonical_service,
    source_canonical_revision: base.source_canonical_revision,
    source_workload_namespace: base.source_workload_namespace,
    source_principal: base.source_principal,
    source_app: base.source_app,
    source_version: base.source_version,
    source_cluster: base.source_cluster,
    destination_service: base.destination_service,
    destination_service_namespace: base.destination_service_namespace,
    destination_service_name: base.destination_service_name,
    destination_workload: base.destination_workload,
    destination_canonical_service: base.destination_canonical_service,
    destination_canonical_revision: base.destination_canonical_revision,
    destination_workload_namespace: base.destination_workload_namespace,
    destination_principal: base.destination_principal,
    destination_app: base.destination_app,
    destination_version: base.destination_version,
    destination_cluster: base.destination_cluster,
    request_protocol: outcome.protocol,
    response_flags: flags,
    connection_security_policy: base.connection_security_policy,
    response_code: String(outcome.responseCode),
    grpc_response_status: grpc,
  });
}

/** The full label set for one request, built from scratch; RequestLabelCache is the per-request path. */
export function buildRequestLabels(
  peers: RequestPeers,
  outcome: RequestOutcome,
  options: RequestLabelOptions,
): RequestLabels {
  return withOutcome(
    peerLabels(peers, options),
    outcome,
    formatResponseFlags(outcome.responseFlags),
    grpcStatusLabel(outcome),
  );
}

// Distinct (source, destination) pairs are bounded by the mesh's size, not by traffic; the cap only
// guards against churn (pods replaced all day). Reaching it clears the cache, which costs a rebuild.
const DEFAULT_MAX_PEER_ENTRIES = 4096;
// Outcomes per pair are few (a handful of codes times flags); past this, label objects are built per
// request rather than letting a misbehaving backend's status codes grow memory.
const MAX_OUTCOMES_PER_PEER = 64;

class PeerEntry {
  readonly base: PeerLabels;
  readonly outcomes = new Map<string, RequestLabels>();

  constructor(base: PeerLabels) {
    this.base = base;
  }
}

/**
 * Label objects for the waypoint's requests, cached. Records are immutable and replaced whole when
 * they change, so entries are keyed by record identity: a replaced Workload or Service (new labels)
 * gets a fresh entry, never stale values. Returned objects are frozen and shared; do not modify them.
 */
export class RequestLabelCache {
  readonly #options: RequestLabelOptions;
  readonly #maxEntries: number;
  readonly #entries = new Map<string, PeerEntry>();
  // Small numbers standing for record objects in string keys; weak, so replaced records are collected.
  readonly #ids = new WeakMap<object, number>();
  #nextId = 1;

  constructor(options: RequestLabelOptions, maxEntries = DEFAULT_MAX_PEER_ENTRIES) {
    this.#options = options;
    this.#maxEntries = maxEntries;
  }

  /** How many (source, destination) entries are cached; for tests and the admin page. */
  get size(): number {
    return this.#entries.size;
  }

  labels(peers: RequestPeers, outcome: RequestOutcome): RequestLabels {
    const entry = this.#entry(peers);
    const flags = formatResponseFlags(outcome.responseFlags);
    const grpc = grpcStatusLabel(outcome);
    const key = `${outcome.protocol} ${outcome.responseCode} ${grpc} ${flags}`;
    let labels = entry.outcomes.get(key);
    if (labels === undefined) {
      labels = withOutcome(entry.base, outcome, flags, grpc);
      if (entry.outcomes.size < MAX_OUTCOMES_PER_PEER) entry.outcomes.set(key, labels);
    }
    return labels;
  }

  #id(record: object | undefined): number {
    if (record === undefined) return 0;
    let id = this.#ids.get(record);
    if (id === undefined) {
      id = this.#nextId++;
      this.#ids.set(record, id);
    }
    return id;
  }

  #entry(peers: RequestPeers): PeerEntry {
    // The identity goes last: it is the only free-form part, so the key stays unambiguous.
    const key = `${this.#id(peers.sourceWorkload)} ${this.#id(peers.destinationService)} ${this.#id(
      peers.destinationWorkload,
    )} ${peers.sourceIdentity ?? ''}`;
    let entry = this.#entries.get(key);
    if (entry === undefined) {
      if (this.#entries.size >= this.#maxEntries) this.#entries.clear();
      entry = new PeerEntry(peerLabels(peers, this.#options));
      this.#entries.set(key, entry);
    }
    return entry;
  }
}

/** One request's measurements. */
export interface RequestMeasurement {
  /** From the first request byte received to the last response byte sent. */
  readonly durationMs: number;
  /** Bytes received from the client, headers included (Envoy's downstream wire bytes). */
  readonly requestBytes: number;
  /** Bytes sent to the client, headers included. */
  readonly responseBytes: number;
}

interface BoundMetrics {
  readonly requests: { inc(): void };
  readonly duration: { observe(value: number): void };
  readonly requestBytes: { observe(value: number): void };
  readonly responseBytes: { observe(value: number): void };
}

export class RequestMetrics {
  readonly requests: Counter<RequestLabelName>;
  readonly duration: Histogram<RequestLabelName>;
  readonly requestBytes: Histogram<RequestLabelName>;
  readonly responseBytes: Histogram<RequestLabelName>;

  constructor(registry: Registry) {
    const histogram = (name: string, help: string) =>
      new Histogram({
        name,
        help,
        labelNames: REQUEST_LABEL_NAMES,
        buckets: [...ENVOY_DEFAULT_BUCKETS],
        registers: [registry],
      });
    this.requests = new Counter({
      name: 'istio_requests_total',
      help: 'Total HTTP requests handled by the waypoint',
      labelNames: REQUEST_LABEL_NAMES,
      registers: [registry],
    });
    this.duration = histogram('istio_request_duration_milliseconds', 'HTTP request duration in milliseconds');
    this.requestBytes = histogram('istio_request_bytes', 'HTTP request size in bytes');
    this.responseBytes = histogram('istio_response_bytes', 'HTTP response size in bytes');
  }

  /** Counts one finished request; called once per request, when its access log is written. */
  record(labels: RequestLabels, m: RequestMeasurement): void {
    const c = this.#childrenOf(labels);
    c.requests.inc();
    c.duration.observe(m.durationMs);
    c.requestBytes.observe(m.requestBytes);
    c.responseBytes.observe(m.responseBytes);
  }

  // prom-client hashes and validates all 27 labels on every inc/observe; the label objects come shared
  // from RequestLabelCache, so their bound children are looked up once per object instead.
  readonly #children = new WeakMap<RequestLabels, BoundMetrics>();

  #childrenOf(labels: RequestLabels): BoundMetrics {
    let c = this.#children.get(labels);
    if (c === undefined) {
      c = {
        requests: this.requests.labels(labels),
        duration: this.duration.labels(labels),
        requestBytes: this.requestBytes.labels(labels),
        responseBytes: this.responseBytes.labels(labels),
      };
      this.#children.set(labels, c);
    }
    return c;
  }
}

/**
 * The labels of Istio's TCP metrics for a connection the waypoint piped (not HTTP): the same peer
 * labels as its requests, with request_protocol "tcp" and the connection's response flag.
 */
export function waypointTcpLabels(
  peers: RequestPeers,
  options: RequestLabelOptions,
  flag: string,
): TrafficLabels {
  return { ...peerLabels(peers, options), request_protocol: 'tcp', response_flags: flag };
}
