// The API server double speaks the list/watch wire protocol: checked with plain HTTP requests, then
// with @kubernetes/client-node's own informer.
import t from 'tap';
import { once } from 'node:events';
import { get, type IncomingMessage } from 'node:http';
import { createInterface } from 'node:readline';
import { CoreV1Api, KubeConfig, makeInformer, type V1Pod } from '@kubernetes/client-node';
import { KubeApiServer, type KubeObject } from './kube-api-server.js';

/** Bounds every wait below: a missing event fails the test instead of hanging it. */
const WAIT_MS = 5000;

interface Teardowns {
  teardown(fn: () => unknown): void;
}

interface WatchEvent {
  type: string;
  object: {
    kind?: string;
    code?: number;
    reason?: string;
    metadata: { name?: string; resourceVersion?: string };
  };
}

function pod(name: string, namespace = 'shop', ip = '10.0.0.1'): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace },
    spec: { serviceAccountName: 'web', nodeName: 'node-1' },
    status: { phase: 'Running', podIP: ip },
  };
}

async function started(t: Teardowns, options: { historyLimit?: number } = {}): Promise<KubeApiServer> {
  const server = new KubeApiServer(options);
  await server.listen();
  t.teardown(() => server.close());
  return server;
}

function request(url: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = get(url, resolve);
    req.on('error', reject);
    req.setTimeout(WAIT_MS, () => req.destroy(new Error(`no answer from ${url}`)));
  });
}

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await request(url);
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return {
    status: res.statusCode ?? 0,
    body: JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>,
  };
}

/** A watch read line by line; `next()` is the next event, `ended` resolves when the server ends it. */
async function openWatch(t: Teardowns, url: string) {
  const res = await request(url);
  t.teardown(() => res.destroy());
  const lines = createInterface({ input: res });
  // A cut watch errors (`aborted`, passed on by readline) before it closes; tests wait for the close.
  lines.on('error', () => undefined);
  const queue: WatchEvent[] = [];
  let wake: (() => void) | undefined;
  lines.on('line', (line) => {
    queue.push(JSON.parse(line) as WatchEvent);
    wake?.();
  });
  const ended = new Promise<'ended'>((resolve) => res.on('close', () => resolve('ended')));
  return {
    res,
    ended,
    async next(): Promise<WatchEvent> {
      const deadline = Date.now() + WAIT_MS;
      while (queue.length === 0) {
        if (Date.now() > deadline) throw new Error('no watch event');
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 50).unref();
        });
      }
      return queue.shift() as WatchEvent;
    },
  };
}

t.test('lists cluster-wide and per namespace, items without kind', async (t) => {
  const server = await started(t);
  server.create(pod('web-0'));
  server.create(pod('db-0', 'data'));
  server.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });

  const all = await getJson(`${server.url}/api/v1/pods`);
  t.equal(all.status, 200);
  t.equal(all.body.kind, 'PodList');
  t.equal(all.body.apiVersion, 'v1');
  t.same(all.body.metadata, { resourceVersion: String(server.resourceVersion) });
  const items = all.body.items as KubeObject[];
  t.same(items.map((item) => item.metadata.name).sort(), ['db-0', 'web-0']);
  t.equal(items[0]?.kind, undefined, 'list items carry no kind, as from a real API server');
  t.ok(items[0]?.metadata.uid, 'a uid is assigned');

  const shop = await getJson(`${server.url}/api/v1/namespaces/shop/pods`);
  t.same(
    (shop.body.items as KubeObject[]).map((item) => item.metadata.name),
    ['web-0'],
  );
  const namespaces = await getJson(`${server.url}/api/v1/namespaces`);
  t.equal(namespaces.body.kind, 'NamespaceList');
  t.equal((namespaces.body.items as unknown[]).length, 1);
  const routes = await getJson(`${server.url}/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes`);
  t.same([routes.body.kind, routes.body.items], ['HTTPRouteList', []]);
  const unknown = await getJson(`${server.url}/api/v1/replicationcontrollers`);
  t.same([unknown.status, unknown.body.kind, unknown.body.code], [404, 'Status', 404]);
});

t.test('a watch replays from its resourceVersion, then streams chunked JSON lines', async (t) => {
  const server = await started(t);
  server.create(pod('web-0'));
  const from = server.resourceVersion;
  server.update({ ...pod('web-0'), metadata: { name: 'web-0', namespace: 'shop', labels: { v: '2' } } });
  server.create(pod('other', 'elsewhere'));

  const watch = await openWatch(
    t,
    `${server.url}/api/v1/namespaces/shop/pods?watch=1&resourceVersion=${from}`,
  );
  t.equal(watch.res.headers['transfer-encoding'], 'chunked');
  const replayed = await watch.next();
  t.equal(replayed.type, 'MODIFIED', 'the change after the resourceVersion is replayed');
  t.equal(replayed.object.kind, 'Pod', 'watch objects carry their kind');
  t.equal(replayed.object.metadata.resourceVersion, String(from + 1));

  server.create(pod('web-1'));
  t.same(await watch.next().then((e) => [e.type, e.object.metadata.name]), ['ADDED', 'web-1']);
  server.delete('Pod', 'shop', 'web-0');
  const deleted = await watch.next();
  t.same([deleted.type, deleted.object.metadata.name], ['DELETED', 'web-0']);
  t.equal(
    deleted.object.metadata.resourceVersion,
    String(server.resourceVersion),
    'DELETED has a new version',
  );
});

t.test(
  'a watch without a resourceVersion starts with every object ADDED; bookmarks when allowed',
  async (t) => {
    const server = await started(t);
    server.create(pod('web-0'));
    const plain = await openWatch(t, `${server.url}/api/v1/pods?watch=true`);
    const marked = await openWatch(t, `${server.url}/api/v1/pods?watch=true&allowWatchBookmarks=true`);
    t.same(await plain.next().then((e) => [e.type, e.object.metadata.name]), ['ADDED', 'web-0']);
    t.same(await marked.next().then((e) => [e.type, e.object.metadata.name]), ['ADDED', 'web-0']);
    server.bookmark();
    server.create(pod('web-1'));
    const bookmark = await marked.next();
    t.same([bookmark.type, bookmark.object.metadata.resourceVersion], ['BOOKMARK', '2']);
    t.equal((await plain.next()).object.metadata.name, 'web-1', 'no bookmark where not asked for');
  },
);

t.test('a resourceVersion older than the kept history gets 410 Gone as an ERROR event', async (t) => {
  const server = await started(t, { historyLimit: 2 });
  server.create(pod('web-0'));
  const old = server.resourceVersion;
  server.create(pod('web-1'));
  server.create(pod('web-2'));
  server.create(pod('web-3'));

  const expired = await openWatch(t, `${server.url}/api/v1/pods?watch=1&resourceVersion=${old}`);
  const error = await expired.next();
  t.same(
    [error.type, error.object.kind, error.object.code, error.object.reason],
    ['ERROR', 'Status', 410, 'Expired'],
  );
  t.equal(await expired.ended, 'ended', 'the server ends the watch after the error');

  const recent = await openWatch(
    t,
    `${server.url}/api/v1/pods?watch=1&resourceVersion=${server.resourceVersion - 1}`,
  );
  t.equal((await recent.next()).object.metadata.name, 'web-3', 'within the window a watch resumes');
});

t.test(
  'dropWatches cuts watches; restart comes back on the same port; compaction expires old versions',
  async (t) => {
    const server = await started(t);
    server.create(pod('web-0'));
    const rv = server.resourceVersion;
    const watch = await openWatch(t, `${server.url}/api/v1/pods?watch=1&resourceVersion=${rv}`);
    await t.resolveMatch(
      (async () => {
        while (server.watchCount === 0) await new Promise((resolve) => setTimeout(resolve, 10));
        return server.watchCount;
      })(),
      1,
    );
    server.dropWatches();
    t.equal(await watch.ended, 'ended');
    t.equal(server.watchCount, 0);

    const url = server.url;
    await server.restart();
    t.equal(server.url, url, 'same port');
    const resumed = await openWatch(t, `${server.url}/api/v1/pods?watch=1&resourceVersion=${rv}`);
    server.create(pod('web-1'));
    t.equal((await resumed.next()).object.metadata.name, 'web-1', 'history survives a plain restart');

    await server.restart({ compact: true });
    const expired = await openWatch(t, `${server.url}/api/v1/pods?watch=1&resourceVersion=${rv}`);
    t.equal((await expired.next()).object.code, 410, 'after compaction the old version is gone');
  },
);

t.test('@kubernetes/client-node informer: list, watch, and relist after 410', async (t) => {
  const server = await started(t);
  server.create(pod('web-0'));
  server.create(pod('gone-later'));
  const config = new KubeConfig();
  config.loadFromOptions({
    clusters: [{ name: 'double', server: server.url, skipTLSVerify: true }],
    users: [{ name: 'test' }],
    contexts: [{ name: 'double', cluster: 'double', user: 'test' }],
    currentContext: 'double',
  });
  const api = config.makeApiClient(CoreV1Api);
  const informer = makeInformer<V1Pod>(config, '/api/v1/namespaces/shop/pods', () =>
    api.listNamespacedPod({ namespace: 'shop' }),
  );
  const seen: string[] = [];
  let wake: (() => void) | undefined;
  const record = (verb: string) => (obj: V1Pod) => {
    seen.push(`${verb} ${obj.metadata?.name}`);
    wake?.();
  };
  informer.on('add', record('add'));
  informer.on('update', record('update'));
  informer.on('delete', record('delete'));
  const errors: unknown[] = [];
  informer.on('error', (err: unknown) => errors.push(err));
  const until = async (entry: string): Promise<void> => {
    const deadline = Date.now() + WAIT_MS;
    while (!seen.includes(entry)) {
      if (Date.now() > deadline) throw new Error(`never saw ${entry}; saw ${seen.join(', ')}`);
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 50).unref();
      });
    }
  };
  const watching = once(server, 'watch');
  await informer.start();
  t.teardown(() => informer.stop());
  await watching;
  t.same(seen.sort(), ['add gone-later', 'add web-0'], 'the list');

  server.create(pod('web-1'));
  await until('add web-1');
  server.update({ ...pod('web-1'), metadata: { name: 'web-1', namespace: 'shop', labels: { v: '2' } } });
  await until('update web-1');

  // While the watch is down: a delete, then compaction. The re-watch gets 410, and the relist must
  // report the object deleted in between.
  await server.close();
  server.delete('Pod', 'shop', 'gone-later');
  server.compact();
  await server.listen();
  // The cut watch either ends cleanly (the informer re-watches by itself) or fails (the informer reports
  // an error and stops; its user starts it again). Either way the 410 leads to a relist.
  let lists = 0;
  server.on('list', () => (lists += 1));
  const deadline = Date.now() + WAIT_MS;
  while (errors.length === 0 && !seen.includes('delete gone-later') && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 20));
  if (errors.length > 0) await informer.start();
  await until('delete gone-later');
  t.same(
    informer
      .list()
      .map((p) => p.metadata?.name)
      .sort(),
    ['web-0', 'web-1'],
    'the cache matches the server after the relist',
  );
  t.equal(lists, 1, 'one relist');
});

async function send(
  url: string,
  method: string,
  body: unknown,
  contentType = 'application/json',
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, {
    method,
    body: JSON.stringify(body),
    headers: { 'content-type': contentType },
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

t.test('lists page by page from one snapshot; compaction expires the continue token', async (t) => {
  const server = await started(t);
  for (let i = 0; i < 5; i++) server.create(pod(`web-${i}`, 'shop', `10.0.0.${i + 1}`));
  const first = await getJson(`${server.url}/api/v1/pods?limit=2`);
  const meta = first.body.metadata as { continue?: string; resourceVersion: string };
  t.equal((first.body.items as unknown[]).length, 2);
  t.ok(meta.continue, 'a continue token while items remain');
  server.create(pod('late', 'shop', '10.0.0.9'));
  const names: string[] = (first.body.items as KubeObject[]).map((item) => item.metadata.name);
  let token = meta.continue;
  while (token !== undefined) {
    const page = await getJson(`${server.url}/api/v1/pods?limit=2&continue=${encodeURIComponent(token)}`);
    t.equal((page.body.metadata as { resourceVersion: string }).resourceVersion, meta.resourceVersion);
    names.push(...(page.body.items as KubeObject[]).map((item) => item.metadata.name));
    token = (page.body.metadata as { continue?: string }).continue;
  }
  t.same(names, ['web-0', 'web-1', 'web-2', 'web-3', 'web-4'], 'the snapshot, without the later pod');

  const again = await getJson(`${server.url}/api/v1/pods?limit=2`);
  server.compact();
  const expired = await getJson(
    `${server.url}/api/v1/pods?limit=2&continue=${encodeURIComponent((again.body.metadata as { continue: string }).continue)}`,
  );
  t.same([expired.status, expired.body.reason], [410, 'Expired']);
});

t.test('field and label selectors, as the real server supports them', async (t) => {
  const server = await started(t);
  server.create(pod('a', 'shop', '10.0.0.1'));
  server.create({ ...pod('b', 'shop', '10.0.0.2'), spec: { serviceAccountName: 'db', nodeName: 'node-2' } });
  server.create({
    ...pod('c', 'shop', '10.0.0.3'),
    metadata: { name: 'c', namespace: 'shop', labels: { app: 'web' } },
    status: { phase: 'Succeeded' },
  });
  const names = async (query: string) => {
    const res = await getJson(`${server.url}/api/v1/pods?${query}`);
    return (res.body.items as KubeObject[]).map((item) => item.metadata.name);
  };
  t.same(await names('fieldSelector=spec.nodeName%3Dnode-1'), ['a', 'c']);
  t.same(
    await names(
      'fieldSelector=spec.nodeName%3Dnode-1,spec.serviceAccountName%3Dweb,status.phase!%3DSucceeded',
    ),
    ['a'],
  );
  t.same(await names('labelSelector=app%3Dweb'), ['c']);
  t.same(await names('labelSelector=!app'), ['a', 'b']);
  const bad = await getJson(`${server.url}/api/v1/pods?fieldSelector=spec.containers%3Dx`);
  t.same([bad.status, bad.body.message], [400, 'field label not supported: spec.containers']);
});

t.test('get, create, replace with a resourceVersion precondition, merge-patch status', async (t) => {
  const server = await started(t);
  const base = `${server.url}/apis/coordination.k8s.io/v1/namespaces/weft-system/leases`;
  const lease = {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: 'ca' },
    spec: { holderIdentity: 'a' },
  };
  const created = await send(base, 'POST', lease);
  t.equal(created.status, 201);
  const meta = created.body.metadata as { resourceVersion: string; namespace: string; generation: number };
  t.same([meta.namespace, meta.generation], ['weft-system', 1]);
  t.equal((await send(base, 'POST', lease)).status, 409, 'a second create conflicts');
  t.equal((await getJson(`${base}/ca`)).body.kind, 'Lease');
  t.equal((await getJson(`${base}/nope`)).status, 404);

  const stale = { ...lease, metadata: { name: 'ca', resourceVersion: '1' }, spec: { holderIdentity: 'b' } };
  t.equal((await send(`${base}/ca`, 'PUT', stale)).status, 409, 'a stale resourceVersion conflicts');
  const fresh = { ...stale, metadata: { name: 'ca', resourceVersion: meta.resourceVersion } };
  const replaced = await send(`${base}/ca`, 'PUT', fresh);
  t.equal(replaced.status, 200);
  t.equal((replaced.body.metadata as { generation: number }).generation, 2, 'a spec change bumps generation');

  const routes = `${server.url}/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes`;
  const route = { metadata: { name: 'r' }, spec: { parentRefs: [{ name: 'web' }] } };
  await send(routes, 'POST', route);
  const status = { status: { parents: [{ controllerName: 'x', conditions: [] }] }, spec: { parentRefs: [] } };
  const patched = await send(`${routes}/r/status`, 'PATCH', status, 'application/merge-patch+json');
  t.equal(patched.status, 200);
  t.same(patched.body.status, status.status, 'the status is merged');
  t.same(patched.body.spec, route.spec, 'a status patch leaves the spec alone');
  t.equal((patched.body.metadata as { generation: number }).generation, 1, 'status does not bump generation');
  const json = await send(`${routes}/r/status`, 'PATCH', status, 'application/json-patch+json');
  t.equal(json.status, 415);
});

t.test('TokenReview: audiences, expiry and the bound pod', async (t) => {
  const server = await started(t);
  const created = server.create(pod('agent-x', 'weft-system'));
  const extra = {
    'authentication.kubernetes.io/pod-name': ['agent-x'],
    'authentication.kubernetes.io/pod-uid': [created.metadata.uid ?? ''],
  };
  server.addToken('good', {
    username: 'system:serviceaccount:weft-system:weft-agent',
    audiences: ['istio-ca'],
    extra,
  });
  server.addToken('old', { username: 'system:serviceaccount:a:b', audiences: ['istio-ca'], expiresAt: 1 });
  const review = async (token: string, audiences?: string[]) => {
    const res = await send(`${server.url}/apis/authentication.k8s.io/v1/tokenreviews`, 'POST', {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      spec: { token, audiences },
    });
    t.equal(res.status, 201);
    return res.body.status as { authenticated: boolean; user: { username?: string }; error?: string };
  };
  const ok = await review('good', ['istio-ca']);
  t.same([ok.authenticated, ok.user.username], [true, 'system:serviceaccount:weft-system:weft-agent']);
  t.equal((await review('good')).authenticated, false, "the API server's own audience is not istio-ca");
  t.equal((await review('bad', ['istio-ca'])).authenticated, false);
  t.match((await review('old', ['istio-ca'])).error, /expired/);
  server.delete('Pod', 'weft-system', 'agent-x');
  t.match((await review('good', ['istio-ca'])).error, /no longer exists/, 'a bound token dies with its pod');
});
