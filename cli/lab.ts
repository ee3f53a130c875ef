// `weft lab up|down|status|exec|agent|workload|run`
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { resolve } from 'node:path';
import { constants } from 'node:os';
import { labDown, labIdsOnMachine } from '../lab/cluster/teardown.js';
import { labUp } from '../lab/cluster/up.js';
import { runLab } from '../lab/cluster/main.js';
import { runTour } from '../lab/cluster/tour.js';
import { formatLabStatus, labStatusJson } from '../lab/cluster/status.js';
import { readLabState } from '../lab/cluster/state.js';
import { AGENT_ACTIONS, CA_REQUEST_TIMEOUT_MS, sendControl } from '../lab/cluster/control-socket.js';
import type { CaRestart } from '../lab/cluster/ca-supervisor.js';
import { labFaultCommand, LAB_FAULT_USAGE } from './lab-fault.js';
import { labDirFlag } from './lab-dir.js';
import { LAB_RESTART_WAYPOINT_USAGE, labRestartWaypoint } from './lab-restart-waypoint.js';
import { newLabId } from '../lab/cluster/names.js';
import {
  DEFAULT_LAB_DIR,
  DEFAULT_NODES,
  DEFAULT_POD_CIDR_BASE,
  DEFAULT_SERVICE_CIDR,
  labOptionsProblem,
  type LabOptions,
} from '../lab/cluster/plan.js';
import { echoIdentityFromEnv, runEcho } from '../lab/workloads/echo.js';
import { runTcpEcho } from '../lab/workloads/tcp-echo.js';
import { parseFlags, parseFlagsAndArgs, stringFlag, UsageError, type FlagSpec } from './flags.js';

export const LAB_USAGE = `weft lab up [--nodes 2] [--demo] [--dir DIR] [--pod-cidr-base 10.77] [--service-cidr 10.96.0.0/16]
               builds the lab (root): nodes and pods as network namespaces, the CA, one agent per node;
               returns once ready and leaves it running in the background
weft lab down [--dir DIR] [--keep-files] [--id ID]   removes everything the lab made (also after a crash)
weft lab status [--dir DIR] [--json]
weft lab exec [--dir DIR] NAMESPACE/POD|NODE -- CMD [ARG…]   runs CMD in that pod's (or node's) network namespace
weft lab agent stop|start|restart|kill NODE [--dir DIR]   stops (and holds down), starts, restarts or kills
               (SIGKILL) a node's agent; restart replaces it without a gap (the new one takes over steering,
               the old one drains); an agent that ends on its own is restarted at once, then after 1 s doubling to 30 s
weft lab restart agent --node NODE [--dir DIR]   the same as weft lab agent restart NODE
weft lab restart ca [--dir DIR]   replaces the CA: the new one gets ready beside the old one, which then
               finishes its calls and hands over its ports (agents keep serving; a CSR in between is retried)
${LAB_RESTART_WAYPOINT_USAGE}
${LAB_FAULT_USAGE}
weft lab run [flags of up]   the lab in the foreground until Ctrl-C (what up starts in the background)
weft lab tour [--dir DIR] [--expect-mesh]   after up --demo: a request before and after enrolling the namespace
weft lab workload echo [--port 8080] [--host 0.0.0.0] [--service NAME] [--version V]   (inside a pod)
weft lab workload tcp-echo [--port 9000] [--host 0.0.0.0]
               DIR defaults to $WEFT_LAB_DIR, else ${DEFAULT_LAB_DIR}`;

const DIR_FLAG: FlagSpec = { dir: { type: 'string' } };

export { labDirFlag };

function labOptions(f: Record<string, unknown>): LabOptions {
  const nodesText = stringFlag(f, 'nodes', String(DEFAULT_NODES));
  if (!/^\d+$/.test(nodesText)) throw new UsageError(`--nodes: expected a number, got ${nodesText}`);
  const options: LabOptions = {
    id: stringFlag(f, 'id', newLabId()),
    dir: labDirFlag(f),
    nodes: Number(nodesText),
    podCidrBase: stringFlag(f, 'pod-cidr-base', DEFAULT_POD_CIDR_BASE),
    serviceCidr: stringFlag(f, 'service-cidr', DEFAULT_SERVICE_CIDR),
  };
  const problem = labOptionsProblem(options);
  if (problem !== undefined) throw new UsageError(problem);
  return options;
}

const TOPOLOGY_FLAGS: FlagSpec = {
  ...DIR_FLAG,
  id: { type: 'string' },
  nodes: { type: 'string' },
  'pod-cidr-base': { type: 'string' },
  'service-cidr': { type: 'string' },
};

function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new Error('the lab needs root (network namespaces, veth, bridges)');
}

async function up(argv: string[]): Promise<number> {
  const f = parseFlags(argv, { ...TOPOLOGY_FLAGS, demo: { type: 'boolean' } });
  const options = labOptions(f);
  requireRoot();
  const out = (line: string): void => void process.stdout.write(`${line}\n`);
  try {
    const state = await labUp({ ...options, demo: f.demo === true }, out);
    out('');
    out(formatLabStatus(state));
    out('');
    if (f.demo === true)
      out(`next: weft lab tour${dirHint(options.dir)} (enrols the demo namespace and shows a request)`);
    out(`the lab keeps running in the background; weft lab down${dirHint(options.dir)} removes it`);
    return 0;
  } catch (err) {
    process.stderr.write(`weft: ${(err as Error).message}\n`);
    process.stderr.write(`weft: weft lab down${dirHint(options.dir)} removes whatever was made\n`);
    return 1;
  }
}

function dirHint(dir: string): string {
  return dir === resolve(process.env.WEFT_LAB_DIR || DEFAULT_LAB_DIR) ? '' : ` --dir ${dir}`;
}

async function run(argv: string[]): Promise<number> {
  const options = labOptions(parseFlags(argv, TOPOLOGY_FLAGS));
  requireRoot();
  return runLab(options);
}

async function down(argv: string[]): Promise<number> {
  const f = parseFlags(argv, { ...DIR_FLAG, 'keep-files': { type: 'boolean' }, id: { type: 'string' } });
  const dir = labDirFlag(f);
  requireRoot();
  const report = await labDown(dir, {
    keepFiles: f['keep-files'] === true,
    ...(typeof f.id === 'string' ? { id: f.id } : {}),
  });
  if (report.id === undefined) {
    const others = await labIdsOnMachine();
    process.stdout.write(`no lab in ${dir}: nothing to do\n`);
    if (others.length > 0)
      process.stdout.write(
        `(network namespaces of lab ${others.join(', ')} exist; weft lab down --id ID removes one whose state is lost)\n`,
      );
    return 0;
  }
  const lines = [
    `lab ${report.id}: ${report.controllerWasRunning ? 'controller stopped' : 'controller was not running'}`,
    `  processes stopped: ${report.stoppedProcesses}`,
    `  network namespaces deleted: ${report.deletedNetns.length === 0 ? 'none left' : report.deletedNetns.join(' ')}`,
  ];
  if (report.removedPins.length > 0)
    lines.push(`  pinned BPF paths removed: ${report.removedPins.join(' ')}`);
  if (report.leftovers.length > 0) {
    lines.push(`  STILL THERE: ${report.leftovers.join('; ')}`);
    process.stdout.write(`${lines.join('\n')}\n`);
    return 1;
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

function status(argv: string[]): number {
  const f = parseFlags(argv, { ...DIR_FLAG, json: { type: 'boolean' } });
  const dir = labDirFlag(f);
  const state = readLabState(dir);
  if (state === undefined) {
    if (f.json === true) process.stdout.write('null\n');
    else process.stdout.write(`no lab in ${dir}\n`);
    return 3;
  }
  process.stdout.write(
    f.json === true ? `${JSON.stringify(labStatusJson(state), null, 2)}\n` : `${formatLabStatus(state)}\n`,
  );
  return 0;
}

async function exec(argv: string[]): Promise<number> {
  const dash = argv.indexOf('--');
  if (dash === -1 || dash === argv.length - 1)
    throw new UsageError(`weft lab exec needs -- CMD\n\n${LAB_USAGE}`);
  const { values, positionals } = parseFlagsAndArgs(argv.slice(0, dash), DIR_FLAG);
  const target = positionals[0];
  if (target === undefined || positionals.length > 1)
    throw new UsageError('weft lab exec NAMESPACE/POD|NODE -- CMD');
  const dir = labDirFlag(values);
  const state = readLabState(dir);
  if (state === undefined) throw new Error(`no lab in ${dir}`);
  let netns: string | undefined;
  if (target.includes('/')) {
    const [namespace, name] = target.split('/', 2);
    const pod = state.pods.find((p) => p.namespace === namespace && p.name === name);
    if (pod === undefined)
      throw new Error(`no pod ${target} in lab ${state.id} (weft lab status lists them)`);
    if (pod.netns === '')
      throw new Error(`pod ${target} has no network yet (${pod.phase}: ${pod.message ?? ''})`);
    netns = pod.netns;
  } else {
    netns = target === 'fabric' ? state.fabric.netns : state.nodes.find((n) => n.name === target)?.netns;
    if (netns === undefined) throw new Error(`no node ${target} in lab ${state.id}`);
  }
  const child = spawn('ip', ['netns', 'exec', netns, ...argv.slice(dash + 1)], { stdio: 'inherit' });
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  return code ?? 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0));
}

async function agent(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlagsAndArgs(argv, DIR_FLAG);
  const [action, node] = positionals;
  if (action === undefined || !AGENT_ACTIONS.includes(action) || node === undefined || positionals.length > 2)
    throw new UsageError(`weft lab agent stop|start|restart|kill NODE\n\n${LAB_USAGE}`);
  const dir = labDirFlag(values);
  const answer = await sendControl(dir, `/v1/agents/${encodeURIComponent(node)}/${action}`);
  if (answer.status !== 200) {
    const error = (answer.body as { error?: unknown } | null)?.error;
    process.stderr.write(`weft: ${typeof error === 'string' ? error : JSON.stringify(answer.body)}\n`);
    return 1;
  }
  const after = readLabState(dir)?.nodes.find((n) => n.name === node);
  const pid = after?.agent?.pid;
  process.stdout.write(
    `agent of ${node}: ${after?.agentPhase ?? 'unknown'}${pid === undefined ? '' : ` (pid ${pid})`}\n`,
  );
  return 0;
}

/** `weft lab restart agent --node N`. */
async function restart(argv: string[]): Promise<number> {
  const [what, ...rest] = argv;
  if (what === 'agent') {
    const { values, positionals } = parseFlagsAndArgs(rest, { ...DIR_FLAG, node: { type: 'string' } });
    if (positionals.length > 0 || typeof values.node !== 'string')
      throw new UsageError(`weft lab restart agent --node NODE [--dir DIR]\n\n${LAB_USAGE}`);
    return agent(['restart', values.node, ...(typeof values.dir === 'string' ? ['--dir', values.dir] : [])]);
  }
  if (what === 'waypoint') return labRestartWaypoint(rest);
  if (what === 'ca') return restartCa(rest);
  throw new UsageError(`weft lab restart: expected agent, waypoint or ca\n\n${LAB_USAGE}`);
}

/** `weft lab restart ca`: a new CA prepared beside the old one, which then hands over its ports. */
async function restartCa(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlagsAndArgs(argv, DIR_FLAG);
  if (positionals.length > 0) throw new UsageError(`weft lab restart ca [--dir DIR]\n\n${LAB_USAGE}`);
  const answer = await sendControl(labDirFlag(values), '/v1/ca/restart', CA_REQUEST_TIMEOUT_MS);
  const body = answer.body as Partial<CaRestart> & { error?: unknown };
  if (answer.status !== 200) {
    process.stderr.write(`weft: ${typeof body.error === 'string' ? body.error : JSON.stringify(body)}\n`);
    return 1;
  }
  process.stdout.write(
    `ca: pid ${body.oldPid ?? '-'} -> ${body.newPid ?? '-'}: the new one prepared in ${body.preparedMs} ms ` +
      `while the old one served; the new one ready ${body.handoverMs} ms after the old one was told to stop\n`,
  );
  return 0;
}

function portFlag(f: Record<string, unknown>, fallback: number): number {
  const text = stringFlag(f, 'port', String(fallback));
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535)
    throw new UsageError(`--port: expected a port number, got ${text}`);
  return port;
}

async function tour(argv: string[]): Promise<number> {
  const f = parseFlags(argv, { ...DIR_FLAG, 'expect-mesh': { type: 'boolean' } });
  requireRoot();
  const result = await runTour(labDirFlag(f), (line) => void process.stdout.write(`${line}\n`));
  return f['expect-mesh'] === true && !result.meshed ? 1 : 0;
}

async function workload(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const out = (line: string): void => void process.stdout.write(`${line}\n`);
  if (name === 'echo') {
    const f = parseFlags(rest, {
      port: { type: 'string' },
      host: { type: 'string' },
      service: { type: 'string' },
      version: { type: 'string' },
      pod: { type: 'string' },
      namespace: { type: 'string' },
    });
    const env = echoIdentityFromEnv();
    await runEcho(
      {
        host: stringFlag(f, 'host', '0.0.0.0'),
        port: portFlag(f, 8080),
        identity: {
          pod: stringFlag(f, 'pod', env.pod),
          namespace: stringFlag(f, 'namespace', env.namespace),
          service: stringFlag(f, 'service', env.service),
          version: stringFlag(f, 'version', env.version),
          node: env.node,
        },
      },
      out,
    );
    return 0;
  }
  if (name === 'tcp-echo') {
    const f = parseFlags(rest, { port: { type: 'string' }, host: { type: 'string' } });
    await runTcpEcho({ host: stringFlag(f, 'host', '0.0.0.0'), port: portFlag(f, 9000) }, out);
    return 0;
  }
  throw new UsageError(`weft lab workload: expected echo or tcp-echo\n\n${LAB_USAGE}`);
}

export async function labCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'up':
      return up(rest);
    case 'down':
      return down(rest);
    case 'status':
      return status(rest);
    case 'exec':
      return exec(rest);
    case 'workload':
      return workload(rest);
    case 'tour':
      return tour(rest);
    case 'agent':
      return agent(rest);
    case 'restart':
      return restart(rest);
    case 'fault':
      await labFaultCommand(rest);
      return 0;
    case 'run':
      return run(rest);
    default:
      throw new UsageError(LAB_USAGE);
  }
}
