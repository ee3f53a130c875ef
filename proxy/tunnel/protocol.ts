// Which protocol a tunnel carries, so the waypoint knows whether to parse HTTP or pipe bytes.
//
// Declared first, as Istio reads it: the Service port's `appProtocol`, else its name's prefix
// (`http`, `http-web`, `grpc-api`, …). `http` is HTTP of either version (the client's preface decides;
// the backend gets HTTP/1.1), `http2`/`grpc`/`h2c` are HTTP/2 both ways, and every other declared
// protocol (tcp, tls, https, mysql, …) is opaque TCP. Undeclared ports are detected from the first
// bytes the client sends: the HTTP/2 preface, or an HTTP/1 request line; anything else, or nothing
// within the detection timeout (a server-speaks-first protocol), is TCP.
import type { Duplex } from 'node:stream';
import type { ServicePort } from '../../core/model/service.js';

export type TunnelProtocol = 'http1' | 'h2' | 'tcp';

/** What the port declares: HTTP with the backend's version, opaque TCP, or nothing (detect). */
export type DeclaredProtocol =
  | { readonly kind: 'http'; readonly backend: 'http1' | 'h2' }
  | { readonly kind: 'tcp' }
  | { readonly kind: 'undeclared' };

const HTTP1_BACKEND: DeclaredProtocol = Object.freeze({ kind: 'http', backend: 'http1' });
const H2_BACKEND: DeclaredProtocol = Object.freeze({ kind: 'http', backend: 'h2' });
const TCP: DeclaredProtocol = Object.freeze({ kind: 'tcp' });
const UNDECLARED: DeclaredProtocol = Object.freeze({ kind: 'undeclared' });

function fromToken(token: string): DeclaredProtocol | undefined {
  switch (token.toLowerCase()) {
    case 'http':
      return HTTP1_BACKEND;
    case 'http2':
    case 'grpc':
    case 'grpc-web':
    case 'h2c':
    case 'kubernetes.io/h2c':
      return H2_BACKEND;
    case 'tcp':
    case 'tls':
    case 'https':
    case 'mongo':
    case 'mysql':
    case 'redis':
    case 'kubernetes.io/wss':
      return TCP;
    case 'kubernetes.io/ws':
      return HTTP1_BACKEND;
    default:
      return undefined;
  }
}

export function declaredProtocol(port: ServicePort | undefined): DeclaredProtocol {
  if (!port) return UNDECLARED;
  if (port.appProtocol) return fromToken(port.appProtocol) ?? UNDECLARED;
  if (port.name) {
    const dash = port.name.indexOf('-');
    return fromToken(dash === -1 ? port.name : port.name.slice(0, dash)) ?? UNDECLARED;
  }
  return UNDECLARED;
}

export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const HTTP1_METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH', 'CONNECT', 'TRACE'].map(
  (m) => Buffer.from(`${m} `, 'latin1'),
);
/** Enough to tell every case apart: the whole HTTP/2 preface is the longest. */
export const SNIFF_BYTES = H2_PREFACE.length;

/** 'more' while `prefix` could still be either; otherwise the protocol it shows. */
export function classifyPrefix(prefix: Buffer): TunnelProtocol | 'more' {
  const n = Math.min(prefix.length, H2_PREFACE.length);
  if (prefix.subarray(0, n).equals(H2_PREFACE.subarray(0, n)))
    return prefix.length >= H2_PREFACE.length ? 'h2' : 'more';
  let couldBeHttp1 = false;
  for (const m of HTTP1_METHODS) {
    const k = Math.min(prefix.length, m.length);
    if (!prefix.subarray(0, k).equals(m.subarray(0, k))) continue;
    if (prefix.length >= m.length) return 'http1';
    couldBeHttp1 = true;
  }
  return couldBeHttp1 ? 'more' : 'tcp';
}

/**
 * Reads the client's first bytes until they show the protocol (at most SNIFF_BYTES), puts them back,
 * and resolves with what they showed; 'tcp' if the client sends nothing for `timeoutMs` or ends.
 */
export function sniffProtocol(stream: Duplex, timeoutMs: number): Promise<TunnelProtocol> {
  return new Promise((resolve) => {
    const seen: Buffer[] = [];
    let length = 0;
    const finish = (p: TunnelProtocol): void => {
      clearTimeout(timer);
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
      if (seen.length > 0) stream.unshift(seen.length === 1 ? seen[0]! : Buffer.concat(seen, length));
      resolve(p);
    };
    const onReadable = (): void => {
      let chunk: Buffer | null;
      while ((chunk = stream.read() as Buffer | null) !== null) {
        seen.push(chunk);
        length += chunk.length;
        const verdict = classifyPrefix(seen.length === 1 ? chunk : Buffer.concat(seen, length));
        if (verdict !== 'more') return finish(verdict);
      }
      // At the end of the stream, but before 'end' is emitted: the last moment the bytes can be put
      // back (unshift after 'end' destroys the stream), for a client that sent a few bytes and closed.
      if (atEof(stream)) finish('tcp');
    };
    const onEnd = (): void => finish('tcp');
    const timer = setTimeout(() => finish('tcp'), timeoutMs);
    stream.on('readable', onReadable);
    stream.once('end', onEnd);
    stream.once('close', onEnd);
  });
}

/** Whether the stream has seen its end (EOF read) although 'end' may not be emitted yet. */
function atEof(stream: Duplex): boolean {
  // Node keeps this only in its internal state; there is no public accessor for "ended, not yet emitted".
  return (stream as unknown as { _readableState?: { ended?: boolean } })._readableState?.ended === true;
}
