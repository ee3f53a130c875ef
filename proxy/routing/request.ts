// What the routing engine reads of one request, and the allocation-light accessors over it. The HTTP
// layer builds a RouteRequest once per request from what it already parsed; nothing here parses bytes.

/** One header as Node hands it over: a single value, or one entry per field line. */
export type HeaderFieldValue = string | readonly string[];

/** Request headers keyed by lower-case name (Node's `IncomingHttpHeaders` fits). */
export type RequestHeaders = Readonly<Record<string, HeaderFieldValue | undefined>>;

/** The address the client dialled, as the tunnel's CONNECT authority names it (canonical IP text). */
export interface DialledAddress {
  readonly ip: string;
  readonly port: number;
}

export interface RouteRequest {
  readonly dialled: DialledAddress;
  /** The client workload's namespace, from its verified SPIFFE identity: decides consumer routes. */
  readonly clientNamespace: string;
  /** Upper-case token, compared literally (a HEAD request does not match a GET rule). */
  readonly method: string;
  /** Already normalized by the HTTP layer; no query string. */
  readonly path: string;
  /** The raw query string, with or without its leading `?`; "" when there is none. */
  readonly query: string;
  /** `host` carries the authority for HTTP/2 too (the HTTP layer copies `:authority` there). */
  readonly headers: RequestHeaders;
}

/** RFC 6265 §5.4 (and RFC 9113 §8.2.3): several Cookie field lines are joined with "; ", not ", ". */
const COOKIE = 'cookie';

/**
 * The value of a request header for matching: several field lines joined with ", " as RFC 9110 §5.3
 * allows (Cookie with "; "). `name` must already be lower-case.
 */
export function headerValue(headers: RequestHeaders, name: string): string | undefined {
  const value = headers[name];
  if (value === undefined || typeof value === 'string') return value;
  if (value.length === 1) return value[0];
  if (value.length === 0) return undefined;
  return value.join(name === COOKIE ? '; ' : ', ');
}

const AMPERSAND = 0x26;
const EQUALS = 0x3d;
const QUESTION = 0x3f;

/**
 * The first value of query parameter `name` in a raw query string, or undefined if it is absent. Names
 * compare exactly (case-sensitive, as written: an encoded name matches only its encoded spelling); the
 * value is percent-decoded (`+` is left alone, as RFC 3986 does). A parameter without `=` has value "".
 * Scans the string in place: no split, no map.
 */
export function queryParam(query: string, name: string): string | undefined {
  let start = query.length > 0 && query.charCodeAt(0) === QUESTION ? 1 : 0;
  const end = query.length;
  while (start <= end) {
    let next = query.indexOf('&', start);
    if (next === -1) next = end;
    if (query.startsWith(name, start)) {
      const after = start + name.length;
      if (after === next) return '';
      if (query.charCodeAt(after) === EQUALS) return decodeValue(query.slice(after + 1, next));
    }
    if (next === end) break;
    start = next + 1;
    // Skip runs of `&&`.
    while (start < end && query.charCodeAt(start) === AMPERSAND) start += 1;
  }
  return undefined;
}

function decodeValue(raw: string): string {
  if (!raw.includes('%')) return raw;
  try {
    return decodeURIComponent(raw);
  } catch {
    // A malformed escape (`%zz`) is matched as written rather than failing the request.
    return raw;
  }
}

/** The host of a Host header value: no port, lower-case, no trailing dot. `[v6]` keeps its brackets. */
export function hostOf(authority: string): string {
  let end = authority.length;
  if (authority.charCodeAt(0) === 0x5b /* [ */) {
    const close = authority.indexOf(']');
    end = close === -1 ? end : close + 1;
  } else {
    const colon = authority.lastIndexOf(':');
    if (colon !== -1) end = colon;
  }
  if (end > 0 && authority.charCodeAt(end - 1) === 0x2e /* . */) end -= 1;
  const host = end === authority.length ? authority : authority.slice(0, end);
  return host.toLowerCase();
}
