// The part of AuthorizationPolicy matching that the node agent (L4) and the waypoint (L7) share: the
// rule structure, and predicates over a connection's attributes (the peer's identity, the source and
// destination address, the destination port). authz.md §2, §5 and §6 are the spec.
//
// Rule structure (ztunnel's `Authorization::matches`; Envoy's RBAC permissions x principals is the same
// boolean formula): a rule holds when all of its clauses hold; a clause when any of its matches holds
// (a clause with no matches holds); a match when all of its predicates hold (a match with no predicates
// never holds: ztunnel skips it; the waypoint never builds one). A rule has one clause for `to[]` (one
// match per operation), one for `from[]` (one match per source) and one per `when` condition.
//
// Predicates are compiled once per config change; evaluation reads a reusable `ConnectionFacts`, so a
// check allocates nothing. A predicate answers "does the attribute match any of the values"; `negate`
// turns that into the `notX` form. A peer without identity (plaintext) matches no identity value, so it
// fails every positive identity field, `"*"` included, and passes every negative one.
import type { PolicyCondition, PolicySource } from '../model/authz.js';
import { parseCidr } from '../model/ip.js';
import { formatSpiffeId, type SpiffeIdentity } from '../spiffe.js';
import { cidrContains, compileCidr, parseIpInto, ParsedIp, type CidrMatcher } from './cidr.js';
import { compileStringMatch, stringMatches, type StringMatcher } from './string-match.js';

export interface ServiceAccountMatch {
  readonly namespace: string;
  readonly serviceAccount: string;
}

/** One attribute test. `negate` holds when no value matches (a peer without identity matches no value). */
export type ConnectionPredicate =
  | {
      readonly kind: 'principals' | 'namespaces';
      readonly negate: boolean;
      readonly patterns: readonly StringMatcher[];
    }
  | {
      /**
       * Namespaces as Envoy matches them (istiod writes a regex over the URI SAN in which each `*` of
       * the value becomes `.*`): a `*` anywhere is a wildcard. Only the waypoint compiles these, and
       * only for lists with an inner `*`; the node agent keeps ztunnel's form, where an inner `*` is a
       * literal (authz.md §2).
       */
      readonly kind: 'namespaceGlobs';
      readonly negate: boolean;
      readonly globs: readonly RegExp[];
    }
  | {
      readonly kind: 'serviceAccounts';
      readonly negate: boolean;
      readonly accounts: readonly ServiceAccountMatch[];
    }
  | {
      readonly kind: 'sourceIps' | 'destinationIps';
      readonly negate: boolean;
      readonly blocks: readonly CidrMatcher[];
    }
  | { readonly kind: 'destinationPorts'; readonly negate: boolean; readonly ports: ReadonlySet<number> };

/** All predicates must hold; an empty match never holds. */
export type Match<P> = readonly P[];
/** Any match must hold; an empty clause holds. */
export type Clause<P> = readonly Match<P>[];

// ---- compiling ------------------------------------------------------------------------------------

export interface SourceCompileOptions {
  /** Envoy's namespace wildcard (a `*` anywhere) instead of ztunnel's (leading or trailing only). */
  readonly namespaceGlobs?: boolean;
}

/**
 * The predicates of a source's connection fields: principals, namespaces, serviceAccounts, ipBlocks and
 * their not-forms, in that order. HTTP-only fields (requestPrincipals, remoteIpBlocks) are the caller's.
 */
export function sourcePredicates(
  source: PolicySource,
  policyNamespace: string,
  options: SourceCompileOptions = {},
): ConnectionPredicate[] {
  const out: ConnectionPredicate[] = [];
  addStrings(out, 'principals', false, source.principals);
  addStrings(out, 'principals', true, source.notPrincipals);
  addNamespaces(out, false, source.namespaces, options);
  addNamespaces(out, true, source.notNamespaces, options);
  addServiceAccounts(out, false, source.serviceAccounts, policyNamespace);
  addServiceAccounts(out, true, source.notServiceAccounts, policyNamespace);
  addBlocks(out, 'sourceIps', false, source.ipBlocks.map(compileCidr));
  addBlocks(out, 'sourceIps', true, source.notIpBlocks.map(compileCidr));
  return out;
}

/** Operation `ports` / `notPorts` (the destination port). */
export function portPredicates(ports: readonly number[], notPorts: readonly number[]): ConnectionPredicate[] {
  const out: ConnectionPredicate[] = [];
  addPorts(out, false, ports);
  addPorts(out, true, notPorts);
  return out;
}

/**
 * One `when` condition on a connection attribute (source.ip, source.namespace, source.principal,
 * destination.ip, destination.port): values positive, notValues negated, both must hold. Undefined for
 * any other attribute, which the caller handles (HTTP at the waypoint, stripped at the node agent).
 */
export function connectionConditionPredicates(
  condition: PolicyCondition,
  options: SourceCompileOptions = {},
): ConnectionPredicate[] | undefined {
  const out: ConnectionPredicate[] = [];
  for (const negate of [false, true]) {
    const values = negate ? condition.notValues : condition.values;
    switch (condition.attribute) {
      case 'source.principal':
        addStrings(out, 'principals', negate, values);
        break;
      case 'source.namespace':
        addNamespaces(out, negate, values, options);
        break;
      case 'source.ip':
        addBlocks(out, 'sourceIps', negate, conditionBlocks(values));
        break;
      case 'destination.ip':
        addBlocks(out, 'destinationIps', negate, conditionBlocks(values));
        break;
      case 'destination.port':
        addPorts(out, negate, values.map(Number));
        break;
      default:
        return undefined;
    }
  }
  return out;
}

/** `ns/sa`, or a bare `sa` meaning `policyNamespace` (the converter has already expanded these). */
export function serviceAccountPredicate(
  negate: boolean,
  values: readonly string[],
  policyNamespace: string,
): ConnectionPredicate {
  const accounts = values.map((value): ServiceAccountMatch => {
    const slash = value.indexOf('/');
    return slash === -1
      ? { namespace: policyNamespace, serviceAccount: value }
      : { namespace: value.slice(0, slash), serviceAccount: value.slice(slash + 1) };
  });
  return Object.freeze({ kind: 'serviceAccounts', negate, accounts: Object.freeze(accounts) });
}

/** IP/CIDR values validated by the converter; one that still fails to parse is skipped, as istiod does. */
export function conditionBlocks(values: readonly string[]): CidrMatcher[] {
  const blocks: CidrMatcher[] = [];
  for (const value of values) {
    const cidr = parseCidr(value);
    if (cidr !== undefined) blocks.push(compileCidr(cidr));
  }
  return blocks;
}

function addStrings(
  out: ConnectionPredicate[],
  kind: 'principals' | 'namespaces',
  negate: boolean,
  values: readonly string[],
): void {
  if (values.length === 0) return;
  out.push(Object.freeze({ kind, negate, patterns: Object.freeze(values.map(compileStringMatch)) }));
}

function addNamespaces(
  out: ConnectionPredicate[],
  negate: boolean,
  values: readonly string[],
  options: SourceCompileOptions,
): void {
  if (options.namespaceGlobs === true && values.some(hasInnerStar)) {
    out.push(Object.freeze({ kind: 'namespaceGlobs', negate, globs: Object.freeze(values.map(globRegExp)) }));
  } else {
    addStrings(out, 'namespaces', negate, values);
  }
}

/** A `*` that is neither the first nor the last character: where ztunnel and Envoy disagree. */
function hasInnerStar(value: string): boolean {
  const inner = value.indexOf('*', 1);
  return inner !== -1 && inner < value.length - 1;
}

/** `*` matches any run of characters (a namespace holds no `/`); everything else is literal. */
function globRegExp(value: string): RegExp {
  if (value === '*') return /^.+$/;
  const body = value
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${body}$`);
}

function addServiceAccounts(
  out: ConnectionPredicate[],
  negate: boolean,
  values: readonly string[],
  policyNamespace: string,
): void {
  if (values.length > 0) out.push(serviceAccountPredicate(negate, values, policyNamespace));
}

function addBlocks(
  out: ConnectionPredicate[],
  kind: 'sourceIps' | 'destinationIps',
  negate: boolean,
  blocks: readonly CidrMatcher[],
): void {
  if (blocks.length === 0) return;
  out.push(Object.freeze({ kind, negate, blocks: Object.freeze(blocks) }));
}

function addPorts(out: ConnectionPredicate[], negate: boolean, ports: readonly number[]): void {
  if (ports.length === 0) return;
  out.push(Object.freeze({ kind: 'destinationPorts', negate, ports: new Set(ports) }));
}

// ---- evaluating -----------------------------------------------------------------------------------

/** What an enforcer knows about the connection a decision is for (ztunnel's `rbac::Connection`). */
export interface ConnectionAttributes {
  /**
   * The client's address: the direct peer at the node agent, the original client restored from the
   * HBONE tunnel at the waypoint (#46982). An IPv4-mapped IPv6 address counts as IPv4.
   */
  readonly srcIp: string;
  /** From the peer's mTLS certificate; undefined for plaintext. */
  readonly srcIdentity: SpiffeIdentity | undefined;
  /** The destination address the client addressed (the pod address at the node agent). */
  readonly dstIp: string;
  /** The destination port (the workload port at the node agent; see authz.md §2 "Ports"). */
  readonly dstPort: number;
}

/** Which attributes the compiled policies read, so that only those are prepared per decision. */
export interface ConnectionNeeds {
  /** Whether any rule reads the peer's principal string. */
  readonly needsPrincipal: boolean;
  /** Whether any rule reads the source address. */
  readonly needsSourceIp: boolean;
  /** Whether any rule reads the destination address. */
  readonly needsDestinationIp: boolean;
}

const SPIFFE_SCHEME = 'spiffe://';

/**
 * A connection's attributes in the form the predicates read. Meant to be reused: an evaluator is
 * synchronous and fills one instance per decision instead of allocating one.
 */
export class ConnectionFacts {
  identity: SpiffeIdentity | undefined = undefined;
  /** `<td>/ns/<ns>/sa/<sa>`, the principal form policies are written in; "" without identity. */
  principal = '';
  readonly src = new ParsedIp();
  readonly dst = new ParsedIp();
  dstPort = 0;

  /** Fills the facts from `conn`, doing only the work `needs` asks for. */
  read(conn: ConnectionAttributes, needs: ConnectionNeeds): void {
    const identity = conn.srcIdentity;
    this.identity = identity;
    this.principal =
      identity !== undefined && needs.needsPrincipal
        ? formatSpiffeId(identity).slice(SPIFFE_SCHEME.length)
        : '';
    if (needs.needsSourceIp) parseIpInto(conn.srcIp, this.src, true);
    if (needs.needsDestinationIp) parseIpInto(conn.dstIp, this.dst, true);
    this.dstPort = conn.dstPort;
  }
}

/** Whether the connection matches any of the predicate's values; a peer without identity matches none. */
export function connectionMatchesAny(predicate: ConnectionPredicate, facts: ConnectionFacts): boolean {
  switch (predicate.kind) {
    case 'principals':
      return facts.identity !== undefined && anyString(predicate.patterns, facts.principal);
    case 'namespaces':
      return facts.identity !== undefined && anyString(predicate.patterns, facts.identity.namespace);
    case 'namespaceGlobs': {
      const identity = facts.identity;
      if (identity === undefined) return false;
      for (const glob of predicate.globs) if (glob.test(identity.namespace)) return true;
      return false;
    }
    case 'serviceAccounts': {
      const identity = facts.identity;
      if (identity === undefined) return false;
      for (const account of predicate.accounts) {
        if (account.namespace === identity.namespace && account.serviceAccount === identity.serviceAccount) {
          return true;
        }
      }
      return false;
    }
    case 'sourceIps':
      return anyBlock(predicate.blocks, facts.src);
    case 'destinationIps':
      return anyBlock(predicate.blocks, facts.dst);
    case 'destinationPorts':
      return predicate.ports.has(facts.dstPort);
  }
}

/** Which predicate kinds a set of clauses uses; for the `needs` flags. */
export function usesPredicate<P extends { readonly kind: string }>(
  rules: Iterable<{ readonly clauses: readonly Clause<P>[] }>,
  kind: P['kind'],
): boolean {
  for (const rule of rules) {
    for (const clause of rule.clauses) {
      for (const match of clause) for (const predicate of match) if (predicate.kind === kind) return true;
    }
  }
  return false;
}

/**
 * Whether every clause holds: a clause holds when it is empty or any of its matches holds; a match when
 * it has predicates and each one's `matchesAny` differs from its `negate`.
 */
export function clausesHold<P extends { readonly negate: boolean }, F>(
  clauses: readonly Clause<P>[],
  facts: F,
  matchesAny: (predicate: P, facts: F) => boolean,
): boolean {
  for (const clause of clauses) {
    if (clause.length === 0) continue;
    let held = false;
    for (const match of clause) {
      if (matchHolds(match, facts, matchesAny)) {
        held = true;
        break;
      }
    }
    if (!held) return false;
  }
  return true;
}

function matchHolds<P extends { readonly negate: boolean }, F>(
  match: Match<P>,
  facts: F,
  matchesAny: (predicate: P, facts: F) => boolean,
): boolean {
  if (match.length === 0) return false;
  for (const predicate of match) if (matchesAny(predicate, facts) === predicate.negate) return false;
  return true;
}

function anyString(patterns: readonly StringMatcher[], value: string): boolean {
  for (const pattern of patterns) if (stringMatches(pattern, value)) return true;
  return false;
}

function anyBlock(blocks: readonly CidrMatcher[], ip: ParsedIp): boolean {
  for (const block of blocks) if (cidrContains(block, ip)) return true;
  return false;
}
