// Independent peers for the load generator's tests: Python servers (python/peers.py: asyncio, http.server,
// h2, grpcio) that say what they saw, plus the few helpers every load test file shares.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import net, { type AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import type { HostPort } from '../../../core/address.js';
import type { LoadResult } from '../../../bench/load/run.js';
import { SYSTEM_PYTHON } from '../../helpers/exec.js';

export const PEERS_SCRIPT = fileURLToPath(new URL('./python/peers.py', import.meta.url));
export const CLI = fileURLToPath(new URL('../../../dist/cli/main.js', import.meta.url));

/** What a peer counted (fields a kind does not track stay 0). */
export interface PeerStats {
  /** TCP connections accepted. */
  connections: number;
  /** Connections open now. */
  open: number;
  /** Complete requests received (tcp-echo: request-sized pieces of bytes). */
  requests: number;
  maxPerConnection: number;
  /** Most requests received and not yet answered on one connection at once. */
  maxConcurrent: number;
  maxConcurrentTotal: number;
  /** Requests received while the stall held answers back. */
  held: number;
  bytes: number;
  answered: number;
  statuses: Record<string, number>;
  /** gRPC calls the client cancelled. */
  cancelled: number;
  /** gRPC: distinct client connections (peers) and the most calls one of them made. */
  peerCount: number;
  maxPerPeer: number;
  /** Client IP addresses, HTTP paths and Host / :authority values seen (sorted). */
  clients: string[];
  paths: string[];
  authorities: string[];
}

type PeerKind = 'tcp-echo' | 'discard' | 'http1' | 'h2' | 'grpc';

export class PythonPeer {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #lines: string[] = [];
  #waiter: (() => void) | undefined;
  #exited = false;
  stderr = '';

  private constructor(
    child: ChildProcessWithoutNullStreams,
    readonly kind: PeerKind,
  ) {
    this.#child = child;
    createInterface({ input: child.stdout }).on('line', (line) => {
      this.#lines.push(line);
      this.#waiter?.();
    });
    child.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    child.on('exit', () => {
      this.#exited = true;
      this.#waiter?.();
    });
  }

  /** Starts `peers.py KIND ARGS…` and waits until it listens. */
  static async start(kind: PeerKind, args: readonly string[] = []): Promise<PythonPeer & { port: number }> {
    const child = spawn(SYSTEM_PYTHON, [PEERS_SCRIPT, kind, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const peer = new PythonPeer(child, kind);
    const first = JSON.parse(await peer.#line()) as { port: number };
    return Object.assign(peer, { port: first.port });
  }

  async #line(): Promise<string> {
    const deadline = Date.now() + 10_000;
    while (this.#lines.length === 0) {
      if (this.#exited) throw new Error(`peers.py ${this.kind} exited: ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`peers.py ${this.kind}: no answer in 10 s: ${this.stderr}`);
      await new Promise<void>((resolve) => {
        this.#waiter = resolve;
        setTimeout(resolve, 100).unref();
      });
      this.#waiter = undefined;
    }
    return this.#lines.shift()!;
  }

  async stats(): Promise<PeerStats> {
    this.#child.stdin.write('stats\n');
    const raw = JSON.parse(await this.#line()) as Record<string, unknown>;
    const camel = Object.fromEntries(
      Object.entries(raw).map(([k, v]) => [k.replace(/_(\w)/g, (_m, c: string) => c.toUpperCase()), v]),
    );
    return camel as unknown as PeerStats;
  }

  /** Polls the stats until `ok` holds (or `timeoutMs` passes) and returns the last ones. */
  async statsWhen(ok: (s: PeerStats) => boolean, timeoutMs = 3000): Promise<PeerStats> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.stats();
      if (ok(s) || Date.now() > deadline) return s;
      await sleep(50);
    }
  }

  async close(): Promise<void> {
    if (this.#exited) return;
    const exited = new Promise<void>((resolve) => this.#child.once('exit', () => resolve()));
    this.#child.stdin.end();
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }
}

export const LOCAL = '127.0.0.1';

export function at(port: number): HostPort {
  return { host: LOCAL, port };
}

/** A port nothing listens on (bound, then released: connecting to it is refused). */
export async function refusedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, LOCAL, resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Free ports for a process that takes its listen addresses on the command line (bench serve). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, async () => {
      const s = net.createServer();
      await new Promise<void>((resolve) => s.listen(0, LOCAL, resolve));
      return s;
    }),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

/** Every request scheduled in the window is accounted for exactly once: answered or failed. */
export function accounted(r: LoadResult): number {
  return r.requests + r.errorCount;
}

/** The open-loop schedule has rate × duration requests in the window (±1 for the edges). */
export function scheduled(rate: number, durationMs: number): number {
  return Math.round((rate * durationMs) / 1000);
}

export function zeroErrors(): LoadResult['errors'] {
  return { connect: 0, reset: 0, status: 0, protocol: 0, timeout: 0 };
}
