// Removing a lab: every process, namespace and pinned BPF path it made, from its state file alone, so it
// works the same after an orderly stop and after `kill -9` of the controller. Idempotent: what is
// already gone is skipped. Besides what the state lists, it sweeps every network namespace named
// `weft-<id>-…` and every process inside one, so a crash between creating something and recording
// it cannot leave that thing behind.
import { existsSync, rmSync, rmdirSync } from 'node:fs';
import { join, normalize } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ip } from '../netns.js';
import { stopRecorded } from './children.js';
import { labNetnsPrefix } from './names.js';
import { ADMIN_DIR, STATE_FILE } from './plan.js';
import { isRunning, readLabState, recordProcess, type LabState, type ProcessRecord } from './state.js';
import { listNetns, netnsPids } from './topology.js';

/** The controller drains its pods and agents on SIGTERM; give it this long before taking over. */
const CONTROLLER_STOP_TIMEOUT_MS = 30_000;
const POLL_MS = 100;
const BPF_FS = '/sys/fs/bpf/';
/** What a lab creates in its directory; `down` removes these and then the directory if it is empty. */
const LAB_FILES = [STATE_FILE, 'manifests', 'logs', 'ca', 'tokens', ADMIN_DIR];

export interface SweepTarget {
  readonly id: string;
  readonly netns: readonly string[];
  readonly processes: readonly ProcessRecord[];
  readonly bpfPinDirs: readonly string[];
}

export interface SweepReport {
  readonly stoppedProcesses: number;
  readonly deletedNetns: readonly string[];
  readonly removedPins: readonly string[];
}

/**
 * Stops the processes, deletes the namespaces and removes the pins of a lab. `exceptPid` (the
 * controller sweeping its own lab) is never signalled.
 */
export async function sweepLab(target: SweepTarget, exceptPid?: number): Promise<SweepReport> {
  const prefix = labNetnsPrefix(target.id);
  const recorded = target.processes.filter((p) => p.pid !== exceptPid);
  let stopped = await stopRecorded(recorded);
  const names = new Set(target.netns);
  for (const name of await listNetns()) if (name.startsWith(prefix)) names.add(name);
  // Whatever still runs inside the lab's namespaces is the lab's (and may have been started after the
  // last state write).
  const inside: ProcessRecord[] = [];
  for (const name of names)
    for (const pid of await netnsPids(name))
      if (pid !== exceptPid && pid !== process.pid) inside.push(recordProcess(`in ${name}`, pid, name));
  stopped += await stopRecorded(inside);
  const existing = new Set(await listNetns());
  const deletedNetns: string[] = [];
  // Pods first, then nodes, then the fabric: the reverse of creation.
  for (const name of [...names].reverse()) {
    if (!existing.has(name)) continue;
    await ip('netns', 'del', name).catch(() => undefined);
    deletedNetns.push(name);
  }
  const removedPins: string[] = [];
  for (const dir of target.bpfPinDirs) {
    if (!isBpfPath(dir) || !existsSync(dir)) continue;
    rmSync(dir, { recursive: true, force: true });
    removedPins.push(dir);
  }
  return { stoppedProcesses: stopped, deletedNetns, removedPins };
}

/** Only paths inside bpffs, without `..`: a corrupt state file must not make `down` delete elsewhere. */
function isBpfPath(path: string): boolean {
  return normalize(path) === path && path.startsWith(BPF_FS) && path.length > BPF_FS.length;
}

export interface DownOptions {
  /** Keep manifests, logs and the CA (the state file goes regardless). */
  readonly keepFiles?: boolean;
  /** Sweep a lab by id when its state file is gone. */
  readonly id?: string;
}

export interface DownReport extends SweepReport {
  readonly id: string | undefined;
  readonly controllerWasRunning: boolean;
  /** Anything still there afterwards (should be empty). */
  readonly leftovers: readonly string[];
}

export async function labDown(dir: string, options: DownOptions = {}): Promise<DownReport> {
  const state = readLabState(dir);
  const id = state?.id ?? options.id;
  if (id === undefined)
    return {
      id,
      controllerWasRunning: false,
      stoppedProcesses: 0,
      deletedNetns: [],
      removedPins: [],
      leftovers: [],
    };
  let controllerWasRunning = false;
  if (state?.controller && isRunning(state.controller)) {
    controllerWasRunning = true;
    await stopController(state.controller);
  }
  // The controller may have written more while stopping: read the final state.
  const final = readLabState(dir) ?? state;
  const report = await sweepLab({
    id,
    netns: final?.netns ?? [],
    processes: final?.processes ?? [],
    bpfPinDirs: final?.bpfPinDirs ?? [],
  });
  const leftovers = await labLeftovers(id, final);
  if (leftovers.length === 0) removeLabFiles(dir, options.keepFiles === true);
  return { id, controllerWasRunning, ...report, leftovers };
}

async function stopController(controller: ProcessRecord): Promise<void> {
  try {
    process.kill(controller.pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + CONTROLLER_STOP_TIMEOUT_MS;
  while (isRunning(controller) && Date.now() < deadline) await sleep(POLL_MS);
  if (isRunning(controller)) await stopRecorded([controller]);
}

/** What of lab `id` still exists: namespaces by name, recorded processes, pins. */
export async function labLeftovers(id: string, state: LabState | undefined): Promise<string[]> {
  const left: string[] = [];
  const prefix = labNetnsPrefix(id);
  for (const name of await listNetns()) if (name.startsWith(prefix)) left.push(`network namespace ${name}`);
  for (const p of state?.processes ?? [])
    if (p.pid !== process.pid && isRunning(p)) left.push(`process ${p.pid} (${p.name})`);
  for (const dir of state?.bpfPinDirs ?? [])
    if (isBpfPath(dir) && existsSync(dir)) left.push(`pinned path ${dir}`);
  return left;
}

/** Ids of labs whose network namespaces exist on this machine (from their `weft-<id>-` names). */
export async function labIdsOnMachine(): Promise<string[]> {
  const ids = new Set<string>();
  for (const name of await listNetns()) {
    const m = /^weft-([a-z0-9]{1,6})-(fabric|node-\d+|pod-.+)$/.exec(name);
    if (m) ids.add(m[1]!);
  }
  return [...ids].sort();
}

function removeLabFiles(dir: string, keepFiles: boolean): void {
  rmSync(join(dir, STATE_FILE), { force: true });
  if (keepFiles) return;
  for (const name of LAB_FILES) rmSync(join(dir, name), { recursive: true, force: true });
  try {
    rmdirSync(dir);
  } catch {
    // not empty (the user keeps other things there) or already gone
  }
}
