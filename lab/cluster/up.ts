// `weft lab up`: starts the lab's controller (`weft lab run`) in the background, detached from this
// terminal, and waits until its state file says `ready` (or `failed`, or the controller dies).
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { weftCliPath } from '../processes.js';
import { logTail } from './control-plane.js';
import { copyDemoManifests } from './demo.js';
import { planLab, type LabOptions } from './plan.js';
import { isRunning, readLabState, stateFile, type LabState } from './state.js';

/** Building the network and starting the CA, agents and first pods takes seconds; this is generous. */
export const UP_TIMEOUT_MS = 90_000;
const POLL_MS = 100;

export interface UpOptions extends LabOptions {
  readonly demo: boolean;
}

export async function labUp(options: UpOptions, out: (line: string) => void): Promise<LabState> {
  const plan = planLab(options);
  if (options.demo && plan.nodes.length < 2)
    throw new Error('--demo needs at least 2 nodes (its pods run on node-1 and node-2)');
  const existing = readLabState(plan.dir);
  if (existing !== undefined) {
    if (existing.controller !== null && isRunning(existing.controller))
      throw new Error(
        `a lab (id ${existing.id}) is already running in ${plan.dir}; weft lab down --dir ${plan.dir} first`,
      );
    if (existing.phase !== 'stopped')
      throw new Error(
        `${plan.dir} holds lab ${existing.id}, which is no longer running (${existing.phase}); ` +
          `weft lab down --dir ${plan.dir} removes what is left of it`,
      );
    rmSync(stateFile(plan.dir)); // stopped cleanly: nothing left but the file
  }
  for (const d of [plan.manifestsDir, plan.logsDir]) mkdirSync(d, { recursive: true });
  if (options.demo) out(`demo manifests: ${copyDemoManifests(plan.manifestsDir).join(', ')}`);

  const log = openSync(plan.controllerLog, 'a');
  const args = [
    weftCliPath(),
    'lab',
    'run',
    '--dir',
    plan.dir,
    '--id',
    plan.id,
    '--nodes',
    String(options.nodes),
    '--pod-cidr-base',
    options.podCidrBase,
    '--service-cidr',
    options.serviceCidr,
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', log, log], detached: true });
  closeSync(log);
  let exit: string | undefined;
  child.once('exit', (code, signal) => (exit = signal ?? String(code)));
  out(`lab ${plan.id}: controller pid ${child.pid} (log ${plan.controllerLog})`);
  const deadline = Date.now() + UP_TIMEOUT_MS;
  try {
    while (Date.now() < deadline) {
      const state = readLabState(plan.dir);
      if (state !== undefined && state.controller?.pid === child.pid) {
        if (state.phase === 'ready') return state;
        if (state.phase === 'failed')
          throw new Error(`the lab failed to start: ${state.error ?? 'see the log'}`);
      }
      if (exit !== undefined)
        throw new Error(`the lab controller exited (${exit}) while starting${logTail(plan.controllerLog)}`);
      await sleep(POLL_MS);
    }
    throw new Error(`the lab was not ready after ${UP_TIMEOUT_MS} ms${logTail(plan.controllerLog)}`);
  } finally {
    child.unref();
  }
}
