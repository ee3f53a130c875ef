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
import { formatSpiffeId, type SpiffeIdentity } from '../../core/spiffe.js';
import type { CompiledAuthorization, CompiledRule, Match, Predicate } from './authorization.js';
import { cidrContains, parseIpInto, ParsedIp, type CidrMatcher } from './cidr.js';
import type { CompiledL4Policy } from './compile.js';
import { requiresPeerIdentity } from './strict-mtls.js';
import { stringMatches, type StringMatcher } from './string-match.js';
import {
  ALLOWED_NO_POLICIES,
  DENIED_NO_ALLOW_MATCHED,
  withDryRun,
  type DryRunMatch,
  type L4Verdict,
} from './verdict.js';

/** What the destination node agent knows about an inbound connection (ztunnel's `rbac::Connection`). */
export interface L4Connection {
  /** The direct peer address as the socket reports it (an IPv4-mapped IPv6 address counts as IPv4). */
  readonly srcIp: string;
  /** From the peer's mTLS certificate; undefined for plaintext. */
  readonly srcIdentity: SpiffeIdentity | undefined;
  /** The destination pod address. */
  readonly dstIp: string;
  /** The destination workload (container) port, after any Service port translation. */
  readonly dstPort: number;
}

const SPIFFE_SCHEME = 'spiffe://';

/** The connection's attributes in the form the predicates read. */
class Subject {
  identity: SpiffeIdentity | undefined = undefined;
  /** `<td>/ns/<ns>/sa/<sa>`, the principal form policies are written in; "" without identity. */
  principal = '';
  readonly src = new ParsedIp();
  readonly dst = new ParsedIp();
  dstPort = 0;
}

// evaluateL4 is synchronous and calls nothing that could re-enter it, so one Subject serves every call.
const subject = new Subject();

export function evaluateL4(compiled: CompiledL4Policy, conn: L4Connection): L4Verdict {
  const s = prepare(compiled, conn);
  const verdict = decide(compiled, s);
  if (compiled.dryRun.length === 0) return verdict;
  const dryRun = dryRunMatches(compiled.dryRun, s);
  return dryRun === undefined ? verdict : withDryRun(verdict, dryRun);
}

/** Fills the shared Subject, doing only the work some predicate of this policy needs. */
function prepare(compiled: CompiledL4Policy, conn: L4Connection): Subject {
  const s = subject;
  const identity = conn.srcIdentity;
  s.identity = identity;
  s.principal =
    identity !== undefined && compiled.needsPrincipal
      ? formatSpiffeId(identity).slice(SPIFFE_SCHEME.length)
      : '';
  if (compiled.needsSourceIp) parseIpInto(conn.srcIp, s.src, true);
  if (compiled.needsDestinationIp) parseIpInto(conn.dstIp, s.dst, true);
  s.dstPort = conn.dstPort;
  return s;
}

function decide(compiled: CompiledL4Policy, s: Subject): L4Verdict {
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

function dryRunMatches(policies: readonly CompiledAuthorization[], s: Subject): DryRunMatch[] | undefined {
  let matched: DryRunMatch[] | undefined;
  for (const policy of policies) {
    const rule = matchingRule(policy, s);
    if (rule !== undefined) (matched ??= []).push(rule.dryRunMatch);
  }
  return matched;
}

/** The first rule that matches; a policy with no rules matches nothing. */
function matchingRule(policy: CompiledAuthorization, s: Subject): CompiledRule | undefined {
  for (const rule of policy.rules) if (ruleMatches(rule, s)) return rule;
  return undefined;
}

/** Every clause holds; a clause holds when it is empty or any of its matches holds. */
function ruleMatches(rule: CompiledRule, s: Subject): boolean {
  for (const clause of rule.clauses) {
    if (clause.length === 0) continue;
    let held = false;
    for (const match of clause) {
      if (matchHolds(match, s)) {
        held = true;
        break;
      }
    }
    if (!held) return false;
  }
  return true;
}

/** Every predicate holds; a match with no predicates never holds (ztunnel skips it). */
function matchHolds(match: Match, s: Subject): boolean {
  if (match.length === 0) return false;
  for (const predicate of match) if (matchesAny(predicate, s) === predicate.negate) return false;
  return true;
}

/** Whether the connection matches any of the predicate's values; a peer without identity matches none. */
function matchesAny(predicate: Predicate, s: Subject): boolean {
  switch (predicate.kind) {
    case 'principals':
      return s.identity !== undefined && anyString(predicate.patterns, s.principal);
    case 'namespaces':
      return s.identity !== undefined && anyString(predicate.patterns, s.identity.namespace);
    case 'serviceAccounts': {
      const identity = s.identity;
      if (identity === undefined) return false;
      for (const account of predicate.accounts) {
        if (account.namespace === identity.namespace && account.serviceAccount === identity.serviceAccount) {
          return true;
        }
      }
      return false;
    }
    case 'sourceIps':
      return anyBlock(predicate.blocks, s.src);
    case 'destinationIps':
      return anyBlock(predicate.blocks, s.dst);
    case 'destinationPorts':
      return predicate.ports.has(s.dstPort);
  }
}

function anyString(patterns: readonly StringMatcher[], value: string): boolean {
  for (const pattern of patterns) if (stringMatches(pattern, value)) return true;
  return false;
}

function anyBlock(blocks: readonly CidrMatcher[], ip: ParsedIp): boolean {
  for (const block of blocks) if (cidrContains(block, ip)) return true;
  return false;
}
