// proxy/tunnel/targets.ts: which CONNECT authorities a waypoint serves, over a ConfigStore built from
// real manifests. A Service VIP is served on its TCP ports when the Service is bound to this very
// waypoint; a pod IP only when the waypoint serves workloads (istio.io/waypoint-for workload|all);
// everything else, and anything that is not ip:port, is refused with 400 before a byte is read.
import t from 'tap';
import type { ConfigStore } from '../../../core/store.js';
import { resolveTunnelTarget, type TargetDecision } from '../../../proxy/tunnel/targets.js';
import { storeOf, type Manifest } from '../../helpers/routing.js';

const WAYPOINT = { namespace: 'mesh', name: 'waypoint' } as const;

function namespace(name: string, labels: Record<string, string> = {}): Manifest {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } };
}

function gateway(ns: string, name: string, labels: Record<string, string> = {}): Manifest {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name, namespace: ns, labels },
    spec: {
      gatewayClassName: 'istio-waypoint',
      listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }],
    },
  };
}

function service(
  ns: string,
  name: string,
  clusterIPs: string[],
  labels: Record<string, string> = {},
  ports: Manifest[] = [
    { name: 'http', port: 80, targetPort: 8080 },
    { name: 'dns', port: 53, protocol: 'UDP' },
    { name: 'grpc', port: 9090, protocol: 'TCP', appProtocol: 'grpc' },
  ],
): Manifest {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: ns, labels },
    spec: { clusterIP: clusterIPs[0], clusterIPs, selector: { app: name }, ports },
  };
}

function pod(
  ns: string,
  name: string,
  ip: string,
  labels: Record<string, string> = {},
  phase = 'Running',
): Manifest {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, uid: `uid-${name}`, labels },
    spec: { serviceAccountName: 'default', nodeName: 'node-1', containers: [{ name: 'app' }] },
    status: { phase, podIP: ip },
  };
}

/**
 * `mesh` uses waypoint `mesh/waypoint` (labelled `waypointFor`, unless undefined); `other` uses its own
 * `other/waypoint`; `plain` uses none.
 */
function world(waypointFor?: string, extra: Manifest[] = []): ConfigStore {
  return storeOf([
    namespace('mesh', { 'istio.io/dataplane-mode': 'ambient', 'istio.io/use-waypoint': 'waypoint' }),
    namespace('other', { 'istio.io/dataplane-mode': 'ambient', 'istio.io/use-waypoint': 'waypoint' }),
    namespace('plain', { 'istio.io/dataplane-mode': 'ambient' }),
    gateway('mesh', 'waypoint', waypointFor === undefined ? {} : { 'istio.io/waypoint-for': waypointFor }),
    gateway('mesh', 'second'),
    gateway('other', 'waypoint', waypointFor === undefined ? {} : { 'istio.io/waypoint-for': waypointFor }),
    service('mesh', 'echo', ['10.96.0.10', 'fd00:10:96::10']),
    service('mesh', 'opted-out', ['10.96.0.11'], { 'istio.io/use-waypoint': 'none' }),
    service('mesh', 'uses-second', ['10.96.0.12'], { 'istio.io/use-waypoint': 'second' }),
    service('mesh', 'uses-missing', ['10.96.0.13'], { 'istio.io/use-waypoint': 'gone' }),
    service('other', 'echo', ['10.96.1.10']),
    service('plain', 'echo', ['10.96.2.10']),
    service('plain', 'named-waypoint', ['10.96.2.11'], { 'istio.io/use-waypoint': 'waypoint' }),
    pod('mesh', 'echo-0', '10.1.0.10', { app: 'echo' }),
    pod('mesh', 'opted-out-0', '10.1.0.11', { app: 'opted-out', 'istio.io/use-waypoint': 'none' }),
    pod('mesh', 'done-0', '10.1.0.12', { app: 'echo' }, 'Succeeded'),
    pod('mesh', 'waypoint-0', '10.1.0.13', { 'gateway.networking.k8s.io/gateway-name': 'waypoint' }),
    pod('other', 'echo-0', '10.1.1.10', { app: 'echo' }),
    pod('plain', 'echo-0', '10.1.2.10', { app: 'echo' }),
    ...extra,
  ]);
}

/** A short, comparable form of a decision. */
function summary(d: TargetDecision): string {
  switch (d.kind) {
    case 'service':
      return `service ${d.service.namespace}/${d.service.name} port ${d.port.port} via ${d.dialled.ip}:${d.dialled.port}`;
    case 'workload':
      return `workload ${d.workload.namespace}/${d.workload.name} via ${d.dialled.ip}:${d.dialled.port}`;
    case 'refuse':
      return `refuse ${d.status}`;
  }
}

t.test('a Service VIP bound to this waypoint is a service target with its port', async (t) => {
  const store = world();
  const d = resolveTunnelTarget(store, WAYPOINT, '10.96.0.10:80');
  t.equal(summary(d), 'service mesh/echo port 80 via 10.96.0.10:80');
  if (d.kind !== 'service') return;
  t.strictSame(d.dialled, { ip: '10.96.0.10', port: 80 });
  t.equal(d.service, store.serviceByVip('10.96.0.10'), 'the stored Service record');
  t.match(d.port, { name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' });

  const grpc = resolveTunnelTarget(store, WAYPOINT, '10.96.0.10:9090');
  t.match(grpc, { kind: 'service', port: { name: 'grpc', port: 9090, appProtocol: 'grpc' } }, 'another port');
  t.equal(
    summary(resolveTunnelTarget(store, WAYPOINT, '[fd00:10:96::10]:80')),
    'service mesh/echo port 80 via fd00:10:96::10:80',
    'its IPv6 VIP, bracketed',
  );
  t.equal(
    summary(resolveTunnelTarget(store, WAYPOINT, '[FD00:10:96:0::10]:80')),
    'service mesh/echo port 80 via fd00:10:96::10:80',
    'in any spelling of the address (canonicalized)',
  );
  t.equal(
    summary(resolveTunnelTarget(store, { namespace: 'other', name: 'waypoint' }, '10.96.1.10:80')),
    'service other/echo port 80 via 10.96.1.10:80',
    'the other namespace for its own waypoint',
  );
  const own = world(undefined, [
    service('plain', 'labelled', ['10.96.2.12'], { 'istio.io/use-waypoint': 'waypoint' }),
    gateway('plain', 'waypoint'),
  ]);
  t.equal(
    summary(resolveTunnelTarget(own, { namespace: 'plain', name: 'waypoint' }, '10.96.2.12:80')),
    'service plain/labelled port 80 via 10.96.2.12:80',
    "a Service's own label binds it without a namespace label",
  );
});

t.test('Service VIPs this waypoint does not serve are refused with 400', async (t) => {
  const store = world();
  const cases: [label: string, authority: string, reason: RegExp][] = [
    ['a port the Service does not have', '10.96.0.10:8080', /service mesh\/echo has no TCP port 8080/],
    ['a UDP port', '10.96.0.10:53', /service mesh\/echo has no TCP port 53/],
    [
      'bound to the same-named waypoint of another namespace',
      '10.96.1.10:80',
      /service other\/echo is not bound to waypoint mesh\/waypoint/,
    ],
    [
      'bound to another waypoint of this namespace',
      '10.96.0.12:80',
      /service mesh\/uses-second is not bound to waypoint mesh\/waypoint/,
    ],
    [
      'opted out with istio.io/use-waypoint=none',
      '10.96.0.11:80',
      /service mesh\/opted-out is not bound to waypoint mesh\/waypoint/,
    ],
    ['bound to a waypoint that does not exist', '10.96.0.13:80', /service mesh\/uses-missing is not bound/],
    ['in a namespace without a waypoint', '10.96.2.10:80', /service plain\/echo is not bound/],
    [
      'labelled with this name, but that names a Gateway in its own namespace',
      '10.96.2.11:80',
      /service plain\/named-waypoint is not bound/,
    ],
  ];
  for (const [label, authority, reason] of cases)
    t.match(resolveTunnelTarget(store, WAYPOINT, authority), { kind: 'refuse', status: 400, reason }, label);
});

t.test('a waypoint for workloads only does not serve Service VIPs', async (t) => {
  t.match(resolveTunnelTarget(world('workload'), WAYPOINT, '10.96.0.10:80'), {
    kind: 'refuse',
    status: 400,
    reason: /not bound to waypoint mesh\/waypoint/,
  });
  t.equal(
    summary(resolveTunnelTarget(world('all'), WAYPOINT, '10.96.0.10:80')),
    'service mesh/echo port 80 via 10.96.0.10:80',
    'one for all does',
  );
});

t.test('a pod IP is a workload target only when the waypoint serves workloads', async (t) => {
  for (const waypointFor of ['workload', 'all']) {
    const store = world(waypointFor);
    const d = resolveTunnelTarget(store, WAYPOINT, '10.1.0.10:8080');
    t.equal(summary(d), 'workload mesh/echo-0 via 10.1.0.10:8080', `waypoint-for ${waypointFor}`);
    if (d.kind === 'workload') t.equal(d.workload, store.workloadByIp('10.1.0.10'), 'the stored record');
    t.equal(
      summary(resolveTunnelTarget(store, WAYPOINT, '10.1.0.10:1')),
      'workload mesh/echo-0 via 10.1.0.10:1',
      'on any port: pods have no port list here',
    );
  }
  for (const waypointFor of [undefined, 'service', 'none']) {
    t.match(
      resolveTunnelTarget(world(waypointFor), WAYPOINT, '10.1.0.10:8080'),
      { kind: 'refuse', status: 400, reason: /pod mesh\/echo-0 is not bound to waypoint mesh\/waypoint/ },
      `waypoint-for ${waypointFor ?? '(default: service)'}`,
    );
  }
});

t.test('pods a workload waypoint still refuses', async (t) => {
  const store = world('all');
  const cases: [label: string, authority: string, reason: RegExp][] = [
    ['opted out with use-waypoint=none', '10.1.0.11:8080', /pod mesh\/opted-out-0 is not bound/],
    ["the waypoint's own pod (would loop)", '10.1.0.13:15008', /pod mesh\/waypoint-0 is not bound/],
    [
      'a pod of another waypoint',
      '10.1.1.10:8080',
      /pod other\/echo-0 is not bound to waypoint mesh\/waypoint/,
    ],
    ['a pod without a waypoint', '10.1.2.10:8080', /pod plain\/echo-0 is not bound/],
    ['a terminated pod', '10.1.0.12:8080', /10\.1\.0\.12 is neither a Service VIP nor a pod of the mesh/],
  ];
  for (const [label, authority, reason] of cases)
    t.match(resolveTunnelTarget(store, WAYPOINT, authority), { kind: 'refuse', status: 400, reason }, label);
});

t.test('an address nobody owns is refused', async (t) => {
  for (const authority of ['10.9.9.9:80', '[fd00::99]:80', '127.0.0.1:15008'])
    t.match(
      resolveTunnelTarget(world('all'), WAYPOINT, authority),
      { kind: 'refuse', status: 400, reason: /is neither a Service VIP nor a pod of the mesh/ },
      authority,
    );
});

t.test('an authority that is not ip:port is refused with 400', async (t) => {
  const store = world('all');
  const cases: (string | undefined)[] = [
    undefined,
    '',
    'echo.mesh.svc.cluster.local:80',
    'echo:80',
    '10.96.0.10',
    '10.96.0.10:',
    '10.96.0.10:0',
    '10.96.0.10:65536',
    '10.96.0.10:80:80',
    '10.96.0.10:+80',
    ' 10.96.0.10:80',
    '10.96.0.10:80 ',
    '10.96.0.256:80',
    '[10.96.0.10]:80',
    'fd00:10:96::10:80',
    '[fd00:10:96::10]',
    'http://10.96.0.10:80',
    `10.96.0.10:${'0'.repeat(60)}80`,
  ];
  for (const authority of cases) {
    t.match(
      resolveTunnelTarget(store, WAYPOINT, authority),
      { kind: 'refuse', status: 400, reason: /^CONNECT authority .* is not ip:port$/ },
      JSON.stringify(authority) ?? 'undefined',
    );
  }
});
