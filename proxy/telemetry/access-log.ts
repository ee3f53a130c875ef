// One access-log record per request, built from what the HTTP layer collected; the caller writes it
// with its pino logger at the request's end (`log.info(accessLogRecord(r), ACCESS_LOG_MESSAGE)`).
// Fields Envoy has are named as in Istio's JSON access log (`meshConfig.accessLogEncoding: JSON`), so log
// queries written for Istio work; mesh context Istio does not log by default uses the dotted names of
// the node agent's log (`src.identity`, `dst.service`). A value we do not have is left out, where
// Envoy would print `-`.
import { formatResponseFlags, type HttpResponseFlag } from './response-flags.js';

export const ACCESS_LOG_MESSAGE = 'request complete';

/** Envoy's %RESPONSE_CODE_DETAILS% values the waypoint produces (RBAC denials come from proxy/authz). */
export const RESPONSE_DETAILS = Object.freeze({
  /** The response came from the upstream. */
  viaUpstream: 'via_upstream',
  /** No route rule matched. */
  routeNotFound: 'route_not_found',
  /** The chosen backend had no ready endpoint. */
  noHealthyUpstream: 'no_healthy_upstream',
  /** Connecting to the endpoint failed, or it reset, before any response byte. */
  upstreamResetBeforeResponse: 'upstream_reset_before_response_started',
  /** The upstream went away after the response had started. */
  upstreamResetAfterResponse: 'upstream_reset_after_response_started',
  /** The route's timeout fired. */
  upstreamTimeout: 'upstream_response_timeout',
  /** The client went away before the response was complete. */
  downstreamRemoteDisconnect: 'downstream_remote_disconnect',
  /** A redirect filter answered. */
  directResponse: 'direct_response',
} as const);

export type HttpProtocol = 'HTTP/1.0' | 'HTTP/1.1' | 'HTTP/2';

/** What the HTTP layer knows about a finished request. */
export interface AccessLogInput {
  /** When the request's first byte arrived (epoch ms). */
  readonly startTimeMs: number;
  readonly method: string;
  /** The path as received, before any rewrite. */
  readonly path: string;
  readonly protocol: HttpProtocol;
  /** `:authority` or `host`. */
  readonly authority: string | undefined;
  /** The status sent downstream; 0 when none was sent. */
  readonly responseCode: number;
  readonly responseFlags: readonly HttpResponseFlag[];
  /** Why this response, in Envoy's words: RESPONSE_DETAILS or proxy/authz's RBAC detail. */
  readonly responseCodeDetails: string;
  /** Request body bytes received from the client. */
  readonly bytesReceived: number;
  /** Response body bytes sent to the client. */
  readonly bytesSent: number;
  /** From the first request byte to the last response byte. */
  readonly durationMs: number;
  /** The endpoint of the last attempt, `ip:port`; undefined when none was tried. */
  readonly upstreamHost: string | undefined;
  /** Istio's cluster name for the backend, e.g. `outbound|80||reviews.default.svc.cluster.local`. */
  readonly upstreamCluster: string | undefined;
  /** From sending the request upstream to the response head (Envoy's x-envoy-upstream-service-time). */
  readonly upstreamServiceTimeMs: number | undefined;
  /** Attempts sent upstream, retries included; 0 when the waypoint answered locally. */
  readonly upstreamAttempts: number;
  readonly forwardedFor: string | undefined;
  readonly userAgent: string | undefined;
  readonly requestId: string;
  /** The HBONE client's SPIFFE ID. */
  readonly sourceIdentity: string | undefined;
  /** The client's `ip:port` (from the tunnel's `forwarded` header, else the tunnel peer). */
  readonly sourceAddress: string | undefined;
  /** The addressed Service's FQDN. */
  readonly destinationService: string | undefined;
  /** The rule that matched: `<namespace>/<route name>` with its rule index, e.g. `default/reviews.0`. */
  readonly routeName: string | undefined;
  readonly traceId: string | undefined;
}

/** The logged object. Optional fields are absent (not null) when unknown, so they cost nothing in JSON. */
export interface AccessLogRecord {
  readonly start_time: string;
  readonly method: string;
  readonly path: string;
  readonly protocol: HttpProtocol;
  readonly response_code: number;
  readonly response_flags: string;
  readonly response_code_details: string;
  readonly bytes_received: number;
  readonly bytes_sent: number;
  readonly duration: number;
  readonly upstream_service_time?: number;
  readonly upstream_host?: string;
  readonly upstream_cluster?: string;
  readonly upstream_request_attempt_count: number;
  readonly x_forwarded_for?: string;
  readonly user_agent?: string;
  readonly request_id: string;
  readonly authority?: string;
  readonly downstream_remote_address?: string;
  readonly route_name?: string;
  readonly trace_id?: string;
  readonly 'src.identity'?: string;
  readonly 'dst.service'?: string;
}

/** Whole milliseconds, truncated as in Envoy's %DURATION%. */
function ms(value: number): number {
  return Math.floor(value);
}

export function accessLogRecord(r: AccessLogInput): AccessLogRecord {
  // Undefined values are omitted by JSON.stringify and by pino, so optional fields need no branches.
  return {
    start_time: new Date(r.startTimeMs).toISOString(),
    method: r.method,
    path: r.path,
    protocol: r.protocol,
    response_code: r.responseCode,
    response_flags: formatResponseFlags(r.responseFlags),
    response_code_details: r.responseCodeDetails,
    bytes_received: r.bytesReceived,
    bytes_sent: r.bytesSent,
    duration: ms(r.durationMs),
    upstream_service_time: r.upstreamServiceTimeMs === undefined ? undefined : ms(r.upstreamServiceTimeMs),
    upstream_host: r.upstreamHost,
    upstream_cluster: r.upstreamCluster,
    upstream_request_attempt_count: r.upstreamAttempts,
    x_forwarded_for: r.forwardedFor,
    user_agent: r.userAgent,
    request_id: r.requestId,
    authority: r.authority,
    downstream_remote_address: r.sourceAddress,
    route_name: r.routeName,
    trace_id: r.traceId,
    'src.identity': r.sourceIdentity,
    'dst.service': r.destinationService,
  };
}
