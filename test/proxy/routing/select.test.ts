// proxy/routing/compile.ts + select.ts: which rule serves a request, per the Gateway API conformance
// cases quoted in shared/reference/gateway-api.md (§3 precedence, §10 mesh semantics).
import t, { type Test } from 'tap';
import { compileRoutingTable } from '../../../proxy/routing/compile.js';
import { selectRoute, type RouteSelection } from '../../../proxy/routing/select.js';
import {
  backend,
  httpRoute,
  meshWorld,
  request,
  serviceParent,
  storeOf,
  WAYPOINT,
  type Manifest,
  type RequestOptions,
} from '../../helpers/routing.js';

/** A table for the mesh world plus these routes. */
function tableWith(...routes: Manifest[]) {
  return compileRoutingTable(storeOf([...meshWorld(), ...routes]), WAYPOINT);
}

/** The first backend's Service name of the selected rule, or the selection kind. */
function routedTo(selection: RouteSelection): string {
  if (selection.kind !== 'matched') return selection.kind;
  return selection.rule.rule.backendRefs[0]?.name ?? `rule ${selection.rule.index} (no backend)`;
}

function rule(matches: Manifest[] | undefined, to: string): Manifest {
  return { ...(matches === undefined ? {} : { matches }), backendRefs: [backend(to)] };
}

function expectRoutes(
  t: Test,
  table: ReturnType<typeof tableWith>,
  cases: readonly [RequestOptions, string][],
): void {
  for (const [options, expected] of cases) {
    const where = `${options.method ?? 'GET'} ${options.path ?? '/'}${options.query ? `?${options.query}` : ''} ${JSON.stringify(options.headers ?? {})} from ${options.client ?? 'mesh'}`;
    t.equal(routedTo(selectRoute(table, request(options))), expected, where);
  }
}

t.test('HTTPRouteMatching: segment-boundary prefixes; a header match outranks the bare "/"', async (t) => {
  const table = tableWith(
    httpRoute('matching', {
      parentRefs: [serviceParent('echo')],
      rules: [
        rule([{ path: { type: 'PathPrefix', value: '/' } }], 'echo-v1'),
        rule([{ path: { type: 'PathPrefix', value: '/v2' } }], 'echo-v2'),
        rule([{ headers: [{ name: 'version', value: 'two' }] }], 'echo-v2'),
      ],
    }),
  );
  expectRoutes(t, table, [
    [{ path: '/' }, 'echo-v1'],
    [{ path: '/example' }, 'echo-v1'],
    [{ path: '/v2' }, 'echo-v2'],
    [{ path: '/v2/' }, 'echo-v2'],
    [{ path: '/v2/example' }, 'echo-v2'],
    [{ path: '/v2example' }, 'echo-v1'],
    [{ path: '/foo/v2/example' }, 'echo-v1'],
    [{ path: '/', headers: { version: 'two' } }, 'echo-v2'],
  ]);
});

t.test('HTTPRouteExactPathMatching: whole path, case-sensitive, no slash tolerance', async (t) => {
  const table = tableWith(
    httpRoute('exact', {
      parentRefs: [serviceParent('echo')],
      rules: [
        rule([{ path: { type: 'Exact', value: '/one' } }], 'echo-v1'),
        rule([{ path: { type: 'Exact', value: '/two' } }], 'echo-v2'),
      ],
    }),
  );
  expectRoutes(t, table, [
    [{ path: '/one' }, 'echo-v1'],
    [{ path: '/two' }, 'echo-v2'],
    [{ path: '/' }, 'not-found'],
    [{ path: '/two/' }, 'not-found'],
    [{ path: '/Two' }, 'not-found'],
    [{ path: '/one/example' }, 'not-found'],
    [{ path: '/one', query: 'x=1' }, 'echo-v1'],
  ]);
});

t.test('HTTPRoutePathMatchOrder: Exact before any prefix, then the longest prefix', async (t) => {
  const names = ['e-one', 'e-exact', 'e-match', 'p-one', 'p-prefix', 'p-match'];
  const table = tableWith(
    httpRoute('order', {
      parentRefs: [serviceParent('echo')],
      // Deliberately listed shortest first: list order must not matter across criteria.
      rules: [
        {
          matches: [{ path: { type: 'PathPrefix', value: '/match' } }],
          backendRefs: [backend('echo', { name: names[5] })],
        },
        {
          matches: [{ path: { type: 'PathPrefix', value: '/match/prefix' } }],
          backendRefs: [backend('echo', { name: names[4] })],
        },
        {
          matches: [{ path: { type: 'PathPrefix', value: '/match/prefix/one' } }],
          backendRefs: [backend('echo', { name: names[3] })],
        },
        {
          matches: [{ path: { type: 'Exact', value: '/match' } }],
          backendRefs: [backend('echo', { name: names[2] })],
        },
        {
          matches: [{ path: { type: 'Exact', value: '/match/exact' } }],
          backendRefs: [backend('echo', { name: names[1] })],
        },
        {
          matches: [{ path: { type: 'Exact', value: '/match/exact/one' } }],
          backendRefs: [backend('echo', { name: names[0] })],
        },
      ],
    }),
  );
  expectRoutes(t, table, [
    [{ path: '/match/exact/one' }, 'e-one'],
    [{ path: '/match/exact' }, 'e-exact'],
    [{ path: '/match' }, 'e-match'],
    [{ path: '/match/prefix/one/example' }, 'p-one'],
    [{ path: '/match/prefix/example' }, 'p-prefix'],
    [{ path: '/match/example' }, 'p-match'],
    [{ path: '/match/exact/other' }, 'p-match'],
    [{ path: '/matchless' }, 'not-found'],
  ]);
});

t.test(
  'HTTPRouteHeaderMatching: AND within a match, OR across, more headers first, else rule order',
  async (t) => {
    const headers = (...pairs: [string, string][]) => ({
      headers: pairs.map(([name, value]) => ({ name, value })),
    });
    const table = tableWith(
      httpRoute('headers', {
        parentRefs: [serviceParent('echo')],
        rules: [
          rule([headers(['version', 'one'])], 'echo-v1'),
          rule([headers(['version', 'two'])], 'echo-v2'),
          rule([headers(['version', 'two'], ['color', 'orange'])], 'echo-v1'),
          rule([headers(['color', 'blue']), headers(['color', 'green'])], 'echo-v1'),
          rule([headers(['color', 'red']), headers(['color', 'yellow'])], 'echo-v2'),
        ],
      }),
    );
    expectRoutes(t, table, [
      [{ headers: { version: 'one' } }, 'echo-v1'],
      [{ headers: { version: 'two' } }, 'echo-v2'],
      [{ headers: { version: 'two', color: 'orange' } }, 'echo-v1'],
      [{ headers: { color: 'blue' } }, 'echo-v1'],
      [{ headers: { color: 'green' } }, 'echo-v1'],
      [{ headers: { color: 'red' } }, 'echo-v2'],
      [{ headers: { color: 'yellow' } }, 'echo-v2'],
      [{ headers: { version: 'two', color: 'blue' } }, 'echo-v2'],
      [{ headers: { color: 'purple' } }, 'not-found'],
      [{ headers: { version: 'Two' } }, 'not-found'],
      [{}, 'not-found'],
    ]);
  },
);

t.test('header names are case-insensitive; repeated request headers are joined with ", "', async (t) => {
  const table = tableWith(
    httpRoute('names', {
      parentRefs: [serviceParent('echo')],
      rules: [
        rule([{ headers: [{ name: 'X-Canary', value: 'true' }] }], 'echo-v2'),
        rule([{ headers: [{ name: 'x-list', value: 'a, b' }] }], 'echo-v1'),
        rule([{ headers: [{ name: 'x-re', type: 'RegularExpression', value: 'v[0-9]+' }] }], 'echo'),
      ],
    }),
  );
  expectRoutes(t, table, [
    [{ headers: { 'x-canary': 'true' } }, 'echo-v2'],
    [{ headers: { 'x-list': ['a', 'b'] } }, 'echo-v1'],
    [{ headers: { 'x-list': 'a' } }, 'not-found'],
    [{ headers: { 'x-re': 'v12' } }, 'echo'],
    // Regular expressions are full-match: "xv12" and "v12x" do not match v[0-9]+.
    [{ headers: { 'x-re': 'xv12' } }, 'not-found'],
    [{ headers: { 'x-re': 'v12x' } }, 'not-found'],
  ]);
});

t.test('HTTPRouteQueryParamMatching: exact names, more params first, path and headers outrank', async (t) => {
  const q = (...pairs: [string, string][]) => pairs.map(([name, value]) => ({ name, value }));
  const table = tableWith(
    httpRoute('query', {
      parentRefs: [serviceParent('echo')],
      rules: [
        rule([{ queryParams: q(['animal', 'whale']) }], 'echo-v1'),
        rule([{ queryParams: q(['animal', 'dolphin']) }], 'echo-v2'),
        rule(
          [
            { queryParams: q(['animal', 'dolphin'], ['color', 'blue']) },
            { queryParams: q(['ANIMAL', 'Whale']) },
          ],
          'echo',
        ),
        rule([{ path: { type: 'PathPrefix', value: '/path1' }, queryParams: q(['animal', 'whale']) }], 'p1'),
        rule([{ headers: [{ name: 'version', value: 'one' }] }], 'hdr'),
        rule([{ path: { type: 'PathPrefix', value: '/path5' } }], 'p5'),
        rule([{ queryParams: q(['animal', 'hydra']) }], 'hydra'),
      ],
    }),
  );
  expectRoutes(t, table, [
    [{ query: 'animal=whale' }, 'echo-v1'],
    [{ query: '?animal=whale' }, 'echo-v1'],
    [{ query: 'animal=dolphin' }, 'echo-v2'],
    [{ query: 'color=blue&animal=dolphin' }, 'echo'],
    [{ query: 'ANIMAL=Whale' }, 'echo'],
    [{ query: 'animal=Whale' }, 'not-found'],
    [{ path: '/path1', query: 'animal=whale' }, 'p1'],
    [{ path: '/path5', query: 'animal=hydra' }, 'p5'],
    [{ query: 'animal=hydra' }, 'hydra'],
    [{ query: 'animal=whale', headers: { version: 'one' } }, 'hdr'],
    // Only the first value of a repeated parameter counts; values are percent-decoded.
    [{ query: 'animal=whale&animal=dolphin' }, 'echo-v1'],
    [{ query: 'animal=dolphin&animal=whale' }, 'echo-v2'],
    [{ query: 'animal=%77hale' }, 'echo-v1'],
    [{ query: 'xanimal=whale' }, 'not-found'],
  ]);
});

t.test(
  'HTTPRouteMethodMatching: literal methods; a longer prefix outranks; method outranks headers',
  async (t) => {
    const table = tableWith(
      httpRoute('methods', {
        parentRefs: [serviceParent('echo')],
        rules: [
          rule([{ method: 'POST' }], 'echo-v1'),
          rule([{ method: 'GET' }], 'echo-v2'),
          rule([{ path: { type: 'PathPrefix', value: '/path5' } }], 'p5'),
          rule([{ method: 'PATCH' }], 'patch'),
          rule([{ headers: [{ name: 'version', value: 'one' }] }], 'hdr'),
          rule([{ method: 'PUT' }], 'put'),
        ],
      }),
    );
    expectRoutes(t, table, [
      [{ method: 'POST' }, 'echo-v1'],
      [{ method: 'GET' }, 'echo-v2'],
      [{ method: 'HEAD' }, 'not-found'],
      [{ method: 'PATCH', path: '/path5' }, 'p5'],
      [{ method: 'PATCH' }, 'patch'],
      [{ method: 'PUT', headers: { version: 'one' } }, 'put'],
      [{ method: 'DELETE', headers: { version: 'one' } }, 'hdr'],
    ]);
  },
);

t.test(
  'across routes: the older route wins a tie, then namespace/name; within a route, rule order',
  async (t) => {
    const catchAll = (to: string) => ({ parentRefs: [serviceParent('echo')], rules: [rule(undefined, to)] });
    const older = tableWith(
      httpRoute('b-route', catchAll('echo-v1'), { createdAt: '2026-01-01T00:00:00Z' }),
      httpRoute('a-route', catchAll('echo-v2'), { createdAt: '2026-02-01T00:00:00Z' }),
    );
    t.equal(routedTo(selectRoute(older, request())), 'echo-v1', 'oldest creationTimestamp');
    const same = '2026-01-01T00:00:00Z';
    const byName = tableWith(
      httpRoute('b-route', catchAll('echo-v1'), { createdAt: same }),
      httpRoute('a-route', catchAll('echo-v2'), { createdAt: same }),
    );
    t.equal(routedTo(selectRoute(byName, request())), 'echo-v2', 'then namespace/name');
    const inRoute = tableWith(
      httpRoute('one', {
        parentRefs: [serviceParent('echo')],
        rules: [rule(undefined, 'echo-v2'), rule(undefined, 'echo-v1')],
      }),
    );
    t.equal(routedTo(selectRoute(inRoute, request())), 'echo-v2', 'first rule in list order');
    // A more specific match in a newer route still beats an older catch-all: criteria before age.
    const specific = tableWith(
      httpRoute('old', catchAll('echo-v1'), { createdAt: '2020-01-01T00:00:00Z' }),
      httpRoute('new', {
        parentRefs: [serviceParent('echo')],
        rules: [rule([{ path: { type: 'PathPrefix', value: '/api' } }], 'echo-v2')],
      }),
    );
    t.equal(routedTo(selectRoute(specific, request({ path: '/api/x' }))), 'echo-v2');
    t.equal(routedTo(selectRoute(specific, request({ path: '/other' }))), 'echo-v1');
  },
);

t.test('RegularExpression paths are anchored full matches and rank after every prefix', async (t) => {
  const table = tableWith(
    httpRoute('regex', {
      parentRefs: [serviceParent('echo')],
      rules: [
        rule([{ path: { type: 'RegularExpression', value: '/v[0-9]+/items' } }], 'echo-v2'),
        rule([{ path: { type: 'PathPrefix', value: '/v1' } }], 'echo-v1'),
      ],
    }),
  );
  expectRoutes(t, table, [
    [{ path: '/v2/items' }, 'echo-v2'],
    [{ path: '/v2/items/x' }, 'not-found'],
    [{ path: '/x/v2/items' }, 'not-found'],
    [{ path: '/v1/items' }, 'echo-v1'],
  ]);
});

t.test(
  'MeshBasic / MeshFrontend: no route is passthrough; routes apply to the Service frontend only',
  async (t) => {
    const none = tableWith();
    t.equal(selectRoute(none, request()).kind, 'passthrough', 'no route attached');
    const table = tableWith(
      httpRoute('v2-only', {
        parentRefs: [serviceParent('echo-v2')],
        rules: [rule([{ path: { type: 'Exact', value: '/v2' } }], 'echo-v2')],
      }),
    );
    t.equal(routedTo(selectRoute(table, request({ service: 'echo-v2', path: '/v2' }))), 'echo-v2');
    t.equal(
      selectRoute(table, request({ service: 'echo-v2', path: '/other' })).kind,
      'not-found',
      '404 when none matches',
    );
    t.equal(
      selectRoute(table, request({ service: 'echo', path: '/other' })).kind,
      'passthrough',
      'another Service',
    );
    const direct = {
      ...request({ service: 'echo-v2', path: '/v2' }),
      dialled: { ip: '10.1.0.12', port: 8080 },
    };
    t.equal(selectRoute(table, direct).kind, 'passthrough', 'dialled pod IP: the route does not apply');
    const mapped = {
      ...request({ service: 'echo-v2', path: '/v2' }),
      dialled: { ip: '::ffff:10.96.0.12', port: 80 },
    };
    t.equal(routedTo(selectRoute(table, mapped)), 'echo-v2', 'IPv4-mapped dialled address');
  },
);

t.test('MeshFrontendHostname: the parent is the dialled Service, not the Host header', async (t) => {
  const table = tableWith(
    httpRoute('v1', { parentRefs: [serviceParent('echo-v1')], rules: [rule(undefined, 'echo-v2')] }),
  );
  const spoofed = request({ service: 'echo', headers: { host: 'echo-v1' } });
  t.equal(selectRoute(table, spoofed).kind, 'passthrough');
  t.equal(
    routedTo(selectRoute(table, request({ service: 'echo-v1', headers: { host: 'anything' } }))),
    'echo-v2',
  );
});

t.test('MeshPorts: parentRef port (or sectionName) narrows; without it every port', async (t) => {
  const table = tableWith(
    httpRoute('port80', {
      parentRefs: [serviceParent('echo-v1', { port: 80 })],
      rules: [rule(undefined, 'echo-v1')],
    }),
    httpRoute('all', { parentRefs: [serviceParent('echo-v2')], rules: [rule(undefined, 'echo-v2')] }),
    httpRoute('named', {
      parentRefs: [serviceParent('echo', { sectionName: 'http-alt' })],
      rules: [rule(undefined, 'echo')],
    }),
  );
  t.equal(selectRoute(table, request({ service: 'echo-v1', port: 80 })).kind, 'matched');
  t.equal(selectRoute(table, request({ service: 'echo-v1', port: 8080 })).kind, 'passthrough');
  t.equal(selectRoute(table, request({ service: 'echo-v2', port: 80 })).kind, 'matched');
  t.equal(selectRoute(table, request({ service: 'echo-v2', port: 8080 })).kind, 'matched');
  t.equal(selectRoute(table, request({ service: 'echo', port: 80 })).kind, 'passthrough');
  t.equal(selectRoute(table, request({ service: 'echo', port: 8080 })).kind, 'matched');
  const selection = selectRoute(table, request({ service: 'echo', port: 8080 }));
  t.equal(
    selection.kind === 'matched' && selection.parent.kind === 'service' && selection.parent.port.name,
    'http-alt',
  );
});

t.test(
  'MeshConsumerRoute: a consumer route applies only to its own namespace, and replaces the producer set there',
  async (t) => {
    const producer = httpRoute('producer', {
      parentRefs: [serviceParent('echo')],
      rules: [rule(undefined, 'echo-v1')],
    });
    const consumer = httpRoute(
      'consumer',
      {
        parentRefs: [serviceParent('echo')],
        rules: [rule([{ path: { type: 'PathPrefix', value: '/only' } }], 'echo-v2')],
      },
      { namespace: 'consumer' },
    );
    const table = tableWith(producer, consumer);
    t.equal(routedTo(selectRoute(table, request({ client: 'mesh' }))), 'echo-v1', 'producer namespace');
    t.equal(routedTo(selectRoute(table, request({ client: 'elsewhere' }))), 'echo-v1', 'a third namespace');
    t.equal(
      routedTo(selectRoute(table, request({ client: 'consumer', path: '/only' }))),
      'echo-v2',
      'consumer',
    );
    // Routes merge only within their group: the producer catch-all is not a fallback for the consumer.
    t.equal(selectRoute(table, request({ client: 'consumer', path: '/' })).kind, 'not-found');
    const consumerOnly = tableWith(consumer);
    t.equal(selectRoute(consumerOnly, request({ client: 'mesh' })).kind, 'passthrough', 'no producer route');
    t.equal(selectRoute(consumerOnly, request({ client: 'consumer', path: '/only/x' })).kind, 'matched');
  },
);

t.test('Services not bound to this waypoint are not routed here', async (t) => {
  const world = meshWorld().map((manifest) =>
    manifest.kind === 'Service' && (manifest.metadata as Manifest).name === 'echo-v1'
      ? {
          ...manifest,
          metadata: { ...(manifest.metadata as Manifest), labels: { 'istio.io/use-waypoint': 'none' } },
        }
      : manifest,
  );
  const store = storeOf([
    ...world,
    httpRoute('v1', { parentRefs: [serviceParent('echo-v1')], rules: [rule(undefined, 'echo-v1')] }),
  ]);
  const table = compileRoutingTable(store, WAYPOINT);
  t.equal(selectRoute(table, request({ service: 'echo-v1' })).kind, 'passthrough');
  t.same(table.statuses, [], 'no status from a waypoint that does not serve the parent');
  const other = compileRoutingTable(
    storeOf([
      ...meshWorld(),
      httpRoute('v1', { parentRefs: [serviceParent('echo-v1')], rules: [rule(undefined, 'echo-v1')] }),
    ]),
    {
      namespace: 'mesh',
      name: 'other-waypoint',
    },
  );
  t.equal(
    selectRoute(other, request({ service: 'echo-v1' })).kind,
    'passthrough',
    'bound to another waypoint',
  );
});

t.test(
  'routes attached to the waypoint Gateway: by Host, after Service routes; exact before wildcard before any',
  async (t) => {
    const gatewayParent = { name: 'waypoint' };
    const table = tableWith(
      httpRoute('by-host', {
        parentRefs: [gatewayParent],
        hostnames: ['foo.example.com'],
        rules: [rule([{ path: { type: 'PathPrefix', value: '/api' } }], 'echo-v1')],
      }),
      httpRoute('wild', {
        parentRefs: [gatewayParent],
        hostnames: ['*.example.com'],
        rules: [rule(undefined, 'echo-v2')],
      }),
      httpRoute('any', { parentRefs: [gatewayParent], rules: [rule(undefined, 'echo')] }),
      httpRoute('svc', { parentRefs: [serviceParent('echo-v1')], rules: [rule(undefined, 'empty')] }),
    );
    expectRoutes(t, table, [
      [{ headers: { host: 'foo.example.com' }, path: '/api/x' }, 'echo-v1'],
      [{ headers: { host: 'FOO.example.com:8080' }, path: '/api' }, 'echo-v1'],
      // The most specific hostname's routes are the only candidates (virtual-host semantics).
      [{ headers: { host: 'foo.example.com' }, path: '/other' }, 'not-found'],
      [{ headers: { host: 'a.b.example.com' } }, 'echo-v2'],
      [{ headers: { host: 'example.com' } }, 'echo'],
      [{ headers: { host: 'echo' } }, 'echo'],
      [{ service: 'echo-v1', headers: { host: 'foo.example.com' }, path: '/api' }, 'empty'],
    ]);
  },
);
