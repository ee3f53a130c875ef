// An HTTPRoute rule's `retry` stanza (GEP-1731) -> RouteRetry. `readRouteRetry` is written for readRule
// in http-route.ts (which ignores `retry` today); `parseRouteRetry` is the non-throwing form.
import type { RouteRetry } from '../model/retry.js';
import { parseGatewayDuration } from './duration.js';
import {
  FieldError,
  fail,
  optionalInteger,
  optionalList,
  optionalObject,
  optionalString,
  shown,
} from './fields.js';

/** The CRD allows 400..599 (implementations must support 500, 502, 503 and 504). */
const MIN_RETRY_CODE = 400;
const MAX_RETRY_CODE = 599;
/** The CRD bounds the list at 1..(number of codes); 200 entries is far above any sensible list. */
const MAX_CODES = 200;

export function readRouteRetry(value: unknown, field: string): RouteRetry | undefined {
  const retry = optionalObject(value, field);
  if (retry === undefined) return undefined;
  const codes = (optionalList(retry.codes, `${field}.codes`, MAX_CODES) ?? []).map((code, i) => {
    const status = optionalInteger(code, `${field}.codes[${i}]`, {
      min: MIN_RETRY_CODE,
      max: MAX_RETRY_CODE,
      what: 'an HTTP status',
    });
    if (status === undefined) fail(`${field}.codes[${i}]`, 'is required');
    return status;
  });
  const attempts = optionalInteger(retry.attempts, `${field}.attempts`, { min: 1, max: 2 ** 31 - 1 });
  const backoffText = optionalString(retry.backoff, `${field}.backoff`);
  let backoffMs: number | undefined;
  if (backoffText !== undefined) {
    backoffMs = parseGatewayDuration(backoffText);
    if (backoffMs === undefined) {
      fail(`${field}.backoff`, `must be a duration such as "100ms" or "1s", got ${shown(backoffText)}`);
    }
  }
  return { codes: [...new Set(codes)], attempts, backoffMs };
}

export type RouteRetryParse =
  | { readonly ok: true; readonly retry: RouteRetry | undefined }
  | { readonly ok: false; readonly field: string; readonly reason: string };

/** `readRouteRetry` without exceptions. */
export function parseRouteRetry(value: unknown, field = 'retry'): RouteRetryParse {
  try {
    return { ok: true, retry: readRouteRetry(value, field) };
  } catch (err) {
    if (err instanceof FieldError) return { ok: false, field: err.field, reason: err.reason };
    throw err;
  }
}
