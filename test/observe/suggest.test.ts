// observe/suggest.ts. The must-show of issue 8: the suggested policies, applied, allow every flow that
// was observed and deny a flow that was not. The YAML goes back through the real manifest reader and
// converter into a real ConfigStore (no rejection allowed), and the flows are decided by the real
// engines: the node agent's PolicyAuthorizer for inbound connections, the waypoint's WaypointPolicyCache
// + evaluateRequest for requests, and its TCP views (proxy/authz/tcp.ts) for raw TCP through it.
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { PolicyAuthorizer, type L4Connection } from '../../agent/authorizer.js';
import { formatRejection } from '../../core/convert/index.js';
import type { FlowEvent } from '../../core/flows/event.js';
import { readManifestFile } from '../../core/sources/manifest-file.js';
import { ManifestSet } from '../../core/sources/manifest-set.js';
import { parseSpiffeId } from '../../core/spiffe.js';
import { ConfigStore } from '../../core/store.js';
import { evaluateRequest, WaypointPolicyCache, type WaypointRequest } from '../../proxy/authz/index.js';
import { tcpPolicySource } from '../../proxy/authz/tcp.js';
import { pathPattern, suggestPolicies, type PolicySuggestion } from '../../observe/suggest.js';
import {
  connection,
  flow,
  peer,
  PODS,
  request,
  SERVICES,
  spiffe,
  T0,
  waypointLegs,
  type PodRef,
} from './flows.js';

// ---- the cluster --------------------------------------------------------------------------------------

const AMBIENT = { 'istio.io/dataplane-mode': 'ambient' };

const CACHE: PodRef = {
  namespace: 'shop',
  pod: 'cache-0',
  workload: 'cache',
  ip: '10.1.2.30',
  serviceAccount: 'cache',
  node: 'node-2',
};

function pod(p: PodRef, labels: Record<string, string>, port: number): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: p.pod, namespace: p.namespace, labels },
    spec: {
      nodeName: p.node,
      serviceAccountName: p.serviceAccount ?? 'default',
      containers: [{ name: 'app', ports: [{ name: 'main', containerPort: port }] }],
    },
    status: { phase: 'Running', podIP: p.ip, podIPs: [{ ip: p.ip }] },
  };
}

function service(
  namespace: string,
  name: string,
  clusterIP: string,
  selector: Record<string, string>,
  port: number,
  targetPort: number,
): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace },
    spec: { clusterIP, selector, ports: [{ name: 'main', port, targetPort, protocol: 'TCP' }] },
  };
}

const CANARY: PodRef = { ...PODS.web0, pod: 'web-canary-77b-aaaaa', workload: 'web-canary', ip: '10.1.2.11' };

const CLUSTER = {
  apiVersion: 'v1',
  kind: 'List',
  items: [
    {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'shop', labels: { ...AMBIENT, 'istio.io/use-waypoint': 'waypoint' } },
    },
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'data', labels: AMBIENT } },
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'legacy' } },
    pod(PODS.frontend, { app: 'frontend', 'pod-template-hash': '7d4b9c' }, 8080),
    // `app: web` alone would also select the canary, another workload: the selector must say more.
    pod(PODS.web0, { app: 'web', version: 'v1', 'pod-template-hash': '5f6d7' }, 8080),
    pod(PODS.web1, { app: 'web', version: 'v1', 'pod-template-hash': '5f6d7' }, 8080),
    pod(CANARY, { app: 'web', version: 'v2', 'pod-template-hash': '77b' }, 8080),
    pod(
      PODS.waypoint,
      { 'gateway.networking.k8s.io/gateway-name': 'waypoint', 'istio.io/dataplane-mode': 'none' },
      15008,
    ),
    pod(
      PODS.db,
      {
        'app.kubernetes.io/name': 'db',
        'statefulset.kubernetes.io/pod-name': 'db-0',
        'controller-revision-hash': 'db-5c9',
      },
      5432,
    ),
    pod(CACHE, { app: 'cache' }, 6379),
    pod(PODS.old, { app: 'old' }, 8080),
    service('shop', 'web', '10.96.0.10', { app: 'web' }, 80, 8080),
    service('shop', 'cache', '10.96.0.30', { app: 'cache' }, 7000, 6379),
    service('data', 'db', '10.96.0.20', { 'app.kubernetes.io/name': 'db' }, 5432, 5432),
  ],
};

/** A store holding the cluster and, when given, the suggested YAML, as `weft apply` would read them. */
function storeWith(suggestedYaml?: string): ConfigStore {
  const set = new ManifestSet();
  set.setFile('cluster.json', readManifestFile('cluster.json', JSON.stringify(CLUSTER)));
  if (suggestedYaml !== undefined)
    set.setFile('suggested.yaml', readManifestFile('suggested.yaml', suggestedYaml));
  const batch = set.takeBatch();
  if (batch.rejections.length > 0) throw new Error(batch.rejections.map(formatRejection).join('\n'));
  const store = new ConfigStore();
  store.apply(batch);
  return store;
}

// ---- the observed flows -------------------------------------------------------------------------------

/** What a waypoint request looks like to its L7 engine (proxy/server/request-handler.ts). */
function waypointRequest(src: PodRef, method: string, path: string, dstPort = 80): WaypointRequest {
  return {
    srcIp: src.ip,
    srcIdentity:
      src.serviceAccount === undefined ? undefined : parseSpiffeId(spiffe(src.namespace, src.serviceAccount)),
    dstIp: '10.96.0.10',
    dstPort,
    method,
    path,
    query: '',
    host: 'web.shop.svc.cluster.local',
    rawHeaders: [],
    sni: undefined,
  };
}

/** A raw TCP connection as the waypoint's TCP forwarder describes it (proxy/server/tcp-forward.ts). */
function waypointTcp(src: PodRef, dstPort: number): WaypointRequest {
  return { ...waypointRequest(src, '', '', dstPort), dstIp: '10.96.0.30', host: undefined };
}

/** What the destination's agent knows about an inbound connection. */
function inbound(e: FlowEvent): L4Connection {
  return {
    srcIp: e.source.ip,
    srcIdentity: e.source.identity === undefined ? undefined : parseSpiffeId(e.source.identity),
    dstIp: e.destination.ip,
    dstPort: e.destination.port,
  };
}

const OBSERVED_REQUESTS: readonly [method: string, path: string][] = [
  ['GET', '/api/users/42'],
  ['GET', '/api/users/7'],
  ['PUT', '/api/users/7'],
  ['POST', '/api/orders'],
  ['GET', '/healthz'],
  ['GET', '/'],
];

function observedFlows(): FlowEvent[] {
  const events: FlowEvent[] = [];
  let time = T0;
  const at = (): number => (time += 1000);
  // frontend → web through the waypoint: the requests, and the legs at both agents.
  for (const [method, path] of OBSERVED_REQUESTS) {
    const backend = path.length % 2 === 0 ? PODS.web0 : PODS.web1;
    events.push(request(PODS.frontend, backend, { method, path, time: at() }));
    events.push(...waypointLegs(PODS.frontend, backend, 8080, { time }));
  }
  // Not allowed, so not to be allowed by the suggestion: a denied request, an errored one.
  events.push(
    request(PODS.frontend, PODS.web0, { method: 'DELETE', path: '/api/users/7', verdict: 'DENIED' }),
  );
  events.push(
    request(PODS.frontend, PODS.web0, { method: 'GET', path: '/admin', verdict: 'ERROR', status: 503 }),
  );
  // web → db over HBONE, both agents reporting; one still open.
  events.push(...connection(PODS.web0, PODS.db, 5432, { time: at() }));
  events.push(...connection(PODS.web1, PODS.db, 5432, { time: at(), type: 'open' }));
  // A plaintext client outside the mesh → db.
  events.push(...connection(PODS.old, PODS.db, 5432, { time: at() }));
  // frontend → db was denied: it stays denied.
  events.push(...connection(PODS.frontend, PODS.db, 5432, { time: at(), verdict: 'DENIED' }));
  // Raw TCP through the waypoint to the cache Service (backend port 6379, Service port 7000), and the
  // waypoint's leg to the cache pod.
  events.push(
    flow({
      time: at(),
      reporter: { kind: 'waypoint', name: `shop/${PODS.waypoint.pod}` },
      type: 'close',
      path: 'waypoint',
      source: peer(PODS.frontend, 40100),
      destination: peer(CACHE, 6379),
      service: SERVICES.cache,
    }),
    ...connection(PODS.waypoint, CACHE, 6379, { time, path: 'waypoint', sides: 'inbound' }),
  );
  return events;
}

// ---- the tests ----------------------------------------------------------------------------------------

t.test('path patterns: a prefix of all but the last segment from two segments on; gRPC exact', async (t) => {
  const cases: [path: string, protocol: 'http' | 'grpc', pattern: string | undefined][] = [
    ['/api/users/42', 'http', '/api/users/*'],
    ['/api/users', 'http', '/api/*'],
    ['/api/users/', 'http', '/api/users/*'],
    ['/healthz', 'http', '/healthz'],
    ['/', 'http', '/'],
    ['/shop.Cart/AddItem', 'grpc', '/shop.Cart/AddItem'],
    ['/files/a*', 'http', '/files/*'],
    ['/a*', 'http', undefined],
    ['/api/{*}/x', 'http', undefined],
    ['*', 'http', undefined],
  ];
  t.plan(cases.length);
  for (const [path, protocol, pattern] of cases)
    t.equal(pathPattern(path, protocol), pattern, `${protocol} ${path}`);
});

t.test('applied, the suggestion allows every observed flow and denies the unobserved', async (t) => {
  const events = observedFlows();
  const suggestion = suggestPolicies(events, { config: storeWith() });
  const store = storeWith(suggestion.yaml);
  t.same(store.allRejections(), [], 'the converter accepts every suggested policy');
  t.equal(
    ['shop', 'data'].flatMap((ns) => store.authorizationPolicies(ns)).length,
    suggestion.policies.length,
    'and they are all in the store',
  );

  // L4, at the destination's agent.
  const authorizer = new PolicyAuthorizer(store);
  const workload = (p: PodRef) => {
    const w = store.workload(p.namespace, p.pod);
    if (w === undefined) throw new Error(`no pod ${p.pod}`);
    return w;
  };
  const observedInbound = events.filter(
    (e) => e.reporter.kind === 'agent' && e.direction === 'inbound' && e.verdict === 'ALLOWED',
  );
  t.equal(
    observedInbound.length,
    10,
    'six waypoint legs to web, two from web to db, one plaintext, one to cache',
  );
  for (const e of observedInbound) {
    const dst = Object.values({ ...PODS, CACHE }).find((p) => p.pod === e.destination.pod) as PodRef;
    const verdict = authorizer.authorize(workload(dst), inbound(e));
    t.ok(
      verdict.allowed,
      `observed: ${e.source.identity ?? e.source.ip} -> ${dst.pod}:${e.destination.port}`,
    );
  }
  const l4Denied: [what: string, dst: PodRef, conn: L4Connection][] = [
    [
      'frontend straight to web, bypassing the waypoint',
      PODS.web0,
      inbound(connection(PODS.frontend, PODS.web0, 8080, { sides: 'inbound' })[0]!),
    ],
    ['frontend to db (denied when observed)', PODS.db, inbound(connection(PODS.frontend, PODS.db, 5432)[1]!)],
    ['web to db on another port', PODS.db, inbound(connection(PODS.web0, PODS.db, 5433)[1]!)],
    [
      'plaintext to db from another address',
      PODS.db,
      inbound(connection({ ...PODS.old, ip: '10.1.1.31' }, PODS.db, 5432)[1]!),
    ],
    ['the plaintext client on another port', PODS.db, inbound(connection(PODS.old, PODS.db, 5433)[1]!)],
    [
      'web to the waypoint-fronted cache pod directly',
      CACHE,
      inbound(connection(PODS.web0, CACHE, 6379)[1]!),
    ],
  ];
  for (const [what, dst, conn] of l4Denied)
    t.notOk(authorizer.authorize(workload(dst), conn).allowed, `unobserved, denied: ${what}`);
  t.ok(
    authorizer.authorize(workload(CANARY), inbound(connection(PODS.frontend, CANARY, 8080)[1]!)).allowed,
    'web’s policy does not select the canary, another workload',
  );

  // L7, at the waypoint, for the web Service.
  const cache = new WaypointPolicyCache(store);
  const web = cache.get({
    waypoint: { namespace: 'shop', name: 'waypoint' },
    service: { namespace: 'shop', name: 'web' },
  });
  for (const [method, path] of OBSERVED_REQUESTS)
    t.ok(
      evaluateRequest(web, waypointRequest(PODS.frontend, method, path)).allowed,
      `observed: ${method} ${path}`,
    );
  t.ok(
    evaluateRequest(web, waypointRequest(PODS.frontend, 'GET', '/api/users/99')).allowed,
    'the generalized prefix: another user',
  );
  t.ok(
    evaluateRequest(web, waypointRequest(PODS.frontend, 'POST', '/api/users/7')).allowed,
    'POST /api/orders became POST /api/*, which covers this too: the price of generalizing',
  );
  const l7Denied: [src: PodRef, method: string, path: string][] = [
    [PODS.frontend, 'DELETE', '/api/users/7'],
    [PODS.frontend, 'PATCH', '/api/users/7'],
    [PODS.frontend, 'GET', '/admin'],
    [PODS.frontend, 'GET', '/api/users'],
    [PODS.frontend, 'GET', '/api/orders'],
    [PODS.frontend, 'GET', '/healthz/deep'],
    [PODS.frontend, 'GET', '/index.html'],
    [PODS.web0, 'GET', '/api/users/42'],
    [PODS.old, 'GET', '/'],
  ];
  for (const [src, method, path] of l7Denied)
    t.notOk(
      evaluateRequest(web, waypointRequest(src, method, path)).allowed,
      `unobserved, denied: ${src.workload} ${method} ${path}`,
    );

  // Raw TCP through the waypoint, for the cache Service: its TCP view, as the TCP forwarder uses it.
  const tcp = new WaypointPolicyCache(tcpPolicySource(store)).get({
    waypoint: { namespace: 'shop', name: 'waypoint' },
    service: { namespace: 'shop', name: 'cache' },
  });
  t.ok(
    evaluateRequest(tcp, waypointTcp(PODS.frontend, 7000)).allowed,
    'observed: frontend TCP to cache:7000',
  );
  t.notOk(evaluateRequest(tcp, waypointTcp(PODS.frontend, 7001)).allowed, 'unobserved: another Service port');
  t.notOk(evaluateRequest(tcp, waypointTcp(PODS.web0, 7000)).allowed, 'unobserved: another principal');
  const webTcp = new WaypointPolicyCache(tcpPolicySource(store)).get({
    waypoint: { namespace: 'shop', name: 'waypoint' },
    service: { namespace: 'shop', name: 'web' },
  });
  t.notOk(evaluateRequest(webTcp, waypointTcp(PODS.frontend, 80)).allowed, 'unobserved: raw TCP to web');
});

t.test('the manifests: selectors, principals, ports, targetRefs, methods and paths', async (t) => {
  const suggestion = suggestPolicies(observedFlows(), { config: storeWith() });
  const byName = new Map(suggestion.policies.map((p) => [`${p.metadata.namespace}/${p.metadata.name}`, p]));
  t.same(
    [...byName.keys()],
    [
      'data/weft-suggested-db',
      'shop/weft-suggested-cache',
      'shop/weft-suggested-cache-l7',
      'shop/weft-suggested-web',
      'shop/weft-suggested-web-l7',
    ],
  );
  t.same(byName.get('data/weft-suggested-db')?.spec, {
    selector: { matchLabels: { 'app.kubernetes.io/name': 'db' } },
    action: 'ALLOW',
    rules: [
      {
        from: [{ source: { principals: ['cluster.local/ns/shop/sa/web'] } }],
        to: [{ operation: { ports: ['5432'] } }],
      },
      { from: [{ source: { ipBlocks: ['10.1.1.30'] } }], to: [{ operation: { ports: ['5432'] } }] },
    ],
  });
  t.same(
    byName.get('shop/weft-suggested-web')?.spec.selector,
    { matchLabels: { app: 'web', version: 'v1' } },
    'app alone would select the canary: every shared stable label instead',
  );
  t.same(byName.get('shop/weft-suggested-web')?.spec.rules, [
    {
      from: [{ source: { principals: ['cluster.local/ns/shop/sa/waypoint'] } }],
      to: [{ operation: { ports: ['8080'] } }],
    },
  ]);
  t.same(byName.get('shop/weft-suggested-web-l7')?.spec, {
    targetRefs: [{ kind: 'Service', group: '', name: 'web' }],
    action: 'ALLOW',
    rules: [
      {
        from: [{ source: { principals: ['cluster.local/ns/shop/sa/frontend'] } }],
        to: [
          { operation: { methods: ['GET'], paths: ['/', '/healthz'] } },
          { operation: { methods: ['POST'], paths: ['/api/*'] } },
          { operation: { methods: ['GET', 'PUT'], paths: ['/api/users/*'] } },
        ],
      },
    ],
  });
  t.same(byName.get('shop/weft-suggested-cache-l7')?.spec.rules, [
    {
      from: [{ source: { principals: ['cluster.local/ns/shop/sa/frontend'] } }],
      to: [{ operation: { ports: ['7000'] } }],
    },
  ]);
  t.same(suggestion.flows, {
    events: observedFlows().length,
    fromMs: T0,
    toMs: T0 + 11_000,
    inboundAllowed: 10,
    waypointAllowed: 7,
    denied: 2,
    errored: 1,
  });
  t.same(suggestion.notes, [
    {
      policy: 'data/weft-suggested-db',
      message:
        'plaintext sources (no mesh identity) allowed by address: 10.1.1.30; pod addresses change, so prefer ' +
        'enrolling those clients in the mesh and allowing their principals',
    },
  ]);
});

t.test('the YAML: a header for review, notes as comments, documents that parse back', async (t) => {
  const suggestion = suggestPolicies(observedFlows(), { config: storeWith() });
  const yaml = suggestion.yaml;
  t.match(
    yaml,
    /^# Least-privilege AuthorizationPolicies suggested by weft from observed flows\. FOR REVIEW/,
  );
  t.match(
    yaml,
    /# Generated from 30 flows between 2026-01-01T12:00:00\.000Z and 2026-01-01T12:00:11\.000Z:\n/,
  );
  t.match(yaml, /# Left out, as not allowed traffic: 2 denied, 1 errored\.\n/);
  t.match(
    yaml,
    /---\n# NOTE: plaintext sources \(no mesh identity\) allowed by address: 10\.1\.1\.30;[^\n]*\napiVersion: security\.istio\.io\/v1\n/,
  );
  t.match(yaml, /ports:\n\s+- "5432"/, 'ports are strings, as the CRD has them');
  const docs = parseAllDocuments(yaml);
  t.same(
    (Array.isArray(docs) ? docs : []).map((d) => d.toJS()),
    suggestion.policies,
    'the YAML says what the manifests say',
  );
  const reversed = suggestPolicies([...observedFlows()].reverse(), { config: storeWith() });
  t.equal(
    reversed.yaml.replace(/^# Generated from.*$/m, ''),
    yaml.replace(/^# Generated from.*$/m, ''),
    'deterministic',
  );
});

t.test('without the config, selectors are guessed and say so; TCP rules cannot be narrowed', async (t) => {
  const suggestion = suggestPolicies(observedFlows());
  const db = suggestion.policies.find((p) => p.metadata.name === 'weft-suggested-db');
  t.same(db?.spec.selector, { matchLabels: { app: 'db' } });
  t.match(
    suggestion.yaml,
    /# NOTE: selector guessed as app=db \(no config to read the pods from\): check that it selects the workload's pods\n/,
  );
  const cache = suggestion.policies.find((p) => p.metadata.name === 'weft-suggested-cache-l7');
  t.same(cache?.spec.rules, [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/frontend'] } }] }]);
  t.match(
    suggestion.yaml,
    /# NOTE: raw TCP from cluster\.local\/ns\/shop\/sa\/frontend went through the waypoint;/,
  );
});

t.test('skipped flows are counted; nothing observed, nothing suggested', async (t) => {
  const suggestion: PolicySuggestion = suggestPolicies([
    request(PODS.frontend, PODS.web0, { service: null }),
    request(PODS.frontend, PODS.web0, { path: '/x/{*}' }),
    {
      ...connection(PODS.web0, PODS.db, 5432, { sides: 'inbound' })[0]!,
      destination: { ip: '10.9.9.9', port: 1 },
    },
  ]);
  t.same(suggestion.policies, [], 'no policy without a rule: an ALLOW without rules would deny everything');
  t.same(suggestion.skipped, [
    { reason: 'inbound connections to an address the agent did not name a pod for', count: 1 },
    { reason: 'requests addressed to a workload, not a Service (no Service policy covers them)', count: 1 },
    { reason: 'requests whose path no pattern can allow exactly (a trailing * or { })', count: 1 },
  ]);
  t.match(suggestion.yaml, /# Skipped: 1 requests addressed to a workload/);
  t.match(suggestion.yaml, /# Nothing to suggest\.\n$/);
  t.match(suggestPolicies([]).yaml, /# Generated from no flows\./);
});
