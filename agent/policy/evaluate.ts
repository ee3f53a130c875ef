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
import type { CompiledL4Policy } from './compile.js';
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
