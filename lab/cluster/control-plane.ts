// The mesh's own processes in the lab: the CA in node 1's namespace, listening on node 1's uplink IP,
// and one agent per node in that node's namespace, all fed by the lab's manifest folder. The argument
// lists are built in one place each (`caArgs`, `agentArgs`), so adding a flag is a one-line change.
import { labBpfPinRoot } from './names.js';
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { processAnswersReady } from './pod-runner.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { createNodeToken, NODE_TOKENS_FILE } from '../../ca/node-tokens.js';
import { formatHostPort } from '../../core/address.js';
import { CA_SERVER_NAME, caServeArgs } from '../ca-process.js';
import { weftCliPath } from '../processes.js';
import { spawnInNetns } from './children.js';
import type { LabNodePlan, LabPlan } from './plan.js';

const execFileAsync = promisify(execFile);

/** The parts start in about a second; 20 s means something is wrong (the log says what). */
export const START_TIMEOUT_MS = 20_000;
const PROBE_INTERVAL_MS = 100;
/** Lines of a part's log quoted when it fails to start. */
const LOG_TAIL_LINES = 15;
/** Agents' readiness endpoint inside their node's namespace (agent default port). */
export const AGENT_READY_URL = 'http://127.0.0.1:15021/healthz/ready';
/** How long a lab agent that stops (or is replaced) gives its open connections. */
export const AGENT_DRAIN_DEADLINE_MS = 4000;

/** `weft ca serve …` for the lab's CA. */
export function caArgs(lab: LabPlan): string[] {
  return caServeArgs(lab.caDir, lab.manifestsDir, formatHostPort(lab.ca.grpc), formatHostPort(lab.ca.http));
}

/**
 * `weft agent run …` for the agent of `node`. The one place the lab decides how an agent runs: its
 * listeners keep the agent defaults (admin 127.0.0.1:15000, HBONE :15008, metrics :15020, readiness
 * :15021), each in its node's own namespace.
 */
export function agentArgs(node: LabNodePlan, lab: LabPlan): string[] {
  return [
    'agent',
    'run',
    '--node',
    node.name,
    '--config',
    `file:${lab.manifestsDir}`,
    '--ca-address',
    formatHostPort(lab.ca.grpc),
    // TLS SNI may not carry an IP (RFC 6066): verify the CA by the DNS name its certificate carries.
    '--ca-server-name',
    CA_SERVER_NAME,
    '--ca-root',
    lab.ca.rootCertFile,
    '--token-file',
    node.tokenFile,
    // Transparent capture: each agent pins its programs and maps in its own directory of the lab.
    '--capture',
    '--bpffs',
    LAB_BPFFS,
    '--bpf-pin-dir',
    agentPinDir(lab, node),
    // Flows and config reachable from the root namespace, where `weft observe` runs.
    '--admin-socket',
    node.agentAdminSocket,
    // Certificates and keys kept across restarts (0700, root-only): a restarted agent serves at once.
    '--cert-cache',
    join(lab.dir, 'agent-certs', node.name),
    // Short, so `lab down` and a restart's overlap stay short; within the lab's stop grace.
    '--drain-deadline',
    `${AGENT_DRAIN_DEADLINE_MS}ms`,
  ];
}

/** The bpf filesystem the lab's agents pin into (mounted by the lab in the machine's mount namespace). */
export const LAB_BPFFS = '/sys/fs/bpf';

export function agentPinDir(lab: LabPlan, node: LabNodePlan): string {
  return `${labBpfPinRoot(lab.id)}/${node.name}`;
}

/** Starts `weft <args>` from this build in node namespace `netns`, sharing the machine's mounts. */
export function spawnWeftInNetns(netns: string, args: readonly string[], log: string): ChildProcess {
  // The lab reads the agents' access logs (tour, tests): they log at info whatever the caller's level.
  const env = { ...process.env, WEFT_LOG_LEVEL: process.env.WEFT_LAB_LOG_LEVEL ?? 'info' };
  // For profiling the mesh's processes (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`), which NODE_OPTIONS
  // does not allow.
  const nodeArgs = (process.env.WEFT_LAB_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
  return spawnInNetns(netns, [process.execPath, ...nodeArgs, weftCliPath(), ...args], {
    log,
    as: 'node',
    env,
  });
}

/** Writes node `node`'s bootstrap token (the CA must have created its state directory). */
export function writeNodeToken(lab: LabPlan, node: LabNodePlan): void {
  mkdirSync(lab.tokensDir, { recursive: true });
  writeFileSync(node.tokenFile, `${createNodeToken(join(lab.caDir, NODE_TOKENS_FILE), node.name)}\n`, {
    mode: 0o600,
  });
}

export function startAgent(lab: LabPlan, node: LabNodePlan): ChildProcess {
  mkdirSync(lab.adminDir, { recursive: true });
  return spawnWeftInNetns(node.netns, agentArgs(node, lab), node.agentLog);
}

/**
 * True when the agent with process id `pid` answers ready in `netns`. During a restart the old and the
 * new agent share the readiness port for a moment; the answer names the process that gave it.
 */
export function agentReadyInNetns(netns: string, pid: number): Promise<boolean> {
  return processAnswersReady(netns, AGENT_READY_URL, pid);
}

/** GET `url` from inside `netns`; true on a 2xx answer. */
export async function httpOkInNetns(netns: string, url: string): Promise<boolean> {
  try {
    await execFileAsync('ip', [
      'netns',
      'exec',
      netns,
      'curl',
      '-sf',
      '-o',
      '/dev/null',
      '--max-time',
      '2',
      url,
    ]);
    return true;
  } catch {
    return false;
  }
}

/**
 * Polls `probe` until true. Fails at once when `child` exits, and after `timeoutMs`; either way the
 * error quotes the end of `log`.
 */
export async function waitUntilReady(
  what: string,
  probe: () => Promise<boolean>,
  child: ChildProcess,
  log: string,
  timeoutMs = START_TIMEOUT_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`${what} exited (${child.exitCode ?? child.signalCode}) while starting${logTail(log)}`);
    if (await probe()) return;
    await sleep(PROBE_INTERVAL_MS);
  }
  throw new Error(`${what} not ready after ${timeoutMs} ms${logTail(log)}`);
}

export function logTail(log: string, lines = LOG_TAIL_LINES): string {
  try {
    const tail = readFileSync(log, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    return tail === '' ? ` (log ${log} is empty)` : `; the end of ${log}:\n${tail}`;
  } catch {
    return '';
  }
}
