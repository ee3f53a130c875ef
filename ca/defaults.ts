// The CA's ports and certificate lifetimes, apart from ca/main.ts: the agent and the waypoint name them
// in their options without loading the CA (and its Kubernetes client) into their start-up.

export const DEFAULT_CA_PORT = 15012;
export const DEFAULT_CA_HTTP_PORT = 15014;
/** Istio's defaults: 24 h workload certificates, at most 90 days. */
export const DEFAULT_WORKLOAD_TTL_S = 24 * 3600;
export const MAX_WORKLOAD_TTL_S = 90 * 24 * 3600;
