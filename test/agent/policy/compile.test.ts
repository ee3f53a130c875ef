// agent/policy/compile.ts and authorization.ts: what the compiled form holds (rules kept, dropped and
// why, per-connection work needed, STRICT ports), and that the cache compiles once per input.
import t from 'tap';
import { compileL4Policy, L4PolicyCache } from '../../../agent/policy/compile.js';
import { requiresPeerIdentity } from '../../../agent/policy/strict-mtls.js';
import {
  allow,
  authorizationPolicy,
  deny,
  levels,
  NO_PEER_AUTHENTICATION,
  peerAuthentication,
} from '../../helpers/policy.js';

const compile = (...policies: Parameters<typeof compileL4Policy>[0]) =>
  compileL4Policy(policies, NO_PEER_AUTHENTICATION, 'istio-system');

t.test('warnings name the rules the node agent changes, in istiod words', async (t) => {
  const compiled = compile(
    allow('http-allow', [
      { to: [{ operation: { methods: ['GET'], paths: ['/api'] } }] },
      { from: [{ source: { namespaces: ['client'] } }] },
    ]),
    deny('http-deny', [
      { when: [{ key: 'request.headers[x-user]', values: ['eve'] }] },
      { to: [{ operation: { ports: ['8080'], methods: ['POST'] } }] },
      { from: [{ source: { namespaces: ['evil'] } }] },
    ]),
  );
  const [httpDeny] = compiled.deny;
  const [httpAllow] = compiled.allow;
  t.same(httpAllow?.warnings, [
    'spec.rules[0] is omitted: the node agent does not enforce HTTP attributes (found: methods, paths); ' +
      'use a waypoint. This is more restrictive than requested.',
  ]);
  t.same(
    httpAllow?.rules.map((rule) => rule.index),
    [1],
    'the HTTP rule is gone, the L4 rule keeps its index',
  );
  t.same(httpDeny?.warnings, [
    'spec.rules[0] has no effect: it can never match at L4 without its HTTP attributes ' +
      '(found: request.headers[x-user]); use a waypoint and targetRefs to enforce it.',
    'spec.rules[1] is enforced without its HTTP attributes (found: methods), which is more restrictive than requested.',
  ]);
  t.same(
    httpDeny?.rules.map((rule) => rule.index),
    [1, 2],
    'the inert rule is left out',
  );
});

t.test('an ALLOW policy whose rules were all dropped is still an ALLOW policy', async (t) => {
  const compiled = compile(allow('http', [{ to: [{ operation: { hosts: ['a.example'] } }] }]));
  t.equal(compiled.allow.length, 1);
  t.same(compiled.allow[0]?.rules, []);
});

t.test('stripped alternatives leave no empty match behind', async (t) => {
  const compiled = compile(
    deny('d', [{ from: [{ source: { requestPrincipals: ['*'] } }, { source: { namespaces: ['evil'] } }] }]),
  );
  const clauses = compiled.deny[0]?.rules[0]?.clauses ?? [];
  t.equal(clauses.length, 1);
  t.equal(clauses[0]?.length, 1, 'only the namespaces alternative');
  t.match(clauses[0]?.[0], [{ kind: 'namespaces', negate: false }]);
});

t.test('per-connection work is limited to what the rules read', async (t) => {
  const cases: [string, Parameters<typeof compileL4Policy>[0], [boolean, boolean, boolean]][] = [
    ['no policies', [], [false, false, false]],
    [
      'ports and namespaces',
      [allow('p', [{ from: [{ source: { namespaces: ['a'] } }], to: [{ operation: { ports: ['1'] } }] }])],
      [false, false, false],
    ],
    ['principals', [allow('p', [{ from: [{ source: { notPrincipals: ['*'] } }] }])], [true, false, false]],
    [
      'source.principal',
      [allow('p', [{ when: [{ key: 'source.principal', values: ['x'] }] }])],
      [true, false, false],
    ],
    ['ipBlocks', [deny('d', [{ from: [{ source: { ipBlocks: ['10.0.0.0/8'] } }] }])], [false, true, false]],
    [
      'source.ip',
      [deny('d', [{ when: [{ key: 'source.ip', notValues: ['10.0.0.1'] }] }])],
      [false, true, false],
    ],
    [
      'destination.ip',
      [deny('d', [{ when: [{ key: 'destination.ip', values: ['10.0.0.1'] }] }])],
      [false, false, true],
    ],
    [
      'a dry-run policy counts',
      [allow('p', [{ from: [{ source: { principals: ['*'] } }] }], { dryRun: true })],
      [true, false, false],
    ],
    [
      'a dropped rule does not',
      [allow('p', [{ from: [{ source: { principals: ['*'], requestPrincipals: ['*'] } }] }])],
      [false, false, false],
    ],
    [
      'an ignored policy does not',
      [authorizationPolicy('a', { action: 'AUDIT', rules: [{ from: [{ source: { principals: ['*'] } }] }] })],
      [false, false, false],
    ],
  ];
  for (const [name, policies, expected] of cases) {
    const compiled = compile(...policies);
    t.same([compiled.needsPrincipal, compiled.needsSourceIp, compiled.needsDestinationIp], expected, name);
  }
});

t.test('STRICT ports: a default plus the exceptions', async (t) => {
  const workload = peerAuthentication('web', 'shop', {
    selector: { matchLabels: { app: 'web' } },
    mtls: { mode: 'STRICT' },
    portLevelMtls: { 9090: { mode: 'PERMISSIVE' }, 9091: { mode: 'STRICT' }, 9092: { mode: 'UNSET' } },
  });
  const { strictMtls } = compileL4Policy([], levels({ workload }), 'istio-system');
  t.equal(strictMtls.defaultMode, 'STRICT');
  t.same([...strictMtls.exceptionPorts], [9090], 'only ports that differ from the default are kept');
  t.same(
    [8080, 9090, 9091, 9092].map((port) => requiresPeerIdentity(strictMtls, port)),
    [true, false, true, true],
  );
  t.equal(strictMtls.verdict.policy, 'shop/converted_peer_authentication_web');
});

t.test('L4PolicyCache compiles once per (policy list, PeerAuthentication levels)', async (t) => {
  const cache = new L4PolicyCache('istio-system');
  const policies = [allow('p', [{}])];
  const peerAuth = levels();
  const first = cache.get(policies, peerAuth);
  t.equal(cache.get(policies, peerAuth), first, 'same inputs, same compiled object');
  t.not(cache.get(policies, levels()), first, 'new levels object, new compile');
  t.not(cache.get([...policies], peerAuth), first, 'new policy list, new compile');
});
