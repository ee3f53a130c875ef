// The HTTPRoute CORS filter (gateway-api.md §6.6), compiled once: origin patterns become anchored
// regexes and the constant response header values are joined ahead of time.
import { CORS_WILDCARD, type CorsPolicy } from '../../core/model/cors.js';
import type { HeaderEdit } from './headers.js';
import { headerValue, type RequestHeaders } from './request.js';

const DEFAULT_PORTS: Readonly<Record<string, number>> = { http: 80, https: 443 };

interface OriginPattern {
  readonly scheme: string;
  readonly port: number;
  /** undefined: any host (the host part was a lone `*`). */
  readonly host: RegExp | undefined;
}

export interface CompiledCors {
  readonly policy: CorsPolicy;
  readonly anyOrigin: boolean;
  readonly origins: readonly OriginPattern[];
  /** `*` may be sent as Access-Control-Allow-Origin: a lone `*` origin without credentials. */
  readonly starOrigin: boolean;
  readonly credentials: boolean;
  /** The configured list joined, `*`, or undefined when nothing is configured. */
  readonly methods: string | undefined;
  readonly methodsWildcard: boolean;
  readonly headers: string | undefined;
  readonly headersWildcard: boolean;
  readonly expose: string | undefined;
  readonly maxAge: string;
}

export function compileCors(policy: CorsPolicy): CompiledCors {
  const anyOrigin = policy.allowOrigins.includes(CORS_WILDCARD);
  const methodsWildcard = policy.allowMethods.includes(CORS_WILDCARD);
  const headersWildcard = policy.allowHeaders.includes(CORS_WILDCARD);
  return {
    policy,
    anyOrigin,
    origins: anyOrigin ? [] : policy.allowOrigins.map(compileOrigin),
    starOrigin: anyOrigin && !policy.allowCredentials,
    credentials: policy.allowCredentials,
    methods: policy.allowMethods.length === 0 ? undefined : policy.allowMethods.join(', '),
    methodsWildcard,
    headers: policy.allowHeaders.length === 0 ? undefined : policy.allowHeaders.join(', '),
    headersWildcard,
    expose: policy.exposeHeaders.length === 0 ? undefined : policy.exposeHeaders.join(', '),
    maxAge: String(policy.maxAgeSeconds),
  };
}

function compileOrigin(origin: string): OriginPattern {
  const parsed = parseOrigin(origin);
  // The converter checked the shape; a value that still does not parse can match nothing.
  if (parsed === undefined) return { scheme: '', port: -1, host: /(?!)/ };
  const host =
    parsed.host === CORS_WILDCARD
      ? undefined
      : new RegExp(`^${parsed.host.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
  return { scheme: parsed.scheme, port: parsed.port, host };
}

/** `scheme://host[:port]`, lower-cased, the port defaulted from the scheme; undefined if malformed. */
function parseOrigin(origin: string): { scheme: string; host: string; port: number } | undefined {
  const sep = origin.indexOf('://');
  if (sep <= 0) return undefined;
  const scheme = origin.slice(0, sep).toLowerCase();
  const rest = origin.slice(sep + 3).toLowerCase();
  const bracket = rest.startsWith('[') ? rest.indexOf(']') : -1;
  const colon = rest.indexOf(':', bracket === -1 ? 0 : bracket);
  const host = colon === -1 ? rest : rest.slice(0, colon);
  const portText = colon === -1 ? undefined : rest.slice(colon + 1);
  const port =
    portText === undefined
      ? DEFAULT_PORTS[scheme]
      : /^[0-9]{1,5}$/.test(portText)
        ? Number(portText)
        : undefined;
  if (host === '' || port === undefined) return undefined;
  return { scheme, host, port };
}

function originAllowed(cors: CompiledCors, origin: string): boolean {
  if (cors.anyOrigin) return true;
  const parsed = parseOrigin(origin);
  if (parsed === undefined) return false;
  return cors.origins.some(
    (pattern) =>
      pattern.scheme === parsed.scheme &&
      pattern.port === parsed.port &&
      (pattern.host === undefined || pattern.host.test(parsed.host)),
  );
}

export interface CorsRequest {
  readonly method: string;
  readonly headers: RequestHeaders;
}

export type CorsOutcome =
  /** Not a cross-origin request (no Origin header): nothing to do. */
  | { readonly kind: 'none' }
  /** A preflight, answered here with these headers (none when the origin is not allowed). */
  | { readonly kind: 'preflight'; readonly status: 200; readonly headers: readonly HeaderEdit[] }
  /** An actual request: forward it, and add these headers to its response. */
  | { readonly kind: 'actual'; readonly responseHeaders: readonly HeaderEdit[] };

const NONE: CorsOutcome = Object.freeze({ kind: 'none' });
const EMPTY: readonly HeaderEdit[] = Object.freeze([]);
const REFUSED_PREFLIGHT: CorsOutcome = Object.freeze({ kind: 'preflight', status: 200, headers: EMPTY });
const NOT_ALLOWED_ACTUAL: CorsOutcome = Object.freeze({ kind: 'actual', responseHeaders: EMPTY });

/**
 * The CORS answer for one request. A preflight (OPTIONS with Origin and Access-Control-Request-Method)
 * is always answered here with 200: with the CORS headers if the origin is allowed, without them if not
 * (the spec's "200/204 without CORS headers"; the browser then refuses). With credentials, wildcards are
 * answered with the request's own origin, method and headers, never `*`.
 */
export function evaluateCors(cors: CompiledCors, request: CorsRequest): CorsOutcome {
  const origin = headerValue(request.headers, 'origin');
  if (origin === undefined) return NONE;
  const allowed = originAllowed(cors, origin);
  const requestedMethod = headerValue(request.headers, 'access-control-request-method');
  const preflight = request.method === 'OPTIONS' && requestedMethod !== undefined;
  if (!allowed) return preflight ? REFUSED_PREFLIGHT : NOT_ALLOWED_ACTUAL;
  const headers: HeaderEdit[] = [
    { op: 'set', name: 'access-control-allow-origin', value: cors.starOrigin ? '*' : origin },
  ];
  if (cors.credentials) headers.push({ op: 'set', name: 'access-control-allow-credentials', value: 'true' });
  if (!preflight) {
    if (cors.expose !== undefined) {
      headers.push({ op: 'set', name: 'access-control-expose-headers', value: cors.expose });
    }
    return { kind: 'actual', responseHeaders: headers };
  }
  const methods = cors.methodsWildcard ? (cors.credentials ? requestedMethod : '*') : cors.methods;
  if (methods !== undefined)
    headers.push({ op: 'set', name: 'access-control-allow-methods', value: methods });
  const requestedHeaders = headerValue(request.headers, 'access-control-request-headers');
  const allowHeaders = cors.headersWildcard ? (cors.credentials ? requestedHeaders : '*') : cors.headers;
  if (allowHeaders !== undefined) {
    headers.push({ op: 'set', name: 'access-control-allow-headers', value: allowHeaders });
  }
  headers.push({ op: 'set', name: 'access-control-max-age', value: cors.maxAge });
  return { kind: 'preflight', status: 200, headers };
}
