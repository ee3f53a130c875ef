// Which identity a caller may obtain (Istio's security/pkg/server/ca: node_auth.go and the plain
// caller-identity check of server.go), in our trust domain only:
// - a node agent names the identity (ImpersonatedIdentity) and gets it when a pod of that service
//   account that has not terminated is scheduled on the agent's own node;
// - any other service account gets exactly its own identity, whether or not it names it.
import { WeftError } from '../core/errors.js';
import { formatSpiffeId, parseSpiffeId } from '../core/spiffe.js';
import { IMPERSONATED_IDENTITY_KEY } from '../core/ca-api.js';
import { describeCaller, type Caller } from './caller.js';

/**
 * Where pods run: the config store answers from its (namespace, SA, node) index, the Kubernetes
 * placement through the API. A placement that cannot tell rejects (ERR_CA_UNAVAILABLE); it never
 * answers true for want of an answer.
 */
export interface PodPlacement {
  /** True when a pod of `namespace`/`serviceAccount` that has not terminated is scheduled on `nodeName`. */
  hasPodOnNode(namespace: string, serviceAccount: string, nodeName: string): boolean | Promise<boolean>;
}

export class NodeAuthorizer {
  readonly #trustDomain: string;
  readonly #placement: PodPlacement | undefined;

  /** Without a placement, node callers are refused (a CA whose callers are service accounts only). */
  constructor(trustDomain: string, placement: PodPlacement | undefined) {
    this.#trustDomain = trustDomain;
    this.#placement = placement;
  }

  /**
   * The SPIFFE ID to issue to `caller`, who asked for `requested` (the ImpersonatedIdentity metadata, if
   * sent). Rejects with ERR_PERMISSION_DENIED and the reason, ERR_SPIFFE_ID for a malformed ID.
   */
  async authorize(caller: Caller, requested: string | undefined): Promise<string> {
    const peer = describeCaller(caller);
    if (caller.kind === 'service-account') {
      const own = formatSpiffeId({
        trustDomain: this.#trustDomain,
        namespace: caller.namespace,
        serviceAccount: caller.serviceAccount,
      });
      if (requested === undefined || requested === own) return own;
      parseSpiffeId(requested);
      throw new WeftError(
        'ERR_PERMISSION_DENIED',
        `${peer} may obtain only its own identity ${own}, not ${requested} (only trusted node agents act for other workloads)`,
        { object: requested, peer },
      );
    }
    if (requested === undefined)
      throw new WeftError(
        'ERR_PERMISSION_DENIED',
        `node agents must name the workload identity in metadata ${IMPERSONATED_IDENTITY_KEY}`,
        { peer, field: `metadata.${IMPERSONATED_IDENTITY_KEY}` },
      );
    const identity = parseSpiffeId(requested);
    if (identity.trustDomain !== this.#trustDomain)
      throw new WeftError(
        'ERR_PERMISSION_DENIED',
        `identity ${requested} is outside trust domain ${this.#trustDomain}`,
        { object: requested, peer },
      );
    const onNode =
      this.#placement !== undefined &&
      (await this.#placement.hasPodOnNode(identity.namespace, identity.serviceAccount, caller.nodeName));
    if (!onNode)
      throw new WeftError(
        'ERR_PERMISSION_DENIED',
        `node ${caller.nodeName} runs no pod with service account ${identity.serviceAccount} in namespace ${identity.namespace}`,
        { object: requested, peer },
      );
    return requested;
  }
}
