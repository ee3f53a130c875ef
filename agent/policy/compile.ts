// The policies that apply to one destination workload -> the node agent's L4 matcher for it. Compile when
// the workload's policies or PeerAuthentications change (see L4PolicyCache), never per connection.
//
// What the node agent enforces (authz.md §4-§5, §8):
// - namespace-wide and selector AuthorizationPolicies (the store already picks those of the workload's
//   namespace and of the root namespace); targetRefs policies are waypoint policies and are ignored;
// - ALLOW and DENY; AUDIT and CUSTOM are ignored (istiod never sends them to ztunnel);
// - dry-run ALLOW and DENY policies are compiled too, but only reported, never enforced, and a dry-run
//   ALLOW does not count as an ALLOW policy;
// - the effective PeerAuthentication mode per port, as an implicit DENY of identity-less peers.
import type { AuthorizationPolicy } from '../../core/model/authz.js';
import type { PeerAuthenticationLevels } from '../../core/model/peer-auth.js';
import { usesPredicate } from '../../core/authz/connection-match.js';
import { compileAuthorization, type CompiledAuthorization } from './authorization.js';
import { compileStrictMtls, type StrictMtls } from './strict-mtls.js';

/** A policy that applies to the workload but that the node agent does not enforce, and why. */
export interface IgnoredPolicy {
  /** `namespace/name`. */
  readonly policy: string;
  readonly reason: string;
}

export interface CompiledL4Policy {
  readonly strictMtls: StrictMtls;
  /** Enforced DENY policies, in input order. */
  readonly deny: readonly CompiledAuthorization[];
  /** Enforced ALLOW policies, in input order; present even when they have no rule left. */
  readonly allow: readonly CompiledAuthorization[];
  /** Dry-run ALLOW and DENY policies: evaluated for reporting only. */
  readonly dryRun: readonly CompiledAuthorization[];
  readonly ignored: readonly IgnoredPolicy[];
  /** Whether any rule reads the peer's principal string, so the evaluator builds it only then. */
  readonly needsPrincipal: boolean;
  /** Whether any rule reads the source address, so the evaluator parses it only then. */
  readonly needsSourceIp: boolean;
  /** Whether any rule reads the destination address. */
  readonly needsDestinationIp: boolean;
}

/**
 * Compiles the policies of one destination workload, typically `store.authorizationPoliciesFor(w)` and
 * `store.peerAuthenticationsFor(w)`. `rootNamespace` names the generated STRICT policy.
 */
export function compileL4Policy(
  policies: readonly AuthorizationPolicy[],
  peerAuth: PeerAuthenticationLevels,
  rootNamespace: string,
): CompiledL4Policy {
  const deny: CompiledAuthorization[] = [];
  const allow: CompiledAuthorization[] = [];
  const dryRun: CompiledAuthorization[] = [];
  const ignored: IgnoredPolicy[] = [];
  for (const policy of policies) {
    const key = `${policy.namespace}/${policy.name}`;
    if (policy.attachment.type === 'targetRefs') {
      ignored.push({
        policy: key,
        reason: 'targetRefs policies are enforced by waypoints, not the node agent',
      });
      continue;
    }
    if (policy.action === 'AUDIT' || policy.action === 'CUSTOM') {
      ignored.push({ policy: key, reason: `the node agent does not support the ${policy.action} action` });
      continue;
    }
    const compiled = compileAuthorization(policy, policy.action);
    if (compiled.dryRun) dryRun.push(compiled);
    else if (compiled.action === 'DENY') deny.push(compiled);
    else allow.push(compiled);
  }
  const all = [...deny, ...allow, ...dryRun];
  return Object.freeze({
    strictMtls: compileStrictMtls(peerAuth, rootNamespace),
    deny: Object.freeze(deny),
    allow: Object.freeze(allow),
    dryRun: Object.freeze(dryRun),
    ignored: Object.freeze(ignored.map((entry) => Object.freeze(entry))),
    needsPrincipal: reads(all, 'principals'),
    needsSourceIp: reads(all, 'sourceIps'),
    needsDestinationIp: reads(all, 'destinationIps'),
  });
}

function reads(
  authorizations: readonly CompiledAuthorization[],
  kind: 'principals' | 'sourceIps' | 'destinationIps',
): boolean {
  return authorizations.some((authorization) => usesPredicate(authorization.rules, kind));
}

/**
 * Compiled policies per (policy list, PeerAuthentication levels). The store returns the same frozen
 * objects for a workload until something they depend on changes, so a hit costs two WeakMap lookups and
 * a change compiles once; entries go away with the objects they were made from.
 */
export class L4PolicyCache {
  readonly #rootNamespace: string;
  readonly #compiled = new WeakMap<
    readonly AuthorizationPolicy[],
    WeakMap<PeerAuthenticationLevels, CompiledL4Policy>
  >();

  constructor(rootNamespace: string) {
    this.#rootNamespace = rootNamespace;
  }

  get(policies: readonly AuthorizationPolicy[], peerAuth: PeerAuthenticationLevels): CompiledL4Policy {
    let byPeerAuth = this.#compiled.get(policies);
    if (byPeerAuth === undefined) {
      byPeerAuth = new WeakMap();
      this.#compiled.set(policies, byPeerAuth);
    }
    let compiled = byPeerAuth.get(peerAuth);
    if (compiled === undefined) {
      compiled = compileL4Policy(policies, peerAuth, this.#rootNamespace);
      byPeerAuth.set(peerAuth, compiled);
    }
    return compiled;
  }
}
