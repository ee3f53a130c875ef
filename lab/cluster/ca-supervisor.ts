// The lab's CA process, and its replacement without losing a call (`weft lab restart ca`), as a rolling
// update of the CA's Deployment does on Kubernetes. A restart starts the new CA beside the old one with
// `--wait-for-ports`: it loads the root and issues its serving certificate while the old one serves,
// then says it is prepared; only then does the old one get SIGTERM (it finishes the calls under way,
// grpc-js tryShutdown, and lets go of its ports), and the new one takes each port as soon as it is free.
// Agents never stop serving meanwhile: they hold their certificates, and a CSR that finds no CA in the
// moment between the two is retried (backoff from 0.5 s).
//
// Invariants: at most one CA process, except during `restart()`, when the one being replaced runs until
// its successor is prepared; the state file names the running one; after `shutdown()` none runs.
import type { ChildProcess } from 'node:child_process';
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { formatHostPort } from '../../core/address.js';
import { componentLogger } from '../../core/log.js';
import { stopChildGroup } from './children.js';
import {
  caArgs,
  httpOkInNetns,
  spawnWeftInNetns,
  START_TIMEOUT_MS,
  waitUntilReady,
} from './control-plane.js';
import type { LabPlan } from './plan.js';
import { recordProcess, type ProcessRecord } from './state.js';
import type { LabStateWriter } from './state-writer.js';

const log = componentLogger('lab.ca');
/** The new CA's log line that says it is ready but for its ports (ca/main.ts). */
const PREPARED_MSG = 'ca prepared; taking the ports when free';
const POLL_MS = 20;

/** What `weft lab restart ca` reports. */
export interface CaRestart {
  readonly oldPid: number | undefined;
  readonly newPid: number | undefined;
  /** From the new process's start to its "prepared" line (the old one served meanwhile). */
  readonly preparedMs: number;
  /** From SIGTERM to the old one until the new one answered ready: the only time without a CA. */
  readonly handoverMs: number;
}

export class CaSupervisor {
  readonly #plan: LabPlan;
  readonly #state: LabStateWriter;
  #child: ChildProcess | undefined;
  #record: ProcessRecord | null = null;
  #stopping = false;

  constructor(plan: LabPlan, state: LabStateWriter) {
    this.#plan = plan;
    this.#state = state;
  }

  get #netns(): string {
    return this.#plan.nodes[this.#plan.ca.nodeIndex]!.netns;
  }

  get #readyUrl(): string {
    return `http://${formatHostPort(this.#plan.ca.http)}/healthz/ready`;
  }

  /** Starts the CA; resolves once it answers ready. */
  async start(): Promise<void> {
    const child = this.#spawn([]);
    await waitUntilReady(
      'the CA',
      () => httpOkInNetns(this.#netns, this.#readyUrl),
      child,
      this.#plan.ca.log,
    );
  }

  async restart(): Promise<CaRestart> {
    const old = this.#child;
    const oldRecord = this.#record;
    if (old === undefined) {
      await this.start();
      return { oldPid: undefined, newPid: this.#child?.pid, preparedMs: 0, handoverMs: 0 };
    }
    const startedAt = Date.now();
    const child = this.#spawn(['--wait-for-ports']);
    try {
      await this.#untilPrepared(child);
    } catch (err) {
      // The old one never stopped serving: it stays.
      this.#child = old;
      this.#record = oldRecord;
      this.#state.process(oldRecord, null);
      this.#state.update({ ca: { ...this.#state.state.ca, process: oldRecord } });
      throw err;
    }
    const preparedAt = Date.now();
    await stopChildGroup(old);
    if (oldRecord) this.#state.process(null, oldRecord);
    appendFileSync(
      this.#plan.ca.log,
      `--- weft lab: ${new Date().toISOString()} ca replaced (pid ${String(old.pid)})\n`,
    );
    await waitUntilReady(
      'the new CA',
      () => httpOkInNetns(this.#netns, this.#readyUrl),
      child,
      this.#plan.ca.log,
    );
    const result: CaRestart = {
      oldPid: old.pid,
      newPid: child.pid,
      preparedMs: preparedAt - startedAt,
      handoverMs: Date.now() - preparedAt,
    };
    log.info({ ...result }, 'ca replaced');
    return result;
  }

  async shutdown(): Promise<void> {
    this.#stopping = true;
    const child = this.#child;
    this.#child = undefined;
    if (child) await stopChildGroup(child);
  }

  #spawn(extraArgs: readonly string[]): ChildProcess {
    mkdirSync(this.#plan.caDir, { recursive: true });
    const child = spawnWeftInNetns(this.#netns, [...caArgs(this.#plan), ...extraArgs], this.#plan.ca.log);
    this.#child = child;
    if (child.pid !== undefined) {
      appendFileSync(
        this.#plan.ca.log,
        `--- weft lab: ${new Date().toISOString()} ca started (pid ${child.pid})\n`,
      );
      this.#record = recordProcess('ca', child.pid, this.#netns);
      this.#state.process(this.#record, null);
      this.#state.update({ ca: { ...this.#state.state.ca, process: this.#record } });
    }
    child.once('exit', (code, signal) => {
      if (child !== this.#child) return; // replaced or stopped on purpose
      if (this.#record) this.#state.process(null, this.#record);
      this.#record = null;
      this.#state.update({ ca: { ...this.#state.state.ca, process: null } });
      if (!this.#stopping) log.error({ part: 'ca', code, signal }, 'part exited');
    });
    return child;
  }

  /** Waits until `child` logged that it is prepared (bounded; fails if it exits first). */
  async #untilPrepared(child: ChildProcess): Promise<void> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    const marker = `"pid":${child.pid},`;
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`the new CA ended before it was prepared (see ${this.#plan.ca.log})`);
      const text = readFileSync(this.#plan.ca.log, 'utf8');
      if (text.split('\n').some((l) => l.includes(marker) && l.includes(PREPARED_MSG))) return;
      await sleep(POLL_MS);
    }
    await stopChildGroup(child);
    throw new Error(`the new CA was not prepared within ${START_TIMEOUT_MS} ms (see ${this.#plan.ca.log})`);
  }
}
