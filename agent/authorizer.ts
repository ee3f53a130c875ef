// The node agent's authorization of one inbound connection: the destination workload's policies, as
// the store keeps them, compiled once per change (L4PolicyCache) and evaluated per connection.
import type { ConfigStore } from '../core/store.js';
import type { Workload } from '../core/model/workload.js';
import { L4PolicyCache } from './policy/compile.js';
import { evaluateL4, type L4Connection } from './policy/evaluate.js';
import type { L4Verdict } from '../core/authz/verdict.js';

export type { L4Connection } from './policy/evaluate.js';
export type AuthorizationVerdict = L4Verdict;

/** Decides whether a connection may reach a workload. */
export interface InboundAuthorizer {
  authorize(workload: Workload, conn: L4Connection): AuthorizationVerdict;
}

export class PolicyAuthorizer implements InboundAuthorizer {
  readonly #store: ConfigStore;
  readonly #cache: L4PolicyCache;

  constructor(store: ConfigStore) {
    this.#store = store;
    this.#cache = new L4PolicyCache(store.rootNamespace);
  }

  authorize(workload: Workload, conn: L4Connection): AuthorizationVerdict {
    const compiled = this.#cache.get(
      this.#store.authorizationPoliciesFor(workload),
      this.#store.peerAuthenticationsFor(workload),
    );
    return evaluateL4(compiled, conn);
  }
}
