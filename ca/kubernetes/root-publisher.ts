// Publishes the root certificate as a ConfigMap (key root-cert.pem) in every namespace, as istiod's
// namespace controller publishes istio-ca-root-cert (pilot/pkg/serviceregistry/kube/controller/
// namespacecontroller.go), so agents and waypoints can mount it wherever they run.
//
// Only the leader writes (every replica when there is no leader election). Namespaces come from a
// ConfigStore fed by a Namespace-only config source. Invariants:
// - A namespace is queued when it appears and, on gaining leadership, every known namespace is queued:
//   a new leader re-checks everything once.
// - One worker drains the queue (as istiod's single-worker controller queue), so the API server sees
//   one write at a time; a failed namespace is retried after a backoff doubling to MAX_RETRY_MS.
// - A ConfigMap is created when missing and replaced (with its resourceVersion) when its root differs;
//   one that is already right costs a GET and no write.
import { CoreV1Api, type KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import type { ConfigStore, AppliedChange } from '../../core/store.js';
import type { LeaderElector } from '../../core/kubernetes/leader-election.js';
import type { Logger } from '../../core/log.js';
import { apiErrorReason, apiStatusCode, DEFAULT_API_TIMEOUT_MS, withTimeout } from './api-call.js';

/** Istio's key in istio-ca-root-cert, which is what the agents and ztunnel read. */
export const ROOT_CERT_KEY = 'root-cert.pem';
export const DEFAULT_ROOT_CONFIGMAP = 'weft-ca-root-cert';
const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 30_000;

export interface RootPublisherOptions {
  readonly kubeConfig: KubeConfig;
  /** The ConfigMap's name in each namespace. */
  readonly configMapName: string;
  readonly rootPem: string;
  /** Namespaces, kept current by a config source. */
  readonly namespaces: ConfigStore;
  /** Only its leader publishes; without one, this replica does. */
  readonly elector?: LeaderElector | undefined;
  readonly timeoutMs?: number;
  readonly log: Logger;
}

type Outcome = 'created' | 'updated' | 'unchanged' | 'retry' | 'gone';

export class RootCertPublisher {
  readonly #api: CoreV1Api;
  readonly #options: RootPublisherOptions;
  readonly #queue = new Set<string>();
  /** Namespaces whose last attempt failed, queued again when the retry timer fires. */
  readonly #failed = new Set<string>();
  #active = false;
  #stopped = false;
  #draining: Promise<void> | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #retryMs = FIRST_RETRY_MS;
  readonly #onApplied = (_version: number, change: AppliedChange): void => {
    for (const key of change.upserted) if (key.kind === 'Namespace') this.#enqueue(key.name);
  };
  readonly #onLeading = (): void => this.#activate();
  readonly #onFollowing = (): void => {
    this.#active = false;
    this.#queue.clear();
    this.#failed.clear();
  };

  constructor(options: RootPublisherOptions) {
    this.#api = options.kubeConfig.makeApiClient(CoreV1Api);
    this.#options = options;
  }

  start(): void {
    const { namespaces, elector } = this.#options;
    namespaces.on('applied', this.#onApplied);
    if (elector === undefined) return this.#activate();
    elector.on('leading', this.#onLeading);
    elector.on('following', this.#onFollowing);
    if (elector.isLeader) this.#activate();
  }

  /** Stops publishing; a write in flight is awaited. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#active = false;
    this.#queue.clear();
    this.#failed.clear();
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#options.namespaces.off('applied', this.#onApplied);
    this.#options.elector?.off('leading', this.#onLeading);
    this.#options.elector?.off('following', this.#onFollowing);
    await this.#draining;
  }

  #activate(): void {
    if (this.#stopped) return;
    this.#active = true;
    this.#retryMs = FIRST_RETRY_MS;
    for (const namespace of this.#options.namespaces.namespaces()) this.#enqueue(namespace.name);
  }

  #enqueue(namespace: string): void {
    if (!this.#active) return;
    this.#queue.add(namespace);
    this.#kick();
  }

  /** Starts the worker unless it runs; when it ends, starts again for what arrived meanwhile. */
  #kick(): void {
    if (this.#draining !== undefined || this.#queue.size === 0) return;
    this.#draining = this.#drain().finally(() => {
      this.#draining = undefined;
      this.#kick();
    });
  }

  async #drain(): Promise<void> {
    // A Set iterates entries added while it runs: namespaces queued meanwhile are served in this pass.
    for (const namespace of this.#queue) {
      this.#queue.delete(namespace);
      if (!this.#active) return;
      if ((await this.#publish(namespace)) === 'retry') this.#failed.add(namespace);
      else this.#failed.delete(namespace);
    }
    if (this.#failed.size === 0) {
      this.#retryMs = FIRST_RETRY_MS;
      return;
    }
    if (this.#retryTimer !== undefined) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      const failed = [...this.#failed];
      this.#failed.clear();
      for (const namespace of failed) this.#enqueue(namespace);
    }, this.#retryMs);
    this.#retryMs = Math.min(this.#retryMs * 2, MAX_RETRY_MS);
  }

  /** Makes the ConfigMap in `namespace` hold the root. */
  async #publish(namespace: string): Promise<Outcome> {
    const { configMapName: name, rootPem, log } = this.#options;
    const options = withTimeout(this.#options.timeoutMs ?? DEFAULT_API_TIMEOUT_MS);
    const where = { namespace, configmap: name };
    let current: V1ConfigMap | undefined;
    try {
      current = await this.#api.readNamespacedConfigMap({ namespace, name }, options);
    } catch (err) {
      if (apiStatusCode(err) !== 404) {
        log.warn({ ...where, error: apiErrorReason(err) }, 'root publisher: cannot read the ConfigMap');
        return 'retry';
      }
    }
    if (current?.data?.[ROOT_CERT_KEY] === rootPem) return 'unchanged';
    try {
      if (current === undefined) {
        await this.#api.createNamespacedConfigMap(
          { namespace, body: { metadata: { name, namespace }, data: { [ROOT_CERT_KEY]: rootPem } } },
          options,
        );
        log.info(where, 'root publisher: ConfigMap created');
        return 'created';
      }
      // The resourceVersion read makes this a conditional write: a concurrent change means 409, and a retry.
      await this.#api.replaceNamespacedConfigMap(
        { namespace, name, body: { ...current, data: { [ROOT_CERT_KEY]: rootPem } } },
        options,
      );
      log.info(where, 'root publisher: ConfigMap updated to the current root');
      return 'updated';
    } catch (err) {
      const code = apiStatusCode(err);
      // The namespace is being deleted (403) or is gone (404): nothing to publish there.
      if ((code === 403 || code === 404) && this.#options.namespaces.namespace(namespace) === undefined)
        return 'gone';
      log.warn({ ...where, error: apiErrorReason(err) }, 'root publisher: cannot write the ConfigMap');
      return 'retry';
    }
  }
}
