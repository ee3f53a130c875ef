// One AuthorizationPolicy -> the matcher the node agent runs: istiod's conversion for ztunnel
// (`convertAuthorizationPolicy` / `handleRule`), with every pattern, block and port set compiled here.
// authz.md §5 and ztunnel.md §5.1-5.2 are the spec.
//
// Shape (ztunnel's `Authorization::matches`): a policy matches when any rule matches; a rule when all of
// its clauses match; a clause when any of its matches does; a match when all of its predicates hold.
// A rule has one clause for `to[]` (one match per operation), one for `from[]` (one match per source) and
// one per `when` condition. A clause with no matches holds; a match with no predicates never holds.
//
// HTTP-only attributes (hosts, methods, paths, requestPrincipals, remoteIpBlocks, their not-forms, and
// every `when` key the agent cannot read):
// - ALLOW: the whole rule is omitted. A policy left with no rules still exists, so it denies (fails closed).
// - DENY: the HTTP fields are stripped. A source or operation that mixed them with L4 fields keeps its L4
//   fields (broader than written); one with only HTTP fields becomes an empty match, which never holds,
//   so an HTTP-only alternative is a no-op and an HTTP-only clause makes its rule a no-op.
// Rules that can never match are left out of the compiled form and named in `warnings` instead.
import {
  L4_CONDITION_ATTRIBUTES,
  type AuthorizationPolicy,
  type AuthorizationRule,
  type PolicyCondition,
  type PolicyOperation,
  type PolicySource,
} from '../../core/model/index.js';
import {
  connectionConditionPredicates,
  portPredicates,
  sourcePredicates,
  type Clause as GenericClause,
  type ConnectionPredicate,
  type Match as GenericMatch,
} from '../../core/authz/connection-match.js';
import {
  allowedByPolicy,
  deniedByPolicy,
  type AllowedByPolicy,
  type DeniedByPolicy,
  type DryRunMatch,
} from '../../core/authz/verdict.js';

export type { ServiceAccountMatch } from '../../core/authz/connection-match.js';

/** One attribute test (shared with the waypoint: core/authz/connection-match.ts). */
export type Predicate = ConnectionPredicate;
/** All predicates must hold; an empty match never holds (ztunnel skips it). */
export type Match = GenericMatch<Predicate>;
/** Any match must hold; an empty clause holds. */
export type Clause = GenericClause<Predicate>;

export interface CompiledRule {
  /** The index in `spec.rules`, for `explain`. */
  readonly index: number;
  /** All must hold; none has an empty match (such rules are dropped at compile time). */
  readonly clauses: readonly Clause[];
  /** What the evaluator returns when this rule decides. */
  readonly verdict: AllowedByPolicy | DeniedByPolicy;
  /** What the evaluator reports when this rule of a dry-run policy matches. */
  readonly dryRunMatch: DryRunMatch;
}

export interface CompiledAuthorization {
  /** `namespace/name`. */
  readonly policy: string;
  readonly action: 'ALLOW' | 'DENY';
  readonly dryRun: boolean;
  /** The rules that can match at L4; an ALLOW policy may have none and still counts as an ALLOW policy. */
  readonly rules: readonly CompiledRule[];
  /** Rules omitted, stripped or inert at L4, as istiod words its status (for logs and `explain`). */
  readonly warnings: readonly string[];
}

const HTTP_OPERATION_FIELDS = [
  'hosts',
  'notHosts',
  'methods',
  'notMethods',
  'paths',
  'notPaths',
] as const satisfies readonly (keyof PolicyOperation)[];

const HTTP_SOURCE_FIELDS = [
  'requestPrincipals',
  'notRequestPrincipals',
  'remoteIpBlocks',
  'notRemoteIpBlocks',
] as const satisfies readonly (keyof PolicySource)[];

/** `action` is the policy's own, narrowed by the caller (AUDIT and CUSTOM never reach the node agent). */
export function compileAuthorization(
  policy: AuthorizationPolicy,
  action: 'ALLOW' | 'DENY',
): CompiledAuthorization {
  const key = `${policy.namespace}/${policy.name}`;
  const rules: CompiledRule[] = [];
  const warnings: string[] = [];
  policy.rules.forEach((rule, index) => {
    const httpFields = new Set<string>();
    const clauses = ruleClauses(rule, policy.namespace, httpFields);
    const found = [...httpFields].sort().join(', ');
    const where = `spec.rules[${index}]`;
    if (action === 'ALLOW' && httpFields.size > 0) {
      warnings.push(
        `${where} is omitted: the node agent does not enforce HTTP attributes (found: ${found}); ` +
          'use a waypoint. This is more restrictive than requested.',
      );
      return;
    }
    if (clauses.some((clause) => !clause.some((match) => match.length > 0))) {
      const why = httpFields.size > 0 ? ` without its HTTP attributes (found: ${found})` : '';
      warnings.push(
        `${where} has no effect: it can never match at L4${why}; ` +
          'use a waypoint and targetRefs to enforce it.',
      );
      return;
    }
    if (httpFields.size > 0) {
      warnings.push(
        `${where} is enforced without its HTTP attributes (found: ${found}), ` +
          'which is more restrictive than requested.',
      );
    }
    rules.push(
      Object.freeze({
        index,
        // An empty match can never hold, so it is dropped; every clause keeps at least one match.
        clauses: Object.freeze(clauses.map((clause) => Object.freeze(clause.filter((m) => m.length > 0)))),
        verdict: action === 'ALLOW' ? allowedByPolicy(key, index) : deniedByPolicy(key, index),
        dryRunMatch: Object.freeze({ policy: key, rule: index, action }),
      }),
    );
  });
  return Object.freeze({
    policy: key,
    action,
    dryRun: policy.dryRun,
    rules: Object.freeze(rules),
    warnings: Object.freeze(warnings),
  });
}

/** The rule's clauses with HTTP fields stripped; the names of those fields go into `httpFields`. */
function ruleClauses(rule: AuthorizationRule, policyNamespace: string, httpFields: Set<string>): Clause[] {
  const clauses: Clause[] = [];
  if (rule.to.length > 0) clauses.push(rule.to.map((operation) => operationMatch(operation, httpFields)));
  if (rule.from.length > 0) {
    clauses.push(rule.from.map((source) => sourceMatch(source, policyNamespace, httpFields)));
  }
  for (const condition of rule.when) clauses.push([conditionMatch(condition, httpFields)]);
  return clauses;
}

function operationMatch(operation: PolicyOperation, httpFields: Set<string>): Match {
  for (const field of HTTP_OPERATION_FIELDS) if (operation[field].length > 0) httpFields.add(field);
  return Object.freeze(portPredicates(operation.ports, operation.notPorts));
}

function sourceMatch(source: PolicySource, policyNamespace: string, httpFields: Set<string>): Match {
  for (const field of HTTP_SOURCE_FIELDS) if (source[field].length > 0) httpFields.add(field);
  return Object.freeze(sourcePredicates(source, policyNamespace));
}

/** One `when` condition as a single match: values positive, notValues negated, both must hold. */
function conditionMatch(condition: PolicyCondition, httpFields: Set<string>): Match {
  const predicates = L4_CONDITION_ATTRIBUTES.has(condition.attribute)
    ? connectionConditionPredicates(condition)
    : undefined;
  if (predicates === undefined) {
    httpFields.add(condition.key);
    return Object.freeze([]);
  }
  return Object.freeze(predicates);
}
