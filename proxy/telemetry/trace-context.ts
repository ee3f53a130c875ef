// W3C Trace Context (https://www.w3.org/TR/trace-context/) and `x-request-id` for the waypoint: read
// what the client sent, strictly, and decide what goes upstream. Anything invalid is dropped, never
// repaired: a half-trusted trace id would stitch unrelated requests into one trace.
//
// `traceparent` is `version-traceid-parentid-flags`, lower-case hex only. Version 00 is exactly 55
// characters. A later version is read by its first four fields (the spec's forward-compatibility rule),
// and we always send version 00, the one we implement. Version ff and all-zero ids are invalid.
// `tracestate` is only kept alongside a valid `traceparent`, and only when it parses as a whole.
import { randomBytes, randomUUID } from 'node:crypto';

export { HEADER_TRACEPARENT } from '../../core/hbone/headers.js';

/** One hop's trace context: what a `traceparent` (plus `tracestate`) header carries. */
export interface TraceContext {
  /** 32 lower-case hex digits, not all zero. */
  readonly traceId: string;
  /** The span this hop is a child of (the header's `parent-id`): 16 lower-case hex digits, not all zero. */
  readonly spanId: string;
  /** trace-flags bit 0: the caller recorded its span, so downstream should too. */
  readonly sampled: boolean;
  /** The validated `tracestate` list, members joined by `,`; undefined when absent or dropped. */
  readonly traceState: string | undefined;
}

/** A header as a caller may hold it: absent, one value, or several (repeated headers kept apart). */
export type HeaderValue = string | readonly string[] | undefined;

export const HEADER_TRACESTATE = 'tracestate';
export const HEADER_REQUEST_ID = 'x-request-id';

// Version 00's exact length: 2 + 1 + 32 + 1 + 16 + 1 + 2.
const TRACEPARENT_V00_LENGTH = 55;
// The spec's limits for tracestate: 32 list members, and at least 512 characters must be propagated.
// Beyond either we drop the header rather than pick members to cut (the spec allows both).
const TRACESTATE_MAX_MEMBERS = 32;
const TRACESTATE_MAX_LENGTH = 512;
// Envoy keeps any incoming x-request-id; we keep one that is printable and of UUID-ish size. 128 leaves
// room for vendor formats (prefixes, ULIDs, hex trace ids) while bounding what reaches logs.
const REQUEST_ID_MAX_LENGTH = 128;

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const HEX2 = /^[0-9a-f]{2}$/;
const ZERO_TRACE_ID = '0'.repeat(32);
const ZERO_SPAN_ID = '0'.repeat(16);
// tracestate keys: a simple key, or a multi-tenant `tenant@system` key (spec §3.3.1.3.1).
const TRACESTATE_KEY =
  /^(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})$/;
// tracestate values: printable ASCII without `,` and `=`, up to 256 characters, not ending in a space.
const TRACESTATE_VALUE = /^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;
const VISIBLE_ASCII = /^[\x21-\x7e]+$/;

/** The single value of a header, or undefined when it is absent or repeated (ambiguous). */
function single(value: HeaderValue): string | undefined {
  if (value === undefined || typeof value === 'string') return value;
  return value.length === 1 ? value[0] : undefined;
}

/**
 * Parses a `traceparent` header. Returns undefined for anything the spec calls invalid, so the caller
 * starts a new trace. The result has no `traceState`; see parseTraceContext for both headers.
 */
export function parseTraceparent(value: HeaderValue): TraceContext | undefined {
  const header = single(value);
  if (header === undefined || header.length < TRACEPARENT_V00_LENGTH) return undefined;
  const version = header.slice(0, 2);
  if (!HEX2.test(version) || version === 'ff') return undefined;
  if (version === '00') {
    if (header.length !== TRACEPARENT_V00_LENGTH) return undefined;
  } else if (header.length > TRACEPARENT_V00_LENGTH && header[TRACEPARENT_V00_LENGTH] !== '-') {
    // A later version may append fields, but only after another dash.
    return undefined;
  }
  if (header[2] !== '-' || header[35] !== '-' || header[52] !== '-') return undefined;
  const traceId = header.slice(3, 35);
  const spanId = header.slice(36, 52);
  const flags = header.slice(53, 55);
  if (!HEX32.test(traceId) || traceId === ZERO_TRACE_ID) return undefined;
  if (!HEX16.test(spanId) || spanId === ZERO_SPAN_ID) return undefined;
  if (!HEX2.test(flags)) return undefined;
  return { traceId, spanId, sampled: (parseInt(flags, 16) & 1) === 1, traceState: undefined };
}

/**
 * Validates a `tracestate` header and returns its members joined by `,` (empty members and optional
 * whitespace removed), or undefined when it is absent, empty or invalid anywhere: over 32 members or
 * 512 characters, a bad key or value, or a key given twice. Repeated headers are one list (spec §3.3.1.1).
 */
export function parseTracestate(value: HeaderValue): string | undefined {
  if (value === undefined) return undefined;
  const header = typeof value === 'string' ? value : value.join(',');
  if (header.length > TRACESTATE_MAX_LENGTH) return undefined;
  const members: string[] = [];
  const keys = new Set<string>();
  for (const raw of header.split(',')) {
    const member = raw.trim();
    if (member === '') continue;
    const eq = member.indexOf('=');
    if (eq <= 0) return undefined;
    const key = member.slice(0, eq);
    if (!TRACESTATE_KEY.test(key) || !TRACESTATE_VALUE.test(member.slice(eq + 1))) return undefined;
    if (keys.has(key)) return undefined;
    keys.add(key);
    members.push(member);
    if (members.length > TRACESTATE_MAX_MEMBERS) return undefined;
  }
  return members.length === 0 ? undefined : members.join(',');
}

/** Both headers: `tracestate` is read only when `traceparent` is valid (spec §3.3.1). */
export function parseTraceContext(
  traceparent: HeaderValue,
  tracestate: HeaderValue,
): TraceContext | undefined {
  const parent = parseTraceparent(traceparent);
  if (!parent) return undefined;
  const traceState = parseTracestate(tracestate);
  return traceState === undefined ? parent : { ...parent, traceState };
}

function randomSpanId(): string {
  // 8 random bytes are all zero with probability 2^-64; the spec forbids that id, so draw again.
  for (;;) {
    const id = randomBytes(8).toString('hex');
    if (id !== ZERO_SPAN_ID) return id;
  }
}

function randomTraceId(): string {
  for (;;) {
    const id = randomBytes(16).toString('hex');
    if (id !== ZERO_TRACE_ID) return id;
  }
}

/** The context for our own span under `parent`: same trace, new span id, sampling and state carried. */
export function childContext(parent: TraceContext): TraceContext {
  return {
    traceId: parent.traceId,
    spanId: randomSpanId(),
    sampled: parent.sampled,
    traceState: parent.traceState,
  };
}

/** A new trace, for a request that came without a (valid) `traceparent`. */
export function rootContext(sampled: boolean): TraceContext {
  return { traceId: randomTraceId(), spanId: randomSpanId(), sampled, traceState: undefined };
}

/** The `traceparent` to send: always version 00, with only the sampled flag (the one we implement). */
export function formatTraceparent(ctx: TraceContext): string {
  return `00-${ctx.traceId}-${ctx.spanId}-${ctx.sampled ? '01' : '00'}`;
}

/** Keeps a valid incoming `x-request-id` (one value, visible ASCII, at most 128 chars), else a UUID v4. */
export function requestId(incoming: HeaderValue): string {
  const id = single(incoming);
  if (id !== undefined && id.length <= REQUEST_ID_MAX_LENGTH && VISIBLE_ASCII.test(id)) return id;
  return randomUUID();
}
