// One node's agent in the lab, kept running as a DaemonSet keeps its pod: an agent that ends on its
// own (crash, `kill`) is started again after a growing delay; on request it is stopped and held down
// (`weft lab agent stop`) or restarted (`weft lab agent restart`). A restarted agent re-opens the
// programs, maps and links it pinned under its node's pin directory instead of attaching again.
//
// Invariants: at most one agent process per node, except during `restart()`, when the one being replaced
// runs beside its successor until it has drained; the state file names each from right after it is
// spawned until right after it ends; after `shutdown()` resolves none runs and none is scheduled.
import { appendFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { errorMessage } from '../../core/errors.js';
import { componentLogger } from '../../core/log.js';
import { STOP_GRACE_MS, stopChildGroup } from './children.js';
import { AGENT_DRAIN_DEADLINE_MS, agentReadyInNetns, startAgent, waitUntilReady } from './control-plane.js';
import type { LabNodePlan, LabPlan } from './plan.js';
import { RestartBackoff } from './restart-backoff.js';
import { recordProcess, type ProcessRecord } from './state.js';
import type { AgentChange, LabStateWriter } from './state-writer.js';

const log = componentLogger('lab.agent');

export class AgentSupervisor {
  readonly #lab: LabPlan;
  readonly #node: LabNodePlan;
  readonly #state: LabStateWriter;
  readonly #backoff = new RestartBackoff();
  #child: ChildProcess | undefined;
  #record: ProcessRecord | null = null;
  /** Resolves once the running agent answers ready; rejects (with its log's end) if it never does. */
  #ready: Promise<void> = Promise.resolve();
  #startedAt = 0;
  #restarts = 0;
  #restartTimer: NodeJS.Timeout | undefined;
  /** Stopped on request: not restarted until `start()`. */
  #held = false;
  #closed = false;

  constructor(lab: LabPlan, node: LabNodePlan, state: LabStateWriter) {
    this.#lab = lab;
    this.#node = node;
    this.#state = state;
  }

  get node(): string {
    return this.#node.name;
  }

  /** Starts the agent unless it runs, and resolves once it is ready. */
  async start(): Promise<void> {
    if (this.#closed) throw new Error(`the lab is stopping: not starting the agent of ${this.node}`);
    this.#held = false;
    this.#cancelRestart();
    if (this.#child === undefined) this.#spawn();
    await this.#ready;
  }

  /** Stops the agent and holds it down until `start()`. */
  async stop(): Promise<void> {
    this.#held = true;
    this.#cancelRestart();
    await this.#stopProcess();
    this.#set({ agentPhase: 'stopped', agentMessage: 'stopped on request; weft lab agent start starts it' });
  }

  /**
   * Replaces the agent without a gap, as an upgrade does: the new agent starts beside the running one and
   * takes over steering once it serves (the old one then drains: agent/drain.ts); once the new one is
   * ready, the old one gets SIGTERM and exits when its connections are done (or at its drain deadline).
   * Resolves once the new one is ready and the old one has exited.
   */
  async restart(): Promise<void> {
    this.#cancelRestart();
    this.#backoff.reset();
    this.#restarts++;
    this.#set({ agentRestarts: this.#restarts });
    const old = this.#child;
    const oldRecord = this.#record;
    if (this.#closed || old === undefined) return this.start();
    // Forget it first, so its exit is not taken for a crash; the state file keeps its record until it ends.
    this.#child = undefined;
    this.#record = null;
    this.#held = false;
    this.#spawn();
    try {
      await this.#ready;
    } finally {
      await stopChildGroup(old, AGENT_DRAIN_DEADLINE_MS + STOP_GRACE_MS);
      if (oldRecord) this.#state.process(null, oldRecord);
      appendFileSync(
        this.#node.agentLog,
        `--- weft lab: ${new Date().toISOString()} agent replaced (pid ${String(old.pid)})\n`,
      );
    }
  }

  /** Kills the agent (SIGKILL, as a crash would); it is restarted as any agent that ends on its own. */
  kill(): number | undefined {
    const child = this.#child;
    if (child?.pid === undefined) return undefined;
    process.kill(child.pid, 'SIGKILL');
    return child.pid;
  }

  /** The lab is going away: stop for good. */
  async shutdown(): Promise<void> {
    this.#closed = true;
    this.#cancelRestart();
    await this.#stopProcess();
  }

  #spawn(): void {
    const child = startAgent(this.#lab, this.#node);
    this.#child = child;
    this.#startedAt = Date.now();
    child.once('error', (err) =>
      log.error({ node: this.node, error: errorMessage(err) }, 'agent spawn failed'),
    );
    child.once('exit', (code, signal) => this.#onExit(child, code, signal));
    if (child.pid !== undefined) {
      // When it began: what its start-up time (to its own "agent ready") is measured from.
      appendFileSync(
        this.#node.agentLog,
        `--- weft lab: ${new Date(this.#startedAt).toISOString()} agent started (pid ${child.pid})\n`,
      );
      this.#record = recordProcess(`agent-${this.node}`, child.pid, this.#node.netns);
      this.#state.process(this.#record, null);
    }
    this.#set({ agent: this.#record, agentPhase: 'starting', agentMessage: undefined });
    this.#ready = waitUntilReady(
      `the agent of ${this.node}`,
      // Its own answer: during a restart the agent it replaces answers on the same port too.
      () => agentReadyInNetns(this.#node.netns, child.pid ?? -1),
      child,
      this.#node.agentLog,
    ).then(
      () => {
        if (child === this.#child) this.#set({ agentPhase: 'ready' });
      },
      (err: unknown) => {
        if (child === this.#child) this.#set({ agentPhase: 'failed', agentMessage: errorMessage(err) });
        throw err;
      },
    );
    // A restart nobody awaits still reports through the state file; this only keeps the rejection handled.
    this.#ready.catch(() => undefined);
  }

  #onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (child !== this.#child) return; // stopped on purpose: #stopProcess records it
    this.#child = undefined;
    this.#forgetProcess();
    const how = signal === null ? `exit code ${code}` : `signal ${signal}`;
    appendFileSync(this.#node.agentLog, `--- weft lab: ${new Date().toISOString()} agent ended (${how})\n`);
    if (this.#held || this.#closed) return;
    const delay = this.#backoff.next(Date.now() - this.#startedAt);
    log.warn({ node: this.node, ended: how, restartInMs: delay }, 'agent ended; restarting');
    this.#set({ agentPhase: 'restarting', agentMessage: `ended (${how}); restarting in ${delay} ms` });
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      this.#restarts++;
      this.#set({ agentRestarts: this.#restarts });
      this.#spawn();
    }, delay);
  }

  async #stopProcess(): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    // Forget it first, so its exit is not taken for a crash.
    this.#child = undefined;
    await stopChildGroup(child, AGENT_DRAIN_DEADLINE_MS + STOP_GRACE_MS);
    this.#forgetProcess();
    appendFileSync(this.#node.agentLog, `--- weft lab: ${new Date().toISOString()} agent stopped\n`);
  }

  #forgetProcess(): void {
    this.#state.process(null, this.#record);
    this.#record = null;
    this.#set({ agent: null });
  }

  #cancelRestart(): void {
    if (this.#restartTimer !== undefined) clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
  }

  #set(change: AgentChange): void {
    this.#state.setAgent(this.node, change);
  }
}
