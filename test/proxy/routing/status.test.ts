// proxy/routing/status.ts: Accepted / ResolvedRefs / PartiallyInvalid per route and parentRef, and the
// routing table agreeing with them (invalid rules dropped, the rest serving) (gateway-api.md §11).
import t from 'tap';
import { compileRoutingTable } from '../../../proxy/routing/compile.js';
import { selectRoute } from '../../../proxy/routing/select.js';
import { routeStatuses, WAYPOINT_CONTROLLER_NAME, type RouteStatus } from '../../../proxy/routing/status.js';
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

/** `[type, status, reason]` of each condition, per parent, for one route. */
function conditions(statuses: readonly RouteStatus[], name: string): string[][][] {
  const status = statuses.find((candidate) => candidate.name === name);
  if (status === undefined) throw new Error(`no status for ${name}`);
  return status.parents.map((parent) =>
    parent.conditions.map((condition) => [condition.type, condition.status, condition.reason]),
  );
}

function statusesOf(...routes: Manifest[]): readonly RouteStatus[] {
  return routeStatuses(storeOf([...meshWorld(), ...routes]), WAYPOINT);
}

const OK = [
  ['Accepted', 'True', 'Accepted'],
  ['ResolvedRefs', 'True', 'ResolvedRefs'],
];

t.test(
  'a valid route: Accepted and ResolvedRefs, one entry per parentRef we serve, our controller',
  async (t) => {
    const statuses = statusesOf(
      httpRoute('fine', {
        parentRefs: [
          serviceParent('echo'),
          serviceParent('echo-v1', { port: 80 }),
          { name: 'someone-elses-gateway' },
        ],
        rules: [{ backendRefs: [backend('echo-v1')] }],
      }),
    );
    t.same(conditions(statuses, 'fine'), [OK, OK]);
    t.equal(statuses[0]?.parents[0]?.controllerName, WAYPOINT_CONTROLLER_NAME);
    t.same(
      statuses[0]?.parents.map((parent) => parent.parentRef.name),
      ['echo', 'echo-v1'],
    );
  },
);

t.test('unresolved backendRefs: Accepted=True, ResolvedRefs=False with the reason', async (t) => {
  const statuses = statusesOf(
    httpRoute('missing', {
      parentRefs: [serviceParent('echo')],
      rules: [{ backendRefs: [backend('nope')] }],
    }),
    httpRoute('kind', {
      parentRefs: [serviceParent('echo')],
      rules: [{ backendRefs: [{ group: 'example.com', kind: 'Bucket', name: 'b' }] }],
    }),
    httpRoute('no-backends', { parentRefs: [serviceParent('echo')], rules: [{}] }),
    httpRoute(
      'cross-namespace',
      { parentRefs: [serviceParent('echo')], rules: [{ backendRefs: [backend('echo-v1')] }] },
      { namespace: 'consumer' },
    ),
    httpRoute('bad-mirror', {
      parentRefs: [serviceParent('echo')],
      rules: [
        {
          filters: [{ type: 'RequestMirror', requestMirror: { backendRef: backend('nope') } }],
          backendRefs: [backend('echo-v1')],
        },
      ],
    }),
  );
  const unresolved = (reason: string) => [
    ['Accepted', 'True', 'Accepted'],
    ['ResolvedRefs', 'False', reason],
  ];
  t.same(conditions(statuses, 'missing'), [unresolved('BackendNotFound')]);
  t.same(conditions(statuses, 'kind'), [unresolved('InvalidKind')]);
  t.same(conditions(statuses, 'no-backends'), [OK], 'HTTPRouteNoBackendRefs: Accepted, ResolvedRefs=True');
  t.same(conditions(statuses, 'cross-namespace'), [OK], 'mesh routes need no ReferenceGrant');
  t.same(conditions(statuses, 'bad-mirror'), [unresolved('BackendNotFound')]);
  const message = statuses.find((status) => status.name === 'missing')?.parents[0]?.conditions[1]?.message;
  t.equal(message, 'spec.rules[0].backendRefs[0]: Service mesh/nope not found');
});

t.test('parentRefs that do not attach: NoMatchingParent, and no traffic through them', async (t) => {
  const store = storeOf([
    ...meshWorld(),
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'headless', namespace: 'mesh' },
      spec: { clusterIP: 'None', selector: { app: 'echo' }, ports: [{ port: 80 }] },
    },
    httpRoute('ports', {
      parentRefs: [
        serviceParent('echo', { port: 9999 }),
        serviceParent('echo-v1', { sectionName: 'http', port: 8080 }),
        serviceParent('echo-v2', { sectionName: 'http-alt' }),
        serviceParent('ghost'),
        serviceParent('headless'),
      ],
      rules: [{ backendRefs: [backend('echo-v1')] }],
    }),
  ]);
  const table = compileRoutingTable(store, WAYPOINT);
  const noMatch = [['Accepted', 'False', 'NoMatchingParent']];
  t.same(conditions(table.statuses, 'ports'), [noMatch, noMatch, OK, noMatch, noMatch]);
  t.match(table.statuses[0]?.parents[3]?.conditions[0]?.message, /Service mesh\/ghost not found/);
  t.equal(selectRoute(table, request({ service: 'echo' })).kind, 'passthrough');
  t.equal(selectRoute(table, request({ service: 'echo-v1' })).kind, 'passthrough');
  t.equal(selectRoute(table, request({ service: 'echo-v2', port: 8080 })).kind, 'matched');
});

t.test(
  'invalid rules are dropped (PartiallyInvalid) while the others serve; none left: Accepted=False',
  async (t) => {
    const lookahead = { path: { type: 'RegularExpression', value: '/(?=admin).*' } };
    const store = storeOf([
      ...meshWorld(),
      httpRoute('partly', {
        parentRefs: [serviceParent('echo')],
        rules: [
          { matches: [lookahead], backendRefs: [backend('echo-v2')] },
          { matches: [{ path: { value: '/ok' } }], backendRefs: [backend('echo-v1')] },
        ],
      }),
      httpRoute('wholly', {
        parentRefs: [serviceParent('echo-v1')],
        rules: [
          {
            filters: [
              { type: 'RequestMirror', requestMirror: { backendRef: backend('echo') } },
              { type: 'RequestRedirect', requestRedirect: { hostname: 'example.org' } },
            ],
          },
          { matches: [{ headers: [{ name: 'x', type: 'RegularExpression', value: '(a)\\1' }] }] },
        ],
      }),
    ]);
    const table = compileRoutingTable(store, WAYPOINT);
    t.same(conditions(table.statuses, 'partly'), [
      [
        ['Accepted', 'True', 'Accepted'],
        ['PartiallyInvalid', 'True', 'UnsupportedValue'],
        ['ResolvedRefs', 'True', 'ResolvedRefs'],
      ],
    ]);
    t.match(
      table.statuses.find((s) => s.name === 'partly')?.parents[0]?.conditions[1]?.message,
      /^Dropped Rule/,
    );
    t.equal(
      selectRoute(table, request({ path: '/admin' })).kind,
      'not-found',
      'the dropped rule takes no traffic',
    );
    t.equal(selectRoute(table, request({ path: '/ok' })).kind, 'matched', 'the valid rule still serves');
    t.same(conditions(table.statuses, 'wholly'), [
      [
        ['Accepted', 'False', 'IncompatibleFilters'],
        ['ResolvedRefs', 'True', 'ResolvedRefs'],
      ],
    ]);
    t.equal(
      selectRoute(table, request({ service: 'echo-v1' })).kind,
      'passthrough',
      'an unaccepted route attaches nothing',
    );
  },
);

t.test(
  'routes on the waypoint Gateway: listener matching, namespaces, hostnames, ReferenceGrant',
  async (t) => {
    const world = meshWorld().map((manifest) =>
      manifest.kind === 'Gateway'
        ? {
            ...manifest,
            spec: {
              gatewayClassName: 'istio-waypoint',
              listeners: [
                { name: 'mesh', port: 15008, protocol: 'HBONE' },
                { name: 'web', port: 80, protocol: 'HTTP', hostname: '*.example.com' },
                { name: 'raw', port: 9000, protocol: 'TCP' },
              ],
            },
          }
        : manifest,
    );
    const gw = (extra: Manifest = {}) => ({ name: 'waypoint', ...extra });
    const store = storeOf([
      ...world,
      httpRoute('ok', { parentRefs: [gw()], rules: [{ backendRefs: [backend('echo-v1')] }] }),
      httpRoute('no-section', { parentRefs: [gw({ sectionName: 'nope' })], rules: [{}] }),
      httpRoute('disagree', { parentRefs: [gw({ sectionName: 'web', port: 15008 })], rules: [{}] }),
      httpRoute('tcp', { parentRefs: [gw({ sectionName: 'raw' })], rules: [{}] }),
      httpRoute('hostnames', {
        parentRefs: [gw({ sectionName: 'web' })],
        hostnames: ['foo.other.org'],
        rules: [{}],
      }),
      httpRoute(
        'foreign',
        { parentRefs: [gw({ namespace: 'mesh' })], rules: [{}] },
        { namespace: 'consumer' },
      ),
      httpRoute('grant', {
        parentRefs: [gw()],
        rules: [{ backendRefs: [{ name: 'echo', namespace: 'consumer', port: 80 }] }],
      }),
    ]);
    const statuses = routeStatuses(store, WAYPOINT);
    t.same(conditions(statuses, 'ok'), [OK]);
    t.same(conditions(statuses, 'no-section'), [[['Accepted', 'False', 'NoMatchingParent']]]);
    t.same(conditions(statuses, 'disagree'), [[['Accepted', 'False', 'NoMatchingParent']]]);
    t.same(conditions(statuses, 'tcp'), [[['Accepted', 'False', 'NotAllowedByListeners']]]);
    t.same(conditions(statuses, 'hostnames'), [[['Accepted', 'False', 'NoMatchingListenerHostname']]]);
    t.same(conditions(statuses, 'foreign'), [[['Accepted', 'False', 'NotAllowedByListeners']]]);
    t.same(conditions(statuses, 'grant'), [
      [
        ['Accepted', 'True', 'Accepted'],
        ['ResolvedRefs', 'False', 'RefNotPermitted'],
      ],
    ]);
    t.same(compileRoutingTable(store, WAYPOINT).statuses, statuses, 'the table carries the same status');
  },
);
