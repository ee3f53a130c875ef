// The config model: every record a source can produce, and how records are named.
import type { AuthorizationPolicy } from './authz.js';
import type { Gateway } from './gateway.js';
import type { Namespace } from './namespace.js';
import type { PeerAuthentication } from './peer-auth.js';
import type { HttpRoute } from './route.js';
import type { EndpointSlice, Service } from './service.js';
import type { Workload } from './workload.js';

export * from './authz.js';
export * from './gateway.js';
export * from './ip.js';
export * from './labels.js';
export * from './namespace.js';
export * from './peer-auth.js';
export * from './route.js';
export * from './service.js';
export * from './workload.js';

/** Every typed record; `kind` is the Kubernetes kind it was converted from. */
export type ConfigRecord =
  | Namespace
  | Workload
  | Service
  | EndpointSlice
  | Gateway
  | HttpRoute
  | AuthorizationPolicy
  | PeerAuthentication;

export type ConfigKind = ConfigRecord['kind'];

export const CONFIG_KINDS: readonly ConfigKind[] = [
  'Namespace',
  'Pod',
  'Service',
  'EndpointSlice',
  'Gateway',
  'HTTPRoute',
  'AuthorizationPolicy',
  'PeerAuthentication',
];

/** Names one object. `namespace` is "" for cluster-scoped kinds (Namespace). */
export interface ObjectKey {
  readonly kind: ConfigKind;
  readonly namespace: string;
  readonly name: string;
}

/** A stable map key for an object: `Pod/default/web-1`, `Namespace/default`. */
export function keyString(key: ObjectKey): string {
  return key.namespace === '' ? `${key.kind}/${key.name}` : `${key.kind}/${key.namespace}/${key.name}`;
}

/** The human form used in messages: `Pod default/web-1`, `Namespace default`. */
export function describeKey(key: {
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
}): string {
  return key.namespace === '' ? `${key.kind} ${key.name}` : `${key.kind} ${key.namespace}/${key.name}`;
}

export function keyOf(record: ConfigRecord): ObjectKey {
  const namespace = record.kind === 'Namespace' ? '' : record.namespace;
  return { kind: record.kind, namespace, name: record.name };
}

/** Precedence by age: earlier creation first, unknown timestamps last, then by name so the order is total. */
export function olderFirst(
  a: { readonly createdAtMs: number | undefined; readonly name: string },
  b: { readonly createdAtMs: number | undefined; readonly name: string },
): number {
  const at = a.createdAtMs ?? Number.POSITIVE_INFINITY;
  const bt = b.createdAtMs ?? Number.POSITIVE_INFINITY;
  if (at !== bt) return at < bt ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
