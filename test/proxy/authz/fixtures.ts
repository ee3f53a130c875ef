// Builders for the waypoint authorization tests: real manifests through the real converter (via
// test/helpers/policy.ts), attached to the waypoint with targetRefs, and requests with defaults.
import type { AuthorizationPolicy } from '../../../core/model/index.js';
import type { SpiffeIdentity } from '../../../core/spiffe.js';
import type { WaypointRequest } from '../../../proxy/authz/request.js';
import { authorizationPolicy, identity, type Manifest, type PolicyOptions } from '../../helpers/policy.js';

export { identity, type Manifest } from '../../helpers/policy.js';

/** The waypoint every fixture policy targets: Gateway `shop/waypoint`. */
export const WAYPOINT_REF: Manifest = {
  group: 'gateway.networking.k8s.io',
  kind: 'Gateway',
  name: 'waypoint',
};

/** A policy in `shop` (unless told) attached to Gateway `waypoint`, from its spec without targetRefs. */
export function waypointPolicy(name: string, spec: Manifest, options?: PolicyOptions): AuthorizationPolicy {
  return authorizationPolicy(name, { targetRefs: [WAYPOINT_REF], ...spec }, options);
}

export function allowRules(
  name: string,
  rules: readonly Manifest[],
  options?: PolicyOptions,
): AuthorizationPolicy {
  return waypointPolicy(name, { action: 'ALLOW', rules }, options);
}

export function denyRules(
  name: string,
  rules: readonly Manifest[],
  options?: PolicyOptions,
): AuthorizationPolicy {
  return waypointPolicy(name, { action: 'DENY', rules }, options);
}

export interface RequestSpec {
  readonly method?: string;
  readonly path?: string;
  readonly query?: string;
  /** null: no Host / :authority at all. */
  readonly host?: string | null;
  /** Flat name/value list. */
  readonly headers?: readonly string[];
  /** null: a plaintext peer (no identity). */
  readonly identity?: SpiffeIdentity | null;
  readonly src?: string;
  readonly dst?: string;
  readonly port?: number;
  readonly sni?: string;
}

/**
 * A request from `client/curl` at 10.1.0.5 to the Service VIP 10.96.0.10:8080, `GET /` with Host
 * `web.shop.svc.cluster.local`, unless told otherwise.
 */
export function request(spec: RequestSpec = {}): WaypointRequest {
  return {
    method: spec.method ?? 'GET',
    path: spec.path ?? '/',
    query: spec.query ?? '',
    host: spec.host === null ? undefined : (spec.host ?? 'web.shop.svc.cluster.local'),
    rawHeaders: spec.headers ?? [],
    srcIdentity: spec.identity === null ? undefined : (spec.identity ?? identity('client', 'curl')),
    srcIp: spec.src ?? '10.1.0.5',
    dstIp: spec.dst ?? '10.96.0.10',
    dstPort: spec.port ?? 8080,
    sni: spec.sni,
  };
}

export const PLAIN: RequestSpec = { identity: null };
