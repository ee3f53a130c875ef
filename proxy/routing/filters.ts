// HTTPRoute filters (gateway-api.md §6), compiled once per rule (and once per backendRef), applied per
// request in list order. Applying is pure: it records header edits (a URLRewrite hostname is a `set
// host` edit, so list order decides between it and a header modifier), the rewritten path,
// and the mirrors to send in a RequestEdits the caller owns, or returns the local response (a redirect,
// a CORS preflight answer) that ends the request. The HTTP layer carries out what it says.
//
// Decisions where the spec is silent (the whole list is in proxy/routing/index.ts):
// - Rewrites and redirects compute from the request's original path, which is what the rule matched:
//   a later rewrite (a backendRef's after the rule's) replaces an earlier one rather than compounding.
// - A redirect keeps the request's query string.
// - Response header edits recorded before a local response apply to that response too.
// - Timeouts: "0s" and unset both mean no limit (Istio's default when unset); retries: unset `attempts`
//   means 2 retries (Istio's mesh default), unset `backoff` 25 ms (Envoy's base interval).
import type {
  BackendObjectRef,
  PathModifier,
  RequestRedirect,
  RouteFilter,
  RouteRule,
} from '../../core/model/index.js';
import type { BackendProblem, ResolvedBackend, ServiceBackend } from './backends.js';
import { compileCors, evaluateCors, type CompiledCors } from './cors.js';
import { compileHeaderModifier, type HeaderEdit } from './headers.js';
import type { RandomSource } from './random.js';
import { hostOf, type RequestHeaders } from './request.js';

/** A filter the chain understands: the model's, plus CORS until RouteFilter carries it. */
/** Every filter a chain takes (the model's RouteFilter includes CORS). */
export type ChainFilter = RouteFilter;

/** A mirror that resolved to a Service: the runtime copies the request to one of its endpoints. */
export interface MirrorTarget {
  readonly ref: BackendObjectRef;
  readonly backend: ServiceBackend;
}

type Step =
  | { readonly kind: 'request-headers'; readonly edits: readonly HeaderEdit[] }
  | { readonly kind: 'response-headers'; readonly edits: readonly HeaderEdit[] }
  | { readonly kind: 'redirect'; readonly redirect: RequestRedirect; readonly prefix: string | undefined }
  | {
      readonly kind: 'rewrite';
      readonly hostname: string | undefined;
      readonly path: PathModifier | undefined;
      readonly prefix: string | undefined;
    }
  | {
      readonly kind: 'mirror';
      readonly target: MirrorTarget;
      readonly numerator: number;
      readonly denominator: number;
    }
  | { readonly kind: 'cors'; readonly cors: CompiledCors };

/** One list of filters, compiled. Immutable and shared by every request. */
export interface FilterChain {
  readonly steps: readonly Step[];
  /** Mirrors whose backendRef did not resolve: dropped from `steps`, reported as ResolvedRefs=False. */
  readonly problems: readonly BackendProblem[];
}

export const EMPTY_CHAIN: FilterChain = Object.freeze({
  steps: Object.freeze([]),
  problems: Object.freeze([]),
});

export interface ChainOptions {
  /** The rule's PathPrefix value when it has exactly one match of that type (for ReplacePrefixMatch). */
  readonly matchedPrefix: string | undefined;
  /** Resolves a mirror's backendRef (backends.ts `resolveBackendRef`, bound to the store and route). */
  readonly resolveMirror: (ref: BackendObjectRef, field: string) => ResolvedBackend;
  /** The list's field path for messages: `spec.rules[0].filters`. */
  readonly field: string;
}

export function compileFilterChain(filters: readonly ChainFilter[], options: ChainOptions): FilterChain {
  if (filters.length === 0) return EMPTY_CHAIN;
  const steps: Step[] = [];
  const problems: BackendProblem[] = [];
  filters.forEach((filter, i) => {
    switch (filter.type) {
      case 'RequestHeaderModifier':
        steps.push({ kind: 'request-headers', edits: compileHeaderModifier(filter.headers) });
        break;
      case 'ResponseHeaderModifier':
        steps.push({ kind: 'response-headers', edits: compileHeaderModifier(filter.headers) });
        break;
      case 'RequestRedirect':
        steps.push({ kind: 'redirect', redirect: filter.redirect, prefix: options.matchedPrefix });
        break;
      case 'URLRewrite':
        steps.push({
          kind: 'rewrite',
          hostname: filter.rewrite.hostname,
          path: filter.rewrite.path,
          prefix: options.matchedPrefix,
        });
        break;
      case 'RequestMirror': {
        const field = `${options.field}[${i}].requestMirror.backendRef`;
        const resolved = options.resolveMirror(filter.mirror.backendRef, field);
        if (resolved.kind === 'invalid') {
          problems.push(resolved.problem);
          break;
        }
        const { numerator, denominator } = filter.mirror.fraction;
        steps.push({
          kind: 'mirror',
          target: Object.freeze({ ref: filter.mirror.backendRef, backend: resolved }),
          numerator,
          denominator,
        });
        break;
      }
      case 'CORS':
        steps.push({ kind: 'cors', cors: compileCors(filter.cors) });
        break;
    }
  });
  return Object.freeze({ steps: Object.freeze(steps), problems: Object.freeze(problems) });
}

/** The request as the filters see it. */
export interface FilterRequest {
  /** The scheme the client used: "http" inside the mesh (the tunnel, not the request, carries TLS). */
  readonly scheme: 'http' | 'https';
  readonly method: string;
  /** Host header (or :authority) as received, port included if the client sent one. */
  readonly authority: string;
  readonly path: string;
  /** Raw query string without `?`; "" when none. */
  readonly query: string;
  readonly headers: RequestHeaders;
  /** The port the request arrived on: the dialled Service port (the "listener port" of §6.3). */
  readonly port: number;
}

/** What the filters decided for one request. */
export interface RequestEdits {
  /**
   * Apply in order to the request sent on (names lower-case). The final `host` is the authority to
   * send (HTTP/2 `:authority` too): a URLRewrite hostname is recorded here as `set host`.
   */
  readonly requestHeaders: readonly HeaderEdit[];
  /** Apply in order to the response sent back. */
  readonly responseHeaders: readonly HeaderEdit[];
  /** The path to send instead of the client's (query unchanged), after a URLRewrite path. */
  readonly path: string | undefined;
  /** Copies to send, one endpoint each; their responses are ignored. */
  readonly mirrors: readonly MirrorTarget[];
}

/** RequestEdits being filled: one per request, created only when some filter runs. */
export interface EditRecorder extends RequestEdits {
  readonly requestHeaders: HeaderEdit[];
  readonly responseHeaders: HeaderEdit[];
  path: string | undefined;
  readonly mirrors: MirrorTarget[];
}

export function newEditRecorder(): EditRecorder {
  return { requestHeaders: [], responseHeaders: [], path: undefined, mirrors: [] };
}

/** The edits of a request no filter touched; shared. */
export const NO_EDITS: RequestEdits = Object.freeze({
  requestHeaders: Object.freeze([]),
  responseHeaders: Object.freeze([]),
  path: undefined,
  mirrors: Object.freeze([]),
});

/** A response the proxy sends itself; no backend is contacted. */
export interface LocalResponse {
  readonly status: number;
  readonly cause: 'redirect' | 'cors-preflight';
  /** Response headers, before `RequestEdits.responseHeaders` (which the caller applies after these). */
  readonly headers: readonly HeaderEdit[];
}

/**
 * Runs one chain over a request, in list order, recording into `edits`. Returns the local response
 * that ends the request (a redirect, a CORS preflight answer), or undefined to carry on.
 */
export function runFilterChain(
  chain: FilterChain,
  request: FilterRequest,
  edits: EditRecorder,
  random: RandomSource,
): LocalResponse | undefined {
  for (const step of chain.steps) {
    switch (step.kind) {
      case 'request-headers':
        for (const edit of step.edits) edits.requestHeaders.push(edit);
        break;
      case 'response-headers':
        for (const edit of step.edits) edits.responseHeaders.push(edit);
        break;
      case 'rewrite':
        if (step.hostname !== undefined) {
          edits.requestHeaders.push({ op: 'set', name: 'host', value: step.hostname });
        }
        if (step.path !== undefined) edits.path = modifiedPath(step.path, step.prefix, request.path);
        break;
      case 'redirect':
        return {
          status: step.redirect.statusCode,
          cause: 'redirect',
          headers: [
            { op: 'set', name: 'location', value: redirectLocation(step.redirect, step.prefix, request) },
          ],
        };
      case 'mirror':
        if (sampled(step.numerator, step.denominator, random)) edits.mirrors.push(step.target);
        break;
      case 'cors': {
        const outcome = evaluateCors(step.cors, request);
        if (outcome.kind === 'preflight') {
          return { status: outcome.status, cause: 'cors-preflight', headers: outcome.headers };
        }
        if (outcome.kind === 'actual')
          for (const edit of outcome.responseHeaders) edits.responseHeaders.push(edit);
        break;
      }
    }
  }
  return undefined;
}

/** Mirror sampling (GEP-3171): numerator/denominator of requests, without a draw at 0% or 100%. */
function sampled(numerator: number, denominator: number, random: RandomSource): boolean {
  if (numerator >= denominator) return true;
  if (numerator <= 0) return false;
  return random() * denominator < numerator;
}

const DEFAULT_PORTS: Readonly<Record<string, number>> = { http: 80, https: 443 };

/**
 * The Location of a redirect (§6.3): scheme, host, port and path each from the filter when set, else
 * from the request. Port: the filter's; else the scheme's well-known port when the filter sets a scheme;
 * else the port the request arrived on. A port that is the scheme's default is left out.
 */
export function redirectLocation(
  redirect: RequestRedirect,
  prefix: string | undefined,
  request: FilterRequest,
): string {
  const scheme = redirect.scheme ?? request.scheme;
  const host = redirect.hostname ?? hostOf(request.authority);
  const port =
    redirect.port ??
    (redirect.scheme !== undefined ? (DEFAULT_PORTS[redirect.scheme] as number) : request.port);
  const path = redirect.path === undefined ? request.path : modifiedPath(redirect.path, prefix, request.path);
  const portPart = port === DEFAULT_PORTS[scheme] ? '' : `:${port}`;
  const query = request.query === '' ? '' : `?${request.query}`;
  return `${scheme}://${host}${portPart}${path}${query}`;
}

/** ReplaceFullPath, or ReplacePrefixMatch on segment boundaries (§6.4). */
export function modifiedPath(modifier: PathModifier, prefix: string | undefined, path: string): string {
  if (modifier.type === 'ReplaceFullPath') return modifier.value;
  return replacePrefix(prefix ?? '/', modifier.value, path);
}

/**
 * Replaces the matched prefix of `path` (which matched `prefix` on a segment boundary) with
 * `replacement`. Trailing slashes of both are ignored so no "//" appears; the result is never empty.
 * `/foo`→`/xyz`: `/foo/bar`⇒`/xyz/bar`, `/foo/`⇒`/xyz/`; `/foo`→`/`: `/foo/bar`⇒`/bar`, `/foo`⇒`/`.
 */
export function replacePrefix(prefix: string, replacement: string, path: string): string {
  const matched = trimTrailingSlashes(prefix);
  const rest = path.startsWith(matched) ? path.slice(matched.length) : path;
  const result = trimTrailingSlashes(replacement) + rest;
  return result === '' ? '/' : result.charCodeAt(0) === 0x2f ? result : `/${result}`;
}

function trimTrailingSlashes(value: string): string {
  let end = value.length;
  while (end > 0 && value.charCodeAt(end - 1) === 0x2f) end -= 1;
  return end === value.length ? value : value.slice(0, end);
}

/** GEP-1731 retries as the runtime applies them. */
export interface RetryPolicy {
  /** Statuses that trigger a retry; any other status is passed straight through. */
  readonly codes: ReadonlySet<number>;
  /** Retries after the first try: `attempts: 3` allows 4 tries in total. */
  readonly attempts: number;
  /** The least wait before each retry, in ms (the runtime may back off more, never less). */
  readonly backoffMs: number;
  /** With a retry stanza, disconnects, resets, connect failures and per-try timeouts are retried too. */
  readonly onConnectionError: true;
}

/** What the runtime enforces around the backend request(s) of one rule. */
export interface RulePolicy {
  /** Whole request, all tries included; undefined: no limit ("0s" or unset). Expiry answers 504. */
  readonly requestTimeoutMs: number | undefined;
  /** One try; undefined: no limit. A try that exceeds it is cancelled (and retried if `retry` allows). */
  readonly backendRequestTimeoutMs: number | undefined;
  readonly retry: RetryPolicy | undefined;
}

/** Istio's mesh default retry count, used when `retry.attempts` is unset. */
export const DEFAULT_RETRY_ATTEMPTS = 2;
/** Envoy's default retry base interval, used when `retry.backoff` is unset. */
export const DEFAULT_RETRY_BACKOFF_MS = 25;

const NO_LIMITS: RulePolicy = Object.freeze({
  requestTimeoutMs: undefined,
  backendRequestTimeoutMs: undefined,
  retry: undefined,
});

/** A rule with its retry stanza (kept as a name for callers). */
export type RuleWithRetry = RouteRule;

/** Timeouts and retries of one rule, for the runtime to apply. */
export function rulePolicy(rule: RuleWithRetry): RulePolicy {
  const { requestMs, backendRequestMs } = rule.timeouts;
  const retry = rule.retry;
  if (requestMs === undefined && backendRequestMs === undefined && retry === undefined) return NO_LIMITS;
  return Object.freeze({
    requestTimeoutMs: requestMs === 0 ? undefined : requestMs,
    backendRequestTimeoutMs: backendRequestMs === 0 ? undefined : backendRequestMs,
    retry:
      retry === undefined
        ? undefined
        : Object.freeze({
            codes: new Set(retry.codes),
            attempts: retry.attempts ?? DEFAULT_RETRY_ATTEMPTS,
            backoffMs: retry.backoffMs ?? DEFAULT_RETRY_BACKOFF_MS,
            onConnectionError: true as const,
          }),
  });
}
