// Shared builders for the routing-engine tests: a small mesh (modelled on the Gateway API mesh
// conformance setup: Services echo, echo-v1, echo-v2 bound to a waypoint) built from real manifests
// through the real converters into a real ConfigStore.
import { convertManifest, formatRejection } from '../../core/convert/index.js';
import type { ConfigRecord, HttpRoute } from '../../core/model/index.js';
import { ConfigStore } from '../../core/store.js';
import type { RouteRequest } from '../../proxy/routing/request.js';

export type Manifest = Record<string, unknown>;

export const MESH_NS = 'mesh';
export const WAYPOINT = { namespace: MESH_NS, name: 'waypoint' } as const;
export const VIPS = {
  echo: '10.96.0.10',
  'echo-v1': '10.96.0.11',
  'echo-v2': '10.96.0.12',
  empty: '10.96.0.20',
};

export function convert(manifest: Manifest): ConfigRecord {
  const result = convertManifest(manifest);
  if (result.outcome !== 'converted') {
    throw new Error(result.outcome === 'rejected' ? formatRejection(result.rejection) : result.reason);
  }
  return result.record;
}

export function storeOf(manifests: readonly Manifest[]): ConfigStore {
  const store = new ConfigStore();
  store.apply({ upserts: manifests.map(convert), deletes: [], rejections: [] });
  return store;
}

function service(name: string, ip: string, selector: Record<string, string>, labels = {}): Manifest {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: MESH_NS, labels },
    spec: {
      clusterIP: ip,
      selector,
      ports: [
        { name: 'http', port: 80, targetPort: 8080 },
        { name: 'http-alt', port: 8080, targetPort: 8080 },
      ],
    },
  };
}

function pod(name: string, ip: string, labels: Record<string, string>): Manifest {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: MESH_NS, uid: `uid-${name}`, labels },
    spec: { serviceAccountName: 'echo', nodeName: 'node-1', containers: [{ name: 'echo' }] },
    status: { phase: 'Running', podIP: ip },
  };
}

/** The namespace (bound to the waypoint), the waypoint, four Services and the echo pods. */
export function meshWorld(): Manifest[] {
  return [
    {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: {
        name: MESH_NS,
        labels: { 'istio.io/dataplane-mode': 'ambient', 'istio.io/use-waypoint': 'waypoint' },
      },
    },
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'consumer' } },
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: 'waypoint', namespace: MESH_NS },
      spec: {
        gatewayClassName: 'istio-waypoint',
        listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }],
      },
    },
    service('echo', VIPS.echo, { app: 'echo' }),
    service('echo-v1', VIPS['echo-v1'], { app: 'echo', version: 'v1' }),
    service('echo-v2', VIPS['echo-v2'], { app: 'echo', version: 'v2' }),
    service('empty', VIPS.empty, { app: 'nobody' }),
    pod('echo-v1-0', '10.1.0.11', { app: 'echo', version: 'v1' }),
    pod('echo-v2-0', '10.1.0.12', { app: 'echo', version: 'v2' }),
  ];
}

export interface RouteOptions {
  readonly namespace?: string;
  readonly createdAt?: string;
}

/** An HTTPRoute manifest in the mesh namespace unless told. */
export function httpRoute(name: string, spec: Manifest, options: RouteOptions = {}): Manifest {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: {
      name,
      namespace: options.namespace ?? MESH_NS,
      ...(options.createdAt === undefined ? {} : { creationTimestamp: options.createdAt }),
    },
    spec,
  };
}

/** A Service parentRef (group "", kind Service) in the mesh namespace. */
export function serviceParent(name: string, extra: Manifest = {}): Manifest {
  return { group: '', kind: 'Service', name, namespace: MESH_NS, ...extra };
}

/** A backendRef to a mesh Service on port 80 (namespace explicit, so consumer routes reach it too). */
export function backend(name: string, extra: Manifest = {}): Manifest {
  return { name, namespace: MESH_NS, port: 80, ...extra };
}

/** A route converted alone (for tests that need the record, not a store). */
export function routeRecord(name: string, spec: Manifest, options?: RouteOptions): HttpRoute {
  return convert(httpRoute(name, spec, options)) as HttpRoute;
}

export interface RequestOptions {
  readonly service?: keyof typeof VIPS;
  readonly port?: number;
  readonly client?: string;
  readonly method?: string;
  readonly path?: string;
  readonly query?: string;
  readonly headers?: Record<string, string | string[]>;
}

/** A request dialled to a mesh Service (echo:80 from the mesh namespace unless told). */
export function request(options: RequestOptions = {}): RouteRequest {
  const service = options.service ?? 'echo';
  return {
    dialled: { ip: VIPS[service], port: options.port ?? 80 },
    clientNamespace: options.client ?? MESH_NS,
    method: options.method ?? 'GET',
    path: options.path ?? '/',
    query: options.query ?? '',
    headers: { host: service, ...options.headers },
  };
}
