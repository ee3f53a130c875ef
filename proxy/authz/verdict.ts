// The waypoint's authorization verdicts: the shared ones (core/authz/verdict.ts) with the fields an HTTP
// denial and the access log need, plus the denial by a CUSTOM policy the waypoint cannot consult.
// Like the node agent's, every verdict is a frozen object made at compile time; a decision copies one
// only to attach AUDIT or dry-run matches.
//
// A denial is answered with Envoy's local reply, 403 and the body `RBAC: access denied` (authz.md §6),
// and logged with Envoy's response detail, `rbac_access_denied_matched_policy[<policy id>]`, where the
// id is istiod's RBAC policy name `ns[<ns>]-policy[<name>]-rule[<index>]`, or `none` when ALLOW policies
// exist and none matched. Existing dashboards and log queries keyed on those strings keep working.
import {
  ALLOWED_NO_POLICIES,
  DENIED_NO_ALLOW_MATCHED,
  allowedByPolicy,
  deniedByPolicy,
  type AllowedByPolicy,
  type AllowedNoPolicies,
  type DeniedByPolicy,
  type DeniedNoAllowMatched,
  type DryRunMatch,
  type PolicyRuleMatch,
} from '../../core/authz/verdict.js';

export const RBAC_DENIED_STATUS = 403;
export const RBAC_DENIED_BODY = 'RBAC: access denied';

/** An AUDIT policy's rule that matched: logged with the request, never changes the decision. */
export type AuditMatch = PolicyRuleMatch;

/**
 * A CUSTOM (ext_authz) policy matched. The waypoint has no ext_authz client, so it cannot ask the
 * provider and fails closed, as Envoy does when the provider cannot be reached (`failOpen: false`).
 */
export interface DeniedByCustom {
  readonly allowed: false;
  readonly reason: 'custom-unsupported';
  readonly policy: string;
  readonly rule: number;
  readonly message: string;
  readonly dryRun: readonly DryRunMatch[];
}

interface WaypointFields {
  /** AUDIT policies whose rules matched, whatever the decision. */
  readonly audit: readonly AuditMatch[];
  /** Envoy's response detail for a denial, for the access log; undefined when allowed. */
  readonly responseDetails: string | undefined;
}

export type WaypointAllowed = (AllowedNoPolicies | AllowedByPolicy) & WaypointFields;
export type WaypointDenied = (DeniedByPolicy | DeniedNoAllowMatched | DeniedByCustom) & WaypointFields;
export type WaypointVerdict = WaypointAllowed | WaypointDenied;

const NONE: readonly AuditMatch[] = Object.freeze([]);

/** istiod's name for the Envoy RBAC policy made from one rule. */
export function rbacPolicyId(namespace: string, name: string, rule: number): string {
  return `ns[${namespace}]-policy[${name}]-rule[${rule}]`;
}

function rbacDenied(policyId: string): string {
  return `rbac_access_denied_matched_policy[${policyId}]`;
}

export const WAYPOINT_ALLOWED_NO_POLICIES: WaypointAllowed = Object.freeze({
  ...ALLOWED_NO_POLICIES,
  audit: NONE,
  responseDetails: undefined,
});

export const WAYPOINT_DENIED_NO_ALLOW_MATCHED: WaypointDenied = Object.freeze({
  ...DENIED_NO_ALLOW_MATCHED,
  audit: NONE,
  responseDetails: rbacDenied('none'),
});

export function waypointAllowedByPolicy(namespace: string, name: string, rule: number): WaypointAllowed {
  return Object.freeze({
    ...allowedByPolicy(`${namespace}/${name}`, rule),
    audit: NONE,
    responseDetails: undefined,
  });
}

export function waypointDeniedByPolicy(namespace: string, name: string, rule: number): WaypointDenied {
  return Object.freeze({
    ...deniedByPolicy(`${namespace}/${name}`, rule),
    audit: NONE,
    responseDetails: rbacDenied(rbacPolicyId(namespace, name, rule)),
  });
}

export function waypointDeniedByCustom(
  namespace: string,
  name: string,
  rule: number,
  provider: string | undefined,
): WaypointDenied {
  const policy = `${namespace}/${name}`;
  return Object.freeze({
    allowed: false,
    reason: 'custom-unsupported',
    policy,
    rule,
    message:
      `denied by CUSTOM policy ${policy}: its provider ${provider ?? '(none)'} cannot be consulted, ` +
      'the waypoint does not support ext_authz',
    dryRun: NONE,
    audit: NONE,
    // Envoy's detail when the ext_authz call fails and failure is not allowed.
    responseDetails: 'ext_authz_error',
  });
}

/** The verdict with the AUDIT and dry-run matches; called only when there is at least one. */
export function withReports(
  verdict: WaypointVerdict,
  audit: readonly AuditMatch[] | undefined,
  dryRun: readonly DryRunMatch[] | undefined,
): WaypointVerdict {
  return Object.freeze({
    ...verdict,
    audit: audit === undefined ? verdict.audit : Object.freeze(audit),
    dryRun: dryRun === undefined ? verdict.dryRun : Object.freeze(dryRun),
  });
}
