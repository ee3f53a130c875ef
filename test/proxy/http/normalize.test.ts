// proxy/http/normalize.ts: Istio's BASE normalization plus MERGE_SLASHES, and the paths the waypoint
// refuses with 400 instead of rewriting (istio.io "Authorization Policy Normalization", authz.md §6).
import t from 'tap';
import { normalizeRequestTarget, type PathNormalization } from '../../../proxy/http/normalize.js';

type Expected = readonly [path: string, query?: string];

function expectPath(t: Tap, input: string, [path, query = '']: Expected, merge = true): void {
  const result = normalizeRequestTarget(input, { mergeSlashes: merge });
  t.same(
    result.ok ? { path: result.path, query: result.query, target: result.target } : result,
    { path, query, target: path + query },
    `${JSON.stringify(input)} -> ${JSON.stringify(path + query)}`,
  );
}

function expectRefused(t: Tap, input: string, reason: RegExp): void {
  const result: PathNormalization = normalizeRequestTarget(input);
  t.match(result, { ok: false, status: 400, reason }, `${JSON.stringify(input)} refused`);
}

interface Tap {
  same(found: unknown, wanted: unknown, message: string): boolean;
  match(found: unknown, pattern: unknown, message: string): boolean;
}

t.test('dot segments (RFC 3986 remove_dot_segments)', async (t) => {
  const cases: [string, Expected][] = [
    ['/a/../b', ['/b']],
    ['/a/./b', ['/a/b']],
    ['/a/b/..', ['/a/']],
    ['/a/b/.', ['/a/b/']],
    ['/a/..', ['/']],
    ['/.', ['/']],
    ['/a/b/../../c', ['/c']],
    ['/a/.b/..c/...', ['/a/.b/..c/...']],
    ['/a/%2e%2e/x', ['/x']],
    ['/a/%2e%2e/b', ['/b']],
    ['/a/%2E%2e/b', ['/b']],
    ['/a/.%2e/b', ['/b']],
    ['/a/%2e/b', ['/a/b']],
    ['/a/..?x=/../y', ['/', '?x=/../y']],
  ];
  for (const [input, expected] of cases) expectPath(t, input, expected);
});

t.test('percent-decoding: unreserved only, once; other escapes upper-cased', async (t) => {
  const cases: [string, Expected][] = [
    ['/%61%62%63', ['/abc']],
    ['/%41%5a%30%39%2d%2e%5f%7e', ['/AZ09-._~']],
    ['/a%3fb', ['/a%3Fb']],
    ['/a%3Fb', ['/a%3Fb']],
    ['/a%25b', ['/a%25b']],
    ['/%252e%252e/x', ['/%252e%252e/x']],
    ['/caf%c3%a9', ['/caf%C3%A9']],
    ['/a%20b', ['/a%20b']],
    ['/a%2Cb', ['/a%2Cb']],
  ];
  for (const [input, expected] of cases) expectPath(t, input, expected);
});

t.test('non-ASCII and characters RFC 3986 does not allow in a path are encoded', async (t) => {
  // A request-target is bytes; Node gives one character per byte (latin1). UTF-8 "é" is C3 A9.
  const utf8 = Buffer.from('/café/ü', 'utf8').toString('latin1');
  expectPath(t, utf8, ['/caf%C3%A9/%C3%BC']);
  expectPath(t, '/a{b}|c^d`e"f<g>[h]', ['/a%7Bb%7D%7Cc%5Ed%60e%22f%3Cg%3E%5Bh%5D']);
  expectPath(t, "/a!$&'()*+,;=:@b", ["/a!$&'()*+,;=:@b"]);
  expectRefused(t, '/caf\u00e9\u20ac', /Latin-1/);
});

t.test('slashes: merged by default (MERGE_SLASHES), kept with mergeSlashes: false (BASE)', async (t) => {
  expectPath(t, '//a', ['/a']);
  expectPath(t, '/a//b///c/', ['/a/b/c/']);
  expectPath(t, '/a//../b', ['/a/b']);
  expectPath(t, '//a', ['//a'], false);
  expectPath(t, '/a//b', ['/a//b'], false);
  expectPath(t, '/a//../b', ['/a/b'], false);
  expectPath(t, '/a/b?c//d', ['/a/b', '?c//d']);
});

t.test('the query is kept byte for byte', async (t) => {
  expectPath(t, '/a?', ['/a', '?']);
  expectPath(t, '/a/./b?x=%2F&y=../z&%00', ['/a/b', '?x=%2F&y=../z&%00']);
  expectPath(t, '/?q=caf%C3%A9', ['/', '?q=caf%C3%A9']);
});

t.test('refused with 400', async (t) => {
  const cases: [string, RegExp][] = [
    ['/a%2Fb', /encoded "\/"/],
    ['/a%2fb', /encoded "\/"/],
    ['/a%5Cb', /encoded "\/" or "\\"/],
    ['/a%5cb', /encoded/],
    ['/a%00b', /NUL/],
    ['/a\\b', /backslash/],
    ['/\\..\\x', /backslash/],
    ['/..', /above the root/],
    ['/../a', /above the root/],
    ['/a/../../b', /above the root/],
    ['/%2e%2e/a', /above the root/],
    ['/a/%2E%2E/%2e%2e/etc/passwd', /above the root/],
    ['/a%', /malformed/],
    ['/a%4', /malformed/],
    ['/a%zz', /malformed/],
    ['/a%%41', /malformed/],
    ['/a#frag', /fragment/],
    ['/a?b#frag', /fragment/],
    ['/a b', /control character or space/],
    ['/a\tb', /control/],
    ['/a\u007fb', /control/],
    ['a/b', /starting with "\/"/],
    ['*', /starting with "\/"/],
    ['http://example.com/a', /starting with "\/"/],
    ['', /starting with "\/"/],
  ];
  for (const [input, reason] of cases) expectRefused(t, input, reason);
});

t.test('unchanged targets are returned as they are', async (t) => {
  const result = normalizeRequestTarget('/api/v1/items?id=3');
  t.match(result, { ok: true, changed: false, target: '/api/v1/items?id=3' });
  const changed = normalizeRequestTarget('/api/./v1');
  t.match(changed, { ok: true, changed: true, target: '/api/v1' });
  t.ok(Object.isFrozen(result) && Object.isFrozen(changed), 'results are frozen');
});
