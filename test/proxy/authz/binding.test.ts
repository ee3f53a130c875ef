// proxy/authz/binding.ts and cache.ts: which policies a waypoint enforces for a request (authz.md §4),
// and that they are compiled once per change of that set.
import t from 'tap';
import { ConfigStore } from '../../../core/store.js';
import type { AuthorizationPolicy } from '../../../core/model/index.js';
import {
  selectWaypointPolicies,
  waypointBinding,
  type WaypointTarget,
} from '../../../proxy/authz/binding.js';
import { WaypointPolicyCache } from '../../../proxy/authz/cache.js';
import { evaluateRequest } from '../../../proxy/authz/evaluate.js';
import { authorizationPolicy, type Manifest } from '../../helpers/policy.js';
import { request } from './fixtures.js';

const ROOT = 'istio-system';
const GATEWAY_API = 'gateway.networking.k8s.io';

/** Requests for Service shop/web through waypoint shop/waypoint. */
const TARGET: WaypointTarget = {
  waypoint: { namespace: 'shop', name: 'waypoint' },
  service: { namespace: 'shop', name: 'web' },
};

const gatewayRef = (name = 'waypoint', extra: Manifest = {}): Manifest => ({
  group: GATEWAY_API,
  kind: 'Gateway',
  name,
  ...extra,
});
const classRef = (name = 'istio-waypoint'): Manifest => ({ group: GATEWAY_API, kind: 'GatewayClass', name });
const serviceRef = (name = 'web', extra: Manifest = {}): Manifest => ({ kind: 'Service', name, ...extra });

function attached(
  name: string,
  refs: Manifest[],
  namespace = 'shop',
  spec: Manifest = {},
): AuthorizationPolicy {
  return authorizationPolicy(name, { targetRefs: refs, rules: [{}], ...spec }, { namespace });
}

t.test('what binds, and why not', async (t) => {
  const cases: [label: string, policy: AuthorizationPolicy, target: WaypointTarget, expected: unknown][] = [
    ['Gateway, same namespace', attached('p', [gatewayRef()]), TARGET, { bound: true, via: 'Gateway' }],
    [
      'Gateway with an explicit same namespace',
      attached('p', [gatewayRef('waypoint', { namespace: 'shop' })]),
      TARGET,
      { bound: true, via: 'Gateway' },
    ],
    [
      'Gateway of another name',
      attached('p', [gatewayRef('other')]),
      TARGET,
      { bound: false, reason: /not this waypoint \(shop\/waypoint\)/ },
    ],
    [
      'Gateway from another namespace',
      attached('p', [gatewayRef()], 'other'),
      TARGET,
      { bound: false, reason: /not this waypoint/ },
    ],
    [
      'a targetRef naming another namespace never binds',
      attached('p', [gatewayRef('waypoint', { namespace: 'other' })]),
      TARGET,
      { bound: false, reason: /another namespace \(other\) never binds/ },
    ],
    [
      'GatewayClass from the root namespace',
      attached('p', [classRef()], ROOT),
      TARGET,
      { bound: true, via: 'GatewayClass' },
    ],
    [
      'GatewayClass from another namespace',
      attached('p', [classRef()], 'shop'),
      TARGET,
      { bound: false, reason: /only from the root namespace \(istio-system\)/ },
    ],
    [
      'another GatewayClass',
      attached('p', [classRef('istio')], ROOT),
      TARGET,
      { bound: false, reason: /only istio-waypoint binds waypoints/ },
    ],
    ['Service, same namespace', attached('p', [serviceRef()]), TARGET, { bound: true, via: 'Service' }],
    [
      'Service of another name',
      attached('p', [serviceRef('api')]),
      TARGET,
      { bound: false, reason: /not the destination Service \(shop\/web\)/ },
    ],
    [
      'Service from another namespace',
      attached('p', [serviceRef()], 'other'),
      TARGET,
      { bound: false, reason: /not the destination Service/ },
    ],
    [
      'Service, but the request addresses a workload (#56505)',
      attached('p', [serviceRef()]),
      { ...TARGET, service: undefined },
      { bound: false, reason: /not addressed to a Service/ },
    ],
    [
      'ServiceEntry',
      attached('p', [{ group: 'networking.istio.io', kind: 'ServiceEntry', name: 'web' }]),
      TARGET,
      { bound: false, reason: /ServiceEntry targets are not supported/ },
    ],
    [
      'the first ref that binds wins',
      attached('p', [serviceRef('api'), gatewayRef()]),
      TARGET,
      { bound: true, via: 'Gateway' },
    ],
    [
      'the old singular targetRef',
      authorizationPolicy('p', { targetRef: gatewayRef(), rules: [{}] }),
      TARGET,
      { bound: true, via: 'Gateway' },
    ],
    [
      'namespace-wide: ignored by waypoints',
      authorizationPolicy('p', { rules: [{}] }),
      TARGET,
      { bound: false, reason: /enforced by the node agent, not the waypoint/ },
    ],
    [
      'selector, even one matching the waypoint pods: ignored',
      authorizationPolicy('p', {
        selector: { matchLabels: { 'gateway.networking.k8s.io/gateway-name': 'waypoint' } },
        rules: [{}],
      }),
      TARGET,
      { bound: false, reason: /enforced by the node agent/ },
    ],
    [
      'root namespace-wide: ignored too',
      authorizationPolicy('p', { rules: [{}] }, { namespace: ROOT }),
      TARGET,
      { bound: false },
    ],
  ];
  for (const [label, policy, target, expected] of cases) {
    t.match(waypointBinding(policy, target, ROOT), expected, label);
  }
});

function storeWith(...policies: AuthorizationPolicy[]): ConfigStore {
  const store = new ConfigStore({ rootNamespace: ROOT });
  store.apply({ upserts: policies, deletes: [], rejections: [] });
  return store;
}

t.test('the applicable set is the union of Gateway, GatewayClass and Service policies', async (t) => {
  const store = storeWith(
    attached('z-gateway', [gatewayRef()]),
    attached('a-service', [serviceRef()]),
    attached('mesh', [classRef()], ROOT),
    attached('other-service', [serviceRef('api')]),
    attached('other-waypoint', [gatewayRef('waypoint')], 'other'),
    authorizationPolicy('namespace-wide', { rules: [{}] }),
    attached('web-in-apps', [serviceRef()], 'apps'),
  );
  const names = (target: WaypointTarget): string[] =>
    selectWaypointPolicies(store, target).map((p) => `${p.namespace}/${p.name}`);
  t.same(
    names(TARGET),
    ['istio-system/mesh', 'shop/a-service', 'shop/z-gateway'],
    'root first, then by namespace and name',
  );
  t.same(
    names({ waypoint: { namespace: 'shop', name: 'waypoint' }, service: { namespace: 'apps', name: 'web' } }),
    ['istio-system/mesh', 'shop/z-gateway', 'apps/web-in-apps'],
    'a Service in another namespace brings its own policies',
  );
  t.same(
    names({ ...TARGET, service: undefined }),
    ['istio-system/mesh', 'shop/z-gateway'],
    'workload-addressed',
  );
});

t.test(
  'a Service-attached ALLOW admits what a Gateway-attached ALLOW does not, and the reverse',
  async (t) => {
    const store = storeWith(
      attached('gw', [gatewayRef()], 'shop', { rules: [{ to: [{ operation: { methods: ['GET'] } }] }] }),
      attached('svc', [serviceRef()], 'shop', { rules: [{ to: [{ operation: { methods: ['POST'] } }] }] }),
    );
    const cache = new WaypointPolicyCache(store);
    const compiled = cache.get(TARGET);
    t.match(evaluateRequest(compiled, request()), { allowed: true, policy: 'shop/gw' });
    t.match(evaluateRequest(compiled, request({ method: 'POST' })), { allowed: true, policy: 'shop/svc' });
    t.match(evaluateRequest(compiled, request({ method: 'PUT' })), {
      allowed: false,
      reason: 'no-allow-matched',
    });
    const api = cache.get({ ...TARGET, service: { namespace: 'shop', name: 'api' } });
    t.match(
      evaluateRequest(api, request({ method: 'POST' })),
      { allowed: false },
      'svc does not bind for api',
    );
  },
);

t.test('compiled once per change of the bound policies', async (t) => {
  const store = storeWith(attached('gw', [gatewayRef()]));
  const cache = new WaypointPolicyCache(store);
  const first = cache.get(TARGET);
  t.equal(cache.get(TARGET), first, 'same version: the same compiled object');

  store.apply({ upserts: [attached('unrelated', [serviceRef('api')])], deletes: [], rejections: [] });
  t.equal(cache.get(TARGET), first, 'a change that binds nothing new keeps it');

  store.apply({ upserts: [attached('svc', [serviceRef()])], deletes: [], rejections: [] });
  const second = cache.get(TARGET);
  t.not(second, first, 'a newly bound policy recompiles');
  t.same(
    second.allow.map((p) => p.policy),
    ['shop/gw', 'shop/svc'],
  );

  store.apply({
    upserts: [attached('svc', [serviceRef()], 'shop', { action: 'DENY' })],
    deletes: [],
    rejections: [],
  });
  const third = cache.get(TARGET);
  t.not(third, second, 'a replaced record recompiles');
  t.same(
    third.deny.map((p) => p.policy),
    ['shop/svc'],
  );

  store.apply({
    upserts: [],
    deletes: [{ kind: 'AuthorizationPolicy', namespace: 'shop', name: 'svc' }],
    rejections: [],
  });
  t.same(cache.get(TARGET).deny, [], 'a removed policy is gone');
  cache.forget(TARGET);
  t.ok(cache.get(TARGET), 'forgotten targets compile again on demand');
});
