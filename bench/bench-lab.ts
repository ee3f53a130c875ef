// A `weft lab` that a bench builds, uses and always takes down, driven through the `weft` command as a
// user drives it: `withBenchLab` makes a temporary lab directory, brings the lab up, runs the bench, and
// takes the lab down even when the bench fails or is interrupted (a second Ctrl-C included).
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { readLabState, type LabState } from '../lab/cluster/state.js';
import { weftCliPath } from '../lab/processes.js';
import { childJson } from './path-compare.js';
import { realtimeArgv } from './load/scheduler.js';

export class BenchLab {
  constructor(
    /** The bench's temporary directory (the lab is in `<top>/lab`). */
    readonly top: string,
    readonly signal: AbortSignal,
  ) {}

  get dir(): string {
    return join(this.top, 'lab');
  }

  /** `weft ARGS…` from this build; its stdout, or an error with its stderr. */
  async weft(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
    const child = spawn(process.execPath, [weftCliPath(), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
      signal: this.signal,
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    if (code !== 0)
      throw new Error(`weft ${args.join(' ')} failed (${String(code)}): ${(err || out).trim()}`);
    return out;
  }

  /** Starts `weft ARGS…` from this build inside pod `ns/name` (through `weft lab exec`). */
  spawnInPod(pod: string, args: readonly string[], options: { realtime?: boolean } = {}): ChildProcess {
    // `lab exec` runs CMD as given: name this build explicitly.
    const cmd = [process.execPath, weftCliPath(), ...args];
    return spawn(
      process.execPath,
      [
        weftCliPath(),
        'lab',
        'exec',
        '--dir',
        this.dir,
        pod,
        '--',
        ...(options.realtime === true ? realtimeArgv(cmd) : cmd),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], signal: this.signal },
    );
  }

  /** `weft ARGS… --json` in pod `ns/name`; its JSON result (the last line it printed). */
  runInPod(pod: string, args: readonly string[], options: { realtime?: boolean } = {}): Promise<unknown> {
    return childJson(this.spawnInPod(pod, [...args, '--json'], options), `${pod}: weft ${args.join(' ')}`);
  }

  state(): LabState {
    const s = readLabState(this.dir);
    if (s === undefined) throw new Error(`no lab state in ${this.dir}`);
    return s;
  }

  agentPid(node: string): number {
    const agent = this.state().nodes.find((n) => n.name === node)?.agent;
    if (!agent) throw new Error(`the lab has no agent on ${node}`);
    return agent.pid;
  }

  podPid(pod: string): number {
    const p = this.state().pods.find((x) => `${x.namespace}/${x.name}` === pod)?.process;
    if (!p) throw new Error(`pod ${pod} has no process`);
    return p.pid;
  }

  async until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      this.signal.throwIfAborted();
      try {
        const v = await probe();
        if (v !== undefined) return v;
      } catch (err) {
        if (this.signal.aborted) throw err;
        last = (err as Error).message;
      }
      await sleep(200);
    }
    throw new Error(`timed out waiting for ${what}${last ? ` (last: ${last})` : ''}`);
  }

  /** Waits (bounded) until every pod in `namespaces` is ready, and there are `count` of them. */
  untilPodsReady(namespaces: readonly string[], count: number): Promise<true> {
    return this.until(`the ${count} pods to be ready`, 60_000, () =>
      Promise.resolve(
        this.state().pods.filter((p) => p.phase === 'ready' && namespaces.includes(p.namespace)).length >=
          count
          ? true
          : undefined,
      ),
    );
  }
}

export interface BenchLabRun<T> {
  readonly result: T;
  /** Whether the bench's own checks passed (failed runs keep the lab's logs). */
  readonly ok: boolean;
}

/**
 * Builds a lab in a new temporary directory (`prefix` names it), runs `bench` on it, and takes it down
 * whatever happens. SIGINT/SIGTERM abort the bench (its children die with the signal) and still take
 * the lab down. The lab logs at info, whatever the caller's level: benches read the access logs.
 */
export async function withBenchLab<T>(
  prefix: string,
  out: (line: string) => void,
  bench: (lab: BenchLab) => Promise<BenchLabRun<T>>,
): Promise<T> {
  const top = mkdtempSync(join(tmpdir(), prefix));
  const abort = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    if (abort.signal.aborted) return out(`${sig}: already stopping; the lab is being taken down`);
    out(`${sig}: stopping; taking the lab down …`);
    abort.abort(new Error(`interrupted (${sig})`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const lab = new BenchLab(top, abort.signal);
  let ok = false;
  try {
    // Benches read the access logs: the agents log at WEFT_LAB_LOG_LEVEL, the pods (a waypoint) at the
    // WEFT_LOG_LEVEL they inherit from the lab (npm test runs at error).
    await lab.weft(['lab', 'up', '--dir', lab.dir], {
      ...process.env,
      WEFT_LAB_LOG_LEVEL: 'info',
      WEFT_LOG_LEVEL: 'info',
    });
    const run = await bench(lab);
    ok = run.ok;
    return run.result;
  } catch (err) {
    // A child killed by the abort reports a bare AbortError: say why instead.
    throw abort.signal.aborted ? abort.signal.reason : err;
  } finally {
    // Logs are worth keeping when something went wrong, not when the user interrupted.
    const keep = !ok && !abort.signal.aborted;
    out(`taking the lab down${keep ? ' (keeping its logs)' : ''} …`);
    // Its own process group and no abort signal: taking the lab down must survive a second Ctrl-C.
    const down = spawn(
      process.execPath,
      [weftCliPath(), 'lab', 'down', '--dir', lab.dir, ...(keep ? ['--keep-files'] : [])],
      { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
    );
    let text = '';
    down.stdout.on('data', (d: Buffer) => (text += d.toString()));
    down.stderr.on('data', (d: Buffer) => (text += d.toString()));
    const [code] = (await once(down, 'exit')) as [number | null];
    if (code !== 0) out(`weft lab down --dir ${lab.dir} failed (${String(code)}): ${text.trim()}`);
    else if (!keep) rmSync(top, { recursive: true, force: true });
    else out(`the lab's logs are kept in ${join(lab.dir, 'logs')}`);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
