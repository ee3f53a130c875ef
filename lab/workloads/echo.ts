// The `echo` workload: an HTTP/1.1 server that answers every request with JSON describing what it
// received, so tests and users can see what reached the pod (and from whom) after the mesh carried it.
// Request headers steer the answer, for exercising retries, timeouts and header rules:
//   x-echo-status: 503          answer with this status (200-599)
//   x-echo-delay-ms: 100        wait this long before answering (at most MAX_DELAY_MS)
//   x-echo-header: name=value   add a response header (repeat the header for several)
//   x-echo-fail-first: N        with x-request-id: the first N attempts of that id get 503
//   x-echo-reset-first: N       with x-request-id: the first N attempts of that id get a TCP reset
// Attempts are counted per x-request-id; attempt n is reset if n <= reset-first, else fails if
// n <= fail-first, else answered normally. The JSON carries the attempt number.
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Long enough for any timeout test, short enough that a typo cannot park a connection for hours. */
export const MAX_DELAY_MS = 600_000;
/** Request ids remembered for fail-first/reset-first; the oldest are forgotten beyond this. */
export const MAX_TRACKED_REQUEST_IDS = 10_000;
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
  /** As Node presents them: lower-case names, repeated headers joined with ", " (set-cookie: a list). */
  readonly headers: Record<string, string | string[]>;
  readonly peer: { readonly address: string; readonly port: number };
  readonly local: { readonly address: string; readonly port: number };
  readonly body: { readonly bytes: number; readonly text: string };
  readonly requestId: string | undefined;
  readonly attempt: number | undefined;
  readonly status: number;
}

/** The identity from the pod's environment (the lab sets POD_NAME, POD_NAMESPACE, NODE_NAME). */
export function echoIdentityFromEnv(env: NodeJS.ProcessEnv = process.env): EchoIdentity {
  return {
    pod: env.POD_NAME ?? '',
    namespace: env.POD_NAMESPACE ?? '',
    service: env.SERVICE_NAME ?? '',
    version: env.VERSION ?? '',
    node: env.NODE_NAME ?? '',
  };
}

class BadRequest extends Error {}

interface Steering {
  readonly status: number;
  readonly delayMs: number;
  readonly headers: readonly (readonly [string, string])[];
  readonly failFirst: number;
  readonly resetFirst: number;
  readonly requestId: string | undefined;
}

function single(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function intHeader(req: IncomingMessage, name: string, min: number, max: number, fallback: number): number {
  const v = single(req, name);
  if (v === undefined) return fallback;
  if (!/^\d+$/.test(v.trim()) || Number(v) < min || Number(v) > max)
    throw new BadRequest(`${name} must be an integer ${min}-${max}, got ${JSON.stringify(v)}`);
  return Number(v);
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

function readSteering(req: IncomingMessage): Steering {
  const headers = (req.headersDistinct['x-echo-header'] ?? []).map((entry): [string, string] => {
    const eq = entry.indexOf('=');
    const name = eq === -1 ? '' : entry.slice(0, eq).trim();
    if (!HEADER_NAME.test(name))
      throw new BadRequest(`x-echo-header must be name=value, got ${JSON.stringify(entry)}`);
    return [name, entry.slice(eq + 1).trim()];
  });
  const steering = {
    status: intHeader(req, 'x-echo-status', 200, 599, 200),
    delayMs: intHeader(req, 'x-echo-delay-ms', 0, MAX_DELAY_MS, 0),
    headers,
    failFirst: intHeader(req, 'x-echo-fail-first', 0, 1_000_000, 0),
    resetFirst: intHeader(req, 'x-echo-reset-first', 0, 1_000_000, 0),
    requestId: single(req, 'x-request-id'),
  };
  if ((steering.failFirst > 0 || steering.resetFirst > 0) && steering.requestId === undefined)
    throw new BadRequest(
      'x-echo-fail-first and x-echo-reset-first count attempts per x-request-id, which is missing',
    );
  return steering;
}

/** Attempts per request id, oldest forgotten first once MAX_TRACKED_REQUEST_IDS are held. */
class AttemptCounter {
  readonly #counts = new Map<string, number>();

  next(id: string): number {
    const n = (this.#counts.get(id) ?? 0) + 1;
    this.#counts.delete(id);
    this.#counts.set(id, n);
    if (this.#counts.size > MAX_TRACKED_REQUEST_IDS) this.#counts.delete(this.#counts.keys().next().value!);
    return n;
  }
}

function queryObject(search: URLSearchParams): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const key of new Set(search.keys())) {
    const all = search.getAll(key);
    out[key] = all.length === 1 ? all[0]! : all;
  }
  return out;
}

async function readBody(req: IncomingMessage): Promise<{ bytes: number; text: string }> {
  let bytes = 0;
  const kept: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    if (bytes < MAX_ECHOED_BODY_BYTES) kept.push(chunk.subarray(0, MAX_ECHOED_BODY_BYTES - bytes));
    bytes += chunk.length;
  }
  return { bytes, text: Buffer.concat(kept).toString('utf8') };
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: readonly (readonly [string, string])[] = [],
): void {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  for (const [name, value] of headers) res.appendHeader(name, value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function createEchoServer(identity: EchoIdentity): Server {
  const attempts = new AttemptCounter();
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    let steering: Steering;
    try {
      steering = readSteering(req);
    } catch (err) {
      if (!(err instanceof BadRequest)) throw err;
      req.resume();
      sendJson(res, 400, { ...identity, error: err.message });
      return;
    }
    const attempt = steering.requestId === undefined ? undefined : attempts.next(steering.requestId);
    if (attempt !== undefined && attempt <= steering.resetFirst) {
      req.socket.resetAndDestroy();
      return;
    }
    const status = attempt !== undefined && attempt <= steering.failFirst ? 503 : steering.status;
    const body = await readBody(req);
    if (steering.delayMs > 0) await new Promise((r) => setTimeout(r, steering.delayMs));
    const url = new URL(req.url ?? '/', 'http://echo.invalid');
    const reply: EchoReply = {
      ...identity,
      method: req.method ?? '',
      path: url.pathname,
      query: queryObject(url.searchParams),
      url: req.url ?? '',
      host: req.headers.host ?? '',
      httpVersion: req.httpVersion,
      headers: { ...req.headers } as Record<string, string | string[]>,
      peer: { address: req.socket.remoteAddress ?? '', port: req.socket.remotePort ?? 0 },
      local: { address: req.socket.localAddress ?? '', port: req.socket.localPort ?? 0 },
      body,
      requestId: steering.requestId,
      attempt,
      status,
    };
    sendJson(res, status, reply, steering.headers);
  };
  return createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { ...identity, error: String(err) });
      else res.destroy();
    });
  });
}

export interface EchoOptions {
  readonly host: string;
  readonly port: number;
  readonly identity: EchoIdentity;
}

/** Serves until SIGTERM/SIGINT. */
export async function runEcho(options: EchoOptions, out: (line: string) => void): Promise<void> {
  const server = createEchoServer(options.identity);
  server.listen(options.port, options.host);
  await once(server, 'listening');
  const addr = server.address() as AddressInfo;
  out(
    `echo: ${options.identity.namespace}/${options.identity.pod} listening on ${addr.address}:${addr.port}`,
  );
  await untilStopped();
  server.close();
  server.closeAllConnections();
}

/** Resolves on SIGTERM or SIGINT. */
export function untilStopped(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
}
