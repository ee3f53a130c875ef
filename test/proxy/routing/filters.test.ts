// proxy/routing/filters.ts, headers.ts, cors.ts: header modifiers, redirects, rewrites, mirrors, CORS,
// timeouts and retries (gateway-api.md §6, §7, §8).
import t from 'tap';
import { parseCors } from '../../../core/convert/cors.js';
import { parseRouteRetry } from '../../../core/convert/retry.js';
import type { HttpRoute } from '../../../core/model/index.js';
import { compileRoutingTable } from '../../../proxy/routing/compile.js';
import {
  compileFilterChain,
  newEditRecorder,
  replacePrefix,
  rulePolicy,
  runFilterChain,
  type FilterRequest,
} from '../../../proxy/routing/filters.js';
import { applyHeaderEdits } from '../../../proxy/routing/headers.js';
import { planRequest, type RequestPlan } from '../../../proxy/routing/plan.js';
import { seededRandom } from '../../../proxy/routing/random.js';
import {
  backend,
  httpRoute,
  meshWorld,
  request,
  routeRecord,
  serviceParent,
  storeOf,
  WAYPOINT,
  type Manifest,
  type RequestOptions,
} from '../../helpers/routing.js';

/** A table with one route on echo whose rules are given. */
function tableOf(rules: Manifest[]) {
  return compileRoutingTable(
    storeOf([...meshWorld(), httpRoute('filters', { parentRefs: [serviceParent('echo')], rules })]),
    WAYPOINT,
  );
}

function plan(rules: Manifest[], options: RequestOptions = {}): RequestPlan {
  return planRequest(tableOf(rules), request(options));
}

function forwarded(p: RequestPlan) {
  if (p.kind !== 'forward') throw new Error(`expected forward, got ${JSON.stringify(p)}`);
  return p;
}

function location(p: RequestPlan): [number, string | undefined] {
  if (p.kind !== 'respond') throw new Error(`expected a response, got ${p.kind}`);
  const header = p.headers.find((edit) => edit.name === 'location');
  return [p.status, header !== undefined && header.op !== 'remove' ? header.value : undefined];
}

t.test(
  'RequestHeaderModifier: set replaces, add appends with ",", remove deletes; names case-insensitive',
  async (t) => {
    const p = forwarded(
      plan([
        {
          filters: [
            {
              type: 'RequestHeaderModifier',
              requestHeaderModifier: {
                set: [{ name: 'X-Header-Set', value: 'set-overwrites-values' }],
                add: [
                  { name: 'X-Header-Add', value: 'add-appends-values' },
                  { name: 'X-Header-Add-New', value: 'created' },
                ],
                remove: ['X-Header-Remove'],
              },
            },
          ],
          backendRefs: [backend('echo-v1')],
        },
      ]),
    );
    const sent = applyHeaderEdits(
      {
        host: 'echo',
        'x-header-set': 'some-other-value',
        'x-header-add': ['one', 'two'],
        'x-header-remove': 'gone',
        'x-untouched': 'kept',
      },
      p.edits.requestHeaders,
    );
    t.same(sent, {
      host: 'echo',
      'x-header-set': 'set-overwrites-values',
      'x-header-add': 'one,two,add-appends-values',
      'x-header-add-new': 'created',
      'x-untouched': 'kept',
    });
  },
);

t.test('ResponseHeaderModifier edits the response; Set-Cookie gains a line instead of a join', async (t) => {
  const p = forwarded(
    plan([
      {
        filters: [
          { type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-req', value: 'r' }] } },
          {
            type: 'ResponseHeaderModifier',
            responseHeaderModifier: {
              set: [{ name: 'X-Header-Set', value: 'set' }],
              add: [
                { name: 'X-Header-Add', value: 'added' },
                { name: 'Set-Cookie', value: 'b=2' },
              ],
              remove: ['X-Header-Remove'],
            },
          },
        ],
        backendRefs: [backend('echo-v1')],
      },
    ]),
  );
  t.same(
    p.edits.requestHeaders,
    [{ op: 'set', name: 'x-req', value: 'r' }],
    'independent of the request modifier',
  );
  t.same(
    applyHeaderEdits(
      { 'x-header-set': 'orig', 'x-header-add': 'orig', 'x-header-remove': 'x', 'set-cookie': ['a=1'] },
      p.edits.responseHeaders,
    ),
    { 'x-header-set': 'set', 'x-header-add': 'orig,added', 'set-cookie': ['a=1', 'b=2'] },
  );
});

t.test('RequestRedirect: scheme, host, port and status rules of the mesh conformance tests', async (t) => {
  const redirect = (requestRedirect: Manifest, path = '/') => ({
    matches: [{ path: { type: 'PathPrefix', value: path } }],
    filters: [{ type: 'RequestRedirect', requestRedirect }],
  });
  const table = tableOf([
    redirect({ scheme: 'https' }, '/scheme'),
    redirect({ port: 8083 }, '/port'),
    redirect({ hostname: 'example.org' }, '/hostname'),
    redirect({ hostname: 'example.org', statusCode: 301 }, '/host-and-status'),
    redirect({ scheme: 'https', hostname: 'example.org', port: 8443, statusCode: 308 }, '/all'),
    redirect({ scheme: 'https', port: 443 }, '/https-443'),
    redirect({ scheme: 'http', port: 80, statusCode: 303 }, '/http-80'),
    redirect(
      { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/replacement-prefix' }, statusCode: 307 },
      '/original-prefix',
    ),
    redirect({ path: { type: 'ReplaceFullPath', replaceFullPath: '/full-path-replacement' } }, '/full'),
  ]);
  const at = (path: string, options: RequestOptions = {}) =>
    location(planRequest(table, request({ path, ...options })));
  t.same(at('/scheme'), [302, 'https://echo/scheme']);
  t.same(at('/port'), [302, 'http://echo:8083/port']);
  t.same(at('/hostname/x'), [302, 'http://example.org/hostname/x']);
  t.same(at('/host-and-status'), [301, 'http://example.org/host-and-status']);
  t.same(at('/all'), [308, 'https://example.org:8443/all']);
  t.same(at('/https-443'), [302, 'https://echo/https-443'], 'default port for the scheme is left out');
  t.same(at('/http-80'), [303, 'http://echo/http-80']);
  t.same(at('/original-prefix/lemon'), [307, 'http://echo/replacement-prefix/lemon']);
  t.same(at('/original-prefix'), [307, 'http://echo/replacement-prefix']);
  t.same(at('/full/one/two'), [302, 'http://echo/full-path-replacement']);
  // Neither scheme nor port: the port the request arrived on (the "listener port").
  t.same(at('/hostname', { port: 8080 }), [302, 'http://example.org:8080/hostname']);
  t.same(at('/port', { headers: { host: 'echo:80' } }), [302, 'http://echo:8083/port'], 'Host port ignored');
  t.same(at('/scheme', { query: 'a=1&b=2' }), [302, 'https://echo/scheme?a=1&b=2'], 'query kept');
});

t.test('ReplacePrefixMatch on segment boundaries (§6.4 table)', async (t) => {
  const cases: [string, string, string, string][] = [
    ['/foo', '/xyz', '/foo/bar', '/xyz/bar'],
    ['/foo', '/xyz', '/foo', '/xyz'],
    ['/foo', '/xyz', '/foo/', '/xyz/'],
    ['/foo', '/xyz/', '/foo/bar', '/xyz/bar'],
    ['/foo/', '/xyz', '/foo/bar', '/xyz/bar'],
    ['/foo/', '/xyz/', '/foo/bar', '/xyz/bar'],
    ['/foo', '/', '/foo/bar', '/bar'],
    ['/foo', '', '/foo/bar', '/bar'],
    ['/foo', '/', '/foo', '/'],
    ['/foo', '/', '/foo/', '/'],
    ['/foo', '', '/foo', '/'],
    ['/', '/xyz', '/bar', '/xyz/bar'],
  ];
  for (const [prefix, replacement, path, expected] of cases) {
    t.equal(replacePrefix(prefix, replacement, path), expected, `${prefix} -> "${replacement}": ${path}`);
  }
});

t.test('URLRewrite: path prefix, strip to "/", full path and hostname, with header changes', async (t) => {
  const rewrite = (path: string, urlRewrite: Manifest, extra: Manifest[] = []) => ({
    matches: [{ path: { type: 'PathPrefix', value: path } }],
    filters: [{ type: 'URLRewrite', urlRewrite }, ...extra],
    backendRefs: [backend('echo-v1')],
  });
  const table = tableOf([
    rewrite('/prefix/one', { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/one' } }),
    rewrite('/strip-prefix', { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' } }),
    rewrite('/full/one', { path: { type: 'ReplaceFullPath', replaceFullPath: '/one' } }),
    rewrite('/host', { hostname: 'one.example.org' }, [
      {
        type: 'RequestHeaderModifier',
        requestHeaderModifier: { add: [{ name: 'X-Header-Add', value: 'v' }] },
      },
    ]),
  ]);
  const sent = (path: string) => forwarded(planRequest(table, request({ path }))).edits;
  t.equal(sent('/prefix/one/two').path, '/one/two');
  t.equal(sent('/prefix/one').path, '/one');
  t.equal(sent('/strip-prefix/three').path, '/three');
  t.equal(sent('/strip-prefix').path, '/');
  t.equal(sent('/full/one/two').path, '/one');
  t.same(sent('/prefix/one').requestHeaders, [], 'the Host is forwarded unchanged');
  const host = sent('/host/x');
  t.equal(host.path, undefined);
  t.same(host.requestHeaders, [
    { op: 'set', name: 'host', value: 'one.example.org' },
    { op: 'add', name: 'x-header-add', value: 'v' },
  ]);
  t.same(applyHeaderEdits({ host: 'echo' }, host.requestHeaders), {
    host: 'one.example.org',
    'x-header-add': 'v',
  });
});

t.test(
  'RequestMirror: every request by default; percent and fraction sampled with the injected random',
  async (t) => {
    const mirror = (extra: Manifest) => ({
      type: 'RequestMirror',
      requestMirror: { backendRef: backend('echo-v2'), ...extra },
    });
    const table = tableOf([
      { matches: [{ path: { value: '/all' } }], filters: [mirror({})], backendRefs: [backend('echo-v1')] },
      {
        matches: [{ path: { value: '/twenty' } }],
        filters: [mirror({ percent: 20 })],
        backendRefs: [backend('echo-v1')],
      },
      {
        matches: [{ path: { value: '/fraction' } }],
        filters: [mirror({ fraction: { numerator: 25, denominator: 50 } }), mirror({ percent: 0 })],
        backendRefs: [backend('echo-v1')],
      },
    ]);
    const random = seededRandom(3171);
    const share = (path: string, draws: number) => {
      let mirrored = 0;
      for (let i = 0; i < draws; i += 1) {
        const { edits } = forwarded(planRequest(table, request({ path }), { random }));
        mirrored += edits.mirrors.length;
        if (edits.mirrors.length > 0 && edits.mirrors[0]?.backend.service.name !== 'echo-v2')
          t.fail('wrong mirror');
      }
      return mirrored / draws;
    };
    t.equal(share('/all', 200), 1);
    const twenty = share('/twenty', 10_000);
    t.ok(Math.abs(twenty - 0.2) < 0.015, `20% mirrored: ${twenty}`);
    const half = share('/fraction', 10_000);
    t.ok(Math.abs(half - 0.5) < 0.02, `25/50 mirrored (and percent 0 never): ${half}`);
  },
);

function corsChain(cors: Manifest) {
  const parsed = parseCors(cors);
  if (!parsed.ok) throw new Error(`${parsed.field} ${parsed.reason}`);
  return compileFilterChain([{ type: 'CORS', cors: parsed.policy }], {
    matchedPrefix: undefined,
    resolveMirror: () => {
      throw new Error('no mirrors here');
    },
    field: 'filters',
  });
}

function corsRequest(method: string, headers: Record<string, string>): FilterRequest {
  return { scheme: 'http', method, authority: 'echo', path: '/', query: '', headers, port: 80 };
}

function runCors(cors: Manifest, method: string, headers: Record<string, string>) {
  const edits = newEditRecorder();
  const local = runFilterChain(corsChain(cors), corsRequest(method, headers), edits, Math.random);
  const asObject = (list: readonly { name: string; op: string; value?: string }[]) =>
    Object.fromEntries(list.map((edit) => [edit.name, edit.value]));
  return local === undefined
    ? { forwarded: true, response: asObject(edits.responseHeaders) }
    : { status: local.status, headers: asObject(local.headers) };
}

t.test(
  'CORS: preflight answers, origin matching (exact, wildcard, default ports), credentials',
  async (t) => {
    const cors = {
      allowOrigins: ['https://www.foo.com', 'https://*.bar.com', 'http://local:8080'],
      allowMethods: ['GET', 'OPTIONS'],
      allowHeaders: ['x-header-1', 'x-header-2'],
      exposeHeaders: ['x-header-3'],
      maxAge: 3600,
      allowCredentials: true,
    };
    const preflight = (origin: string) =>
      runCors(cors, 'OPTIONS', { origin, 'access-control-request-method': 'GET' });
    t.same(preflight('https://www.foo.com'), {
      status: 200,
      headers: {
        'access-control-allow-origin': 'https://www.foo.com',
        'access-control-allow-credentials': 'true',
        'access-control-allow-methods': 'GET, OPTIONS',
        'access-control-allow-headers': 'x-header-1, x-header-2',
        'access-control-max-age': '3600',
      },
    });
    t.equal(preflight('https://www.foo.com:443').status, 200);
    t.equal(preflight('https://a.b.bar.com').headers?.['access-control-allow-origin'], 'https://a.b.bar.com');
    t.equal(
      preflight('https://bar.com').headers?.['access-control-allow-origin'],
      undefined,
      'needs a label',
    );
    t.equal(preflight('http://local:8080').headers?.['access-control-allow-origin'], 'http://local:8080');
    t.same(preflight('http://local'), { status: 200, headers: {} }, 'port 80 is not 8080: no CORS headers');
    t.same(preflight('https://evil.com'), { status: 200, headers: {} });
    t.same(runCors(cors, 'GET', { origin: 'https://www.foo.com' }), {
      forwarded: true,
      response: {
        'access-control-allow-origin': 'https://www.foo.com',
        'access-control-allow-credentials': 'true',
        'access-control-expose-headers': 'x-header-3',
      },
    });
    t.same(runCors(cors, 'GET', { origin: 'https://evil.com' }), { forwarded: true, response: {} });
    t.same(runCors(cors, 'OPTIONS', {}), { forwarded: true, response: {} }, 'no Origin: not CORS');
  },
);

t.test('CORS wildcards: "*" without credentials, echoed values with credentials', async (t) => {
  const wild = { allowOrigins: ['*'], allowMethods: ['*'], allowHeaders: ['*'] };
  const ask = {
    origin: 'https://x.example',
    'access-control-request-method': 'PUT',
    'access-control-request-headers': 'x-a, x-b',
  };
  t.same(runCors(wild, 'OPTIONS', ask).headers, {
    'access-control-allow-origin': '*',
    'access-control-allow-methods': '*',
    'access-control-allow-headers': '*',
    'access-control-max-age': '5',
  });
  t.same(runCors({ ...wild, allowCredentials: true }, 'OPTIONS', ask).headers, {
    'access-control-allow-origin': 'https://x.example',
    'access-control-allow-credentials': 'true',
    'access-control-allow-methods': 'PUT',
    'access-control-allow-headers': 'x-a, x-b',
    'access-control-max-age': '5',
  });
  const noHeaders = { origin: 'https://x.example', 'access-control-request-method': 'PUT' };
  t.notOk(
    'access-control-allow-headers' in
      (runCors({ ...wild, allowCredentials: true }, 'OPTIONS', noHeaders).headers ?? {}),
    'credentials and no Access-Control-Request-Headers: header omitted',
  );
  t.match(parseCors({ allowOrigins: ['*', 'https://a.com'] }), { ok: false, field: 'cors.allowOrigins' });
  t.match(parseCors({ exposeHeaders: ['*'], allowCredentials: true }), {
    ok: false,
    field: 'cors.exposeHeaders',
  });
  t.match(parseCors({ allowOrigins: ['ftp://a.com'] }), { ok: false, field: 'cors.allowOrigins[0]' });
  t.match(parseCors({ allowMethods: ['FETCH'] }), { ok: false, field: 'cors.allowMethods[0]' });
});

t.test('rule policy: timeouts ("0s" disables) and retries (defaults filled)', async (t) => {
  const route: HttpRoute = routeRecord('timeouts', {
    parentRefs: [serviceParent('echo')],
    rules: [
      { timeouts: { request: '10s', backendRequest: '2s500ms' }, backendRefs: [backend('echo')] },
      { timeouts: { request: '0s' }, backendRefs: [backend('echo')] },
      { backendRefs: [backend('echo')] },
    ],
  });
  const [withTimeouts, disabled, plain] = route.rules;
  if (withTimeouts === undefined || disabled === undefined || plain === undefined) throw new Error('rules');
  t.same(rulePolicy(withTimeouts), {
    requestTimeoutMs: 10_000,
    backendRequestTimeoutMs: 2_500,
    retry: undefined,
  });
  t.same(rulePolicy(disabled), {
    requestTimeoutMs: undefined,
    backendRequestTimeoutMs: undefined,
    retry: undefined,
  });
  t.same(rulePolicy(plain), {
    requestTimeoutMs: undefined,
    backendRequestTimeoutMs: undefined,
    retry: undefined,
  });
  const retry = parseRouteRetry({ codes: [500, 502, 500], attempts: 3, backoff: '100ms' });
  if (!retry.ok) throw new Error(retry.reason);
  const policy = rulePolicy({ ...withTimeouts, retry: retry.retry });
  t.same([...(policy.retry?.codes ?? [])], [500, 502]);
  t.equal(policy.retry?.attempts, 3, 'attempts are retries after the first try');
  t.equal(policy.retry?.backoffMs, 100);
  const defaults = parseRouteRetry({ codes: [503] });
  if (!defaults.ok) throw new Error(defaults.reason);
  t.match(rulePolicy({ ...plain, retry: defaults.retry }).retry, {
    attempts: 2,
    backoffMs: 25,
    onConnectionError: true,
  });
  t.match(parseRouteRetry({ codes: [302] }), { ok: false, field: 'retry.codes[0]' });
  t.match(parseRouteRetry({ backoff: '1.5s' }), { ok: false, field: 'retry.backoff' });
  // The compiled rule carries the policy for the runtime.
  const table = tableOf([{ timeouts: { request: '1s' }, backendRefs: [backend('echo-v1')] }]);
  t.equal(forwarded(planRequest(table, request())).policy.requestTimeoutMs, 1000);
});
