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
  /** keyString of the pods on this node, kept current from each change: a deleted key is looked up here. */
  #localPods = new Set<string>();

  constructor(store: ConfigStore, nodeName: string) {
    this.#store = store;
    this.#nodeName = nodeName;
  }

  /**
   * True when `change` may change what this node's agent keeps for its pods (or when there is no change
   * to look at: the first load, which reads the node's pods afresh). Costs O(size of the change).
   */
  affectsThisNode(change: AppliedChange | undefined): boolean {
    if (change === undefined) {
      this.#localPods = new Set(
        [...this.#store.workloadsOnNode(this.#nodeName)].map((w) =>
          keyString({ kind: 'Pod', namespace: w.namespace, name: w.name }),
        ),
      );
      return true;
    }
    let affects = false;
    // In the store's order: deletes, then upserts (a key may be in both).
    for (const key of change.deleted) affects = this.#touches(key, false) || affects;
    for (const key of change.upserted) affects = this.#touches(key, true) || affects;
    return affects;
  }

  /** Whether one changed object concerns this node; keeps the local pod set current. */
  #touches(key: ObjectKey, upserted: boolean): boolean {
    switch (key.kind) {
      case 'AuthorizationPolicy':
      case 'PeerAuthentication':
      case 'Namespace':
        return true;
      case 'Pod': {
        const id = keyString(key);
        const was = this.#localPods.has(id);
        const is = upserted && this.#store.workload(key.namespace, key.name)?.nodeName === this.#nodeName;
        if (is) this.#localPods.add(id);
        else this.#localPods.delete(id);
        return was || is;
      }
      default:
        return false;
    }
  }
}
