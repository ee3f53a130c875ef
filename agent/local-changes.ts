// Which config changes can alter what the agent keeps for its own node's pods: their certificates,
// enrolment and capture, their HBONE servers, and the verdicts on their live connections. Every pod,
// Service and EndpointSlice in the cluster reaches every agent (destinations are found anywhere, and
// looked up per connection), so in a large cluster most batches concern other nodes; redoing the
// per-node work on each would cost CPU in proportion to cluster churn. Only policy, namespace and
// local-pod changes matter here.
import type { AppliedChange, ConfigStore } from '../core/store.js';
import { keyString, type ObjectKey } from '../core/model/index.js';

export class LocalChanges {
  readonly #store: ConfigStore;
  readonly #nodeName: string;
  /** keyString of the pods on this node as of the last call: a deleted key is looked up here. */
  #localPods = new Set<string>();

  constructor(store: ConfigStore, nodeName: string) {
    this.#store = store;
    this.#nodeName = nodeName;
  }

  /**
   * True when `change` may change what this node's agent keeps for its pods (or when there is no change
   * to look at: the first load). Also refreshes which pods are local.
   */
  affectsThisNode(change: AppliedChange | undefined): boolean {
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
