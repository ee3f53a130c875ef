// Request-path normalization at the waypoint, before AuthorizationPolicy and HTTPRoute see the path, so
// that every syntactically different spelling of one resource is matched as that resource. The
// normalized path is also what the waypoint forwards: Istio evaluates policy on the normalized request
// and sends that same request to the backend (istio.io "Authorization Policy Normalization"), so policy,
// routing and the application cannot disagree about which path was asked for. The query is kept
// byte for byte and never normalized.
//
// What is done, in order (Istio's default `BASE`, RFC 3986 §6.2.2, plus `MERGE_SLASHES`):
// 1. The request-target must be origin-form (`/...`); the query starts at the first `?`. A fragment
//    (`#`) is refused, as Envoy does by default.
// 2. Percent-escapes: `%XX` of an unreserved character (ALPHA, DIGIT, `-._~`) is decoded, once (no
//    double decoding: `%252e` stays `%252e`). Every other escape is kept with upper-case hex, so
//    `%c3%a9` and `%C3%A9` are one path. Bytes >= 0x80 and the ASCII characters RFC 3986 does not allow
//    in a path (`"<>[]^\`{|}`) are percent-encoded, so `/café` (raw UTF-8) becomes `/caf%C3%A9`. A policy
//    therefore names a non-ASCII path in its encoded form.
// 3. Dot segments (`.`, `..`, after decoding, so `%2e%2e` counts) are resolved as RFC 3986
//    remove_dot_segments does.
// 4. Runs of `/` are merged into one (`mergeSlashes`, on by default).
//
// Refused with 400, where Istio's BASE would rewrite or keep (deviations chosen to fail closed: each of
// these is a way to make the proxy and the application see two different paths, CVE-2021-31920):
// - `%2F`/`%2f` and `%5C`/`%5c` (an encoded `/` or `\`): BASE keeps them encoded, so a DENY on
//   `/admin/*` never sees `/admin%2Fx`, which many servers decode to `/admin/x`;
// - a raw `\`: BASE turns it into `/`;
// - `..` that would climb above the root (`/../x`): BASE clamps it to `/x`;
// - `%00` (Istio refuses it too), a malformed escape (`%`, `%4`, `%zz`), control characters and
//   characters outside Latin-1 (a request-target is bytes; Node hands them over one character each).
// Slash merging: Istio's default BASE does not merge (`//admin` then escapes a DENY on `/admin`);
// we merge by default, Istio's MERGE_SLASHES, which its security guidance recommends. `mergeSlashes:
// false` gives BASE's behaviour for applications that give `//` a meaning.

export interface NormalizeOptions {
  /** Merge runs of `/` (Istio's MERGE_SLASHES). Default true. */
  readonly mergeSlashes?: boolean;
}

export interface NormalizedPath {
  readonly ok: true;
  /** The normalized path, without the query: what AuthorizationPolicy `paths` and HTTPRoute match. */
  readonly path: string;
  /** `?` and everything after it, exactly as received; "" when there is none. */
  readonly query: string;
  /** `path + query`: the request-target to forward upstream. */
  readonly target: string;
  /** Whether `target` differs from what was received. */
  readonly changed: boolean;
}

export interface RefusedPath {
  readonly ok: false;
  /** Always 400 Bad Request. */
  readonly status: 400;
  /** Why, for the access log and the response body; never echoes the path back. */
  readonly reason: string;
}

export type PathNormalization = NormalizedPath | RefusedPath;

const PERCENT = 0x25;
const SLASH = 0x2f;
const BACKSLASH = 0x5c;
const DOT = 0x2e;

const HEX = '0123456789ABCDEF';

/**
 * Per byte value 0x00-0x7f: 0 = keep as is, 1 = percent-encode, 2 = refuse. `%`, `?`, `#` and `\` are
 * handled before the table is read. Keep: unreserved, sub-delims, `:`, `@`, `/` (RFC 3986 pchar).
 */
const ASCII_CLASS: Uint8Array = (() => {
  const table = new Uint8Array(128);
  for (let c = 0; c < 0x21; c++) table[c] = 2;
  table[0x7f] = 2;
  for (const ch of '"<>[]^`{|}') table[ch.charCodeAt(0)] = 1;
  return table;
})();

function isUnreserved(c: number): boolean {
  return (
    (c >= 0x41 && c <= 0x5a) || // A-Z
    (c >= 0x61 && c <= 0x7a) || // a-z
    (c >= 0x30 && c <= 0x39) || // 0-9
    c === 0x2d || // -
    c === 0x2e || // .
    c === 0x5f || // _
    c === 0x7e // ~
  );
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}

function refused(reason: string): RefusedPath {
  return Object.freeze({ ok: false, status: 400, reason });
}

const NOT_ORIGIN_FORM = refused('the request-target must be a path starting with "/"');
const FRAGMENT = refused('the request-target contains a fragment ("#")');
const BAD_ESCAPE = refused('the path contains a malformed percent-escape');
const NUL = refused('the path contains an encoded NUL (%00)');
const ENCODED_SLASH = refused('the path contains an encoded "/" or "\\" (%2F, %5C)');
const RAW_BACKSLASH = refused('the path contains a backslash');
const CONTROL = refused('the path contains a control character or space');
const NOT_BYTES = refused('the path contains a character outside Latin-1 (not a byte string)');
const ABOVE_ROOT = refused('the path climbs above the root with ".."');

/**
 * Normalizes a request-target as received (`req.url` for HTTP/1.1, `:path` for HTTP/2). Pure; allocates
 * only the result (and the rewritten path when it changes).
 */
export function normalizeRequestTarget(target: string, options: NormalizeOptions = {}): PathNormalization {
  if (target.charCodeAt(0) !== SLASH) return NOT_ORIGIN_FORM;
  const mergeSlashes = options.mergeSlashes ?? true;
  if (target.indexOf('#') !== -1) return FRAGMENT;
  let queryAt = target.indexOf('?');
  if (queryAt === -1) queryAt = target.length;
  const raw = target.slice(0, queryAt);
  const query = target.slice(queryAt);

  const decoded = decodePath(raw);
  if (typeof decoded !== 'string') return decoded;
  const path = resolveSegments(decoded, mergeSlashes);
  if (path === undefined) return ABOVE_ROOT;
  const changed = path !== raw;
  return Object.freeze({
    ok: true,
    path,
    query,
    target: changed ? path + query : target,
    changed,
  });
}

/** Step 2: escapes decoded or canonicalised, disallowed characters encoded, refusals found. */
function decodePath(raw: string): string | RefusedPath {
  // Fast path: nothing to rewrite is the common case, so scan before building anything.
  let i = 0;
  for (; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === PERCENT || c >= 0x80 || c === BACKSLASH || ASCII_CLASS[c] !== 0) break;
  }
  if (i === raw.length) return raw;
  let out = raw.slice(0, i);
  for (; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === PERCENT) {
      const hi = hexValue(raw.charCodeAt(i + 1));
      const lo = hexValue(raw.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return BAD_ESCAPE;
      const value = hi * 16 + lo;
      if (value === 0) return NUL;
      if (value === SLASH || value === BACKSLASH) return ENCODED_SLASH;
      out += isUnreserved(value) ? String.fromCharCode(value) : `%${HEX[hi]}${HEX[lo]}`;
      i += 2;
    } else if (c >= 0x80) {
      if (c > 0xff) return NOT_BYTES;
      out += `%${HEX[c >> 4]}${HEX[c & 15]}`;
    } else if (c === BACKSLASH) {
      return RAW_BACKSLASH;
    } else {
      const cls = ASCII_CLASS[c];
      if (cls === 2) return CONTROL;
      out += cls === 1 ? `%${HEX[c >> 4]}${HEX[c & 15]}` : raw[i];
    }
  }
  return out;
}

/**
 * Steps 3 and 4 on a decoded path that starts with `/`: RFC 3986 remove_dot_segments, then (optionally)
 * slash merging, in Istio's order. Undefined if `..` climbs above the root.
 */
function resolveSegments(path: string, mergeSlashes: boolean): string | undefined {
  if (!hasDotSegment(path) && !(mergeSlashes && path.includes('//'))) return path;
  const segments = path.split('/');
  // segments[0] is "" (the path starts with "/"); the output keeps that leading empty segment.
  const out: string[] = [''];
  const last = segments.length - 1;
  for (let i = 1; i <= last; i++) {
    const segment = segments[i] as string;
    if (segment === '.') {
      // "/a/." is "/a/": a dot segment at the end leaves a trailing slash.
      if (i === last) out.push('');
    } else if (segment === '..') {
      if (out.length === 1) return undefined;
      out.pop();
      if (i === last) out.push('');
    } else {
      out.push(segment);
    }
  }
  let result = out.join('/');
  if (result === '') result = '/';
  if (mergeSlashes) result = result.replace(/\/{2,}/g, '/');
  return result;
}

/** Whether some segment is exactly "." or "..". */
function hasDotSegment(path: string): boolean {
  for (let i = path.indexOf('/.'); i !== -1; i = path.indexOf('/.', i + 1)) {
    const next = path.charCodeAt(i + 2);
    if (Number.isNaN(next) || next === SLASH) return true;
    if (next === DOT) {
      const after = path.charCodeAt(i + 3);
      if (Number.isNaN(after) || after === SLASH) return true;
    }
  }
  return false;
}
