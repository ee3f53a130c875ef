// The HTTPRoute CORS filter (gateway.networking.k8s.io/v1, Standard since v1.5, Extended support
// `HTTPRouteCORS`), defaults applied. Kept beside route.ts until RouteFilter carries it: see
// proxy/routing/filters.ts, which already applies it.

/** A lone `*` in allowMethods, allowHeaders or exposeHeaders means "all". */
export const CORS_WILDCARD = '*';

export interface CorsPolicy {
  /** `scheme://host[:port]` as written; `*` in the host is a greedy match of labels to its left; a lone `*` allows every origin. */
  readonly allowOrigins: readonly string[];
  readonly allowCredentials: boolean;
  /** Method names, or the lone wildcard. GET, HEAD and POST are always allowed by browsers. */
  readonly allowMethods: readonly string[];
  /** Header names as written (they compare case-insensitively), or the lone wildcard. */
  readonly allowHeaders: readonly string[];
  readonly exposeHeaders: readonly string[];
  /** Access-Control-Max-Age in seconds; defaults to 5. */
  readonly maxAgeSeconds: number;
}

export interface CorsFilter {
  readonly type: 'CORS';
  readonly cors: CorsPolicy;
}
