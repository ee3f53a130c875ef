// The policies bound to one waypoint request target (binding.ts) -> the matcher the waypoint evaluates
// per request. Compiled when the bound policies change (WaypointPolicyCache), never per request.
//
// What the waypoint enforces (authz.md §3, §6):
// - every action: CUSTOM (see below), DENY, ALLOW and AUDIT, in that order; AUDIT only reports;
// - dry-run policies of any action are compiled too, but only reported, never enforced, and a dry-run
//   ALLOW does not count as an ALLOW policy;
// - CUSTOM: the waypoint has no ext_authz client, so the provider can never be asked. Ignoring the
//   policy would let through requests it exists to check, so a request its rules match is denied, as
//   Envoy denies when the ext_authz call fails (`failOpen: false`, the default). Requests its rules do
//   not match are unaffected, as in Istio (the provider is consulted only on a match).
import { usesPredicate } from '../../core/authz/connection-match.js';
import type { AuthorizationPolicy } from '../../core/model/index.js';
import {
  compileRequestAuthorization,
  type CompiledRequestAuthorization,
  type CompiledRequestRule,
} from './authorization.js';
import type { RequestNeeds } from './request.js';

/** Something about one policy an operator should know: what the waypoint could not enforce as written. */
export interface PolicyWarning {
  /** `namespace/name`. */
  readonly policy: string;
  readonly message: string;
}

export interface CompiledWaypointPolicy extends RequestNeeds {
  /** Enforced CUSTOM policies: a match denies (fail closed, no ext_authz). */
  readonly custom: readonly CompiledRequestAuthorization[];
  /** Enforced DENY policies, in input order. */
  readonly deny: readonly CompiledRequestAuthorization[];
  /** Enforced ALLOW policies, in input order; present even when they have no rule left. */
  readonly allow: readonly CompiledRequestAuthorization[];
  /** AUDIT policies (not dry-run): reported in the verdict's `audit`. */
  readonly audit: readonly CompiledRequestAuthorization[];
  /** Dry-run policies of every action: reported in the verdict's `dryRun`. */
  readonly dryRun: readonly CompiledRequestAuthorization[];
  readonly warnings: readonly PolicyWarning[];
}

export function compileWaypointPolicy(policies: readonly AuthorizationPolicy[]): CompiledWaypointPolicy {
  const custom: CompiledRequestAuthorization[] = [];
  const deny: CompiledRequestAuthorization[] = [];
  const allow: CompiledRequestAuthorization[] = [];
  const audit: CompiledRequestAuthorization[] = [];
  const dryRun: CompiledRequestAuthorization[] = [];
  const warnings: PolicyWarning[] = [];
  for (const policy of policies) {
    const compiled = compileRequestAuthorization(policy);
    for (const message of compiled.warnings)
      warnings.push(Object.freeze({ policy: compiled.policy, message }));
    if (policy.action === 'CUSTOM') {
      warnings.push(
        Object.freeze({
          policy: compiled.policy,
          message:
            `CUSTOM (provider ${policy.provider ?? '(none)'}) is not supported by the waypoint: ` +
            'requests its rules match are denied (fail closed)',
        }),
      );
    }
    if (compiled.dryRun) dryRun.push(compiled);
    else if (compiled.action === 'CUSTOM') custom.push(compiled);
    else if (compiled.action === 'DENY') deny.push(compiled);
    else if (compiled.action === 'ALLOW') allow.push(compiled);
    else audit.push(compiled);
  }
  const rules: CompiledRequestRule[] = [];
  for (const list of [custom, deny, allow, audit, dryRun]) for (const p of list) rules.push(...p.rules);
  return Object.freeze({
    custom: Object.freeze(custom),
    deny: Object.freeze(deny),
    allow: Object.freeze(allow),
    audit: Object.freeze(audit),
    dryRun: Object.freeze(dryRun),
    warnings: Object.freeze(warnings),
    needsPrincipal: usesPredicate(rules, 'principals'),
    needsSourceIp: usesPredicate(rules, 'sourceIps'),
    needsDestinationIp: usesPredicate(rules, 'destinationIps'),
    needsHost: usesPredicate(rules, 'hosts'),
  });
}
