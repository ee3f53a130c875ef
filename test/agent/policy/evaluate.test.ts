// agent/policy (compile + evaluate): ztunnel's L4 authorization semantics, as table tests over real
// manifests (authz.md §2-§5, §7, §8). Each case compiles a set of policies and checks connections.
import t from 'tap';
import { compileL4Policy, L4PolicyCache } from '../../../agent/policy/compile.js';
import { evaluateL4, type L4Connection } from '../../../agent/policy/evaluate.js';
import { ALLOWED_NO_POLICIES, DENIED_NO_ALLOW_MATCHED, type L4Verdict } from '../../../core/authz/verdict.js';
import type { AuthorizationPolicy, PeerAuthenticationLevels } from '../../../core/model/index.js';
import { ConfigStore } from '../../../core/store.js';
import { convertManifest } from '../../../core/convert/index.js';
import {
  allow,
  authorizationPolicy,
  connection,
  deny,
  identity,
  levels,
  mtls,
  NO_PEER_AUTHENTICATION,
  peerAuthentication,
  plaintext,
  type Manifest,
} from '../../helpers/policy.js';

type Expected = Partial<Record<keyof L4Verdict, unknown>>;

/** The single ALLOW policy `shop/p` matched (rule 0 unless told). */
const matched = (rule = 0): Expected => ({ allowed: true, reason: 'allowed', policy: 'shop/p', rule });
/** ALLOW policies exist and none matched. */
const NOT_MATCHED: Expected = {
  allowed: false,
  reason: 'no-allow-matched',
  message: 'allow policies exist, but none allowed',
};
/** Denied by DENY policy `shop/<name>`. */
const deniedBy = (name = 'd', rule = 0): Expected => ({
  allowed: false,
  reason: 'denied-by-policy',
  policy: `shop/${name}`,
  rule,
  message: `explicitly denied by shop/${name}`,
});
/** Only DENY policies apply and none matched. */
const NOT_DENIED: Expected = { allowed: true, reason: 'no-allow-policies' };
const strictDenied = (policy = 'istio-system/istio_converted_static_strict'): Expected => ({
  allowed: false,
  reason: 'peer-authentication-strict',
  policy,
  message: `explicitly denied by ${policy}`,
});

type Check = readonly [label: string, conn: L4Connection, expected: Expected];

interface Case {
  readonly name: string;
  readonly policies: readonly AuthorizationPolicy[];
  readonly peerAuth?: PeerAuthenticationLevels;
  readonly rootNamespace?: string;
  readonly checks: readonly Check[];
}

/** The one assertion `run` needs, so it takes any tap test object. */
interface Matcher {
  match(found: unknown, pattern: unknown, message: string): boolean;
}

function run(t: Matcher, cases: readonly Case[]): void {
  for (const c of cases) {
    const compiled = compileL4Policy(
      c.policies,
      c.peerAuth ?? NO_PEER_AUTHENTICATION,
      c.rootNamespace ?? 'istio-system',
    );
    for (const [label, conn, expected] of c.checks) {
      t.match(evaluateL4(compiled, conn), expected, `${c.name}: ${label}`);
    }
  }
}

/** ALLOW `shop/p` with one rule whose `from` is the single source given. */
const allowFrom = (source: Manifest): AuthorizationPolicy => allow('p', [{ from: [{ source }] }]);
const allowTo = (operation: Manifest): AuthorizationPolicy => allow('p', [{ to: [{ operation }] }]);
const allowWhen = (...when: Manifest[]): AuthorizationPolicy => allow('p', [{ when }]);

const CURL = mtls('client', 'curl');
const OTHER_SA = mtls('client', 'other');
const OTHER_NS = mtls('elsewhere', 'curl');
const PLAIN = plaintext();

t.test('principals and notPrincipals', async (t) => {
  run(t, [
    {
      name: 'exact',
      policies: [allowFrom({ principals: ['cluster.local/ns/client/sa/curl'] })],
      checks: [
        ['the principal', CURL, matched()],
        ['another service account', OTHER_SA, NOT_MATCHED],
        ['another trust domain', connection(identity('client', 'curl', 'other.td')), NOT_MATCHED],
        ['plaintext', PLAIN, NOT_MATCHED],
      ],
    },
    {
      name: 'written with spiffe:// (compared without it, so never matches)',
      policies: [allowFrom({ principals: ['spiffe://cluster.local/ns/client/sa/curl'] })],
      checks: [['the principal', CURL, NOT_MATCHED]],
    },
    {
      name: '"*" is presence',
      policies: [allowFrom({ principals: ['*'] })],
      checks: [
        ['any identity', OTHER_NS, matched()],
        ['plaintext fails even "*"', PLAIN, NOT_MATCHED],
      ],
    },
    {
      name: 'prefix*',
      policies: [allowFrom({ principals: ['cluster.local/ns/client/*'] })],
      checks: [
        ['in the namespace', OTHER_SA, matched()],
        ['a namespace with the same prefix', mtls('client2', 'curl'), NOT_MATCHED],
        ['plaintext', PLAIN, NOT_MATCHED],
      ],
    },
    {
      name: '*suffix',
      policies: [allowFrom({ principals: ['*/sa/curl'] })],
      checks: [
        ['curl anywhere', OTHER_NS, matched()],
        ['curl2', mtls('client', 'curl2'), NOT_MATCHED],
        ['plaintext', PLAIN, NOT_MATCHED],
      ],
    },
    {
      name: 'a * in the middle is literal',
      policies: [allowFrom({ principals: ['cluster.local/ns/*/sa/curl'] })],
      checks: [['client/curl', CURL, NOT_MATCHED]],
    },
    {
      name: '*x* is a suffix match for "x*"',
      policies: [allowFrom({ principals: ['*curl*'] })],
      checks: [['client/curl', CURL, NOT_MATCHED]],
    },
    {
      name: 'notPrincipals',
      policies: [allowFrom({ notPrincipals: ['cluster.local/ns/client/sa/curl', '*/sa/admin'] })],
      checks: [
        ['listed', CURL, NOT_MATCHED],
        ['listed by suffix', mtls('ops', 'admin'), NOT_MATCHED],
        ['not listed', OTHER_SA, matched()],
        ['plaintext passes every negative', PLAIN, matched()],
      ],
    },
    {
      name: 'notPrincipals "*" in ALLOW admits only plaintext',
      policies: [allowFrom({ notPrincipals: ['*'] })],
      checks: [
        ['mTLS', CURL, NOT_MATCHED],
        ['plaintext', PLAIN, matched()],
      ],
    },
    {
      name: 'DENY notPrincipals "*": the require-mTLS idiom',
      policies: [deny('d', [{ from: [{ source: { notPrincipals: ['*'] } }] }])],
      checks: [
        ['mTLS', CURL, NOT_DENIED],
        ['plaintext', PLAIN, deniedBy()],
      ],
    },
  ]);
});

t.test('namespaces and notNamespaces', async (t) => {
  run(t, [
    {
      name: 'exact',
      policies: [allowFrom({ namespaces: ['client'] })],
      checks: [
        ['any SA of the namespace', OTHER_SA, matched()],
        ['another namespace', OTHER_NS, NOT_MATCHED],
        ['plaintext', PLAIN, NOT_MATCHED],
      ],
    },
    {
      name: '"*"',
      policies: [allowFrom({ namespaces: ['*'] })],
      checks: [
        ['any identity', OTHER_NS, matched()],
        ['plaintext', PLAIN, NOT_MATCHED],
      ],
    },
    {
      name: 'prefix*, *suffix, middle literal',
      policies: [allowFrom({ namespaces: ['cli*', '*where', 'te*am'] })],
      checks: [
        ['prefix', mtls('client-canary', 'x'), matched()],
        ['suffix', OTHER_NS, matched()],
        ['middle * is not a wildcard', mtls('team', 'x'), NOT_MATCHED],
        ['middle * is not a wildcard (longer)', mtls('te-x-am', 'x'), NOT_MATCHED],
        ['plaintext', PLAIN, NOT_MATCHED],
      ],
    },
    {
      name: 'notNamespaces',
      policies: [allowFrom({ notNamespaces: ['client'] })],
      checks: [
        ['listed', CURL, NOT_MATCHED],
        ['not listed', OTHER_NS, matched()],
        ['plaintext', PLAIN, matched()],
      ],
    },
    {
      name: 'DENY notNamespaces "*" also requires mTLS',
      policies: [deny('d', [{ from: [{ source: { notNamespaces: ['*'] } }] }])],
      checks: [
        ['mTLS', CURL, NOT_DENIED],
        ['plaintext', PLAIN, deniedBy()],
      ],
    },
    {
      name: 'namespaces and notNamespaces together must both hold',
      policies: [allowFrom({ namespaces: ['client*'], notNamespaces: ['client-canary'] })],
      checks: [
        ['client', CURL, matched()],
        ['client-canary', mtls('client-canary', 'curl'), NOT_MATCHED],
      ],
    },
  ]);
});

t.test('serviceAccounts and notServiceAccounts', async (t) => {
  run(t, [
    {
      name: 'ns/sa',
      policies: [allowFrom({ serviceAccounts: ['client/curl'] })],
      checks: [
        ['the account', CURL, matched()],
        ['trust domain does not matter', connection(identity('client', 'curl', 'other.td')), matched()],
        ['another account', OTHER_SA, NOT_MATCHED],
        ['same name elsewhere', OTHER_NS, NOT_MATCHED],
        ['plaintext', PLAIN, NOT_MATCHED],
      ],
    },
    {
      name: 'bare sa means the policy namespace',
      policies: [allowFrom({ serviceAccounts: ['curl'] })],
      checks: [
        ['shop/curl', mtls('shop', 'curl'), matched()],
        ['client/curl', CURL, NOT_MATCHED],
      ],
    },
    {
      name: 'notServiceAccounts',
      policies: [allowFrom({ notServiceAccounts: ['client/curl'] })],
      checks: [
        ['listed', CURL, NOT_MATCHED],
        ['not listed', OTHER_SA, matched()],
        ['plaintext', PLAIN, matched()],
      ],
    },
  ]);
});

t.test('ipBlocks and notIpBlocks, IPv4 and IPv6', async (t) => {
  run(t, [
    {
      name: 'IPv4 CIDR',
      policies: [allowFrom({ ipBlocks: ['10.1.0.0/16'] })],
      checks: [
        ['inside', CURL, matched()],
        ['plaintext inside (no identity needed)', PLAIN, matched()],
        ['IPv4-mapped source', plaintext({ src: '::ffff:10.1.200.1' }), matched()],
        ['outside', plaintext({ src: '10.2.0.5' }), NOT_MATCHED],
        ['an IPv6 source', plaintext({ src: 'fd00:1::5' }), NOT_MATCHED],
      ],
    },
    {
      name: 'single IPv4 address',
      policies: [allowFrom({ ipBlocks: ['10.1.0.5'] })],
      checks: [
        ['it', PLAIN, matched()],
        ['its neighbour', plaintext({ src: '10.1.0.6' }), NOT_MATCHED],
      ],
    },
    {
      name: 'IPv6 CIDR and single address',
      policies: [allowFrom({ ipBlocks: ['fd00:1::/64', '2001:db8::7'] })],
      checks: [
        ['inside the block', plaintext({ src: 'fd00:1::abcd' }), matched()],
        ['the address', plaintext({ src: '2001:db8::7' }), matched()],
        ['the address, written long', plaintext({ src: '2001:0db8:0:0:0:0:0:7' }), matched()],
        ['outside', plaintext({ src: 'fd00:2::1' }), NOT_MATCHED],
        ['IPv4', PLAIN, NOT_MATCHED],
      ],
    },
    {
      name: 'notIpBlocks',
      policies: [allowFrom({ notIpBlocks: ['10.1.0.0/16', 'fd00::5'] })],
      checks: [
        ['listed IPv4', CURL, NOT_MATCHED],
        ['listed IPv6', plaintext({ src: 'fd00::5' }), NOT_MATCHED],
        ['not listed', plaintext({ src: '10.3.0.1' }), matched()],
        ['not listed IPv6', plaintext({ src: 'fd00::6' }), matched()],
      ],
    },
  ]);
});

t.test('ports and notPorts', async (t) => {
  run(t, [
    {
      name: 'ports (strings and YAML numbers)',
      policies: [allowTo({ ports: ['8080', 9090] })],
      checks: [
        ['8080', CURL, matched()],
        ['9090', mtls('client', 'curl', { port: 9090 }), matched()],
        ['8081', mtls('client', 'curl', { port: 8081 }), NOT_MATCHED],
      ],
    },
    {
      name: 'notPorts',
      policies: [allowTo({ notPorts: ['8080'] })],
      checks: [
        ['8080', CURL, NOT_MATCHED],
        ['9090', plaintext({ port: 9090 }), matched()],
      ],
    },
  ]);
});

t.test('when: the five L4 keys, values and notValues', async (t) => {
  run(t, [
    {
      name: 'source.ip values',
      policies: [allowWhen({ key: 'source.ip', values: ['10.1.0.0/16', 'fd00::/8'] })],
      checks: [
        ['IPv4 inside', PLAIN, matched()],
        ['IPv6 inside', plaintext({ src: 'fd12::1' }), matched()],
        ['outside', plaintext({ src: '192.0.2.1' }), NOT_MATCHED],
      ],
    },
    {
      name: 'source.ip notValues',
      policies: [allowWhen({ key: 'source.ip', notValues: ['10.1.0.5'] })],
      checks: [
        ['listed', PLAIN, NOT_MATCHED],
        ['not listed', plaintext({ src: '10.1.0.6' }), matched()],
      ],
    },
    {
      name: 'source.namespace values',
      policies: [allowWhen({ key: 'source.namespace', values: ['client', 'else*'] })],
      checks: [
        ['exact', CURL, matched()],
        ['prefix', OTHER_NS, matched()],
        ['other', mtls('ops', 'x'), NOT_MATCHED],
        ['plaintext', PLAIN, NOT_MATCHED],
      ],
    },
    {
      name: 'source.namespace notValues "*"',
      policies: [allowWhen({ key: 'source.namespace', notValues: ['*'] })],
      checks: [
        ['mTLS', CURL, NOT_MATCHED],
        ['plaintext', PLAIN, matched()],
      ],
    },
    {
      name: 'source.principal values',
      policies: [allowWhen({ key: 'source.principal', values: ['cluster.local/ns/client/sa/curl'] })],
      checks: [
        ['it', CURL, matched()],
        ['another', OTHER_SA, NOT_MATCHED],
        ['plaintext', PLAIN, NOT_MATCHED],
      ],
    },
    {
      name: 'source.principal notValues',
      policies: [allowWhen({ key: 'source.principal', notValues: ['*/sa/curl'] })],
      checks: [
        ['listed', CURL, NOT_MATCHED],
        ['another', OTHER_SA, matched()],
        ['plaintext', PLAIN, matched()],
      ],
    },
    {
      name: 'destination.ip values',
      policies: [allowWhen({ key: 'destination.ip', values: ['10.2.0.0/24', 'fd00:2::7'] })],
      checks: [
        ['inside', CURL, matched()],
        ['IPv6', mtls('client', 'curl', { dst: 'fd00:2::7' }), matched()],
        ['outside', mtls('client', 'curl', { dst: '10.2.1.7' }), NOT_MATCHED],
      ],
    },
    {
      name: 'destination.ip notValues',
      policies: [allowWhen({ key: 'destination.ip', notValues: ['10.2.0.7'] })],
      checks: [
        ['listed', CURL, NOT_MATCHED],
        ['other', mtls('client', 'curl', { dst: '10.2.0.8' }), matched()],
      ],
    },
    {
      name: 'destination.port values',
      policies: [allowWhen({ key: 'destination.port', values: ['8080', 9090] })],
      checks: [
        ['8080', CURL, matched()],
        ['9090', mtls('client', 'curl', { port: 9090 }), matched()],
        ['9091', mtls('client', 'curl', { port: 9091 }), NOT_MATCHED],
      ],
    },
    {
      name: 'destination.port notValues',
      policies: [allowWhen({ key: 'destination.port', notValues: ['8080'] })],
      checks: [
        ['8080', CURL, NOT_MATCHED],
        ['9090', mtls('client', 'curl', { port: 9090 }), matched()],
      ],
    },
    {
      name: 'values and notValues in one condition must both hold',
      policies: [allowWhen({ key: 'source.ip', values: ['10.1.0.0/16'], notValues: ['10.1.0.5'] })],
      checks: [
        ['excluded', PLAIN, NOT_MATCHED],
        ['included', plaintext({ src: '10.1.9.9' }), matched()],
      ],
    },
    {
      name: 'several conditions are ANDed',
      policies: [
        allowWhen(
          { key: 'source.namespace', values: ['client'] },
          { key: 'destination.port', values: ['8080'] },
        ),
      ],
      checks: [
        ['both', CURL, matched()],
        ['wrong port', mtls('client', 'curl', { port: 9090 }), NOT_MATCHED],
        ['wrong namespace', OTHER_NS, NOT_MATCHED],
      ],
    },
  ]);
});

t.test('rule structure: OR across rules and list entries, AND across sections and fields', async (t) => {
  run(t, [
    {
      name: 'fields of one source are ANDed',
      policies: [allowFrom({ namespaces: ['client'], ipBlocks: ['10.1.0.0/16'] })],
      checks: [
        ['both', CURL, matched()],
        ['namespace only', mtls('client', 'curl', { src: '10.9.0.1' }), NOT_MATCHED],
        ['address only', OTHER_NS, NOT_MATCHED],
      ],
    },
    {
      name: 'from[] entries are ORed',
      policies: [
        allow('p', [
          { from: [{ source: { namespaces: ['client'] } }, { source: { ipBlocks: ['192.0.2.0/24'] } }] },
        ]),
      ],
      checks: [
        ['first', CURL, matched()],
        ['second', plaintext({ src: '192.0.2.4' }), matched()],
        ['neither', OTHER_NS, NOT_MATCHED],
      ],
    },
    {
      name: 'to[] entries are ORed',
      policies: [
        allow('p', [{ to: [{ operation: { ports: ['8080'] } }, { operation: { ports: ['9090'] } }] }]),
      ],
      checks: [
        ['first', CURL, matched()],
        ['second', mtls('client', 'curl', { port: 9090 }), matched()],
        ['neither', mtls('client', 'curl', { port: 7070 }), NOT_MATCHED],
      ],
    },
    {
      name: 'from, to and when are ANDed',
      policies: [
        allow('p', [
          {
            from: [{ source: { namespaces: ['client'] } }],
            to: [{ operation: { ports: ['8080'] } }],
            when: [{ key: 'source.ip', values: ['10.1.0.0/16'] }],
          },
        ]),
      ],
      checks: [
        ['all three', CURL, matched()],
        ['wrong source', OTHER_NS, NOT_MATCHED],
        ['wrong port', mtls('client', 'curl', { port: 9090 }), NOT_MATCHED],
        ['wrong address', mtls('client', 'curl', { src: '10.9.0.1' }), NOT_MATCHED],
      ],
    },
    {
      name: 'rules are ORed and the matching one is reported',
      policies: [
        allow('p', [
          { from: [{ source: { namespaces: ['ops'] } }] },
          { from: [{ source: { namespaces: ['client'] } }] },
        ]),
      ],
      checks: [
        ['first rule', mtls('ops', 'x'), matched(0)],
        ['second rule', CURL, matched(1)],
        ['none', OTHER_NS, NOT_MATCHED],
      ],
    },
  ]);
});

t.test('evaluation order and special shapes (§3)', async (t) => {
  const denyAll = (): AuthorizationPolicy => deny('d', [{}]);
  const denyClient = deny('d', [{ from: [{ source: { namespaces: ['client'] } }] }]);
  const allowAll = allow('p', [{}]);
  // A DENY with no rules is rejected by the converter; build the record to check the engine too.
  const emptyDeny: AuthorizationPolicy = { ...allow('empty', undefined), action: 'DENY' };
  run(t, [
    {
      name: 'no policies',
      policies: [],
      checks: [
        ['mTLS', CURL, NOT_DENIED],
        ['plaintext', PLAIN, NOT_DENIED],
      ],
    },
    {
      name: 'DENY beats ALLOW',
      policies: [allowAll, denyClient],
      checks: [
        ['denied source', CURL, deniedBy()],
        ['other source', OTHER_NS, matched()],
      ],
    },
    {
      name: 'only DENY policies, none matching: allow',
      policies: [denyClient],
      checks: [['other', OTHER_NS, NOT_DENIED]],
    },
    {
      name: 'ALLOW policies exist and none matches: deny',
      policies: [allowFrom({ namespaces: ['ops'] })],
      checks: [['other', CURL, NOT_MATCHED]],
    },
    {
      name: 'allow-nothing (no rules) denies everything',
      policies: [allow('nothing', undefined)],
      checks: [
        ['mTLS', CURL, NOT_MATCHED],
        ['plaintext', PLAIN, NOT_MATCHED],
      ],
    },
    {
      name: 'allow-nothing vetoes nothing: another ALLOW still admits',
      policies: [allow('nothing', undefined), allowFrom({ namespaces: ['client'] })],
      checks: [
        ['matched by the other', CURL, matched()],
        ['matched by none', OTHER_NS, NOT_MATCHED],
      ],
    },
    {
      name: 'ALLOW rules: [{}] allows everything, plaintext included',
      policies: [allowAll],
      checks: [
        ['mTLS', CURL, matched()],
        ['plaintext', PLAIN, matched()],
      ],
    },
    {
      name: 'DENY rules: [{}] denies everything',
      policies: [denyAll(), allowAll],
      checks: [
        ['mTLS', CURL, deniedBy()],
        ['plaintext', PLAIN, deniedBy()],
      ],
    },
    {
      name: 'a DENY with no rules never matches',
      policies: [emptyDeny],
      checks: [['anything', PLAIN, NOT_DENIED]],
    },
    {
      name: 'the first matching DENY (input order) is reported',
      policies: [deny('first', [{ to: [{ operation: { ports: ['9090'] } }] }, {}]), denyAll()],
      checks: [['both match', CURL, deniedBy('first', 1)]],
    },
  ]);
});

// Every attribute the agent cannot evaluate, placed where it belongs in a rule.
const HTTP_OPERATIONS: readonly Manifest[] = [
  { hosts: ['shop.example'] },
  { notHosts: ['admin.example'] },
  { methods: ['GET'] },
  { notMethods: ['DELETE'] },
  { paths: ['/api/*'] },
  { notPaths: ['/admin'] },
];
const HTTP_SOURCES: readonly Manifest[] = [
  { requestPrincipals: ['issuer/subject'] },
  { notRequestPrincipals: ['*'] },
  { remoteIpBlocks: ['10.1.0.0/16'] },
  { notRemoteIpBlocks: ['192.0.2.0/24'] },
];
const HTTP_CONDITIONS: readonly Manifest[] = [
  { key: 'request.headers[x-user]', values: ['alice'] },
  { key: 'remote.ip', values: ['10.1.0.0/16'] },
  { key: 'source.serviceAccount', values: ['client/curl'] },
  { key: 'source.trustDomain', values: ['cluster.local'] },
  { key: 'request.auth.principal', values: ['issuer/subject'] },
  { key: 'request.auth.audiences', values: ['shop'] },
  { key: 'request.auth.presenter', values: ['app'] },
  { key: 'request.auth.claims[groups]', values: ['admin'] },
  { key: 'connection.sni', values: ['shop.example'] },
  { key: 'experimental.envoy.filters.network.mysql_proxy[db.table]', values: ['[update]'] },
];
const describe = (fields: Manifest): string => JSON.stringify(fields);

t.test('HTTP attributes in ALLOW: the rule is dropped and the policy fails closed (§5)', async (t) => {
  const clientSource = { namespaces: ['client'] };
  const cases: Case[] = [
    ...HTTP_OPERATIONS.map((operation): Case => ({
      name: `to ${describe(operation)}`,
      policies: [allow('p', [{ from: [{ source: clientSource }], to: [{ operation }] }])],
      checks: [['the L4 part matches', CURL, NOT_MATCHED]],
    })),
    ...HTTP_SOURCES.map((source): Case => ({
      name: `from ${describe(source)}`,
      policies: [allow('p', [{ from: [{ source: { ...clientSource, ...source } }] }])],
      checks: [
        ['the L4 part matches', CURL, NOT_MATCHED],
        ['plaintext', PLAIN, NOT_MATCHED],
      ],
    })),
    ...HTTP_CONDITIONS.map((condition): Case => ({
      name: `when ${describe(condition)}`,
      policies: [allow('p', [{ from: [{ source: clientSource }], when: [condition] }])],
      checks: [['the L4 part matches', CURL, NOT_MATCHED]],
    })),
    {
      name: 'an HTTP field in only one of several operations still drops the rule',
      policies: [
        allow('p', [{ to: [{ operation: { ports: ['8080'] } }, { operation: { methods: ['GET'] } }] }]),
      ],
      checks: [['port 8080', CURL, NOT_MATCHED]],
    },
    {
      name: 'a pure-L4 sibling rule keeps working',
      policies: [
        allow('p', [
          { to: [{ operation: { ports: ['8080'], methods: ['GET'] } }] },
          { from: [{ source: clientSource }] },
        ]),
      ],
      checks: [
        ['matched by the L4 rule', CURL, matched(1)],
        ['only the dropped rule would match', OTHER_NS, NOT_MATCHED],
      ],
    },
    {
      name: 'a sibling ALLOW policy keeps working',
      policies: [allow('http', [{ to: [{ operation: { methods: ['GET'] } }] }]), allowFrom(clientSource)],
      checks: [
        ['matched by the L4 policy', CURL, matched()],
        ['denied, not allowed by the HTTP one', OTHER_NS, NOT_MATCHED],
      ],
    },
  ];
  run(t, cases);
});

t.test('HTTP attributes in DENY: stripped, broadened, or no-op (§5)', async (t) => {
  const clientSource = { namespaces: ['client'] };
  const cases: Case[] = [
    // An operation with only HTTP fields is an empty match: the `to` clause can never hold.
    ...HTTP_OPERATIONS.map((operation): Case => ({
      name: `to ${describe(operation)} only: no-op`,
      policies: [deny('d', [{ from: [{ source: clientSource }], to: [{ operation }] }])],
      checks: [['the source it names', CURL, NOT_DENIED]],
    })),
    // A source mixing HTTP and L4 fields keeps the L4 ones: broader than written.
    ...HTTP_SOURCES.map((source): Case => ({
      name: `from ${describe(source)} mixed with namespaces: broadened`,
      policies: [deny('d', [{ from: [{ source: { ...clientSource, ...source } }] }])],
      checks: [
        ['the namespace', CURL, deniedBy()],
        ['another namespace', OTHER_NS, NOT_DENIED],
      ],
    })),
    // A source with only HTTP fields is an empty match: no-op.
    ...HTTP_SOURCES.map((source): Case => ({
      name: `from ${describe(source)} alone: no-op`,
      policies: [deny('d', [{ from: [{ source }] }])],
      checks: [
        ['mTLS', CURL, NOT_DENIED],
        ['plaintext', PLAIN, NOT_DENIED],
      ],
    })),
    // A condition on an HTTP key is an empty match: its clause, so its rule, can never hold.
    ...HTTP_CONDITIONS.map((condition): Case => ({
      name: `when ${describe(condition)}: no-op`,
      policies: [deny('d', [{ from: [{ source: clientSource }], when: [condition] }])],
      checks: [['the source it names', CURL, NOT_DENIED]],
    })),
    {
      name: 'ports + methods in one operation denies the whole port',
      policies: [deny('d', [{ to: [{ operation: { ports: ['8080'], methods: ['POST'] } }] }])],
      checks: [
        ['any request on 8080', OTHER_NS, deniedBy()],
        ['plaintext on 8080', PLAIN, deniedBy()],
        ['other port', mtls('client', 'curl', { port: 9090 }), NOT_DENIED],
      ],
    },
    {
      name: 'principals X + to methods POST does not deny X (separate clauses)',
      policies: [
        deny('d', [
          {
            from: [{ source: { principals: ['cluster.local/ns/client/sa/curl'] } }],
            to: [{ operation: { methods: ['POST'] } }],
          },
        ]),
      ],
      checks: [['X', CURL, NOT_DENIED]],
    },
    {
      name: 'notRequestPrincipals "*" does nothing (istio/istio#61126)',
      policies: [deny('d', [{ from: [{ source: { notRequestPrincipals: ['*'] } }] }])],
      checks: [
        ['mTLS', CURL, NOT_DENIED],
        ['plaintext', PLAIN, NOT_DENIED],
      ],
    },
    {
      name: 'an HTTP-only alternative next to an L4 one is ignored',
      policies: [
        deny('d', [{ to: [{ operation: { methods: ['DELETE'] } }, { operation: { ports: ['9090'] } }] }]),
      ],
      checks: [
        ['9090', mtls('client', 'curl', { port: 9090 }), deniedBy()],
        ['8080', CURL, NOT_DENIED],
      ],
    },
    {
      name: 'an HTTP-only source alternative is ignored, the L4 one denies',
      policies: [deny('d', [{ from: [{ source: { requestPrincipals: ['*'] } }, { source: clientSource }] }])],
      checks: [
        ['the L4 alternative', CURL, deniedBy()],
        ['others', OTHER_NS, NOT_DENIED],
      ],
    },
    {
      name: 'a no-op rule beside an effective rule',
      policies: [
        deny('d', [{ to: [{ operation: { paths: ['/admin'] } }] }, { from: [{ source: clientSource }] }]),
      ],
      checks: [
        ['the effective rule', CURL, deniedBy('d', 1)],
        ['others', OTHER_NS, NOT_DENIED],
      ],
    },
  ];
  run(t, cases);
});

t.test('AUDIT, CUSTOM and targetRefs policies are not enforced at L4', async (t) => {
  const audit = authorizationPolicy('audit', { action: 'AUDIT', rules: [{}] });
  const custom = authorizationPolicy('custom', {
    action: 'CUSTOM',
    provider: { name: 'ext-authz' },
    rules: [{}],
  });
  const waypoint = authorizationPolicy('waypoint', {
    targetRefs: [{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'waypoint' }],
    action: 'DENY',
    rules: [{}],
  });
  const waypointAllow = authorizationPolicy('waypoint-allow', {
    targetRefs: [{ kind: 'Service', group: '', name: 'web' }],
    rules: [{ from: [{ source: { namespaces: ['nobody'] } }] }],
  });
  run(t, [
    {
      name: 'none counts as an ALLOW policy or denies',
      policies: [audit, custom, waypoint, waypointAllow],
      checks: [
        ['mTLS', CURL, NOT_DENIED],
        ['plaintext', PLAIN, NOT_DENIED],
      ],
    },
    {
      name: 'beside a real ALLOW',
      policies: [audit, custom, allowFrom({ namespaces: ['client'] })],
      checks: [
        ['matched', CURL, matched()],
        ['not matched', OTHER_NS, NOT_MATCHED],
      ],
    },
  ]);
  const compiled = compileL4Policy(
    [audit, custom, waypoint, waypointAllow],
    NO_PEER_AUTHENTICATION,
    'istio-system',
  );
  t.same(
    compiled.ignored,
    [
      { policy: 'shop/audit', reason: 'the node agent does not support the AUDIT action' },
      { policy: 'shop/custom', reason: 'the node agent does not support the CUSTOM action' },
      {
        policy: 'shop/waypoint',
        reason: 'targetRefs policies are enforced by waypoints, not the node agent',
      },
      {
        policy: 'shop/waypoint-allow',
        reason: 'targetRefs policies are enforced by waypoints, not the node agent',
      },
    ],
    'each ignored policy is listed with the reason',
  );
});

t.test('dry-run policies are reported, never enforced', async (t) => {
  const dryDeny = deny('dry-deny', [{ from: [{ source: { namespaces: ['client'] } }] }], { dryRun: true });
  const dryAllow = allow('dry-allow', [{ from: [{ source: { namespaces: ['elsewhere'] } }] }], {
    dryRun: true,
  });
  const dryAudit = authorizationPolicy('dry-audit', { action: 'AUDIT', rules: [{}] }, { dryRun: true });
  run(t, [
    {
      name: 'dry-run DENY',
      policies: [dryDeny],
      checks: [
        [
          'matches: still allowed',
          CURL,
          { ...NOT_DENIED, dryRun: [{ policy: 'shop/dry-deny', rule: 0, action: 'DENY' }] },
        ],
        ['does not match', OTHER_NS, { ...NOT_DENIED, dryRun: [] }],
      ],
    },
    {
      name: 'a dry-run ALLOW is not an ALLOW policy',
      policies: [dryAllow],
      checks: [
        ['not matching: still no-allow-policies', CURL, { ...NOT_DENIED, dryRun: [] }],
        [
          'matching: reported',
          OTHER_NS,
          { ...NOT_DENIED, dryRun: [{ policy: 'shop/dry-allow', rule: 0, action: 'ALLOW' }] },
        ],
      ],
    },
    {
      name: 'reported whatever the decision',
      policies: [
        dryDeny,
        dryAllow,
        deny('d', [{ from: [{ source: { namespaces: ['elsewhere'] } }] }]),
        dryAudit,
      ],
      checks: [
        [
          'denied by the real DENY, the dry-run ALLOW listed',
          OTHER_NS,
          { ...deniedBy(), dryRun: [{ policy: 'shop/dry-allow', rule: 0, action: 'ALLOW' }] },
        ],
        [
          'allowed, the dry-run DENY listed',
          CURL,
          { ...NOT_DENIED, dryRun: [{ policy: 'shop/dry-deny', rule: 0, action: 'DENY' }] },
        ],
      ],
    },
  ]);
  const compiled = compileL4Policy([dryDeny, dryAllow, dryAudit], NO_PEER_AUTHENTICATION, 'istio-system');
  t.same(
    compiled.dryRun.map((p) => p.policy),
    ['shop/dry-deny', 'shop/dry-allow'],
    'dry-run ALLOW and DENY are compiled',
  );
  t.same(compiled.deny, [], 'and not enforced');
  t.same(compiled.allow, []);
  t.same(
    compiled.ignored.map((p) => p.policy),
    ['shop/dry-audit'],
    'a dry-run AUDIT is ignored like any AUDIT',
  );
  const verdict = evaluateL4(compiled, CURL);
  t.ok(
    Object.isFrozen(verdict) && Object.isFrozen(verdict.dryRun),
    'the copy with dry-run matches is frozen too',
  );
});

t.test('PeerAuthentication (§8)', async (t) => {
  const mesh = (mode: string): Manifest => ({ mtls: { mode } });
  const meshStrict = peerAuthentication('default', 'istio-system', mesh('STRICT'));
  const meshPermissive = peerAuthentication('default', 'istio-system', mesh('PERMISSIVE'));
  const nsStrict = peerAuthentication('default', 'shop', mesh('STRICT'));
  const nsPermissive = peerAuthentication('default', 'shop', mesh('PERMISSIVE'));
  const nsDisable = peerAuthentication('default', 'shop', mesh('DISABLE'));
  const nsUnset = peerAuthentication('default', 'shop', {});
  const workload = (spec: Manifest): ReturnType<typeof peerAuthentication> =>
    peerAuthentication('web', 'shop', { selector: { matchLabels: { app: 'web' } }, ...spec });
  const P8080 = plaintext();
  const P9090 = plaintext({ port: 9090 });
  const converted = strictDenied('shop/converted_peer_authentication_web');
  const ok = NOT_DENIED;
  run(t, [
    { name: 'none: PERMISSIVE', policies: [], checks: [['plaintext', P8080, ok]] },
    {
      name: 'mesh STRICT',
      policies: [],
      peerAuth: levels({ mesh: meshStrict }),
      checks: [
        ['plaintext', P8080, strictDenied()],
        ['mTLS', CURL, ok],
      ],
    },
    {
      name: 'STRICT is checked before any ALLOW',
      policies: [allowFrom({ ipBlocks: ['10.1.0.0/16'] }), allow('all', [{}])],
      peerAuth: levels({ mesh: meshStrict }),
      checks: [
        ['plaintext matching the ALLOW by IP', P8080, strictDenied()],
        ['mTLS', CURL, matched()],
      ],
    },
    {
      name: 'STRICT authenticates only: an allow-nothing policy still denies mTLS',
      policies: [allow('nothing', undefined)],
      peerAuth: levels({ mesh: meshStrict }),
      checks: [['mTLS', CURL, NOT_MATCHED]],
    },
    {
      name: 'namespace PERMISSIVE overrides mesh STRICT',
      policies: [],
      peerAuth: levels({ mesh: meshStrict, namespace: nsPermissive }),
      checks: [['plaintext', P8080, ok]],
    },
    {
      name: 'namespace DISABLE behaves like PERMISSIVE',
      policies: [],
      peerAuth: levels({ mesh: meshStrict, namespace: nsDisable }),
      checks: [
        ['plaintext', P8080, ok],
        ['mTLS', CURL, ok],
      ],
    },
    {
      name: 'namespace STRICT overrides mesh PERMISSIVE',
      policies: [],
      peerAuth: levels({ mesh: meshPermissive, namespace: nsStrict }),
      checks: [['plaintext', P8080, strictDenied()]],
    },
    {
      name: 'namespace UNSET inherits mesh STRICT',
      policies: [],
      peerAuth: levels({ mesh: meshStrict, namespace: nsUnset }),
      checks: [['plaintext', P8080, strictDenied()]],
    },
    {
      name: 'workload PERMISSIVE overrides namespace STRICT',
      policies: [],
      peerAuth: levels({ namespace: nsStrict, workload: workload(mesh('PERMISSIVE')) }),
      checks: [['plaintext', P8080, ok]],
    },
    {
      name: 'workload STRICT overrides namespace PERMISSIVE',
      policies: [],
      peerAuth: levels({ namespace: nsPermissive, workload: workload(mesh('STRICT')) }),
      checks: [['plaintext', P8080, strictDenied()]],
    },
    {
      name: 'workload STRICT with a PERMISSIVE port',
      policies: [],
      peerAuth: levels({
        workload: workload({ mtls: { mode: 'STRICT' }, portLevelMtls: { 9090: { mode: 'PERMISSIVE' } } }),
      }),
      checks: [
        ['plaintext to 8080', P8080, converted],
        ['plaintext to the exception', P9090, ok],
      ],
    },
    {
      name: 'workload PERMISSIVE with a STRICT port',
      policies: [],
      peerAuth: levels({
        workload: workload({ mtls: { mode: 'PERMISSIVE' }, portLevelMtls: { 8080: { mode: 'STRICT' } } }),
      }),
      checks: [
        ['plaintext to the STRICT port', P8080, converted],
        ['plaintext elsewhere', P9090, ok],
        ['mTLS to the STRICT port', CURL, ok],
      ],
    },
    {
      name: 'workload STRICT with a DISABLE port',
      policies: [],
      peerAuth: levels({
        workload: workload({ mtls: { mode: 'STRICT' }, portLevelMtls: { 9090: { mode: 'DISABLE' } } }),
      }),
      checks: [
        ['plaintext to 8080', P8080, converted],
        ['plaintext to the DISABLE port', P9090, ok],
      ],
    },
    {
      name: 'a port-level UNSET inherits the workload mode',
      policies: [],
      peerAuth: levels({
        workload: workload({ mtls: { mode: 'STRICT' }, portLevelMtls: { 9090: { mode: 'UNSET' } } }),
      }),
      checks: [['plaintext to 9090', P9090, strictDenied()]],
    },
    {
      name: 'workload UNSET with a PERMISSIVE port under mesh STRICT',
      policies: [],
      peerAuth: levels({
        mesh: meshStrict,
        workload: workload({ portLevelMtls: { 9090: { mode: 'PERMISSIVE' } } }),
      }),
      checks: [
        ['plaintext to 8080', P8080, converted],
        ['plaintext to the exception', P9090, ok],
      ],
    },
    {
      name: 'upstream quirk: workload PERMISSIVE, STRICT port, namespace unset, mesh STRICT: the port is STRICT',
      policies: [],
      peerAuth: levels({
        mesh: meshStrict,
        namespace: nsUnset,
        workload: workload({ mtls: { mode: 'PERMISSIVE' }, portLevelMtls: { 8080: { mode: 'STRICT' } } }),
      }),
      checks: [
        ['plaintext to the STRICT port', P8080, converted],
        ['plaintext elsewhere (workload PERMISSIVE)', P9090, ok],
      ],
    },
    {
      name: 'the static STRICT policy is named after the configured root namespace',
      policies: [],
      rootNamespace: 'mesh-root',
      peerAuth: levels({ namespace: nsStrict }),
      checks: [['plaintext', P8080, strictDenied('mesh-root/istio_converted_static_strict')]],
    },
  ]);
});

t.test(
  'selection through the store: root selectors, namespaces, targetRefs, PeerAuthentication levels',
  async (t) => {
    const store = new ConfigStore();
    const record = (manifest: Manifest) => {
      const result = convertManifest(manifest);
      if (result.outcome !== 'converted') throw new Error(`bad test manifest ${JSON.stringify(manifest)}`);
      return result.record;
    };
    const pod = (name: string, namespace: string, app: string, ip: string) =>
      record({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace, labels: { app } },
        spec: { serviceAccountName: app },
        status: { podIP: ip },
      });
    const meshDenyEvil = deny('deny-evil', [{ from: [{ source: { namespaces: ['evil'] } }] }], {
      namespace: 'istio-system',
    });
    const webOnly = authorizationPolicy(
      'web-only',
      {
        selector: { matchLabels: { app: 'web' } },
        action: 'DENY',
        rules: [{ to: [{ operation: { ports: ['9999'] } }] }],
      },
      { namespace: 'istio-system' },
    );
    const shopAllowClient = allow('allow-client', [{ from: [{ source: { namespaces: ['client'] } }] }]);
    const shopWaypoint = authorizationPolicy('waypoint', {
      targetRefs: [{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'waypoint' }],
      rules: [{ from: [{ source: { namespaces: ['nobody'] } }] }],
    });
    store.apply({
      upserts: [
        pod('web-0', 'shop', 'web', '10.2.0.7'),
        pod('db-0', 'shop', 'db', '10.2.0.8'),
        pod('web-0', 'other', 'web', '10.3.0.7'),
        meshDenyEvil,
        webOnly,
        shopAllowClient,
        shopWaypoint,
        peerAuthentication('default', 'istio-system', { mtls: { mode: 'STRICT' } }),
        // A selector policy in the root namespace is ignored.
        peerAuthentication('root-web', 'istio-system', {
          selector: { matchLabels: { app: 'web' } },
          mtls: { mode: 'PERMISSIVE' },
        }),
        peerAuthentication('default', 'other', { mtls: { mode: 'PERMISSIVE' } }),
        peerAuthentication('db', 'shop', {
          selector: { matchLabels: { app: 'db' } },
          mtls: { mode: 'PERMISSIVE' },
        }),
      ],
      deletes: [],
      rejections: [],
    });
    const cache = new L4PolicyCache(store.rootNamespace);
    const compiledFor = (namespace: string, name: string) => {
      const workload = store.workload(namespace, name);
      if (workload === undefined) throw new Error(`no pod ${namespace}/${name}`);
      return cache.get(store.authorizationPoliciesFor(workload), store.peerAuthenticationsFor(workload));
    };
    const meshDenied = {
      allowed: false,
      reason: 'denied-by-policy',
      policy: 'istio-system/deny-evil',
      message: 'explicitly denied by istio-system/deny-evil',
    };
    const allowedClient = { allowed: true, reason: 'allowed', policy: 'shop/allow-client', rule: 0 };

    const shopWeb = compiledFor('shop', 'web-0');
    t.same(
      [...shopWeb.deny, ...shopWeb.allow].map((p) => p.policy).sort(),
      ['istio-system/deny-evil', 'istio-system/web-only', 'shop/allow-client'],
      'shop/web-0: root namespace-wide and selector policies, its namespace policy, no targetRefs policy',
    );
    t.match(evaluateL4(shopWeb, mtls('evil', 'x', { dst: '10.2.0.7' })), meshDenied);
    t.match(evaluateL4(shopWeb, mtls('client', 'curl', { dst: '10.2.0.7' })), allowedClient);
    t.match(evaluateL4(shopWeb, mtls('client', 'curl', { dst: '10.2.0.7', port: 9999 })), {
      allowed: false,
      policy: 'istio-system/web-only',
    });
    t.match(evaluateL4(shopWeb, mtls('elsewhere', 'x', { dst: '10.2.0.7' })), NOT_MATCHED);
    t.match(
      evaluateL4(shopWeb, plaintext({ dst: '10.2.0.7' })),
      strictDenied(),
      'mesh STRICT; the root selector PA is ignored',
    );

    const shopDb = compiledFor('shop', 'db-0');
    t.match(
      evaluateL4(shopDb, mtls('client', 'curl', { dst: '10.2.0.8', port: 9999 })),
      allowedClient,
      'web-only does not select db',
    );
    t.match(
      evaluateL4(shopDb, plaintext({ src: '10.2.0.7', dst: '10.2.0.8' })),
      NOT_MATCHED,
      'workload PERMISSIVE admits plaintext to authz',
    );

    const otherWeb = compiledFor('other', 'web-0');
    t.match(
      evaluateL4(otherWeb, mtls('evil', 'x', { dst: '10.3.0.7' })),
      meshDenied,
      'root policies apply in every namespace',
    );
    t.match(
      evaluateL4(otherWeb, mtls('client', 'curl', { dst: '10.3.0.7' })),
      NOT_DENIED,
      'shop policies do not',
    );
    t.match(evaluateL4(otherWeb, plaintext({ dst: '10.3.0.7' })), NOT_DENIED, 'namespace PERMISSIVE');

    t.equal(compiledFor('shop', 'web-0'), shopWeb, 'compiled once while nothing changed');
    store.apply({
      upserts: [allow('allow-ops', [{ from: [{ source: { namespaces: ['ops'] } }] }])],
      deletes: [],
      rejections: [],
    });
    const recompiled = compiledFor('shop', 'web-0');
    t.not(recompiled, shopWeb, 'a policy change compiles again');
    t.match(evaluateL4(recompiled, mtls('ops', 'x', { dst: '10.2.0.7' })), {
      allowed: true,
      policy: 'shop/allow-ops',
    });
    t.equal(compiledFor('other', 'web-0'), otherWeb, 'a change in shop leaves other namespaces compiled');
  },
);

t.test('PeerAuthentication: the oldest wins within a level (through the store)', async (t) => {
  const store = new ConfigStore();
  const pod = convertManifest({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web-0', namespace: 'shop', labels: { app: 'web' } },
    status: { podIP: '10.2.0.7' },
  });
  if (pod.outcome !== 'converted' || pod.record.kind !== 'Pod') throw new Error('bad test pod');
  store.apply({
    upserts: [
      pod.record,
      peerAuthentication('newer', 'shop', { mtls: { mode: 'PERMISSIVE' } }, '2026-02-01T00:00:00Z'),
      peerAuthentication('older', 'shop', { mtls: { mode: 'STRICT' } }, '2026-01-01T00:00:00Z'),
    ],
    deletes: [],
    rejections: [],
  });
  const workload = store.workload('shop', 'web-0')!;
  const compiled = compileL4Policy([], store.peerAuthenticationsFor(workload), store.rootNamespace);
  t.match(evaluateL4(compiled, plaintext()), strictDenied());
});

t.test('verdicts are shared objects: deciding allocates none', async (t) => {
  const compiled = compileL4Policy(
    [deny('d', [{ from: [{ source: { namespaces: ['evil'] } }] }]), allowFrom({ principals: ['*'] })],
    levels({ mesh: peerAuthentication('default', 'istio-system', { mtls: { mode: 'STRICT' } }) }),
    'istio-system',
  );
  const decide = (conn: L4Connection): L4Verdict => evaluateL4(compiled, conn);
  t.equal(decide(mtls('evil', 'a')), decide(mtls('evil', 'b')), 'one DENY verdict per rule');
  t.equal(decide(CURL), decide(OTHER_NS), 'one ALLOW verdict per rule');
  t.equal(decide(PLAIN), decide(plaintext({ src: '10.9.9.9' })), 'one STRICT verdict per compile');
  t.equal(evaluateL4(compileL4Policy([], NO_PEER_AUTHENTICATION, 'istio-system'), CURL), ALLOWED_NO_POLICIES);
  t.equal(
    evaluateL4(compileL4Policy([allow('nothing', undefined)], NO_PEER_AUTHENTICATION, 'istio-system'), CURL),
    DENIED_NO_ALLOW_MATCHED,
  );
  for (const conn of [mtls('evil', 'a'), CURL, PLAIN]) t.ok(Object.isFrozen(decide(conn)), 'frozen');
});
