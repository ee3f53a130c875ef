// observe/service-map.ts: one connection or request counts once whoever reported it, the waypoint's
// legs fold into its own edges, and the per-edge figures (rate, errors, denials, p99, bytes).
import t from 'tap';
import type { FlowEvent } from '../../core/flows/event.js';
import { buildServiceMap, percentile, type MapEdge, type ServiceMap } from '../../observe/service-map.js';
import { connection, PODS, request, T0, waypointLegs } from './flows.js';

function edge(map: ServiceMap, source: string, destination: string, unit?: MapEdge['unit']): MapEdge {
  const found = map.edges.filter(
    (e) => e.source === source && e.destination === destination && (unit === undefined || e.unit === unit),
  );
  if (found.length !== 1) throw new Error(`${found.length} edges ${source} -> ${destination}`);
  return found[0] as MapEdge;
}

t.test('percentile is nearest-rank', async (t) => {
  t.plan(4);
  t.equal(percentile([], 0.99), undefined);
  t.equal(percentile([5], 0.99), 5);
  t.equal(
    percentile(
      Array.from({ length: 100 }, (_, i) => 100 - i),
      0.99,
    ),
    99,
  );
  t.equal(percentile([1, 2, 3, 1000], 0.99), 1000, 'a small sample reports its worst');
});

t.test('a connection both agents saw counts once, from the inbound side', async (t) => {
  const events = [
    ...connection(PODS.web0, PODS.db, 5432, { srcPort: 40001 }),
    ...connection(PODS.web0, PODS.db, 5432, { srcPort: 40002, time: T0 + 1000 }),
    ...connection(PODS.web0, PODS.db, 5432, { srcPort: 40003, time: T0 + 2000 }),
  ];
  t.equal(events.length, 6, 'three connections, each reported twice');
  const map = buildServiceMap(events);
  t.equal(map.edges.length, 1);
  const e = edge(map, 'workload:shop/web', 'workload:data/db');
  t.equal(e.count, 3);
  t.equal(e.unit, 'connections');
  t.equal(e.requestBytes, 300, 'bytes of three connections, not six');
  t.equal(map.counted, 3);
  t.equal(map.events, 6);
});

t.test('an outbound connection no destination agent saw still counts', async (t) => {
  const events = [
    // To the internet: only the source's agent is on the path.
    ...connection(PODS.frontend, '93.184.216.34', 443, { path: 'direct' }),
    // To a mesh pod whose node's events were not collected.
    ...connection(PODS.frontend, PODS.db, 5432, { sides: 'outbound' }),
    // Two connections, one of them seen only by the source.
    ...connection(PODS.frontend, PODS.web0, 8080, { srcPort: 40001 }),
    ...connection(PODS.frontend, PODS.web0, 8080, { srcPort: 40002, sides: 'outbound' }),
  ];
  const map = buildServiceMap(events);
  t.equal(edge(map, 'workload:shop/frontend', 'world').count, 1, 'outside the mesh: the world node');
  t.equal(edge(map, 'workload:shop/frontend', 'workload:data/db').count, 1);
  t.equal(edge(map, 'workload:shop/frontend', 'workload:shop/web').count, 2);
  const byAddress = buildServiceMap(events, { outside: 'address' });
  t.equal(edge(byAddress, 'workload:shop/frontend', 'address:93.184.216.34').count, 1);
  t.same(
    byAddress.nodes.find((n) => n.id === 'address:93.184.216.34'),
    { id: 'address:93.184.216.34', kind: 'address', namespace: undefined, name: '93.184.216.34' },
  );
});

t.test('through a waypoint: requests from the waypoint, its legs folded unless they failed', async (t) => {
  const events: FlowEvent[] = [
    request(PODS.frontend, PODS.web0, { path: '/a', time: T0 }),
    request(PODS.frontend, PODS.web1, { path: '/b', time: T0 + 1000 }),
    request(PODS.frontend, PODS.web0, { path: '/c', time: T0 + 2000 }),
    ...waypointLegs(PODS.frontend, PODS.web0, 8080),
    ...waypointLegs(PODS.frontend, PODS.web1, 8080, { srcPort: 40001 }),
  ];
  const map = buildServiceMap(events);
  t.same(
    map.edges.map((e) => [e.source, e.destination, e.unit, e.via, e.count]),
    [['workload:shop/frontend', 'workload:shop/web', 'requests', 'shop/waypoint', 3]],
    'one L7 edge client -> backend workload, via the waypoint (named as its pods are)',
  );
  t.same(edge(map, 'workload:shop/frontend', 'workload:shop/web').services, ['shop/web']);
  t.equal(map.counted, 3, 'the four legs were folded');

  const shown = buildServiceMap(events, { waypointLegs: 'show' });
  t.equal(edge(shown, 'workload:shop/frontend', 'waypoint:shop/waypoint').count, 2);
  t.equal(edge(shown, 'waypoint:shop/waypoint', 'workload:shop/web').count, 2);
  t.equal(edge(shown, 'workload:shop/frontend', 'workload:shop/web').count, 3);
  t.equal(shown.nodes.find((n) => n.id === 'waypoint:shop/waypoint')?.kind, 'waypoint');

  const denied = buildServiceMap([
    ...events,
    ...waypointLegs(PODS.frontend, PODS.web0, 8080, { srcPort: 40002, verdict: 'DENIED' }).slice(1),
  ]);
  const leg = edge(denied, 'waypoint:shop/waypoint', 'workload:shop/web');
  t.same([leg.count, leg.denied, leg.errors], [1, 1, 1], 'a denied leg stays visible');
});

t.test('a request that reached no backend ends at its Service', async (t) => {
  const map = buildServiceMap([
    request(PODS.frontend, PODS.web0, { status: 503 }),
    {
      ...request(PODS.frontend, PODS.web0, { status: 503 }),
      destination: { ip: '10.96.0.10', port: 80 },
    },
  ]);
  t.equal(edge(map, 'workload:shop/frontend', 'service:shop/web').count, 1);
  t.equal(edge(map, 'workload:shop/frontend', 'workload:shop/web').count, 1);
  t.same(
    map.nodes.find((n) => n.kind === 'service'),
    { id: 'service:shop/web', kind: 'service', namespace: 'shop', name: 'web' },
  );
});

t.test('waypoints are named after their Gateway when the config knows the pod', async (t) => {
  const store = {
    workload: (namespace: string, name: string) =>
      namespace === 'shop' && name === PODS.waypoint.pod
        ? ({ labels: { 'gateway.networking.k8s.io/gateway-name': 'wp' } } as never)
        : undefined,
  };
  const map = buildServiceMap([request(PODS.frontend, PODS.web0)], { store });
  t.equal(map.edges[0]?.via, 'shop/wp');
});

t.test('L7 figures: rate over the window, errors, denials, p99 latency, bytes', async (t) => {
  const events: FlowEvent[] = [];
  for (let i = 1; i <= 100; i++)
    events.push(request(PODS.frontend, PODS.web0, { durationMs: i, time: T0 + (i - 1) * 100 }));
  events.push(
    request(PODS.frontend, PODS.web0, { status: 500, time: T0 + 200 }),
    request(PODS.frontend, PODS.web0, { status: 0, time: T0 + 300 }),
    request(PODS.frontend, PODS.web0, { status: 403, verdict: 'DENIED', time: T0 + 400 }),
    request(PODS.frontend, PODS.web0, { status: 404, time: T0 + 500 }),
    request(PODS.frontend, PODS.web0, { protocol: 'grpc', grpcStatus: 14, time: T0 + 600 }),
    request(PODS.frontend, PODS.web0, { protocol: 'grpc', grpcStatus: 0, time: T0 + 700 }),
  );
  const map = buildServiceMap(events);
  t.equal(map.windowMs, 9900, 'first to last event');
  const edges = map.edges.filter((e) => e.protocol === 'http');
  t.equal(edges.length, 1);
  const h = edges[0] as MapEdge;
  t.equal(h.count, 104);
  t.equal(h.errors, 3, '500, no response (0) and the denial; a 404 is the client’s');
  t.equal(h.denied, 1);
  t.equal(h.errorRate, 3 / 104);
  t.equal(h.ratePerSecond, 104 / 9.9);
  t.equal(h.p99Ms, 99, 'p99 of 1..100 ms and four of 10 ms: the 103rd of 104');
  t.equal(h.requestBytes, 104 * 200);
  t.equal(h.responseBytes, 104 * 2000);
  const grpc = map.edges.find((e) => e.protocol === 'grpc') as MapEdge;
  t.same([grpc.count, grpc.errors], [2, 1], 'a non-zero gRPC status is an error');

  const fixed = buildServiceMap(events, { windowMs: 60_000 });
  t.equal(fixed.edges.find((e) => e.protocol === 'http')?.ratePerSecond, 104 / 60);
  t.equal(
    buildServiceMap([events[0] as FlowEvent]).edges[0]?.ratePerSecond,
    undefined,
    'one event: no window',
  );
});

t.test('L4 figures: denials, response flags, connection duration, still-open connections', async (t) => {
  const events = [
    ...connection(PODS.frontend, PODS.db, 5432, { srcPort: 1, verdict: 'DENIED', durationMs: 1 }),
    ...connection(PODS.frontend, PODS.db, 5432, { srcPort: 2, flags: 'UF', durationMs: 5 }),
    ...connection(PODS.frontend, PODS.db, 5432, { srcPort: 3, durationMs: 3000, time: T0 + 4000 }),
    // Opened and closed: the close counts, the open does not.
    ...connection(PODS.frontend, PODS.db, 5432, { srcPort: 3, type: 'open' }),
    // Opened, not closed before the end.
    ...connection(PODS.frontend, PODS.db, 5432, { srcPort: 4, type: 'open', time: T0 + 1000 }),
  ];
  const map = buildServiceMap(events);
  const e = edge(map, 'workload:shop/frontend', 'workload:data/db');
  t.equal(e.count, 4);
  t.equal(e.active, 1);
  t.equal(e.denied, 1);
  t.equal(e.errors, 2, 'the denial and the UF connection');
  t.equal(e.p99Ms, 3000, 'connection duration, of the closed ones');
  t.equal(e.ratePerSecond, 1, '4 connections over 4 s');
});

t.test('peers without pods: identities and the world', async (t) => {
  const map = buildServiceMap([
    ...connection('203.0.113.9', PODS.db, 5432),
    {
      ...connection(PODS.web0, PODS.db, 5432, { sides: 'inbound' })[0]!,
      source: { ip: '10.9.9.9', port: 1, identity: 'spiffe://cluster.local/ns/other/sa/batch' },
    },
  ]);
  t.same(
    map.nodes.map((n) => n.id),
    ['identity:cluster.local/ns/other/sa/batch', 'workload:data/db', 'world'],
  );
  t.same(map.nodes[0], {
    id: 'identity:cluster.local/ns/other/sa/batch',
    kind: 'identity',
    namespace: 'other',
    name: 'sa/batch',
  });
});

t.test('the same events in another order give the same map', async (t) => {
  const events = [
    ...connection(PODS.web0, PODS.db, 5432),
    ...connection(PODS.frontend, '93.184.216.34', 443),
    request(PODS.frontend, PODS.web0),
    request(PODS.frontend, PODS.web1, { time: T0 + 10 }),
    ...waypointLegs(PODS.frontend, PODS.web0, 8080),
  ];
  t.same(buildServiceMap([...events].reverse()), buildServiceMap(events));
  t.same(buildServiceMap([]), {
    fromMs: undefined,
    toMs: undefined,
    windowMs: 0,
    events: 0,
    counted: 0,
    nodes: [],
    edges: [],
  });
});
