// One lab pod: its network namespace and the command it runs there. Restarts the command when it exits
// (with a growing delay, as Kubernetes' restartPolicy Always does), reports `ready` once every TCP
// containerPort accepts connections on the pod's IP, and undoes everything on `stop()`.
//
// Invariants: at most one process per pod at a time; after `stop()` resolves no process runs and no
// restart is scheduled; the network exists from `start()` until `stop()`.
import { execFile, type ChildProcess } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { errorMessage } from '../../core/errors.js';
import { expandArgv } from './pod-spec.js';
import { spawnInNetns, stopChildGroup } from './children.js';
import type { LabNodePlan } from './plan.js';
import { recordProcess, type PodPhase, type PodState, type ProcessRecord } from './state.js';
import { RestartBackoff } from './restart-backoff.js';
import { createPodNetwork, deletePodNetwork, type ResourceRecorder } from './topology.js';

/** How long a pod's ports may take to open before it is reported as not ready. */
export const POD_READY_TIMEOUT_MS = 20_000;

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
}

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
    this.#spawn();
  }

  /** Replaces the command (same network): stops the running process and starts the new one. */
  async restartWith(run: PodRun): Promise<void> {
    this.#run = run;
    this.#argv = expandArgv(run.argv, run.env);
    this.#cancelRestart();
    await this.#stopProcess();
    this.#backoff.reset();
    if (!this.#stopping) this.#spawn();
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    this.#cancelRestart();
    await this.#stopProcess();
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
    const child = spawnInNetns(o.netns, this.#argv, {
      log: o.log,
      env: this.#run.env,
      cwd: this.#run.cwd,
    });
    this.#child = child;
    this.#startedAt = Date.now();
    child.once('error', (err) => this.#setPhase('failed', `cannot start: ${errorMessage(err)}`));
    child.once('exit', (code, signal) => this.#onExit(child, code, signal));
    if (child.pid !== undefined) {
      this.#record = recordProcess(`pod ${o.namespace}/${o.name}`, child.pid, o.netns);
      o.onProcess(this.#record, null);
    }
    this.#setPhase('running');
    if (this.#run.tcpPorts.length > 0) this.#probe(generation);
    else this.#setPhase('ready');
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
