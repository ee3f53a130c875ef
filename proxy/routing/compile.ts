// The routing table of one waypoint, compiled from the store once per config change (store version)
// and then read, never changed, by every request: the Picker of this part. Shape:
//
//   frontends: Service cluster IP -> Service port -> { producer routes, consumer routes by namespace }
//   gateway:   routes attached to the waypoint Gateway itself, by Host (exact, wildcard, catch-all)
//
// Each route set is its matches across all rules of all routes of the set, sorted once by the §3
// precedence, then indexed (Exact paths by path, prefixes by first segment). A request tests only the
// candidates in order and stops at the first that holds; every possible answer is an object built here.
//
// Mesh semantics (gateway-api.md §10): the parent is chosen by the address the client dialled, never
// by Host; a parentRef `port` (or `sectionName`, a port name) narrows the Service ports; a route in
// the Service's namespace (producer) applies to all clients, one elsewhere (consumer) only to clients of
// its own namespace, and for them replaces the producer set. A Service port with no route for the
// client is passthrough; with routes, a request none matches is 404.
//
// Decision where the spec is silent: routes attached to the waypoint Gateway apply to requests for
// which no Service route set applies (Service routes are the more specific attachment), matched by
// Host against their hostnames. With no set at all, the request passes through unchanged.
import type { Gateway, HttpRoute, RouteMatch, Service, ServicePort } from '../../core/model/index.js';
import type { ConfigStore } from '../../core/store.js';
import { analyzeRoutes, type CompiledRule, type RouteAnalysis } from './analysis.js';
import { buildHostRouter, type HostRouter } from './hostnames.js';
import {
  compareRoutes,
  comparePrecedence,
  compileMatch,
  isExactPath,
  type MatchPosition,
  type MatchPredicate,
} from './match.js';
import type { WaypointRef } from './parents.js';
import { buildRouteStatus, parentServes, type RouteStatus } from './status.js';

export type { CompiledRule } from './analysis.js';
export type { WaypointRef } from './parents.js';

/** What a matched request was routed through: a Service port (mesh) or the waypoint Gateway. */
export type RouteParent =
  | { readonly kind: 'service'; readonly service: Service; readonly port: ServicePort }
  | { readonly kind: 'gateway'; readonly gateway: Gateway };

/** The verdict for a request that matched; one constant object per (parent, match). */
export interface MatchedRoute {
  readonly kind: 'matched';
  readonly route: HttpRoute;
  readonly rule: CompiledRule;
  /** The match (of `rule.rule.matches`) that won; ReplacePrefixMatch rewrites relative to it. */
  readonly match: RouteMatch;
  readonly parent: RouteParent;
}

export interface CompiledMatch {
  readonly predicate: MatchPredicate;
  readonly selection: MatchedRoute;
}

/**
 * One set of routes merged for selection, in precedence order, indexed so a request tests only matches
 * that can hold: an Exact path only against its own path, a PathPrefix only against paths with the same
 * first segment (`/api/v1` can only match paths under `/api`).
 */
export interface MatchSet {
  /** Exact-path matches by path (they outrank everything else), each list in precedence order. */
  readonly exact: ReadonlyMap<string, readonly CompiledMatch[]>;
  /** By first path segment: that segment's prefix matches merged with `generic`, in precedence order. */
  readonly bySegment: ReadonlyMap<string, readonly CompiledMatch[]>;
  /** Matches that may hold whatever the first segment (PathPrefix "/", RegularExpression), in order. */
  readonly generic: readonly CompiledMatch[];
}

/** The first segment of a path: `api` for `/api/v1`, "" for `/`. */
export function firstSegment(path: string): string {
  const end = path.indexOf('/', 1);
  return end === -1 ? path.slice(1) : path.slice(1, end);
}

/** One Service port bound to this waypoint that has at least one route. */
export interface Frontend {
  readonly service: Service;
  readonly port: ServicePort;
  /** Routes in the Service's own namespace; undefined when there are none. */
  readonly producer: MatchSet | undefined;
  /** Routes from other namespaces, by namespace: only that namespace's clients see them. */
  readonly consumers: ReadonlyMap<string, MatchSet>;
}

export interface RoutingTable {
  readonly waypoint: WaypointRef;
  /** The store version this was compiled from. */
  readonly storeVersion: number;
  /** Cluster IP (canonical text) -> Service port -> routes. */
  readonly frontends: ReadonlyMap<string, ReadonlyMap<number, Frontend>>;
  /** Routes attached to the waypoint Gateway, by Host; undefined when there are none. */
  readonly gateway: HostRouter<MatchSet> | undefined;
  /** Route status as computed alongside (status.ts). */
  readonly statuses: readonly RouteStatus[];
}

/** Compiles the table for `waypoint`. O(routes × rules × matches × log) per config change. */
export function compileRoutingTable(store: ConfigStore, waypoint: WaypointRef): RoutingTable {
  const analyses = analyzeRoutes(store, waypoint);
  const predicates = new Map<RouteMatch, MatchPredicate>();
  const compiled = (match: RouteMatch): MatchPredicate => {
    let predicate = predicates.get(match);
    if (predicate === undefined) {
      predicate = compileMatch(match);
      predicates.set(match, predicate);
    }
    return predicate;
  };

  interface FrontendRoutes {
    readonly service: Service;
    readonly port: ServicePort;
    readonly producer: Set<RouteAnalysis>;
    readonly consumers: Map<string, Set<RouteAnalysis>>;
  }
  const byServicePort = new Map<string, FrontendRoutes>();
  const byHostname = new Map<string, Set<RouteAnalysis>>();
  let gateway: Gateway | undefined;

  for (const analysis of analyses) {
    const { route } = analysis;
    for (const parent of analysis.parents) {
      if (!parentServes(analysis, parent)) continue;
      const { attachment } = parent;
      if (attachment.kind === 'service') {
        const { service } = attachment;
        for (const port of attachment.ports) {
          const key = `${service.namespace}/${service.name}:${port.port}`;
          let entry = byServicePort.get(key);
          if (entry === undefined) {
            entry = { service, port, producer: new Set(), consumers: new Map() };
            byServicePort.set(key, entry);
          }
          if (route.namespace === service.namespace) {
            entry.producer.add(analysis);
          } else {
            let set = entry.consumers.get(route.namespace);
            if (set === undefined) {
              set = new Set();
              entry.consumers.set(route.namespace, set);
            }
            set.add(analysis);
          }
        }
      } else if (attachment.kind === 'gateway') {
        gateway = attachment.gateway;
        for (const hostname of attachment.hostnames) {
          let set = byHostname.get(hostname);
          if (set === undefined) {
            set = new Set();
            byHostname.set(hostname, set);
          }
          set.add(analysis);
        }
      }
    }
  }

  const frontends = new Map<string, Map<number, Frontend>>();
  for (const entry of byServicePort.values()) {
    const parent: RouteParent = Object.freeze({ kind: 'service', service: entry.service, port: entry.port });
    const consumers = new Map<string, MatchSet>();
    for (const [namespace, set] of entry.consumers) {
      consumers.set(namespace, buildMatchSet(set, 'mesh', parent, compiled));
    }
    const frontend: Frontend = Object.freeze({
      service: entry.service,
      port: entry.port,
      producer:
        entry.producer.size === 0 ? undefined : buildMatchSet(entry.producer, 'mesh', parent, compiled),
      consumers,
    });
    for (const ip of entry.service.clusterIps) {
      let ports = frontends.get(ip);
      if (ports === undefined) {
        ports = new Map();
        frontends.set(ip, ports);
      }
      ports.set(entry.port.port, frontend);
    }
  }

  let gatewayRouter: HostRouter<MatchSet> | undefined;
  if (gateway !== undefined && byHostname.size > 0) {
    const parent: RouteParent = Object.freeze({ kind: 'gateway', gateway });
    const sets = new Map<string, MatchSet>();
    for (const [hostname, set] of byHostname)
      sets.set(hostname, buildMatchSet(set, 'gateway', parent, compiled));
    gatewayRouter = buildHostRouter(sets);
  }

  return Object.freeze({
    waypoint: Object.freeze({ namespace: waypoint.namespace, name: waypoint.name }),
    storeVersion: store.version,
    frontends,
    gateway: gatewayRouter,
    statuses: Object.freeze(analyses.map(buildRouteStatus)),
  });
}

function buildMatchSet(
  routes: ReadonlySet<RouteAnalysis>,
  mode: 'mesh' | 'gateway',
  parent: RouteParent,
  compiled: (match: RouteMatch) => MatchPredicate,
): MatchSet {
  const positions: (MatchPosition & { readonly rule: CompiledRule })[] = [];
  const ordered = [...routes].sort((a, b) => compareRoutes(a.route, b.route));
  for (const analysis of ordered) {
    for (const rule of analysis.rules.get(mode) ?? []) {
      if (rule === undefined) continue;
      rule.rule.matches.forEach((match, matchIndex) => {
        positions.push({
          predicate: compiled(match),
          route: analysis.route,
          ruleIndex: rule.index,
          matchIndex,
          rule,
        });
      });
    }
  }
  positions.sort(comparePrecedence);
  const exact = new Map<string, CompiledMatch[]>();
  const rest: CompiledMatch[] = [];
  const segments = new Set<string>();
  for (const position of positions) {
    const entry: CompiledMatch = Object.freeze({
      predicate: position.predicate,
      selection: Object.freeze({
        kind: 'matched',
        route: position.route,
        rule: position.rule,
        match: position.predicate.match,
        parent,
      }),
    });
    if (isExactPath(position.predicate)) {
      const path = position.predicate.pathValue;
      const list = exact.get(path);
      if (list === undefined) exact.set(path, [entry]);
      else list.push(entry);
    } else {
      rest.push(entry);
      const segment = prefixSegment(position.predicate);
      if (segment !== undefined) segments.add(segment);
    }
  }
  const generic = rest.filter((entry) => prefixSegment(entry.predicate) === undefined);
  const bySegment = new Map<string, readonly CompiledMatch[]>();
  for (const segment of segments) {
    const list = rest.filter((entry) => {
      const own = prefixSegment(entry.predicate);
      return own === undefined || own === segment;
    });
    bySegment.set(segment, Object.freeze(list));
  }
  return Object.freeze({ exact, bySegment, generic: Object.freeze(generic) });
}

/** The first segment every path a PathPrefix match accepts must have; undefined for "/" and regexes. */
function prefixSegment(predicate: MatchPredicate): string | undefined {
  return predicate.pathKind === 'prefix' ? firstSegment(predicate.pathValue) : undefined;
}
