// core/convert: every kind converts with its defaults applied, and a bad field is rejected by name.
import t from 'tap';
import { parse } from 'yaml';
import {
  convertManifest,
  formatRejection,
  parseGatewayDuration,
  type Rejection,
} from '../../core/convert/index.js';
import type { ConfigRecord, HttpRoute } from '../../core/model/index.js';

function converted(yaml: string): ConfigRecord {
  const result = convertManifest(parse(yaml));
  if (result.outcome !== 'converted') {
    throw new Error(
      `expected a record, got ${result.outcome === 'rejected' ? formatRejection(result.rejection) : result.reason}`,
    );
  }
  return result.record;
}

function rejected(yaml: string): Rejection {
  const result = convertManifest(parse(yaml), { file: 'manifests/bad.yaml', document: 2 });
  if (result.outcome !== 'rejected') throw new Error(`expected a rejection, got ${result.outcome}`);
  return result.rejection;
}

t.test('Namespace', async (t) => {
  const record = converted(`
apiVersion: v1
kind: Namespace
metadata: { name: bookinfo, labels: { istio.io/dataplane-mode: ambient } }
`);
  t.same(record, { kind: 'Namespace', name: 'bookinfo', labels: { 'istio.io/dataplane-mode': 'ambient' } });
  t.ok(Object.isFrozen(record), 'records are frozen');

  const bad = rejected(`
apiVersion: v1
kind: Namespace
metadata: { name: Book_Info }
`);
  t.equal(bad.field, 'metadata.name');
  t.match(bad.reason, /DNS-1123 label/);
});

t.test('Pod: fields and defaults', async (t) => {
  const pod = converted(`
apiVersion: v1
kind: Pod
metadata: { name: web-0, namespace: shop, uid: u-1, labels: { app: web } }
spec:
  serviceAccountName: web
  nodeName: node-1
  containers: [{ name: web, ports: [{ name: http, containerPort: 8080 }] }]
status:
  phase: Running
  podIPs: [{ ip: 10.0.0.5 }, { ip: "fd00::0005" }]
`);
  t.match(pod, {
    kind: 'Pod',
    uid: 'u-1',
    name: 'web-0',
    namespace: 'shop',
    serviceAccount: 'web',
    labels: { app: 'web' },
    podIps: ['10.0.0.5', 'fd00::5'],
    nodeName: 'node-1',
    hostNetwork: false,
    phase: 'Running',
    containerPorts: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  });

  const bare = converted(`
apiVersion: v1
kind: Pod
metadata: { name: bare }
`);
  t.match(bare, {
    namespace: 'default',
    uid: 'default/bare',
    serviceAccount: 'default',
    podIps: [],
    nodeName: undefined,
    phase: 'Pending',
  });
  const withIp = converted(`
apiVersion: v1
kind: Pod
metadata: { name: addressed }
status: { podIP: 10.0.0.9 }
`);
  t.equal(withIp.kind === 'Pod' && withIp.phase, 'Running', 'no phase but an IP reads as Running');

  const bad = rejected(`
apiVersion: v1
kind: Pod
metadata: { name: web-0, namespace: shop }
status: { podIP: 10.0.0.500 }
`);
  t.same(
    { kind: bad.kind, namespace: bad.namespace, name: bad.name, field: bad.field },
    { kind: 'Pod', namespace: 'shop', name: 'web-0', field: 'status.podIP' },
  );
  t.equal(
    formatRejection(bad),
    'manifests/bad.yaml doc 2: Pod shop/web-0: status.podIP must be an IP address, got "10.0.0.500"',
  );
});

t.test('Service: headless, named target ports, defaults', async (t) => {
  const svc = converted(`
apiVersion: v1
kind: Service
metadata: { name: reviews, namespace: bookinfo }
spec:
  clusterIP: 10.96.0.10
  selector: { app: reviews }
  ports:
    - { name: http, port: 9080, targetPort: http, appProtocol: http }
    - { name: admin, port: 9090 }
`);
  t.match(svc, {
    kind: 'Service',
    type: 'ClusterIP',
    clusterIps: ['10.96.0.10'],
    headless: false,
    selector: { app: 'reviews' },
    ports: [
      { name: 'http', port: 9080, targetPort: 'http', protocol: 'TCP', appProtocol: 'http' },
      { name: 'admin', port: 9090, targetPort: 9090, protocol: 'TCP', appProtocol: undefined },
    ],
  });
  const headless = converted(`
apiVersion: v1
kind: Service
metadata: { name: db }
spec: { clusterIP: None, ports: [{ port: 5432 }] }
`);
  t.match(headless, { clusterIps: [], headless: true, selector: undefined });

  const bad = rejected(`
apiVersion: v1
kind: Service
metadata: { name: reviews, namespace: bookinfo }
spec:
  ports: [{ name: http, port: 9080 }, { port: 9090 }]
`);
  t.equal(bad.field, 'spec.ports[1].name');
  t.match(bad.reason, /required when a Service has several ports/);
});

t.test('EndpointSlice', async (t) => {
  const slice = converted(`
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ext-1, namespace: payments, labels: { kubernetes.io/service-name: ext } }
addressType: IPv4
ports: [{ name: https, port: 8443 }]
endpoints:
  - addresses: [192.168.1.1]
  - addresses: [192.168.1.2]
    conditions: { ready: false }
    nodeName: node-2
    targetRef: { kind: Pod, namespace: payments, name: ext-0 }
`);
  t.match(slice, {
    kind: 'EndpointSlice',
    serviceName: 'ext',
    addressType: 'IPv4',
    ports: [{ name: 'https', port: 8443, protocol: 'TCP' }],
    endpoints: [
      { addresses: ['192.168.1.1'], ready: true, nodeName: undefined },
      {
        addresses: ['192.168.1.2'],
        ready: false,
        nodeName: 'node-2',
        targetRef: { kind: 'Pod', name: 'ext-0' },
      },
    ],
  });
  const bad = rejected(`
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ext-1, namespace: payments }
addressType: IPv4
`);
  t.equal(bad.field, 'metadata.labels["kubernetes.io/service-name"]');
});

t.test('Gateway', async (t) => {
  const gateway = converted(`
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: waypoint, namespace: bookinfo }
spec:
  gatewayClassName: istio-waypoint
  listeners: [{ name: mesh, port: 15008, protocol: HBONE }]
  addresses: [{ value: 10.96.0.99 }]
`);
  t.match(gateway, {
    kind: 'Gateway',
    gatewayClassName: 'istio-waypoint',
    listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE', hostname: undefined }],
    addresses: [{ type: 'IPAddress', value: '10.96.0.99' }],
  });
  const bad = rejected(`
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: waypoint, namespace: bookinfo }
spec:
  gatewayClassName: istio-waypoint
  listeners: [{ name: mesh, port: 150080, protocol: HBONE }]
`);
  t.equal(bad.field, 'spec.listeners[0].port');
  t.match(bad.reason, /must be a port number 1-65535, got 150080/);
});

t.test('HTTPRoute: Gateway API defaults', async (t) => {
  const route = converted(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: reviews, namespace: bookinfo }
spec:
  parentRefs: [{ group: "", kind: Service, name: reviews, port: 9080 }, { name: waypoint }]
  rules:
    - backendRefs: [{ name: reviews-v1, port: 9080 }]
    - matches: [{ headers: [{ name: X-Canary, value: "1" }, { name: x-canary, value: "2" }], method: GET }]
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier: { set: [{ name: x-route, value: canary }], remove: [x-debug] }
      backendRefs: [{ name: reviews-v2, port: 9080, weight: 0 }]
      timeouts: { request: 1m30s, backendRequest: 500ms }
`);
  if (route.kind !== 'HTTPRoute') throw new Error('expected an HTTPRoute');
  t.same(route.parentRefs, [
    {
      group: '',
      kind: 'Service',
      name: 'reviews',
      namespace: 'bookinfo',
      port: 9080,
      sectionName: undefined,
    },
    {
      group: 'gateway.networking.k8s.io',
      kind: 'Gateway',
      name: 'waypoint',
      namespace: 'bookinfo',
      port: undefined,
      sectionName: undefined,
    },
  ]);
  const [first, second] = route.rules;
  t.same(first?.matches, [
    { path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [], method: undefined },
  ]);
  t.same(first?.backendRefs, [
    {
      group: '',
      kind: 'Service',
      name: 'reviews-v1',
      namespace: 'bookinfo',
      port: 9080,
      weight: 1,
      filters: [],
    },
  ]);
  t.same(first?.timeouts, { requestMs: undefined, backendRequestMs: undefined });
  t.same(
    second?.matches[0]?.path,
    { type: 'PathPrefix', value: '/' },
    'a match without path gets PathPrefix /',
  );
  t.same(
    second?.matches[0]?.headers,
    [{ type: 'Exact', name: 'X-Canary', value: '1' }],
    'a repeated header name is ignored',
  );
  t.equal(second?.backendRefs[0]?.weight, 0);
  t.same(second?.filters, [
    {
      type: 'RequestHeaderModifier',
      headers: { set: [{ name: 'x-route', value: 'canary' }], add: [], remove: ['x-debug'] },
    },
  ]);
  t.same(second?.timeouts, { requestMs: 90_000, backendRequestMs: 500 });

  const empty = converted(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: empty }
`);
  t.match(
    empty,
    { rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/' } }], backendRefs: [] }] },
    'no rules: one default rule',
  );
});

t.test('HTTPRoute: validation names the field', async (t) => {
  const route = (rules: string) => `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: reviews, namespace: default }
spec:
  rules:
${rules}`;
  const cases: { rules: string; field: string; reason: RegExp }[] = [
    {
      rules: '    - matches: [{ path: { value: reviews } }]',
      field: 'spec.rules[0].matches[0].path.value',
      reason: /must start with "\/"/,
    },
    {
      rules: '    - matches: [{ path: { type: Exact, value: /a//b } }]',
      field: 'spec.rules[0].matches[0].path.value',
      reason: /must not contain "\/\/"/,
    },
    {
      rules: '    - matches: [{ path: { type: PathPrefix, value: /a/.. } }]',
      field: 'spec.rules[0].matches[0].path.value',
      reason: /must not end with/,
    },
    {
      rules: '    - matches: [{ path: { type: RegularExpression, value: "/a(" } }]',
      field: 'spec.rules[0].matches[0].path.value',
      reason: /valid regular expression/,
    },
    {
      rules: '    - matches: [{ path: { type: Glob, value: /a } }]',
      field: 'spec.rules[0].matches[0].path.type',
      reason: /must be one of Exact, PathPrefix, RegularExpression/,
    },
    {
      rules: '    - backendRefs: [{ name: reviews }]',
      field: 'spec.rules[0].backendRefs[0].port',
      reason: /required for a Service backend/,
    },
    {
      rules: '    - filters: [{ type: ExtensionRef, extensionRef: { group: x, kind: y, name: z } }]',
      field: 'spec.rules[0].filters[0].type',
      reason: /"ExtensionRef" is not supported/,
    },
    {
      rules:
        '    - filters: [{ type: RequestRedirect, requestRedirect: { hostname: x.example } }]\n      backendRefs: [{ name: a, port: 80 }]',
      field: 'spec.rules[0].filters',
      reason: /RequestRedirect when the rule has backendRefs/,
    },
    {
      rules:
        '    - matches: [{ path: { type: Exact, value: /a } }]\n      filters: [{ type: URLRewrite, urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /b } } }]',
      field: 'spec.rules[0].filters[0].urlRewrite.path.type',
      reason: /exactly one match, of type PathPrefix/,
    },
    {
      rules: '    - timeouts: { request: 1s, backendRequest: 2s }',
      field: 'spec.rules[0].timeouts.backendRequest',
      reason: /must not exceed/,
    },
    {
      rules: '    - timeouts: { request: 1.5s }',
      field: 'spec.rules[0].timeouts.request',
      reason: /must be a duration/,
    },
    {
      rules: Array.from({ length: 17 }, () => '    - {}').join('\n'),
      field: 'spec.rules',
      reason: /at most 16 entries, got 17/,
    },
  ];
  for (const c of cases) {
    const bad = rejected(route(c.rules));
    t.equal(bad.field, c.field, `field for: ${c.rules.trim().split('\n')[0]}`);
    t.match(bad.reason, c.reason);
  }
});

t.test('AuthorizationPolicy: shape and defaults', async (t) => {
  const policy = converted(`
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: { name: ratings, namespace: bookinfo, creationTimestamp: "2026-01-02T03:04:05Z" }
spec:
  selector: { matchLabels: { app: ratings } }
  rules:
    - from:
        - source: { principals: [cluster.local/ns/bookinfo/sa/reviews], ipBlocks: [10.0.0.0/8, 192.168.1.1] }
        - source: { serviceAccounts: [reviews, other/sa] }
      to: [{ operation: { ports: ["9080", 9090], methods: [GET] } }]
      when: [{ key: "request.headers[x-user]", values: [alice] }, { key: destination.port, values: [9080] }]
`);
  t.match(policy, {
    kind: 'AuthorizationPolicy',
    action: 'ALLOW',
    provider: undefined,
    dryRun: false,
    createdAtMs: Date.parse('2026-01-02T03:04:05Z'),
    attachment: { type: 'selector', matchLabels: { app: 'ratings' } },
  });
  if (policy.kind !== 'AuthorizationPolicy') throw new Error('expected a policy');
  const rule = policy.rules[0];
  t.same(rule?.from[0]?.ipBlocks, [
    { family: 4, address: '10.0.0.0', prefixLength: 8 },
    { family: 4, address: '192.168.1.1', prefixLength: 32 },
  ]);
  t.same(
    rule?.from[1]?.serviceAccounts,
    ['bookinfo/reviews', 'other/sa'],
    'a bare SA means the policy namespace',
  );
  t.same(rule?.to[0]?.ports, [9080, 9090]);
  t.same(rule?.when[0], {
    key: 'request.headers[x-user]',
    attribute: 'request.headers',
    argument: ['x-user'],
    values: ['alice'],
    notValues: [],
  });
  t.same(rule?.when[1]?.values, ['9080']);

  const allowNothing = converted(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-nothing, namespace: bookinfo }
spec: {}
`);
  const allowAll = converted(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-all, namespace: bookinfo }
spec: { rules: [{}] }
`);
  t.match(
    allowNothing,
    { attachment: { type: 'namespace' }, action: 'ALLOW', rules: [] },
    'no rules: matches nothing',
  );
  t.match(allowAll, { rules: [{ from: [], to: [], when: [] }] }, '[{}]: one rule that matches everything');
});

t.test('AuthorizationPolicy: validation', async (t) => {
  const policy = (spec: string) => `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-all, namespace: default }
spec:
${spec}`;
  const bad = rejected(
    policy(`  action: DENY
  rules: [{ to: [{ operation: { ports: ["8080", http] } }] }]`),
  );
  t.equal(
    formatRejection(bad),
    'manifests/bad.yaml doc 2: AuthorizationPolicy default/deny-all: spec.rules[0].to[0].operation.ports[1] must be a port number 1-65535, got "http"',
  );
  const cases: { spec: string; field: string; reason: RegExp }[] = [
    { spec: '  action: DENY', field: 'spec.rules', reason: /must not be empty for action DENY/ },
    {
      spec: '  action: CUSTOM\n  rules: [{}]',
      field: 'spec.provider.name',
      reason: /required when action is CUSTOM/,
    },
    {
      spec: '  provider: { name: ext }\n  rules: [{}]',
      field: 'spec.provider',
      reason: /only valid with action CUSTOM/,
    },
    {
      spec: '  selector: { matchLabels: { a: b } }\n  targetRefs: [{ kind: Gateway, name: wp }]',
      field: 'spec',
      reason: /at most one of selector/,
    },
    {
      spec: '  rules: [{ from: [] }]',
      field: 'spec.rules[0].from',
      reason: /must not be empty when present/,
    },
    {
      spec: '  rules: [{ from: [{ source: {} }] }]',
      field: 'spec.rules[0].from[0].source',
      reason: /empty source/,
    },
    {
      spec: '  rules: [{ to: [{ operation: { ports: ["0"] } }] }]',
      field: 'spec.rules[0].to[0].operation.ports[0]',
      reason: /1-65535/,
    },
    {
      spec: '  rules: [{ from: [{ source: { ipBlocks: [10.0.0.0/33] } }] }]',
      field: 'spec.rules[0].from[0].source.ipBlocks[0]',
      reason: /IP address or CIDR/,
    },
    {
      spec: '  rules: [{ from: [{ source: { principal: [x] } }] }]',
      field: 'spec.rules[0].from[0].source.principal',
      reason: /not a supported field/,
    },
    {
      spec: '  rules: [{ from: [{ source: { principals: [""] } }] }]',
      field: 'spec.rules[0].from[0].source.principals[0]',
      reason: /non-empty string/,
    },
    {
      spec: '  rules: [{ from: [{ source: { serviceAccounts: [a], namespaces: [b] } }] }]',
      field: 'spec.rules[0].from[0].source',
      reason: /must not combine serviceAccounts/,
    },
    {
      spec: '  rules: [{ when: [{ key: "destination.labels[app]", values: [x] }] }]',
      field: 'spec.rules[0].when[0].key',
      reason: /obsolete/,
    },
    {
      spec: '  rules: [{ when: [{ key: source.ip }] }]',
      field: 'spec.rules[0].when[0]',
      reason: /must set values or notValues/,
    },
    {
      spec: '  rules: [{ when: [{ key: source.ip, values: [nope] }] }]',
      field: 'spec.rules[0].when[0].values[0]',
      reason: /IP address or CIDR/,
    },
    {
      spec: '  action: PERMIT\n  rules: [{}]',
      field: 'spec.action',
      reason: /must be one of ALLOW, DENY, AUDIT, CUSTOM/,
    },
  ];
  for (const c of cases) {
    const rejection = rejected(policy(c.spec));
    t.equal(rejection.field, c.field, `field for: ${c.spec.trim().split('\n')[0]}`);
    t.match(rejection.reason, c.reason);
  }
});

t.test('PeerAuthentication', async (t) => {
  const workload = converted(`
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: ledger, namespace: payments }
spec:
  selector: { matchLabels: { app: ledger } }
  mtls: { mode: STRICT }
  portLevelMtls: { "9090": { mode: PERMISSIVE }, "8080": { mode: DISABLE } }
`);
  t.match(workload, {
    kind: 'PeerAuthentication',
    selector: { app: 'ledger' },
    mode: 'STRICT',
    portLevelMtls: [
      { port: 8080, mode: 'DISABLE' },
      { port: 9090, mode: 'PERMISSIVE' },
    ],
  });
  const mesh = converted(`
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: istio-system }
`);
  t.match(mesh, { selector: undefined, mode: 'UNSET', portLevelMtls: [] });

  const noSelector = rejected(`
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: payments }
spec: { portLevelMtls: { "9090": { mode: STRICT } } }
`);
  t.equal(noSelector.field, 'spec.portLevelMtls');
  const badMode = rejected(`
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: payments }
spec: { mtls: { mode: strict } }
`);
  t.equal(badMode.field, 'spec.mtls.mode');
  t.match(badMode.reason, /must be one of UNSET, DISABLE, PERMISSIVE, STRICT, got "strict"/);
});

t.test('kinds and versions', async (t) => {
  const configMap = convertManifest(parse('apiVersion: v1\nkind: ConfigMap\nmetadata: { name: x }'));
  t.equal(configMap.outcome, 'ignored', 'a kind Weft does not model is ignored');
  const oldRoute = rejected(
    'apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: HTTPRoute\nmetadata: { name: r }',
  );
  t.equal(oldRoute.field, 'apiVersion');
  t.match(oldRoute.reason, /gateway.networking.k8s.io\/v1 or gateway.networking.k8s.io\/v1beta1/);
  const noKind = convertManifest({ apiVersion: 'v1', metadata: { name: 'x' } });
  t.match(noKind, { outcome: 'rejected', rejection: { field: 'kind', reason: 'is required' } });
  const badNamespace = rejected('apiVersion: v1\nkind: Pod\nmetadata: { name: x, namespace: Shop }');
  t.equal(badNamespace.field, 'metadata.namespace');
});

t.test('Gateway API durations', async (t) => {
  t.equal(parseGatewayDuration('0s'), 0);
  t.equal(parseGatewayDuration('1h30m'), 5_400_000);
  t.equal(parseGatewayDuration('1s500ms'), 1500);
  t.equal(parseGatewayDuration('1h2h'), 10_800_000, 'repeated units add up');
  t.equal(parseGatewayDuration('0'), undefined, 'a bare number is not a duration');
  t.equal(parseGatewayDuration('-1s'), undefined);
  t.equal(parseGatewayDuration('1.5s'), undefined);
});

t.test('a rejection carries the object key only when what identifies the object is valid', async (t) => {
  const keyOfRejected = (manifest: unknown) => {
    const result = convertManifest(manifest);
    if (result.outcome !== 'rejected') throw new Error(`expected a rejection, got ${result.outcome}`);
    return result.key;
  };
  const pod = (metadata: unknown, apiVersion: unknown = 'v1') => ({
    apiVersion,
    kind: 'Pod',
    metadata,
    status: { podIP: 'oops' },
  });
  t.same(keyOfRejected(pod({ name: 'web-0', namespace: 'shop' })), {
    kind: 'Pod',
    namespace: 'shop',
    name: 'web-0',
  });
  t.same(keyOfRejected(pod({ name: 'web-0' })), { kind: 'Pod', namespace: 'default', name: 'web-0' });
  t.same(keyOfRejected(pod({ name: 'web-0' }, 'v2')), { kind: 'Pod', namespace: 'default', name: 'web-0' });
  t.equal(keyOfRejected(pod({ name: 'Web_0' })), undefined, 'an invalid name');
  t.equal(keyOfRejected(pod({ name: 'web-0', namespace: 'Shop' })), undefined, 'an invalid namespace');
  t.equal(keyOfRejected(pod({ name: 'web-0', namespace: 7 })), undefined, 'a namespace not a string');
  t.equal(keyOfRejected(pod('oops')), undefined, 'metadata not an object');
  t.equal(keyOfRejected(pod({ name: 'web-0' }, 3)), undefined, 'apiVersion not a string');
  t.equal(keyOfRejected({ apiVersion: 'v1', metadata: { name: 'web-0' } }), undefined, 'no kind');

  const numbered = convertManifest(pod({ name: 'web-0' }, 3));
  t.match(numbered, {
    outcome: 'rejected',
    rejection: { field: 'apiVersion', reason: 'must be a string, got 3' },
  });
  const missing = convertManifest({ kind: 'Pod', metadata: { name: 'web-0' } });
  t.match(missing, { outcome: 'rejected', rejection: { field: 'apiVersion', reason: 'is required' } });
});

t.test('HTTPRoute: the CORS filter and the retry stanza reach the model', async (t) => {
  const route = converted(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: web, namespace: shop }
spec:
  parentRefs: [{ group: '', kind: Service, name: web }]
  rules:
    - filters:
        - type: CORS
          cors: { allowOrigins: ['https://app.example.com'], allowMethods: [GET, PUT] }
      retry: { codes: [503], attempts: 3, backoff: 100ms }
      backendRefs: [{ name: web, port: 80 }]
`) as HttpRoute;
  const rule = route.rules[0]!;
  t.match(rule.filters[0], {
    type: 'CORS',
    cors: { allowOrigins: ['https://app.example.com'], allowMethods: ['GET', 'PUT'], maxAgeSeconds: 5 },
  });
  t.same(rule.retry, { codes: [503], attempts: 3, backoffMs: 100 });
  t.equal(
    (
      converted(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: plain, namespace: shop }
spec:
  parentRefs: [{ group: '', kind: Service, name: web }]
  rules: [{ backendRefs: [{ name: web, port: 80 }] }]
`) as HttpRoute
    ).rules[0]!.retry,
    undefined,
    'no stanza: no retry policy',
  );
});
