// What the echo says about a request: the JSON reply body, and the one-line log record that lets a test
// see what a pod received (a mirror target, say) without being the client.
import type { Exchange, Endpoint } from './exchange.js';
import { headerValues } from './steering.js';

/** Request bodies are echoed up to this many bytes (counted in full). */
export const MAX_ECHOED_BODY_BYTES = 4096;

export interface EchoIdentity {
  readonly pod: string;
  readonly namespace: string;
  readonly service: string;
  readonly version: string;
  readonly node: string;
}

export interface EchoReply extends EchoIdentity {
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string | string[]>;
  readonly url: string;
  readonly host: string;
  readonly httpVersion: string;
  /** As Node presents them: lower-case names, repeated headers joined with ", " (set-cookie: a list).
   *  HTTP/2 pseudo-headers (:method, :path, :authority, :scheme) are included. */
  readonly headers: Record<string, string | string[]>;
  /** Trailers that followed the request body. */
  readonly trailers: Record<string, string | string[]>;
  readonly peer: Endpoint;
  readonly local: Endpoint;
  readonly body: EchoBody;
  readonly requestId: string | undefined;
  readonly attempt: number | undefined;
  readonly status: number;
}

export interface EchoBody {
  readonly bytes: number;
  readonly text: string;
}

export async function readBody(body: AsyncIterable<Buffer>): Promise<EchoBody> {
  let bytes = 0;
  const kept: Buffer[] = [];
  for await (const chunk of body) {
    if (bytes < MAX_ECHOED_BODY_BYTES) kept.push(chunk.subarray(0, MAX_ECHOED_BODY_BYTES - bytes));
    bytes += chunk.length;
  }
  return { bytes, text: Buffer.concat(kept).toString('utf8') };
}

/** Path and query of a request target in origin form ("/a?b") or absolute form ("http://h/a?b"). */
function splitTarget(target: string): { path: string; query: Record<string, string | string[]> } {
  let url: URL;
  try {
    // Origin form is resolved against a fixed origin so "//x" stays a path rather than a host.
    url = target.startsWith('/') ? new URL(`http://echo.invalid${target}`) : new URL(target);
  } catch {
    return { path: target, query: {} };
  }
  const query: Record<string, string | string[]> = {};
  for (const key of new Set(url.searchParams.keys())) {
    const all = url.searchParams.getAll(key);
    query[key] = all.length === 1 ? all[0]! : all;
  }
  return { path: url.pathname, query };
}

export function buildReply(
  identity: EchoIdentity,
  ex: Exchange,
  body: EchoBody,
  outcome: { requestId: string | undefined; attempt: number | undefined; status: number },
): EchoReply {
  return {
    ...identity,
    method: ex.method,
    ...splitTarget(ex.url),
    url: ex.url,
    host: ex.host,
    httpVersion: ex.httpVersion,
    headers: ex.headers,
    trailers: ex.trailers(),
    peer: ex.peer,
    local: ex.local,
    body,
    ...outcome,
  };
}

/** How a request ended, for the log: its status (101 for an upgrade), or a deliberate reset. */
export interface LogOutcome {
  readonly attempt: number | undefined;
  /** 0 when the request was reset instead of answered. */
  readonly status: number;
  readonly reset?: true;
  readonly grpcStatus?: number;
}

/** The log line (no newline): fixed "msg", identity, request line, host, x-* headers and the outcome. */
export function requestLogLine(identity: EchoIdentity, ex: Exchange, outcome: LogOutcome): string {
  const headers: Record<string, string | string[]> = { host: ex.host };
  for (const [name, value] of Object.entries(ex.headers)) if (name.startsWith('x-')) headers[name] = value;
  return JSON.stringify({
    msg: 'request',
    pod: identity.pod,
    namespace: identity.namespace,
    service: identity.service,
    version: identity.version,
    method: ex.method,
    ...splitTarget(ex.url),
    host: ex.host,
    httpVersion: ex.httpVersion,
    requestId: headerValues(ex.rawHeaders).get('x-request-id')?.[0] ?? null,
    attempt: outcome.attempt ?? null,
    status: outcome.status,
    ...(outcome.reset ? { reset: true } : {}),
    ...(outcome.grpcStatus === undefined ? {} : { grpcStatus: outcome.grpcStatus }),
    headers,
    time: new Date().toISOString(),
  });
}
