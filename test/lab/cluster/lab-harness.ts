// Running `weft lab …` from the build as a user does, and checking that a lab left nothing behind.
// Shared by the root-only lab tests (not a test file itself).
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LabState } from '../../../lab/cluster/state.js';
import { netnsUnavailable } from '../../../lab/netns.js';
import { run, skipReason, type ExecResult } from '../../helpers/exec.js';

export const CLI = fileURLToPath(new URL('../../../dist/cli/main.js', import.meta.url));

/** Why the lab tests cannot run here (not root, no netns, no build), or undefined. */
export async function labUnavailable(): Promise<string | undefined> {
  return (
    (await netnsUnavailable()) ?? (existsSync(CLI) ? undefined : `no build at ${CLI}: run npm run build`)
  );
}

export { skipReason };

export function weft(args: readonly string[], input?: string): Promise<ExecResult> {
  return run(process.execPath, [CLI, ...args], input);
}

export function labDir(): string {
  return join(mkdtempSync(join(tmpdir(), 'weft-lab-test-')), 'lab');
}

export function readState(dir: string): LabState {
  return JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as LabState;
}

/**
 * Whether `pid` is a live process. A zombie is not: an orphan's exit is reaped by PID 1, and some
 * container inits never reap, which leaves an entry in the process table but no process.
 */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

/** Everything of lab `state` that still exists: namespaces, root-namespace links, processes, pins. */
export async function leftovers(state: LabState): Promise<string[]> {
  const left: string[] = [];
  const netns = (await run('ip', ['netns', 'list'])).stdout;
  for (const line of netns.split('\n')) if (line.startsWith(`weft-${state.id}-`)) left.push(`netns ${line}`);
  const links = (await run('ip', ['-o', 'link'])).stdout;
  const names = [...state.links.map((l) => l.name), ...state.pods.map((p) => p.veth)];
  for (const name of names)
    if (links.includes(` ${name}:`) || links.includes(` ${name}@`)) left.push(`link ${name}`);
  const pids = new Set(
    [...state.processes, ...state.pods.flatMap((p) => (p.process ? [p.process] : []))].map((p) => p.pid),
  );
  if (state.controller) pids.add(state.controller.pid);
  for (const pid of pids) if (alive(pid)) left.push(`process ${pid}`);
  for (const dir of state.bpfPinDirs) if (existsSync(dir)) left.push(`pin ${dir}`);
  if (existsSync(join(state.dir, 'state.json'))) left.push('state.json');
  return left;
}
