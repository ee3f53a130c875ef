// The controller's side of the state file: one object in memory, written out whole on every change.
// It is also the ResourceRecorder the topology reports to, so a namespace or link is on disk before
// it exists.
import type { LabOptions, LabPlan } from './plan.js';
import {
  LAB_STATE_VERSION,
  writeLabState,
  type LabState,
  type NodeState,
  type ProcessRecord,
} from './state.js';
import type { ResourceRecorder } from './topology.js';

export type AgentChange = Partial<Pick<NodeState, 'agent' | 'agentPhase' | 'agentRestarts' | 'agentMessage'>>;

type Writable<T> = { -readonly [K in keyof T]: T[K] };

export function initialLabState(plan: LabPlan, options: LabOptions, controller: ProcessRecord): LabState {
  const caNode = plan.nodes[plan.ca.nodeIndex]!;
  return {
    version: LAB_STATE_VERSION,
    id: plan.id,
    dir: plan.dir,
    phase: 'starting',
    startedAt: new Date().toISOString(),
    options: { ...options, dir: plan.dir },
    controller,
    manifestsDir: plan.manifestsDir,
    logsDir: plan.logsDir,
    caDir: plan.caDir,
    fabric: plan.fabric,
    nodes: plan.nodes.map((n): NodeState => ({
      name: n.name,
      netns: n.netns,
      uplink: n.uplink,
      fabricPort: n.fabricPort,
      uplinkIp: n.uplinkIp,
      podCidr: n.podCidr.text,
      gateway: n.gateway,
      agent: null,
      agentPhase: 'starting',
      agentRestarts: 0,
    })),
    ca: {
      node: caNode.name,
      grpc: `${plan.ca.grpc.host}:${plan.ca.grpc.port}`,
      http: `${plan.ca.http.host}:${plan.ca.http.port}`,
      rootCertFile: plan.ca.rootCertFile,
      process: null,
    },
    pods: [],
    services: [],
    netns: [],
    links: [],
    processes: [controller],
    bpfPinDirs: [],
  };
}

export class LabStateWriter implements ResourceRecorder {
  readonly #dir: string;
  readonly #state: Writable<LabState>;

  constructor(dir: string, initial: LabState) {
    this.#dir = dir;
    this.#state = { ...initial };
    this.save();
  }

  get state(): LabState {
    return this.#state;
  }

  update(change: Partial<LabState>): void {
    Object.assign(this.#state, change);
    this.save();
  }

  netns(name: string): void {
    if (this.#state.netns.includes(name)) return;
    this.update({ netns: [...this.#state.netns, name] });
  }

  link(netns: string, name: string): void {
    if (this.#state.links.some((l) => l.netns === netns && l.name === name)) return;
    this.update({ links: [...this.#state.links, { netns, name }] });
  }

  /** Records a started process and forgets an ended one (either may be null). */
  process(started: ProcessRecord | null, ended: ProcessRecord | null): void {
    let processes = this.#state.processes;
    if (ended !== null) processes = processes.filter((p) => p.pid !== ended.pid);
    if (started !== null) processes = [...processes, started];
    this.update({ processes });
  }

  /** Changes what the state says about node `nodeName`'s agent. */
  setAgent(nodeName: string, change: AgentChange): void {
    this.update({ nodes: this.#state.nodes.map((n) => (n.name === nodeName ? { ...n, ...change } : n)) });
  }

  /** Adds pinned BPF paths for `weft lab down` to remove (the capture integration calls this). */
  addBpfPinDir(path: string): void {
    if (this.#state.bpfPinDirs.includes(path)) return;
    this.update({ bpfPinDirs: [...this.#state.bpfPinDirs, path] });
  }

  save(): void {
    writeLabState(this.#dir, this.#state);
  }
}
