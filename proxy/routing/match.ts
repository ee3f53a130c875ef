// One HTTPRouteMatch compiled into a predicate, and the precedence order between matches
// (gateway-api.md §2, §3). Compiled once per config change: regexes are built and anchored here,
// header names lower-cased, prefixes trimmed, so testing a request allocates (almost) nothing.
import type { HttpRoute, PathMatch, RouteMatch, ValueMatch } from '../../core/model/index.js';
import { headerValue, queryParam, type RouteRequest } from './request.js';

const SLASH = 0x2f;

/**
 * Path kinds. RegularExpression is full-match (anchored `^(?:…)$`), like Envoy's safe_regex: the spec
 * leaves anchoring open, and a whole-path reading is the one users expect from `/api/v[0-9]+`.
 */
type PathKind = 'exact' | 'prefix' | 'regex' | /** PathPrefix "/": every (normalized) path. */ 'any';

interface ValueTest {
  /** Lower-case for headers; as written for query parameters. */
  readonly name: string;
  readonly exact: string | undefined;
  readonly regex: RegExp | undefined;
}

/** A RouteMatch ready to test requests against. */
export interface MatchPredicate {
  readonly match: RouteMatch;
  readonly pathKind: PathKind;
  /** Exact: the path; Prefix: the prefix without its trailing "/". */
  readonly pathValue: string;
  readonly pathRegex: RegExp | undefined;
  readonly method: string | undefined;
  readonly headers: readonly ValueTest[];
  readonly queryParams: readonly ValueTest[];
}

/** Anchors a pattern for whole-string matching; the converter already proved it compiles. */
export function fullMatchRegex(pattern: string): RegExp {
  return new RegExp(`^(?:${pattern})$`);
}

export function compileMatch(match: RouteMatch): MatchPredicate {
  const { kind, value, regex } = compilePath(match.path);
  return {
    match,
    pathKind: kind,
    pathValue: value,
    pathRegex: regex,
    method: match.method,
    headers: match.headers.map((header) => compileValue(header, header.name.toLowerCase())),
    queryParams: match.queryParams.map((param) => compileValue(param, param.name)),
  };
}

function compilePath(path: PathMatch): { kind: PathKind; value: string; regex: RegExp | undefined } {
  switch (path.type) {
    case 'Exact':
      return { kind: 'exact', value: path.value, regex: undefined };
    case 'RegularExpression':
      return { kind: 'regex', value: path.value, regex: fullMatchRegex(path.value) };
    case 'PathPrefix': {
      // A trailing "/" in the configured prefix is ignored: `/abc/` behaves like `/abc`.
      const trimmed = path.value.replace(/\/+$/, '');
      return trimmed === ''
        ? { kind: 'any', value: '', regex: undefined }
        : { kind: 'prefix', value: trimmed, regex: undefined };
    }
  }
}

function compileValue(match: ValueMatch, name: string): ValueTest {
  return match.type === 'Exact'
    ? { name, exact: match.value, regex: undefined }
    : { name, exact: undefined, regex: fullMatchRegex(match.value) };
}

/** PathPrefix on segment boundaries: `/abc` matches `/abc`, `/abc/`, `/abc/def`, never `/abcd`. */
export function prefixMatches(prefix: string, path: string): boolean {
  return (
    path.startsWith(prefix) && (path.length === prefix.length || path.charCodeAt(prefix.length) === SLASH)
  );
}

/** True iff every condition of the match holds (the conditions of one match are ANDed). */
export function matchesRequest(predicate: MatchPredicate, request: RouteRequest): boolean {
  switch (predicate.pathKind) {
    case 'exact':
      if (request.path !== predicate.pathValue) return false;
      break;
    case 'prefix':
      if (!prefixMatches(predicate.pathValue, request.path)) return false;
      break;
    case 'regex':
      if (!(predicate.pathRegex as RegExp).test(request.path)) return false;
      break;
    case 'any':
      break;
  }
  if (predicate.method !== undefined && request.method !== predicate.method) return false;
  for (const test of predicate.headers) {
    if (!valueHolds(test, headerValue(request.headers, test.name))) return false;
  }
  for (const test of predicate.queryParams) {
    if (!valueHolds(test, queryParam(request.query, test.name))) return false;
  }
  return true;
}

function valueHolds(test: ValueTest, value: string | undefined): boolean {
  if (value === undefined) return false;
  return test.exact !== undefined ? value === test.exact : (test.regex as RegExp).test(value);
}

/** True for a match with an Exact path: such matches are looked up by path before anything else. */
export function isExactPath(predicate: MatchPredicate): boolean {
  return predicate.pathKind === 'exact';
}

/**
 * How a path match ranks (higher first): Exact, then PathPrefix, then RegularExpression (where regexes
 * sit is implementation-specific; this is Istio's order, so a `/` prefix outranks any regex).
 */
function pathRank(kind: PathKind): number {
  switch (kind) {
    case 'exact':
      return 3;
    case 'prefix':
    case 'any':
      return 2;
    case 'regex':
      return 1;
  }
}

/** Where a match sits in the precedence order; everything a comparison needs, precomputed. */
export interface MatchPosition {
  readonly predicate: MatchPredicate;
  readonly route: HttpRoute;
  readonly ruleIndex: number;
  readonly matchIndex: number;
}

/**
 * §3 of the reference: Exact path > longest PathPrefix (characters as configured) > has a method > most
 * headers > most query params; then the older route (creationTimestamp; unknown counts as newest), then
 * "namespace/name" alphabetically; within one route, rule order, then match order. Negative: `a` wins.
 */
export function comparePrecedence(a: MatchPosition, b: MatchPosition): number {
  const pa = a.predicate;
  const pb = b.predicate;
  const rank = pathRank(pb.pathKind) - pathRank(pa.pathKind);
  if (rank !== 0) return rank;
  const length = pb.match.path.value.length - pa.match.path.value.length;
  if (length !== 0) return length;
  const method = (pb.method === undefined ? 0 : 1) - (pa.method === undefined ? 0 : 1);
  if (method !== 0) return method;
  const headers = pb.headers.length - pa.headers.length;
  if (headers !== 0) return headers;
  const query = pb.queryParams.length - pa.queryParams.length;
  if (query !== 0) return query;
  const routes = compareRoutes(a.route, b.route);
  if (routes !== 0) return routes;
  return a.ruleIndex - b.ruleIndex || a.matchIndex - b.matchIndex;
}

/** Older route first (an unknown creationTimestamp sorts last), then "namespace/name". */
export function compareRoutes(a: HttpRoute, b: HttpRoute): number {
  if (a === b) return 0;
  const at = a.createdAtMs ?? Number.POSITIVE_INFINITY;
  const bt = b.createdAtMs ?? Number.POSITIVE_INFINITY;
  if (at !== bt) return at < bt ? -1 : 1;
  const an = `${a.namespace}/${a.name}`;
  const bn = `${b.namespace}/${b.name}`;
  return an < bn ? -1 : an > bn ? 1 : 0;
}
