// Compiled waypoint policies per request target, recompiled only when the policies bound to that target
// change. Records are immutable and replaced on change, so "changed" is "a different list of objects".
//
// Invariant: an entry's `compiled` was made from exactly its `policies`; `version` is the config
// version at which those were last found to be the bound set. A hit at the current version costs one
// Map lookup; after any config change, the first request per target re-selects the bound policies (a
// filter over at most three namespaces' policies) and recompiles only if they differ.
import type { AuthorizationPolicy } from '../../core/model/index.js';
import { selectWaypointPolicies, type AuthorizationPolicySource, type WaypointTarget } from './binding.js';
import { compileWaypointPolicy, type CompiledWaypointPolicy } from './compile.js';

/** The config the waypoint reads; `ConfigStore` is one. */
export interface VersionedPolicySource extends AuthorizationPolicySource {
  /** Changes whenever any config changes (the store's batch counter). */
  readonly version: number;
}

interface Entry {
  version: number;
  policies: readonly AuthorizationPolicy[];
  compiled: CompiledWaypointPolicy;
}

export class WaypointPolicyCache {
  readonly #source: VersionedPolicySource;
  readonly #entries = new Map<string, Entry>();

  constructor(source: VersionedPolicySource) {
    this.#source = source;
  }

  /** The compiled policies for requests to `target` at the source's current version. */
  get(target: WaypointTarget): CompiledWaypointPolicy {
    const key = targetKey(target);
    const version = this.#source.version;
    const entry = this.#entries.get(key);
    if (entry !== undefined && entry.version === version) return entry.compiled;
    const policies = selectWaypointPolicies(this.#source, target);
    if (entry !== undefined && sameElements(entry.policies, policies)) {
      entry.version = version;
      return entry.compiled;
    }
    const compiled = compileWaypointPolicy(policies);
    this.#entries.set(key, { version, policies, compiled });
    return compiled;
  }

  /** Forgets targets that no longer exist (a removed Service); the next `get` recompiles if needed. */
  forget(target: WaypointTarget): void {
    this.#entries.delete(targetKey(target));
  }
}

function targetKey(target: WaypointTarget): string {
  // Newlines cannot occur in Kubernetes names, so the key is unambiguous.
  const service = target.service === undefined ? '' : `${target.service.namespace}\n${target.service.name}`;
  return `${target.waypoint.namespace}\n${target.waypoint.name}\n${service}`;
}

function sameElements(a: readonly AuthorizationPolicy[], b: readonly AuthorizationPolicy[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
