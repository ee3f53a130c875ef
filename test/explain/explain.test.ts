// explainFlow over a small mesh (fixtures.ts): the path each kind of flow takes and the verdict, held
// against what the data plane's own deciders return for the same flow: PolicyAuthorizer at the
// destination agent, evaluateRequest and the request pipeline's decide() at the waypoint.
import t from 'tap';
import type { IncomingMessage } from 'node:http';
import { pino } from 'pino';
import { PolicyAuthorizer } from '../../agent/authorizer.js';
import { parseSpiffeId } from '../../core/spiffe.js';
import type { ConfigStore } from '../../core/store.js';
import { explainFlow } from '../../explain/explain.js';
import type {
  DestinationAgentStep,
  Explanation,
  SourceAgentStep,
  WaypointStep,
} from '../../explain/explanation.js';
import { ExplainQueryError, type ExplainHttp, type ExplainQuery } from '../../explain/query.js';
import { renderExplanation } from '../../explain/render.js';
import { evaluateRequest, WaypointPolicyCache } from '../../proxy/authz/index.js';
import type { UpstreamClients } from '../../proxy/forward/upstream-clients.js';
import { compileRoutingTable } from '../../proxy/routing/index.js';
import { RequestHandler } from '../../proxy/server/request-handler.js';
import type { Tunnel } from '../../proxy/tunnel/hbone-server.js';
import { resolveTunnelTarget } from '../../proxy/tunnel/targets.js';
import {
  CLIENT_ID,
  peerAuthentication,
  POD_IPS,
  policy,
  storeOf,
  WAYPOINT_ID,
  WEB_SERVICE_REF,
} from './fixtures.js';

const CLIENT = { kind: 'workload', namespace: 'shop', name: 'client' } as const;
const WEB = { kind: 'service', namespace: 'shop', name: 'web' } as const;
const DB_POD = { kind: 'workload', namespace: 'data', name: 'db-0' } as const;
const WAYPOINT = { namespace: 'shop', name: 'waypoint' };

function step<S extends Explanation['steps'][number]['at']>(
  e: Explanation,
  at: S,
): Extract<Explanation['steps'][number], { at: S }> {
  const found = e.steps.find((s) => s.at === at);
  if (found === undefined) throw new Error(`no ${at} step in ${JSON.stringify(e.steps.map((s) => s.at))}`);
  return found as Extract<Explanation['steps'][number], { at: S }>;
}

/** What the destination agent's authorizer says for the connection the explanation shows it. */
function agentVerdict(store: ConfigStore, e: Explanation) {
  const s: DestinationAgentStep = step(e, 'destination agent');
  const w = store.workload(s.workload.namespace, s.workload.name)!;
  const c = s.connection;
  return new PolicyAuthorizer(store).authorize(w, {
    srcIp: c.srcIp,
    srcIdentity: c.srcIdentity === undefined ? undefined : parseSpiffeId(c.srcIdentity),
    dstIp: c.dstIp,
    dstPort: c.dstPort,
  });
}

t.test('workload to workload, no policy: tunnel, allowed by the destination agent', async (t) => {
  const e = explainFlow(storeOf(), { source: CLIENT, destination: DB_POD, port: 5432 });
  t.equal(e.path, 'tunnel');
  t.equal(e.verdict, 'ALLOWED');
  t.equal(e.decidedAt, 'destination agent');
  t.equal(e.policy, undefined);
  t.equal(e.reason, 'no allow policies exist');
  t.same(
    e.steps.map((s) => s.at),
    ['source agent', 'destination agent'],
  );
  const out = step(e, 'source agent') as SourceAgentStep;
  t.match(out, {
    plan: 'tunnel',
    nextHop: `${POD_IPS.db}:15008`,
    authority: `${POD_IPS.db}:5432`,
    expectedIdentity: 'spiffe://cluster.local/ns/data/sa/db',
  });
  t.match(step(e, 'destination agent').connection, {
    srcIp: POD_IPS.client,
    srcIdentity: CLIENT_ID,
    dstIp: POD_IPS.db,
    dstPort: 5432,
    arrival: 'hbone',
  });
  t.match(e.source, { captured: true, identity: CLIENT_ID, node: 'node-1' });
  t.match(e.endpoint, { pod: 'db-0', inMesh: true });
});

t.test('an L4 DENY policy: denied with the policy and rule the authorizer reports', async (t) => {
  const store = storeOf(
    policy('data', 'deny-shop', {
      selector: { matchLabels: { app: 'db' } },
      action: 'DENY',
      rules: [
        { from: [{ source: { namespaces: ['legacy'] } }] },
        {
          from: [{ source: { principals: ['cluster.local/ns/shop/sa/client'] } }],
          to: [{ operation: { ports: ['5432'] } }],
        },
      ],
    }),
    policy('data', 'allow-all', { action: 'ALLOW', rules: [{}] }),
  );
  const e = explainFlow(store, { source: CLIENT, destination: DB_POD, port: 5432 });
  const authorized = agentVerdict(store, e);
  t.equal(authorized.allowed, false);
  t.match(e, { verdict: 'DENIED', policy: 'data/deny-shop', rule: 1, decidedAt: 'destination agent' });
  t.equal(e.policy, authorized.policy);
  t.equal(e.rule, authorized.rule);
  t.equal(e.reason, authorized.message);
  t.match(step(e, 'destination agent').policies, [
    { policy: 'data/deny-shop', action: 'DENY', matched: true, rule: 1, decides: true },
    { policy: 'data/allow-all', action: 'ALLOW', matched: true, rule: 0, decides: false },
  ]);
});

t.test('ALLOW policies of which none matches: denied, no policy named', async (t) => {
  const store = storeOf(
    policy('data', 'only-web', {
      selector: { matchLabels: { app: 'db' } },
      rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/web'] } }] }],
    }),
  );
  const e = explainFlow(store, {
    source: CLIENT,
    destination: { kind: 'service', namespace: 'data', name: 'db' },
    port: 5432,
  });
  t.match(e, { path: 'tunnel', verdict: 'DENIED', decidedAt: 'destination agent' });
  t.equal(e.policy, undefined);
  t.equal(e.rule, undefined);
  t.equal(e.reason, 'allow policies exist, but none allowed');
  t.same(agentVerdict(store, e).reason, 'no-allow-matched');
  t.match(step(e, 'destination agent').policies, [
    { policy: 'data/only-web', matched: false, decides: false },
  ]);
});

t.test(
  'STRICT PeerAuthentication and plaintext from outside the mesh: denied by the converted policy',
  async (t) => {
    const store = storeOf(peerAuthentication('data', 'strict', { mtls: { mode: 'STRICT' } }));
    for (const source of [
      { kind: 'address', ip: '192.168.50.5' },
      { kind: 'workload', namespace: 'legacy', name: 'old' },
    ] as const) {
      const e = explainFlow(store, { source, destination: DB_POD, port: 5432 });
      t.match(
        e,
        {
          path: 'direct',
          verdict: 'DENIED',
          policy: 'istio-system/istio_converted_static_strict',
          decidedAt: 'destination agent',
          source: { captured: false },
        },
        source.kind,
      );
      t.equal(e.rule, undefined);
      const agent = step(e, 'destination agent');
      t.match(agent.connection, { arrival: 'plaintext', dstIp: POD_IPS.db, dstPort: 5432 });
      t.notOk('srcIdentity' in agent.connection);
      t.match(agent.peerAuthentication, {
        mode: 'STRICT',
        identityRequired: true,
        peerIdentity: false,
        decides: true,
        levels: [{ level: 'namespace', policy: 'data/strict', mode: 'STRICT' }],
      });
      t.equal(e.policy, agentVerdict(store, e).policy);
    }
    // The same client with an identity is not refused by STRICT.
    const mtls = explainFlow(store, {
      source: { kind: 'identity', identity: 'cluster.local/ns/shop/sa/client', ip: POD_IPS.client },
      destination: DB_POD,
      port: 5432,
    });
    t.match(mtls, { path: 'tunnel', verdict: 'ALLOWED' });
  },
);

t.test('plaintext to a Service: kube-proxy picks the endpoint, the waypoint is bypassed', async (t) => {
  const e = explainFlow(storeOf(), {
    source: { kind: 'address', ip: '192.168.50.5' },
    destination: WEB,
    port: 80,
    http: { method: 'GET', path: '/' },
  });
  t.match(e, {
    path: 'direct',
    verdict: 'ALLOWED',
    decidedAt: 'destination agent',
    endpoint: { pod: 'web-0', port: 8080 },
  });
  t.match(e.notes.join('\n'), /kube-proxy/);
  t.match(e.notes.join('\n'), /bound to waypoint shop\/waypoint/);
  t.match(e.notes.join('\n'), /not inspected/);
  t.equal(e.http, undefined);
});

// ---- the waypoint -------------------------------------------------------------------------------

const DENY_ADMIN_POST = policy('shop', 'deny-admin-post', {
  ...WEB_SERVICE_REF,
  action: 'DENY',
  rules: [
    { to: [{ operation: { methods: ['DELETE'] } }] },
    { to: [{ operation: { methods: ['POST'], paths: ['/admin/*'] } }] },
  ],
});

/**
 * The waypoint's own request pipeline (RequestHandler.decide) on the same request: what it answers, and
 * the route it chose. Only the fields decide() reads are given.
 */
function waypointDecides(store: ConfigStore, http: Required<Pick<ExplainHttp, 'method' | 'path'>>) {
  const handler = new RequestHandler({
    store,
    waypoint: WAYPOINT,
    routing: () => compileRoutingTable(store, WAYPOINT),
    policies: new WaypointPolicyCache(store),
    clients: undefined as unknown as UpstreamClients,
    log: pino({ level: 'silent' }),
    observe: () => undefined,
  });
  const host = 'web.shop.svc.cluster.local';
  const req = {
    httpVersionMajor: 1,
    httpVersion: '1.1',
    method: http.method,
    url: http.path,
    rawHeaders: ['host', host],
    headers: { host },
  } as unknown as IncomingMessage;
  const target = resolveTunnelTarget(store, WAYPOINT, '10.96.0.10:80');
  if (target.kind === 'refuse') throw new Error(target.reason);
  const tunnel = {
    target,
    source: { ip: POD_IPS.client, port: 40000 },
    peer: parseSpiffeId(CLIENT_ID),
    peerId: CLIENT_ID,
    sourceWorkload: store.workloadByIp(POD_IPS.client),
    traceparent: undefined,
  } as unknown as Tunnel;
  const ex = handler.newExchange(req, tunnel);
  return { decision: handler.decide(req, tunnel, ex), route: ex.route };
}

t.test('a Service with a waypoint and an L7 DENY on method and path: denied at the waypoint', async (t) => {
  const store = storeOf(DENY_ADMIN_POST);
  const http = { method: 'POST', path: '/admin/users' };
  const e = explainFlow(store, { source: CLIENT, destination: WEB, port: 80, http });
  t.match(e, {
    path: 'waypoint',
    waypoint: WAYPOINT,
    verdict: 'DENIED',
    policy: 'shop/deny-admin-post',
    rule: 1,
    decidedAt: 'waypoint',
    http: { method: 'POST', path: '/admin/users', host: 'web.shop.svc.cluster.local' },
  });
  const wp: WaypointStep = step(e, 'waypoint');
  t.match(wp, {
    protocol: 'http',
    status: 403,
    responseDetails: 'rbac_access_denied_matched_policy[ns[shop]-policy[deny-admin-post]-rule[1]]',
    request: { srcIp: POD_IPS.client, srcIdentity: CLIENT_ID, dstIp: '10.96.0.10', dstPort: 80 },
    policies: [
      { policy: 'shop/deny-admin-post', action: 'DENY', rule: 1, decides: true, attachedVia: 'Service' },
    ],
  });
  t.match(step(e, 'source agent'), {
    plan: 'waypoint',
    nextHop: `${POD_IPS.waypoint}:15008`,
    expectedIdentity: WAYPOINT_ID,
  });

  // The waypoint's verdict for the same request, from its policy engine and from its request pipeline.
  const verdict = evaluateRequest(
    new WaypointPolicyCache(store).get({ waypoint: WAYPOINT, service: { namespace: 'shop', name: 'web' } }),
    {
      srcIp: POD_IPS.client,
      srcIdentity: parseSpiffeId(CLIENT_ID),
      dstIp: '10.96.0.10',
      dstPort: 80,
      method: 'POST',
      path: '/admin/users',
      query: '',
      host: 'web.shop.svc.cluster.local',
      rawHeaders: [],
      sni: undefined,
    },
  );
  t.equal(e.policy, verdict.policy);
  t.equal(e.rule, verdict.rule);
  const { decision } = waypointDecides(store, http);
  t.match(decision, { kind: 'local', status: 403, details: wp.responseDetails });
  t.equal(e.steps.length, 2, 'nothing goes on past the denial');
});

t.test(
  'an allowed request at the waypoint names its route and backend, then the destination agent',
  async (t) => {
    const store = storeOf(DENY_ADMIN_POST);
    const http = { method: 'POST', path: '/api/./items?x=1' };
    const e = explainFlow(store, { source: CLIENT, destination: WEB, port: 80, http });
    t.match(e, { path: 'waypoint', verdict: 'ALLOWED', decidedAt: 'destination agent' });
    const wp = step(e, 'waypoint');
    t.match(wp, {
      verdict: 'ALLOWED',
      request: { path: '/api/items', query: '?x=1' },
      route: { rule: 'shop/web/rules[0]', route: 'shop/web', ruleIndex: 0, backend: 'shop/web:80' },
      upstream: { ip: POD_IPS.web0, port: 8080, pod: 'web-0', inMesh: true },
    });
    t.match(wp.policies, [{ policy: 'shop/deny-admin-post', matched: false, decides: false }]);
    // The destination agent sees the waypoint, not the client.
    t.match(step(e, 'destination agent').connection, {
      srcIp: POD_IPS.waypoint,
      srcIdentity: WAYPOINT_ID,
      dstIp: POD_IPS.web0,
      dstPort: 8080,
    });
    const { decision, route } = waypointDecides(store, http);
    t.equal(decision.kind, 'send');
    t.equal(route, wp.route?.rule);
    if (decision.kind === 'send')
      t.ok(
        decision.destination.endpoints.some(
          (ep) => ep.ip === wp.upstream?.ip && ep.port === wp.upstream?.port,
        ),
      );

    // No route matches /other: the waypoint answers 404, an error in flow-event terms.
    const miss = explainFlow(store, { source: CLIENT, destination: WEB, port: 80, http: { path: '/other' } });
    t.match(miss, { verdict: 'ERROR', decidedAt: 'waypoint' });
    t.match(step(miss, 'waypoint'), { status: 404 });
    t.match(waypointDecides(store, { method: 'GET', path: '/other' }).decision, {
      kind: 'local',
      status: 404,
    });
  },
);

t.test('an L4 policy behind the waypoint sees the waypoint identity', async (t) => {
  const store = storeOf(
    policy('shop', 'web-from-waypoint', {
      selector: { matchLabels: { app: 'web' } },
      rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/waypoint'] } }] }],
    }),
  );
  const viaWaypoint = explainFlow(store, {
    source: CLIENT,
    destination: WEB,
    port: 80,
    http: { path: '/api' },
  });
  t.match(viaWaypoint, {
    verdict: 'ALLOWED',
    policy: 'shop/web-from-waypoint',
    rule: 0,
    decidedAt: 'destination agent',
  });
  // Straight to the pod, bypassing the waypoint (it serves Services only): denied.
  const direct = explainFlow(store, {
    source: CLIENT,
    destination: { kind: 'workload', namespace: 'shop', name: 'web-0' },
    port: 8080,
  });
  t.match(direct, { path: 'tunnel', verdict: 'DENIED', reason: 'allow policies exist, but none allowed' });
});

t.test('TCP through the waypoint: the TCP view of an HTTP-only DENY refuses every connection', async (t) => {
  const store = storeOf(
    DENY_ADMIN_POST,
    `apiVersion: v1
kind: Service
metadata: { name: raw, namespace: shop, labels: { istio.io/use-waypoint: waypoint } }
spec: { clusterIP: 10.96.0.13, selector: { app: web }, ports: [{ name: tcp-raw, port: 7000, targetPort: 7000 }] }
`,
    policy('shop', 'deny-post-raw', {
      targetRefs: [{ group: '', kind: 'Service', name: 'raw' }],
      action: 'DENY',
      rules: [{ to: [{ operation: { methods: ['POST'] } }] }],
    }),
  );
  const e = explainFlow(store, {
    source: CLIENT,
    destination: { kind: 'service', namespace: 'shop', name: 'raw' },
    port: 7000,
  });
  t.match(e, {
    path: 'waypoint',
    verdict: 'DENIED',
    policy: 'shop/deny-post-raw',
    rule: 0,
    decidedAt: 'waypoint',
  });
  t.match(step(e, 'waypoint'), { protocol: 'tcp', protocolReason: /declares an opaque protocol/ });
  t.equal(e.http, undefined);
});

t.test('a destination outside the mesh: direct, passed through by the source agent', async (t) => {
  const store = storeOf();
  for (const [label, destination, port] of [
    ['an address outside', { kind: 'address', ip: '203.0.113.9' }, 443],
    ['a pod not enrolled', { kind: 'workload', namespace: 'legacy', name: 'old' }, 8080],
  ] as const) {
    const e = explainFlow(store, { source: CLIENT, destination, port });
    t.match(
      e,
      { path: 'direct', verdict: 'ALLOWED', decidedAt: 'source agent', endpoint: { inMesh: false } },
      label,
    );
    t.match(step(e, 'source agent'), { plan: 'passthrough' }, label);
    t.equal(e.steps.length, 1, label);
  }
  const nothing = explainFlow(store, {
    source: { kind: 'address', ip: '192.168.1.1' },
    destination: { kind: 'address', ip: '203.0.113.9' },
    port: 443,
  });
  t.match(nothing, { path: 'direct', verdict: 'ALLOWED', decidedAt: 'none', steps: [] });
});

t.test('the source agent refuses: a Service bound to a waypoint that does not exist', async (t) => {
  const store = storeOf(`apiVersion: v1
kind: Service
metadata: { name: lost, namespace: shop, labels: { istio.io/use-waypoint: missing } }
spec: { clusterIP: 10.96.0.14, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }
`);
  const e = explainFlow(store, {
    source: CLIENT,
    destination: { kind: 'address', ip: '10.96.0.14' },
    port: 80,
  });
  t.match(e, {
    path: 'none',
    verdict: 'ERROR',
    decidedAt: 'source agent',
    reason: /missing, which does not exist/,
  });
  t.match(e.destination, { service: { namespace: 'shop', name: 'lost' } });
});

t.test('several endpoints: each one explained, a note when their verdicts differ', async (t) => {
  const cart = { kind: 'service', namespace: 'shop', name: 'cart' } as const;
  const same = explainFlow(storeOf(), { source: CLIENT, destination: cart, port: 80 });
  t.equal(same.endpoints?.length, 2);
  t.match(same.notes.join('\n'), /2 endpoints, all with the same verdict/);

  const store = storeOf(
    policy('shop', 'v2-locked', {
      selector: { matchLabels: { version: 'v2' } },
      action: 'DENY',
      rules: [{}],
    }),
  );
  const e = explainFlow(store, { source: CLIENT, destination: cart, port: 80 });
  t.match(e, { verdict: 'ALLOWED', endpoint: { pod: 'cart-0' } });
  t.match(e.endpoints, [
    { endpoint: { pod: 'cart-0' }, verdict: 'ALLOWED' },
    {
      endpoint: { pod: 'cart-1' },
      verdict: 'DENIED',
      policy: 'shop/v2-locked',
      rule: 0,
      decidedAt: 'destination agent',
    },
  ]);
  t.match(e.notes.join('\n'), /do not all get the same verdict/);
});

t.test('dry-run policies are reported, never decide', async (t) => {
  const store = storeOf(
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: would-deny, namespace: data, annotations: { istio.io/dry-run: 'true' } }
spec: { action: DENY, rules: [{}] }
`,
  );
  const e = explainFlow(store, { source: CLIENT, destination: DB_POD, port: 5432 });
  t.match(e, { verdict: 'ALLOWED' });
  const agent = step(e, 'destination agent');
  t.match(agent.dryRun, [{ policy: 'data/would-deny', rule: 0, action: 'DENY' }]);
  t.match(agent.policies, [{ policy: 'data/would-deny', dryRun: true, matched: true, decides: false }]);
});

t.test('identities and addresses', async (t) => {
  const store = storeOf();
  const q = (source: ExplainQuery['source']): ExplainQuery => ({ source, destination: DB_POD, port: 5432 });
  const asIdentity = explainFlow(store, q({ kind: 'identity', identity: CLIENT_ID, ip: '10.9.9.9' }));
  t.match(asIdentity, { path: 'tunnel', source: { captured: true, identity: CLIENT_ID, ip: '10.9.9.9' } });
  t.match(step(asIdentity, 'destination agent').connection, { srcIp: '10.9.9.9', srcIdentity: CLIENT_ID });
  const other = explainFlow(
    store,
    q({ kind: 'identity', identity: 'example.org/ns/shop/sa/x', ip: POD_IPS.web0 }),
  );
  t.match(other.notes.join('\n'), /not of the trust domain cluster.local/);
  t.match(other.notes.join('\n'), /is pod shop\/web-0/);
  // An enrolled pod's address is that pod: its agent captures it.
  const enrolled = explainFlow(store, q({ kind: 'address', ip: POD_IPS.client }));
  t.match(enrolled, { path: 'tunnel', source: { pod: 'client', identity: CLIENT_ID } });

  t.throws(
    () => explainFlow(store, q({ kind: 'workload', namespace: 'shop', name: 'nope' })),
    ExplainQueryError,
  );
  t.throws(() => explainFlow(store, q({ kind: 'address', ip: 'not-an-ip' })), ExplainQueryError);
  t.throws(
    () => explainFlow(store, q({ kind: 'identity', identity: 'shop/client', ip: '10.0.0.1' })),
    ExplainQueryError,
  );
  t.throws(
    () =>
      explainFlow(store, {
        source: CLIENT,
        destination: { kind: 'service', namespace: 'shop', name: 'nope' },
        port: 80,
      }),
    /Service shop\/nope not found/,
  );
  t.throws(
    () => explainFlow(store, { source: CLIENT, destination: DB_POD, port: 70000 }),
    /not a port number/,
  );
});

t.test('the text rendering names the path, each step and the verdict', async (t) => {
  const store = storeOf(DENY_ADMIN_POST);
  const text = renderExplanation(
    explainFlow(store, {
      source: CLIENT,
      destination: WEB,
      port: 80,
      http: { method: 'POST', path: '/admin/x' },
    }),
  ).join('\n');
  t.match(text, /^path +waypoint \(shop\/waypoint\)$/m);
  t.match(text, /^1\. source agent \(node-1\)$/m);
  t.match(text, /^2\. waypoint shop\/waypoint \(pod shop\/waypoint-0\)$/m);
  t.match(text, /DENY shop\/deny-admin-post +rule 1 matched +<- decides/);
  t.match(text, /^verdict +DENIED by shop\/deny-admin-post rule 1 at the waypoint$/m);
});

t.test('a pod addressed directly through a workload waypoint: Gateway-attached policies apply', async (t) => {
  const store = storeOf(
    `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: pods, namespace: shop, labels: { istio.io/waypoint-for: workload } }
spec: { gatewayClassName: istio-waypoint, listeners: [{ name: mesh, port: 15008, protocol: HBONE }] }
---
apiVersion: v1
kind: Pod
metadata: { name: pods-0, namespace: shop, labels: { gateway.networking.k8s.io/gateway-name: pods } }
spec: { serviceAccountName: pods, nodeName: node-1 }
status: { phase: Running, podIP: 10.1.1.50 }
---
apiVersion: v1
kind: Service
metadata: { name: pods, namespace: shop }
spec: { clusterIP: 10.96.0.50, selector: { gateway.networking.k8s.io/gateway-name: pods }, ports: [{ port: 15008 }] }
---
apiVersion: v1
kind: Pod
metadata: { name: api-0, namespace: shop, labels: { app: api, istio.io/use-waypoint: pods } }
spec: { serviceAccountName: api, nodeName: node-2 }
status: { phase: Running, podIP: 10.1.2.50 }
`,
    policy('shop', 'no-delete', {
      targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'pods' }],
      action: 'DENY',
      rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }],
    }),
  );
  const api = { kind: 'workload', namespace: 'shop', name: 'api-0' } as const;
  const e = explainFlow(store, { source: CLIENT, destination: api, port: 8080, http: { method: 'DELETE' } });
  t.match(e, {
    path: 'waypoint',
    waypoint: { namespace: 'shop', name: 'pods' },
    verdict: 'DENIED',
    policy: 'shop/no-delete',
    decidedAt: 'waypoint',
  });
  t.match(step(e, 'waypoint'), {
    protocolReason: /a pod addressed directly declares no protocol/,
    policies: [{ policy: 'shop/no-delete', attachedVia: 'Gateway', decides: true }],
  });
  const get = explainFlow(store, { source: CLIENT, destination: api, port: 8080, http: { method: 'GET' } });
  t.match(get, {
    verdict: 'ALLOWED',
    decidedAt: 'destination agent',
    endpoint: { pod: 'api-0', port: 8080 },
  });
  t.match(step(get, 'destination agent').connection, { srcIp: '10.1.1.50', srcIdentity: /sa\/pods$/ });
  // Without an HTTP request the undeclared port is explained as TCP: the DENY's TCP view denies it all.
  t.match(explainFlow(store, { source: CLIENT, destination: api, port: 8080 }), {
    verdict: 'DENIED',
    policy: 'shop/no-delete',
  });
});
