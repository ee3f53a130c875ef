// Envoy's short response flags, as the waypoint sets them: the `response_flags` label of Istio's HTTP
// metrics and the field of the same name in the access log. Operators already grep and alert on these
// strings, so they are Envoy's own, never renamed. ztunnel's L4 flags live in core/telemetry/tcp-metrics.ts.

/** One Envoy response flag; a request may carry several. */
export type HttpResponseFlag =
  /** No healthy upstream: the backend has no ready endpoint. */
  | 'UH'
  /** Upstream connection failure: the tunnel or TCP connect to the endpoint failed. */
  | 'UF'
  /** Upstream request timeout: the route's timeout fired before the response. */
  | 'UT'
  /** Upstream retry limit exceeded: the last attempt's failure is what the client got. */
  | 'URX'
  /** No route: no rule matched (404), or the route's backend does not exist. */
  | 'NR'
  /** Upstream connection termination: the endpoint reset or closed mid-request. */
  | 'UC'
  /** Downstream connection termination: the client went away before the response completed. */
  | 'DC'
  /** Rate limited. */
  | 'RL'
  /** Denied by an authorization policy (Envoy's RBAC filter). */
  | 'RBAC'
  /** Downstream protocol error: the client's request was malformed (framing, headers). */
  | 'DPE'
  /** Upstream protocol error: the endpoint's response was malformed. */
  | 'UPE'
  /** Upstream overflow: a connection or pending-request limit refused the request. */
  | 'UO'
  /** Local reset: the waypoint itself reset the stream. */
  | 'LR'
  /** Stream idle timeout. */
  | 'SI'
  /** Max stream duration reached. */
  | 'DT';

/** No flag: Envoy's `-`. */
export const NO_RESPONSE_FLAGS = '-';

/** Envoy's rendering: `-` for none, else the flags joined by `,` in the order given. */
export function formatResponseFlags(flags: readonly HttpResponseFlag[]): string {
  // The common cases (none, one) allocate nothing.
  if (flags.length === 0) return NO_RESPONSE_FLAGS;
  if (flags.length === 1) return flags[0] as string;
  return flags.join(',');
}
