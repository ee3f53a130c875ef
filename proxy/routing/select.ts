// Per-request route selection over a compiled RoutingTable. Synchronous; it allocates at most a few
// short strings (the path's first segment, a port-less lower-case Host for Gateway routes, a joined
// repeated header or decoded query value when a match asks for one), and every verdict is a constant
// object built at compile time.
import {
  firstSegment,
  type CompiledMatch,
  type MatchedRoute,
  type MatchSet,
  type RoutingTable,
} from './compile.js';
import { lookupHost } from './hostnames.js';
import { matchesRequest } from './match.js';
import { headerValue, hostOf, type RouteRequest } from './request.js';

export type RouteSelection =
  /** No route applies to this destination and client: send the request on unchanged. */
  | { readonly kind: 'passthrough' }
  /** Routes apply, and none matched: answer 404. */
  | { readonly kind: 'not-found' }
  | MatchedRoute;

export const PASSTHROUGH: RouteSelection = Object.freeze({ kind: 'passthrough' });
export const NOT_FOUND: RouteSelection = Object.freeze({ kind: 'not-found' });

const IPV4_MAPPED_PREFIX = '::ffff:';

/**
 * Which route rule serves the request. The dialled Service port picks the route set (the client's
 * namespace's consumer routes, else the producer routes); without one, the waypoint Gateway's routes by
 * Host; without those, passthrough.
 */
export function selectRoute(table: RoutingTable, request: RouteRequest): RouteSelection {
  let ip = request.dialled.ip;
  // A dual-stack socket reports an IPv4 peer as ::ffff:a.b.c.d; the index holds a.b.c.d.
  if (ip.startsWith(IPV4_MAPPED_PREFIX) && ip.includes('.')) ip = ip.slice(IPV4_MAPPED_PREFIX.length);
  const frontend = table.frontends.get(ip)?.get(request.dialled.port);
  if (frontend !== undefined) {
    const set = frontend.consumers.get(request.clientNamespace) ?? frontend.producer;
    if (set !== undefined) return firstMatch(set, request) ?? NOT_FOUND;
  }
  const gateway = table.gateway;
  if (gateway === undefined) return PASSTHROUGH;
  const authority = headerValue(request.headers, 'host');
  const set = authority === undefined ? gateway.any : lookupHost(gateway, hostOf(authority));
  if (set === undefined) return NOT_FOUND;
  return firstMatch(set, request) ?? NOT_FOUND;
}

function firstMatch(set: MatchSet, request: RouteRequest): MatchedRoute | undefined {
  const exact = set.exact.get(request.path);
  if (exact !== undefined) {
    const hit = firstHolding(exact, request);
    if (hit !== undefined) return hit;
  }
  return firstHolding(set.bySegment.get(firstSegment(request.path)) ?? set.generic, request);
}

function firstHolding(matches: readonly CompiledMatch[], request: RouteRequest): MatchedRoute | undefined {
  for (const entry of matches) {
    if (matchesRequest(entry.predicate, request)) return entry.selection;
  }
  return undefined;
}
