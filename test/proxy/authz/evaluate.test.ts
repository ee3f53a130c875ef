// proxy/authz (compile + evaluate): Envoy's L7 AuthorizationPolicy semantics at the waypoint, as table
// tests over real manifests (authz.md §2, §3, §6, §7). Each case compiles a set of policies bound to the
// waypoint and checks requests.
import t from 'tap';
import type { AuthorizationPolicy } from '../../../core/model/index.js';
import { compileWaypointPolicy } from '../../../proxy/authz/compile.js';
import { evaluateRequest } from '../../../proxy/authz/evaluate.js';
import {
  RBAC_DENIED_BODY,
  RBAC_DENIED_STATUS,
  WAYPOINT_ALLOWED_NO_POLICIES,
  WAYPOINT_DENIED_NO_ALLOW_MATCHED,
  type WaypointVerdict,
} from '../../../proxy/authz/verdict.js';
import {
  allowRules,
  denyRules,
  identity,
  PLAIN,
  request,
  waypointPolicy,
  type Manifest,
  type RequestSpec,
} from './fixtures.js';

type Expected = Partial<Record<keyof WaypointVerdict, unknown>>;

/** ALLOW policy `shop/<name>` matched (rule 0 unless told). */
const allowedBy = (name = 'p', rule = 0): Expected => ({
  allowed: true,
  reason: 'allowed',
  policy: `shop/${name}`,
  rule,
  responseDetails: undefined,
});
const ALLOWED = allowedBy();
/** ALLOW policies exist and none matched. */
const NOT_MATCHED: Expected = {
  allowed: false,
  reason: 'no-allow-matched',
  message: 'allow policies exist, but none allowed',
  responseDetails: 'rbac_access_denied_matched_policy[none]',
};
/** Denied by DENY policy `shop/<name>`. */
const deniedBy = (name = 'd', rule = 0): Expected => ({
  allowed: false,
  reason: 'denied-by-policy',
  policy: `shop/${name}`,
  rule,
  message: `explicitly denied by shop/${name}`,
  responseDetails: `rbac_access_denied_matched_policy[ns[shop]-policy[${name}]-rule[${rule}]]`,
});
const DENIED = deniedBy();
/** No ALLOW policy applies (only DENY ones, none matched). */
const NOT_DENIED: Expected = { allowed: true, reason: 'no-allow-policies', responseDetails: undefined };

type Check = readonly [label: string, request: RequestSpec, expected: Expected];

interface Case {
  readonly name: string;
  readonly policies: readonly AuthorizationPolicy[];
  readonly checks: readonly Check[];
}

interface Matcher {
  match(found: unknown, pattern: unknown, message: string): boolean;
  equal(found: unknown, wanted: unknown, message: string): boolean;
}

function run(t: Matcher, cases: readonly Case[]): void {
  for (const c of cases) {
    const compiled = compileWaypointPolicy(c.policies);
    for (const [label, spec, expected] of c.checks) {
      const verdict = evaluateRequest(compiled, request(spec));
      t.match(verdict, expected, `${c.name}: ${label}`);
      // A pattern array matches longer arrays too; the reports must list exactly what is expected.
      for (const key of ['audit', 'dryRun'] as const) {
        const wanted = expected[key];
        if (Array.isArray(wanted)) t.equal(verdict[key].length, wanted.length, `${c.name}: ${label}: ${key}`);
      }
    }
  }
}

const allowTo = (operation: Manifest): AuthorizationPolicy => allowRules('p', [{ to: [{ operation }] }]);
const allowFrom = (source: Manifest): AuthorizationPolicy => allowRules('p', [{ from: [{ source }] }]);
const allowWhen = (...when: Manifest[]): AuthorizationPolicy => allowRules('p', [{ when }]);
const denyTo = (operation: Manifest): AuthorizationPolicy => denyRules('d', [{ to: [{ operation }] }]);
const denyFrom = (source: Manifest): AuthorizationPolicy => denyRules('d', [{ from: [{ source }] }]);
const denyWhen = (...when: Manifest[]): AuthorizationPolicy => denyRules('d', [{ when }]);

const OTHER_SA: RequestSpec = { identity: identity('client', 'other') };
const OTHER_NS: RequestSpec = { identity: identity('elsewhere', 'curl') };

t.test('methods: exact, case-sensitive, "*" and prefix/suffix forms', async (t) => {
  run(t, [
    {
      name: 'exact',
      policies: [allowTo({ methods: ['GET', 'HEAD'] })],
      checks: [
        ['GET', {}, ALLOWED],
        ['HEAD', { method: 'HEAD' }, ALLOWED],
        ['POST', { method: 'POST' }, NOT_MATCHED],
      ],
    },
    {
      name: 'lower-case in the policy never matches',
      policies: [allowTo({ methods: ['get'] })],
      checks: [['GET', {}, NOT_MATCHED]],
    },
    {
      name: '"*" is any method',
      policies: [allowTo({ methods: ['*'] })],
      checks: [['DELETE', { method: 'DELETE' }, ALLOWED]],
    },
    {
      name: 'prefix and suffix',
      policies: [allowTo({ methods: ['P*', '*TE'] })],
      checks: [
        ['POST', { method: 'POST' }, ALLOWED],
        ['PATCH', { method: 'PATCH' }, ALLOWED],
        ['DELETE', { method: 'DELETE' }, ALLOWED],
        ['GET', {}, NOT_MATCHED],
      ],
    },
    {
      name: 'notMethods',
      policies: [allowTo({ notMethods: ['DELETE'] })],
      checks: [
        ['GET', {}, ALLOWED],
        ['DELETE', { method: 'DELETE' }, NOT_MATCHED],
      ],
    },
  ]);
});

t.test('paths: string forms on the normalized path, case-sensitive', async (t) => {
  run(t, [
    {
      name: 'exact',
      policies: [allowTo({ paths: ['/api/items'] })],
      checks: [
        ['exact', { path: '/api/items' }, ALLOWED],
        ['the query is not part of the path', { path: '/api/items', query: '?id=1' }, ALLOWED],
        ['case differs', { path: '/API/items' }, NOT_MATCHED],
        ['trailing slash differs', { path: '/api/items/' }, NOT_MATCHED],
      ],
    },
    {
      name: 'prefix: /api/* does not match /api',
      policies: [allowTo({ paths: ['/api/*'] })],
      checks: [
        ['/api/', { path: '/api/' }, ALLOWED],
        ['/api/a/b', { path: '/api/a/b' }, ALLOWED],
        ['/api', { path: '/api' }, NOT_MATCHED],
        ['/apix', { path: '/apix' }, NOT_MATCHED],
      ],
    },
    {
      name: 'suffix',
      policies: [allowTo({ paths: ['*.png'] })],
      checks: [
        ['/img/a.png', { path: '/img/a.png' }, ALLOWED],
        ['/img/a.PNG', { path: '/img/a.PNG' }, NOT_MATCHED],
      ],
    },
    {
      name: '"*" is any path',
      policies: [allowTo({ paths: ['*'] })],
      checks: [['/', {}, ALLOWED]],
    },
    {
      name: 'notPaths',
      policies: [allowTo({ notPaths: ['/admin*'] })],
      checks: [
        ['/shop', { path: '/shop' }, ALLOWED],
        ['/admin/x', { path: '/admin/x' }, NOT_MATCHED],
      ],
    },
  ]);
});

t.test('path templates {*} and {**}', async (t) => {
  run(t, [
    {
      name: '{*} is exactly one non-empty segment',
      policies: [allowTo({ paths: ['/users/{*}/profile'] })],
      checks: [
        ['one segment', { path: '/users/ann/profile' }, ALLOWED],
        ['a segment with = and *', { path: '/users/a=b*c/profile' }, ALLOWED],
        ['two segments', { path: '/users/a/b/profile' }, NOT_MATCHED],
        ['empty segment', { path: '/users//profile' }, NOT_MATCHED],
        ['missing segment', { path: '/users/profile' }, NOT_MATCHED],
      ],
    },
    {
      name: '{**} is the rest: zero or more segments',
      policies: [allowTo({ paths: ['/files/{**}'] })],
      checks: [
        ['deep', { path: '/files/a/b/c.txt' }, ALLOWED],
        ['one', { path: '/files/a' }, ALLOWED],
        ['zero (trailing slash)', { path: '/files/' }, ALLOWED],
        ['/files itself', { path: '/files' }, NOT_MATCHED],
        ['/filesx', { path: '/filesx/a' }, NOT_MATCHED],
      ],
    },
    {
      name: 'both, with literals',
      policies: [allowTo({ paths: ['/{*}/v1/{**}'] })],
      checks: [
        ['matches', { path: '/shop/v1/items/3' }, ALLOWED],
        ['literal differs', { path: '/shop/v2/items' }, NOT_MATCHED],
        ['literal is case-sensitive', { path: '/shop/V1/items' }, NOT_MATCHED],
      ],
    },
    {
      name: 'template characters in a literal are literal',
      policies: [allowTo({ paths: ['/a.b/{*}'] })],
      checks: [
        ['dot', { path: '/a.b/x' }, ALLOWED],
        ['any char for the dot', { path: '/axb/x' }, NOT_MATCHED],
      ],
    },
    {
      name: 'notPaths with a template',
      policies: [allowTo({ notPaths: ['/admin/{**}'] })],
      checks: [
        ['/admin/x', { path: '/admin/x' }, NOT_MATCHED],
        ['/shop', { path: '/shop' }, ALLOWED],
      ],
    },
  ]);
});

t.test('hosts: case-insensitive, ports as written, "*" is presence', async (t) => {
  run(t, [
    {
      name: 'exact',
      policies: [allowTo({ hosts: ['Web.Shop.svc.cluster.local'] })],
      checks: [
        ['same host, other case', {}, ALLOWED],
        ['upper-case request', { host: 'WEB.SHOP.SVC.CLUSTER.LOCAL' }, ALLOWED],
        ['with a port it is another string', { host: 'web.shop.svc.cluster.local:8080' }, NOT_MATCHED],
        ['no host', { host: null }, NOT_MATCHED],
      ],
    },
    {
      name: 'both forms, or a prefix, cover a port',
      policies: [allowTo({ hosts: ['web', 'web:8080', 'api.example.com*'] })],
      checks: [
        ['web', { host: 'web' }, ALLOWED],
        ['web:8080', { host: 'web:8080' }, ALLOWED],
        ['web:9090', { host: 'web:9090' }, NOT_MATCHED],
        ['api.example.com:443', { host: 'API.example.com:443' }, ALLOWED],
      ],
    },
    {
      name: 'suffix',
      policies: [allowTo({ hosts: ['*.example.com'] })],
      checks: [
        ['a.example.com', { host: 'a.EXAMPLE.com' }, ALLOWED],
        ['example.com', { host: 'example.com' }, NOT_MATCHED],
      ],
    },
    {
      name: '"*" means present',
      policies: [allowTo({ hosts: ['*'] })],
      checks: [
        ['any host', { host: 'x' }, ALLOWED],
        ['no host', { host: null }, NOT_MATCHED],
      ],
    },
    {
      name: 'notHosts',
      policies: [allowTo({ notHosts: ['admin.example.com'] })],
      checks: [
        ['other host', {}, ALLOWED],
        ['excluded, other case', { host: 'ADMIN.example.com' }, NOT_MATCHED],
        ['no host passes a negative field', { host: null }, ALLOWED],
      ],
    },
  ]);
});

t.test('ports and notPorts (the port the client addressed)', async (t) => {
  run(t, [
    {
      name: 'ports',
      policies: [allowTo({ ports: ['8080'], methods: ['GET'] })],
      checks: [
        ['8080 GET', {}, ALLOWED],
        ['9090 GET', { port: 9090 }, NOT_MATCHED],
        ['8080 POST', { method: 'POST' }, NOT_MATCHED],
      ],
    },
    {
      name: 'notPorts',
      policies: [allowTo({ notPorts: ['9090'] })],
      checks: [
        ['8080', {}, ALLOWED],
        ['9090', { port: 9090 }, NOT_MATCHED],
      ],
    },
  ]);
});

t.test('identity fields: principals, namespaces, serviceAccounts; a plaintext peer', async (t) => {
  run(t, [
    {
      name: 'principals exact, "*", prefix',
      policies: [
        allowRules('p', [
          { from: [{ source: { principals: ['cluster.local/ns/client/sa/curl'] } }] },
          { from: [{ source: { principals: ['cluster.local/ns/elsewhere/*'] } }] },
        ]),
      ],
      checks: [
        ['the principal', {}, allowedBy('p', 0)],
        ['prefix', OTHER_NS, allowedBy('p', 1)],
        ['another SA', OTHER_SA, NOT_MATCHED],
        ['plaintext', PLAIN, NOT_MATCHED],
      ],
    },
    {
      name: '"*" principal needs an identity',
      policies: [allowFrom({ principals: ['*'] })],
      checks: [
        ['mTLS', OTHER_NS, ALLOWED],
        ['plaintext fails even "*"', PLAIN, NOT_MATCHED],
      ],
    },
    {
      name: 'namespaces, suffix',
      policies: [allowFrom({ namespaces: ['*ent'] })],
      checks: [
        ['client', {}, ALLOWED],
        ['elsewhere', OTHER_NS, NOT_MATCHED],
        ['plaintext', PLAIN, NOT_MATCHED],
      ],
    },
    {
      name: 'namespaces: a * anywhere is a wildcard, as in Envoy',
      policies: [allowFrom({ namespaces: ['team-*-prod'] })],
      checks: [
        ['team-a-prod', { identity: identity('team-a-prod', 'x') }, ALLOWED],
        ['team-a-dev', { identity: identity('team-a-dev', 'x') }, NOT_MATCHED],
        ['plaintext', PLAIN, NOT_MATCHED],
      ],
    },
    {
      name: 'serviceAccounts, bare name means the policy namespace',
      policies: [allowFrom({ serviceAccounts: ['client/curl', 'local'] })],
      checks: [
        ['client/curl', {}, ALLOWED],
        ['shop/local', { identity: identity('shop', 'local') }, ALLOWED],
        ['any trust domain', { identity: identity('client', 'curl', 'other.td') }, ALLOWED],
        ['client/other', OTHER_SA, NOT_MATCHED],
        ['plaintext', PLAIN, NOT_MATCHED],
      ],
    },
    {
      name: 'negative fields: a plaintext peer passes them all',
      policies: [
        allowRules('p', [
          { from: [{ source: { notPrincipals: ['cluster.local/ns/client/sa/curl'] } }] },
          { from: [{ source: { notNamespaces: ['client'] } }] },
          { from: [{ source: { notServiceAccounts: ['client/curl'] } }] },
        ]),
      ],
      checks: [
        ['client/curl fails all three', {}, NOT_MATCHED],
        ['other SA passes notPrincipals', OTHER_SA, allowedBy('p', 0)],
        ['plaintext passes the first', PLAIN, allowedBy('p', 0)],
      ],
    },
    {
      name: 'DENY notPrincipals "*" requires mTLS',
      policies: [denyFrom({ notPrincipals: ['*'] })],
      checks: [
        ['mTLS', {}, NOT_DENIED],
        ['plaintext', PLAIN, DENIED],
      ],
    },
  ]);
});

t.test('ipBlocks (the original client address) and remoteIpBlocks', async (t) => {
  run(t, [
    {
      name: 'ipBlocks',
      policies: [allowFrom({ ipBlocks: ['10.1.0.0/16', '2001:db8::1'] })],
      checks: [
        ['inside', {}, ALLOWED],
        ['IPv4-mapped', { src: '::ffff:10.1.2.3' }, ALLOWED],
        ['IPv6 single', { src: '2001:db8::1' }, ALLOWED],
        ['outside', { src: '10.2.0.1' }, NOT_MATCHED],
        ['plaintext from inside: addresses need no identity', { ...PLAIN }, ALLOWED],
      ],
    },
    {
      name: 'notIpBlocks',
      policies: [allowFrom({ notIpBlocks: ['10.1.0.5'] })],
      checks: [
        ['excluded', {}, NOT_MATCHED],
        ['other', { src: '10.1.0.6' }, ALLOWED],
      ],
    },
    {
      name: 'remoteIpBlocks: the client address (no X-Forwarded-For trusted)',
      policies: [allowFrom({ remoteIpBlocks: ['10.1.0.0/16'] })],
      checks: [
        ['inside', {}, ALLOWED],
        ['XFF is ignored', { src: '192.168.0.1', headers: ['X-Forwarded-For', '10.1.0.5'] }, NOT_MATCHED],
      ],
    },
  ]);
});

t.test('when: request.headers', async (t) => {
  run(t, [
    {
      name: 'values: name case-insensitive, value case-sensitive',
      policies: [allowWhen({ key: 'request.headers[X-User]', values: ['alice', 'bob*'] })],
      checks: [
        ['exact', { headers: ['x-user', 'alice'] }, ALLOWED],
        ['name in another case', { headers: ['X-USER', 'alice'] }, ALLOWED],
        ['prefix', { headers: ['x-user', 'bobby'] }, ALLOWED],
        ['value case differs', { headers: ['x-user', 'Alice'] }, NOT_MATCHED],
        ['missing', {}, NOT_MATCHED],
      ],
    },
    {
      name: 'duplicates are joined with ","',
      policies: [allowWhen({ key: 'request.headers[x-tag]', values: ['a,b'] })],
      checks: [
        ['two fields', { headers: ['x-tag', 'a', 'X-Tag', 'b'] }, ALLOWED],
        ['one field', { headers: ['x-tag', 'a'] }, NOT_MATCHED],
      ],
    },
    {
      name: '"*" means present, even empty',
      policies: [allowWhen({ key: 'request.headers[x-token]', values: ['*'] })],
      checks: [
        ['present', { headers: ['x-token', 'abc'] }, ALLOWED],
        ['present and empty', { headers: ['x-token', ''] }, ALLOWED],
        ['missing fails "*"', {}, NOT_MATCHED],
      ],
    },
    {
      name: 'notValues "*" means absent',
      policies: [allowWhen({ key: 'request.headers[x-debug]', notValues: ['*'] })],
      checks: [
        ['absent', {}, ALLOWED],
        ['present', { headers: ['x-debug', '1'] }, NOT_MATCHED],
      ],
    },
    {
      name: 'a missing header passes notValues',
      policies: [allowWhen({ key: 'request.headers[x-user]', notValues: ['eve'] })],
      checks: [
        ['missing', {}, ALLOWED],
        ['eve', { headers: ['x-user', 'eve'] }, NOT_MATCHED],
        ['mallory', { headers: ['x-user', 'mallory'] }, ALLOWED],
      ],
    },
    {
      name: 'pseudo-headers read the request',
      policies: [
        allowRules('p', [
          { when: [{ key: 'request.headers[:method]', values: ['PUT'] }] },
          { when: [{ key: 'request.headers[:authority]', values: ['web:8080'] }] },
          { when: [{ key: 'request.headers[:path]', values: ['/q?x=1'] }] },
          { when: [{ key: 'request.headers[host]', values: ['h*'] }] },
        ]),
      ],
      checks: [
        [':method', { method: 'PUT' }, allowedBy('p', 0)],
        [':authority', { host: 'web:8080' }, allowedBy('p', 1)],
        [':path has the query', { path: '/q', query: '?x=1' }, allowedBy('p', 2)],
        ['host', { host: 'h1' }, allowedBy('p', 3)],
        ['none', {}, NOT_MATCHED],
      ],
    },
  ]);
});

t.test('when: connection and identity keys', async (t) => {
  run(t, [
    {
      name: 'source.ip',
      policies: [allowWhen({ key: 'source.ip', values: ['10.1.0.0/24'], notValues: ['10.1.0.9'] })],
      checks: [
        ['inside', {}, ALLOWED],
        ['carved out', { src: '10.1.0.9' }, NOT_MATCHED],
        ['outside', { src: '10.1.1.1' }, NOT_MATCHED],
      ],
    },
    {
      name: 'remote.ip is the client address',
      policies: [allowWhen({ key: 'remote.ip', values: ['10.1.0.5'] })],
      checks: [
        ['client', {}, ALLOWED],
        ['other', { src: '10.1.0.6', headers: ['x-forwarded-for', '10.1.0.5'] }, NOT_MATCHED],
      ],
    },
    {
      name: 'source.namespace',
      policies: [allowWhen({ key: 'source.namespace', values: ['client'] })],
      checks: [
        ['client', {}, ALLOWED],
        ['elsewhere', OTHER_NS, NOT_MATCHED],
        ['plaintext', PLAIN, NOT_MATCHED],
      ],
    },
    {
      name: 'source.namespace notValues: plaintext passes',
      policies: [allowWhen({ key: 'source.namespace', notValues: ['client'] })],
      checks: [
        ['client', {}, NOT_MATCHED],
        ['plaintext', PLAIN, ALLOWED],
      ],
    },
    {
      name: 'source.principal',
      policies: [allowWhen({ key: 'source.principal', values: ['cluster.local/ns/client/sa/curl'] })],
      checks: [
        ['curl', {}, ALLOWED],
        ['other', OTHER_SA, NOT_MATCHED],
      ],
    },
    {
      name: 'source.serviceAccount',
      policies: [allowWhen({ key: 'source.serviceAccount', values: ['client/curl', 'local'] })],
      checks: [
        ['client/curl', {}, ALLOWED],
        ['bare name: policy namespace', { identity: identity('shop', 'local') }, ALLOWED],
        ['other', OTHER_SA, NOT_MATCHED],
        ['plaintext', PLAIN, NOT_MATCHED],
      ],
    },
    {
      name: 'source.trustDomain',
      policies: [allowWhen({ key: 'source.trustDomain', values: ['cluster.local'] })],
      checks: [
        ['cluster.local', {}, ALLOWED],
        ['other', { identity: identity('client', 'curl', 'other.td') }, NOT_MATCHED],
        ['plaintext', PLAIN, NOT_MATCHED],
      ],
    },
    {
      name: 'destination.ip and destination.port',
      policies: [
        allowWhen(
          { key: 'destination.ip', values: ['10.96.0.0/16'] },
          { key: 'destination.port', values: ['8080', '8443'] },
        ),
      ],
      checks: [
        ['VIP:8080', {}, ALLOWED],
        ['VIP:8443', { port: 8443 }, ALLOWED],
        ['VIP:9090', { port: 9090 }, NOT_MATCHED],
        ['pod IP', { dst: '10.2.0.7' }, NOT_MATCHED],
      ],
    },
    {
      name: 'connection.sni: absent inside HBONE',
      policies: [allowWhen({ key: 'connection.sni', values: ['*'] })],
      checks: [
        ['no SNI', {}, NOT_MATCHED],
        ['with SNI', { sni: 'web.shop' }, ALLOWED],
      ],
    },
    {
      name: 'connection.sni notValues',
      policies: [allowWhen({ key: 'connection.sni', notValues: ['admin.*'] })],
      checks: [
        ['no SNI', {}, ALLOWED],
        ['admin', { sni: 'admin.shop' }, NOT_MATCHED],
      ],
    },
  ]);
});

t.test('attributes the waypoint cannot know (JWT, Envoy metadata) fail closed', async (t) => {
  const jwt = (name: string, action: 'ALLOW' | 'DENY' | 'AUDIT', rules: Manifest[]): AuthorizationPolicy =>
    waypointPolicy(name, { action, rules });
  run(t, [
    {
      name: 'ALLOW requestPrincipals "*": never allows',
      policies: [allowFrom({ requestPrincipals: ['*'] })],
      checks: [
        ['with a bearer token', { headers: ['authorization', 'Bearer x.y.z'] }, NOT_MATCHED],
        ['without', {}, NOT_MATCHED],
      ],
    },
    {
      name: 'ALLOW notRequestPrincipals: never allows either',
      policies: [allowFrom({ notRequestPrincipals: ['https://issuer/alice'] })],
      checks: [['any', {}, NOT_MATCHED]],
    },
    {
      name: 'ALLOW: an unknown alternative does not hide a known one',
      policies: [
        allowRules('p', [
          { from: [{ source: { requestPrincipals: ['*'] } }, { source: { namespaces: ['client'] } }] },
        ]),
      ],
      checks: [
        ['client: the known source matches', {}, ALLOWED],
        ['elsewhere', OTHER_NS, NOT_MATCHED],
      ],
    },
    {
      name: 'DENY notRequestPrincipals "*" (require a JWT): denies everything',
      policies: [denyFrom({ notRequestPrincipals: ['*'] })],
      checks: [
        ['without a token', {}, DENIED],
        ['with one (cannot be validated)', { headers: ['authorization', 'Bearer x.y.z'] }, DENIED],
      ],
    },
    {
      name: 'DENY requestPrincipals x, with other fields: those still narrow it',
      policies: [denyFrom({ requestPrincipals: ['https://issuer/eve'], namespaces: ['client'] })],
      checks: [
        ['client: denied (might be eve)', {}, DENIED],
        ['elsewhere: not denied', OTHER_NS, NOT_DENIED],
      ],
    },
    {
      name: 'DENY when request.auth.claims',
      policies: [denyWhen({ key: 'request.auth.claims[groups]', values: ['banned'] })],
      checks: [['any', {}, DENIED]],
    },
    {
      name: 'ALLOW when request.auth.principal / audiences / presenter',
      policies: [
        allowRules('p', [
          { when: [{ key: 'request.auth.principal', values: ['iss/sub'] }] },
          { when: [{ key: 'request.auth.audiences', notValues: ['x'] }] },
          { when: [{ key: 'request.auth.presenter', values: ['*'] }] },
        ]),
      ],
      checks: [['any', {}, NOT_MATCHED]],
    },
    {
      name: 'experimental.envoy.filters.*',
      policies: [
        jwt('d', 'DENY', [
          { when: [{ key: 'experimental.envoy.filters.network.mysql_proxy[db.table]', values: ['[x]'] }] },
        ]),
      ],
      checks: [['denied', {}, DENIED]],
    },
  ]);
  const compiled = compileWaypointPolicy([
    allowFrom({ requestPrincipals: ['*'] }),
    denyWhen({ key: 'request.auth.claims[groups]', values: ['banned'] }),
  ]);
  t.match(
    compiled.warnings,
    [
      { policy: 'shop/p', message: /spec\.rules\[0\].*requestPrincipals.*not matching/ },
      { policy: 'shop/d', message: /spec\.rules\[0\].*request\.auth\.claims\[groups\].*taken as matching/ },
    ],
    'each rule resolved by assumption is named',
  );
});

t.test('evaluation order (§3)', async (t) => {
  run(t, [
    {
      name: 'no policies: allow',
      policies: [],
      checks: [['any', {}, NOT_DENIED]],
    },
    {
      name: 'DENY over ALLOW',
      policies: [allowRules('p', [{}]), denyRules('d', [{ to: [{ operation: { methods: ['DELETE'] } }] }])],
      checks: [
        ['GET allowed', {}, ALLOWED],
        ['DELETE denied although ALLOW matches', { method: 'DELETE' }, DENIED],
      ],
    },
    {
      name: 'only DENY policies, none matches: allow',
      policies: [denyTo({ paths: ['/admin*'] })],
      checks: [
        ['/shop', { path: '/shop' }, NOT_DENIED],
        ['/admin', { path: '/admin' }, DENIED],
      ],
    },
    {
      name: 'allow-nothing (spec: {} with targetRefs) denies all',
      policies: [waypointPolicy('allow-nothing', {})],
      checks: [
        ['mTLS', {}, NOT_MATCHED],
        ['plaintext', PLAIN, NOT_MATCHED],
      ],
    },
    {
      name: 'allow-nothing plus an ALLOW: the ALLOW still admits',
      policies: [waypointPolicy('allow-nothing', {}), allowTo({ methods: ['GET'] })],
      checks: [
        ['GET', {}, ALLOWED],
        ['POST', { method: 'POST' }, NOT_MATCHED],
      ],
    },
    {
      name: 'ALLOW rules: [{}] allows everything, plaintext included',
      policies: [allowRules('p', [{}])],
      checks: [['plaintext', PLAIN, ALLOWED]],
    },
    {
      name: 'DENY rules: [{}] denies everything',
      policies: [denyRules('d', [{}]), allowRules('p', [{}])],
      checks: [['any', {}, DENIED]],
    },
    {
      name: 'the first matching rule of the first matching policy is named',
      policies: [
        denyRules('d1', [{ to: [{ operation: { paths: ['/x'] } }] }]),
        denyRules('d2', [
          { to: [{ operation: { paths: ['/y'] } }] },
          { to: [{ operation: { methods: ['POST'] } }] },
        ]),
      ],
      checks: [
        ['d2 rule 1', { method: 'POST' }, deniedBy('d2', 1)],
        ['d1 rule 0 first', { method: 'POST', path: '/x' }, deniedBy('d1', 0)],
      ],
    },
    {
      name: 'from, to and when are ANDed; lists ORed',
      policies: [
        allowRules('p', [
          {
            from: [{ source: { namespaces: ['client'] } }, { source: { ipBlocks: ['192.168.0.0/16'] } }],
            to: [{ operation: { methods: ['GET'], paths: ['/a'] } }, { operation: { methods: ['POST'] } }],
            when: [{ key: 'request.headers[x-ok]', values: ['1'] }],
          },
        ]),
      ],
      checks: [
        ['all hold', { path: '/a', headers: ['x-ok', '1'] }, ALLOWED],
        [
          'second source, second operation',
          { ...OTHER_NS, src: '192.168.1.1', method: 'POST', headers: ['x-ok', '1'] },
          ALLOWED,
        ],
        ['operation fields are ANDed', { path: '/b', headers: ['x-ok', '1'] }, NOT_MATCHED],
        ['when fails', { path: '/a' }, NOT_MATCHED],
        ['from fails', { ...OTHER_NS, path: '/a', headers: ['x-ok', '1'] }, NOT_MATCHED],
      ],
    },
  ]);
});

t.test('CUSTOM: no ext_authz, so a match denies (fail closed)', async (t) => {
  const custom = waypointPolicy('ext', {
    action: 'CUSTOM',
    provider: { name: 'opa' },
    rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }],
  });
  run(t, [
    {
      name: 'CUSTOM before ALLOW',
      policies: [custom, allowRules('p', [{}])],
      checks: [
        [
          'matching request: denied',
          { path: '/admin' },
          {
            allowed: false,
            reason: 'custom-unsupported',
            policy: 'shop/ext',
            rule: 0,
            message: /provider opa cannot be consulted/,
            responseDetails: 'ext_authz_error',
          },
        ],
        ['other request: the provider would not be asked', { path: '/shop' }, ALLOWED],
      ],
    },
    {
      name: 'CUSTOM is not an ALLOW policy',
      policies: [custom],
      checks: [['other request', { path: '/shop' }, NOT_DENIED]],
    },
  ]);
  t.match(compileWaypointPolicy([custom]).warnings, [
    { policy: 'shop/ext', message: /CUSTOM \(provider opa\) is not supported.*fail closed/ },
  ]);
});

t.test('AUDIT reports and never decides', async (t) => {
  const auditAdmin = waypointPolicy('audit-admin', {
    action: 'AUDIT',
    rules: [{ to: [{ operation: { paths: ['/x'] } }] }, { to: [{ operation: { paths: ['/admin*'] } }] }],
  });
  run(t, [
    {
      name: 'alone: no ALLOW policy, so allowed',
      policies: [auditAdmin],
      checks: [
        [
          'matching',
          { path: '/admin' },
          { ...NOT_DENIED, audit: [{ policy: 'shop/audit-admin', rule: 1, action: 'AUDIT' }] },
        ],
        ['not matching', { path: '/shop' }, { ...NOT_DENIED, audit: [] }],
      ],
    },
    {
      name: 'with a DENY: reported on the denial too',
      policies: [auditAdmin, denyTo({ methods: ['DELETE'] })],
      checks: [
        [
          'denied and audited',
          { path: '/admin', method: 'DELETE' },
          { ...DENIED, audit: [{ policy: 'shop/audit-admin', rule: 1 }] },
        ],
      ],
    },
    {
      name: 'AUDIT is not an ALLOW policy',
      policies: [auditAdmin, allowTo({ methods: ['GET'] })],
      checks: [
        ['POST to an audited path is still not allowed', { path: '/admin', method: 'POST' }, NOT_MATCHED],
      ],
    },
  ]);
});

t.test('dry-run policies are reported, never enforced', async (t) => {
  const dryDeny = denyRules('dry-deny', [{ to: [{ operation: { methods: ['DELETE'] } }] }], { dryRun: true });
  const dryAllow = allowRules('dry-allow', [{ from: [{ source: { namespaces: ['elsewhere'] } }] }], {
    dryRun: true,
  });
  const dryCustom = waypointPolicy(
    'dry-custom',
    { action: 'CUSTOM', provider: { name: 'opa' }, rules: [{}] },
    { dryRun: true },
  );
  run(t, [
    {
      name: 'dry-run DENY',
      policies: [dryDeny],
      checks: [
        [
          'matches: still allowed',
          { method: 'DELETE' },
          { ...NOT_DENIED, dryRun: [{ policy: 'shop/dry-deny', rule: 0, action: 'DENY' }] },
        ],
        ['does not match', {}, { ...NOT_DENIED, dryRun: [] }],
      ],
    },
    {
      name: 'a dry-run ALLOW is not an ALLOW policy',
      policies: [dryAllow],
      checks: [
        ['not matching: still allowed', {}, { ...NOT_DENIED, dryRun: [] }],
        [
          'matching: reported',
          OTHER_NS,
          { ...NOT_DENIED, dryRun: [{ policy: 'shop/dry-allow', action: 'ALLOW' }] },
        ],
      ],
    },
    {
      name: 'a dry-run CUSTOM denies nothing',
      policies: [dryCustom],
      checks: [
        ['reported', {}, { ...NOT_DENIED, dryRun: [{ policy: 'shop/dry-custom', action: 'CUSTOM' }] }],
      ],
    },
    {
      name: 'reported whatever the decision',
      policies: [dryDeny, dryAllow, denyFrom({ namespaces: ['elsewhere'] })],
      checks: [
        [
          'denied by the real DENY, the dry-run ALLOW listed',
          OTHER_NS,
          { ...DENIED, dryRun: [{ policy: 'shop/dry-allow', rule: 0, action: 'ALLOW' }] },
        ],
      ],
    },
  ]);
  const compiled = compileWaypointPolicy([dryDeny, dryAllow, dryCustom]);
  t.same(
    compiled.dryRun.map((p) => p.policy),
    ['shop/dry-deny', 'shop/dry-allow', 'shop/dry-custom'],
  );
  t.same([compiled.deny, compiled.allow, compiled.custom], [[], [], []], 'none is enforced');
});

t.test('invalid path values: ALLOW drops the rule, DENY ignores the value', async (t) => {
  const badAllow = allowRules('p', [
    { to: [{ operation: { paths: ['/a/{**}/b'] } }] },
    { to: [{ operation: { paths: ['/ok'] } }] },
  ]);
  const badDeny = denyRules('d', [
    { to: [{ operation: { paths: ['/x{*}', '/admin'], methods: ['POST'] } }] },
  ]);
  const onlyBadDeny = denyRules('d', [{ to: [{ operation: { paths: ['/{**}/x'] } }] }]);
  run(t, [
    {
      name: 'ALLOW',
      policies: [badAllow],
      checks: [
        ['the dropped rule allows nothing', { path: '/a/z/b' }, NOT_MATCHED],
        ['the sibling still allows', { path: '/ok' }, allowedBy('p', 1)],
      ],
    },
    {
      name: 'DENY keeps the valid values',
      policies: [badDeny],
      checks: [
        ['POST /admin', { method: 'POST', path: '/admin' }, DENIED],
        ['POST /xy', { method: 'POST', path: '/xy' }, NOT_DENIED],
      ],
    },
    {
      name: 'DENY whose only path is invalid: broader',
      policies: [onlyBadDeny],
      checks: [['any', { path: '/anything' }, DENIED]],
    },
  ]);
  t.match(compileWaypointPolicy([badAllow, badDeny]).warnings, [
    { policy: 'shop/p', message: /spec\.rules\[0\] is dropped: .*\{\*\*\} must be the last segment/ },
    {
      policy: 'shop/d',
      message: /spec\.rules\[0\] is enforced without its invalid path values: .*mixes a template/,
    },
  ]);
});

t.test('verdicts are shared objects; a denial carries what the 403 and the access log need', async (t) => {
  const compiled = compileWaypointPolicy([denyTo({ methods: ['DELETE'] }), allowFrom({ principals: ['*'] })]);
  const first = evaluateRequest(compiled, request());
  t.equal(evaluateRequest(compiled, request()), first, 'the same frozen verdict each time');
  t.ok(Object.isFrozen(first));
  const denied = evaluateRequest(compiled, request({ method: 'DELETE' }));
  t.match(denied, DENIED);
  t.equal(evaluateRequest(compileWaypointPolicy([]), request()), WAYPOINT_ALLOWED_NO_POLICIES);
  t.equal(evaluateRequest(compiled, request(PLAIN)), WAYPOINT_DENIED_NO_ALLOW_MATCHED);
  t.equal(RBAC_DENIED_STATUS, 403);
  t.equal(RBAC_DENIED_BODY, 'RBAC: access denied');
});

t.test('needs flags: per-request work only for what the policies read', async (t) => {
  t.match(compileWaypointPolicy([allowTo({ methods: ['GET'] })]), {
    needsPrincipal: false,
    needsSourceIp: false,
    needsDestinationIp: false,
    needsHost: false,
  });
  t.match(
    compileWaypointPolicy([
      allowFrom({ principals: ['*'], ipBlocks: ['10.0.0.0/8'] }),
      allowWhen({ key: 'destination.ip', values: ['10.0.0.1'] }),
      allowTo({ hosts: ['a'] }),
    ]),
    { needsPrincipal: true, needsSourceIp: true, needsDestinationIp: true, needsHost: true },
  );
});
