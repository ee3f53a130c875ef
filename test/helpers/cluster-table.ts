// One small cluster as Kubernetes objects, for tests that run a component against both config sources
// (`file:` and the API server double) and compare: two nodes, an enrolled namespace with a waypoint,
// an enrolled namespace without one, a namespace outside the mesh, Services with EndpointSlices,
// HTTPRoutes, L4 and L7 AuthorizationPolicies, a PeerAuthentication, and one invalid object.
import type { KubeObject } from './kube-api-server.js';

const AMBIENT = { 'istio.io/dataplane-mode': 'ambient' };

function pod(
  namespace: string,
  name: string,
  ip: string,
  node: string,
  serviceAccount: string,
  labels: Record<string, string>,
  port = 8080,
  hostNetwork = false,
): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels, uid: `uid-${namespace}-${name}` },
    spec: {
      nodeName: node,
      serviceAccountName: serviceAccount,
      ...(hostNetwork ? { hostNetwork: true } : {}),
      containers: [{ name: 'app', ports: [{ name: 'http', containerPort: port }] }],
    },
    status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
  };
}

function service(
  namespace: string,
  name: string,
  clusterIP: string,
  selector: Record<string, string>,
  port: number,
  targetPort: number,
  labels: Record<string, string> = {},
): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace, labels },
    spec: { clusterIP, selector, ports: [{ name: 'http', port, targetPort, protocol: 'TCP' }] },
  };
}

function slice(
  namespace: string,
  service: string,
  port: number,
  endpoints: readonly { ip: string; node: string; pod: string }[],
): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `${service}-abc`, namespace, labels: { 'kubernetes.io/service-name': service } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port, protocol: 'TCP' }],
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      nodeName: e.node,
      conditions: { ready: true },
      targetRef: { kind: 'Pod', namespace, name: e.pod },
    })),
  };
}

export const CLUSTER_TABLE: readonly KubeObject[] = [
  {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: 'shop', labels: { ...AMBIENT, 'istio.io/use-waypoint': 'waypoint' } },
  },
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'data', labels: AMBIENT } },
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'legacy' } },
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'weft-system' } },
  // The node agents, as the chart's DaemonSet runs them: host network, the node's address.
  pod(
    'weft-system',
    'weft-agent-node-1',
    '192.168.0.1',
    'node-1',
    'weft-agent',
    { app: 'weft-agent' },
    15008,
    true,
  ),
  pod(
    'weft-system',
    'weft-agent-node-2',
    '192.168.0.2',
    'node-2',
    'weft-agent',
    { app: 'weft-agent' },
    15008,
    true,
  ),
  pod('shop', 'web-0', '10.1.1.10', 'node-1', 'web', { app: 'web' }),
  pod('shop', 'web-1', '10.1.2.10', 'node-2', 'web', { app: 'web' }),
  pod('shop', 'client', '10.1.1.11', 'node-1', 'client', { app: 'client' }),
  pod('shop', 'waypoint-0', '10.1.2.12', 'node-2', 'waypoint', {
    'gateway.networking.k8s.io/gateway-name': 'waypoint',
    'istio.io/dataplane-mode': 'none',
  }),
  pod('data', 'db-0', '10.1.2.20', 'node-2', 'db', { app: 'db' }, 5432),
  pod('legacy', 'old', '10.1.1.30', 'node-1', 'default', { app: 'old' }),
  service('shop', 'web', '10.96.0.10', { app: 'web' }, 80, 8080),
  service('data', 'db', '10.96.0.20', { app: 'db' }, 5432, 5432),
  service(
    'shop',
    'waypoint',
    '10.96.0.12',
    { 'gateway.networking.k8s.io/gateway-name': 'waypoint' },
    15008,
    15008,
  ),
  slice('shop', 'web', 8080, [
    { ip: '10.1.1.10', node: 'node-1', pod: 'web-0' },
    { ip: '10.1.2.10', node: 'node-2', pod: 'web-1' },
  ]),
  slice('data', 'db', 5432, [{ ip: '10.1.2.20', node: 'node-2', pod: 'db-0' }]),
  {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: 'waypoint', namespace: 'shop', labels: { 'istio.io/waypoint-for': 'service' } },
    spec: {
      gatewayClassName: 'istio-waypoint',
      listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }],
    },
  },
  {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'web', namespace: 'shop' },
    spec: {
      parentRefs: [{ group: '', kind: 'Service', name: 'web' }],
      rules: [
        {
          matches: [{ path: { type: 'PathPrefix', value: '/api' } }],
          backendRefs: [{ name: 'web', port: 80 }],
        },
        {
          matches: [{ path: { type: 'Exact', value: '/missing' } }],
          backendRefs: [{ name: 'nope', port: 80 }],
        },
      ],
    },
  },
  {
    apiVersion: 'security.istio.io/v1',
    kind: 'AuthorizationPolicy',
    metadata: { name: 'db-from-web', namespace: 'data' },
    spec: {
      selector: { matchLabels: { app: 'db' } },
      action: 'ALLOW',
      rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/web'] } }] }],
    },
  },
  {
    apiVersion: 'security.istio.io/v1',
    kind: 'AuthorizationPolicy',
    metadata: { name: 'web-reads', namespace: 'shop' },
    spec: {
      targetRefs: [{ kind: 'Service', group: '', name: 'web' }],
      action: 'ALLOW',
      rules: [{ to: [{ operation: { methods: ['GET'] } }] }],
    },
  },
  {
    apiVersion: 'security.istio.io/v1',
    kind: 'PeerAuthentication',
    metadata: { name: 'strict', namespace: 'data' },
    spec: { mtls: { mode: 'STRICT' } },
  },
  {
    apiVersion: 'security.istio.io/v1',
    kind: 'AuthorizationPolicy',
    metadata: { name: 'bad-action', namespace: 'shop' },
    spec: { action: 'MAYBE' },
  },
];
