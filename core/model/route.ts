// HTTPRoute records (gateway.networking.k8s.io/v1), with the Gateway API defaults already applied:
// a consumer never has to know that an absent match means PathPrefix "/" or an absent weight means 1.
import type { CorsFilter } from './cors.js';
import type { RouteRetry } from './retry.js';
import type { Labels } from './labels.js';

export const GATEWAY_API_GROUP = 'gateway.networking.k8s.io';

/** What a route attaches to: a Gateway (listener) or, for mesh routes (GAMMA), a Service. */
export interface ParentRef {
  /** Defaults to gateway.networking.k8s.io; "" (core) for a Service parent. */
  readonly group: string;
  /** Defaults to Gateway. */
  readonly kind: string;
  readonly name: string;
  /** Defaults to the route's own namespace. */
  readonly namespace: string;
  readonly port: number | undefined;
  /** A listener name for a Gateway parent; a port name for a Service parent. */
  readonly sectionName: string | undefined;
}

export type PathMatchType = 'Exact' | 'PathPrefix' | 'RegularExpression';
export const PATH_MATCH_TYPES: readonly PathMatchType[] = ['Exact', 'PathPrefix', 'RegularExpression'];

export interface PathMatch {
  readonly type: PathMatchType;
  /** For RegularExpression, a pattern known to compile as a JavaScript RegExp. */
  readonly value: string;
}

export type ValueMatchType = 'Exact' | 'RegularExpression';
export const VALUE_MATCH_TYPES: readonly ValueMatchType[] = ['Exact', 'RegularExpression'];

/** A header or query-parameter condition. Header names compare case-insensitively; query names exactly. */
export interface ValueMatch {
  readonly type: ValueMatchType;
  readonly name: string;
  readonly value: string;
}

export type HttpMethod =
  'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE' | 'CONNECT' | 'OPTIONS' | 'TRACE' | 'PATCH';
export const HTTP_METHODS: readonly HttpMethod[] = [
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'CONNECT',
  'OPTIONS',
  'TRACE',
  'PATCH',
];

/** All conditions of one match are ANDed; the matches of a rule are ORed. */
export interface RouteMatch {
  readonly path: PathMatch;
  /** Later duplicates of a name (case-insensitive) are already dropped, as the spec says to ignore them. */
  readonly headers: readonly ValueMatch[];
  readonly queryParams: readonly ValueMatch[];
  readonly method: HttpMethod | undefined;
}

export interface HeaderValue {
  readonly name: string;
  readonly value: string;
}

export interface HeaderModifier {
  readonly set: readonly HeaderValue[];
  readonly add: readonly HeaderValue[];
  readonly remove: readonly string[];
}

export type PathModifier =
  | { readonly type: 'ReplaceFullPath'; readonly value: string }
  | { readonly type: 'ReplacePrefixMatch'; readonly value: string };

export type RedirectStatusCode = 301 | 302 | 303 | 307 | 308;
export const REDIRECT_STATUS_CODES: readonly RedirectStatusCode[] = [301, 302, 303, 307, 308];

export interface RequestRedirect {
  readonly scheme: 'http' | 'https' | undefined;
  readonly hostname: string | undefined;
  readonly path: PathModifier | undefined;
  readonly port: number | undefined;
  /** Defaults to 302. */
  readonly statusCode: RedirectStatusCode;
}

export interface UrlRewrite {
  readonly hostname: string | undefined;
  readonly path: PathModifier | undefined;
}

/** The object a backendRef or mirror points at, defaults applied (group "", kind Service). */
export interface BackendObjectRef {
  readonly group: string;
  readonly kind: string;
  readonly name: string;
  /** Defaults to the route's own namespace. */
  readonly namespace: string;
  /** Required (and present) for a core Service. */
  readonly port: number | undefined;
}

export interface RequestMirror {
  readonly backendRef: BackendObjectRef;
  /** The share of requests mirrored; `percent: p` becomes p/100; absent means 100/100. */
  readonly fraction: { readonly numerator: number; readonly denominator: number };
}

/** The filters Weft implements; any other type rejects the route by name. */
export type RouteFilter =
  | { readonly type: 'RequestHeaderModifier'; readonly headers: HeaderModifier }
  | { readonly type: 'ResponseHeaderModifier'; readonly headers: HeaderModifier }
  | { readonly type: 'RequestRedirect'; readonly redirect: RequestRedirect }
  | { readonly type: 'URLRewrite'; readonly rewrite: UrlRewrite }
  | { readonly type: 'RequestMirror'; readonly mirror: RequestMirror }
  | CorsFilter;

export type RouteFilterType = RouteFilter['type'];

export interface BackendRef extends BackendObjectRef {
  /** 0..1,000,000, default 1; 0 means this backend gets no traffic. */
  readonly weight: number;
  /** Filters applied only to requests sent to this backend. */
  readonly filters: readonly RouteFilter[];
}

export interface RouteTimeouts {
  /** Total time to answer the client; 0 disables it; undefined leaves it to the implementation. */
  readonly requestMs: number | undefined;
  /** Time for one attempt at the backend; same conventions. */
  readonly backendRequestMs: number | undefined;
}

export interface RouteRule {
  readonly name: string | undefined;
  /** Never empty: a rule without matches has the single default match PathPrefix "/". */
  readonly matches: readonly RouteMatch[];
  readonly filters: readonly RouteFilter[];
  /** May be empty: such a rule answers 500 unless a filter (a redirect) produces the response. */
  readonly backendRefs: readonly BackendRef[];
  readonly timeouts: RouteTimeouts;
  /** `retry` (experimental channel); undefined: no retries beyond the implementation's default. */
  readonly retry: RouteRetry | undefined;
}

export interface HttpRoute {
  readonly kind: 'HTTPRoute';
  readonly name: string;
  readonly namespace: string;
  readonly labels: Labels;
  /** metadata.creationTimestamp in ms; the oldest route wins a precedence tie. */
  readonly createdAtMs: number | undefined;
  readonly parentRefs: readonly ParentRef[];
  readonly hostnames: readonly string[];
  /** Never empty: a route without rules has one default rule (PathPrefix "/", no backends). */
  readonly rules: readonly RouteRule[];
}

/** The match given to a rule that lists none, and to a match that has no path. */
export const DEFAULT_PATH_MATCH: PathMatch = Object.freeze({ type: 'PathPrefix', value: '/' });

export function isServiceParent(ref: ParentRef): boolean {
  return ref.group === '' && ref.kind === 'Service';
}
