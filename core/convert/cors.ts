// The HTTPRoute CORS filter's `cors` field -> CorsPolicy, with the CRD's defaults and CEL rules.
// `readCors` is written for readFilter in http-route.ts (which does not accept `type: CORS` yet);
// `parseCors` is the non-throwing form for callers outside core/convert.
import { CORS_WILDCARD, type CorsPolicy } from '../model/cors.js';
import { HTTP_METHODS } from '../model/index.js';
import {
  FieldError,
  fail,
  optionalBoolean,
  optionalInteger,
  requireObject,
  shown,
  stringList,
} from './fields.js';

// Limits from apis/v1/httproute_types.go (HTTPCORSFilter).
const MAX_ORIGINS = 64;
const MAX_METHODS = 9;
const MAX_HEADERS = 64;
const DEFAULT_MAX_AGE_SECONDS = 5;

/** `http(s)://host[:port]`, where the host may hold `*` wildcards (CORSOrigin). */
const ORIGIN_RE = /^https?:\/\/[A-Za-z0-9*]([-A-Za-z0-9*.]*[A-Za-z0-9*])?(:[0-9]{1,5})?$/;
const HEADER_NAME_RE = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;

export function readCors(value: unknown, field: string): CorsPolicy {
  const cors = requireObject(value, field);
  const allowOrigins = stringList(cors.allowOrigins, `${field}.allowOrigins`, MAX_ORIGINS);
  allowOrigins.forEach((origin, i) => {
    if (origin === CORS_WILDCARD) return;
    const port = /:([0-9]+)$/.exec(origin)?.[1];
    if (!ORIGIN_RE.test(origin) || (port !== undefined && (Number(port) < 1 || Number(port) > 65535))) {
      fail(`${field}.allowOrigins[${i}]`, `must be "*" or scheme://host[:port], got ${shown(origin)}`);
    }
  });
  loneWildcard(allowOrigins, `${field}.allowOrigins`);
  const allowCredentials = optionalBoolean(cors.allowCredentials, `${field}.allowCredentials`) ?? false;
  const allowMethods = stringList(cors.allowMethods, `${field}.allowMethods`, MAX_METHODS);
  allowMethods.forEach((method, i) => {
    if (method !== CORS_WILDCARD && !(HTTP_METHODS as readonly string[]).includes(method)) {
      fail(
        `${field}.allowMethods[${i}]`,
        `must be "*" or one of ${HTTP_METHODS.join(', ')}, got ${shown(method)}`,
      );
    }
  });
  loneWildcard(allowMethods, `${field}.allowMethods`);
  const allowHeaders = headerNames(cors.allowHeaders, `${field}.allowHeaders`);
  const exposeHeaders = headerNames(cors.exposeHeaders, `${field}.exposeHeaders`);
  if (allowCredentials && exposeHeaders.includes(CORS_WILDCARD)) {
    fail(`${field}.exposeHeaders`, 'must not be "*" when allowCredentials is true');
  }
  const maxAgeSeconds =
    optionalInteger(cors.maxAge, `${field}.maxAge`, { min: 1, max: 2 ** 31 - 1 }) ?? DEFAULT_MAX_AGE_SECONDS;
  return { allowOrigins, allowCredentials, allowMethods, allowHeaders, exposeHeaders, maxAgeSeconds };
}

export type CorsParse =
  | { readonly ok: true; readonly policy: CorsPolicy }
  | { readonly ok: false; readonly field: string; readonly reason: string };

/** `readCors` without exceptions: the policy, or the field at fault and why. */
export function parseCors(value: unknown, field = 'cors'): CorsParse {
  try {
    return { ok: true, policy: readCors(value, field) };
  } catch (err) {
    if (err instanceof FieldError) return { ok: false, field: err.field, reason: err.reason };
    throw err;
  }
}

function headerNames(value: unknown, field: string): readonly string[] {
  const names = stringList(value, field, MAX_HEADERS);
  names.forEach((name, i) => {
    if (name !== CORS_WILDCARD && !HEADER_NAME_RE.test(name)) {
      fail(`${field}[${i}]`, `must be an HTTP header name or "*", got ${shown(name)}`);
    }
  });
  loneWildcard(names, field);
  return names;
}

function loneWildcard(list: readonly string[], field: string): void {
  if (list.length > 1 && list.includes(CORS_WILDCARD))
    fail(field, 'must not list "*" alongside other entries');
}
