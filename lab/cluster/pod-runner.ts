// One lab pod: its network namespace and the command it runs there. Restarts the command when it exits
// (with a growing delay, as Kubernetes' restartPolicy Always does), reports `ready` once every TCP
// containerPort accepts connections on the pod's IP, and undoes everything on `stop()`. Sets the pod's
// network sysctls (securityContext.sysctls) in its namespace. `handover()` replaces the process without
// a gap: the new one starts beside the old one and takes over once it answers ready; only then is the old
// one stopped (it drains), as a waypoint restarts in place (`weft lab restart waypoint`).
//
// Invariants: one current process per pod; during a handover a second one runs beside it, first as the
// candidate, then as the one being retired while it drains; every process is in the state file from
// right after it is spawned until right after it ends. After `stop()` resolves no process runs and no
// restart is scheduled; the network exists from `start()` until `stop()`.
import { execFile, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { appendFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { errorMessage } from '../../core/errors.js';
import { expandArgv } from './pod-spec.js';
import { spawnInNetns, STOP_GRACE_MS, stopChildGroup } from './children.js';
import type { LabNodePlan } from './plan.js';
import { recordProcess, type PodPhase, type PodState, type ProcessRecord } from './state.js';
import { RestartBackoff } from './restart-backoff.js';
import { createPodNetwork, deletePodNetwork, type ResourceRecorder } from './topology.js';

/** How long a pod's ports may take to open before it is reported as not ready. */
export const POD_READY_TIMEOUT_MS = 20_000;
/** How often a handover asks whether the new process is ready. */
const HANDOVER_POLL_MS = 100;
/**
 * How long a retired process may drain before it is killed: Kubernetes' default termination grace, which
 * the waypoint's default drain deadline fits in, plus the lab's stop grace.
 */
export const HANDOVER_STOP_GRACE_MS = 30_000 + STOP_GRACE_MS;
const execFileAsync = promisify(execFile);

/**
 * Runs in the pod's namespace: connects to each port on the pod IP until all accept or time runs out.
 * Plain CommonJS for `node -e`, so the probe needs nothing from the build.
 */
const PROBE_SCRIPT = `
const net = require('node:net');
const [host, timeoutMs, ...ports] = process.argv.slice(1);
const deadline = Date.now() + Number(timeoutMs);
const attempt = (port) => new Promise((resolve) => {
  const s = net.connect(Number(port), host);
  s.once('connect', () => { s.destroy(); resolve(true); });
  s.once('error', () => resolve(false));
});
(async () => {
  for (const port of ports) {
    while (!(await attempt(port))) {
      if (Date.now() > deadline) { console.error('port ' + port + ' not open'); process.exit(1); }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
})();
`;

export interface PodRun {
  /** Resolved argv; empty for a pod that only has a network. `$(VAR)`s are expanded from `env` at spawn. */
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly cwd: string;
  readonly tcpPorts: readonly number[];
  /** Network sysctls (`net.…`) set in the pod's namespace (the manifest's securityContext.sysctls). */
  readonly sysctls?: readonly PodSysctl[];
}

export interface PodSysctl {
  readonly name: string;
  readonly value: string;
}

/** How a handover went. */
export interface HandoverResult {
  readonly oldPid: number | undefined;
  readonly newPid: number;
  /** From the new process's start until it answered ready. */
  readonly readyMs: number;
  /** From the old process's SIGTERM until it exited. */
  readonly drainMs: number;
  /** How the old process ended (`exit code 0`, `signal SIGKILL`). */
  readonly oldEnded: string | undefined;
}

/** Thrown by `handover()` for a request that cannot be carried out now (not running, one in progress). */
export class HandoverRefused extends Error {}

export interface PodRunnerOptions {
  readonly namespace: string;
  readonly name: string;
  readonly node: LabNodePlan;
  readonly ip: string;
  readonly netns: string;
  readonly veth: string;
  readonly log: string;
  readonly recorder: ResourceRecorder;
  /** A process started (record) or ended (null, with the record it replaces). */
  readonly onProcess: (started: ProcessRecord | null, ended: ProcessRecord | null) => void;
  /** Anything in `snapshot()` changed. */
  readonly onChange: () => void;
}

export class PodRunner {
  readonly options: PodRunnerOptions;
  #run: PodRun;
  /** `#run.argv` with its `$(VAR)` references expanded from `#run.env`: what is spawned. */
  #argv: readonly string[];
  #phase: PodPhase = 'starting';
  #message: string | undefined;
  #child: ChildProcess | undefined;
  #record: ProcessRecord | null = null;
  #restarts = 0;
  readonly #backoff = new RestartBackoff();
  #restartTimer: NodeJS.Timeout | undefined;
  #startedAt = 0;
  #stopping = false;
  #probing = false;
  #notice: string | undefined;
  /** Bumped per spawn, so a probe of an earlier process cannot mark a later one ready. */
  #generation = 0;
  /** Bumped when the command changes, so a handover started for the old one gives up. */
  #runVersion = 0;
  /** Processes beside the current one (a handover's candidate, or the one it retires), with records. */
  readonly #others = new Map<ChildProcess, ProcessRecord | null>();
  #handingOver = false;

  constructor(options: PodRunnerOptions, run: PodRun) {
    this.options = options;
    this.#run = run;
    this.#argv = expandArgv(run.argv, run.env);
  }

  get run(): PodRun {
    return this.#run;
  }

  /** A remark from the controller shown with the pod (e.g. its manifest is rejected); undefined clears it. */
  set notice(text: string | undefined) {
    if (text === this.#notice) return;
    this.#notice = text;
    this.options.onChange();
  }

  /** Past starting up: ready, or known not to be (failed, restarting, ports not open in time). */
  get settled(): boolean {
    return this.#phase !== 'starting' && !this.#probing;
  }

  async start(): Promise<void> {
    const o = this.options;
    await createPodNetwork(o.node, { netns: o.netns, veth: o.veth, ip: o.ip }, o.recorder);
    await this.#applySysctls(this.#run.sysctls ?? []);
    this.#spawn();
  }

  /** Replaces the command (same network): stops the running process and starts the new one. */
  async restartWith(run: PodRun): Promise<void> {
    const sysctlsChanged = JSON.stringify(run.sysctls ?? []) !== JSON.stringify(this.#run.sysctls ?? []);
    this.#run = run;
    this.#argv = expandArgv(run.argv, run.env);
    this.#runVersion++;
    this.#cancelRestart();
    await this.#stopProcess();
    this.#backoff.reset();
    if (sysctlsChanged) await this.#applySysctls(run.sysctls ?? []);
    if (!this.#stopping) this.#spawn();
  }

  /**
   * Replaces the running process without a gap: starts the same command beside it, waits until
   * `isReady(newPid)` (the new one's own answer: both share the pod's ports meanwhile), makes the new one
   * current, then stops the old one (SIGTERM; it drains, and is killed after `stopGraceMs`). Resolves
   * once the old one has exited. If the new one fails to become ready in `readyTimeoutMs`, it is
   * stopped and the old one keeps running (the promise rejects with why).
   */
  async handover(
    isReady: (pid: number) => Promise<boolean>,
    readyTimeoutMs = POD_READY_TIMEOUT_MS,
    stopGraceMs = HANDOVER_STOP_GRACE_MS,
  ): Promise<HandoverResult> {
    if (this.#stopping) throw new HandoverRefused('the pod is being removed');
    if (this.#argv.length === 0) throw new HandoverRefused('the pod runs no command');
    if (this.#handingOver) throw new HandoverRefused('a handover of this pod is already in progress');
    this.#handingOver = true;
    try {
      return await this.#handover(isReady, readyTimeoutMs, stopGraceMs);
    } finally {
      this.#handingOver = false;
    }
  }

  async #handover(
    isReady: (pid: number) => Promise<boolean>,
    readyTimeoutMs: number,
    stopGraceMs: number,
  ): Promise<HandoverResult> {
    const o = this.options;
    const runVersion = this.#runVersion;
    const oldPid = this.#child?.pid;
    appendFileSync(
      o.log,
      `--- weft lab: ${new Date().toISOString()} handover: starting ${JSON.stringify(this.#argv)} beside ` +
        `${oldPid === undefined ? 'no process' : `pid ${oldPid}`}\n`,
    );
    const start = Date.now();
    const { child, record } = this.#startProcess();
    this.#others.set(child, record);
    const pid = child.pid;
    const exited = once(child, 'exit').then(() => true);
    let why: string | undefined;
    if (pid === undefined) why = 'the new process did not start';
    else
      for (const deadline = start + readyTimeoutMs; ;) {
        if (this.#stopping) why = 'the pod is being removed';
        else if (this.#runVersion !== runVersion) why = "the pod's command changed meanwhile";
        else if (child.exitCode !== null || child.signalCode !== null)
          why = `the new process ended (${describeEnd(child.exitCode, child.signalCode)})`;
        else if (await isReady(pid)) break;
        else if (Date.now() > deadline) why = `the new process was not ready after ${readyTimeoutMs} ms`;
        if (why !== undefined) break;
        await Promise.race([sleep(HANDOVER_POLL_MS), exited]);
      }
    if (why !== undefined || this.#stopping || this.#runVersion !== runVersion) {
      why ??= this.#stopping ? 'the pod is being removed' : "the pod's command changed meanwhile";
      await this.#retire(child, STOP_GRACE_MS, `handover abandoned: ${why}`);
      throw new Error(`${why}; the old process keeps running (see ${o.log})`);
    }
    const readyMs = Date.now() - start;
    // The new process is current from here: its exit is a crash like any other.
    this.#others.delete(child);
    const old = this.#child;
    const oldRecord = this.#record;
    this.#cancelRestart();
    this.#child = child;
    this.#record = record;
    this.#generation++;
    this.#probing = false;
    this.#startedAt = start;
    this.#restarts++;
    this.#backoff.reset();
    this.#setPhase('ready');
    if (old === undefined) return { oldPid, newPid: pid!, readyMs, drainMs: 0, oldEnded: undefined };
    this.#others.set(old, oldRecord);
    const drainStart = Date.now();
    const oldEnded = await this.#retire(old, stopGraceMs, `handover: pid ${pid!} took over`);
    return { oldPid, newPid: pid!, readyMs, drainMs: Date.now() - drainStart, oldEnded };
  }

  /** Stops a process that is not the current one and forgets it; returns how it ended. */
  async #retire(child: ChildProcess, graceMs: number, why: string): Promise<string> {
    const record = this.#others.get(child) ?? null;
    const ended = once(child, 'exit').then(([code, signal]) =>
      describeEnd(code as number | null, signal as NodeJS.Signals | null),
    );
    const already =
      child.exitCode !== null || child.signalCode !== null
        ? describeEnd(child.exitCode, child.signalCode)
        : undefined;
    appendFileSync(
      this.options.log,
      `--- weft lab: ${new Date().toISOString()} ${why}; stopping pid ${String(child.pid)}\n`,
    );
    await stopChildGroup(child, graceMs);
    const how = already ?? (await ended);
    this.#others.delete(child);
    this.options.onProcess(null, record);
    appendFileSync(
      this.options.log,
      `--- weft lab: ${new Date().toISOString()} pid ${String(child.pid)} ended (${how})\n`,
    );
    return how;
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    this.#cancelRestart();
    await Promise.all([
      this.#stopProcess(),
      ...[...this.#others.keys()].map((child) => this.#retire(child, STOP_GRACE_MS, 'pod removed')),
    ]);
    const o = this.options;
    await deletePodNetwork(o.node, { netns: o.netns, veth: o.veth, ip: o.ip });
  }

  snapshot(): PodState {
    const o = this.options;
    return {
      namespace: o.namespace,
      name: o.name,
      node: o.node.name,
      ip: o.ip,
      netns: o.netns,
      veth: o.veth,
      phase: this.#phase,
      process: this.#record,
      restarts: this.#restarts,
      command: this.#argv,
      log: o.log,
      ...(this.#message === undefined && this.#notice === undefined
        ? {}
        : { message: [this.#notice, this.#message].filter((m) => m !== undefined).join('; ') }),
    };
  }

  #setPhase(phase: PodPhase, message?: string): void {
    this.#phase = phase;
    this.#message = message;
    this.options.onChange();
  }

  #spawn(): void {
    const o = this.options;
    const generation = ++this.#generation;
    if (this.#argv.length === 0) {
      this.#setPhase('ready', 'no command: the pod is a network endpoint only');
      return;
    }
    appendFileSync(
      o.log,
      `--- weft lab: ${new Date().toISOString()} starting ${JSON.stringify(this.#argv)} in ${o.netns}` +
        `${this.#restarts > 0 ? ` (restart ${this.#restarts})` : ''}\n`,
    );
    const { child, record } = this.#startProcess();
    this.#child = child;
    this.#record = record;
    this.#startedAt = Date.now();
    this.#setPhase('running');
    if (this.#run.tcpPorts.length > 0) this.#probe(generation);
    else this.#setPhase('ready');
  }

  /** Spawns the command and records the process; its exit goes to #onExit (which ignores non-current ones). */
  #startProcess(): { child: ChildProcess; record: ProcessRecord | null } {
    const o = this.options;
    const child = spawnInNetns(o.netns, this.#argv, {
      log: o.log,
      env: this.#run.env,
      cwd: this.#run.cwd,
    });
    child.once('error', (err) => {
      if (child === this.#child) this.#setPhase('failed', `cannot start: ${errorMessage(err)}`);
    });
    child.once('exit', (code, signal) => this.#onExit(child, code, signal));
    let record: ProcessRecord | null = null;
    if (child.pid !== undefined) {
      record = recordProcess(`pod ${o.namespace}/${o.name}`, child.pid, o.netns);
      o.onProcess(record, null);
    }
    return { child, record };
  }

  /** Sets the pod's network sysctls in its namespace; anything else is refused (it would be the node's). */
  async #applySysctls(sysctls: readonly PodSysctl[]): Promise<void> {
    const o = this.options;
    for (const { name, value } of sysctls) {
      try {
        if (!NET_SYSCTL.test(name)) throw new Error('only network sysctls (net.…) are namespaced per pod');
        await execFileAsync('ip', ['netns', 'exec', o.netns, 'sysctl', '-qw', `${name}=${value}`]);
      } catch (err) {
        const why = `sysctl ${name}=${value} not set: ${errorMessage(err).trim()}`;
        appendFileSync(o.log, `--- weft lab: ${new Date().toISOString()} ${why}\n`);
        this.notice = why;
      }
    }
  }

  #probe(generation: number): void {
    const o = this.options;
    const args = [
      'netns',
      'exec',
      o.netns,
      process.execPath,
      '-e',
      PROBE_SCRIPT,
      o.ip,
      String(POD_READY_TIMEOUT_MS),
    ];
    this.#probing = true;
    execFile('ip', [...args, ...this.#run.tcpPorts.map(String)], (err) => {
      if (generation !== this.#generation) return;
      this.#probing = false;
      if (this.#stopping || this.#child === undefined) return;
      if (err === null) this.#setPhase('ready');
      else
        this.#setPhase(
          'running',
          `not listening on ${this.#run.tcpPorts.join(', ')} after ${POD_READY_TIMEOUT_MS} ms`,
        );
    });
  }

  #onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (child !== this.#child) return;
    this.#child = undefined;
    this.#generation++;
    this.#probing = false;
    const ended = this.#record;
    this.#record = null;
    this.options.onProcess(null, ended);
    const how = signal === null ? `exit code ${code}` : `signal ${signal}`;
    appendFileSync(this.options.log, `--- weft lab: ${new Date().toISOString()} process ended (${how})\n`);
    if (this.#stopping) return;
    const delay = this.#backoff.next(Date.now() - this.#startedAt);
    this.#setPhase('restarting', `process ended (${how}); restarting in ${delay} ms`);
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      this.#restarts++;
      this.#spawn();
    }, delay);
  }

  #cancelRestart(): void {
    if (this.#restartTimer !== undefined) clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
  }

  async #stopProcess(): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    // Forget it first: its exit handler and any pending probe then treat it as none of theirs.
    this.#child = undefined;
    this.#generation++;
    this.#probing = false;
    const ended = this.#record;
    this.#record = null;
    await stopChildGroup(child);
    this.options.onProcess(null, ended);
    appendFileSync(this.options.log, `--- weft lab: ${new Date().toISOString()} process stopped\n`);
  }
}

/** Network sysctl names: `net.` then dotted words (no path tricks reach /proc/sys outside net). */
const NET_SYSCTL = /^net(\.[A-Za-z0-9_-]+)+$/;

function describeEnd(code: number | null, signal: NodeJS.Signals | null): string {
  return signal === null ? `exit code ${String(code)}` : `signal ${signal}`;
}

/**
 * True when the process `pid` answers `url` (inside the pod's network namespace `netns`) with a 2xx and
 * names itself in its `weft-pid` header (core/http-endpoints.ts readiness): during a handover two
 * processes share the port, and only the new one's answer counts.
 */
export async function processAnswersReady(netns: string, url: string, pid: number): Promise<boolean> {
  try {
    const { stdout } = await execFileAsync('ip', [
      'netns',
      'exec',
      netns,
      'curl',
      '-sf',
      '-D',
      '-',
      '-o',
      '/dev/null',
      '--max-time',
      '2',
      url,
    ]);
    return new RegExp(`^weft-pid: ${pid}\\r?$`, 'im').test(stdout);
  } catch {
    return false;
  }
}
