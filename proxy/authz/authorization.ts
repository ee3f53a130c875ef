// One AuthorizationPolicy -> the matcher the waypoint runs per HTTP request: istiod's conversion to an
// Envoy RBAC policy (authz.md §6, §7), with every pattern, block, port set and template compiled here.
//
// Shape: the node agent's (core/authz/connection-match.ts): a rule holds when its `to` clause (one match
// per operation), its `from` clause (one match per source) and each `when` condition hold. That is the
// same boolean formula as Envoy's "some permission and some principal", where istiod spreads the `when`
// conditions over both. Every attribute of §7 is evaluated exactly, except those below.
//
// Attributes the waypoint cannot read. There is no RequestAuthentication and no JWT validation, so
// `requestPrincipals`, `notRequestPrincipals` and `request.auth.*` cannot be known, and
// `experimental.envoy.filters.*` reads Envoy filter metadata that does not exist here. Such a predicate
// is compiled as a constant chosen so the waypoint fails closed: false in an ALLOW policy (the rule can
// only allow when it would hold whatever the unknown value is: never wider than written), true in DENY,
// CUSTOM and AUDIT policies (the rule matches when it might hold: a DENY is never narrower than written).
// Substituting into the and/or formula is exactly three-valued logic with "unknown" resolved per action.
// Examples: DENY `notRequestPrincipals: ["*"]` ("require a JWT") denies every request in its scope;
// ALLOW `requestPrincipals: ["*"]` allows none; DENY `requestPrincipals: [x]` denies everyone, since the
// waypoint cannot tell who x is. Each rule affected is named in `warnings`.
//
// Other choices, where Istio leaves room:
// - `hosts`: case-insensitive (patterns and the host are lower-cased); no port handling, as in Istio: a
//   Host of `a.com:8080` is not `a.com`, list both or write `a.com*`. `"*"` means the host is present.
// - `request.headers[...]` `"*"` means the header is present, even with an empty value (Envoy's
//   present_match); other values use the four string forms on the joined value (proxy/authz/request.ts).
// - `namespaces` / `source.namespace` follow Envoy: a `*` anywhere is a wildcard.
// - `remoteIpBlocks` / `remote.ip` are matched against the original client address, like `ipBlocks`:
//   the waypoint trusts no X-Forwarded-For (Istio's default numTrustedProxies 0).
// - A `paths` value that does not compile (a bad template): in ALLOW the whole rule is dropped, in the
//   other actions only that value is ignored, which may widen the rule: Envoy's handling of bad values
//   (authz.md §2 "Bad values"); named in `warnings`.
import { compileCidr, type CidrMatcher } from '../../core/authz/cidr.js';
import type { Clause, ConnectionPredicate, Match } from '../../core/authz/connection-match.js';
import {
  conditionBlocks,
  connectionConditionPredicates,
  portPredicates,
  serviceAccountPredicate,
  sourcePredicates,
} from '../../core/authz/connection-match.js';
import { compileStringMatch, type StringMatcher } from '../../core/authz/string-match.js';
import type { PolicyRuleMatch } from '../../core/authz/verdict.js';
import type {
  AuthorizationAction,
  AuthorizationPolicy,
  AuthorizationRule,
  PolicyCondition,
  PolicyOperation,
  PolicySource,
} from '../../core/model/index.js';
import { compilePathMatch, type PathMatcher } from './path-match.js';
import {
  waypointAllowedByPolicy,
  waypointDeniedByCustom,
  waypointDeniedByPolicy,
  type WaypointVerdict,
} from './verdict.js';

/** The HTTP-side attribute tests; `negate` holds when no value matches. */
export type HttpPredicate =
  | {
      /** hosts: lower-cased patterns; `presence` means the host is present. */
      readonly kind: 'hosts';
      readonly negate: boolean;
      readonly patterns: readonly StringMatcher[];
    }
  | {
      readonly kind: 'methods' | 'sni' | 'trustDomains';
      readonly negate: boolean;
      readonly patterns: readonly StringMatcher[];
    }
  | { readonly kind: 'paths'; readonly negate: boolean; readonly paths: readonly PathMatcher[] }
  | {
      /** request.headers[name]: `name` lower-cased; `presence` means the header is present. */
      readonly kind: 'header';
      readonly negate: boolean;
      readonly name: string;
      readonly patterns: readonly StringMatcher[];
    }
  | {
      /** An attribute the waypoint cannot read, resolved at compile time to fail closed. */
      readonly kind: 'assumed';
      readonly negate: false;
      readonly value: boolean;
      /** The field or `when` key, for `explain`. */
      readonly attribute: string;
    };

export type RequestPredicate = ConnectionPredicate | HttpPredicate;

export interface CompiledRequestRule {
  /** The index in `spec.rules`. */
  readonly index: number;
  /** All must hold; no clause has an empty match. */
  readonly clauses: readonly Clause<RequestPredicate>[];
  /** The decision this rule makes in an enforced ALLOW, DENY or CUSTOM policy; undefined for AUDIT. */
  readonly verdict: WaypointVerdict | undefined;
  /** What is reported when this rule matches in a dry-run or AUDIT policy. */
  readonly report: PolicyRuleMatch;
}

export interface CompiledRequestAuthorization {
  /** `namespace/name`. */
  readonly policy: string;
  readonly action: AuthorizationAction;
  readonly dryRun: boolean;
  /** The rules that can match; an ALLOW policy may have none and still counts as an ALLOW policy. */
  readonly rules: readonly CompiledRequestRule[];
  /** What the waypoint could not enforce as written, and what it did instead. */
  readonly warnings: readonly string[];
}

/**
 * A rule that stands in for one the enforcing side cannot apply (an ALLOW rule with HTTP fields, on a
 * TCP connection: tcp.ts), so that the rules after it keep their index in `spec.rules`, which verdicts,
 * flow events and `weft explain` report. The compiler drops it: it never matches.
 */
export const SKIPPED_RULE: AuthorizationRule = Object.freeze({
  from: Object.freeze([]),
  to: Object.freeze([]),
  when: Object.freeze([]),
}) as AuthorizationRule;

/** Per rule: what compiling it had to change, for `warnings`. */
interface RuleNotes {
  readonly assumed: Set<string>;
  readonly badPaths: string[];
}

export function compileRequestAuthorization(policy: AuthorizationPolicy): CompiledRequestAuthorization {
  const key = `${policy.namespace}/${policy.name}`;
  const action = policy.action;
  // The value an unreadable attribute takes: never widen an ALLOW, never narrow anything else.
  const assumedValue = action !== 'ALLOW';
  const rules: CompiledRequestRule[] = [];
  const warnings: string[] = [];
  policy.rules.forEach((rule, index) => {
    if (rule === SKIPPED_RULE) return;
    const notes: RuleNotes = { assumed: new Set(), badPaths: [] };
    const clauses = ruleClauses(rule, policy.namespace, assumedValue, notes);
    const where = `spec.rules[${index}]`;
    if (notes.badPaths.length > 0) {
      if (action === 'ALLOW') {
        warnings.push(
          `${where} is dropped: ${notes.badPaths.join('; ')}. This is more restrictive than requested.`,
        );
        return;
      }
      warnings.push(`${where} is enforced without its invalid path values: ${notes.badPaths.join('; ')}.`);
    }
    if (notes.assumed.size > 0) {
      const found = [...notes.assumed].sort().join(', ');
      const why = `${where} reads what the waypoint cannot know (${found}: no JWT, no Envoy metadata)`;
      warnings.push(
        assumedValue
          ? `${why}; taken as matching, so this ${action} rule may match requests it would not otherwise.`
          : `${why}; taken as not matching, so this ALLOW rule allows only what it would allow anyway.`,
      );
    }
    rules.push(
      Object.freeze({
        index,
        clauses: Object.freeze(clauses),
        verdict: ruleVerdict(policy, index),
        report: Object.freeze({ policy: key, rule: index, action }),
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

function ruleVerdict(policy: AuthorizationPolicy, index: number): WaypointVerdict | undefined {
  switch (policy.action) {
    case 'ALLOW':
      return waypointAllowedByPolicy(policy.namespace, policy.name, index);
    case 'DENY':
      return waypointDeniedByPolicy(policy.namespace, policy.name, index);
    case 'CUSTOM':
      return waypointDeniedByCustom(policy.namespace, policy.name, index, policy.provider);
    case 'AUDIT':
      return undefined;
  }
}

function ruleClauses(
  rule: AuthorizationRule,
  policyNamespace: string,
  assumedValue: boolean,
  notes: RuleNotes,
): Clause<RequestPredicate>[] {
  const clauses: Clause<RequestPredicate>[] = [];
  if (rule.to.length > 0) {
    clauses.push(Object.freeze(rule.to.map((operation) => operationMatch(operation, notes))));
  }
  if (rule.from.length > 0) {
    clauses.push(
      Object.freeze(rule.from.map((source) => sourceMatch(source, policyNamespace, assumedValue, notes))),
    );
  }
  for (const condition of rule.when) {
    clauses.push(Object.freeze([conditionMatch(condition, policyNamespace, assumedValue, notes)]));
  }
  return clauses;
}

/** Holds for every request: what a match whose every field was ignored becomes (no constraint). */
const ALWAYS: Match<RequestPredicate> = Object.freeze([
  Object.freeze({ kind: 'assumed', negate: false, value: true, attribute: '(no constraint left)' }),
]);

function finish(match: RequestPredicate[]): Match<RequestPredicate> {
  return match.length === 0 ? ALWAYS : Object.freeze(match);
}

function operationMatch(operation: PolicyOperation, notes: RuleNotes): Match<RequestPredicate> {
  const match: RequestPredicate[] = [];
  addPatterns(match, 'hosts', false, operation.hosts.map(lowerCase));
  addPatterns(match, 'hosts', true, operation.notHosts.map(lowerCase));
  match.push(...portPredicates(operation.ports, operation.notPorts));
  addPatterns(match, 'methods', false, operation.methods);
  addPatterns(match, 'methods', true, operation.notMethods);
  addPaths(match, false, operation.paths, notes);
  addPaths(match, true, operation.notPaths, notes);
  return finish(match);
}

function sourceMatch(
  source: PolicySource,
  policyNamespace: string,
  assumedValue: boolean,
  notes: RuleNotes,
): Match<RequestPredicate> {
  const match: RequestPredicate[] = sourcePredicates(source, policyNamespace, { namespaceGlobs: true });
  addAssumed(match, 'requestPrincipals', source.requestPrincipals, assumedValue, notes);
  addAssumed(match, 'notRequestPrincipals', source.notRequestPrincipals, assumedValue, notes);
  addRemoteBlocks(match, false, source.remoteIpBlocks.map(compileCidr));
  addRemoteBlocks(match, true, source.notRemoteIpBlocks.map(compileCidr));
  return finish(match);
}

function conditionMatch(
  condition: PolicyCondition,
  policyNamespace: string,
  assumedValue: boolean,
  notes: RuleNotes,
): Match<RequestPredicate> {
  const connection = connectionConditionPredicates(condition, { namespaceGlobs: true });
  if (connection !== undefined) return finish(connection);
  const match: RequestPredicate[] = [];
  for (const negate of [false, true]) {
    const values = negate ? condition.notValues : condition.values;
    if (values.length === 0) continue;
    switch (condition.attribute) {
      case 'request.headers':
        match.push(
          Object.freeze({
            kind: 'header',
            negate,
            name: (condition.argument[0] ?? '').toLowerCase(),
            patterns: Object.freeze(values.map(compileStringMatch)),
          }),
        );
        break;
      case 'remote.ip':
        addRemoteBlocks(match, negate, conditionBlocks(values));
        break;
      case 'source.serviceAccount':
        match.push(serviceAccountPredicate(negate, values, policyNamespace));
        break;
      case 'source.trustDomain':
        addPatterns(match, 'trustDomains', negate, values);
        break;
      case 'connection.sni':
        addPatterns(match, 'sni', negate, values);
        break;
      default:
        // request.auth.* and experimental.*: no JWT, no Envoy filter metadata.
        addAssumed(match, condition.key, values, assumedValue, notes);
    }
  }
  return finish(match);
}

function addPatterns(
  match: RequestPredicate[],
  kind: 'hosts' | 'methods' | 'sni' | 'trustDomains',
  negate: boolean,
  values: readonly string[],
): void {
  if (values.length === 0) return;
  match.push(Object.freeze({ kind, negate, patterns: Object.freeze(values.map(compileStringMatch)) }));
}

function addPaths(
  match: RequestPredicate[],
  negate: boolean,
  values: readonly string[],
  notes: RuleNotes,
): void {
  const paths: PathMatcher[] = [];
  for (const value of values) {
    const compiled = compilePathMatch(value);
    if (compiled.ok) paths.push(compiled.matcher);
    else notes.badPaths.push(compiled.reason);
  }
  if (paths.length > 0) match.push(Object.freeze({ kind: 'paths', negate, paths: Object.freeze(paths) }));
}

function addAssumed(
  match: RequestPredicate[],
  attribute: string,
  values: readonly string[],
  assumedValue: boolean,
  notes: RuleNotes,
): void {
  if (values.length === 0) return;
  notes.assumed.add(attribute);
  match.push(Object.freeze({ kind: 'assumed', negate: false, value: assumedValue, attribute }));
}

/** remoteIpBlocks / remote.ip: the original client address, as for ipBlocks (no trusted proxies). */
function addRemoteBlocks(match: RequestPredicate[], negate: boolean, blocks: readonly CidrMatcher[]): void {
  if (blocks.length > 0)
    match.push(Object.freeze({ kind: 'sourceIps', negate, blocks: Object.freeze(blocks) }));
}

function lowerCase(value: string): string {
  return value.toLowerCase();
}
