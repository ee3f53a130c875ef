// Request framing: whether the waypoint accepts a request head before it authorizes, routes and forwards
// it, so that no request can be read one way here and another way by the upstream (request smuggling).
//
// Which layer refuses what. Node's HTTP/1 parser (llhttp, strict by default: no --insecure-http-parser,
// no `insecureHTTPParser`) already answers 400 and closes the connection for the following (pinned by
// test/proxy/http/framing.test.ts with raw sockets). In the head, before the 'request' event:
// - duplicate Content-Length, even with equal values, and list forms (`3, 3`), signs, hex, overflow;
// - Content-Length together with Transfer-Encoding, in either order (HTTP/1.0 included);
// - Transfer-Encoding `chunked, chunked` or with `chunked` before another coding;
// - obs-fold (a header line starting with SP or HTAB), whitespace before the colon, a space before the
//   first header line, invalid characters in names (SP, `(`, empty name) or values (NUL, DEL, VT);
// - bare LF or bare CR as a line ending;
// - a missing Host in HTTP/1.1 (`requireHostHeader`), lower-case or unknown methods, HTTP/1.2, and
//   HTAB, NUL, DEL or non-ASCII bytes in the request-target.
// In the body, AFTER the 'request' event has handed the head to the handler: bad chunk sizes, bare LF
// or a missing CRLF in chunked framing, Content-Length in trailers, and a Transfer-Encoding that does
// not end in `chunked` (`xchunked`, `identity`, `chunked;q=1`). So the handler sees those requests;
// framing.ts refuses the Transfer-Encoding ones up front, and a forwarder must abort (reset), never
// finish, the upstream request when the request body errors.
// What gets through Node and is refused here:
// - a version other than HTTP/1.0 and HTTP/1.1 (llhttp takes `HTTP/2.0` as a version and a request line
//   without one as HTTP/0.9): 505;
// - Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1: the framing is faulty): 400;
// - a Transfer-Encoding other than exactly `chunked`, e.g. `gzip, chunked` or two fields `gzip` and
//   `chunked`, which Node de-chunks but does not decode: 501, as Envoy answers unsupported codings;
// - more than one Host, an empty Host, or one that is not `host[:port]` (userinfo, `/`, spaces), RFC 9112
//   §3.2: 400; for HTTP/2, a Host that differs from `:authority` (RFC 9113 §8.3.1): 400;
// - a Connection header nominating Content-Length, Transfer-Encoding or Host as hop-by-hop: a proxy that
//   honours the nomination would forward the body without its framing or the request without its
//   host: 400.
// The request-target is checked by normalize.ts (absolute-form, `*`, `#`, `\`, `%2F`, ...).
// HTTP/2 framing (content-length against DATA, connection-specific headers, TE other than `trailers`)
// is nghttp2's; only the Host checks above apply to it here.
//
// Forwarding must also drop the hop-by-hop headers (`hopByHopHeaders`); among them `Upgrade: h2c` and
// `HTTP2-Settings`, which Node does not act on but an upstream could (h2c smuggling: a tunnel past the
// waypoint's per-request checks).

import { METHODS } from 'node:http';

export type HttpProtocol = 'http/1' | 'h2';

export interface RequestHead {
  /** `http/1` for Node's HTTP/1 server, `h2` for its HTTP/2 server. */
  readonly protocol: HttpProtocol;
  /** `req.httpVersion` ("1.1", "1.0", ...); not read for h2. */
  readonly httpVersion: string;
  /** Flat name/value list as received (`req.rawHeaders`, the HTTP/2 `rawHeaders`). */
  readonly rawHeaders: readonly string[];
  /** HTTP/2 `:authority`, when present. */
  readonly authority?: string | undefined;
  /** The method (checked for h2: Node's HTTP/1 parser already refuses what it does not know). */
  readonly method?: string | undefined;
}

export type FramingDecision =
  { readonly ok: true } | { readonly ok: false; readonly status: 400 | 501 | 505; readonly reason: string };

const ACCEPTED: FramingDecision = Object.freeze({ ok: true });

function refuse(status: 400 | 501 | 505, reason: string): FramingDecision {
  return Object.freeze({ ok: false, status, reason });
}

/**
 * Methods an HTTP/1 hop can carry (Node's parser's list): an HTTP/2 `:method` outside it (`get`, a made-up
 * token) would reach a backend as something no policy was written for. Found by fuzz/targets/waypoint-h2.
 */
const KNOWN_METHODS: ReadonlySet<string> = new Set(METHODS);
const UNKNOWN_METHOD = refuse(400, 'a method HTTP/1 does not know (methods are case-sensitive)');
const BAD_VERSION = refuse(505, 'only HTTP/1.0 and HTTP/1.1 are accepted over HTTP/1');
const TE_IN_HTTP10 = refuse(400, 'Transfer-Encoding in an HTTP/1.0 request');
const TE_NOT_CHUNKED = refuse(501, 'Transfer-Encoding other than "chunked" is not supported');
const MANY_HOSTS = refuse(400, 'more than one Host header');
const BAD_HOST = refuse(400, 'the Host header is not a valid host[:port]');
const HOST_NOT_AUTHORITY = refuse(400, 'the Host header differs from :authority');
const NOMINATED_FRAMING = refuse(
  400,
  'the Connection header nominates Content-Length, Transfer-Encoding or Host as hop-by-hop',
);

/** RFC 3986 authority without userinfo: IP-literal or reg-name, then an optional port. */
const AUTHORITY_RE = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::[0-9]*)?$/;

/** Headers that must never be nominated hop-by-hop: dropping them changes framing or routing. */
const NEVER_HOP_BY_HOP: ReadonlySet<string> = new Set(['content-length', 'transfer-encoding', 'host']);

/** Decides whether the request head may be processed; pure. */
export function checkRequestFraming(head: RequestHead): FramingDecision {
  const http1 = head.protocol === 'http/1';
  if (http1 && head.httpVersion !== '1.1' && head.httpVersion !== '1.0') return BAD_VERSION;
  if (!http1 && head.method !== undefined && !KNOWN_METHODS.has(head.method)) return UNKNOWN_METHOD;
  const raw = head.rawHeaders;
  let hosts = 0;
  let host: string | undefined;
  let transferEncoding: string | undefined;
  let nominatesFraming = false;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    const value = raw[i + 1] as string;
    if (name === 'host') {
      hosts++;
      host = value;
    } else if (name === 'transfer-encoding') {
      transferEncoding = transferEncoding === undefined ? value : `${transferEncoding},${value}`;
    } else if (name === 'connection') {
      for (const token of value.split(',')) {
        if (NEVER_HOP_BY_HOP.has(token.trim().toLowerCase())) nominatesFraming = true;
      }
    }
  }
  if (hosts > 1) return MANY_HOSTS;
  if (host !== undefined && !AUTHORITY_RE.test(host)) return BAD_HOST;
  if (!http1 && host !== undefined && head.authority !== undefined) {
    if (host.toLowerCase() !== head.authority.toLowerCase()) return HOST_NOT_AUTHORITY;
  }
  if (transferEncoding !== undefined && http1) {
    if (head.httpVersion === '1.0') return TE_IN_HTTP10;
    if (transferEncoding.trim().toLowerCase() !== 'chunked') return TE_NOT_CHUNKED;
  }
  if (nominatesFraming) return NOMINATED_FRAMING;
  return ACCEPTED;
}

/** RFC 9110 §7.6.1, plus HTTP2-Settings (RFC 7540 §3.2.1, meaningful only with `Upgrade: h2c`). */
const HOP_BY_HOP: readonly string[] = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
];

/**
 * The lower-case names of the request's headers a proxy must not forward: the hop-by-hop headers, TE
 * unless it is exactly `trailers` (gRPC needs that one end to end, and Envoy keeps it too), and the
 * headers the Connection header nominates (checkRequestFraming has refused nominations of framing
 * headers). WebSocket upgrades, when supported, will need `upgrade` kept on purpose.
 */
export function hopByHopHeaders(rawHeaders: readonly string[]): Set<string> {
  const names = new Set(HOP_BY_HOP);
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const field = (rawHeaders[i] as string).toLowerCase();
    const value = rawHeaders[i + 1] as string;
    if (field === 'te' && value.trim().toLowerCase() !== 'trailers') names.add('te');
    if (field !== 'connection') continue;
    for (const token of value.split(',')) {
      const name = token.trim().toLowerCase();
      if (name !== '' && !NEVER_HOP_BY_HOP.has(name)) names.add(name);
    }
  }
  return names;
}
