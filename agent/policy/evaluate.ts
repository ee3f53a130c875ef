// The node agent's L4 authorization decision for one inbound connection (ztunnel's `assert_rbac`):
// pure and synchronous. It reads a CompiledL4Policy and returns one of the verdict objects made when the
// policy was compiled, so a decision allocates nothing unless a dry-run policy matched.
//
// Order (authz.md §3, §5, §8):
// 1. PeerAuthentication STRICT for the destination port and no peer identity -> deny;
// 2. any DENY policy matches -> deny ("explicitly denied by ns/name");
// 3. no ALLOW policy -> allow;
// 4. any ALLOW policy matches -> allow;
// 5. otherwise deny ("allow policies exist, but none allowed").
// Dry-run policies are evaluated separately: every one that matches is listed in the verdict's `dryRun`,
// whatever the decision, and none of them changes it.
//
// `traceL4` is the same decision for `weft explain`: it walks every policy with the same matchers (where
// evaluateL4 stops at the first decision) and derives its verdict from that walk in the same order, so a
// test can hold the two equal.
import {
  clausesHold,
  connectionMatchesAny,
  ConnectionFacts,
  type ConnectionAttributes,
} from '../../core/authz/connection-match.js';
import {
  ALLOWED_NO_POLICIES,
  DENIED_NO_ALLOW_MATCHED,
  withDryRun,
  type DryRunMatch,
  type L4Verdict,
} from '../../core/authz/verdict.js';
import type { CompiledAuthorization, CompiledRule } from './authorization.js';
import type { CompiledL4Policy, IgnoredPolicy } from './compile.js';
import { requiresPeerIdentity } from './strict-mtls.js';

/**
 * What the destination node agent knows about an inbound connection (ztunnel's `rbac::Connection`):
 * the direct peer address, the peer identity (undefined for plaintext), the destination pod address and
 * the destination workload (container) port, after any Service port translation.
 */
export type L4Connection = ConnectionAttributes;

// evaluateL4 is synchronous and calls nothing that could re-enter it, so one instance serves every call.
const subject = new ConnectionFacts();

export function evaluateL4(compiled: CompiledL4Policy, conn: L4Connection): L4Verdict {
  subject.read(conn, compiled);
  const verdict = decide(compiled, subject);
  if (compiled.dryRun.length === 0) return verdict;
  const dryRun = dryRunMatches(compiled.dryRun, subject);
  return dryRun === undefined ? verdict : withDryRun(verdict, dryRun);
}

function decide(compiled: CompiledL4Policy, s: ConnectionFacts): L4Verdict {
  if (s.identity === undefined && requiresPeerIdentity(compiled.strictMtls, s.dstPort)) {
    return compiled.strictMtls.verdict;
  }
  for (const policy of compiled.deny) {
    const rule = matchingRule(policy, s);
    if (rule !== undefined) return rule.verdict;
  }
  if (compiled.allow.length === 0) return ALLOWED_NO_POLICIES;
  for (const policy of compiled.allow) {
    const rule = matchingRule(policy, s);
    if (rule !== undefined) return rule.verdict;
  }
  return DENIED_NO_ALLOW_MATCHED;
}

function dryRunMatches(
  policies: readonly CompiledAuthorization[],
  s: ConnectionFacts,
): DryRunMatch[] | undefined {
  let matched: DryRunMatch[] | undefined;
  for (const policy of policies) {
    const rule = matchingRule(policy, s);
    if (rule !== undefined) (matched ??= []).push(rule.dryRunMatch);
  }
  return matched;
}

/** The first rule that matches; a policy with no rules matches nothing. */
function matchingRule(policy: CompiledAuthorization, s: ConnectionFacts): CompiledRule | undefined {
  for (const rule of policy.rules) if (clausesHold(rule.clauses, s, connectionMatchesAny)) return rule;
  return undefined;
}

/** One policy as `traceL4` saw it. */
export interface L4PolicyTrace {
  /** `namespace/name`. */
  readonly policy: string;
  readonly action: 'ALLOW' | 'DENY';
  readonly dryRun: boolean;
  /** The first rule that matched (its index in `spec.rules`); undefined when none did. */
  readonly matchedRule: number | undefined;
  /** What the node agent could not enforce as written (compile.ts). */
  readonly warnings: readonly string[];
}

/** Every policy of a CompiledL4Policy evaluated against one connection, in evaluateL4's order. */
export interface L4AuthorizationTrace {
  /** Whether PeerAuthentication makes the destination port require a peer identity (STRICT). */
  readonly identityRequired: boolean;
  /** The DENY policy istiod would generate for that requirement (named when it decides). */
  readonly strictPolicy: string;
  readonly deny: readonly L4PolicyTrace[];
  readonly allow: readonly L4PolicyTrace[];
  readonly dryRun: readonly L4PolicyTrace[];
  /** Policies that apply to the workload but that the node agent does not enforce. */
  readonly ignored: readonly IgnoredPolicy[];
  /** The decision, derived from the walk above; equal to `evaluateL4(compiled, conn)`. */
  readonly verdict: L4Verdict;
}

/** evaluateL4, showing its work: for explaining a decision, not for the connection path (it allocates). */
export function traceL4(compiled: CompiledL4Policy, conn: L4Connection): L4AuthorizationTrace {
  const facts = new ConnectionFacts();
  facts.read(conn, compiled);
  const walk = (policies: readonly CompiledAuthorization[]) =>
    policies.map((policy) => ({ policy, rule: matchingRule(policy, facts) }));
  const deny = walk(compiled.deny);
  const allow = walk(compiled.allow);
  const dryRun = walk(compiled.dryRun);
  const identityRequired = requiresPeerIdentity(compiled.strictMtls, facts.dstPort);

  let verdict: L4Verdict;
  const denied = deny.find((entry) => entry.rule !== undefined);
  const allowed = allow.find((entry) => entry.rule !== undefined);
  if (facts.identity === undefined && identityRequired) verdict = compiled.strictMtls.verdict;
  else if (denied?.rule !== undefined) verdict = denied.rule.verdict;
  else if (allow.length === 0) verdict = ALLOWED_NO_POLICIES;
  else if (allowed?.rule !== undefined) verdict = allowed.rule.verdict;
  else verdict = DENIED_NO_ALLOW_MATCHED;
  const dryRunMatched = dryRun.flatMap((entry) => (entry.rule === undefined ? [] : [entry.rule.dryRunMatch]));
  if (dryRunMatched.length > 0) verdict = withDryRun(verdict, dryRunMatched);

  const view = (entries: readonly { policy: CompiledAuthorization; rule: CompiledRule | undefined }[]) =>
    entries.map(({ policy, rule }): L4PolicyTrace => ({
      policy: policy.policy,
      action: policy.action,
      dryRun: policy.dryRun,
      matchedRule: rule?.index,
      warnings: policy.warnings,
    }));
  return {
    identityRequired,
    strictPolicy: compiled.strictMtls.verdict.policy,
    deny: view(deny),
    allow: view(allow),
    dryRun: view(dryRun),
    ignored: compiled.ignored,
    verdict,
  };
}
