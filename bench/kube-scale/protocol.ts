// What the bench's processes say to each other over their IPC channels (child_process.fork), and the
// parent's end of it: send a command, wait (bounded) for the answer of the expected type.
import { fork, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import type { LatencySummaryUs } from '../load/recorder.js';
import type { GeneratedKind, ScaleSpec } from './objects.js';

/** Wall-clock microseconds, comparable between processes on one machine (both read the same clock). */
export function clockUs(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

export interface ObjectRef {
  readonly kind: GeneratedKind;
  readonly namespace: string;
  readonly name: string;
}

export interface MemorySample {
  readonly heapUsedBytes: number;
  readonly heapTotalBytes: number;
  readonly externalBytes: number;
  readonly rssBytes: number;
}

// ---- the API server's process -------------------------------------------------------------------

export interface ApiChildOptions {
  readonly spec: ScaleSpec;
  /** Where the kubeconfig (and, with `writeFiles`, the manifests) go. */
  readonly dir: string;
  /** Also write the set as JSON `List` files under DIR/manifests, for the file-source baseline. */
  readonly writeFiles: boolean;
}

export type ApiCommand =
  | { readonly cmd: 'churn'; readonly seconds: number; readonly rate: number; readonly seed: number }
  | { readonly cmd: 'relist'; readonly updates: number; readonly deletes: number }
  | { readonly cmd: 'exit' };

export interface ApiReady {
  readonly type: 'ready';
  readonly kubeconfig: string;
  readonly manifestsDir: string | undefined;
  readonly createSeconds: number;
  /** JSON bytes of the set, by kind, as the API server serialises each object. */
  readonly jsonBytes: Readonly<Record<string, number>>;
  readonly objects: number;
}

export interface ChurnCounts {
  /** Label and status changes of one pod (one write). */
  readonly podUpdates: number;
  /** A pod deleted and its replacement created, and its Service's slice updated (three writes). */
  readonly podReplacements: number;
  /** An endpoint's readiness flipped (one write). */
  readonly sliceUpdates: number;
  /** A label change (one write). */
  readonly serviceUpdates: number;
}

export interface ApiChurned {
  readonly type: 'churned';
  readonly seconds: number;
  /** API writes (creates, updates, deletes), each one watch event to the consumer. */
  readonly writes: number;
  /** Writes whose object carries a fresh SENT_LABEL: the ones latency is measured on. */
  readonly stamped: number;
  readonly counts: ChurnCounts;
}

export interface ApiRelisted {
  readonly type: 'relisted';
  /** When the watches were cut (the start of the relist as the consumer sees it). */
  readonly droppedAtUs: number;
  /** Updated while no watch was open: each now has SENT_LABEL = marker. */
  readonly marker: string;
  readonly updated: readonly ObjectRef[];
  readonly deleted: readonly ObjectRef[];
}

// ---- the consumer's process (the agent's config path) --------------------------------------------

export interface ConsumerOptions {
  readonly spec: ScaleSpec;
  /** `kubernetes:KUBECONFIG` or `file:DIR`. */
  readonly source: string;
  /** The node whose agent view (identities to keep certificates for) is recomputed per batch. */
  readonly nodeName: string;
  /** Quiet time before memory is read after the sync and the source's stop. */
  readonly settleMs: number;
}

export type ConsumerCommand =
  | { readonly cmd: 'sample' }
  | { readonly cmd: 'latency'; readonly on: boolean }
  | {
      readonly cmd: 'await-relist';
      readonly marker: string;
      readonly updated: readonly ObjectRef[];
      readonly deleted: readonly ObjectRef[];
      readonly timeoutMs: number;
    }
  | { readonly cmd: 'heap-snapshot'; readonly path: string }
  | { readonly cmd: 'teardown' }
  | { readonly cmd: 'exit' };

export interface ConsumerSynced {
  readonly type: 'synced';
  /** From `start` to the first applied batch, and to `start` resolving (the same for both sources). */
  readonly firstBatchSeconds: number;
  readonly syncSeconds: number;
  /** This process's CPU (all threads) from `start` to its end. */
  readonly cpuSeconds: number;
  /** VmHWM over the sync (undefined where /proc cannot reset it). */
  readonly peakRssBytes: number | undefined;
  /** After a forced GC, before the source was created (the process with its code loaded). */
  readonly before: MemorySample;
  /** After a forced GC, a second after the sync. */
  readonly after: MemorySample;
  /** Objects of the generated set found in the store, by kind. */
  readonly present: Readonly<Record<string, number>>;
  readonly rejections: number;
  /** How many identities the node agent would certify on `nodeName` (the per-node view works). */
  readonly identitiesOnNode: number;
  readonly batches: number;
}

export interface ConsumerSample {
  readonly type: 'sample';
  readonly memory: MemorySample;
  /** CPU the forced GC itself took, to be left out of the churn's CPU. */
  readonly gcCpuSeconds: number;
}

export interface ConsumerLatency {
  readonly type: 'latency';
  readonly latencyUs: LatencySummaryUs;
  /** Stamped objects seen applied. */
  readonly count: number;
  readonly batches: number;
}

export interface ConsumerRelistDone {
  readonly type: 'relist-done';
  readonly doneAtUs: number;
  readonly batches: number;
}

export interface ConsumerTornDown {
  readonly type: 'torn-down';
  /** After a forced GC, the source still running. */
  readonly withSource: MemorySample;
  /** After a forced GC with the source stopped and dropped: the store alone. */
  readonly storeOnly: MemorySample;
  /** Then with the store dropped too, its records kept in an array: the records without indexes. */
  readonly recordsOnly: MemorySample;
  readonly records: number;
}

export interface ConsumerHeapSnapshot {
  readonly type: 'heap-snapshot';
  readonly path: string;
}

export interface ChildFailed {
  readonly type: 'error';
  readonly message: string;
}

type Message =
  | ApiReady
  | ApiChurned
  | ApiRelisted
  | ConsumerSynced
  | ConsumerSample
  | ConsumerLatency
  | ConsumerRelistDone
  | ConsumerTornDown
  | ConsumerHeapSnapshot
  | ChildFailed;

type MessageOf<T extends Message['type']> = Extract<Message, { type: T }>;

/** Sends a message to the parent; a child without an IPC channel was started wrongly. */
export function tellParent(message: Message): void {
  if (process.send === undefined) throw new Error('kube-scale: run by weft bench kube-scale, not directly');
  process.send(message);
}

/** Unhandled failures in a child reach the parent as an `error` message, then the child exits. */
export function reportFailures(): void {
  const fail = (err: unknown): void => {
    const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
    try {
      tellParent({ type: 'error', message });
    } finally {
      setTimeout(() => process.exit(1), 100).unref();
    }
  };
  process.on('uncaughtException', fail);
  process.on('unhandledRejection', fail);
}

const STDERR_TAIL_BYTES = 8192;

/** A forked bench process: commands in, typed answers out, its stderr's tail kept for error messages. */
export class BenchChild<Command extends { readonly cmd: string }> {
  readonly #child: ChildProcess;
  readonly #queue: Message[] = [];
  readonly #waiters = new Set<{ type: string; resolve: (m: Message) => void; reject: (e: Error) => void }>();
  #stderr = '';
  #exited: Error | undefined;

  constructor(
    readonly name: string,
    script: string,
    options: object,
    execArgv: readonly string[],
    env: NodeJS.ProcessEnv,
  ) {
    this.#child = fork(script, [JSON.stringify(options)], {
      execArgv: [...execArgv],
      env,
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    this.#child.stderr?.setEncoding('utf8');
    this.#child.stderr?.on('data', (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-STDERR_TAIL_BYTES);
    });
    this.#child.on('message', (message: Message) => this.#receive(message));
    this.#child.on('exit', (code, signal) => {
      this.#exited = new Error(
        `${this.name} exited (${signal ?? `code ${String(code)}`})${this.#stderr === '' ? '' : `; its stderr ends:\n${this.#stderr}`}`,
      );
      for (const waiter of this.#waiters) waiter.reject(this.#exited);
      this.#waiters.clear();
    });
  }

  get pid(): number {
    const pid = this.#child.pid;
    if (pid === undefined) throw new Error(`${this.name}: not running`);
    return pid;
  }

  #receive(message: Message): void {
    if (message.type === 'error') {
      const err = new Error(`${this.name} failed: ${message.message}`);
      for (const waiter of this.#waiters) waiter.reject(err);
      this.#waiters.clear();
      this.#exited ??= err;
      return;
    }
    for (const waiter of this.#waiters) {
      if (waiter.type !== message.type) continue;
      this.#waiters.delete(waiter);
      waiter.resolve(message);
      return;
    }
    this.#queue.push(message);
  }

  send(command: Command): void {
    if (this.#exited !== undefined) throw this.#exited;
    this.#child.send(command);
  }

  /** The next message of `type` (queued or to come); rejects after `timeoutMs` or if the child dies. */
  next<T extends Message['type']>(type: T, timeoutMs: number): Promise<MessageOf<T>> {
    const queued = this.#queue.findIndex((m) => m.type === type);
    if (queued >= 0) return Promise.resolve(this.#queue.splice(queued, 1)[0] as MessageOf<T>);
    if (this.#exited !== undefined) return Promise.reject(this.#exited);
    return new Promise((resolve, reject) => {
      const waiter = {
        type,
        resolve: (m: Message) => {
          clearTimeout(timer);
          resolve(m as MessageOf<T>);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`${this.name}: no ${type} within ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      this.#waiters.add(waiter);
    });
  }

  async ask<T extends Message['type']>(command: Command, type: T, timeoutMs: number): Promise<MessageOf<T>> {
    const answer = this.next(type, timeoutMs);
    this.send(command);
    return answer;
  }

  /** Asks the child to exit, then kills it if it has not within a few seconds. */
  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.#child.once('exit', () => resolve()));
    try {
      this.#child.send({ cmd: 'exit' });
    } catch {
      // The channel is already closed; the kill below ends it.
    }
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}
