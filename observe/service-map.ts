// Who talks to whom, from observed flow events (Hubble's service map, for an ambient mesh): nodes are
// workloads, edges carry what went between them. Pure: events in, a ServiceMap out; render-map.ts draws it.
//
// Counting rules, so that one connection or request counts once although several reporters saw it:
// - L7 (`requests` edges): the waypoint's `request` events, one per HTTP/gRPC request. The edge runs from
//   the client workload to the backend workload the waypoint chose (the Service it addressed is listed on
//   the edge), `via` the waypoint. A request that reached no backend (no workload in `destination`) ends
//   at the Service's node instead.
// - L4 (`connections` edges): `close` events, plus `open` events whose reporter never reported the close
//   (connections still open when the observation ended, counted as `active`). A connection that both the
//   source's agent (outbound) and the destination's agent (inbound) reported counts once, from the inbound
//   side: outbound events are paired with inbound ones of the same source address and destination address
//   and port, and only the unpaired outbound ones count (a destination outside the mesh, a connection that
//   failed before it got there, a node whose events were not collected). This relies on the outbound
//   event naming the chosen endpoint (pod address, container port), not the Service VIP, as ztunnel's do.
//   Raw TCP through a waypoint counts from the waypoint's `close` events (client → backend, via it).
// - The waypoint's legs (client → waypoint at the source agent, path `waypoint`; waypoint → pod at the
//   destination agent, whose source is the waypoint) carry flows the waypoint itself reports, so by
//   default they are folded away: they add no edge of their own. A leg that was not ALLOWED is kept as a
//   client → waypoint or waypoint → pod edge, since the waypoint's own events may not show that failure
//   (it never saw the connection, or saw only a 503). `waypointLegs: 'show'` keeps every leg.
//
// Per edge: count, rate over the window (first..last event of the input, or `windowMs`), errors (L7:
// status ≥ 500 or 0, a non-zero gRPC status, or a verdict other than ALLOWED; L4: a verdict other than
// ALLOWED or a response flag), denials, p99 (L7: request latency; L4: connection duration of the closed
// connections, which says how long connections live, not how fast they answer) and bytes.
import { parseSpiffeId } from '../core/spiffe.js';
import { GATEWAY_NAME_LABEL } from '../core/waypoints.js';
import type { Workload } from '../core/model/workload.js';
import type { FlowEvent, FlowPeer } from '../core/flows/event.js';

export type MapNodeKind = 'workload' | 'service' | 'waypoint' | 'identity' | 'world' | 'address';

export interface MapNode {
  /** Unique within the map: `<kind>:<namespace>/<name>`, `world`, `address:<ip>`, `identity:<principal>`. */
  readonly id: string;
  readonly kind: MapNodeKind;
  readonly namespace: string | undefined;
  /** The workload, Service, waypoint or service account name; `world`; the address. */
  readonly name: string;
}

export interface MapEdge {
  readonly source: string;
  readonly destination: string;
  /** `requests`: L7, from waypoint request events; `connections`: L4, from connection events. */
  readonly unit: 'requests' | 'connections';
  readonly protocol: 'tcp' | 'http' | 'grpc';
  /** The waypoint (`namespace/name`) the traffic went through, when the waypoint reported it. */
  readonly via: string | undefined;
  /** The Services the client addressed (`namespace/name`), sorted. */
  readonly services: readonly string[];
  readonly count: number;
  /** Connections opened but not closed within the observation (included in `count`). */
  readonly active: number;
  /** `count` per second of the window; undefined when the window is empty. */
  readonly ratePerSecond: number | undefined;
  readonly errors: number;
  /** errors / count. */
  readonly errorRate: number;
  readonly denied: number;
  /** Request latency (requests) or connection duration (connections); undefined when none had one. */
  readonly p99Ms: number | undefined;
  readonly requestBytes: number;
  readonly responseBytes: number;
}

export interface ServiceMap {
  /** First and last event time (epoch ms) of the input; undefined without events. */
  readonly fromMs: number | undefined;
  readonly toMs: number | undefined;
  /** The window rates are over: `windowMs` if given, else to − from. */
  readonly windowMs: number;
  /** Events read, and how many of them were counted on an edge (the rest: duplicates, folded legs, opens). */
  readonly events: number;
  readonly counted: number;
  /** Sorted by id. */
  readonly nodes: readonly MapNode[];
  /** Sorted by source, destination, unit, protocol, via. */
  readonly edges: readonly MapEdge[];
}

/** What the map may look up about pods; ConfigStore is one. */
export interface WorkloadLookup {
  workload(namespace: string, name: string): Workload | undefined;
}

export interface ServiceMapOptions {
  /** Rates over this many milliseconds instead of the first..last event time. */
  readonly windowMs?: number;
  /** Peers outside the mesh (no namespace, no identity): one `world` node (default) or one per address. */
  readonly outside?: 'world' | 'address';
  /** `fold` (default): waypoint legs add edges only when not ALLOWED; `show`: every leg is an edge. */
  readonly waypointLegs?: 'fold' | 'show';
  /** To name waypoints after their Gateway (the pod's gateway-name label) rather than their pod. */
  readonly store?: WorkloadLookup;
}

const P99 = 0.99;

/** Nearest-rank percentile of `values` (sorted in place); undefined for none. */
export function percentile(values: number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  values.sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil(p * values.length));
  return values[rank - 1];
}

/** Whether an L7 request failed, as the map counts it. */
export function requestFailed(event: FlowEvent): boolean {
  if (event.verdict !== 'ALLOWED') return true;
  const http = event.http;
  if (http === undefined) return false;
  if (http.status === 0 || http.status >= 500) return true;
  return http.grpcStatus !== undefined && http.grpcStatus !== 0;
}

/** Whether an L4 connection failed, as the map counts it. */
export function connectionFailed(event: FlowEvent): boolean {
  return event.verdict !== 'ALLOWED' || (event.flags !== '-' && event.flags !== '');
}

function podKey(namespace: string, pod: string): string {
  return `${namespace}/${pod}`;
}

/** Names nodes, consistently for every event of one map. */
class NodeNamer {
  readonly nodes = new Map<string, MapNode>();
  /** `namespace/pod` of every waypoint replica that reported. */
  readonly waypointPods = new Set<string>();
  /** `namespace/pod` → Istio workload name, learnt from any event that named both. */
  readonly #workloadOfPod = new Map<string, string>();

  constructor(
    events: readonly FlowEvent[],
    readonly outside: 'world' | 'address',
    readonly store: WorkloadLookup | undefined,
  ) {
    for (const e of events) {
      if (e.reporter.kind === 'waypoint') this.waypointPods.add(e.reporter.name);
      for (const peer of [e.source, e.destination]) {
        if (peer.namespace !== undefined && peer.pod !== undefined && peer.workload !== undefined)
          this.#workloadOfPod.set(podKey(peer.namespace, peer.pod), peer.workload);
      }
    }
  }

  /** Whether a peer is one of the waypoints (a replica that reported, or a pod labelled as a Gateway's). */
  isWaypoint(peer: FlowPeer): boolean {
    if (peer.namespace === undefined || peer.pod === undefined) return false;
    if (this.waypointPods.has(podKey(peer.namespace, peer.pod))) return true;
    return this.store?.workload(peer.namespace, peer.pod)?.labels[GATEWAY_NAME_LABEL] !== undefined;
  }

  /** `namespace/name` of the waypoint that a replica (`namespace/pod`) belongs to. */
  waypointName(namespace: string, pod: string): string {
    const gateway = this.store?.workload(namespace, pod)?.labels[GATEWAY_NAME_LABEL];
    return `${namespace}/${gateway ?? this.#workloadOfPod.get(podKey(namespace, pod)) ?? pod}`;
  }

  /** The waypoint node for a reporter name (`namespace/pod`). */
  waypointReporter(reporterName: string): MapNode {
    const slash = reporterName.indexOf('/');
    const name =
      slash < 0
        ? reporterName
        : this.waypointName(reporterName.slice(0, slash), reporterName.slice(slash + 1));
    return this.#waypointNode(name);
  }

  peer(peer: FlowPeer): MapNode {
    const ns = peer.namespace;
    if (ns !== undefined && peer.pod !== undefined && this.isWaypoint(peer))
      return this.#waypointNode(this.waypointName(ns, peer.pod));
    const workload = peer.workload ?? peer.pod;
    if (ns !== undefined && workload !== undefined)
      return this.#node({
        id: `workload:${ns}/${workload}`,
        kind: 'workload',
        namespace: ns,
        name: workload,
      });
    if (peer.identity !== undefined) {
      const principal = stripScheme(peer.identity);
      let namespace: string | undefined;
      let name = principal;
      try {
        const id = parseSpiffeId(peer.identity);
        namespace = id.namespace;
        name = `sa/${id.serviceAccount}`;
      } catch {
        // Not a Kubernetes-style SPIFFE ID: named by the whole principal.
      }
      return this.#node({ id: `identity:${principal}`, kind: 'identity', namespace, name });
    }
    if (this.outside === 'address')
      return this.#node({ id: `address:${peer.ip}`, kind: 'address', namespace: undefined, name: peer.ip });
    return this.#node({ id: 'world', kind: 'world', namespace: undefined, name: 'world' });
  }

  service(namespace: string, name: string): MapNode {
    return this.#node({ id: `service:${namespace}/${name}`, kind: 'service', namespace, name });
  }

  #waypointNode(qualified: string): MapNode {
    const slash = qualified.indexOf('/');
    const namespace = slash < 0 ? undefined : qualified.slice(0, slash);
    const name = slash < 0 ? qualified : qualified.slice(slash + 1);
    return this.#node({ id: `waypoint:${qualified}`, kind: 'waypoint', namespace, name });
  }

  #node(node: MapNode): MapNode {
    const known = this.nodes.get(node.id);
    if (known !== undefined) return known;
    this.nodes.set(node.id, node);
    return node;
  }
}

function stripScheme(id: string): string {
  return id.startsWith('spiffe://') ? id.slice('spiffe://'.length) : id;
}

/** One connection as the map counts it. */
interface ConnectionRecord {
  readonly event: FlowEvent;
  /** Opened, never reported closed. */
  readonly active: boolean;
}

/**
 * The L4 connections each reporter saw: its `close` events, and its `open` events beyond the closes it
 * reported for the same addresses (those connections were still open at the end).
 */
function connectionsByReporter(events: readonly FlowEvent[]): ConnectionRecord[] {
  const records: ConnectionRecord[] = [];
  const opens = new Map<string, FlowEvent[]>();
  const closes = new Map<string, number>();
  const key = (e: FlowEvent): string =>
    `${e.reporter.kind}|${e.reporter.name}|${e.direction ?? ''}|${e.source.ip}|${e.source.port}|` +
    `${e.destination.ip}|${e.destination.port}`;
  for (const e of events) {
    if (e.type === 'close') {
      records.push({ event: e, active: false });
      closes.set(key(e), (closes.get(key(e)) ?? 0) + 1);
    } else if (e.type === 'open') {
      const list = opens.get(key(e));
      if (list === undefined) opens.set(key(e), [e]);
      else list.push(e);
    }
  }
  for (const [k, list] of opens) {
    const closed = closes.get(k) ?? 0;
    // The earliest opens are the ones that closed; the latest are still open.
    list.sort((a, b) => a.time - b.time);
    for (const e of list.slice(closed)) records.push({ event: e, active: true });
  }
  return records;
}

/** Drops the outbound records that an inbound record of the same connection already counts. */
function withoutDuplicates(records: readonly ConnectionRecord[]): ConnectionRecord[] {
  const connection = (e: FlowEvent): string => `${e.source.ip}|${e.destination.ip}|${e.destination.port}`;
  const inbound = new Map<string, number>();
  const outbound = new Map<string, ConnectionRecord[]>();
  const kept: ConnectionRecord[] = [];
  for (const r of records) {
    const e = r.event;
    if (e.reporter.kind === 'agent' && e.direction === 'outbound') {
      const list = outbound.get(connection(e));
      if (list === undefined) outbound.set(connection(e), [r]);
      else list.push(r);
      continue;
    }
    if (e.reporter.kind === 'agent' && e.direction === 'inbound')
      inbound.set(connection(e), (inbound.get(connection(e)) ?? 0) + 1);
    kept.push(r);
  }
  for (const [k, list] of outbound) {
    // The inbound side saw the allowed ones; a failed outbound connection is likelier to be one it missed.
    list.sort((a, b) => allowedFirst(a.event, b.event) || a.event.time - b.event.time);
    kept.push(...list.slice(inbound.get(k) ?? 0));
  }
  return kept;
}

function allowedFirst(a: FlowEvent, b: FlowEvent): number {
  return (a.verdict === 'ALLOWED' ? 0 : 1) - (b.verdict === 'ALLOWED' ? 0 : 1);
}

class EdgeTally {
  count = 0;
  active = 0;
  errors = 0;
  denied = 0;
  requestBytes = 0;
  responseBytes = 0;
  readonly durations: number[] = [];
  readonly services = new Set<string>();

  constructor(
    readonly source: string,
    readonly destination: string,
    readonly unit: 'requests' | 'connections',
    readonly protocol: 'tcp' | 'http' | 'grpc',
    readonly via: string | undefined,
  ) {}

  add(e: FlowEvent, failed: boolean, active: boolean): void {
    this.count++;
    if (active) this.active++;
    if (failed) this.errors++;
    if (e.verdict === 'DENIED') this.denied++;
    this.requestBytes += e.requestBytes ?? 0;
    this.responseBytes += e.responseBytes ?? 0;
    if (!active && e.durationMs !== undefined) this.durations.push(e.durationMs);
    if (e.service !== undefined) this.services.add(`${e.service.namespace}/${e.service.name}`);
  }

  edge(windowMs: number): MapEdge {
    return {
      source: this.source,
      destination: this.destination,
      unit: this.unit,
      protocol: this.protocol,
      via: this.via,
      services: [...this.services].sort(),
      count: this.count,
      active: this.active,
      ratePerSecond: windowMs > 0 ? this.count / (windowMs / 1000) : undefined,
      errors: this.errors,
      errorRate: this.count === 0 ? 0 : this.errors / this.count,
      denied: this.denied,
      p99Ms: percentile(this.durations, P99),
      requestBytes: this.requestBytes,
      responseBytes: this.responseBytes,
    };
  }
}

export function buildServiceMap(events: readonly FlowEvent[], options: ServiceMapOptions = {}): ServiceMap {
  const namer = new NodeNamer(events, options.outside ?? 'world', options.store);
  const showLegs = options.waypointLegs === 'show';
  const tallies = new Map<string, EdgeTally>();
  let counted = 0;
  const tally = (
    source: MapNode,
    destination: MapNode,
    unit: 'requests' | 'connections',
    protocol: 'tcp' | 'http' | 'grpc',
    via: string | undefined,
  ): EdgeTally => {
    const key = [source.id, destination.id, unit, protocol, via ?? ''].join('\n');
    let t = tallies.get(key);
    if (t === undefined) {
      t = new EdgeTally(source.id, destination.id, unit, protocol, via);
      tallies.set(key, t);
    }
    return t;
  };

  for (const e of events) {
    if (e.reporter.kind !== 'waypoint' || e.type !== 'request') continue;
    const waypoint = namer.waypointReporter(e.reporter.name);
    const reachedBackend = e.destination.workload !== undefined || e.destination.pod !== undefined;
    const destination =
      !reachedBackend && e.service !== undefined
        ? namer.service(e.service.namespace, e.service.name)
        : namer.peer(e.destination);
    tally(namer.peer(e.source), destination, 'requests', e.protocol, qualified(waypoint)).add(
      e,
      requestFailed(e),
      false,
    );
    counted++;
  }

  const connections = connectionsByReporter(
    events.filter((e) => e.reporter.kind === 'agent' || e.protocol === 'tcp'),
  );
  for (const r of withoutDuplicates(connections)) {
    const e = r.event;
    const failed = connectionFailed(e);
    const isLeg =
      e.reporter.kind === 'agent' &&
      (e.path === 'waypoint' || namer.isWaypoint(e.source) || namer.isWaypoint(e.destination));
    if (isLeg && !showLegs && !failed) continue;
    const via =
      e.reporter.kind === 'waypoint' ? qualified(namer.waypointReporter(e.reporter.name)) : undefined;
    tally(namer.peer(e.source), namer.peer(e.destination), 'connections', e.protocol, via).add(
      e,
      failed,
      r.active,
    );
    counted++;
  }

  let fromMs: number | undefined;
  let toMs: number | undefined;
  for (const e of events) {
    if (fromMs === undefined || e.time < fromMs) fromMs = e.time;
    if (toMs === undefined || e.time > toMs) toMs = e.time;
  }
  const windowMs = options.windowMs ?? (fromMs === undefined || toMs === undefined ? 0 : toMs - fromMs);
  const edges = [...tallies.values()].map((t) => t.edge(windowMs)).sort(compareEdges);
  const used = new Set(edges.flatMap((edge) => [edge.source, edge.destination]));
  const nodes = [...namer.nodes.values()].filter((n) => used.has(n.id)).sort((a, b) => cmp(a.id, b.id));
  return { fromMs, toMs, windowMs, events: events.length, counted, nodes, edges };
}

/** `namespace/name` of a node, or its name alone when it has no namespace. */
function qualified(node: MapNode): string {
  return node.namespace === undefined ? node.name : `${node.namespace}/${node.name}`;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareEdges(a: MapEdge, b: MapEdge): number {
  return (
    cmp(a.source, b.source) ||
    cmp(a.destination, b.destination) ||
    cmp(a.unit, b.unit) ||
    cmp(a.protocol, b.protocol) ||
    cmp(a.via ?? '', b.via ?? '')
  );
}
