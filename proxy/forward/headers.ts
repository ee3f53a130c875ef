// Header records between the two legs of a proxied request: what the waypoint forwards (no hop-by-hop,
// no pseudo-headers, nothing HTTP/2 forbids) and what it sends back.
import type { IncomingHttpHeaders } from 'node:http';
import { hopByHopHeaders } from '../http/framing.js';

/** Headers HTTP/2 forbids (RFC 9113 §8.2.2) and that mean nothing past a hop; never forwarded. */
const CONNECTION_SPECIFIC: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

/**
 * The request headers to send upstream: the client's, minus hop-by-hop and Connection-nominated names,
 * pseudo-headers and `expect` (the waypoint answers 100-continue itself). `keepUpgrade` keeps
 * `upgrade` and `connection: upgrade` for an HTTP/1.1 upgrade that is being tunnelled.
 */
export function forwardRequestHeaders(
  headers: IncomingHttpHeaders,
  rawHeaders: readonly string[],
  keepUpgrade = false,
): Record<string, string | string[]> {
  const drop = hopByHopHeaders(rawHeaders);
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || name.charCodeAt(0) === 0x3a /* : */) continue;
    if (drop.has(name) || CONNECTION_SPECIFIC.has(name) || name === 'expect') continue;
    // A TE that survived is `trailers` in some letter case; HTTP/2 accepts exactly the lower-case form.
    out[name] = name === 'te' ? 'trailers' : value;
  }
  if (keepUpgrade && typeof headers.upgrade === 'string') {
    out.upgrade = headers.upgrade;
    out.connection = 'upgrade';
  }
  return out;
}

/** The response headers to send back: the upstream's minus hop-by-hop and pseudo-headers. */
export function forwardResponseHeaders(
  headers: Readonly<Record<string, string | string[] | number | undefined>>,
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  let nominated: string[] | undefined;
  const connection = headers.connection;
  if (typeof connection === 'string') nominated = connection.split(',').map((t) => t.trim().toLowerCase());
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || name.charCodeAt(0) === 0x3a) continue;
    if (CONNECTION_SPECIFIC.has(name) || name === 'te' || name === 'trailer') continue;
    if (nominated?.includes(name)) continue;
    out[name] = typeof value === 'number' ? String(value) : value;
  }
  return out;
}

/** Trailers to pass on (pseudo-headers and framing fields never are). */
export function forwardTrailers(
  trailers: Readonly<Record<string, string | string[] | undefined>> | undefined,
): Record<string, string | string[]> | undefined {
  if (!trailers) return undefined;
  let out: Record<string, string | string[]> | undefined;
  for (const name in trailers) {
    const value = trailers[name];
    if (value === undefined || name.charCodeAt(0) === 0x3a || CONNECTION_SPECIFIC.has(name)) continue;
    if (name === 'content-length') continue;
    (out ??= {})[name] = value;
  }
  return out;
}
