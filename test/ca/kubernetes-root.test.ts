// Several CA replicas against one API server (the double), each through its own recording proxy: the
// root in a Secret (created once, by the leader; the others wait for it), every replica signing with it,
// the root published as a ConfigMap in every namespace by the leader only, and a new leader taking over
// the publishing when the old one stops or is cut off from the API.
import t, { type Test } from 'tap';
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeToken, NODE_TOKENS_FILE } from '../../ca/node-tokens.js';
import { startCa, DEFAULT_WORKLOAD_TTL_S, MAX_WORKLOAD_TTL_S, type CaHandle } from '../../ca/main.js';
import { generateSelfSignedRoot } from '../../ca/authority.js';
import { freePort } from '../../lab/processes.js';
import { run } from '../helpers/exec.js';
import { opensslCsr, spiffeSanExt, writeTempFiles } from '../helpers/openssl.js';
import { rawCreateCertificate, removeDir, StaticPlacement } from '../helpers/ca.js';
import { startKubeApiServer, type KubeApiServer, type KubeObject } from '../helpers/kube-api-server.js';
import { ApiProxy, eventWithin, kubeconfigAt, namespace, until } from './kubernetes-helpers.js';

const NS = 'weft-system';
const SECRET = 'weft-ca-root';
const CONFIGMAP = 'weft-ca-root-cert';
const WEB = 'spiffe://cluster.local/ns/shop/sa/web';
/** Short, so a takeover happens within the test; whole seconds, as a Lease holds them. */
const LEASE = { leaseDurationMs: 2000, renewDeadlineMs: 1000, retryPeriodMs: 200 };

interface Replica {
  readonly ca: CaHandle;
  readonly proxy: ApiProxy;
  readonly stateDir: string;
}

async function startReplica(
  t: Test,
  server: KubeApiServer,
  identity: string,
  options: { httpPort?: number; proxy?: ApiProxy } = {},
): Promise<Replica> {
  const proxy = options.proxy ?? (await ApiProxy.start(t, server));
  const stateDir = mkdtempSync(join(tmpdir(), 'weft-ca-'));
  t.teardown(() => removeDir(stateDir));
  const ca = await startCa({
    stateDir,
    trustDomain: 'cluster.local',
    grpcListen: { host: '127.0.0.1', port: 0 },
    httpListen: { host: '127.0.0.1', port: options.httpPort ?? 0 },
    defaultTtlSeconds: DEFAULT_WORKLOAD_TTL_S,
    maxTtlSeconds: MAX_WORKLOAD_TTL_S,
    servingDnsNames: ['localhost'],
    servingIps: ['127.0.0.1'],
    placement: new StaticPlacement({ 'node-1': ['shop/web'] }),
    kubernetes: {
      kubeconfigPath: kubeconfigAt(t, proxy.url),
      rootSecret: { namespace: NS, name: SECRET },
      rootConfigMap: CONFIGMAP,
      leaderElection: { namespace: NS, name: 'weft-ca', identity, ...LEASE },
      rootWaitMs: 8000,
    },
  });
  t.teardown(() => ca.close());
  return { ca, proxy, stateDir };
}

function decoded(secret: KubeObject | undefined, key: string): string {
  const data = (secret?.data ?? {}) as Record<string, string>;
  return Buffer.from(data[key] ?? '', 'base64').toString('utf8');
}

function configMapRoot(server: KubeApiServer, ns: string): string | undefined {
  const data = server.get('ConfigMap', ns, CONFIGMAP)?.data as Record<string, string> | undefined;
  return data?.['root-cert.pem'];
}

const CONFIGMAP_WRITE = /^(POST|PUT) \/api\/v1\/namespaces\/[^/]+\/configmaps/;
const CONFIGMAP_ANY = /\/configmaps/;

t.test(
  'two replicas: one Secret, one root, only the leader publishes; the successor takes over',
  async (t) => {
    const server = await startKubeApiServer(t, [namespace(NS), namespace('shop'), namespace('default')]);
    const [a, b] = await Promise.all([startReplica(t, server, 'ca-a'), startReplica(t, server, 'ca-b')]);
    const leaders = [a, b].filter((r) => r.ca.elector?.isLeader);
    t.equal(leaders.length, 1, 'one leader');
    const [leader, follower] = leaders[0] === a ? [a, b] : [b, a];
    if (leader === undefined || follower === undefined) throw new Error('no leader');

    const secretPosts = [...a.proxy.lines, ...b.proxy.lines].filter((l) =>
      l.startsWith(`POST /api/v1/namespaces/${NS}/secrets`),
    );
    t.equal(secretPosts.length, 1, 'exactly one Secret created');
    t.equal(leader.proxy.matching(/^POST .*\/secrets/).length, 1, 'by the leader');
    const secret = server.get('Secret', NS, SECRET);
    t.equal(secret?.type, 'Opaque');
    t.same(Object.keys((secret?.data ?? {}) as object).sort(), [
      'ca-cert.pem',
      'ca-key.pem',
      'cert-chain.pem',
      'root-cert.pem',
    ]);
    const root = decoded(secret, 'root-cert.pem');
    t.equal(a.ca.authority.rootsPem, root, 'replica a signs under the Secret root');
    t.equal(b.ca.authority.rootsPem, root, 'replica b too');

    // Every replica issues certificates that verify against the one root.
    const csr = (await opensslCsr({ extensions: [spiffeSanExt(WEB)] })).csrPem;
    for (const replica of [a, b]) {
      const token = createNodeToken(join(replica.stateDir, NODE_TOKENS_FILE), 'node-1');
      const res = await rawCreateCertificate(replica.ca.grpcAddress, root, { token, csr, identity: WEB });
      t.equal(res.code, grpc.status.OK, res.details);
      const files = writeTempFiles({ 'leaf.pem': res.chain[0] ?? '', 'root.pem': root });
      t.teardown(() => removeDir(files.dir));
      const verify = await run('openssl', [
        'verify',
        '-CAfile',
        files.paths['root.pem']!,
        files.paths['leaf.pem']!,
      ]);
      t.equal(verify.code, 0, `openssl verify: ${verify.stdout}${verify.stderr}`);
    }

    for (const ns of [NS, 'shop', 'default'])
      t.equal(
        await until(`ConfigMap in ${ns}`, () => configMapRoot(server, ns)),
        root,
        `root published in ${ns}`,
      );
    t.equal(
      leader.proxy.matching(CONFIGMAP_WRITE).length,
      3,
      'the leader created one ConfigMap per namespace',
    );
    t.same(follower.proxy.matching(CONFIGMAP_ANY), [], 'the follower never touched a ConfigMap');

    // A ConfigMap edited by hand is put back on the next pass of a (new) leader.
    const tampered = server.get('ConfigMap', 'default', CONFIGMAP);
    if (tampered === undefined) throw new Error('ConfigMap missing');
    server.update({ ...tampered, data: { 'root-cert.pem': 'stale\n' } });

    const started = Date.now();
    const takeover = eventWithin(
      follower.ca.elector!,
      'leading',
      LEASE.leaseDurationMs + 2 * LEASE.retryPeriodMs + 1000,
    );
    await leader.ca.close();
    await takeover;
    t.ok(
      Date.now() - started < LEASE.leaseDurationMs + 2 * LEASE.retryPeriodMs,
      `the released lease was taken within ${Date.now() - started} ms`,
    );
    t.equal(
      await until('the edited ConfigMap repaired', () =>
        configMapRoot(server, 'default') === root ? true : undefined,
      ),
      true,
    );
    server.create(namespace('late'));
    t.equal(await until('ConfigMap in a new namespace', () => configMapRoot(server, 'late')), root);
    t.same(
      follower.proxy.matching(/^POST \/api\/v1\/namespaces\/late\/configmaps/).length,
      1,
      'published by the new leader',
    );
    t.same(
      follower.proxy.matching(/^PUT \/api\/v1\/namespaces\/default\/configmaps/).length,
      1,
      'replaced by it',
    );
    t.equal(
      follower.proxy.matching(/^(POST|PUT) \/api\/v1\/namespaces\/(shop|weft-system)\/configmaps/).length,
      0,
      'right ones left alone',
    );
  },
);

t.test(
  'a leader cut off from the API stops publishing; the other takes over after the lease expires',
  async (t) => {
    const server = await startKubeApiServer(t, [namespace(NS), namespace('shop')]);
    const a = await startReplica(t, server, 'ca-a');
    await until('ca-a leading', () => (a.ca.elector?.isLeader ? true : undefined));
    const b = await startReplica(t, server, 'ca-b');
    const steps: string[] = [];
    a.ca.elector?.on('following', () => steps.push('a following'));
    b.ca.elector?.on('leading', () => steps.push('b leading'));
    const cutAt = Date.now();
    const takeover = eventWithin(
      b.ca.elector!,
      'leading',
      LEASE.leaseDurationMs + LEASE.renewDeadlineMs + 2000,
    );
    await a.proxy.cut();
    await takeover;
    t.same(steps, ['a following', 'b leading'], 'the old leader stepped down before the new one took over');
    // The last renewal was at most renewDeadline before the cut (else the leader had stepped down), and
    // the follower waits leaseDuration after it saw that renewal.
    t.ok(
      Date.now() - cutAt >= LEASE.leaseDurationMs - LEASE.renewDeadlineMs,
      `not before the lease could expire (${Date.now() - cutAt} ms after the cut)`,
    );
    server.create(namespace('late'));
    t.ok(await until('ConfigMap in a new namespace', () => configMapRoot(server, 'late')));
    t.equal(b.proxy.matching(/^POST \/api\/v1\/namespaces\/late\/configmaps/).length, 1, 'by the new leader');
  },
);

t.test('a follower waits for the Secret, not ready until it exists', async (t) => {
  // A lease held (and long) by a replica that never shows up: this one stays a follower.
  const server = await startKubeApiServer(t, [
    namespace(NS),
    {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'weft-ca', namespace: NS },
      spec: { holderIdentity: 'elsewhere', leaseDurationSeconds: 3600, renewTime: new Date().toISOString() },
    },
  ]);
  const httpPort = await freePort();
  const starting = startReplica(t, server, 'ca-b', { httpPort });
  starting.catch(() => undefined);
  const health = async (path: string) => {
    const res = await fetch(`http://127.0.0.1:${httpPort}${path}`);
    return { status: res.status, body: await res.text() };
  };
  const ready = await until('the HTTP endpoint', () => health('/healthz/ready').catch(() => undefined));
  t.same(ready, { status: 503, body: `not ready: loading the root from Secret ${NS}/${SECRET}\n` });
  t.same(await health('/healthz/live'), { status: 200, body: 'live\n' }, 'alive while it waits');
  t.equal((await health('/trust-bundle')).status, 503, 'no bundle yet');

  const root = await generateSelfSignedRoot('cluster.local', new Date());
  const b64 = (text: string) => Buffer.from(text).toString('base64');
  server.create({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: SECRET, namespace: NS },
    type: 'Opaque',
    // Istio's own istio-ca-secret layout: root-cert.pem and cert-chain.pem empty for a self-signed root.
    data: {
      'ca-cert.pem': b64(root.certPem),
      'ca-key.pem': b64(root.keyPem),
      'root-cert.pem': '',
      'cert-chain.pem': '',
    },
  });
  const { ca, proxy } = await starting;
  t.equal(ca.authority.rootsPem, root.certPem, 'signs with the root from the Secret');
  t.equal(ca.authority.origin, 'loaded');
  t.same(proxy.matching(/^POST .*\/secrets/), [], 'never created one itself');
  t.same(await health('/healthz/ready'), { status: 200, body: 'ready\n' });
  t.equal((await health('/trust-bundle')).body, root.certPem);
});

t.test('a broken Secret stops the CA with the reason; it is never overwritten', async (t) => {
  const one = await generateSelfSignedRoot('cluster.local', new Date());
  const other = await generateSelfSignedRoot('cluster.local', new Date());
  const b64 = (text: string) => Buffer.from(text).toString('base64');
  const server = await startKubeApiServer(t, [
    namespace(NS),
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: SECRET, namespace: NS },
      type: 'Opaque',
      data: {
        'ca-cert.pem': b64(one.certPem),
        'ca-key.pem': b64(other.keyPem),
        'root-cert.pem': b64(one.certPem),
      },
    },
  ]);
  await t.rejects(startReplica(t, server, 'ca-a'), {
    code: 'ERR_CA_STATE',
    message: `Secret ${NS}/${SECRET} key ca-key.pem: does not match ca-cert.pem`,
  });
  t.equal(decoded(server.get('Secret', NS, SECRET), 'ca-key.pem'), other.keyPem, 'left as it was');
});
