// The lab's state file (`<dir>/state.json`): everything a running lab made, written by its controller
// before it creates each thing, so `weft lab down` can remove exactly that, also after a crash.
//
// Invariants:
// - One writer: the controller process (`weft lab run`). Other commands only read it.
// - A namespace, link or process is recorded before (namespaces, links) or right after (processes:
//   the pid exists only then) it is created, and the file is replaced atomically (write + rename), so a
//   reader never sees half a file and a crash loses at most a process that `down` still finds by its
//   namespace (`ip netns pids`).
// - Processes are recorded with their kernel start time, so a pid reused by an unrelated process after
//   a crash is never signalled.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LabOptions } from './plan.js';
import { STATE_FILE } from './plan.js';

export const LAB_STATE_VERSION = 1;

export type LabPhase = 'starting' | 'ready' | 'stopping' | 'stopped' | 'failed';

/** A process the lab started. */
export interface ProcessRecord {
  /** What it is: `controller`, `ca`, `agent-node-1`, `pod default/echo-v1`. */
  readonly name: string;
  readonly pid: number;
  /** Field 22 of /proc/<pid>/stat (clock ticks since boot): with the pid, names the process uniquely. */
  readonly startTime: string;
  /** The network namespace it runs in; absent for the controller (root namespace). */
  readonly netns?: string;
}

export interface LinkRecord {
  readonly netns: string;
  readonly name: string;
}

export interface NodeState {
  readonly name: string;
  readonly netns: string;
  readonly uplink: string;
  readonly fabricPort: string;
  readonly uplinkIp: string;
  readonly podCidr: string;
  readonly gateway: string;
  readonly agent: ProcessRecord | null;
  readonly agentPhase: AgentPhase;
  /** Restarts after the agent ended on its own, or on request (`weft lab agent restart`). */
  readonly agentRestarts: number;
  /** Why the agent is not ready, or how it last ended. */
  readonly agentMessage?: string;
}

/** `stopped`: held down on request (`weft lab agent stop`) until started again. */
export type AgentPhase = 'starting' | 'ready' | 'restarting' | 'stopped' | 'failed';

export type PodPhase = 'pending' | 'starting' | 'running' | 'ready' | 'restarting' | 'failed';

export interface PodState {
  readonly namespace: string;
  readonly name: string;
  readonly node: string;
  readonly ip: string;
  readonly netns: string;
  /** The host-side veth in the node's namespace (`podVethName(namespace, name)`). */
  readonly veth: string;
  readonly phase: PodPhase;
  readonly process: ProcessRecord | null;
  readonly restarts: number;
  /** The command line as run (after `weft` is resolved to this build). */
  readonly command: readonly string[];
  readonly log: string;
  /** Why the pod is pending or failed, or its last exit. */
  readonly message?: string;
}

export interface ServiceState {
  readonly namespace: string;
  readonly name: string;
  readonly clusterIps: readonly string[];
  /** `80/TCP->8080`. */
  readonly ports: readonly string[];
}

export interface LabState {
  readonly version: typeof LAB_STATE_VERSION;
  readonly id: string;
  readonly dir: string;
  readonly phase: LabPhase;
  readonly error?: string;
  readonly startedAt: string;
  readonly options: LabOptions;
  readonly controller: ProcessRecord | null;
  readonly manifestsDir: string;
  readonly logsDir: string;
  readonly caDir: string;
  readonly fabric: { readonly netns: string; readonly bridge: string };
  readonly nodes: readonly NodeState[];
  readonly ca: {
    readonly node: string;
    readonly grpc: string;
    readonly http: string;
    readonly rootCertFile: string;
    readonly process: ProcessRecord | null;
  };
  readonly pods: readonly PodState[];
  readonly services: readonly ServiceState[];
  /** Every network namespace this lab created (or was about to), in creation order. */
  readonly netns: readonly string[];
  /** Every link it created; they go away with their namespaces, and are listed for tools and tests. */
  readonly links: readonly LinkRecord[];
  /** Every process it started that may still run. */
  readonly processes: readonly ProcessRecord[];
  /** Pinned BPF paths (under /sys/fs/bpf) to remove on `down`; filled by the capture integration. */
  readonly bpfPinDirs: readonly string[];
}

export function stateFile(dir: string): string {
  return join(dir, STATE_FILE);
}

/** The state in `dir`, or undefined when there is none; a corrupt file is an error naming it. */
export function readLabState(dir: string): LabState | undefined {
  const file = stateFile(dir);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let state: LabState;
  try {
    state = JSON.parse(text) as LabState;
  } catch (err) {
    throw new Error(`${file}: not a lab state file: ${(err as Error).message}`, { cause: err });
  }
  if (state.version !== LAB_STATE_VERSION)
    throw new Error(`${file}: state version ${String(state.version)}, this weft reads ${LAB_STATE_VERSION}`);
  return state;
}

export function writeLabState(dir: string, state: LabState): void {
  const file = stateFile(dir);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(tmp, file);
}

/** The kernel start time of `pid`, or undefined when it is gone or a zombie. */
export function processStartTime(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // `pid (comm) state ppid …`: comm may hold spaces and parentheses, so split after the last `)`.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const processState = fields[0];
  if (processState === 'Z' || processState === 'X') return undefined;
  return fields[19];
}

export function recordProcess(name: string, pid: number, netns?: string): ProcessRecord {
  return { name, pid, startTime: processStartTime(pid) ?? '', ...(netns === undefined ? {} : { netns }) };
}

/**
 * Whether the process the record names is still running: same pid and start time, not a zombie. A
 * record without a start time (the process was gone before it could be read) names nothing.
 */
export function isRunning(record: ProcessRecord): boolean {
  return record.startTime !== '' && processStartTime(record.pid) === record.startTime;
}
