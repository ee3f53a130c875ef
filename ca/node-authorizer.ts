// Which identities a node agent may ask for: those of service accounts with a pod on its own node
// (Istio's node authorizer rule), in our trust domain only.
import { WeftError } from '../core/errors.js';
import type { SpiffeIdentity } from '../core/spiffe.js';
import type { NodeCaller } from './node-tokens.js';

/** Where pods run; the config store answers this from its (namespace, SA, node) index. */
export interface PodPlacement {
  /** True when a pod of `namespace`/`serviceAccount` that has not terminated is scheduled on `nodeName`. */
  hasPodOnNode(namespace: string, serviceAccount: string, nodeName: string): boolean;
}

export class NodeAuthorizer {
  readonly #trustDomain: string;
  readonly #placement: PodPlacement;

  constructor(trustDomain: string, placement: PodPlacement) {
    this.#trustDomain = trustDomain;
    this.#placement = placement;
  }

  /** Throws ERR_PERMISSION_DENIED with the reason when `caller` may not obtain `identity`. */
  authorize(caller: NodeCaller, identity: SpiffeIdentity, spiffeId: string): void {
    if (identity.trustDomain !== this.#trustDomain)
      throw new WeftError(
        'ERR_PERMISSION_DENIED',
        `identity ${spiffeId} is outside trust domain ${this.#trustDomain}`,
        { object: spiffeId, peer: `node ${caller.nodeName}` },
      );
    if (!this.#placement.hasPodOnNode(identity.namespace, identity.serviceAccount, caller.nodeName))
      throw new WeftError(
        'ERR_PERMISSION_DENIED',
        `node ${caller.nodeName} runs no pod with service account ${identity.serviceAccount} in namespace ${identity.namespace}`,
        { object: spiffeId, peer: `node ${caller.nodeName}` },
      );
  }
}
