// core/store.ts: batches apply atomically; every index follows inserts, updates, moves and deletes.
import t from 'tap';
import { parse } from 'yaml';
import { convertManifest, formatRejection } from '../../core/convert/index.js';
import {
  effectiveMtlsMode,
  keyOf,
  type ConfigRecord,
  type ObjectKey,
  type Workload,
} from '../../core/model/index.js';
import { ConfigStore } from '../../core/store.js';

function record(yaml: string): ConfigRecord {
  const result = convertManifest(parse(yaml));
  if (result.outcome !== 'converted') {
    throw new Error(result.outcome === 'rejected' ? formatRejection(result.rejection) : result.reason);
  }
  return result.record;
}

interface PodSpec {
  name: string;
  ns?: string;
  sa?: string;
  node?: string;
  ip?: string;
  phase?: string;
  labels?: Record<string, string>;
}

function pod({ name, ns = 'shop', sa = 'web', node, ip, phase, labels = {} }: PodSpec): Workload {
  const spec = {
    serviceAccountName: sa,
    ...(node === undefined ? {} : { nodeName: node }),
    containers: [{ name: 'c', ports: [{ name: 'http', containerPort: 8080 }] }],
  };
  const status = { ...(ip === undefined ? {} : { podIP: ip }), ...(phase === undefined ? {} : { phase }) };
  const result = convertManifest({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, uid: `uid-${ns}-${name}`, labels },
    spec,
    status,
  });
  if (result.outcome !== 'converted' || result.record.kind !== 'Pod') throw new Error(`bad test pod ${name}`);
  return result.record;
}

function upsert(store: ConfigStore, ...records: ConfigRecord[]): void {
  store.apply({ upserts: records, deletes: [], rejections: [] });
}

function remove(store: ConfigStore, ...keys: ObjectKey[]): void {
  store.apply({ upserts: [], deletes: keys, rejections: [] });
}

const WEB_SERVICE = `
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  clusterIP: 10.96.0.10
  selector: { app: web }
  ports: [{ name: http, port: 80, targetPort: http }]
`;

t.test('version and the applied event', async (t) => {
  const store = new ConfigStore();
  t.equal(store.version, 0);
  const seen: number[] = [];
  store.on('applied', (version, change) => {
    seen.push(version);
    t.equal(store.workload('shop', 'web-0')?.name, 'web-0', 'listeners see the whole batch applied');
    t.same(change.upserted, [{ kind: 'Pod', namespace: 'shop', name: 'web-0' }]);
  });
  const reached = store.whenVersion(1);
  upsert(store, pod({ name: 'web-0', ip: '10.0.0.1' }));
  t.equal(await reached, 1);
  t.same(seen, [1]);
});

t.test('workload indexes: by IP, UID, name, node; updates move entries', async (t) => {
  const store = new ConfigStore();
  upsert(
    store,
    pod({ name: 'web-0', ip: '10.0.0.1', node: 'node-1' }),
    pod({ name: 'web-1', ip: 'fd00::1', node: 'node-2' }),
  );
  t.equal(store.workloadByIp('10.0.0.1')?.name, 'web-0');
  t.equal(store.workloadByIp('fd00::1')?.name, 'web-1');
  t.equal(store.workloadByUid('uid-shop-web-1')?.name, 'web-1');
  t.same(
    [...store.workloadsOnNode('node-1')].map((w) => w.name),
    ['web-0'],
  );

  upsert(store, pod({ name: 'web-0', ip: '10.0.0.7', node: 'node-2' }));
  t.equal(store.workloadByIp('10.0.0.1'), undefined, 'the old IP is gone');
  t.equal(store.workloadByIp('10.0.0.7')?.name, 'web-0');
  t.same([...store.workloadsOnNode('node-1')], [], 'moved off node-1');
  t.same([...store.workloadsOnNode('node-2')].map((w) => w.name).sort(), ['web-0', 'web-1']);

  remove(store, { kind: 'Pod', namespace: 'shop', name: 'web-0' });
  t.equal(store.workloadByIp('10.0.0.7'), undefined);
  t.equal(store.workload('shop', 'web-0'), undefined);
  t.same(
    [...store.workloadsOnNode('node-2')].map((w) => w.name),
    ['web-1'],
  );
});

t.test('a reused IP resolves to the live pod', async (t) => {
  const store = new ConfigStore();
  upsert(
    store,
    pod({ name: 'old', ip: '10.0.0.1', phase: 'Succeeded' }),
    pod({ name: 'new', ip: '10.0.0.1', phase: 'Running' }),
  );
  t.equal(store.workloadByIp('10.0.0.1')?.name, 'new');
  remove(store, { kind: 'Pod', namespace: 'shop', name: 'new' });
  t.equal(store.workloadByIp('10.0.0.1')?.name, 'old');
  remove(store, { kind: 'Pod', namespace: 'shop', name: 'old' });
  t.equal(store.workloadByIp('10.0.0.1'), undefined);
});

t.test('hasPodOnNode counts live pods per (namespace, SA, node)', async (t) => {
  const store = new ConfigStore();
  upsert(
    store,
    pod({ name: 'a', node: 'node-1', ip: '10.0.0.1' }),
    pod({ name: 'b', node: 'node-1', ip: '10.0.0.2' }),
  );
  t.ok(store.hasPodOnNode('shop', 'web', 'node-1'));
  t.notOk(store.hasPodOnNode('shop', 'web', 'node-2'));
  t.notOk(store.hasPodOnNode('shop', 'db', 'node-1'), 'another service account');
  t.notOk(store.hasPodOnNode('other', 'web', 'node-1'), 'another namespace');

  upsert(store, pod({ name: 'a', node: 'node-1', ip: '10.0.0.1', phase: 'Succeeded' }));
  t.ok(store.hasPodOnNode('shop', 'web', 'node-1'), 'b still runs there');
  upsert(store, pod({ name: 'b', node: 'node-2', ip: '10.0.0.2' }));
  t.notOk(store.hasPodOnNode('shop', 'web', 'node-1'), 'a finished and b moved away');
  t.ok(store.hasPodOnNode('shop', 'web', 'node-2'));
  upsert(store, pod({ name: 'a', node: 'node-1', ip: '10.0.0.1', phase: 'Running' }));
  t.ok(store.hasPodOnNode('shop', 'web', 'node-1'), 'a restarted');
  upsert(store, pod({ name: 'b', node: 'node-2', ip: '10.0.0.2', phase: 'Failed' }));
  t.notOk(store.hasPodOnNode('shop', 'web', 'node-2'), 'a failed pod grants nothing');
  upsert(store, pod({ name: 'c', ip: '10.0.0.3' }));
  t.notOk(store.hasPodOnNode('shop', 'web', ''), 'an unscheduled pod is on no node');
  remove(store, { kind: 'Pod', namespace: 'shop', name: 'a' });
  t.notOk(store.hasPodOnNode('shop', 'web', 'node-1'), 'deleted');
});

t.test('services by VIP and host', async (t) => {
  const store = new ConfigStore({ clusterDomain: 'mesh.test' });
  upsert(store, record(WEB_SERVICE));
  t.equal(store.serviceByVip('10.96.0.10')?.name, 'web');
  for (const host of ['web.shop', 'web.shop.svc', 'web.shop.svc.mesh.test', 'WEB.shop.svc.mesh.test.']) {
    t.equal(store.serviceByHost(host)?.name, 'web', host);
  }
  t.equal(store.serviceByHost('web.shop.svc.cluster.local'), undefined, 'the configured domain only');
  upsert(store, record(WEB_SERVICE.replace('10.96.0.10', '10.96.0.11')));
  t.equal(store.serviceByVip('10.96.0.10'), undefined, 'the old VIP is gone');
  t.equal(store.serviceByVip('10.96.0.11')?.name, 'web');
  remove(store, { kind: 'Service', namespace: 'shop', name: 'web' });
  t.equal(store.serviceByHost('web.shop'), undefined);
  t.equal(store.serviceByVip('10.96.0.11'), undefined);
});

t.test('a VIP two Services claim stays indexed while either still claims it', async (t) => {
  const store = new ConfigStore();
  const web = record(WEB_SERVICE);
  const api = record(WEB_SERVICE.replace('name: web', 'name: api'));
  const webKey = { kind: 'Service', namespace: 'shop', name: 'web' } as const;
  const apiKey = { kind: 'Service', namespace: 'shop', name: 'api' } as const;
  upsert(store, web, api);
  t.equal(store.serviceByVip('10.96.0.10')?.name, 'api', 'the later claim answers');

  remove(store, apiKey);
  t.equal(store.serviceByVip('10.96.0.10')?.name, 'web', 'deleting the answering one: the other takes over');
  upsert(store, api);
  upsert(store, record(WEB_SERVICE.replace('10.96.0.10', '10.96.0.11')));
  t.equal(store.serviceByVip('10.96.0.10')?.name, 'api', 'one moving away leaves it to the other');
  t.equal(store.serviceByVip('10.96.0.11')?.name, 'web');
  upsert(store, web);
  remove(store, webKey);
  t.equal(store.serviceByVip('10.96.0.10')?.name, 'api', 'deleting the later claimant');
  remove(store, apiKey);
  t.equal(store.serviceByVip('10.96.0.10'), undefined, 'gone with its last claimant');
  t.equal(store.serviceByVip('10.96.0.11'), undefined);
});

t.test('endpoints follow pods: labels, phase, node, deletion', async (t) => {
  const store = new ConfigStore();
  upsert(
    store,
    record(WEB_SERVICE),
    pod({ name: 'web-0', ip: '10.0.0.1', node: 'node-1', labels: { app: 'web' } }),
  );
  const service = store.service('shop', 'web')!;
  t.same(
    store.endpointsOf(service),
    [{ address: '10.0.0.1', nodeName: 'node-1', targetPorts: { 80: 8080 } }],
    'named targetPort resolved',
  );

  upsert(store, pod({ name: 'web-1', ip: '10.0.0.2', node: 'node-2', labels: { app: 'web' } }));
  t.same(
    store
      .endpointsOf(service)
      .map((e) => e.address)
      .sort(),
    ['10.0.0.1', '10.0.0.2'],
    'a new matching pod joins',
  );

  upsert(store, pod({ name: 'web-1', ip: '10.0.0.2', node: 'node-2', labels: { app: 'db' } }));
  t.same(
    store.endpointsOf(service).map((e) => e.address),
    ['10.0.0.1'],
    'a relabelled pod leaves',
  );

  upsert(store, pod({ name: 'web-0', ip: '10.0.0.1', node: 'node-3', labels: { app: 'web' } }));
  t.same(
    store.endpointsOf(service).map((e) => e.nodeName),
    ['node-3'],
    'a changed member is reflected',
  );

  upsert(
    store,
    pod({ name: 'web-0', ip: '10.0.0.1', node: 'node-3', phase: 'Pending', labels: { app: 'web' } }),
  );
  t.same(store.endpointsOf(service), [], 'only Running pods serve');

  upsert(store, record(WEB_SERVICE.replace('{ app: web }', '{ app: db }')));
  t.same(
    store.endpointsOf(store.service('shop', 'web')!).map((e) => e.address),
    ['10.0.0.2'],
    'a new selector reselects',
  );

  remove(store, { kind: 'Pod', namespace: 'shop', name: 'web-1' });
  t.same(store.endpointsOf(store.service('shop', 'web')!), [], 'a deleted pod leaves');
});

t.test('EndpointSlices take over from the selector', async (t) => {
  const store = new ConfigStore();
  upsert(store, record(WEB_SERVICE), pod({ name: 'web-0', ip: '10.0.0.1', labels: { app: 'web' } }));
  const slice = record(`
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: web-abc, namespace: shop, labels: { kubernetes.io/service-name: web } }
addressType: IPv4
ports: [{ name: http, port: 9090 }]
endpoints:
  - { addresses: [10.1.0.1], nodeName: node-9 }
  - { addresses: [10.1.0.2], conditions: { ready: false } }
`);
  upsert(store, slice);
  const service = store.service('shop', 'web')!;
  t.same(
    store.endpointsOf(service),
    [{ address: '10.1.0.1', nodeName: 'node-9', targetPorts: { 80: 9090 } }],
    'ready slice endpoints only',
  );
  remove(store, keyOf(slice));
  t.same(
    store.endpointsOf(service).map((e) => e.address),
    ['10.0.0.1'],
    'back to the selector without slices',
  );
});

const policy = (name: string, ns: string, extra = '') => `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: ${name}, namespace: ${ns} }
spec:
${extra || '  rules: [{}]'}
`;

t.test('authorizationPoliciesFor: root, namespace and selector policies', async (t) => {
  const store = new ConfigStore();
  upsert(
    store,
    record(policy('mesh-wide', 'istio-system')),
    record(policy('mesh-web', 'istio-system', '  selector: { matchLabels: { app: web } }\n  rules: [{}]')),
    record(policy('mesh-db', 'istio-system', '  selector: { matchLabels: { app: db } }\n  rules: [{}]')),
    record(policy('shop-wide', 'shop')),
    record(policy('shop-web', 'shop', '  selector: { matchLabels: { app: web } }\n  rules: [{}]')),
    record(policy('waypoint-only', 'shop', '  targetRefs: [{ kind: Service, name: web }]\n  rules: [{}]')),
    record(policy('other-ns', 'other')),
    pod({ name: 'web-0', ip: '10.0.0.1', labels: { app: 'web' } }),
  );
  const names = (w: Workload) => store.authorizationPoliciesFor(w).map((p) => `${p.namespace}/${p.name}`);
  const web = store.workload('shop', 'web-0')!;
  t.same(names(web), ['istio-system/mesh-web', 'istio-system/mesh-wide', 'shop/shop-web', 'shop/shop-wide']);
  t.equal(
    store.authorizationPoliciesFor(web),
    store.authorizationPoliciesFor(web),
    'cached: the same array until something changes',
  );

  upsert(store, pod({ name: 'web-0', ip: '10.0.0.1', labels: { app: 'db' } }));
  const relabelled = store.workload('shop', 'web-0')!;
  t.same(
    names(relabelled),
    ['istio-system/mesh-db', 'istio-system/mesh-wide', 'shop/shop-wide'],
    'a label change re-selects',
  );

  upsert(store, record(policy('shop-db', 'shop', '  selector: { matchLabels: { app: db } }\n  rules: [{}]')));
  t.same(
    names(relabelled),
    ['istio-system/mesh-db', 'istio-system/mesh-wide', 'shop/shop-db', 'shop/shop-wide'],
    'a new namespace policy applies',
  );

  remove(store, { kind: 'AuthorizationPolicy', namespace: 'istio-system', name: 'mesh-wide' });
  t.same(
    names(relabelled),
    ['istio-system/mesh-db', 'shop/shop-db', 'shop/shop-wide'],
    'a removed root policy no longer applies',
  );

  const rootStore = new ConfigStore({ rootNamespace: 'mesh-root' });
  upsert(
    rootStore,
    record(policy('mesh-wide', 'mesh-root')),
    record(policy('ignored', 'istio-system')),
    pod({ name: 'a', ip: '10.0.0.1' }),
  );
  t.same(
    rootStore.authorizationPoliciesFor(rootStore.workload('shop', 'a')!).map((p) => p.name),
    ['mesh-wide'],
    'the root namespace is configurable',
  );
});

t.test('peerAuthenticationsFor: levels and the effective mode', async (t) => {
  const store = new ConfigStore();
  const peerAuth = (name: string, ns: string, spec: string, created = '2026-01-01T00:00:00Z') =>
    record(`
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: ${name}, namespace: ${ns}, creationTimestamp: "${created}" }
spec: ${spec}
`);
  upsert(
    store,
    peerAuth('default', 'istio-system', '{ mtls: { mode: STRICT } }'),
    peerAuth(
      'root-selector',
      'istio-system',
      '{ selector: { matchLabels: { app: web } }, mtls: { mode: DISABLE } }',
    ),
    pod({ name: 'web-0', ip: '10.0.0.1', labels: { app: 'web' } }),
  );
  const web = () => store.workload('shop', 'web-0')!;
  t.equal(
    effectiveMtlsMode(store.peerAuthenticationsFor(web()), 8080),
    'STRICT',
    'mesh level; root selector policies are ignored',
  );

  upsert(
    store,
    peerAuth('newer', 'shop', '{ mtls: { mode: STRICT } }', '2026-02-01T00:00:00Z'),
    peerAuth('older', 'shop', '{ mtls: { mode: PERMISSIVE } }'),
  );
  t.equal(store.peerAuthenticationsFor(web()).namespace?.name, 'older', 'the oldest wins within a level');
  t.equal(effectiveMtlsMode(store.peerAuthenticationsFor(web()), 8080), 'PERMISSIVE');

  upsert(
    store,
    peerAuth(
      'web',
      'shop',
      '{ selector: { matchLabels: { app: web } }, mtls: { mode: UNSET }, portLevelMtls: { "9090": { mode: STRICT } } }',
    ),
  );
  const levels = store.peerAuthenticationsFor(web());
  t.equal(levels.workload?.name, 'web');
  t.equal(effectiveMtlsMode(levels, 8080), 'PERMISSIVE', 'UNSET inherits from the namespace');
  t.equal(effectiveMtlsMode(levels, 9090), 'STRICT', 'the port level wins');

  upsert(store, pod({ name: 'web-0', ip: '10.0.0.1', labels: { app: 'other' } }));
  t.equal(store.peerAuthenticationsFor(web()).workload, undefined, 'a label change drops the workload level');
});

t.test('rejections: recorded, replaced, cleared; the last good record keeps serving', async (t) => {
  const store = new ConfigStore();
  upsert(store, pod({ name: 'web-0', ip: '10.0.0.1' }));
  const rejection = {
    kind: 'Pod',
    namespace: 'shop',
    name: 'web-0',
    field: 'status.podIP',
    reason: 'must be an IP address',
  };
  store.apply({ upserts: [], deletes: [], rejections: [rejection] });
  t.same(store.allRejections(), [rejection]);
  t.equal(store.workload('shop', 'web-0')?.podIps[0], '10.0.0.1', 'still serving the last good version');
  store.apply({ upserts: [], deletes: [], rejections: [{ ...rejection, reason: 'still bad' }] });
  t.equal(store.allRejections().length, 1, 'a new rejection for the same object replaces the old');
  upsert(store, pod({ name: 'web-0', ip: '10.0.0.2' }));
  t.same(store.allRejections(), [], 'a good version clears a source-less rejection');

  const fileRejection = { ...rejection, file: 'm/a.yaml', document: 1 };
  store.apply({ upserts: [], deletes: [], rejections: [fileRejection] });
  t.equal(store.allRejections().length, 1);
  store.apply({ upserts: [], deletes: [], rejections: [], clearedRejections: ['m/a.yaml|Pod/shop/web-0'] });
  t.same(store.allRejections(), [], 'a file rejection is cleared by its key');
});

t.test('get, namespaces, gateways and routes', async (t) => {
  const store = new ConfigStore();
  const namespace = record('apiVersion: v1\nkind: Namespace\nmetadata: { name: shop }');
  const gateway = record(`
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: waypoint, namespace: shop }
spec: { gatewayClassName: istio-waypoint, listeners: [{ name: mesh, port: 15008, protocol: HBONE }] }
`);
  const route = record(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: web, namespace: shop }
spec: { parentRefs: [{ group: "", kind: Service, name: web }] }
`);
  upsert(store, namespace, gateway, route);
  t.equal(store.namespace('shop'), namespace);
  t.equal(store.get({ kind: 'Namespace', namespace: '', name: 'shop' }), namespace);
  t.same(store.gateways('shop'), [gateway]);
  t.same(store.httpRoutes('shop'), [route]);
  t.same(store.httpRoutes('other'), []);
  remove(store, keyOf(route), keyOf(namespace));
  t.same(store.httpRoutes('shop'), []);
  t.equal(store.namespace('shop'), undefined);
});
