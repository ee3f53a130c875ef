// `weft lab run`: the lab's controller process. Wiring only: records itself in the state file, builds
// the network, starts the CA and the agents, then runs the pod controller on the manifest folder until
// SIGTERM/SIGINT, when it stops everything it started and removes its namespaces. `weft lab up` starts
// this process in the background and waits for the state file to say `ready`.
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import type { Server } from 'node:http';
import { labBpfPinRoot } from './names.js';
import { errorMessage } from '../../core/errors.js';
import { componentLogger } from '../../core/log.js';
import { FileSource } from '../../core/sources/file.js';
import { ConfigStore } from '../../core/store.js';
import { AgentSupervisor } from './agent-supervisor.js';
import { CaSupervisor } from './ca-supervisor.js';
import { ControlError, controlSocketProblem, serveControl } from './control-socket.js';
import { agentPinDir, LAB_BPFFS, writeNodeToken } from './control-plane.js';
import { PodActionError, PodController } from './controller.js';
import { planLab, type LabOptions } from './plan.js';
import { isRunning, readLabState, recordProcess } from './state.js';
import { initialLabState, LabStateWriter } from './state-writer.js';
import { sweepLab } from './teardown.js';
import { createFabric, createNode } from './topology.js';

const log = componentLogger('lab');
/** How long the first pods may take to get addresses and open their ports before the lab says ready. */
const PODS_SETTLE_TIMEOUT_MS = 30_000;

class Stopped extends Error {}

export async function runLab(options: LabOptions): Promise<number> {
  const plan = planLab(options);
  const previous = readLabState(plan.dir);
  if (previous?.controller && previous.controller.pid !== process.pid && isRunning(previous.controller))
    throw new Error(`a lab (id ${previous.id}) is already running in ${plan.dir}`);
  for (const d of [plan.manifestsDir, plan.podLogsDir, plan.tokensDir]) mkdirSync(d, { recursive: true });
  const state = new LabStateWriter(
    plan.dir,
    initialLabState(plan, options, recordProcess('controller', process.pid)),
  );

  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    log.info({ signal }, 'lab stopping');
    stop.abort();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const checkpoint = (): void => {
    if (stop.signal.aborted) throw new Stopped('stopped while starting');
  };

  let source: FileSource | undefined;
  let controller: PodController | undefined;
  const agents = new Map<string, AgentSupervisor>();
  let ca: CaSupervisor | undefined;
  let control: Server | undefined;

  let exitCode = 0;
  try {
    await createFabric(plan, state);
    for (const node of plan.nodes) await createNode(plan, node, state);
    checkpoint();

    ca = new CaSupervisor(plan, state);
    await ca.start();
    checkpoint();

    // Capture pins live in a bpf filesystem of the machine's mount namespace, so they outlive an agent
    // process and `weft lab down` can remove them.
    await ensureBpffs(LAB_BPFFS);
    // The lab's root pin directory holds the nodes' ones; recording it lets `down` remove it whole.
    state.addBpfPinDir(labBpfPinRoot(plan.id));
    for (const node of plan.nodes) state.addBpfPinDir(agentPinDir(plan, node));
    for (const node of plan.nodes) {
      writeNodeToken(plan, node);
      agents.set(node.name, new AgentSupervisor(plan, node, state));
    }
    await Promise.all([...agents.values()].map((agent) => agent.start()));
    checkpoint();

    const store = new ConfigStore();
    source = new FileSource(plan.manifestsDir);
    await source.start(store);
    controller = new PodController(plan, store, state);
    controller.start();
    if (!(await controller.settle(PODS_SETTLE_TIMEOUT_MS)))
      log.warn({ timeoutMs: PODS_SETTLE_TIMEOUT_MS }, 'pods still starting; the lab is up anyway');
    checkpoint();
    control = await serveAgentControl(plan.dir, agents, controller, ca);
    state.update({ phase: 'ready' });
    log.info({ id: plan.id, dir: plan.dir }, 'lab ready');
    await new Promise((resolve) => stop.signal.addEventListener('abort', resolve, { once: true }));
  } catch (err) {
    if (!(err instanceof Stopped)) {
      exitCode = 1;
      log.error({ error: errorMessage(err) }, 'lab failed');
      state.update({ phase: 'failed', error: errorMessage(err) });
    }
  }

  // Stop in the reverse order of starting: pods, then the config source, agents and CA, then the network.
  if (state.state.phase !== 'failed') state.update({ phase: 'stopping' });
  stop.abort();
  await controller
    ?.stop()
    .catch((err: unknown) => log.error({ error: errorMessage(err) }, 'stopping pods failed'));
  control?.close();
  await source?.stop();
  await Promise.all([...agents.values()].map((agent) => agent.shutdown()));
  await ca?.shutdown();
  await sweepLab(state.state, process.pid);
  state.update({ phase: exitCode === 0 ? 'stopped' : 'failed', processes: [], pods: [] });
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  return exitCode;
}

/**
 * Serves `weft lab agent stop|start|restart NODE` on the lab's control socket. Without one (the lab's
 * path is too long for a Unix socket) the lab runs anyway, and the command says why it cannot reach it.
 */
async function serveAgentControl(
  dir: string,
  agents: Map<string, AgentSupervisor>,
  pods?: PodController,
  ca?: CaSupervisor,
): Promise<Server | undefined> {
  const problem = controlSocketProblem(dir);
  if (problem !== undefined) {
    log.warn({ problem }, 'no control socket: weft lab agent will not reach this lab');
    return undefined;
  }
  return serveControl(dir, {
    async agent(node, action) {
      const agent = agents.get(node);
      if (agent === undefined)
        throw new ControlError(404, `no node ${node} in this lab (nodes: ${[...agents.keys()].join(', ')})`);
      log.info({ node, action }, 'agent command');
      if (action === 'kill') return { node, action, done: true, killed: agent.kill() };
      await agent[action]();
      return { node, action, done: true };
    },
    // `weft lab restart ca`: a new CA prepared beside the old one, which then hands over its ports.
    ...(ca && {
      async ca(action: 'restart') {
        log.info({ action }, 'ca command');
        return { action, ...(await ca.restart()) };
      },
    }),
    // `weft lab restart waypoint`: each pod of the waypoint gets a new process beside the old one.
    ...(pods && {
      async waypoint(namespace: string, name: string, action: 'restart') {
        log.info({ waypoint: `${namespace}/${name}`, action }, 'waypoint command');
        try {
          return {
            waypoint: `${namespace}/${name}`,
            action,
            pods: await pods.restartWaypoint(namespace, name),
          };
        } catch (err) {
          if (err instanceof PodActionError) throw new ControlError(err.status, err.message);
          throw err;
        }
      },
    }),
  });
}

/** Mounts a bpf filesystem at `path` unless one is there. */
async function ensureBpffs(path: string): Promise<void> {
  const mounted = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[1] === path && line.split(' ')[2] === 'bpf');
  if (mounted) return;
  mkdirSync(path, { recursive: true });
  await promisify(execFile)('mount', ['-t', 'bpf', 'bpf', path]);
}
