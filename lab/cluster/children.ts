// Processes the lab runs inside its namespaces, each the leader of its own process group (so stopping
// it stops whatever it forked too), output appended to a log file. Two ways in, both of which exec, so
// the pid is the command's own:
// - `ip netns exec` for pods: it also gives the process a private mount namespace with a /sys of the
//   pod's network namespace, as a container would see.
// - `nsenter --net` for node-level parts (CA, agents): only the network namespace changes, so they
//   share the machine's mounts, above all bpffs at /sys/fs/bpf. Under `ip netns exec` an agent's pins
//   would land in a private bpffs that vanishes with the process, invisible to `weft lab down` and to
//   the agent's own restart (like a DaemonSet's hostPath mount of /sys/fs/bpf).
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { isRunning, type ProcessRecord } from './state.js';

/** SIGTERM first: the parts drain within a few seconds; after this long they are killed. */
export const STOP_GRACE_MS = 5000;
const POLL_MS = 50;

export interface SpawnInNetnsOptions {
  readonly log: string;
  /** `pod` (default): `ip netns exec`; `node`: `nsenter --net`, keeping the machine's mounts. */
  readonly as?: 'pod' | 'node';
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

export function spawnInNetns(
  netns: string,
  argv: readonly string[],
  options: SpawnInNetnsOptions,
): ChildProcess {
  const fd = openSync(options.log, 'a');
  try {
    const [cmd, ...args] =
      options.as === 'node'
        ? ['nsenter', `--net=/run/netns/${netns}`, '--', ...argv]
        : ['ip', 'netns', 'exec', netns, ...argv];
    return spawn(cmd!, args, {
      stdio: ['ignore', fd, fd],
      detached: true,
      env: options.env ?? process.env,
      cwd: options.cwd,
    });
  } finally {
    closeSync(fd);
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is gone (ESRCH), or the process never led one: signal it alone.
    try {
      process.kill(pid, signal);
    } catch {
      // gone
    }
  }
}

/** Stops a child the lab started: SIGTERM to its group, SIGKILL after `graceMs`. */
export async function stopChildGroup(child: ChildProcess, graceMs = STOP_GRACE_MS): Promise<void> {
  const pid = child.pid;
  if (pid === undefined) return;
  const exited =
    child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : once(child, 'exit');
  signalGroup(pid, 'SIGTERM');
  const timer = sleep(graceMs, 'timeout' as const, { ref: false });
  if ((await Promise.race([exited.then(() => 'exited' as const), timer])) === 'timeout') {
    signalGroup(pid, 'SIGKILL');
    await exited;
  }
  // Anything the leader forked and left behind.
  signalGroup(pid, 'SIGKILL');
}

/**
 * Stops processes that are not our children (after a crash, from `weft lab down`): SIGTERM to each
 * one's group, then SIGKILL to those still running after `graceMs`. A record whose pid now belongs to
 * another process (different start time) is left alone. Returns how many were running.
 */
export async function stopRecorded(
  records: readonly ProcessRecord[],
  graceMs = STOP_GRACE_MS,
): Promise<number> {
  const live = records.filter(isRunning);
  for (const r of live) signalGroup(r.pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (live.some(isRunning) && Date.now() < deadline) await sleep(POLL_MS);
  for (const r of live) if (isRunning(r)) signalGroup(r.pid, 'SIGKILL');
  const killDeadline = Date.now() + graceMs;
  while (live.some(isRunning) && Date.now() < killDeadline) await sleep(POLL_MS);
  return live.length;
}
