// Flow events for the observe tests, as the agents and the waypoint report them (core/flows/event.ts):
// a small shop (frontend → web through the waypoint, web → db direct over HBONE, a plaintext client in
// a namespace outside the mesh) with builders for each reporter's view of a connection or a request.
import type { FlowEvent, FlowPeer, FlowService } from '../../core/flows/event.js';

export const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);

export interface PodRef {
  readonly namespace: string;
  readonly pod: string;
  readonly workload: string;
  readonly ip: string;
  /** Undefined: a plaintext client (no mesh identity). */
  readonly serviceAccount: string | undefined;
  readonly node: string;
}

export const PODS = {
  frontend: {
    namespace: 'shop',
    pod: 'frontend-7d4b9c-abcde',
    workload: 'frontend',
    ip: '10.1.1.10',
    serviceAccount: 'frontend',
    node: 'node-1',
  },
  web0: {
    namespace: 'shop',
    pod: 'web-5f6d7-xk2lp',
    workload: 'web',
    ip: '10.1.2.10',
    serviceAccount: 'web',
    node: 'node-2',
  },
  web1: {
    namespace: 'shop',
    pod: 'web-5f6d7-q9zzt',
    workload: 'web',
    ip: '10.1.1.11',
    serviceAccount: 'web',
    node: 'node-1',
  },
  waypoint: {
    namespace: 'shop',
    pod: 'waypoint-6c8d-zzpqr',
    workload: 'waypoint',
    ip: '10.1.2.12',
    serviceAccount: 'waypoint',
    node: 'node-2',
  },
  db: {
    namespace: 'data',
    pod: 'db-0',
    workload: 'db',
    ip: '10.1.2.20',
    serviceAccount: 'db',
    node: 'node-2',
  },
  old: {
    namespace: 'legacy',
    pod: 'old',
    workload: 'old',
    ip: '10.1.1.30',
    serviceAccount: undefined,
    node: 'node-1',
  },
} as const satisfies Record<string, PodRef>;

export const SERVICES = {
  web: { namespace: 'shop', name: 'web', host: 'web.shop.svc.cluster.local' },
  cache: { namespace: 'shop', name: 'cache', host: 'cache.shop.svc.cluster.local' },
  db: { namespace: 'data', name: 'db', host: 'db.data.svc.cluster.local' },
} as const satisfies Record<string, FlowService>;

export const WAYPOINT_REPORTER = { kind: 'waypoint', name: `shop/${PODS.waypoint.pod}` } as const;

export function spiffe(namespace: string, serviceAccount: string): string {
  return `spiffe://cluster.local/ns/${namespace}/sa/${serviceAccount}`;
}

/** A peer in the mesh (`PodRef`) or outside it (a bare address). */
export function peer(p: PodRef | string, port: number, options: { identity?: string | null } = {}): FlowPeer {
  if (typeof p === 'string') return { ip: p, port };
  const identity =
    options.identity === null
      ? undefined
      : (options.identity ??
        (p.serviceAccount === undefined ? undefined : spiffe(p.namespace, p.serviceAccount)));
  return {
    ip: p.ip,
    port,
    namespace: p.namespace,
    pod: p.pod,
    workload: p.workload,
    ...(identity === undefined ? {} : { identity }),
  };
}

let seq = 0;

/** An event with defaults: an ALLOWED tcp `close` over a tunnel, reported by node-1's agent, at T0. */
export function flow(fields: Partial<FlowEvent> & Pick<FlowEvent, 'source' | 'destination'>): FlowEvent {
  return {
    seq: ++seq,
    time: T0,
    reporter: { kind: 'agent', name: 'node-1' },
    type: 'close',
    path: 'tunnel',
    protocol: 'tcp',
    verdict: 'ALLOWED',
    flags: '-',
    ...fields,
  };
}

export interface ConnectionOptions {
  readonly time?: number;
  readonly verdict?: FlowEvent['verdict'];
  readonly flags?: string;
  readonly durationMs?: number;
  readonly requestBytes?: number;
  readonly responseBytes?: number;
  readonly srcPort?: number;
  readonly path?: FlowEvent['path'];
  readonly type?: 'open' | 'close';
  /** Which agents saw it: both (default), only the source's (outbound), only the destination's (inbound). */
  readonly sides?: 'both' | 'outbound' | 'inbound';
  readonly service?: FlowService;
  /** The source identity the destination's agent saw; null for none. */
  readonly sourceIdentity?: string | null;
}

/** One L4 connection as the agents report it: outbound at the source's node, inbound at the destination's. */
export function connection(
  src: PodRef | string,
  dst: PodRef | string,
  port: number,
  o: ConnectionOptions = {},
): FlowEvent[] {
  const source = peer(src, o.srcPort ?? 40000, { identity: o.sourceIdentity });
  const destination = peer(dst, port);
  const common = {
    time: o.time ?? T0,
    type: o.type ?? 'close',
    path: o.path ?? (typeof dst === 'string' ? 'direct' : 'tunnel'),
    verdict: o.verdict ?? 'ALLOWED',
    flags: o.flags ?? '-',
    ...(o.type === 'open' ? {} : { durationMs: o.durationMs ?? 100 }),
    ...(o.type === 'open'
      ? {}
      : { requestBytes: o.requestBytes ?? 100, responseBytes: o.responseBytes ?? 1000 }),
    ...(o.service === undefined ? {} : { service: o.service }),
    source,
    destination,
  } as const;
  const out: FlowEvent[] = [];
  const sides = o.sides ?? 'both';
  if (sides !== 'inbound' && typeof src !== 'string')
    out.push(flow({ ...common, direction: 'outbound', reporter: { kind: 'agent', name: src.node } }));
  if (sides !== 'outbound' && typeof dst !== 'string')
    out.push(flow({ ...common, direction: 'inbound', reporter: { kind: 'agent', name: dst.node } }));
  return out;
}

export interface RequestOptions {
  readonly time?: number;
  readonly method?: string;
  readonly path?: string;
  readonly status?: number;
  readonly grpcStatus?: number;
  readonly protocol?: 'http' | 'grpc';
  readonly verdict?: FlowEvent['verdict'];
  readonly durationMs?: number;
  readonly service?: FlowService | null;
}

/** One request as the waypoint reports it: source the client, destination the chosen backend. */
export function request(src: PodRef, dst: PodRef, o: RequestOptions = {}): FlowEvent {
  const service = o.service === null ? undefined : (o.service ?? SERVICES.web);
  return flow({
    time: o.time ?? T0,
    reporter: WAYPOINT_REPORTER,
    type: 'request',
    path: 'waypoint',
    protocol: o.protocol ?? 'http',
    verdict: o.verdict ?? 'ALLOWED',
    source: peer(src, 40000),
    destination: peer(dst, 8080),
    ...(service === undefined ? {} : { service }),
    durationMs: o.durationMs ?? 10,
    requestBytes: 200,
    responseBytes: 2000,
    http: {
      method: o.method ?? 'GET',
      path: o.path ?? '/',
      status: o.status ?? 200,
      ...(o.grpcStatus === undefined ? {} : { grpcStatus: o.grpcStatus }),
    },
  });
}

/**
 * The legs around a waypoint: the client's agent's outbound connection to the waypoint (path waypoint,
 * HBONE port 15008), and the backend's agent's inbound connection from the waypoint (its identity).
 */
export function waypointLegs(src: PodRef, dst: PodRef, port: number, o: ConnectionOptions = {}): FlowEvent[] {
  return [
    ...connection(src, PODS.waypoint, 15008, { ...o, path: 'waypoint', sides: 'outbound' }),
    ...connection(PODS.waypoint, dst, port, { ...o, path: 'waypoint', sides: 'inbound' }),
  ];
}
