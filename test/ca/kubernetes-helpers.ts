// Shared by the test/ca/kubernetes-*.test.ts files: a recording proxy in front of the API server double
// (so each CA replica's own API calls can be told apart, and one replica cut off from the API), pods and
// tokens as a cluster would have them, and bounded waits on events.
import { once, type EventEmitter } from 'node:events';
import { createServer, request, type Server } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kubeconfigText, type KubeApiServer, type KubeObject } from '../helpers/kube-api-server.js';

/** Bounds every wait in these tests: a missing event fails the test instead of hanging it. */
export const WAIT_MS = 10_000;

interface Teardowns {
  teardown(fn: () => unknown): void;
}

/** A kubeconfig for the API server at `url`, in a temporary folder removed when the test ends. */
export function kubeconfigAt(t: Teardowns, url: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-kubeconfig-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'kubeconfig');
  writeFileSync(path, kubeconfigText(url));
  return path;
}

/**
 * An HTTP proxy to the double that records each request line (`METHOD /path?query`, query decoded) of
 * the one client using it, and can be cut: the port closes and every connection drops, as if the API
 * server had become unreachable for that client only.
 */
export class ApiProxy {
  readonly lines: string[];
  readonly #server: Server;
  readonly #port: number;

  private constructor(server: Server, port: number, lines: string[]) {
    this.#server = server;
    this.#port = port;
    this.lines = lines;
  }

  static async start(t: Teardowns, target: KubeApiServer): Promise<ApiProxy> {
    const upstream = new URL(target.url);
    const lines: string[] = [];
    const server = createServer((req, res) => {
      lines.push(`${req.method ?? ''} ${decodeURIComponent(req.url ?? '')}`);
      const forward = request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers: req.headers,
        },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      forward.on('error', () => res.destroy());
      req.pipe(forward);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const proxy = new ApiProxy(server, (server.address() as AddressInfo).port, lines);
    t.teardown(() => proxy.cut());
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** Request lines matching `re`. */
  matching(re: RegExp): string[] {
    return this.lines.filter((line) => re.test(line));
  }

  /** From now on the API server is unreachable through this proxy. */
  async cut(): Promise<void> {
    if (!this.#server.listening) return;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await closed;
  }
}

/** A TCP server that accepts and never answers: an API server that hangs. */
export async function startSilentServer(t: Teardowns): Promise<string> {
  const sockets = new Set<Socket>();
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Resolves with the first line the server logs that matches `re`, or rejects after WAIT_MS. */
export function nextRequest(server: KubeApiServer, re: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      server.off('request', onRequest);
      reject(new Error(`no API request matching ${String(re)} within ${WAIT_MS} ms`));
    }, WAIT_MS);
    const onRequest = (line: string): void => {
      const decoded = decodeURIComponent(line);
      if (!re.test(decoded)) return;
      clearTimeout(timer);
      server.off('request', onRequest);
      resolve(decoded);
    };
    server.on('request', onRequest);
  });
}

/** Resolves when `emitter` emits `event`, or rejects after `ms`. */
export async function eventWithin(emitter: EventEmitter, event: string, ms = WAIT_MS): Promise<void> {
  try {
    await once(emitter, event, { signal: AbortSignal.timeout(ms) });
  } catch {
    throw new Error(`no ${event} event within ${ms} ms`);
  }
}

/** Polls `probe` (every 20 ms, at most WAIT_MS) until it returns a value. */
export async function until<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export function namespace(name: string): KubeObject {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name } };
}

export interface PodSpec {
  readonly namespace: string;
  readonly name: string;
  readonly serviceAccount: string;
  readonly node?: string;
  readonly phase?: string;
}

export function pod(spec: PodSpec): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: spec.name, namespace: spec.namespace },
    spec: { serviceAccountName: spec.serviceAccount, ...(spec.node ? { nodeName: spec.node } : {}) },
    status: { phase: spec.phase ?? 'Running' },
  };
}

/** A token shaped like a JWT (the CA refuses anything else before asking the API server). */
export function jwt(name: string): string {
  return `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(name).toString('base64url')}.c2ln`;
}

interface TokenOptions {
  readonly audiences?: readonly string[];
  readonly expiresAt?: number;
  /** false: a token bound to no pod (a legacy secret token). */
  readonly bound?: boolean;
}

/**
 * Registers a projected service-account token bound to the existing pod NAMESPACE/NAME, as the kubelet
 * mounts one (audience istio-ca unless told otherwise). Returns the token.
 */
export function tokenForPod(
  server: KubeApiServer,
  namespace: string,
  name: string,
  serviceAccount: string,
  options: TokenOptions = {},
): string {
  const token = jwt(`${namespace}/${name}`);
  server.addToken(token, {
    username: `system:serviceaccount:${namespace}:${serviceAccount}`,
    audiences: options.audiences ?? ['istio-ca'],
    expiresAt: options.expiresAt,
    extra:
      options.bound === false
        ? {}
        : {
            'authentication.kubernetes.io/pod-name': [name],
            'authentication.kubernetes.io/pod-uid': [server.get('Pod', namespace, name)?.metadata.uid ?? ''],
          },
  });
  return token;
}

/** Creates `spec`'s pod and a token bound to it (`tokenForPod`). */
export function podWithToken(server: KubeApiServer, spec: PodSpec, options: TokenOptions = {}): string {
  server.create(pod(spec));
  return tokenForPod(server, spec.namespace, spec.name, spec.serviceAccount, options);
}
