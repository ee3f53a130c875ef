// proxy/routing/match.ts, request.ts, hostnames.ts, rule-check.ts: the small pieces selection is built on.
import t from 'tap';
import { intersectHostnames } from '../../../proxy/routing/hostnames.js';
import {
  compileMatch,
  comparePrecedence,
  matchesRequest,
  prefixMatches,
} from '../../../proxy/routing/match.js';
import { headerValue, hostOf, queryParam } from '../../../proxy/routing/request.js';
import { regexProblem } from '../../../proxy/routing/rule-check.js';
import { request, routeRecord, serviceParent, type Manifest } from '../../helpers/routing.js';

t.test('PathPrefix compares whole segments', async (t) => {
  t.ok(prefixMatches('/abc', '/abc'));
  t.ok(prefixMatches('/abc', '/abc/'));
  t.ok(prefixMatches('/abc', '/abc/def'));
  t.notOk(prefixMatches('/abc', '/abcd'));
  t.notOk(prefixMatches('/abc', '/ABC'));
  const route = routeRecord('p', {
    parentRefs: [serviceParent('echo')],
    rules: [{ matches: [{ path: { value: '/abc/' } }, { path: { value: '/' } }] }],
  });
  const [trailing, root] = route.rules[0]?.matches ?? [];
  if (trailing === undefined || root === undefined) throw new Error('matches');
  t.ok(
    matchesRequest(compileMatch(trailing), request({ path: '/abc' })),
    'a trailing "/" in the value is ignored',
  );
  t.notOk(matchesRequest(compileMatch(trailing), request({ path: '/abcd' })));
  t.ok(matchesRequest(compileMatch(root), request({ path: '/anything/at/all' })));
});

t.test('precedence criteria in order', async (t) => {
  const match = (spec: Manifest) => {
    const route = routeRecord('r', { parentRefs: [serviceParent('echo')], rules: [{ matches: [spec] }] });
    const only = route.rules[0]?.matches[0];
    if (only === undefined) throw new Error('match');
    return { predicate: compileMatch(only), route, ruleIndex: 0, matchIndex: 0 };
  };
  const wins = (a: Manifest, b: Manifest) => comparePrecedence(match(a), match(b)) < 0;
  const prefix = (value: string) => ({ type: 'PathPrefix', value });
  t.ok(
    wins({ path: { type: 'Exact', value: '/a' } }, { path: prefix('/a/very/long/prefix'), method: 'GET' }),
  );
  t.ok(
    wins(
      { path: prefix('/ab') },
      { path: prefix('/a'), method: 'GET', headers: [{ name: 'h', value: 'v' }] },
    ),
  );
  t.ok(
    wins(
      { method: 'GET' },
      {
        headers: [
          { name: 'a', value: '1' },
          { name: 'b', value: '2' },
        ],
      },
    ),
  );
  t.ok(
    wins(
      { headers: [{ name: 'a', value: '1' }] },
      {
        queryParams: [
          { name: 'a', value: '1' },
          { name: 'b', value: '2' },
        ],
      },
    ),
  );
  t.ok(wins({ queryParams: [{ name: 'a', value: '1' }] }, {}));
  t.ok(
    wins({ path: prefix('/') }, { path: { type: 'RegularExpression', value: '/.*' } }),
    'regex after every prefix',
  );
});

t.test('request accessors: repeated headers, first query value, Host without port', async (t) => {
  t.equal(headerValue({ a: ['1', '2'] }, 'a'), '1, 2');
  t.equal(headerValue({ cookie: ['a=1', 'b=2'] }, 'cookie'), 'a=1; b=2');
  t.equal(headerValue({ a: [] }, 'a'), undefined);
  t.equal(queryParam('a=1&b=2&a=3', 'a'), '1');
  t.equal(queryParam('?b=2', 'b'), '2');
  t.equal(queryParam('flag&x=1', 'flag'), '');
  t.equal(queryParam('ab=1', 'a'), undefined);
  t.equal(queryParam('a=%zz', 'a'), '%zz', 'a bad escape is matched as written');
  t.equal(queryParam('', 'a'), undefined);
  t.equal(hostOf('Echo.Mesh:8080'), 'echo.mesh');
  t.equal(hostOf('example.com.'), 'example.com');
  t.equal(hostOf('[fd00::1]:80'), '[fd00::1]');
});

t.test('hostname intersection of listener and route (§4)', async (t) => {
  t.same(intersectHostnames(undefined, []), ['*']);
  t.same(intersectHostnames('a.x.com', []), ['a.x.com']);
  t.same(intersectHostnames(undefined, ['A.x.com']), ['a.x.com']);
  t.same(intersectHostnames('*.x.com', ['a.x.com', 'a.b.x.com', '*.x.com', 'x.com', 'a.y.com']), [
    'a.x.com',
    'a.b.x.com',
    '*.x.com',
  ]);
  t.same(intersectHostnames('a.x.com', ['*.x.com']), ['a.x.com']);
  t.same(intersectHostnames('a.x.com', ['b.x.com']), []);
});

t.test('regexes stay within RE2: no lookaround, no backreferences', async (t) => {
  t.equal(regexProblem('/api/v[0-9]+(/.*)?'), undefined);
  t.equal(regexProblem('/(?<name>x)'), undefined, 'named groups are RE2 too');
  t.equal(regexProblem('[\\1(?=]'), undefined, 'inside a class nothing is special');
  t.equal(regexProblem('\\(?=x'), undefined, 'an escaped parenthesis');
  t.match(regexProblem('/(?=a)'), /lookahead/);
  t.match(regexProblem('/(?<!a)b'), /lookahead and lookbehind/);
  t.match(regexProblem('(a)\\1'), /backreferences/);
  t.match(regexProblem('(?<n>a)\\k<n>'), /named backreferences/);
});
