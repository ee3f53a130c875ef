// The lab's control loop: makes the running pods match the Pod manifests in the folder, and gives
// objects what a real cluster's control plane would (a node for an unscheduled pod, a pod IP, a
// Service ClusterIP) by writing it back into the manifest, where the agents and the CA read it.
//
// Each pass: read the typed records (ConfigStore, fed by the folder's FileSource) and the raw manifests
// (for what the mesh does not model: the command and its environment); decide per pod; write back
// allocations; then start, restart or stop pods. A pod that still lacks a node or an IP is not started
// in the pass that allocates them: it starts in the pass after, once the store shows what was written,
// so the lab never runs a pod the mesh does not know about.
//
// Invariants: passes never overlap (a change during one schedules another); after `stop()` resolves
// no pass runs and no pod is left running.
//
// `restartWaypoint` replaces the process of each pod of a waypoint in place, without a gap (pod-runner.ts
// `handover`): the new process is current once its own readiness answer says ready.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isObject, type JsonObject } from '../../core/convert/fields.js';
import { formatRejection } from '../../core/convert/rejection.js';
import { errorMessage } from '../../core/errors.js';
import { componentLogger } from '../../core/log.js';
import { isTerminated, type Service, type Workload } from '../../core/model/index.js';
import type { ConfigStore } from '../../core/store.js';
import { GATEWAY_NAME_LABEL } from '../../core/waypoints.js';
import { WAYPOINT_DEFAULT_PORTS } from '../../proxy/options.js';
import { allocateAddress } from './ipam.js';
import {
  editObjectInFile,
  scanManifestFolder,
  type FieldPath,
  type ManifestLocation,
} from './manifest-folder.js';
import { podNetnsName, podVethName } from './names.js';
import { FIRST_POD_OFFSET, FIRST_SERVICE_OFFSET, type LabNodePlan, type LabPlan } from './plan.js';
import { labProblems, nodeForPod, podEnv, readPodRunSpec, resolveArgv } from './pod-spec.js';
import {
  HandoverRefused,
  PodRunner,
  processAnswersReady,
  type HandoverResult,
  type PodRun,
  type PodSysctl,
} from './pod-runner.js';
import type { PodState, ServiceState } from './state.js';
import type { LabStateWriter } from './state-writer.js';

const log = componentLogger('lab.controller');
/** If a write-back is not seen by the file source within this long, run a pass anyway. */
const WRITE_BACK_RECHECK_MS = 2000;
const SETTLE_POLL_MS = 100;
/** Where a waypoint pod's process answers whether it is ready (inside the pod's network namespace). */
const WAYPOINT_READY_URL = `http://127.0.0.1:${WAYPOINT_DEFAULT_PORTS.readiness}/healthz/ready`;

/** A request the controller cannot carry out: nothing to act on (404) or not now (409). */
export class PodActionError extends Error {
  constructor(
    readonly status: 404 | 409,
    message: string,
  ) {
    super(message);
  }
}

/** One waypoint pod replaced in place. */
export interface WaypointPodRestart extends HandoverResult {
  readonly pod: string;
}

interface DesiredPod {
  readonly namespace: string;
  readonly name: string;
  readonly node: LabNodePlan;
  readonly ip: string;
  readonly run: PodRun;
}

interface WriteBack {
  readonly location: ManifestLocation;
  readonly set: (readonly [FieldPath, unknown])[];
}

export class PodController {
  readonly #plan: LabPlan;
  readonly #store: ConfigStore;
  readonly #state: LabStateWriter;
  readonly #runners = new Map<string, PodRunner>();
  /** Pods that exist in the folder but do not run, and why. */
  #notes = new Map<string, PodState>();
  #services: ServiceState[] = [];
  #pass: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  /** Whether the last pass wrote allocations back (so another pass will follow). */
  #lastPassWrote = true;
  #recheckTimer: NodeJS.Timeout | undefined;

  constructor(plan: LabPlan, store: ConfigStore, state: LabStateWriter) {
    this.#plan = plan;
    this.#store = store;
    this.#state = state;
  }

  start(): void {
    this.#store.on('applied', this.#onApplied);
    this.schedule();
  }

  readonly #onApplied = (): void => this.schedule();

  /** Runs a pass now, or right after the one running. */
  schedule(): void {
    if (this.#stopped) return;
    if (this.#pass !== undefined) {
      this.#again = true;
      return;
    }
    this.#pass = this.#loop().finally(() => {
      this.#pass = undefined;
    });
  }

  async #loop(): Promise<void> {
    do {
      this.#again = false;
      try {
        await this.#reconcile();
      } catch (err) {
        log.error({ error: errorMessage(err) }, 'reconcile pass failed');
      }
    } while (this.#again && !this.#stopped);
  }

  /**
   * Resolves once allocations are written and seen, and every pod is past starting (ready, or known
   * not to be), or after `timeoutMs`. Returns whether it settled.
   */
  async settle(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const idle = this.#pass === undefined && !this.#lastPassWrote;
      if (idle && [...this.#runners.values()].every((r) => r.settled)) return true;
      await sleep(SETTLE_POLL_MS);
    }
    return false;
  }

  /**
   * Restarts every running pod of waypoint `namespace/name` (labelled with its gateway name) in place,
   * one after the other: each new process starts beside the old one and takes over once it answers
   * ready; the old one then drains and exits. Resolves once every old process has exited.
   */
  async restartWaypoint(namespace: string, name: string): Promise<WaypointPodRestart[]> {
    if (this.#stopped) throw new PodActionError(409, 'the lab is stopping');
    const runners = [...this.#runners.entries()].filter(
      ([, runner]) =>
        runner.options.namespace === namespace &&
        this.#store.workload(namespace, runner.options.name)?.labels[GATEWAY_NAME_LABEL] === name,
    );
    if (runners.length === 0)
      throw new PodActionError(
        404,
        `no running pod of waypoint ${namespace}/${name} (pods labelled ${GATEWAY_NAME_LABEL}=${name} in ${namespace})`,
      );
    const done: WaypointPodRestart[] = [];
    for (const [key, runner] of runners) {
      log.info({ pod: key }, 'waypoint restart: new process beside the old one');
      try {
        const result = await runner.handover((pid) =>
          processAnswersReady(runner.options.netns, WAYPOINT_READY_URL, pid),
        );
        log.info({ pod: key, ...result }, 'waypoint restart: done');
        done.push({ pod: key, ...result });
      } catch (err) {
        if (err instanceof HandoverRefused) throw new PodActionError(409, `${key}: ${err.message}`);
        throw new Error(`${key}: ${errorMessage(err)}`, { cause: err });
      }
    }
    return done;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#store.off('applied', this.#onApplied);
    if (this.#recheckTimer !== undefined) clearTimeout(this.#recheckTimer);
    await this.#pass;
    await Promise.all([...this.#runners.values()].map((r) => r.stop()));
    this.#runners.clear();
    this.#publish();
  }

  async #reconcile(): Promise<void> {
    const raw = scanManifestFolder(this.#plan.manifestsDir);
    const writes: WriteBack[] = [];
    this.#services = this.#reconcileServices(raw, writes);
    const { desired, notes } = this.#desiredPods(raw, writes);
    this.#notes = notes;
    for (const w of writes) {
      try {
        editObjectInFile(w.location.file, w.location.key, { set: w.set });
        log.info(
          {
            object: w.location.key,
            file: w.location.file,
            set: Object.fromEntries(w.set.map(([p, v]) => [p.join('.'), v])),
          },
          'wrote back',
        );
      } catch (err) {
        log.warn(
          { object: w.location.key, file: w.location.file, error: errorMessage(err) },
          'cannot write back',
        );
      }
    }
    this.#lastPassWrote = writes.length > 0;
    if (this.#lastPassWrote) {
      if (this.#recheckTimer !== undefined) clearTimeout(this.#recheckTimer);
      this.#recheckTimer = setTimeout(() => this.schedule(), WRITE_BACK_RECHECK_MS);
    }
    await this.#converge(desired);
    this.#publish();
  }

  #reconcileServices(raw: Map<string, ManifestLocation>, writes: WriteBack[]): ServiceState[] {
    const services: { location: ManifestLocation; service: Service }[] = [];
    const used = new Set<string>();
    for (const location of raw.values()) {
      if (location.key.kind !== 'Service') continue;
      const service = this.#store.service(location.key.namespace, location.key.name);
      if (service === undefined) continue;
      services.push({ location, service });
      for (const ip of service.clusterIps) used.add(ip);
    }
    const out: ServiceState[] = [];
    for (const { location, service } of services) {
      let clusterIps = service.clusterIps;
      if (service.type !== 'ExternalName' && !service.headless && clusterIps.length === 0) {
        const ip = allocateAddress(this.#plan.serviceCidr, used, FIRST_SERVICE_OFFSET);
        if (ip !== undefined) {
          used.add(ip);
          writes.push({ location, set: [[['spec', 'clusterIP'], ip]] });
          clusterIps = [ip];
        }
      }
      out.push({
        namespace: service.namespace,
        name: service.name,
        clusterIps,
        ports: service.ports.map((p) => `${p.port}/${p.protocol}->${p.targetPort}`),
      });
    }
    return out;
  }

  #desiredPods(
    raw: Map<string, ManifestLocation>,
    writes: WriteBack[],
  ): { desired: Map<string, DesiredPod>; notes: Map<string, PodState> } {
    const desired = new Map<string, DesiredPod>();
    const notes = new Map<string, PodState>();
    const pods = [...raw.values()]
      .filter((l) => l.key.kind === 'Pod')
      .map((location) => ({
        location,
        workload: this.#store.workload(location.key.namespace, location.key.name),
      }))
      .sort((a, b) => podKey(a.location.key).localeCompare(podKey(b.location.key)));
    // Who holds which IP: running pods keep theirs; then fixed or written IPs in name order.
    const owners = new Map<string, string>();
    for (const [key, runner] of this.#runners) owners.set(runner.options.ip, key);
    for (const { location, workload } of pods) {
      const ip = workload?.podIps[0];
      if (ip !== undefined && !owners.has(ip)) owners.set(ip, podKey(location.key));
    }
    const load = new Map<string, number>(this.#plan.nodes.map((n) => [n.name, 0]));
    for (const { workload } of pods) {
      const node = workload && nodeForPod(this.#plan, workload.nodeName, workload.podIps[0]);
      if (node !== undefined) load.set(node.name, (load.get(node.name) ?? 0) + 1);
    }

    for (const { location, workload } of pods) {
      const key = podKey(location.key);
      const note = (phase: PodState['phase'], message: string, node = '', ip = ''): void => {
        notes.set(key, this.#note(location, phase, message, node, ip));
      };
      const rejection = this.#store
        .allRejections()
        .find(
          (r) => r.kind === 'Pod' && r.namespace === location.key.namespace && r.name === location.key.name,
        );
      if (workload === undefined) {
        note('failed', rejection ? `rejected: ${formatRejection(rejection)}` : 'not loaded by the mesh yet');
        continue;
      }
      const runner = this.#runners.get(key);
      if (runner !== undefined) runner.notice = undefined;
      if (rejection !== undefined) {
        // The mesh keeps serving the last good version of a rejected object; so does the lab.
        const why = `rejected: ${formatRejection(rejection)}`;
        if (runner === undefined) note('failed', why);
        else {
          runner.notice = `${why}; the last good version keeps running`;
          const { namespace, name, node, ip } = runner.options;
          desired.set(key, { namespace, name, node, ip, run: runner.run });
        }
        continue;
      }
      if (isTerminated(workload)) {
        note('failed', `status.phase is ${workload.phase}: not run`);
        continue;
      }
      const problems = labProblems(this.#plan, location.manifest);
      if (problems.length > 0) {
        note('failed', problems.map((p) => `${p.field} ${p.reason}`).join('; '));
        continue;
      }
      let ip = workload.podIps[0];
      let node = nodeForPod(this.#plan, workload.nodeName, ip);
      const set: (readonly [FieldPath, unknown])[] = [];
      if (node === undefined) {
        // Unscheduled: the node with the fewest pods (the first of those), as a scheduler would spread them.
        node = [...this.#plan.nodes].sort((a, b) => (load.get(a.name) ?? 0) - (load.get(b.name) ?? 0))[0]!;
        load.set(node.name, (load.get(node.name) ?? 0) + 1);
        set.push([['spec', 'nodeName'], node.name]);
      }
      if (ip === undefined) {
        ip = allocateAddress(node.podCidr, new Set(owners.keys()), FIRST_POD_OFFSET);
        if (ip === undefined) {
          note('failed', `no free address left in ${node.name}'s pod CIDR ${node.podCidr.text}`, node.name);
          continue;
        }
        owners.set(ip, key);
        set.push([['status', 'podIP'], ip]);
      }
      if (set.length > 0) {
        writes.push({ location, set });
        note(
          'pending',
          `assigned ${set.map(([p, v]) => `${p.join('.')}=${String(v)}`).join(', ')}; starts once the mesh sees it`,
          node.name,
          ip,
        );
        continue;
      }
      if (owners.get(ip) !== key) {
        note('failed', `status.podIP ${ip} is already used by Pod ${owners.get(ip) ?? '?'}`, node.name, ip);
        continue;
      }
      const spec = readPodRunSpec(location.manifest);
      if ('reason' in spec) continue; // labProblems reported it
      desired.set(key, {
        namespace: location.key.namespace,
        name: location.key.name,
        node,
        ip,
        run: {
          argv: resolveArgv(spec.argv),
          env: podEnv(spec, podFacts(workload, node, ip)),
          cwd: spec.workingDir ?? this.#plan.dir,
          tcpPorts: workload.containerPorts.filter((p) => p.protocol === 'TCP').map((p) => p.port),
          sysctls: podSysctls(location.manifest),
        },
      });
    }
    return { desired, notes };
  }

  #note(
    location: ManifestLocation,
    phase: PodState['phase'],
    message: string,
    node: string,
    ip: string,
  ): PodState {
    const { namespace, name } = location.key;
    return {
      namespace,
      name,
      node,
      ip,
      netns: '',
      veth: podVethName(namespace, name),
      phase,
      process: null,
      restarts: 0,
      command: [],
      log: this.#podLog(namespace, name),
      message,
    };
  }

  #podLog(namespace: string, name: string): string {
    return join(this.#plan.podLogsDir, `${namespace}_${name}.log`);
  }

  async #converge(desired: Map<string, DesiredPod>): Promise<void> {
    const actions: Promise<void>[] = [];
    const handled = new Set<string>();
    for (const [key, runner] of this.#runners) {
      handled.add(key);
      const want = desired.get(key);
      if (want !== undefined && want.node === runner.options.node && want.ip === runner.options.ip) {
        if (!sameRun(want.run, runner.run)) {
          log.info({ pod: key }, 'command changed: restarting');
          actions.push(runner.restartWith(want.run));
        }
        continue;
      }
      this.#runners.delete(key);
      log.info({ pod: key }, want === undefined ? 'pod removed: stopping' : 'pod moved: recreating');
      actions.push(
        runner
          .stop()
          .then(() => (want !== undefined && !this.#stopped ? this.#startPod(key, want) : undefined)),
      );
    }
    for (const [key, want] of desired) if (!handled.has(key)) actions.push(this.#startPod(key, want));
    await Promise.all(actions);
  }

  async #startPod(key: string, want: DesiredPod): Promise<void> {
    if (this.#runners.has(key)) return;
    const runner = new PodRunner(
      {
        namespace: want.namespace,
        name: want.name,
        node: want.node,
        ip: want.ip,
        netns: podNetnsName(this.#plan.id, want.namespace, want.name),
        veth: podVethName(want.namespace, want.name),
        log: this.#podLog(want.namespace, want.name),
        recorder: this.#state,
        onProcess: (started, ended) => this.#state.process(started, ended),
        onChange: () => this.#publish(),
      },
      want.run,
    );
    this.#runners.set(key, runner);
    log.info({ pod: key, node: want.node.name, ip: want.ip, argv: want.run.argv }, 'starting pod');
    try {
      await runner.start();
    } catch (err) {
      this.#runners.delete(key);
      this.#notes.set(key, {
        ...runner.snapshot(),
        phase: 'failed',
        message: `cannot start: ${errorMessage(err)}`,
      });
      log.error({ pod: key, error: errorMessage(err) }, 'cannot start pod');
    }
  }

  #publish(): void {
    const pods = [...this.#notes.values()].filter((n) => !this.#runners.has(`${n.namespace}/${n.name}`));
    for (const runner of this.#runners.values()) pods.push(runner.snapshot());
    pods.sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
    this.#state.update({ pods, services: this.#services });
  }
}

/**
 * `spec.securityContext.sysctls` of a Pod manifest (entries that are not a name and a string value are
 * left out; the pod runner sets network ones only).
 */
function podSysctls(manifest: JsonObject): PodSysctl[] {
  const spec = isObject(manifest.spec) ? manifest.spec : {};
  const context = isObject(spec.securityContext) ? spec.securityContext : {};
  if (!Array.isArray(context.sysctls)) return [];
  const out: PodSysctl[] = [];
  for (const entry of context.sysctls as unknown[]) {
    if (!isObject(entry) || typeof entry.name !== 'string') continue;
    const value = entry.value;
    if (typeof value === 'string' || typeof value === 'number')
      out.push({ name: entry.name, value: String(value) });
  }
  return out;
}

function podKey(key: { namespace: string; name: string }): string {
  return `${key.namespace}/${key.name}`;
}

function podFacts(workload: Workload, node: LabNodePlan, ip: string) {
  return {
    namespace: workload.namespace,
    name: workload.name,
    serviceAccount: workload.serviceAccount,
    node,
    ip,
    labels: workload.labels,
  };
}

function sameRun(a: PodRun, b: PodRun): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
