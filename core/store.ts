// The config store: every current record, and the indexes the hot path reads.
//
// Invariants:
// - A batch is applied in one synchronous call (`apply`); between batches every index agrees with the
//   records, so a reader that looks things up within one tick sees one version of the configuration.
// - Indexes are maintained per record change, never rebuilt whole: a pod update costs O(Services in
//   its namespace), a Service update O(pods in its namespace), a policy update O(1) (a generation bump).
// - Derived views (a Service's endpoints, the policies of a workload) are cached and recomputed lazily
//   on the first read after something they depend on changed.
// - Records are frozen and shared by reference; callers must not (and cannot) mutate them.
// - A rejected object keeps its last good record: only `deletes` remove records.
import { EventEmitter } from 'node:events';
import { rejectionKey, type Rejection } from './convert/rejection.js';
import { componentLogger } from './log.js';
import {
  keyOf,
  keyString,
  labelsEqual,
  labelsMatch,
  olderFirst,
  policyAppliesToWorkload,
  isTerminated,
  type AuthorizationPolicy,
  type ConfigRecord,
  type EndpointSlice,
  type Gateway,
  type HttpRoute,
  type Namespace,
  type ObjectKey,
  type PeerAuthentication,
  type PeerAuthenticationLevels,
  type Service,
  type ServiceEndpoint,
  type Workload,
} from './model/index.js';
import type { ConfigBatch, ConfigSink } from './sources/source.js';

const log = componentLogger('core.store');

/** Istio's default `meshConfig.rootNamespace`: policies here are mesh-wide. */
export const DEFAULT_ROOT_NAMESPACE = 'istio-system';
/** Kubernetes' default cluster domain, the suffix of `<svc>.<ns>.svc.<domain>`. */
export const DEFAULT_CLUSTER_DOMAIN = 'cluster.local';

export interface ConfigStoreOptions {
  readonly rootNamespace?: string;
  readonly clusterDomain?: string;
}

/** What one applied batch changed; the second argument of the `applied` event. */
export interface AppliedChange {
  readonly version: number;
  readonly upserted: readonly ObjectKey[];
  readonly deleted: readonly ObjectKey[];
  readonly rejected: readonly Rejection[];
}

interface StoreEvents {
  applied: [version: number, change: AppliedChange];
}

/** `namespace/name`: the key of a namespaced object within one kind. */
function nsName(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/** A pod can serve a Service once it runs and has an address. */
function isEndpointCandidate(workload: Workload): boolean {
  return workload.phase === 'Running' && workload.podIps.length > 0;
}

function selects(service: Service, workload: Workload): boolean {
  return (
    service.selector !== undefined &&
    isEndpointCandidate(workload) &&
    labelsMatch(service.selector, workload.labels)
  );
}

/**
 * The records that claim one address, oldest claim first. Most addresses have one owner, kept without a
 * list; only a shared one (a finished pod's IP reused, a cluster IP two Services list) needs the list.
 * Adding and removing cost O(owners of that address).
 */
type Owners<T extends object> = T | T[];

function addOwner<T extends object>(index: Map<string, Owners<T>>, address: string, owner: T): void {
  const owners = index.get(address);
  if (owners === undefined) index.set(address, owner);
  else if (Array.isArray(owners)) owners.push(owner);
  else index.set(address, [owners, owner]);
}

function removeOwner<T extends object>(index: Map<string, Owners<T>>, address: string, owner: T): void {
  const owners = index.get(address);
  if (owners === owner) {
    index.delete(address);
  } else if (Array.isArray(owners)) {
    const rest = owners.filter((other) => other !== owner);
    const only = rest.length === 1 ? rest[0] : undefined;
    if (rest.length === 0) index.delete(address);
    else index.set(address, only ?? rest);
  }
}

/** A two-level map `outer -> inner -> value`, for "everything in namespace N" and "pods on node X". */
class GroupedMap<V> {
  readonly #groups = new Map<string, Map<string, V>>();

  set(group: string, key: string, value: V): void {
    let inner = this.#groups.get(group);
    if (inner === undefined) {
      inner = new Map();
      this.#groups.set(group, inner);
    }
    inner.set(key, value);
  }

  delete(group: string, key: string): void {
    const inner = this.#groups.get(group);
    if (inner === undefined) return;
    inner.delete(key);
    if (inner.size === 0) this.#groups.delete(group);
  }

  get(group: string, key: string): V | undefined {
    return this.#groups.get(group)?.get(key);
  }

  values(group: string): Iterable<V> {
    return this.#groups.get(group)?.values() ?? [];
  }

  size(group: string): number {
    return this.#groups.get(group)?.size ?? 0;
  }

  /** Every value of every group. */
  *allValues(): Iterable<V> {
    for (const inner of this.#groups.values()) yield* inner.values();
  }
}

interface CachedPolicies<T> {
  /** The exact workload object the answer was computed for: a new record (new labels) misses. */
  readonly workload: Workload;
  readonly namespaceGeneration: number;
  readonly rootGeneration: number;
  readonly value: T;
}

export class ConfigStore extends EventEmitter<StoreEvents> implements ConfigSink {
  readonly rootNamespace: string;
  readonly clusterDomain: string;

  #version = 0;
  readonly #records = new Map<string, ConfigRecord>();
  readonly #rejections = new Map<string, Rejection>();

  readonly #namespaces = new Map<string, Namespace>();

  readonly #workloads = new Map<string, Workload>();
  readonly #workloadByUid = new Map<string, Workload>();
  readonly #workloadByIp = new Map<string, Owners<Workload>>();
  readonly #workloadsByNode = new GroupedMap<Workload>();
  readonly #workloadsByNamespace = new GroupedMap<Workload>();
  /** (namespace, service account, node) -> live pods; answers the CA's "may this node ask for this identity". */
  readonly #placements = new Map<string, number>();

  readonly #services = new Map<string, Service>();
  readonly #servicesByNamespace = new GroupedMap<Service>();
  /** Cluster IPs are unique in a real cluster; here two Services may list one, and the latest claim answers. */
  readonly #serviceByVip = new Map<string, Owners<Service>>();
  readonly #serviceByHost = new Map<string, Service>();
  readonly #slicesByService = new GroupedMap<EndpointSlice>();
  /** Service key -> the pods its selector picks (Running, with an IP), kept current per pod change. */
  readonly #selectedPods = new GroupedMap<Workload>();
  readonly #endpointCache = new Map<string, readonly ServiceEndpoint[]>();

  readonly #gateways = new GroupedMap<Gateway>();
  readonly #httpRoutes = new GroupedMap<HttpRoute>();

  readonly #authorizationPolicies = new GroupedMap<AuthorizationPolicy>();
  readonly #peerAuthentications = new GroupedMap<PeerAuthentication>();
  /** Bumped on any policy change in a namespace; cached per-workload answers compare generations. */
  readonly #authzGenerations = new Map<string, number>();
  readonly #peerAuthGenerations = new Map<string, number>();
  readonly #authzCache = new Map<string, CachedPolicies<readonly AuthorizationPolicy[]>>();
  readonly #peerAuthCache = new Map<string, CachedPolicies<PeerAuthenticationLevels>>();

  constructor(options: ConfigStoreOptions = {}) {
    super();
    this.rootNamespace = options.rootNamespace ?? DEFAULT_ROOT_NAMESPACE;
    this.clusterDomain = options.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN;
  }

  /** Incremented once per applied batch; 0 until the first one. */
  get version(): number {
    return this.#version;
  }

  // ---- applying -------------------------------------------------------------------------------

  /** Applies a whole batch in one synchronous step, then emits `applied` with the new version. */
  apply(batch: ConfigBatch): void {
    const deleted: ObjectKey[] = [];
    for (const key of batch.deletes) {
      if (this.#remove(key)) deleted.push(key);
      this.#rejections.delete(keyString(key));
    }
    const upserted: ObjectKey[] = [];
    for (const record of batch.upserts) {
      const key = keyOf(record);
      this.#put(record);
      this.#rejections.delete(keyString(key));
      upserted.push(key);
    }
    for (const rejection of batch.rejections) this.#rejections.set(rejectionKey(rejection), rejection);
    for (const key of batch.clearedRejections ?? []) this.#rejections.delete(key);
    this.#version += 1;
    const change: AppliedChange = { version: this.#version, upserted, deleted, rejected: batch.rejections };
    // The first load at info; later batches (every pod change in a large cluster) at debug.
    log[this.#version === 1 ? 'info' : 'debug'](
      {
        version: this.#version,
        upserts: upserted.length,
        deletes: deleted.length,
        rejections: batch.rejections.length,
      },
      'config applied',
    );
    this.emit('applied', this.#version, change);
  }

  /** Resolves once `version` (or a later one) has been applied. */
  whenVersion(version: number): Promise<number> {
    if (this.#version >= version) return Promise.resolve(this.#version);
    return new Promise((resolve) => {
      const onApplied = (applied: number): void => {
        if (applied < version) return;
        this.off('applied', onApplied);
        resolve(applied);
      };
      this.on('applied', onApplied);
    });
  }

  #put(record: ConfigRecord): void {
    const previous = this.#records.get(keyString(keyOf(record)));
    this.#records.set(keyString(keyOf(record)), record);
    switch (record.kind) {
      case 'Namespace':
        this.#namespaces.set(record.name, record);
        return;
      case 'Pod':
        return this.#putWorkload(record, previous?.kind === 'Pod' ? previous : undefined);
      case 'Service':
        return this.#putService(record, previous?.kind === 'Service' ? previous : undefined);
      case 'EndpointSlice':
        return this.#putSlice(record, previous?.kind === 'EndpointSlice' ? previous : undefined);
      case 'Gateway':
        return this.#gateways.set(record.namespace, record.name, record);
      case 'HTTPRoute':
        return this.#httpRoutes.set(record.namespace, record.name, record);
      case 'AuthorizationPolicy':
        this.#authorizationPolicies.set(record.namespace, record.name, record);
        return bump(this.#authzGenerations, record.namespace);
      case 'PeerAuthentication':
        this.#peerAuthentications.set(record.namespace, record.name, record);
        return bump(this.#peerAuthGenerations, record.namespace);
    }
  }

  /** Removes a record and its index entries; false if there was none. */
  #remove(key: ObjectKey): boolean {
    const id = keyString(key);
    const record = this.#records.get(id);
    if (record === undefined) return false;
    this.#records.delete(id);
    switch (record.kind) {
      case 'Namespace':
        this.#namespaces.delete(record.name);
        break;
      case 'Pod':
        this.#removeWorkload(record);
        break;
      case 'Service':
        this.#removeService(record);
        break;
      case 'EndpointSlice':
        this.#removeSlice(record);
        break;
      case 'Gateway':
        this.#gateways.delete(record.namespace, record.name);
        break;
      case 'HTTPRoute':
        this.#httpRoutes.delete(record.namespace, record.name);
        break;
      case 'AuthorizationPolicy':
        this.#authorizationPolicies.delete(record.namespace, record.name);
        bump(this.#authzGenerations, record.namespace);
        break;
      case 'PeerAuthentication':
        this.#peerAuthentications.delete(record.namespace, record.name);
        bump(this.#peerAuthGenerations, record.namespace);
        break;
    }
    return true;
  }

  // ---- workloads ------------------------------------------------------------------------------

  #putWorkload(next: Workload, previous: Workload | undefined): void {
    if (previous !== undefined) this.#unindexWorkload(previous);
    const key = nsName(next.namespace, next.name);
    this.#workloads.set(key, next);
    this.#workloadByUid.set(next.uid, next);
    if (!next.hostNetwork) for (const ip of next.podIps) addOwner(this.#workloadByIp, ip, next);
    if (next.nodeName !== undefined) this.#workloadsByNode.set(next.nodeName, key, next);
    this.#workloadsByNamespace.set(next.namespace, key, next);
    this.#countPlacement(next, +1);
    for (const service of this.#servicesByNamespace.values(next.namespace)) {
      const serviceKey = nsName(service.namespace, service.name);
      const wasSelected = this.#selectedPods.get(serviceKey, key) !== undefined;
      const isSelected = selects(service, next);
      if (isSelected) this.#selectedPods.set(serviceKey, key, next);
      else if (wasSelected) this.#selectedPods.delete(serviceKey, key);
      // A selected pod that changed (moved node, new IP) changes the endpoints as much as joining does.
      if (isSelected || wasSelected) this.#endpointCache.delete(serviceKey);
    }
  }

  #removeWorkload(workload: Workload): void {
    this.#unindexWorkload(workload);
    const key = nsName(workload.namespace, workload.name);
    this.#workloads.delete(key);
    this.#authzCache.delete(key);
    this.#peerAuthCache.delete(key);
    for (const service of this.#servicesByNamespace.values(workload.namespace)) {
      const serviceKey = nsName(service.namespace, service.name);
      if (this.#selectedPods.get(serviceKey, key) === undefined) continue;
      this.#selectedPods.delete(serviceKey, key);
      this.#endpointCache.delete(serviceKey);
    }
  }

  /** Removes the indexes keyed by the workload's fields (which may change on update). */
  #unindexWorkload(workload: Workload): void {
    const key = nsName(workload.namespace, workload.name);
    if (this.#workloadByUid.get(workload.uid) === workload) this.#workloadByUid.delete(workload.uid);
    if (!workload.hostNetwork)
      for (const ip of workload.podIps) removeOwner(this.#workloadByIp, ip, workload);
    if (workload.nodeName !== undefined) this.#workloadsByNode.delete(workload.nodeName, key);
    this.#workloadsByNamespace.delete(workload.namespace, key);
    this.#countPlacement(workload, -1);
  }

  #countPlacement(workload: Workload, delta: 1 | -1): void {
    if (workload.nodeName === undefined || isTerminated(workload)) return;
    const key = placementKey(workload.namespace, workload.serviceAccount, workload.nodeName);
    const count = (this.#placements.get(key) ?? 0) + delta;
    if (count > 0) this.#placements.set(key, count);
    else this.#placements.delete(key);
  }

  /** The pod with this IP; a live pod wins over a finished one that still lists the address. */
  workloadByIp(ip: string): Workload | undefined {
    const owners = this.#workloadByIp.get(ip);
    if (!Array.isArray(owners)) return owners;
    return owners.find((owner) => !isTerminated(owner)) ?? owners[0];
  }

  workloadByUid(uid: string): Workload | undefined {
    return this.#workloadByUid.get(uid);
  }

  workload(namespace: string, name: string): Workload | undefined {
    return this.#workloads.get(nsName(namespace, name));
  }

  /** Every pod scheduled on the node, in any phase. A live view: do not apply batches while iterating. */
  workloadsOnNode(nodeName: string): Iterable<Workload> {
    return this.#workloadsByNode.values(nodeName);
  }

  workloadsInNamespace(namespace: string): Iterable<Workload> {
    return this.#workloadsByNamespace.values(namespace);
  }

  /** True iff a pod of (namespace, serviceAccount) that has not Succeeded or Failed is scheduled on the node. O(1). */
  hasPodOnNode(namespace: string, serviceAccount: string, nodeName: string): boolean {
    return this.#placements.has(placementKey(namespace, serviceAccount, nodeName));
  }

  // ---- namespaces -----------------------------------------------------------------------------

  namespace(name: string): Namespace | undefined {
    return this.#namespaces.get(name);
  }

  namespaces(): Iterable<Namespace> {
    return this.#namespaces.values();
  }

  // ---- services and endpoints -----------------------------------------------------------------

  #putService(next: Service, previous: Service | undefined): void {
    const key = nsName(next.namespace, next.name);
    if (previous !== undefined) this.#unindexServiceAddresses(previous);
    this.#services.set(key, next);
    this.#servicesByNamespace.set(next.namespace, next.name, next);
    for (const vip of next.clusterIps) addOwner(this.#serviceByVip, vip, next);
    for (const host of this.#hostsOf(next)) this.#serviceByHost.set(host, next);
    const sameSelector =
      previous !== undefined &&
      (previous.selector === next.selector ||
        (previous.selector !== undefined &&
          next.selector !== undefined &&
          labelsEqual(previous.selector, next.selector)));
    if (!sameSelector) this.#reselectPods(key, next);
    this.#endpointCache.delete(key);
  }

  #removeService(service: Service): void {
    const key = nsName(service.namespace, service.name);
    this.#unindexServiceAddresses(service);
    this.#services.delete(key);
    this.#servicesByNamespace.delete(service.namespace, service.name);
    for (const pod of [...this.#selectedPods.values(key)])
      this.#selectedPods.delete(key, nsName(pod.namespace, pod.name));
    this.#endpointCache.delete(key);
  }

  #unindexServiceAddresses(service: Service): void {
    for (const vip of service.clusterIps) removeOwner(this.#serviceByVip, vip, service);
    for (const host of this.#hostsOf(service)) this.#serviceByHost.delete(host);
  }

  /** Recomputes a Service's selected pods from scratch: O(pods in its namespace), on selector change only. */
  #reselectPods(serviceKey: string, service: Service): void {
    for (const pod of [...this.#selectedPods.values(serviceKey)]) {
      this.#selectedPods.delete(serviceKey, nsName(pod.namespace, pod.name));
    }
    for (const pod of this.#workloadsByNamespace.values(service.namespace)) {
      if (selects(service, pod)) this.#selectedPods.set(serviceKey, nsName(pod.namespace, pod.name), pod);
    }
  }

  #hostsOf(service: Service): readonly string[] {
    const base = `${service.name}.${service.namespace}`;
    return [base, `${base}.svc`, `${base}.svc.${this.clusterDomain}`];
  }

  #putSlice(next: EndpointSlice, previous: EndpointSlice | undefined): void {
    if (previous !== undefined) this.#removeSlice(previous);
    const serviceKey = nsName(next.namespace, next.serviceName);
    this.#slicesByService.set(serviceKey, next.name, next);
    this.#endpointCache.delete(serviceKey);
  }

  #removeSlice(slice: EndpointSlice): void {
    const serviceKey = nsName(slice.namespace, slice.serviceName);
    this.#slicesByService.delete(serviceKey, slice.name);
    this.#endpointCache.delete(serviceKey);
  }

  service(namespace: string, name: string): Service | undefined {
    return this.#services.get(nsName(namespace, name));
  }

  /** The Service whose cluster IP this is (canonical IP text, as sockets report it); of two, the later claim. */
  serviceByVip(ip: string): Service | undefined {
    const owners = this.#serviceByVip.get(ip);
    return Array.isArray(owners) ? owners.at(-1) : owners;
  }

  /** By `<name>.<ns>`, `<name>.<ns>.svc` or `<name>.<ns>.svc.<clusterDomain>`; case-insensitive, no port. */
  serviceByHost(host: string): Service | undefined {
    const normalized = host.endsWith('.') ? host.slice(0, -1) : host;
    return this.#serviceByHost.get(normalized.toLowerCase());
  }

  /**
   * The ready endpoints of a Service. If any EndpointSlice names the Service, the slices are the truth
   * (ready endpoints, first address of each); otherwise the Running pods with an IP that its selector
   * picks. Cached until a pod, slice or the Service itself changes.
   */
  endpointsOf(service: Service): readonly ServiceEndpoint[] {
    const key = nsName(service.namespace, service.name);
    const cached = this.#endpointCache.get(key);
    if (cached !== undefined) return cached;
    const current = this.#services.get(key) ?? service;
    const endpoints = Object.freeze(
      this.#slicesByService.size(key) > 0
        ? this.#endpointsFromSlices(key, current)
        : this.#endpointsFromPods(key, current),
    );
    this.#endpointCache.set(key, endpoints);
    return endpoints;
  }

  #endpointsFromSlices(serviceKey: string, service: Service): ServiceEndpoint[] {
    const endpoints: ServiceEndpoint[] = [];
    const seen = new Set<string>();
    for (const slice of this.#slicesByService.values(serviceKey)) {
      if (slice.addressType === 'FQDN') continue;
      const targetPorts: Record<number, number> = {};
      for (const servicePort of service.ports) {
        const slicePort = slice.ports.find(
          (port) => port.name === servicePort.name && port.protocol === servicePort.protocol,
        );
        if (slicePort !== undefined) targetPorts[servicePort.port] = slicePort.port;
      }
      for (const endpoint of slice.endpoints) {
        // Kubernetes: the addresses of one endpoint are fungible and consumers may use only the first.
        const address = endpoint.addresses[0];
        if (!endpoint.ready || address === undefined || seen.has(address)) continue;
        seen.add(address);
        endpoints.push(
          Object.freeze({
            address,
            nodeName: endpoint.nodeName,
            targetPorts: Object.freeze({ ...targetPorts }),
          }),
        );
      }
    }
    return endpoints;
  }

  #endpointsFromPods(serviceKey: string, service: Service): ServiceEndpoint[] {
    const endpoints: ServiceEndpoint[] = [];
    for (const pod of this.#selectedPods.values(serviceKey)) {
      const address = pod.podIps[0];
      if (address === undefined) continue;
      const targetPorts: Record<number, number> = {};
      for (const servicePort of service.ports) {
        const target =
          typeof servicePort.targetPort === 'number'
            ? servicePort.targetPort
            : pod.containerPorts.find(
                (port) => port.name === servicePort.targetPort && port.protocol === servicePort.protocol,
              )?.port;
        if (target !== undefined) targetPorts[servicePort.port] = target;
      }
      endpoints.push(
        Object.freeze({ address, nodeName: pod.nodeName, targetPorts: Object.freeze(targetPorts) }),
      );
    }
    return endpoints;
  }

  // ---- gateways and routes --------------------------------------------------------------------

  gateway(namespace: string, name: string): Gateway | undefined {
    return this.#gateways.get(namespace, name);
  }

  gateways(namespace: string): readonly Gateway[] {
    return [...this.#gateways.values(namespace)];
  }

  httpRoute(namespace: string, name: string): HttpRoute | undefined {
    return this.#httpRoutes.get(namespace, name);
  }

  httpRoutes(namespace: string): readonly HttpRoute[] {
    return [...this.#httpRoutes.values(namespace)];
  }

  /** Every HTTPRoute in every namespace: a waypoint's consumer routes live in their clients' namespaces. */
  allHttpRoutes(): readonly HttpRoute[] {
    return [...this.#httpRoutes.allValues()];
  }

  // ---- policies -------------------------------------------------------------------------------

  /** Every AuthorizationPolicy in the namespace (waypoints pick the targetRefs ones from here). */
  authorizationPolicies(namespace: string): readonly AuthorizationPolicy[] {
    return [...this.#authorizationPolicies.values(namespace)];
  }

  peerAuthentications(namespace: string): readonly PeerAuthentication[] {
    return [...this.#peerAuthentications.values(namespace)];
  }

  /**
   * The AuthorizationPolicies the node agent applies to this workload: root-namespace policies without
   * a selector or with a matching one, then the workload namespace's namespace-wide and matching selector
   * policies (see `policyAppliesToWorkload`). Every action and dry-run policy is included; the evaluator
   * decides what to do with them. Sorted root first, then by name. Cached per workload: O(1) until the
   * workload or a policy in its namespace or the root namespace changes.
   */
  authorizationPoliciesFor(workload: Workload): readonly AuthorizationPolicy[] {
    return this.#cachedForWorkload(workload, this.#authzCache, this.#authzGenerations, () => {
      const applicable = this.#policiesInScope(this.#authorizationPolicies, workload.namespace).filter(
        (policy) => policyAppliesToWorkload(policy, workload, this.rootNamespace),
      );
      return Object.freeze(applicable);
    });
  }

  /**
   * The PeerAuthentication of each level for this workload (mesh, namespace, workload; oldest wins within
   * a level). Resolve a port's mode with `effectiveMtlsMode` from core/model/peer-auth.ts. Cached like
   * `authorizationPoliciesFor`.
   */
  peerAuthenticationsFor(workload: Workload): PeerAuthenticationLevels {
    return this.#cachedForWorkload(workload, this.#peerAuthCache, this.#peerAuthGenerations, () => {
      const root = [...this.#peerAuthentications.values(this.rootNamespace)];
      const local =
        workload.namespace === this.rootNamespace
          ? []
          : [...this.#peerAuthentications.values(workload.namespace)];
      const oldest = (candidates: PeerAuthentication[]): PeerAuthentication | undefined =>
        candidates.sort(olderFirst)[0];
      return Object.freeze({
        mesh: oldest(root.filter((policy) => policy.selector === undefined)),
        namespace: oldest(local.filter((policy) => policy.selector === undefined)),
        // A selector policy in the root namespace is ignored (authz.md §8).
        workload: oldest(
          local.filter(
            (policy) => policy.selector !== undefined && labelsMatch(policy.selector, workload.labels),
          ),
        ),
      });
    });
  }

  /** Policies of the root namespace then of `namespace` (once, if they are the same), each sorted by name. */
  #policiesInScope<T extends { readonly name: string }>(byNamespace: GroupedMap<T>, namespace: string): T[] {
    const byName = (a: T, b: T): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    const root = [...byNamespace.values(this.rootNamespace)].sort(byName);
    if (namespace === this.rootNamespace) return root;
    return root.concat([...byNamespace.values(namespace)].sort(byName));
  }

  #cachedForWorkload<T>(
    workload: Workload,
    cache: Map<string, CachedPolicies<T>>,
    generations: ReadonlyMap<string, number>,
    compute: () => T,
  ): T {
    const key = nsName(workload.namespace, workload.name);
    const namespaceGeneration = generations.get(workload.namespace) ?? 0;
    const rootGeneration = generations.get(this.rootNamespace) ?? 0;
    const cached = cache.get(key);
    if (
      cached !== undefined &&
      cached.workload === workload &&
      cached.namespaceGeneration === namespaceGeneration &&
      cached.rootGeneration === rootGeneration
    ) {
      return cached.value;
    }
    const value = compute();
    // Cache only answers for the stored record, so a caller holding a stale copy cannot pin stale results.
    if (this.#workloads.get(key) === workload)
      cache.set(key, { workload, namespaceGeneration, rootGeneration, value });
    return value;
  }

  // ---- generic access and status --------------------------------------------------------------

  get(key: ObjectKey): ConfigRecord | undefined {
    return this.#records.get(keyString(key));
  }

  /** Objects (or documents) currently rejected, each once; a fixed or removed object's rejection is gone. */
  allRejections(): readonly Rejection[] {
    return [...this.#rejections.values()];
  }
}

function placementKey(namespace: string, serviceAccount: string, nodeName: string): string {
  // Newlines cannot occur in Kubernetes names, so the key is unambiguous.
  return `${namespace}\n${serviceAccount}\n${nodeName}`;
}

function bump(generations: Map<string, number>, namespace: string): void {
  generations.set(namespace, (generations.get(namespace) ?? 0) + 1);
}
