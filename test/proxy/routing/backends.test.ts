// proxy/routing/backends.ts (and plan.ts around it): weighted choice, invalid and unready shares,
// per-backend filters (gateway-api.md §5, §9).
import t from 'tap';
import { chooseBackend, type BackendChoice, type BackendSet } from '../../../proxy/routing/backends.js';
import { compileRoutingTable } from '../../../proxy/routing/compile.js';
import { planRequest } from '../../../proxy/routing/plan.js';
import { seededRandom, type RandomSource } from '../../../proxy/routing/random.js';
import { selectRoute } from '../../../proxy/routing/select.js';
import {
  backend,
  httpRoute,
  meshWorld,
  request,
  serviceParent,
  storeOf,
  WAYPOINT,
  type Manifest,
} from '../../helpers/routing.js';

function backendsOf(...backendRefs: Manifest[]): BackendSet {
  const store = storeOf([
    ...meshWorld(),
    httpRoute('split', { parentRefs: [serviceParent('echo')], rules: [{ backendRefs }] }),
  ]);
  const selection = selectRoute(compileRoutingTable(store, WAYPOINT), request());
  if (selection.kind !== 'matched') throw new Error(`expected a match, got ${selection.kind}`);
  return selection.rule.backends;
}

function label(choice: BackendChoice): string {
  return choice.kind === 'forward' ? choice.backend.service.name : `${choice.status} ${choice.code}`;
}

function tally(set: BackendSet, draws: number, random: RandomSource): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < draws; i += 1) {
    const key = label(chooseBackend(set, random));
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

/** Evenly spaced points across [0, 1): the exact shares, with no sampling noise. */
function stratified(draws: number): RandomSource {
  let i = 0;
  return () => ((i++ % draws) + 0.5) / draws;
}

t.test('HTTPRouteWeight 70/30/0: proportional shares; weight 0 never chosen', async (t) => {
  const set = backendsOf(
    backend('echo-v1', { weight: 70 }),
    backend('echo-v2', { weight: 30 }),
    backend('echo', { weight: 0 }),
  );
  t.same(Object.fromEntries(tally(set, 1000, stratified(1000))), { 'echo-v1': 700, 'echo-v2': 300 });
  const sampled = tally(set, 20_000, seededRandom(1294));
  t.equal(sampled.get('echo') ?? 0, 0, 'the zero-weight backend gets nothing');
  const v1 = (sampled.get('echo-v1') ?? 0) / 20_000;
  t.ok(Math.abs(v1 - 0.7) < 0.02, `echo-v1 share ${v1.toFixed(3)} within 2% of 0.7`);
});

t.test('the chosen backend carries its endpoints (ready, serving the port)', async (t) => {
  const choice = chooseBackend(backendsOf(backend('echo-v2')));
  t.equal(choice.kind, 'forward');
  if (choice.kind !== 'forward') return;
  t.same(
    choice.backend.endpoints.map((endpoint) => [endpoint.address, endpoint.targetPorts[80]]),
    [['10.1.0.12', 8080]],
  );
});

t.test('an invalid backend keeps its share, which answers 500', async (t) => {
  const set = backendsOf(backend('echo-v1'), backend('missing'));
  t.same(Object.fromEntries(tally(set, 1000, stratified(1000))), {
    'echo-v1': 500,
    '500 invalid-backend': 500,
  });
  t.match(set.problems, [
    { reason: 'BackendNotFound', message: /backendRefs\[1\]: Service mesh\/missing not found/ },
  ]);
  const allInvalid = backendsOf(backend('missing'), { group: 'example.com', kind: 'Bucket', name: 'b' });
  t.same(Object.fromEntries(tally(allInvalid, 100, stratified(100))), { '500 invalid-backend': 100 });
  t.same(
    allInvalid.problems.map((problem) => problem.reason),
    ['BackendNotFound', 'InvalidKind'],
  );
  const noPort = backendsOf(backend('echo-v1', { port: 9999 }));
  t.equal(label(chooseBackend(noPort)), '500 invalid-backend', 'a port the Service does not have');
});

t.test('a Service with no ready endpoints: its share answers 503', async (t) => {
  const set = backendsOf(backend('echo-v1'), backend('empty'));
  t.same(Object.fromEntries(tally(set, 1000, stratified(1000))), {
    'echo-v1': 500,
    '503 no-ready-endpoints': 500,
  });
  t.same(set.problems, [], 'not a reference problem: ResolvedRefs stays True');
});

t.test('every weight 0, or no backendRefs at all: 500', async (t) => {
  const zero = backendsOf(backend('echo-v1', { weight: 0 }), backend('echo-v2', { weight: 0 }));
  t.equal(label(chooseBackend(zero)), '500 no-backend');
  t.equal(label(chooseBackend(backendsOf())), '500 no-backend');
});

t.test('backend-level filters run only for the backend chosen', async (t) => {
  const tag = (name: string) => ({
    type: 'RequestHeaderModifier',
    requestHeaderModifier: { set: [{ name: 'Backend', value: name }] },
  });
  const store = storeOf([
    ...meshWorld(),
    httpRoute('tagged', {
      parentRefs: [serviceParent('echo')],
      rules: [
        {
          filters: [
            {
              type: 'RequestHeaderModifier',
              requestHeaderModifier: { add: [{ name: 'x-rule', value: 'yes' }] },
            },
          ],
          backendRefs: [
            backend('echo-v1', { filters: [tag('echo-v1')] }),
            backend('echo-v2', { filters: [tag('echo-v2')] }),
          ],
        },
      ],
    }),
  ]);
  const table = compileRoutingTable(store, WAYPOINT);
  const random = seededRandom(7);
  for (let i = 0; i < 50; i += 1) {
    const plan = planRequest(table, request(), { random });
    if (plan.kind !== 'forward') {
      t.fail(`expected forward, got ${plan.kind}`);
      return;
    }
    t.same(
      plan.edits.requestHeaders,
      [
        { op: 'add', name: 'x-rule', value: 'yes' },
        { op: 'set', name: 'backend', value: plan.backend.backend.service.name },
      ],
      `request ${i}`,
    );
  }
});

t.test('plan: errors become local responses with the rule that produced them', async (t) => {
  const store = storeOf([
    ...meshWorld(),
    httpRoute('errors', {
      parentRefs: [serviceParent('echo')],
      rules: [
        { matches: [{ path: { value: '/missing' } }], backendRefs: [backend('missing')] },
        { matches: [{ path: { value: '/empty' } }], backendRefs: [backend('empty')] },
        { matches: [{ path: { value: '/none' } }] },
      ],
    }),
  ]);
  const table = compileRoutingTable(store, WAYPOINT);
  const answer = (path: string) => {
    const plan = planRequest(table, request({ path }));
    return plan.kind === 'respond' ? [plan.status, plan.cause] : [plan.kind];
  };
  t.same(answer('/missing'), [500, 'invalid-backend']);
  t.same(answer('/empty'), [503, 'no-ready-endpoints']);
  t.same(answer('/none'), [500, 'no-backend']);
  t.same(answer('/other'), [404, 'not-found']);
  t.same(planRequest(table, request({ service: 'echo-v1' })), { kind: 'passthrough' });
});
