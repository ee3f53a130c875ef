// The waypoint's L7 authorization decision for one HTTP request: pure and synchronous. It reads a
// CompiledWaypointPolicy and returns one of the verdicts made when it was compiled, so a decision
// allocates nothing unless an AUDIT or dry-run policy matched (or a header condition joins duplicates).
//
// Order (authz.md §3):
// 1. a CUSTOM policy matches -> deny (no ext_authz: fail closed, see compile.ts);
// 2. a DENY policy matches -> deny;
// 3. no ALLOW policy -> allow;
// 4. an ALLOW policy matches -> allow;
// 5. otherwise deny.
// AUDIT policies never change the decision: every one that matches is listed in `audit`. Dry-run
// policies of every action are evaluated apart: every one that matches is listed in `dryRun`.
// A denial is answered 403 `RBAC: access denied` (verdict.ts); the request never reaches the upstream.
//
// `traceRequest` is the same decision for `weft explain`: it walks every policy with the same matchers
// (where evaluateRequest stops at the first decision) and derives its verdict from that walk in the same
// order, so a test can hold the two equal.
import { clausesHold, connectionMatchesAny } from '../../core/authz/connection-match.js';
import { stringMatches, type StringMatcher } from '../../core/authz/string-match.js';
import type { PolicyRuleMatch } from '../../core/authz/verdict.js';
import type { AuthorizationAction } from '../../core/model/index.js';
import type { CompiledRequestAuthorization, CompiledRequestRule, RequestPredicate } from './authorization.js';
import type { CompiledWaypointPolicy, PolicyWarning } from './compile.js';
import { pathMatches } from './path-match.js';
import { RequestFacts, type WaypointRequest } from './request.js';
import {
  WAYPOINT_ALLOWED_NO_POLICIES,
  WAYPOINT_DENIED_NO_ALLOW_MATCHED,
  withReports,
  type WaypointVerdict,
} from './verdict.js';

// evaluateRequest is synchronous and calls nothing that could re-enter it, so one instance serves all.
const facts = new RequestFacts();

export function evaluateRequest(compiled: CompiledWaypointPolicy, request: WaypointRequest): WaypointVerdict {
  facts.readRequest(request, compiled);
  const verdict = decide(compiled);
  if (compiled.audit.length === 0 && compiled.dryRun.length === 0) return verdict;
  const audit = reports(compiled.audit);
  const dryRun = reports(compiled.dryRun);
  return audit === undefined && dryRun === undefined ? verdict : withReports(verdict, audit, dryRun);
}

function decide(compiled: CompiledWaypointPolicy): WaypointVerdict {
  for (const policy of compiled.custom) {
    const rule = matchingRule(policy);
    if (rule?.verdict !== undefined) return rule.verdict;
  }
  for (const policy of compiled.deny) {
    const rule = matchingRule(policy);
    if (rule?.verdict !== undefined) return rule.verdict;
  }
  if (compiled.allow.length === 0) return WAYPOINT_ALLOWED_NO_POLICIES;
  for (const policy of compiled.allow) {
    const rule = matchingRule(policy);
    if (rule?.verdict !== undefined) return rule.verdict;
  }
  return WAYPOINT_DENIED_NO_ALLOW_MATCHED;
}

/** The first matching rule of each policy that has one; undefined if none matched. */
function reports(policies: readonly CompiledRequestAuthorization[]): PolicyRuleMatch[] | undefined {
  let matched: PolicyRuleMatch[] | undefined;
  for (const policy of policies) {
    const rule = matchingRule(policy);
    if (rule !== undefined) (matched ??= []).push(rule.report);
  }
  return matched;
}

/** The first rule that matches; a policy with no rules matches nothing. */
function matchingRule(policy: CompiledRequestAuthorization): CompiledRequestRule | undefined {
  for (const rule of policy.rules) if (clausesHold(rule.clauses, facts, requestMatchesAny)) return rule;
  return undefined;
}

/** Whether the request matches any of the predicate's values (the caller applies `negate`). */
function requestMatchesAny(predicate: RequestPredicate, f: RequestFacts): boolean {
  switch (predicate.kind) {
    case 'hosts':
      return f.host !== undefined && anyPresent(predicate.patterns, f.host);
    case 'methods':
      return anyString(predicate.patterns, f.method);
    case 'paths':
      for (const path of predicate.paths) if (pathMatches(path, f.path)) return true;
      return false;
    case 'header': {
      const value = f.header(predicate.name);
      return value !== undefined && anyPresent(predicate.patterns, value);
    }
    case 'sni':
      return anyString(predicate.patterns, f.sni);
    case 'trustDomains':
      return f.identity !== undefined && anyString(predicate.patterns, f.identity.trustDomain);
    case 'assumed':
      return predicate.value;
    default:
      return connectionMatchesAny(predicate, f);
  }
}

function anyString(patterns: readonly StringMatcher[], value: string): boolean {
  for (const pattern of patterns) if (stringMatches(pattern, value)) return true;
  return false;
}

/** For values that may be present but empty (headers, host): `"*"` means present, whatever the value. */
function anyPresent(patterns: readonly StringMatcher[], value: string): boolean {
  for (const pattern of patterns)
    if (pattern.kind === 'presence' || stringMatches(pattern, value)) return true;
  return false;
}

/** One policy as `traceRequest` saw it. */
export interface RequestPolicyTrace {
  /** `namespace/name`. */
  readonly policy: string;
  readonly action: AuthorizationAction;
  readonly dryRun: boolean;
  /** The first rule that matched (its index in `spec.rules`); undefined when none did. */
  readonly matchedRule: number | undefined;
}

/** Every policy of a CompiledWaypointPolicy evaluated against one request, in evaluateRequest's order. */
export interface RequestAuthorizationTrace {
  readonly custom: readonly RequestPolicyTrace[];
  readonly deny: readonly RequestPolicyTrace[];
  readonly allow: readonly RequestPolicyTrace[];
  readonly audit: readonly RequestPolicyTrace[];
  readonly dryRun: readonly RequestPolicyTrace[];
  /** What the waypoint could not enforce as written (compile.ts). */
  readonly warnings: readonly PolicyWarning[];
  /** The decision, derived from the walk above; equal to `evaluateRequest(compiled, request)`. */
  readonly verdict: WaypointVerdict;
}

interface Walked {
  readonly policy: CompiledRequestAuthorization;
  readonly rule: CompiledRequestRule | undefined;
}

/** evaluateRequest, showing its work: for explaining a decision, not for the request path (it allocates). */
export function traceRequest(
  compiled: CompiledWaypointPolicy,
  request: WaypointRequest,
): RequestAuthorizationTrace {
  // The shared facts are safe to fill here too: this runs synchronously, like evaluateRequest.
  facts.readRequest(request, compiled);
  const walk = (policies: readonly CompiledRequestAuthorization[]): Walked[] =>
    policies.map((policy) => ({ policy, rule: matchingRule(policy) }));
  const custom = walk(compiled.custom);
  const deny = walk(compiled.deny);
  const allow = walk(compiled.allow);
  const audit = walk(compiled.audit);
  const dryRun = walk(compiled.dryRun);

  const decidedBy = (entries: readonly Walked[]): WaypointVerdict | undefined =>
    entries.find((entry) => entry.rule?.verdict !== undefined)?.rule?.verdict;
  let verdict =
    decidedBy(custom) ??
    decidedBy(deny) ??
    (allow.length === 0 ? WAYPOINT_ALLOWED_NO_POLICIES : decidedBy(allow)) ??
    WAYPOINT_DENIED_NO_ALLOW_MATCHED;
  const reported = (entries: readonly Walked[]): PolicyRuleMatch[] | undefined => {
    const matched = entries.flatMap((entry) => (entry.rule === undefined ? [] : [entry.rule.report]));
    return matched.length === 0 ? undefined : matched;
  };
  const auditMatched = reported(audit);
  const dryRunMatched = reported(dryRun);
  if (auditMatched !== undefined || dryRunMatched !== undefined)
    verdict = withReports(verdict, auditMatched, dryRunMatched);

  const view = (entries: readonly Walked[]): RequestPolicyTrace[] =>
    entries.map(({ policy, rule }) => ({
      policy: policy.policy,
      action: policy.action,
      dryRun: policy.dryRun,
      matchedRule: rule?.index,
    }));
  return {
    custom: view(custom),
    deny: view(deny),
    allow: view(allow),
    audit: view(audit),
    dryRun: view(dryRun),
    warnings: compiled.warnings,
    verdict,
  };
}
