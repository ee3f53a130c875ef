// Authorization verdicts shared by the node agent (L4) and the waypoint (L7). Every verdict an evaluator
// returns is a frozen object made when config changes (the two policy-free ones here, the per-rule ones by
// the compilers), so deciding allocates nothing. The one exception is a verdict that reports dry-run (or, at
// the waypoint, AUDIT) matches: it is a copy with those lists, made only when such a policy matched.
//
// `policy` is `namespace/name`, as ztunnel names policies in its logs; `rule` is the index in the
// policy's `spec.rules`, for `explain`. Every variant can be read for `policy`, `rule` and `message`
// (undefined where there is none), so logging code needs no narrowing. Denial messages are ztunnel's own.
// The node agent's verdicts are `L4Verdict`; the waypoint adds its own fields in proxy/authz/verdict.ts.
import type { AuthorizationAction } from '../model/authz.js';

/** One rule of one policy that matched, reported without deciding anything (dry-run, AUDIT). */
export interface PolicyRuleMatch {
  readonly policy: string;
  readonly rule: number;
  readonly action: AuthorizationAction;
}

/**
 * A dry-run policy (`istio.io/dry-run: "true"`) that matched: logged and explained, never enforced. The
 * node agent reports ALLOW and DENY ones only; the waypoint every action.
 */
export type DryRunMatch = PolicyRuleMatch;

/** No ALLOW policy applies to the destination (§3 step 3). */
export interface AllowedNoPolicies {
  readonly allowed: true;
  readonly reason: 'no-allow-policies';
  readonly policy?: undefined;
  readonly rule?: undefined;
  readonly message: string;
  readonly dryRun: readonly DryRunMatch[];
}

/** An ALLOW policy's rule matched (§3 step 4). */
export interface AllowedByPolicy {
  readonly allowed: true;
  readonly reason: 'allowed';
  readonly policy: string;
  readonly rule: number;
  readonly message: string;
  readonly dryRun: readonly DryRunMatch[];
}

/** A DENY policy's rule matched (§3 step 2). */
export interface DeniedByPolicy {
  readonly allowed: false;
  readonly reason: 'denied-by-policy';
  readonly policy: string;
  readonly rule: number;
  readonly message: string;
  readonly dryRun: readonly DryRunMatch[];
}

/** ALLOW policies apply but none matched (§3 step 5). */
export interface DeniedNoAllowMatched {
  readonly allowed: false;
  readonly reason: 'no-allow-matched';
  readonly policy?: undefined;
  readonly rule?: undefined;
  readonly message: string;
  readonly dryRun: readonly DryRunMatch[];
}

/**
 * PeerAuthentication STRICT applies to the port and the peer has no identity (plaintext). `policy` is
 * the DENY policy istiod would have generated: `<root>/istio_converted_static_strict`, or
 * `<ns>/converted_peer_authentication_<name>` when a workload policy's port-level modes decide.
 */
export interface DeniedByPeerAuthentication {
  readonly allowed: false;
  readonly reason: 'peer-authentication-strict';
  readonly policy: string;
  readonly rule?: undefined;
  readonly message: string;
  readonly dryRun: readonly DryRunMatch[];
}

export type L4Allowed = AllowedNoPolicies | AllowedByPolicy;
export type L4Denied = DeniedByPolicy | DeniedNoAllowMatched | DeniedByPeerAuthentication;
export type L4Verdict = L4Allowed | L4Denied;

const NO_DRY_RUN: readonly DryRunMatch[] = Object.freeze([]);

export const ALLOWED_NO_POLICIES: AllowedNoPolicies = Object.freeze({
  allowed: true,
  reason: 'no-allow-policies',
  message: 'no allow policies exist',
  dryRun: NO_DRY_RUN,
});

export const DENIED_NO_ALLOW_MATCHED: DeniedNoAllowMatched = Object.freeze({
  allowed: false,
  reason: 'no-allow-matched',
  message: 'allow policies exist, but none allowed',
  dryRun: NO_DRY_RUN,
});

export function allowedByPolicy(policy: string, rule: number): AllowedByPolicy {
  return Object.freeze({
    allowed: true,
    reason: 'allowed',
    policy,
    rule,
    message: `allowed by ${policy}`,
    dryRun: NO_DRY_RUN,
  });
}

export function deniedByPolicy(policy: string, rule: number): DeniedByPolicy {
  return Object.freeze({
    allowed: false,
    reason: 'denied-by-policy',
    policy,
    rule,
    message: `explicitly denied by ${policy}`,
    dryRun: NO_DRY_RUN,
  });
}

export function deniedByPeerAuthentication(policy: string): DeniedByPeerAuthentication {
  return Object.freeze({
    allowed: false,
    reason: 'peer-authentication-strict',
    policy,
    message: `explicitly denied by ${policy}`,
    dryRun: NO_DRY_RUN,
  });
}

/** The L4 verdict with the dry-run policies that matched; called only when there is at least one. */
export function withDryRun(verdict: L4Verdict, dryRun: readonly DryRunMatch[]): L4Verdict {
  return Object.freeze({ ...verdict, dryRun: Object.freeze(dryRun) });
}
