// core/sources/kubernetes.ts against the API server double, through a real kubeconfig file: the first
// list, watched changes, rejections, interrupted watches, 410 Gone after compaction, a restarted API
// server, and one table of manifests giving the same records as the file source.
import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatRejection } from '../../core/convert/index.js';
import { keyString, type ObjectKey } from '../../core/model/index.js';
import { createConfigSource, type ConfigSource } from '../../core/sources/index.js';
import { ConfigStore } from '../../core/store.js';
import {
  KubeApiServer,
  kubeconfigFor,
  startKubeApiServer,
  type KubeObject,
} from '../helpers/kube-api-server.js';

/** Bounds every wait: a change that never arrives fails the test instead of hanging it. */
const WAIT_MS = 5000;

interface Teardowns {
  teardown(fn: () => unknown): void;
}

function tempDir(t: Teardowns): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-kubernetes-source-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function started(
  t: Teardowns,
  server: KubeApiServer,
  options: { startTimeoutMs?: number } = {},
): Promise<{ store: ConfigStore; source: ConfigSource }> {
  const store = new ConfigStore();
  const source = createConfigSource(`kubernetes:${kubeconfigFor(t, server)}`, {
    kubernetes: { initialBackoffMs: 20, maxBackoffMs: 200, ...options },
  });
  await source.start(store);
  t.teardown(() => source.stop());
  return { store, source };
}

/** Resolves once `holds()` is true after some applied batch (or already); rejects after WAIT_MS. */
function until(store: ConfigStore, what: string, holds: () => boolean): Promise<void> {
  if (holds()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      store.off('applied', onApplied);
      reject(new Error(`timed out waiting until ${what}`));
    }, WAIT_MS);
    const onApplied = (): void => {
      if (!holds()) return;
      clearTimeout(timer);
      store.off('applied', onApplied);
      resolve();
    };
    store.on('applied', onApplied);
  });
}

const NAMESPACE: KubeObject = {
  apiVersion: 'v1',
  kind: 'Namespace',
  metadata: { name: 'shop', labels: { 'istio.io/dataplane-mode': 'ambient' } },
};

function pod(name: string, ip: string, labels: Record<string, string> = { app: 'web' }): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'shop', labels },
    spec: { serviceAccountName: 'web', nodeName: 'node-1', containers: [{ name: 'app' }] },
    status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
  };
}

function service(port: unknown): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web', namespace: 'shop' },
    spec: { selector: { app: 'web' }, clusterIP: '10.96.0.10', ports: [{ name: 'http', port }] },
  };
}

function podNames(store: ConfigStore): string[] {
  return [...store.workloadsInNamespace('shop')].map((w) => w.name).sort();
}

t.test('the first list is one batch holding every kind', async (t) => {
  const server = await startKubeApiServer(t, [NAMESPACE, pod('web-0', '10.0.0.1'), service(80)]);
  const { store } = await started(t, server);
  t.equal(store.version, 1, 'start resolves after one batch');
  t.equal(store.namespace('shop')?.name, 'shop');
  t.equal(store.workloadByIp('10.0.0.1')?.name, 'web-0');
  t.equal(store.service('shop', 'web')?.ports[0]?.port, 80);
  t.same(store.allRejections(), []);
});

t.test('an empty cluster still gives a first (empty) batch', async (t) => {
  const server = await startKubeApiServer(t);
  const { store } = await started(t, server);
  t.equal(store.version, 1);
  t.same([...store.namespaces()], []);
});

t.test('creates, updates and deletes reach the store', async (t) => {
  const server = await startKubeApiServer(t, [NAMESPACE]);
  const { store } = await started(t, server);
  server.create(pod('web-0', '10.0.0.1'));
  await until(store, 'web-0 is added', () => store.workload('shop', 'web-0') !== undefined);
  server.update(pod('web-0', '10.0.0.2'));
  await until(store, 'web-0 moves', () => store.workloadByIp('10.0.0.2')?.name === 'web-0');
  t.equal(store.workloadByIp('10.0.0.1'), undefined, 'the old address is gone');
  server.delete('Pod', 'shop', 'web-0');
  await until(store, 'web-0 is deleted', () => store.workload('shop', 'web-0') === undefined);
  t.same(podNames(store), []);
});

t.test('events of one tick are one batch', async (t) => {
  const server = await startKubeApiServer(t, [NAMESPACE]);
  const { store } = await started(t, server);
  const before = store.version;
  for (let i = 0; i < 20; i += 1) server.create(pod(`web-${i}`, `10.0.0.${i + 1}`));
  await until(store, 'all 20 pods arrive', () => podNames(store).length === 20);
  t.ok(store.version - before < 20, `20 creates took ${store.version - before} batches`);
});

t.test('an invalid object is rejected with the reason; the last good version keeps serving', async (t) => {
  const server = await startKubeApiServer(t, [NAMESPACE, service(80)]);
  const { store } = await started(t, server);
  server.update(service('http'));
  await until(store, 'the bad Service is rejected', () => store.allRejections().length === 1);
  t.match(store.allRejections().map(formatRejection), [
    /^Service shop\/web: spec\.ports\[0\]\.port must be /,
  ]);
  t.equal(store.service('shop', 'web')?.ports[0]?.port, 80, 'the last good version serves');

  server.update(service(8080));
  await until(
    store,
    'the fixed Service applies',
    () => store.service('shop', 'web')?.ports[0]?.port === 8080,
  );
  t.same(store.allRejections(), [], 'the fix clears the rejection');

  server.update(service(-1));
  await until(store, 'rejected again', () => store.allRejections().length === 1);
  server.delete('Service', 'shop', 'web');
  await until(store, 'the Service is deleted', () => store.service('shop', 'web') === undefined);
  t.same(store.allRejections(), [], "a deleted object's rejection is gone");

  // Never valid: rejected, no record, and the delete clears it.
  server.create({ ...service('x'), metadata: { name: 'never', namespace: 'shop' } });
  await until(store, 'never is rejected', () => store.allRejections().length === 1);
  t.equal(store.service('shop', 'never'), undefined);
  server.delete('Service', 'shop', 'never');
  await until(store, 'its rejection is cleared', () => store.allRejections().length === 0);
});

/** Every key any batch upserted or deleted from now on. */
function changesSeen(store: ConfigStore): { upserted: string[]; deleted: string[] } {
  const seen = { upserted: [] as string[], deleted: [] as string[] };
  store.on('applied', (_version, change) => {
    seen.upserted.push(...change.upserted.map(keyString));
    seen.deleted.push(...change.deleted.map(keyString));
  });
  return seen;
}

for (const graceful of [false, true]) {
  t.test(`a ${graceful ? 'gracefully ended' : 'cut'} watch loses nothing and repeats nothing`, async (t) => {
    const server = await startKubeApiServer(t, [
      NAMESPACE,
      pod('web-0', '10.0.0.1'),
      pod('web-1', '10.0.0.2'),
    ]);
    const { store } = await started(t, server);
    const seen = changesSeen(store);
    server.dropWatches({ graceful });
    // Changed while the watches are down (or reconnecting): the resumed watches replay them.
    server.create(pod('web-2', '10.0.0.3'));
    server.delete('Pod', 'shop', 'web-0');
    await until(store, 'the changes arrive', () => podNames(store).join() === 'web-1,web-2');
    server.create(pod('web-3', '10.0.0.4'));
    await until(store, 'a later change arrives', () => podNames(store).join() === 'web-1,web-2,web-3');
    t.same(seen.upserted, ['Pod/shop/web-2', 'Pod/shop/web-3'], 'only the changes, each once');
    t.same(seen.deleted, ['Pod/shop/web-0']);
  });
}

t.test('410 Gone after compaction: the relist replaces state, deletions included', async (t) => {
  const server = await startKubeApiServer(t, [NAMESPACE, pod('web-0', '10.0.0.1'), pod('web-1', '10.0.0.2')]);
  const { store } = await started(t, server);
  const seen = changesSeen(store);
  let lists = 0;
  server.on('list', () => (lists += 1));
  await server.close();
  server.delete('Pod', 'shop', 'web-0');
  server.update(pod('web-1', '10.0.0.9'));
  server.create(pod('web-2', '10.0.0.3'));
  server.compact();
  await server.listen();
  await until(store, 'the relist is applied', () => podNames(store).join() === 'web-1,web-2');
  t.equal(store.workloadByIp('10.0.0.9')?.name, 'web-1', 'the update made while down');
  t.equal(store.workloadByIp('10.0.0.1'), undefined, 'the deleted pod is gone from the indexes');
  t.ok(lists >= 1, 'the kinds were listed again');
  t.same(seen.upserted.sort(), ['Pod/shop/web-1', 'Pod/shop/web-2'], 'unchanged objects are not re-applied');
  t.same(seen.deleted, ['Pod/shop/web-0']);
});

t.test('lists come in pages; a continue token that expires mid-list starts the list over', async (t) => {
  const pods = Array.from({ length: 1200 }, (_, i) => pod(`web-${i}`, `10.1.${i >> 8}.${i & 255}`));
  const server = await startKubeApiServer(t, [NAMESPACE, ...pods]);
  const podPages: string[] = [];
  let compacted = false;
  server.on('request', (line) => {
    if (!line.startsWith('GET /api/v1/pods?') || line.includes('watch=')) return;
    podPages.push(line);
    // Compacted once, as the second page is asked for: its continue token is stale.
    if (!compacted && line.includes('continue=')) {
      compacted = true;
      server.compact();
    }
  });
  const { store } = await started(t, server);
  t.equal(podNames(store).length, 1200, 'every pod arrived');
  t.ok(
    podPages.every((line) => line.includes('limit=500')),
    'every page asks for 500',
  );
  t.equal(podPages.filter((line) => line.includes('continue=')).length, 3, 'one stale page, then two');
  t.equal(podPages.length, 5, 'the list started over once: 1 + 1 stale, then 3 pages');
});

t.test('the informer keeps stubs; deletes found by a relist still name their objects', async (t) => {
  const server = await startKubeApiServer(t, [NAMESPACE, service(80), pod('web-0', '10.0.0.1')]);
  const { store } = await started(t, server);
  const seen = changesSeen(store);
  // A watch that replays an event the source already has (same resourceVersion) changes nothing.
  server.dropWatches();
  server.create(pod('web-1', '10.0.0.2'));
  await until(store, 'web-1 arrives', () => podNames(store).join() === 'web-0,web-1');
  await server.close();
  server.delete('Service', 'shop', 'web');
  server.compact();
  await server.listen();
  await until(store, 'the relist drops the Service', () => store.service('shop', 'web') === undefined);
  t.same(seen.upserted, ['Pod/shop/web-1']);
  t.same(seen.deleted, ['Service/shop/web']);
  t.equal(store.workload('shop', 'web-0')?.podIps[0], '10.0.0.1', 'the records are whole, not stubs');
});

t.test('a restarted API server: the source reconnects and follows again', async (t) => {
  const server = await startKubeApiServer(t, [NAMESPACE, pod('web-0', '10.0.0.1')]);
  const { store } = await started(t, server);
  await server.restart();
  server.create(pod('web-1', '10.0.0.2'));
  await until(store, 'a change after the restart arrives', () => podNames(store).join() === 'web-0,web-1');
  await server.restart({ compact: true });
  server.delete('Pod', 'shop', 'web-0');
  await until(store, 'a delete after a compacting restart arrives', () => podNames(store).join() === 'web-1');
});

t.test('start waits for an API server that comes up late, and gives up on one that never does', async (t) => {
  const server = await startKubeApiServer(t, [NAMESPACE]);
  const path = kubeconfigFor(t, server);
  await server.close();
  const store = new ConfigStore();
  const late = createConfigSource(`kubernetes:${path}`, {
    kubernetes: { initialBackoffMs: 20, maxBackoffMs: 50, startTimeoutMs: WAIT_MS },
  });
  t.teardown(() => late.stop());
  const starting = late.start(store);
  setTimeout(() => void server.listen(), 100);
  await starting;
  t.equal(store.namespace('shop')?.name, 'shop', 'loaded once the server answered');

  const never = new KubeApiServer();
  await never.listen();
  const unreachable = kubeconfigFor(t, never);
  await never.close();
  const failing = createConfigSource(`kubernetes:${unreachable}`, {
    kubernetes: { initialBackoffMs: 20, maxBackoffMs: 50, startTimeoutMs: 300 },
  });
  await t.rejects(failing.start(new ConfigStore()), /did not list Namespace \(.*ECONNREFUSED/);
  await t.rejects(
    createConfigSource('kubernetes:/nonexistent/kubeconfig').start(new ConfigStore()),
    /cannot load the kubeconfig/,
  );
});

// One table, two sources: the same manifests in a `file:` folder and in the API server end as the same
// records and the same rejections. Timestamps and uids are given so the API server keeps them.
const META = { uid: 'u', creationTimestamp: '2026-01-01T00:00:00Z' };
const TABLE: readonly KubeObject[] = [
  { ...NAMESPACE, metadata: { ...NAMESPACE.metadata, ...META, uid: 'ns-shop' } },
  {
    ...pod('web-0', '10.0.0.1'),
    metadata: { name: 'web-0', namespace: 'shop', labels: { app: 'web' }, ...META, uid: 'p0' },
  },
  { ...service(80), metadata: { name: 'web', namespace: 'shop', ...META, uid: 's0' } },
  { ...service('http'), metadata: { name: 'broken', namespace: 'shop', ...META, uid: 's1' } },
  {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: 'web-abc',
      namespace: 'shop',
      labels: { 'kubernetes.io/service-name': 'web' },
      ...META,
    },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: [{ addresses: ['10.0.0.1'], conditions: { ready: true }, nodeName: 'node-1' }],
  },
  {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: 'waypoint', namespace: 'shop', ...META },
    spec: {
      gatewayClassName: 'istio-waypoint',
      listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }],
    },
  },
  {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'web', namespace: 'shop', ...META },
    spec: {
      parentRefs: [{ group: '', kind: 'Service', name: 'web' }],
      rules: [
        {
          matches: [{ path: { type: 'PathPrefix', value: '/api' } }],
          backendRefs: [{ name: 'web', port: 80 }],
        },
      ],
    },
  },
  {
    apiVersion: 'security.istio.io/v1',
    kind: 'AuthorizationPolicy',
    metadata: { name: 'allow-web', namespace: 'shop', ...META },
    spec: {
      selector: { matchLabels: { app: 'web' } },
      action: 'ALLOW',
      rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/web'] } }] }],
    },
  },
  {
    apiVersion: 'security.istio.io/v1',
    kind: 'AuthorizationPolicy',
    metadata: { name: 'bad-action', namespace: 'shop', ...META },
    spec: { action: 'MAYBE' },
  },
  {
    apiVersion: 'security.istio.io/v1',
    kind: 'PeerAuthentication',
    metadata: { name: 'strict', namespace: 'shop', ...META },
    spec: { mtls: { mode: 'STRICT' } },
  },
];

t.test('one shared table: the file source and the kubernetes source agree', async (t) => {
  const dir = join(tempDir(t), 'manifests');
  mkdirSync(dir);
  writeFileSync(join(dir, 'table.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: TABLE }));
  const fromFile = new ConfigStore();
  const file = createConfigSource(`file:${dir}`);
  await file.start(fromFile);
  t.teardown(() => file.stop());

  const server = await startKubeApiServer(t, TABLE);
  const { store: fromApi } = await started(t, server);

  const keys: ObjectKey[] = TABLE.map((object) => ({
    kind: object.kind as ObjectKey['kind'],
    namespace: object.kind === 'Namespace' ? '' : (object.metadata.namespace ?? ''),
    name: object.metadata.name,
  }));
  const records = (store: ConfigStore) => keys.map((key) => [keyString(key), store.get(key) ?? null]);
  t.same(records(fromApi), records(fromFile), 'the same records');
  t.equal(
    records(fromFile).filter(([, record]) => record !== null).length,
    TABLE.length - 2,
    'all but the two bad ones',
  );
  // The file source names the file and document; what is wrong and why must be the same.
  const problems = (store: ConfigStore) =>
    store
      .allRejections()
      .map((r) => `${r.kind} ${r.namespace}/${r.name}: ${r.field} ${r.reason}`)
      .sort();
  t.same(problems(fromApi), problems(fromFile), 'the same rejections');
  t.equal(problems(fromApi).length, 2);
});
