// Where pods run, asked of the API server at the moment a node agent asks for a certificate, so the CA
// needs no pod informer (and no memory for every pod of the cluster).
//
// - `nodeOfCaller`: the node of the agent's own pod (GET, uid and service account must match the token's).
// - `hasPodOnNode`: a pod of (namespace, SA) that has not terminated is scheduled on the node: one list in
//   the namespace with field selectors, limit 1.
//
// Placement is never cached: a node loses the right to an identity the moment its last pod of that
// service account is gone, exactly as with the config store of `file:` (a cached "yes" would let it
// mint that identity for a while longer). Certificate requests are rare (one per service account per
// node per rotation), so the list per request is cheap. Only the caller pod's uid -> node is cached:
// it never changes in a pod's life. Failures to get an answer reject with ERR_CA_UNAVAILABLE.
import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { WeftError } from '../../core/errors.js';
import { systemClock, type Clock } from '../../core/clock.js';
import type { PodPlacement } from '../node-authorizer.js';
import { apiStatusCode, apiUnavailable, DEFAULT_API_TIMEOUT_MS, withTimeout } from './api-call.js';

/** How long "pod uid u runs on node n" is kept: true for the pod's life; the bound only frees memory. */
const CACHE_TTL_MS = 30_000;
/** A large node runs ~250 pods; a few thousand entries cover every node agent of a big cluster. */
const CACHE_MAX_ENTRIES = 10_000;
/**
 * A list with a field selector and a limit may come back empty with a continue token on a server that
 * filters after paging; a few pages settle it, and more would mean an API server doing something odd.
 */
const MAX_LIST_PAGES = 10;

/** A pod that is done holds no identity (Istio's node authorizer skips Failed and Succeeded pods too). */
function terminated(pod: V1Pod): boolean {
  const phase = pod.status?.phase;
  return phase === 'Succeeded' || phase === 'Failed';
}

/** A map of positive answers that expire, oldest dropped first when full. */
class PositiveCache {
  readonly #entries = new Map<string, { readonly value: string; readonly expiresAt: number }>();

  get(key: string, now: number): string | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt > now) return entry.value;
    this.#entries.delete(key);
    return undefined;
  }

  set(key: string, value: string, now: number): void {
    this.#entries.delete(key);
    if (this.#entries.size >= CACHE_MAX_ENTRIES) {
      const oldest = this.#entries.keys().next();
      if (oldest.done !== true) this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, { value, expiresAt: now + CACHE_TTL_MS });
  }
}

export interface ApiPodPlacementOptions {
  readonly kubeConfig: KubeConfig;
  readonly timeoutMs?: number;
  readonly clock?: Clock;
}

/** The pod a bound service-account token names (TokenReview's extra pod-name and pod-uid). */
export interface BoundPod {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly serviceAccount: string;
}

export class ApiPodPlacement implements PodPlacement {
  readonly #api: CoreV1Api;
  readonly #timeoutMs: number;
  readonly #clock: Clock;
  readonly #nodes = new PositiveCache();

  constructor(options: ApiPodPlacementOptions) {
    this.#api = options.kubeConfig.makeApiClient(CoreV1Api);
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_API_TIMEOUT_MS;
    this.#clock = options.clock ?? systemClock;
  }

  /**
   * The node the caller's pod is scheduled on. Rejects with ERR_UNAUTHENTICATED when that pod is gone,
   * is another pod by now (uid), runs as another service account, is not scheduled or has terminated.
   */
  async nodeOfCaller(pod: BoundPod): Promise<string> {
    // uid -> node is fixed for a pod's life; the TokenReview just confirmed the pod still exists.
    const cached = this.#nodes.get(pod.uid, this.#clock.now());
    if (cached !== undefined) return cached;
    const ref = `${pod.namespace}/${pod.name}`;
    const refuse = (why: string): never => {
      throw new WeftError('ERR_UNAUTHENTICATED', `caller pod ${ref} ${why}`, { object: `Pod ${ref}` });
    };
    let found: V1Pod;
    try {
      found = await this.#api.readNamespacedPod(
        { namespace: pod.namespace, name: pod.name },
        withTimeout(this.#timeoutMs),
      );
    } catch (err) {
      if (apiStatusCode(err) === 404) refuse('no longer exists');
      throw apiUnavailable(`read the caller pod ${ref}`, err);
    }
    if (found.metadata?.uid !== pod.uid)
      refuse(`is no longer the pod the token was issued to (uid ${pod.uid})`);
    if (found.spec?.serviceAccountName !== pod.serviceAccount)
      refuse(
        `runs as service account ${found.spec?.serviceAccountName ?? '(none)'}, not ${pod.serviceAccount}`,
      );
    if (terminated(found)) refuse(`has terminated (${found.status?.phase ?? ''})`);
    const nodeName = found.spec?.nodeName;
    if (nodeName === undefined || nodeName === '') return refuse('is not scheduled on a node');
    this.#nodes.set(pod.uid, nodeName, this.#clock.now());
    return nodeName;
  }

  async hasPodOnNode(namespace: string, serviceAccount: string, nodeName: string): Promise<boolean> {
    // The values come from a parsed SPIFFE ID ([A-Za-z0-9._-]) and a pod's spec.nodeName: no `,` or `=`
    // can reach the selector.
    const fieldSelector = [
      `spec.nodeName=${nodeName}`,
      `spec.serviceAccountName=${serviceAccount}`,
      'status.phase!=Failed',
      'status.phase!=Succeeded',
    ].join(',');
    let continueToken: string | undefined;
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      let list;
      try {
        list = await this.#api.listNamespacedPod(
          { namespace, fieldSelector, limit: 1, _continue: continueToken },
          withTimeout(this.#timeoutMs),
        );
      } catch (err) {
        throw apiUnavailable(`list the pods of ${namespace}/${serviceAccount} on node ${nodeName}`, err);
      }
      if (list.items.length > 0) return true;
      continueToken = list.metadata?._continue;
      if (continueToken === undefined || continueToken === '') return false;
    }
    return false;
  }
}
