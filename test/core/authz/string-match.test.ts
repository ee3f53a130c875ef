// core/authz/string-match.ts: Istio's four pattern forms, and `*` elsewhere as a literal.
import t from 'tap';
import { compileStringMatch, stringMatches } from '../../../core/authz/string-match.js';

t.test('compiles and matches', async (t) => {
  const cases: [pattern: string, value: string, matches: boolean][] = [
    ['*', 'anything', true],
    ['*', '', false],
    ['prod', 'prod', true],
    ['prod', 'Prod', false],
    ['prod', 'prod-eu', false],
    ['prod*', 'prod-eu', true],
    ['prod*', 'prod', true],
    ['prod*', 'pro', false],
    ['*-eu', 'prod-eu', true],
    ['*-eu', '-eu', true],
    ['*-eu', 'prod-us', false],
    ['pr*d', 'prod', false],
    ['pr*d', 'pr*d', true],
    ['*a*', 'xa*', true],
    ['*a*', 'xab', false],
    ['**', '*', true],
    ['**', 'x', false],
  ];
  for (const [pattern, value, matches] of cases) {
    t.equal(
      stringMatches(compileStringMatch(pattern), value),
      matches,
      `${pattern} ~ ${JSON.stringify(value)}`,
    );
  }
});

t.test('kinds', async (t) => {
  t.same(
    ['*', 'a*', '*a', 'a', 'a*b'].map((pattern) => compileStringMatch(pattern)),
    [
      { kind: 'presence', value: '' },
      { kind: 'prefix', value: 'a' },
      { kind: 'suffix', value: 'a' },
      { kind: 'exact', value: 'a' },
      { kind: 'exact', value: 'a*b' },
    ],
  );
});
