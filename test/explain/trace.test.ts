// The traces explain lists policies from (traceL4 in agent/policy/evaluate.ts, traceRequest in
// proxy/authz/evaluate.ts) walk every policy where the evaluators stop at the first decision, and derive
// their verdict on their own. Over a table of policy sets and flows, each trace's verdict must equal the
// evaluator's, and its per-policy listing must agree with that verdict; a divergence fails here.
import t from 'tap';
import { compileL4Policy } from '../../agent/policy/compile.js';
import { evaluateL4, traceL4, type L4Connection } from '../../agent/policy/evaluate.js';
import type { AuthorizationPolicy, PeerAuthenticationLevels } from '../../core/model/index.js';
import { compileWaypointPolicy } from '../../proxy/authz/compile.js';
import { evaluateRequest, traceRequest } from '../../proxy/authz/evaluate.js';
import type { WaypointRequest } from '../../proxy/authz/request.js';
import {
  allow,
  authorizationPolicy,
  deny,
  levels,
  mtls,
  NO_PEER_AUTHENTICATION,
  peerAuthentication,
  plaintext,
} from '../helpers/policy.js';
import { allowRules, denyRules, identity, request, waypointPolicy } from '../proxy/authz/fixtures.js';

const ROOT = 'istio-system';

interface L4Set {
  readonly name: string;
  readonly policies: readonly AuthorizationPolicy[];
  readonly peerAuth?: PeerAuthenticationLevels;
}

const L4_SETS: readonly L4Set[] = [
  { name: 'no policy', policies: [] },
  {
    name: 'deny a principal',
    policies: [deny('d', [{ from: [{ source: { principals: ['cluster.local/ns/client/sa/curl'] } }] }])],
  },
  { name: 'allow a namespace', policies: [allow('a', [{ from: [{ source: { namespaces: ['shop'] } }] }])] },
  {
    name: 'allow: an HTTP rule dropped, a port rule kept',
    policies: [
      allow('a', [
        { to: [{ operation: { methods: ['GET'] } }] },
        { to: [{ operation: { ports: ['9090'] } }] },
      ]),
    ],
  },
  {
    name: 'deny and allow both match: deny wins',
    policies: [
      allow('a', [{ from: [{ source: { namespaces: ['shop', 'client'] } }] }]),
      deny('d', [
        { to: [{ operation: { ports: ['9090'] } }] },
        { from: [{ source: { namespaces: ['client'] } }] },
      ]),
    ],
  },
  { name: 'allow nothing', policies: [allow('nothing', undefined)] },
  {
    name: 'dry-run deny and allow next to an enforced allow',
    policies: [
      deny('would-deny', [{}], { dryRun: true }),
      allow('would-allow', [{ from: [{ source: { namespaces: ['other'] } }] }], { dryRun: true }),
      allow('a', [{ from: [{ source: { namespaces: ['shop'] } }] }]),
    ],
  },
  {
    name: 'mesh STRICT and allow everything',
    policies: [allow('all', [{}])],
    peerAuth: levels({ mesh: peerAuthentication('default', ROOT, { mtls: { mode: 'STRICT' } }) }),
  },
  {
    name: 'workload PERMISSIVE with STRICT 8080, and the require-mTLS idiom',
    policies: [
      deny('require-mtls', [{ from: [{ source: { notPrincipals: ['*'] } }] }], { namespace: 'shop' }),
    ],
    peerAuth: levels({
      workload: peerAuthentication('w', 'shop', {
        selector: { matchLabels: { app: 'web' } },
        mtls: { mode: 'PERMISSIVE' },
        portLevelMtls: { '8080': { mode: 'STRICT' } },
      }),
    }),
  },
  {
    name: 'ip blocks and when conditions',
    policies: [
      deny('d', [{ from: [{ source: { ipBlocks: ['10.9.0.0/16'] } }] }]),
      allow('a', [
        { when: [{ key: 'source.ip', values: ['10.1.0.0/16'] }] },
        { when: [{ key: 'destination.port', values: ['9090'] }] },
      ]),
    ],
  },
  {
    name: 'selector policies of the root namespace',
    policies: [
      authorizationPolicy(
        'global',
        { action: 'DENY', rules: [{ to: [{ operation: { notPorts: ['8080'] } }] }] },
        { namespace: ROOT },
      ),
    ],
  },
];

const L4_CONNECTIONS: readonly [string, L4Connection][] = [
  ['shop/curl :8080', mtls('shop', 'curl')],
  ['client/curl :8080', mtls('client', 'curl')],
  ['shop/curl :9090', mtls('shop', 'curl', { port: 9090 })],
  ['plaintext :8080', plaintext()],
  ['plaintext :9090', plaintext({ port: 9090 })],
  ['other/x from 10.9.0.1', mtls('other', 'x', { src: '10.9.0.1' })],
];

t.test('traceL4 agrees with evaluateL4', async (t) => {
  for (const set of L4_SETS) {
    const compiled = compileL4Policy(set.policies, set.peerAuth ?? NO_PEER_AUTHENTICATION, ROOT);
    for (const [label, conn] of L4_CONNECTIONS) {
      const name = `${set.name}: ${label}`;
      const trace = traceL4(compiled, conn);
      const verdict = evaluateL4(compiled, conn);
      t.same(trace.verdict, verdict, name);
      // The listing says the same: the deciding policy matched with the deciding rule.
      if (verdict.reason === 'allowed' || verdict.reason === 'denied-by-policy') {
        const listed = [...trace.deny, ...trace.allow].find((p) => p.policy === verdict.policy);
        t.equal(listed?.matchedRule, verdict.rule, `${name}: listing`);
      }
      const dryRunMatched = trace.dryRun.filter((p) => p.matchedRule !== undefined).map((p) => p.policy);
      t.same(
        verdict.dryRun.map((m) => m.policy),
        dryRunMatched,
        `${name}: dry-run`,
      );
      t.equal(
        trace.identityRequired && conn.srcIdentity === undefined,
        verdict.reason === 'peer-authentication-strict',
        `${name}: STRICT`,
      );
    }
  }
});

const L7_SETS: readonly { name: string; policies: readonly AuthorizationPolicy[] }[] = [
  { name: 'no policy', policies: [] },
  { name: 'allow GET', policies: [allowRules('p', [{ to: [{ operation: { methods: ['GET'] } }] }])] },
  {
    name: 'deny a path, allow a namespace',
    policies: [
      denyRules('d', [
        { to: [{ operation: { methods: ['DELETE'] } }] },
        { to: [{ operation: { paths: ['/admin/*'] } }] },
      ]),
      allowRules('p', [{ from: [{ source: { namespaces: ['client'] } }] }]),
    ],
  },
  {
    name: 'CUSTOM before ALLOW',
    policies: [
      waypointPolicy('ext', {
        action: 'CUSTOM',
        provider: { name: 'opa' },
        rules: [{ to: [{ operation: { paths: ['/admin/*'] } }] }],
      }),
      allowRules('p', [{}]),
    ],
  },
  {
    name: 'AUDIT and dry-run report',
    policies: [
      waypointPolicy('audit', { action: 'AUDIT', rules: [{ to: [{ operation: { methods: ['POST'] } }] }] }),
      denyRules('would-deny', [{ to: [{ operation: { paths: ['/admin/*'] } }] }], { dryRun: true }),
      allowRules('p', [{ to: [{ operation: { hosts: ['web.shop.svc.cluster.local'] } }] }]),
    ],
  },
  {
    name: 'headers, JWT and plaintext peers',
    policies: [
      denyRules('no-token', [
        {
          from: [{ source: { notRequestPrincipals: ['*'] } }],
          to: [{ operation: { paths: ['/secure/*'] } }],
        },
      ]),
      allowRules('p', [
        { when: [{ key: 'request.headers[x-user]', values: ['alice'] }] },
        { from: [{ source: { principals: ['*'] } }] },
      ]),
    ],
  },
];

const L7_REQUESTS: readonly [string, WaypointRequest][] = [
  ['GET /', request()],
  ['POST /admin/x', request({ method: 'POST', path: '/admin/x' })],
  ['DELETE / from shop', request({ method: 'DELETE', identity: identity('shop', 'curl') })],
  ['GET /secure/a with x-user', request({ path: '/secure/a', headers: ['X-User', 'alice'] })],
  ['plaintext GET / with x-user', request({ identity: null, headers: ['x-user', 'alice'] })],
  ['plaintext POST /admin/x', request({ identity: null, method: 'POST', path: '/admin/x', host: 'other' })],
];

t.test('traceRequest agrees with evaluateRequest', async (t) => {
  for (const set of L7_SETS) {
    const compiled = compileWaypointPolicy(set.policies);
    for (const [label, req] of L7_REQUESTS) {
      const name = `${set.name}: ${label}`;
      const trace = traceRequest(compiled, req);
      const verdict = evaluateRequest(compiled, req);
      t.same(trace.verdict, verdict, name);
      if (verdict.policy !== undefined) {
        const listed = [...trace.custom, ...trace.deny, ...trace.allow].find(
          (p) => p.policy === verdict.policy,
        );
        t.equal(listed?.matchedRule, verdict.rule, `${name}: listing`);
      }
      t.same(
        verdict.audit.map((m) => m.policy),
        trace.audit.filter((p) => p.matchedRule !== undefined).map((p) => p.policy),
        `${name}: audit`,
      );
    }
  }
});
