// The CA with Kubernetes callers (--auth kubernetes), over real gRPC/TLS against the API server double:
// projected service-account tokens checked by TokenReview (audience istio-ca), node agents trusted for
// the pods on their own node (checked through the API, at the moment of the request), any other account
// for its own identity only; an API server that does not answer fails the request, never allows it.
import t, { type Test } from 'tap';
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCertificates, x509 } from '../../core/x509.js';
import { loadKubeConfig } from '../../core/kubernetes/config.js';
import { startCa, DEFAULT_WORKLOAD_TTL_S, MAX_WORKLOAD_TTL_S, type CaHandle } from '../../ca/main.js';
import { ApiPodPlacement } from '../../ca/kubernetes/pod-placement.js';
import { TokenReviewAuthenticator } from '../../ca/kubernetes/token-review-authenticator.js';
import { ManualClock } from '../helpers/clock.js';
import { opensslCsr, spiffeSanExt } from '../helpers/openssl.js';
import {
  expectRefusals,
  rawCreateCertificate,
  removeDir,
  type RawCall,
  type RefusalCase,
} from '../helpers/ca.js';
import { kubeconfigFor, startKubeApiServer } from '../helpers/kube-api-server.js';
import { jwt, kubeconfigAt, namespace, pod, podWithToken, startSilentServer } from './kubernetes-helpers.js';

const TD = 'cluster.local';
const WEB = `spiffe://${TD}/ns/shop/sa/web`;
const DB = `spiffe://${TD}/ns/shop/sa/db`;
const BATCH = `spiffe://${TD}/ns/shop/sa/batch`;
const WAYPOINT = `spiffe://${TD}/ns/shop/sa/waypoint`;
const PLACEMENT_LIST =
  /^GET \/api\/v1\/namespaces\/shop\/pods\?fieldSelector=spec\.nodeName=node-1,spec\.serviceAccountName=web,status\.phase!=Failed,status\.phase!=Succeeded&limit=1$/;

async function startKubernetesCa(t: Test, kubeconfigPath: string, apiTimeoutMs?: number): Promise<CaHandle> {
  const stateDir = mkdtempSync(join(tmpdir(), 'weft-ca-'));
  t.teardown(() => removeDir(stateDir));
  const ca = await startCa({
    stateDir,
    trustDomain: TD,
    grpcListen: { host: '127.0.0.1', port: 0 },
    httpListen: null,
    defaultTtlSeconds: DEFAULT_WORKLOAD_TTL_S,
    maxTtlSeconds: MAX_WORKLOAD_TTL_S,
    servingDnsNames: ['localhost'],
    servingIps: ['127.0.0.1'],
    kubernetes: {
      kubeconfigPath,
      tokenReview: { audience: 'istio-ca', trustedNodeAccounts: ['weft-system/weft-agent'] },
      apiTimeoutMs,
    },
  });
  t.teardown(() => ca.close());
  return ca;
}

/** A cluster: two nodes with an agent each, workloads, and the tokens the kubelet would mount. */
async function cluster(t: Test) {
  const server = await startKubeApiServer(t, [namespace('weft-system'), namespace('shop')]);
  server.create(pod({ namespace: 'shop', name: 'web-0', serviceAccount: 'web', node: 'node-1' }));
  server.create(pod({ namespace: 'shop', name: 'db-0', serviceAccount: 'db', node: 'node-2' }));
  server.create(
    pod({ namespace: 'shop', name: 'batch-0', serviceAccount: 'batch', node: 'node-1', phase: 'Succeeded' }),
  );
  const agent = (name: string, node: string) =>
    podWithToken(server, { namespace: 'weft-system', name, serviceAccount: 'weft-agent', node });
  const tokens = {
    agent1: agent('weft-agent-1', 'node-1'),
    agent2: agent('weft-agent-2', 'node-2'),
    waypoint: podWithToken(server, {
      namespace: 'shop',
      name: 'waypoint-0',
      serviceAccount: 'waypoint',
      node: 'node-2',
    }),
    wrongAudience: podWithToken(
      server,
      { namespace: 'weft-system', name: 'weft-agent-x', serviceAccount: 'weft-agent', node: 'node-1' },
      { audiences: ['https://kubernetes.default.svc.cluster.local'] },
    ),
    expired: podWithToken(
      server,
      { namespace: 'weft-system', name: 'weft-agent-old', serviceAccount: 'weft-agent', node: 'node-1' },
      { expiresAt: Date.now() - 1000 },
    ),
    unbound: podWithToken(
      server,
      { namespace: 'weft-system', name: 'weft-agent-legacy', serviceAccount: 'weft-agent', node: 'node-1' },
      { bound: false },
    ),
    // The token names weft-agent, but its pod runs as another account (the pod was replaced in between).
    otherAccount: podWithToken(server, {
      namespace: 'weft-system',
      name: 'weft-agent-9',
      serviceAccount: 'weft-agent',
      node: 'node-1',
    }),
    unscheduled: podWithToken(server, {
      namespace: 'weft-system',
      name: 'weft-agent-p',
      serviceAccount: 'weft-agent',
    }),
    doomed: podWithToken(server, {
      namespace: 'weft-system',
      name: 'weft-agent-gone',
      serviceAccount: 'weft-agent',
      node: 'node-1',
    }),
  };
  const replaced = server.get('Pod', 'weft-system', 'weft-agent-9');
  if (replaced === undefined) throw new Error('fixture missing');
  server.update({ ...replaced, spec: { ...(replaced.spec as object), serviceAccountName: 'default' } });
  return { server, tokens };
}

function leafUris(chain: readonly string[]): string[] {
  const [leaf] = parseCertificates(chain[0] ?? '');
  const san = leaf?.getExtension(x509.SubjectAlternativeNameExtension);
  return (san?.names.items ?? []).filter((n) => n.type === 'url').map((n) => n.value);
}

t.test('node agents get certificates for pods on their own node, checked through the API', async (t) => {
  const { server, tokens } = await cluster(t);
  const ca = await startKubernetesCa(t, kubeconfigFor(t, server));
  const csrFor = async (id: string) => (await opensslCsr({ extensions: [spiffeSanExt(id)] })).csrPem;
  const call = (c: RawCall) => rawCreateCertificate(ca.grpcAddress, ca.authority.rootsPem, c);
  const lines: string[] = [];
  server.on('request', (line) => lines.push(decodeURIComponent(line)));

  const web = await call({ token: tokens.agent1, identity: WEB, csr: await csrFor(WEB) });
  t.equal(web.code, grpc.status.OK, web.details);
  t.same(leafUris(web.chain), [WEB], 'issued for the pod on the agent node');
  t.same(
    lines.slice(0, 2),
    [
      'POST /apis/authentication.k8s.io/v1/tokenreviews',
      'GET /api/v1/namespaces/weft-system/pods/weft-agent-1',
    ],
    'TokenReview, then the agent pod',
  );
  t.match(lines[2], PLACEMENT_LIST, 'then one list with field selectors and limit=1 for the placement');
  t.equal(lines.length, 3, 'and nothing else');

  lines.length = 0;
  const again = await call({ token: tokens.agent1, identity: WEB, csr: await csrFor(WEB) });
  t.equal(again.code, grpc.status.OK);
  t.equal(lines[0], 'POST /apis/authentication.k8s.io/v1/tokenreviews', 'the token is reviewed again');
  t.match(lines[1], PLACEMENT_LIST, 'and the placement asked again (never cached)');
  t.equal(lines.length, 2, "the caller pod's node is cached (fixed for its life)");

  const db = await csrFor(DB);
  const refused = await call({ token: tokens.agent1, identity: DB, csr: db });
  t.equal(refused.code, grpc.status.PERMISSION_DENIED);
  t.match(refused.details, /node node-1 runs no pod with service account db in namespace shop/);
  server.create(pod({ namespace: 'shop', name: 'db-1', serviceAccount: 'db', node: 'node-1' }));
  const afterSchedule = await call({ token: tokens.agent1, identity: DB, csr: db });
  t.equal(afterSchedule.code, grpc.status.OK, 'a refusal is never cached: the new pod counts at once');
  t.equal(
    (await call({ token: tokens.agent2, identity: DB, csr: db })).code,
    grpc.status.OK,
    'the other node agent has its own db pod',
  );
});

t.test('refusals: each with its gRPC status and reason, nothing issued', async (t) => {
  const { server, tokens } = await cluster(t);
  const ca = await startKubernetesCa(t, kubeconfigFor(t, server));
  const csrs = {
    web: (await opensslCsr({ extensions: [spiffeSanExt(WEB)] })).csrPem,
    batch: (await opensslCsr({ extensions: [spiffeSanExt(BATCH)] })).csrPem,
    waypoint: (await opensslCsr({ extensions: [spiffeSanExt(WAYPOINT)] })).csrPem,
  };
  server.delete('Pod', 'weft-system', 'weft-agent-gone');
  const cases: RefusalCase[] = [
    {
      name: 'a pod on another node',
      call: { token: tokens.agent2, identity: WEB, csr: csrs.web },
      code: grpc.status.PERMISSION_DENIED,
      details: /node node-2 runs no pod with service account web in namespace shop/,
    },
    {
      name: 'a terminated pod',
      call: { token: tokens.agent1, identity: BATCH, csr: csrs.batch },
      code: grpc.status.PERMISSION_DENIED,
      details: /node node-1 runs no pod with service account batch/,
    },
    {
      name: 'another trust domain',
      call: { token: tokens.agent1, identity: 'spiffe://other.org/ns/shop/sa/web', csr: csrs.web },
      code: grpc.status.PERMISSION_DENIED,
      details: /outside trust domain cluster.local/,
    },
    {
      name: 'a node agent naming no identity',
      call: { token: tokens.agent1, csr: csrs.web },
      code: grpc.status.PERMISSION_DENIED,
      details: /ImpersonatedIdentity/,
    },
    {
      name: 'a token for another audience',
      call: { token: tokens.wrongAudience, identity: WEB, csr: csrs.web },
      code: grpc.status.UNAUTHENTICATED,
      details: /token rejected: .*audiences/,
    },
    {
      name: 'an expired token',
      call: { token: tokens.expired, identity: WEB, csr: csrs.web },
      code: grpc.status.UNAUTHENTICATED,
      details: /token rejected: .*expired/,
    },
    {
      name: 'a token whose pod was deleted',
      call: { token: tokens.doomed, identity: WEB, csr: csrs.web },
      code: grpc.status.UNAUTHENTICATED,
      details: /token rejected: .*no longer exists/,
    },
    {
      name: 'an unknown token',
      call: { token: jwt('nobody'), identity: WEB, csr: csrs.web },
      code: grpc.status.UNAUTHENTICATED,
      details: /token rejected/,
    },
    {
      name: 'not a JWT',
      call: { token: 'not-a-jwt', identity: WEB, csr: csrs.web },
      code: grpc.status.UNAUTHENTICATED,
      details: /not a JWT/,
    },
    {
      name: 'no token',
      call: { identity: WEB, csr: csrs.web },
      code: grpc.status.UNAUTHENTICATED,
      details: /no bearer token/,
    },
    {
      name: 'a node agent token not bound to a pod',
      call: { token: tokens.unbound, identity: WEB, csr: csrs.web },
      code: grpc.status.UNAUTHENTICATED,
      details: /must send a token bound to its pod/,
    },
    {
      name: 'a node agent whose pod runs as another account',
      call: { token: tokens.otherAccount, identity: WEB, csr: csrs.web },
      code: grpc.status.UNAUTHENTICATED,
      details: /weft-agent-9 runs as service account default, not weft-agent/,
    },
    {
      name: 'a node agent pod not scheduled',
      call: { token: tokens.unscheduled, identity: WEB, csr: csrs.web },
      code: grpc.status.UNAUTHENTICATED,
      details: /is not scheduled on a node/,
    },
    {
      name: 'an untrusted account asking for another identity',
      call: { token: tokens.waypoint, identity: WEB, csr: csrs.web },
      code: grpc.status.PERMISSION_DENIED,
      details:
        /serviceaccount shop\/waypoint may obtain only its own identity spiffe:\/\/cluster.local\/ns\/shop\/sa\/waypoint/,
    },
    {
      name: 'an untrusted account with a CSR for another identity',
      call: { token: tokens.waypoint, csr: csrs.web },
      code: grpc.status.PERMISSION_DENIED,
      details: /may ask only for URI spiffe:\/\/cluster.local\/ns\/shop\/sa\/waypoint/,
    },
  ];
  await expectRefusals(t, cases, (c) => rawCreateCertificate(ca.grpcAddress, ca.authority.rootsPem, c));
});

t.test('any other service account gets exactly its own identity', async (t) => {
  const { server, tokens } = await cluster(t);
  const ca = await startKubernetesCa(t, kubeconfigFor(t, server));
  const csr = (await opensslCsr({ extensions: [spiffeSanExt(WAYPOINT)] })).csrPem;
  for (const identity of [WAYPOINT, undefined]) {
    const res = await rawCreateCertificate(ca.grpcAddress, ca.authority.rootsPem, {
      token: tokens.waypoint,
      identity,
      csr,
    });
    t.equal(res.code, grpc.status.OK, `ImpersonatedIdentity ${identity ?? 'absent'}: ${res.details}`);
    t.same(leafUris(res.chain), [WAYPOINT]);
  }
});

t.test('an API server that does not answer fails the request with UNAVAILABLE', async (t) => {
  const { server, tokens } = await cluster(t);
  const ca = await startKubernetesCa(t, kubeconfigFor(t, server));
  const csr = (await opensslCsr({ extensions: [spiffeSanExt(WEB)] })).csrPem;
  const call = () =>
    rawCreateCertificate(ca.grpcAddress, ca.authority.rootsPem, { token: tokens.agent1, identity: WEB, csr });

  await server.close();
  const down = await call();
  t.equal(down.code, grpc.status.UNAVAILABLE, `API server down: ${down.details}`);
  t.match(down.details, /cannot review the bearer token: the Kubernetes API failed/);
  t.same(down.chain, []);
  await server.listen();
  t.equal((await call()).code, grpc.status.OK, 'served again once the API server is back');

  // An API server that accepts and never answers: the CA gives up after its timeout.
  const silent = await startSilentServer(t);
  const hung = await startKubernetesCa(t, kubeconfigAt(t, silent), 300);
  const started = Date.now();
  const res = await rawCreateCertificate(hung.grpcAddress, hung.authority.rootsPem, {
    token: tokens.agent1,
    identity: WEB,
    csr,
  });
  t.equal(res.code, grpc.status.UNAVAILABLE, res.details);
  t.match(res.details, /no answer in time/);
  t.ok(Date.now() - started < 3000, 'bounded by the API timeout');
});

t.test('placement answers and API failures, unit by unit', async (t) => {
  const { server, tokens } = await cluster(t);
  const kubeConfig = loadKubeConfig(kubeconfigFor(t, server), 'test');
  const pods = new ApiPodPlacement({ kubeConfig });
  t.equal(await pods.hasPodOnNode('shop', 'web', 'node-1'), true);
  t.equal(await pods.hasPodOnNode('shop', 'web', 'node-2'), false);
  t.equal(await pods.hasPodOnNode('shop', 'batch', 'node-1'), false, 'Succeeded pods do not count');
  server.create(
    pod({ namespace: 'shop', name: 'batch-1', serviceAccount: 'batch', node: 'node-1', phase: 'Failed' }),
  );
  t.equal(await pods.hasPodOnNode('shop', 'batch', 'node-1'), false, 'nor Failed ones');
  server.create(
    pod({ namespace: 'shop', name: 'batch-2', serviceAccount: 'batch', node: 'node-1', phase: 'Pending' }),
  );
  t.equal(await pods.hasPodOnNode('shop', 'batch', 'node-1'), true, 'a scheduled Pending pod does');

  const auth = new TokenReviewAuthenticator({
    kubeConfig,
    audience: 'istio-ca',
    trustedNodeAccounts: ['weft-system/weft-agent'],
    pods,
  });
  t.same(await auth.authenticate(tokens.agent1, 'peer'), {
    kind: 'node',
    nodeName: 'node-1',
    account: 'weft-system/weft-agent',
  });
  t.same(await auth.authenticate(tokens.waypoint, 'peer'), {
    kind: 'service-account',
    namespace: 'shop',
    serviceAccount: 'waypoint',
  });
  const reviews: string[] = [];
  server.on('request', (line) => reviews.push(line));
  await t.rejects(auth.authenticate(`${'a'.repeat(9000)}.b.c`, 'peer'), {
    code: 'ERR_UNAUTHENTICATED',
    message: /too long/,
  });
  t.same(reviews, [], 'an oversized token never reaches the API server');

  // A yes is never kept: the pod gone, the node loses the identity at once.
  const placement = new ApiPodPlacement({ kubeConfig, clock: new ManualClock() });
  t.equal(await placement.hasPodOnNode('shop', 'db', 'node-2'), true);
  server.delete('Pod', 'shop', 'db-0');
  t.equal(await placement.hasPodOnNode('shop', 'db', 'node-2'), false, 'the API is asked every time');

  await server.close();
  await t.rejects(
    pods.hasPodOnNode('shop', 'db', 'node-2'),
    { code: 'ERR_CA_UNAVAILABLE' },
    'never true for want of an answer',
  );
});
