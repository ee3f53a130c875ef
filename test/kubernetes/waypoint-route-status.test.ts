// Two replicas of one waypoint against the API server double: the Lease makes one of them the writer,
// the HTTPRoute gets the conditions the waypoint computes (Accepted, and ResolvedRefs=False for the
// rule whose backend does not exist), and when the leader stops the other one takes over and keeps
// the status current.
import t from 'tap';
import { startWaypoint } from '../../proxy/main.js';
import type { WaypointHandle } from '../../proxy/options.js';
import { LocalCaClient } from '../helpers/local-ca-client.js';
import { CLUSTER_TABLE } from '../helpers/cluster-table.js';
import { kubeconfigFor, startKubeApiServer, type KubeObject } from '../helpers/kube-api-server.js';

const WAIT_MS = 10_000;
const LOOPBACK = { host: '127.0.0.1', port: 0 };

interface Condition {
  type: string;
  status: string;
  reason: string;
}
interface ParentStatus {
  controllerName: string;
  parentRef: { name: string; kind?: string };
  conditions: Condition[];
}

async function eventually<T>(what: string, read: () => T | undefined): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

t.test('one leader among the replicas writes HTTPRoute status; the other takes over', async (t) => {
  const server = await startKubeApiServer(t, CLUSTER_TABLE);
  const configSource = `kubernetes:${kubeconfigFor(t, server)}`;
  const ca = await LocalCaClient.create();
  const statusWrites: string[] = [];
  server.on('request', (line) => {
    if (line.startsWith('PUT /apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes/web/status'))
      statusWrites.push(line);
  });
  const replica = async (identity: string): Promise<WaypointHandle> => {
    const handle = await startWaypoint({
      name: 'waypoint',
      namespace: 'shop',
      serviceAccount: 'waypoint',
      nodeName: 'node-2',
      trustDomain: 'cluster.local',
      configSource,
      ca: { address: '127.0.0.1:1', rootCertPem: '', tokenFile: '/nonexistent' } as never,
      caClient: ca,
      certTtlSeconds: 3600,
      hboneListen: LOOPBACK,
      adminListen: null,
      metricsListen: null,
      readinessListen: null,
      otlpEndpoint: undefined,
      routeStatus: { identity, leaseDurationMs: 1000, renewDeadlineMs: 600, retryPeriodMs: 100 },
    });
    return handle;
  };
  const a = await replica('waypoint-a');
  const b = await replica('waypoint-b');
  let bClosed = false;
  t.teardown(async () => {
    await a.close();
    if (!bClosed) await b.close();
  });

  const parents = (): ParentStatus[] | undefined =>
    (server.get('HTTPRoute', 'shop', 'web')?.status as { parents?: ParentStatus[] } | undefined)?.parents;
  const written = await eventually('the route has status', parents);
  t.equal(written.length, 1);
  t.match(written[0], {
    controllerName: 'istio.io/mesh-controller',
    parentRef: { kind: 'Service', name: 'web' },
    conditions: [
      { type: 'Accepted', status: 'True' },
      { type: 'ResolvedRefs', status: 'False', reason: 'BackendNotFound' },
    ],
  });
  const lease = server.get('Lease', 'shop', 'weft-waypoint-waypoint');
  const holder = (lease?.spec as { holderIdentity?: string } | undefined)?.holderIdentity;
  t.ok(holder === 'waypoint-a' || holder === 'waypoint-b', `the lease is held (${holder})`);
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.equal(statusWrites.length, 1, 'written once, by one replica');

  // The leader goes away; the follower takes the lease and writes the next change.
  const [leader, follower] = holder === 'waypoint-a' ? [a, b] : [b, a];
  await leader.close();
  if (leader === b) bClosed = true;
  const route = server.get('HTTPRoute', 'shop', 'web') as KubeObject;
  const spec = route.spec as { rules: unknown[] };
  server.update({ ...route, spec: { ...spec, rules: spec.rules.slice(0, 1) } });
  const fixed = await eventually('ResolvedRefs turns True', () => {
    const entry = parents()?.[0];
    return entry?.conditions.find((c) => c.type === 'ResolvedRefs')?.status === 'True' ? entry : undefined;
  });
  t.ok(fixed, 'the new leader wrote the fixed status');
  const newHolder = (
    server.get('Lease', 'shop', 'weft-waypoint-waypoint')?.spec as { holderIdentity?: string }
  ).holderIdentity;
  t.equal(newHolder, follower === a ? 'waypoint-a' : 'waypoint-b');
});
