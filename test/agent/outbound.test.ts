// planOutbound and admitInbound decide from config alone: table tests, no sockets.
import t from 'tap';
import { ConfigStore } from '../../core/store.js';
import { convertManifest } from '../../core/convert/index.js';
import type { ConfigRecord } from '../../core/model/index.js';
import { LocalWorkloads } from '../../agent/workloads.js';
import { planOutbound } from '../../agent/outbound.js';
import { admitInbound, DEFAULT_AGENT_PORTS } from '../../agent/inbound.js';
import { isLoopback } from '../../agent/socket.js';
import type { InboundAuthorizer } from '../../agent/authorizer.js';
import { ALLOWED_NO_POLICIES, DENIED_NO_ALLOW_MATCHED } from '../../core/authz/verdict.js';
import { parseSpiffeId } from '../../core/spiffe.js';
import YAML from 'yaml';

const MANIFESTS = `
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { istio.io/dataplane-mode: ambient } }
---
apiVersion: v1
kind: Namespace
metadata: { name: legacy }
---
apiVersion: v1
kind: Pod
metadata: { name: client-0, namespace: shop, uid: u-client, labels: { app: client } }
spec: { serviceAccountName: client, nodeName: node-1 }
status: { phase: Running, podIP: 10.1.1.10 }
---
apiVersion: v1
kind: Pod
metadata: { name: server-0, namespace: shop, uid: u-server, labels: { app: server } }
spec: { serviceAccountName: server, nodeName: node-2 }
status: { phase: Running, podIP: 10.1.2.10 }
---
apiVersion: v1
kind: Pod
metadata: { name: plain-0, namespace: legacy, uid: u-plain, labels: { app: plain } }
spec: { nodeName: node-2 }
status: { phase: Running, podIP: 10.1.2.11 }
---
apiVersion: v1
kind: Service
metadata: { name: server, namespace: shop }
spec: { clusterIP: 10.96.0.10, selector: { app: server }, ports: [{ port: 80, targetPort: 8080 }] }
---
apiVersion: v1
kind: Service
metadata: { name: bound, namespace: shop, labels: { istio.io/use-waypoint: waypoint } }
spec: { clusterIP: 10.96.0.11, selector: { app: nobody }, ports: [{ port: 80, targetPort: 8080 }] }
---
apiVersion: v1
kind: Service
metadata: { name: lost, namespace: shop, labels: { istio.io/use-waypoint: missing } }
spec: { clusterIP: 10.96.0.12, selector: { app: server }, ports: [{ port: 80, targetPort: 8080 }] }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: waypoint, namespace: shop }
spec: { gatewayClassName: istio-waypoint, listeners: [{ name: mesh, port: 15008, protocol: HBONE }] }
---
apiVersion: v1
kind: Pod
metadata: { name: waypoint-0, namespace: shop, uid: u-wp, labels: { gateway.networking.k8s.io/gateway-name: waypoint } }
spec: { serviceAccountName: waypoint, nodeName: node-2 }
status: { phase: Running, podIP: 10.1.2.20 }
---
apiVersion: v1
kind: Service
metadata: { name: waypoint, namespace: shop }
spec: { clusterIP: 10.96.0.20, selector: { gateway.networking.k8s.io/gateway-name: waypoint }, ports: [{ port: 15008, targetPort: 15008 }] }
`;

function load(): ConfigStore {
  const store = new ConfigStore();
  const upserts: ConfigRecord[] = [];
  for (const doc of YAML.parseAllDocuments(MANIFESTS)) {
    const r = convertManifest(doc.toJS());
    if (r.outcome !== 'converted') throw new Error(JSON.stringify(r));
    upserts.push(r.record);
  }
  store.apply({ upserts, deletes: [], rejections: [] });
  return store;
}

const first = () => 0;

t.test('planOutbound', (t) => {
  const store = load();
  const local = new LocalWorkloads(store, 'node-1', 'cluster.local');
  const cases: [string, { ip: string; port: number }, Record<string, unknown>][] = [
    [
      'pod IP in the mesh',
      { ip: '10.1.2.10', port: 8080 },
      {
        kind: 'hbone',
        nextHop: { ip: '10.1.2.10', port: 15008 },
        authority: '10.1.2.10:8080',
        expectedIdentity: 'spiffe://cluster.local/ns/shop/sa/server',
      },
    ],
    [
      'service VIP → endpoint target port',
      { ip: '10.96.0.10', port: 80 },
      {
        kind: 'hbone',
        authority: '10.1.2.10:8080',
        expectedIdentity: 'spiffe://cluster.local/ns/shop/sa/server',
      },
    ],
    ['service VIP on a port it lacks', { ip: '10.96.0.10', port: 81 }, { kind: 'refuse' }],
    [
      'waypoint-bound service: to the waypoint, original authority, before any endpoint',
      { ip: '10.96.0.11', port: 80 },
      {
        kind: 'hbone',
        nextHop: { ip: '10.1.2.20', port: 15008 },
        authority: '10.96.0.11:80',
        expectedIdentity: 'spiffe://cluster.local/ns/shop/sa/waypoint',
      },
    ],
    [
      'bound to a waypoint that does not exist: fail closed',
      { ip: '10.96.0.12', port: 80 },
      { kind: 'refuse', reason: /does not exist/ },
    ],
    [
      'pod outside the mesh',
      { ip: '10.1.2.11', port: 8080 },
      { kind: 'passthrough', target: { ip: '10.1.2.11', port: 8080 } },
    ],
    ['address outside the cluster', { ip: '192.0.2.1', port: 443 }, { kind: 'passthrough' }],
  ];
  for (const [name, dst, want] of cases) t.match(planOutbound(store, local, dst, first), want, name);
  for (const ip of [
    '127.0.0.1',
    '127.9.9.9',
    '0.0.0.0',
    '::',
    '::1',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '::ffff:0:0',
  ])
    t.match(
      planOutbound(store, local, { ip, port: 15000 }, first),
      { kind: 'refuse' },
      `loopback form ${ip}`,
    );
  t.notOk(isLoopback('10.1.1.10'));
  t.notOk(isLoopback('::ffff:a01:10a'), 'a mapped non-loopback address is not loopback');
  t.end();
});

t.test('admitInbound', (t) => {
  const store = load();
  const local = new LocalWorkloads(store, 'node-2', 'cluster.local');
  const server = store.workloadByIp('10.1.2.10')!;
  let allow = true;
  const authorizer: InboundAuthorizer = {
    authorize: () => (allow ? ALLOWED_NO_POLICIES : DENIED_NO_ALLOW_MATCHED),
  };
  const ports = new Set(DEFAULT_AGENT_PORTS);
  const peer = {
    ip: '10.1.1.10',
    port: 40000,
    identity: parseSpiffeId('spiffe://cluster.local/ns/shop/sa/client'),
  };
  const admit = (headers: Record<string, string>) =>
    admitInbound(local, authorizer, ports, server, headers, peer);
  t.match(admit({ ':method': 'CONNECT', ':authority': '10.1.2.10:8080' }), {
    kind: 'admit',
    target: { ip: '10.1.2.10', port: 8080 },
  });
  t.match(admit({ ':method': 'GET', ':authority': '10.1.2.10:8080' }), { kind: 'refuse', status: 400 });
  t.match(admit({ ':method': 'CONNECT', ':authority': 'server:8080' }), { kind: 'refuse', status: 400 });
  t.match(
    admit({ ':method': 'CONNECT', ':authority': '10.1.2.11:8080' }),
    { kind: 'refuse', status: 503 },
    'not enrolled',
  );
  t.match(
    admit({ ':method': 'CONNECT', ':authority': '10.1.1.10:8080' }),
    { kind: 'refuse', status: 503 },
    'another node',
  );
  t.match(
    admit({ ':method': 'CONNECT', ':authority': '10.1.2.20:8080' }),
    { kind: 'refuse', status: 400 },
    'a local pod other than the presented one',
  );
  t.match(
    admit({ ':method': 'CONNECT', ':authority': '10.1.2.10:15020' }),
    { kind: 'refuse', status: 503 },
    "the agent's port",
  );
  allow = false;
  t.match(admit({ ':method': 'CONNECT', ':authority': '10.1.2.10:8080' }), {
    kind: 'refuse',
    status: 401,
    flag: 'DENY',
  });
  allow = true;
  // An edit replaces the record; a pooled tunnel presented the old object and must keep working.
  store.apply({
    upserts: [{ ...server, labels: { ...server.labels, edited: 'yes' } }],
    deletes: [],
    rejections: [],
  });
  t.not(store.workloadByIp('10.1.2.10'), server, 'the store holds a new object');
  t.match(
    admit({ ':method': 'CONNECT', ':authority': '10.1.2.10:8080' }),
    { kind: 'admit' },
    'same uid: still admitted',
  );
  t.end();
});
