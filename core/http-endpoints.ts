// The HTTP endpoints of the agent and the waypoint: admin (127.0.0.1:15000: /config_dump, /certs, /flows),
// Prometheus metrics (:15020/metrics, /stats/prometheus) and health (:15021/healthz/ready, /healthz/live).
// Read-only; private keys are never shown.
import { once } from 'node:events';
import { chmodSync, lstatSync, rmSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { Server as NetServer } from 'node:net';
import { formatHostPort, type HostPort } from './address.js';
import type { Logger } from './log.js';
import { errorMessage } from './errors.js';
import type { Registry } from 'prom-client';
import { serveFlows } from './flows/stream.js';
import type { FlowRing } from './flows/ring.js';

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body, null, 2) + '\n');
}

export interface AdminInputs {
  /** Everything `/config_dump` shows; computed per request. */
  readonly configDump: () => unknown;
  readonly certificates: () => unknown;
  /** The flow events `/flows` streams (core/flows/stream.ts). */
  readonly flows: FlowRing;
}

const ADMIN_ENDPOINTS = ['/config_dump', '/certs', '/flows'];

export function createAdminServer(inputs: AdminInputs): Server {
  return createServer((req, res) => {
    if (req.method !== 'GET') return sendJson(res, 405, { error: 'GET only' });
    const url = new URL(req.url ?? '/', 'http://admin');
    switch (url.pathname) {
      case '/config_dump':
        return sendJson(res, 200, inputs.configDump());
      case '/certs':
        return sendJson(res, 200, inputs.certificates());
      case '/flows':
        return serveFlows(inputs.flows, req, res, url.searchParams);
      default:
        return sendJson(res, 404, { error: `no such endpoint ${url.pathname}`, endpoints: ADMIN_ENDPOINTS });
    }
  });
}

export function createMetricsServer(registry: Registry): Server {
  return createServer((req, res) => {
    if (req.method === 'GET' && (req.url === '/metrics' || req.url === '/stats/prometheus')) {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': registry.contentType });
          res.end(text);
        },
        (err: Error) => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`${err.message}\n`);
        },
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  });
}

/**
 * `/healthz/ready`: 200 once `isReady()` holds, 503 with the reason until then. `/healthz/live`: 200 while
 * the process runs (a liveness probe must not restart a part that is merely waiting to be ready).
 */
export function createReadinessServer(isReady: () => string | true): Server {
  return createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/healthz/ready') {
      const state = isReady();
      // Which process answered: during an agent handover two share the port (the lab waits for its own).
      res.writeHead(state === true ? 200 : 503, { 'content-type': 'text/plain', 'weft-pid': process.pid });
      res.end(state === true ? 'ready\n' : `not ready: ${state}\n`);
      return;
    }
    if (req.method === 'GET' && req.url === '/healthz/live') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('live\n');
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  });
}

const MAX_UNIX_SOCKET_PATH = 107;

/**
 * Starts `server` on the Unix socket `path` (mode 0600: the admin endpoints are for the node's root), after
 * removing a socket file a previous process left there. The lab's admin sockets: files are reachable
 * from any network namespace, a loopback port only from inside its own.
 */
export async function listenHttpUnix(server: Server, path: string): Promise<string> {
  // sun_path holds 108 bytes with its terminating NUL; a longer path would be cut, or refused obscurely.
  if (Buffer.byteLength(path) > MAX_UNIX_SOCKET_PATH)
    throw new Error(`admin socket ${path}: longer than ${MAX_UNIX_SOCKET_PATH} bytes, the Unix socket limit`);
  if (lstatSync(path, { throwIfNoEntry: false })?.isSocket()) rmSync(path);
  server.listen(path);
  await once(server, 'listening');
  chmodSync(path, 0o600);
  return path;
}

/** How a successor waits for ports its predecessor still holds. */
export interface PortWait {
  readonly retryMs: number;
  readonly timeoutMs: number;
}

/**
 * Runs `listen` again every `wait.retryMs` while it fails because the port is held (EADDRINUSE), for at
 * most `wait.timeoutMs`: a successor (agent, CA) starts while its predecessor still holds its fixed
 * ports, and takes each when the predecessor lets go. Logs while it waits. grpc-js gives the cause in
 * its message only, so the message is what is matched.
 */
export async function whenPortFree<T>(
  listen: () => Promise<T>,
  addr: HostPort,
  log: Logger,
  wait: PortWait,
): Promise<T> {
  const deadline = Date.now() + wait.timeoutMs;
  let waited = false;
  for (;;) {
    try {
      const result = await listen();
      if (waited) log.info({ address: formatHostPort(addr) }, 'port free: listening');
      return result;
    } catch (err) {
      if (!/EADDRINUSE/.test(errorMessage(err)) || Date.now() >= deadline) throw err;
      if (!waited)
        log.info(
          { address: formatHostPort(addr) },
          'port still held (by the process being replaced?); waiting',
        );
      waited = true;
      await new Promise((resolve) => setTimeout(resolve, wait.retryMs).unref());
    }
  }
}

/**
 * Starts `server` on `addr` once the port is free (see whenPortFree), without waiting for it: resolves
 * at once with `addr`.
 */
export function listenWhenFree(server: NetServer, addr: HostPort, log: Logger, retryMs = 100): HostPort {
  whenPortFree(() => listenHttp(server, addr), addr, log, { retryMs, timeoutMs: Infinity }).catch(
    (err: unknown) =>
      log.error({ address: formatHostPort(addr), error: errorMessage(err) }, 'listener failed'),
  );
  return addr;
}

/** Starts `server` on `addr`; resolves with the bound address (port 0 gives the chosen port). */
export async function listenHttp(server: NetServer, addr: HostPort): Promise<HostPort> {
  server.listen(addr.port, addr.host);
  await once(server, 'listening');
  const bound = server.address();
  return { host: addr.host, port: typeof bound === 'object' && bound ? bound.port : 0 };
}
