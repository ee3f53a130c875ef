// Writes the HTTPRoute status this waypoint computes (proxy/routing/status.ts) back to the API server,
// so `kubectl get httproute -o yaml` shows Accepted/ResolvedRefs as with Istio. Only the leader of the
// waypoint's replicas writes (core/kubernetes/leader-election.ts); the others compute and stay quiet.
//
// Invariants:
// - Read-modify-write with the object's resourceVersion: entries of other controllers, and ours for
//   parents another waypoint serves, are kept as they are; a conflict (409) reads again, a few times.
// - Ours are `controllerName` WAYPOINT_CONTROLLER_NAME entries for the parents this waypoint serves;
//   an entry of ours whose parentRef is no longer in spec.parentRefs is removed (it is stale whoever
//   wrote it), and a route this waypoint stopped serving loses the entries it wrote.
// - A write happens only when the status would change: a condition that keeps its status keeps its
//   lastTransitionTime, and observedGeneration is the generation read. No write loops: the MODIFIED
//   event our own write causes computes the same status, which is then already written.
// - At most MAX_PARENT_STATUSES entries (the Gateway API limit).
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { ParentRef } from '../../core/model/index.js';
import type { ConfigStore } from '../../core/store.js';
import { errorMessage } from '../../core/errors.js';
import { apiStatusCode } from '../../core/kubernetes/api-call.js';
import type { Logger } from '../../core/log.js';
import { WAYPOINT_CONTROLLER_NAME, type RouteStatus } from '../routing/status.js';

const GROUP = 'gateway.networking.k8s.io';
const VERSION = 'v1';
const PLURAL = 'httproutes';
/** HTTPRoute status.parents has maxItems 32. */
const MAX_PARENT_STATUSES = 32;
/** A write that keeps conflicting with other writers gives up until the next change. */
const MAX_ATTEMPTS = 4;

/** The two API calls the writer makes; the real one is `kubernetesRouteApi(config)`. */
export interface RouteStatusApi {
  /** The route as JSON, or undefined when it does not exist. */
  get(namespace: string, name: string): Promise<WireRoute | undefined>;
  /** PUT …/status with the object's resourceVersion; throws an error with `code` 409 on conflict. */
  replaceStatus(route: WireRoute): Promise<void>;
}

export interface WireRoute {
  metadata: { name: string; namespace: string; resourceVersion?: string; generation?: number };
  spec?: { parentRefs?: WireParentRef[] };
  status?: { parents?: WireParentStatus[] };
  [field: string]: unknown;
}

interface WireParentRef {
  group?: string;
  kind?: string;
  namespace?: string;
  name: string;
  port?: number;
  sectionName?: string;
}

interface WireCondition {
  type: string;
  status: string;
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}

interface WireParentStatus {
  parentRef: WireParentRef;
  controllerName: string;
  conditions?: WireCondition[];
}

export interface RouteStatusWriterOptions {
  readonly store: ConfigStore;
  /** The statuses this waypoint computes now (its routing table's). */
  readonly statuses: () => readonly RouteStatus[];
  readonly api: RouteStatusApi;
  readonly isLeader: () => boolean;
  readonly log: Logger;
  readonly now?: () => Date;
}

export class RouteStatusWriter {
  readonly #options: RouteStatusWriterOptions;
  /** Route key -> the entries last written (or found already written): as text, and their parent keys. */
  readonly #written = new Map<string, { text: string; parents: ReadonlySet<string> }>();
  #syncing: Promise<void> | undefined;
  #again = false;
  #closed = false;
  readonly #onApplied = (): void => this.sync();

  constructor(options: RouteStatusWriterOptions) {
    this.#options = options;
    options.store.on('applied', this.#onApplied);
  }

  /** Writes what changed, now or right after the pass in progress. Call on gaining leadership too. */
  sync(): void {
    if (this.#closed) return;
    if (this.#syncing !== undefined) {
      this.#again = true;
      return;
    }
    this.#syncing = this.#pass().finally(() => {
      this.#syncing = undefined;
      if (this.#again) {
        this.#again = false;
        this.sync();
      }
    });
  }

  /** Forgets what was written (a new leader checks everything once). */
  reset(): void {
    this.#written.clear();
  }

  /** Stops reacting to changes; resolves when the pass in progress is done. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#options.store.off('applied', this.#onApplied);
    await this.#syncing;
  }

  /** Resolves when no pass is running or queued (tests). */
  async idle(): Promise<void> {
    while (this.#syncing !== undefined) await this.#syncing;
  }

  async #pass(): Promise<void> {
    if (!this.#options.isLeader()) return;
    const desired = new Map<string, RouteStatus>();
    for (const status of this.#options.statuses()) desired.set(routeKey(status), status);
    for (const [key, status] of desired) {
      const text = JSON.stringify(status.parents);
      const before = this.#written.get(key);
      if (before?.text === text) continue;
      const parents = new Set(status.parents.map((parent) => refKey(parent.parentRef, status.namespace)));
      if (await this.#write(status.namespace, status.name, status, before?.parents))
        this.#written.set(key, { text, parents });
    }
    // Routes this waypoint no longer serves: take our entries off them.
    for (const key of [...this.#written.keys()]) {
      if (desired.has(key)) continue;
      const [namespace = '', name = ''] = key.split('/');
      if (await this.#write(namespace, name, undefined, this.#written.get(key)?.parents))
        this.#written.delete(key);
    }
  }

  /** One route's read-modify-write; true when the status is as wanted (written, or already so). */
  async #write(
    namespace: string,
    name: string,
    status: RouteStatus | undefined,
    wroteBefore: ReadonlySet<string> = new Set(),
  ): Promise<boolean> {
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      if (this.#closed || !this.#options.isLeader()) return false;
      try {
        const route = await this.#options.api.get(namespace, name);
        if (route === undefined) return true;
        const parents = mergedParents(route, status, wroteBefore, this.#options.now?.() ?? new Date());
        if (JSON.stringify(parents) === JSON.stringify(route.status?.parents ?? [])) return true;
        await this.#options.api.replaceStatus({ ...route, status: { ...route.status, parents } });
        this.#options.log.info(
          { route: `${namespace}/${name}`, parents: parents.length },
          'HTTPRoute status written',
        );
        return true;
      } catch (err) {
        if (apiStatusCode(err) === 409 && attempt < MAX_ATTEMPTS) continue;
        this.#options.log.warn(
          { route: `${namespace}/${name}`, error: errorMessage(err) },
          'HTTPRoute status not written',
        );
        return false;
      }
    }
    return false;
  }
}

/**
 * status.parents with this waypoint's entries replaced by `status` (none when undefined): those it
 * serves now and those it wrote before (`wroteBefore`), plus stale entries of our controller name.
 * Entries with our controller name for other parents in spec are other waypoints': kept.
 */
function mergedParents(
  route: WireRoute,
  status: RouteStatus | undefined,
  wroteBefore: ReadonlySet<string>,
  now: Date,
): WireParentStatus[] {
  const namespace = route.metadata.namespace;
  const inSpec = new Set((route.spec?.parentRefs ?? []).map((ref) => refKey(ref, namespace)));
  const ours = new Map(
    (status?.parents ?? []).map((parent) => [refKey(parent.parentRef, namespace), parent]),
  );
  const current = route.status?.parents ?? [];
  const previous = new Map(
    current
      .filter((entry) => entry.controllerName === WAYPOINT_CONTROLLER_NAME)
      .map((entry) => [refKey(entry.parentRef, namespace), entry]),
  );
  const kept = current.filter((entry) => {
    if (entry.controllerName !== WAYPOINT_CONTROLLER_NAME) return true;
    const key = refKey(entry.parentRef, namespace);
    return !ours.has(key) && !wroteBefore.has(key) && inSpec.has(key);
  });
  const written: WireParentStatus[] = [...ours.entries()].map(([key, parent]) => ({
    parentRef: wireRef(parent.parentRef),
    controllerName: parent.controllerName,
    conditions: parent.conditions.map((condition) => {
      const before = previous.get(key)?.conditions?.find((c) => c.type === condition.type);
      return {
        type: condition.type,
        status: condition.status,
        reason: condition.reason,
        message: condition.message,
        ...(route.metadata.generation === undefined ? {} : { observedGeneration: route.metadata.generation }),
        lastTransitionTime:
          before !== undefined && before.status === condition.status
            ? before.lastTransitionTime
            : now.toISOString().replace(/\.\d+Z$/, 'Z'),
      };
    }),
  }));
  return [...kept, ...written].slice(0, MAX_PARENT_STATUSES);
}

/** A parentRef with its defaults filled in, as text: equal refs, however written, are equal keys. */
function refKey(ref: WireParentRef | ParentRef, routeNamespace: string): string {
  return JSON.stringify([
    ref.group ?? GROUP,
    ref.kind ?? 'Gateway',
    ref.namespace ?? routeNamespace,
    ref.name,
    ref.sectionName ?? '',
    ref.port ?? 0,
  ]);
}

function wireRef(ref: ParentRef): WireParentRef {
  return {
    group: ref.group,
    kind: ref.kind,
    namespace: ref.namespace,
    name: ref.name,
    ...(ref.sectionName === undefined ? {} : { sectionName: ref.sectionName }),
    ...(ref.port === undefined ? {} : { port: ref.port }),
  };
}

function routeKey(status: RouteStatus): string {
  return `${status.namespace}/${status.name}`;
}

/** The API calls through @kubernetes/client-node (untyped JSON in and out, as CRDs are). */
export function kubernetesRouteApi(config: KubeConfig): RouteStatusApi {
  const api = config.makeApiClient(CustomObjectsApi);
  return {
    async get(namespace, name) {
      try {
        return (await api.getNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          namespace,
          plural: PLURAL,
          name,
        })) as WireRoute;
      } catch (err) {
        if (apiStatusCode(err) === 404) return undefined;
        throw err;
      }
    },
    async replaceStatus(route) {
      await api.replaceNamespacedCustomObjectStatus({
        group: GROUP,
        version: VERSION,
        namespace: route.metadata.namespace,
        plural: PLURAL,
        name: route.metadata.name,
        body: route,
      });
    },
  };
}
