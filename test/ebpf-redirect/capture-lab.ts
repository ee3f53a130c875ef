// A node with two pods, in network namespaces, for the capture tests (capture.md's topology):
//   node netns: 10.200.0.1/32 on lo (the pods' gateway), /32 routes to each pod via its host-side veth,
//               forwarding and strict rp_filter only on those veths, the steer rule + local route table.
//   pod-a 10.200.0.2/32, pod-b 10.200.0.3/32: one veth each, default route via 10.200.0.1.
// Each lab has its own names and its own private bpffs mount for pins, so tests run in parallel and
// teardown (processes, netns with their veths and qdiscs, pins) leaves nothing behind.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { addonUnavailable } from '../../ebpf-redirect/native.js';
import { steerRoutingArgs } from '../../ebpf-redirect/routing.js';

const execFileAsync = promisify(execFile);

export const NODE_IP = '10.200.0.1';
export const POD_A_IP = '10.200.0.2';
export const POD_B_IP = '10.200.0.3';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const STOP_TIMEOUT_MS = 3000;

export type Json = Record<string, unknown>;

export async function sh(cmd: string, ...args: string[]): Promise<string> {
  try {
    return (await execFileAsync(cmd, args)).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`, { cause: err });
  }
}

/** Why the capture lab cannot run here, or undefined. */
export async function captureLabUnavailable(): Promise<string | undefined> {
  if (process.platform !== 'linux') return 'Linux only';
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, bpffs, tc, sk_lookup)';
  const addon = addonUnavailable();
  if (addon) return addon;
  const probe = `wcp${randomBytes(3).toString('hex')}`;
  try {
    await sh('ip', 'netns', 'add', probe);
    await sh('ip', 'netns', 'del', probe);
  } catch (err) {
    return `cannot create network namespaces: ${(err as Error).message}`;
  }
  const dir = mkdtempSync(join(tmpdir(), 'weft-bpffs-probe-'));
  try {
    await sh('mount', '-t', 'bpf', 'bpf', dir);
    await sh('umount', dir);
  } catch (err) {
    return `cannot mount a bpf filesystem: ${(err as Error).message}`;
  } finally {
    rmdirSync(dir);
  }
  return undefined;
}

/**
 * The skip reason for tap, or false to run. Under CI (which runs as root with everything installed)
 * a reason is a failure instead, so a broken set-up cannot pass as "skipped".
 */
export function skipOrFail(t: { fail(message: string): void }, reason: string | undefined): string | false {
  if (reason === undefined) return false;
  if (process.env.CI) {
    t.fail(`CI must be able to run the capture tests: ${reason}`);
    return false;
  }
  return reason;
}

/** Node's flags for running a TypeScript fixture the way tap runs tests (type-stripping, no checking). */
function tsNodeArgs(): string[] {
  return process.execArgv.filter((a) => a.startsWith('--import') && a.includes('typescript'));
}

/** A child process that prints JSON lines (and takes JSON-line commands on stdin). */
export class JsonLinesProcess {
  readonly lines: Json[] = [];
  private stderr = '';
  private nextId = 1;
  private readonly waiters = new Set<{ test: (l: Json) => boolean; resolve: (l: Json) => void }>();
  readonly exited: Promise<number | null>;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    createInterface({ input: child.stdout! }).on('line', (text) => {
      let line: Json;
      try {
        line = JSON.parse(text) as Json;
      } catch {
        line = { raw: text };
      }
      this.lines.push(line);
      for (const w of this.waiters) {
        if (w.test(line)) {
          this.waiters.delete(w);
          w.resolve(line);
        }
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-4000);
    });
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  /** The first line (already seen or still to come) that passes `test`. */
  waitFor(test: (l: Json) => boolean, what: string, timeoutMs = 5000): Promise<Json> {
    const seen = this.lines.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter = {
        test,
        resolve: (l: Json) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(
          new Error(`${this.name}: timed out waiting for ${what}; stderr: ${this.stderr.trim() || '(none)'}`),
        );
      }, timeoutMs);
      this.waiters.add(waiter);
      this.exited.then(() => {
        if (!this.waiters.has(waiter)) return;
        this.waiters.delete(waiter);
        clearTimeout(timer);
        reject(new Error(`${this.name} exited while waiting for ${what}; stderr: ${this.stderr.trim()}`));
      }, reject);
    });
  }

  /** Resolves once `n` lines passing `test` have been seen (lines of different processes race). */
  async waitForCount(test: (l: Json) => boolean, n: number, what: string, timeoutMs = 5000): Promise<number> {
    if (this.count(test) < n) await this.waitFor((l) => test(l) && this.count(test) >= n, what, timeoutMs);
    return this.count(test);
  }

  count(test: (l: Json) => boolean): number {
    return this.lines.filter(test).length;
  }

  /** Sends a command and waits for the answer with the same id. */
  request(cmd: Json, timeoutMs = 6000): Promise<Json> {
    const id = this.nextId++;
    this.child.stdin!.write(`${JSON.stringify({ ...cmd, id })}\n`);
    return this.waitFor((l) => l.id === id, `the answer to ${JSON.stringify(cmd)}`, timeoutMs);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await this.exited;
    clearTimeout(timer);
  }
}

export class CaptureLab {
  readonly node: string;
  readonly podA: string;
  readonly podB: string;
  readonly vethA: string;
  readonly vethB: string;
  readonly bpffs: string;
  readonly pinDir: string;
  private readonly processes: JsonLinesProcess[] = [];
  private mounted = false;
  private readonly namespaces: string[] = [];

  private constructor() {
    const id = randomBytes(3).toString('hex');
    this.node = `wcn-${id}`;
    this.podA = `wca-${id}`;
    this.podB = `wcb-${id}`;
    this.vethA = `wva${id}`;
    this.vethB = `wvb${id}`;
    this.bpffs = mkdtempSync(join(tmpdir(), 'weft-bpffs-'));
    this.pinDir = join(this.bpffs, 'weft', 'v1');
  }

  static async create(): Promise<CaptureLab> {
    const lab = new CaptureLab();
    try {
      await lab.build();
    } catch (err) {
      await lab.destroy();
      throw err;
    }
    return lab;
  }

  private async build(): Promise<void> {
    await sh('mount', '-t', 'bpf', 'bpf', this.bpffs);
    this.mounted = true;
    for (const ns of [this.node, this.podA, this.podB]) {
      await sh('ip', 'netns', 'add', ns);
      this.namespaces.push(ns);
    }
    const n = this.node;
    await sh('ip', '-n', n, 'link', 'set', 'lo', 'up');
    await sh('ip', '-n', n, 'addr', 'add', `${NODE_IP}/32`, 'dev', 'lo');
    for (const [pod, veth, ip] of [
      [this.podA, this.vethA, POD_A_IP],
      [this.podB, this.vethB, POD_B_IP],
    ] as const) {
      const inner = `${veth}p`;
      await sh('ip', 'link', 'add', veth, 'netns', n, 'type', 'veth', 'peer', 'name', inner, 'netns', pod);
      await sh('ip', '-n', n, 'link', 'set', veth, 'up');
      await sh('ip', '-n', n, 'route', 'add', `${ip}/32`, 'dev', veth, 'src', NODE_IP);
      await sh('ip', 'netns', 'exec', n, 'sysctl', '-qw', `net.ipv4.conf.${veth}.forwarding=1`);
      await sh('ip', 'netns', 'exec', n, 'sysctl', '-qw', `net.ipv4.conf.${veth}.rp_filter=1`);
      await sh('ip', '-n', pod, 'link', 'set', 'lo', 'up');
      await sh('ip', '-n', pod, 'addr', 'add', `${ip}/32`, 'dev', inner);
      await sh('ip', '-n', pod, 'link', 'set', inner, 'up');
      await sh('ip', '-n', pod, 'route', 'add', NODE_IP, 'dev', inner);
      await sh('ip', '-n', pod, 'route', 'add', 'default', 'via', NODE_IP);
    }
    const routing = steerRoutingArgs();
    await sh('ip', '-n', n, ...routing.rule);
    await sh('ip', '-n', n, ...routing.route);
  }

  /** Runs a fixture (fixtures/NAME.ts) inside a namespace. */
  spawn(ns: string, fixture: string, args: readonly string[]): JsonLinesProcess {
    const child = spawn(
      'ip',
      ['netns', 'exec', ns, process.execPath, ...tsNodeArgs(), join(FIXTURES, `${fixture}.ts`), ...args],
      { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1' } },
    );
    const p = new JsonLinesProcess(`${fixture}@${ns}`, child);
    this.processes.push(p);
    return p;
  }

  /** Starts the node agent stand-in and waits until its listeners are published. */
  async startAgent(): Promise<{ agent: JsonLinesProcess; ready: Json }> {
    const agent = this.spawn(this.node, 'node-agent', [this.pinDir, this.vethA, this.vethB]);
    const ready = await agent.waitFor((l) => l.ev === 'ready', 'the node agent to start', 15_000);
    return { agent, ready };
  }

  exec(ns: string, ...args: string[]): Promise<string> {
    return sh('ip', 'netns', 'exec', ns, ...args);
  }

  async destroy(): Promise<void> {
    await Promise.all(this.processes.map((p) => p.stop().catch(() => undefined)));
    for (const ns of this.namespaces.reverse()) await sh('ip', 'netns', 'del', ns).catch(() => undefined);
    if (this.mounted) await sh('umount', this.bpffs).catch(() => sh('umount', '-l', this.bpffs));
    try {
      rmdirSync(this.bpffs);
    } catch {
      // already gone
    }
  }
}
