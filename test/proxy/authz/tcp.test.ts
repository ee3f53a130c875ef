// proxy/authz/tcp.ts: AuthorizationPolicy for raw TCP through the waypoint (authz.md §6.5). An ALLOW
// rule that uses an HTTP-only field is skipped (a policy left without rules allows nothing); DENY, AUDIT
// and CUSTOM rules lose those fields, so they match more connections, never fewer. Views are cached per
// policy object. End to end, the views go through the real store, WaypointPolicyCache and engine.
import t from 'tap';
import type { AuthorizationPolicy } from '../../../core/model/index.js';
import { ConfigStore } from '../../../core/store.js';
import {
  compileWaypointPolicy,
  evaluateRequest,
  WaypointPolicyCache,
  type WaypointRequest,
  type WaypointTarget,
} from '../../../proxy/authz/index.js';
import { ruleUsesHttp, tcpPolicySource, tcpView } from '../../../proxy/authz/tcp.js';
import { SKIPPED_RULE } from '../../../proxy/authz/authorization.js';
import {
  allowRules,
  denyRules,
  identity,
  request,
  waypointPolicy,
  type Manifest,
  type RequestSpec,
} from './fixtures.js';

const ROOT = 'istio-system';
const TARGET: WaypointTarget = {
  waypoint: { namespace: 'shop', name: 'waypoint' },
  service: { namespace: 'shop', name: 'web' },
};

/** A TCP connection as the TCP forwarder describes it: no method, path, host or headers. */
function connection(spec: RequestSpec = {}): WaypointRequest {
  return { ...request({ ...spec, host: null }), method: '', path: '', query: '', rawHeaders: [] };
}

/** The verdict for a TCP connection under the TCP views of `policies`. */
function tcpVerdict(policies: AuthorizationPolicy[], spec?: RequestSpec) {
  return evaluateRequest(compileWaypointPolicy(policies.map(tcpView)), connection(spec));
}

const op = (operation: Manifest): Manifest => ({ to: [{ operation }] });
const src = (source: Manifest): Manifest => ({ from: [{ source }] });
const when = (key: string, values: string[]): Manifest => ({ when: [{ key, values }] });

/** One rule per HTTP-only field. */
const HTTP_RULES: [label: string, rule: Manifest][] = [
  ['methods', op({ methods: ['GET'] })],
  ['notMethods', op({ notMethods: ['DELETE'] })],
  ['paths', op({ paths: ['/api/*'] })],
  ['notPaths', op({ notPaths: ['/admin'] })],
  ['hosts', op({ hosts: ['web.shop'] })],
  ['notHosts', op({ notHosts: ['evil.example'] })],
  ['requestPrincipals', src({ requestPrincipals: ['issuer/subject'] })],
  ['notRequestPrincipals', src({ notRequestPrincipals: ['*'] })],
  ['when request.headers', when('request.headers[x-user]', ['alice'])],
  ['when request.auth.principal', when('request.auth.principal', ['issuer/subject'])],
  ['when request.auth.claims', when('request.auth.claims[groups]', ['admin'])],
  ['when request.auth.audiences', when('request.auth.audiences', ['web'])],
  ['when request.auth.presenter', when('request.auth.presenter', ['app'])],
];

/** Rules that use only what a TCP connection has. */
const TCP_RULES: [label: string, rule: Manifest][] = [
  ['empty rule', {}],
  ['namespaces', src({ namespaces: ['client'] })],
  ['notNamespaces', src({ notNamespaces: ['evil'] })],
  ['principals', src({ principals: ['cluster.local/ns/client/sa/curl'] })],
  ['serviceAccounts', src({ serviceAccounts: ['client/curl'] })],
  ['ipBlocks', src({ ipBlocks: ['10.1.0.0/16'] })],
  ['remoteIpBlocks', src({ notRemoteIpBlocks: ['192.168.0.0/16'] })],
  ['ports', op({ ports: ['8080'] })],
  ['notPorts', op({ notPorts: ['9000'] })],
  ['when source.ip', when('source.ip', ['10.1.0.5'])],
  ['when remote.ip', when('remote.ip', ['10.1.0.5'])],
  ['when source.namespace', when('source.namespace', ['client'])],
  ['when source.principal', when('source.principal', ['cluster.local/ns/client/sa/curl'])],
  ['when source.serviceAccount', when('source.serviceAccount', ['client/curl'])],
  ['when destination.ip', when('destination.ip', ['10.96.0.10'])],
  ['when destination.port', when('destination.port', ['8080'])],
  ['when connection.sni', when('connection.sni', ['web.shop'])],
];

t.test('ruleUsesHttp tells the HTTP-only fields from the connection ones', async (t) => {
  for (const [label, rule] of HTTP_RULES)
    t.equal(ruleUsesHttp(allowRules('p', [rule]).rules[0]!), true, `HTTP: ${label}`);
  for (const [label, rule] of TCP_RULES)
    t.equal(ruleUsesHttp(allowRules('p', [rule]).rules[0]!), false, `TCP: ${label}`);
});

t.test('ALLOW: a rule with any HTTP-only field is skipped, not narrowed', async (t) => {
  for (const [label, rule] of HTTP_RULES) {
    const policy = allowRules('p', [rule]);
    const view = tcpView(policy);
    t.ok(view.rules.length === 1 && view.rules[0] === SKIPPED_RULE, `${label}: the rule is skipped in place`);
    t.match(
      tcpVerdict([policy]),
      { allowed: false, reason: 'no-allow-matched' },
      `${label}: a policy whose every rule was skipped allows nothing`,
    );
  }
  const mixed = allowRules('p', [
    { ...src({ namespaces: ['client'] }), ...op({ methods: ['GET'] }) },
    { ...src({ namespaces: ['client'] }), ...when('request.headers[x-user]', ['alice']) },
  ]);
  t.ok(
    tcpView(mixed).rules.every((r) => r === SKIPPED_RULE),
    'a connection field next to an HTTP one does not survive alone',
  );
  t.match(tcpVerdict([mixed]), { allowed: false }, 'so the client namespace is not allowed by it');
});

t.test('ALLOW: the rules without HTTP fields stay, as they are', async (t) => {
  const policy = allowRules('p', [
    op({ methods: ['GET'] }),
    src({ namespaces: ['client'] }),
    op({ paths: ['/x'] }),
  ]);
  const view = tcpView(policy);
  t.not(view, policy, 'a new policy object');
  t.equal(view.rules.length, 3, 'as many rules: the skipped ones hold their place');
  t.equal(view.rules[1], policy.rules[1], 'the surviving rule is the same object');
  t.equal(view.rules[0], SKIPPED_RULE);
  t.equal(view.rules[2], SKIPPED_RULE);
  t.match(view, { kind: 'AuthorizationPolicy', name: 'p', namespace: 'shop', action: 'ALLOW' });
  t.equal(view.attachment, policy.attachment, 'the attachment is kept');
  t.equal(policy.rules.length, 3, 'the stored policy is not modified');
  t.match(
    tcpVerdict([policy]),
    { allowed: true, policy: 'shop/p', rule: 1 },
    'client/curl is allowed, by rule 1 as written (not renumbered)',
  );
  t.match(
    tcpVerdict([policy], { identity: identity('other', 'sa') }),
    { allowed: false, reason: 'no-allow-matched' },
    'another namespace is not',
  );
});

t.test('DENY: HTTP-only fields are dropped, so the rule matches more connections', async (t) => {
  for (const [label, rule] of HTTP_RULES) {
    const policy = denyRules('d', [rule]);
    t.match(
      tcpVerdict([policy]),
      { allowed: false, reason: 'denied-by-policy', policy: 'shop/d', rule: 0 },
      `${label}: every connection is denied`,
    );
  }
  const post = denyRules('d', [op({ methods: ['POST'] })]);
  const view = tcpView(post);
  t.match(
    view.rules[0]!.to[0],
    { methods: [], notMethods: [], paths: [], hosts: [] },
    'the fields are empty',
  );
  t.strictSame(post.rules[0]!.to[0]!.methods, ['POST'], 'the stored policy is not modified');
  t.match(
    tcpVerdict([post], { identity: null, src: '192.168.1.1', port: 5432 }),
    { allowed: false, policy: 'shop/d' },
    'DENY methods: [POST] refuses every connection, plaintext and on any port',
  );
});

t.test('DENY: the connection fields of a rule keep applying', async (t) => {
  const cases: [label: string, rule: Manifest, denied: RequestSpec, spared: RequestSpec][] = [
    ['ports', op({ methods: ['POST'], ports: ['9000'] }), { port: 9000 }, { port: 8080 }],
    [
      'namespaces next to requestPrincipals',
      { from: [{ source: { namespaces: ['client'], requestPrincipals: ['*'] } }] },
      {},
      { identity: identity('other', 'curl') },
    ],
    [
      'a source.ip condition next to a header condition',
      {
        when: [
          { key: 'request.headers[x-user]', values: ['alice'] },
          { key: 'source.ip', values: ['10.1.0.5'] },
        ],
      },
      { src: '10.1.0.5' },
      { src: '10.1.0.6' },
    ],
  ];
  for (const [label, rule, denied, spared] of cases) {
    const policy = denyRules('d', [rule]);
    t.match(tcpVerdict([policy], denied), { allowed: false, policy: 'shop/d' }, `${label}: denied`);
    t.match(tcpVerdict([policy], spared), { allowed: true }, `${label}: the others are not`);
  }
  const headerAndIp = tcpView(denyRules('d', [cases[2]![1]]));
  t.strictSame(
    headerAndIp.rules[0]!.when.map((c) => c.key),
    ['source.ip'],
    'only the header condition is dropped',
  );
});

t.test('DENY: rules without HTTP fields are the same objects, and keep their index', async (t) => {
  const policy = denyRules('d', [src({ namespaces: ['evil'] }), op({ methods: ['POST'], ports: ['9000'] })]);
  const view = tcpView(policy);
  t.not(view, policy);
  t.equal(view.rules[0], policy.rules[0], 'the TCP rule is kept as it is');
  t.not(view.rules[1], policy.rules[1], 'the HTTP rule is a new one');
  t.match(tcpVerdict([policy], { port: 9000 }), { allowed: false, policy: 'shop/d', rule: 1 }, 'rule 1');
  t.match(tcpVerdict([policy], { identity: identity('evil', 'x') }), { allowed: false, rule: 0 }, 'rule 0');
});

t.test('AUDIT and CUSTOM rules lose the HTTP fields too', async (t) => {
  const audit = waypointPolicy('a', { action: 'AUDIT', rules: [op({ paths: ['/admin'] })] });
  t.match(tcpView(audit).rules[0]!.to[0], { paths: [] });
  t.match(
    tcpVerdict([audit]),
    { allowed: true, audit: [{ policy: 'shop/a' }] },
    'every connection is audited',
  );
  const custom = waypointPolicy('c', {
    action: 'CUSTOM',
    provider: { name: 'ext-authz' },
    rules: [op({ paths: ['/admin'] })],
  });
  t.match(tcpView(custom).rules[0]!.to[0], { paths: [] });
  t.match(tcpVerdict([custom]), { allowed: false, policy: 'shop/c' }, 'CUSTOM fails closed for all of them');
});

t.test('a policy without HTTP fields is its own view; views are cached per object', async (t) => {
  for (const [label, rule] of TCP_RULES) {
    const allow = allowRules('p', [rule]);
    t.equal(tcpView(allow), allow, `ALLOW ${label}: the same object`);
    const deny = denyRules('d', [rule]);
    t.equal(tcpView(deny), deny, `DENY ${label}: the same object`);
  }
  const noRules = waypointPolicy('none', { action: 'ALLOW', rules: [] });
  t.equal(tcpView(noRules), noRules, 'an ALLOW with no rules');
  const allow = allowRules('p', [op({ methods: ['GET'] })]);
  t.equal(tcpView(allow), tcpView(allow), 'ALLOW view: the same object each time');
  const deny = denyRules('d', [op({ methods: ['GET'] })]);
  t.equal(tcpView(deny), tcpView(deny), 'DENY view: the same object each time');
  const twin = denyRules('d', [op({ methods: ['GET'] })]);
  t.not(tcpView(twin), tcpView(deny), 'an equal but distinct record has its own view');
});

function storeWith(...policies: AuthorizationPolicy[]): ConfigStore {
  const store = new ConfigStore({ rootNamespace: ROOT });
  store.apply({ upserts: policies, deletes: [], rejections: [] });
  return store;
}

t.test('end to end: the TCP cache over the store enforces the views; the HTTP cache does not', async (t) => {
  const store = storeWith(
    allowRules('get-only', [op({ methods: ['GET'] })]),
    denyRules('no-post', [op({ methods: ['POST'] })]),
  );
  const http = new WaypointPolicyCache(store);
  const tcp = new WaypointPolicyCache(tcpPolicySource(store));
  t.match(
    evaluateRequest(http.get(TARGET), request()),
    { allowed: true, policy: 'shop/get-only' },
    'HTTP GET',
  );
  t.match(evaluateRequest(http.get(TARGET), request({ method: 'POST' })), {
    allowed: false,
    policy: 'shop/no-post',
  });
  t.match(
    evaluateRequest(tcp.get(TARGET), connection()),
    { allowed: false, reason: 'denied-by-policy', policy: 'shop/no-post' },
    'TCP: DENY methods: [POST] refuses the connection',
  );
  t.strictSame(
    store.authorizationPolicies('shop').map((p) => p.rules[0]!.to[0]!.methods),
    [['GET'], ['POST']],
    'the store still holds the policies as written',
  );

  store.apply({
    upserts: [],
    deletes: [{ kind: 'AuthorizationPolicy', namespace: 'shop', name: 'no-post' }],
    rejections: [],
  });
  t.match(
    evaluateRequest(tcp.get(TARGET), connection()),
    { allowed: false, reason: 'no-allow-matched' },
    'TCP: the ALLOW whose only rule was skipped allows nothing',
  );
  t.match(evaluateRequest(http.get(TARGET), request()), { allowed: true }, 'HTTP GET still is');

  store.apply({
    upserts: [allowRules('from-client', [src({ namespaces: ['client'] })])],
    deletes: [],
    rejections: [],
  });
  t.match(evaluateRequest(tcp.get(TARGET), connection()), { allowed: true, policy: 'shop/from-client' });
  t.match(evaluateRequest(tcp.get(TARGET), connection({ identity: identity('other', 'sa') })), {
    allowed: false,
    reason: 'no-allow-matched',
  });
});

t.test('end to end: the source passes the root namespace through (GatewayClass policies)', async (t) => {
  const meshWide = waypointPolicy(
    'mesh-deny',
    {
      targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'GatewayClass', name: 'istio-waypoint' }],
      action: 'DENY',
      rules: [op({ methods: ['DELETE'], ports: ['5432'] })],
    },
    { namespace: ROOT },
  );
  const source = tcpPolicySource(storeWith(meshWide));
  t.equal(source.rootNamespace, ROOT);
  const tcp = new WaypointPolicyCache(source);
  t.match(evaluateRequest(tcp.get(TARGET), connection({ port: 5432 })), {
    allowed: false,
    policy: `${ROOT}/mesh-deny`,
  });
  t.match(evaluateRequest(tcp.get(TARGET), connection({ port: 8080 })), { allowed: true });
});

t.test('end to end: the compiled TCP set is reused across unrelated config changes', async (t) => {
  const store = storeWith(denyRules('no-post', [op({ methods: ['POST'] })]));
  const source = tcpPolicySource(store);
  const tcp = new WaypointPolicyCache(source);
  const first = tcp.get(TARGET);
  t.equal(source.version, store.version, 'the version is the store version');
  store.apply({
    upserts: [allowRules('elsewhere', [{}], { namespace: 'other' })],
    deletes: [],
    rejections: [],
  });
  t.equal(source.version, store.version, 'and follows it');
  t.equal(tcp.get(TARGET), first, 'the cached views make the bound set "the same objects"');
  store.apply({ upserts: [denyRules('no-post', [op({ methods: ['PUT'] })])], deletes: [], rejections: [] });
  t.not(tcp.get(TARGET), first, 'a replaced policy recompiles');
});
