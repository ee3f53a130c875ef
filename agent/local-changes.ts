// Which config changes can alter what the agent decides for its own node's pods. Every pod, Service
// and EndpointSlice in the cluster reaches every agent (destinations are found anywhere), so in a large
// cluster most batches concern other nodes; re-authorizing every live connection on each of them would
// cost CPU in proportion to cluster churn times local connections. Only policy, namespace and local-pod
// changes can change an inbound verdict here.
import type { AppliedChange, ConfigStore } from '../core/store.js';
import { keyString, type ObjectKey } from '../core/model/index.js';

export class LocalChanges {
  readonly #store: ConfigStore;
  readonly #nodeName: string;
  /** keyString of the pods on this node as of the last `affectsVerdicts`: a deleted key is looked up here. */
  #localPods = new Set<string>();

  constructor(store: ConfigStore, nodeName: string) {
    this.#store = store;
    this.#nodeName = nodeName;
  }

  /**
   * True when `change` may change an inbound verdict on this node (or when there is no change to look
   * at: the first load). Also refreshes which pods are local.
   */
  affectsVerdicts(change: AppliedChange | undefined): boolean {
    const before = this.#localPods;
    this.#localPods = new Set(
      [...this.#store.workloadsOnNode(this.#nodeName)].map((w) =>
        keyString({ kind: 'Pod', namespace: w.namespace, name: w.name }),
      ),
    );
    if (change === undefined) return true;
    const local = (key: ObjectKey): boolean => {
      const id = keyString(key);
      return before.has(id) || this.#localPods.has(id);
    };
    return [...change.upserted, ...change.deleted].some((key) => {
      switch (key.kind) {
        case 'AuthorizationPolicy':
        case 'PeerAuthentication':
        case 'Namespace':
          return true;
        case 'Pod':
          return local(key);
        default:
          return false;
      }
    });
  }
}
