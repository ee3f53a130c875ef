// `weft bench chaos`: the mesh's own parts restarted, or killed, under load. A real `weft lab` with the
// demo, its namespace enrolled and bound to a waypoint, so the load from the client pod (node-1) to
// echo-v2 (node-2) crosses node-1's agent, the waypoint and node-2's agent. While `weft bench
// chaos-client` runs in the client pod (keep-alive HTTP/1.1 that retries as real clients do, a new
// connection per request, long-lived echo streams, a 50 ms outage probe; see chaos/client.ts), the bench
// replaces, one after another, the agent of node-1, the agent of node-2 and the waypoint:
//
// - restart mode: `weft lab restart agent --node N`, `weft lab restart waypoint` (a new process beside
//   the old, which drains): the target is no failed request;
// - kill mode: `weft lab agent kill N` (SIGKILL; the lab starts a new agent at once) and SIGKILL to the
//   waypoint pod's process (the lab restarts it at once): the outage each causes, from the probes, and
//   how long the new process took from its start to ready and to serving.
//
// In both, tcpdump on both node uplinks for the whole run looks for the run's marker (in every request
// path and stream line) in every packet between the nodes: none may hold it, or an enrolled pod's bytes
// left it in plaintext. A control string sent in plaintext between the nodes on purpose, and the count of
// packets on :15008, show the capture saw payloads and the load.
import { describeCommit } from './commit.js';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync, openSync, readSync, closeSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { formatHostPort, type HostPort } from '../core/address.js';
import { AGENT_DRAIN_DEADLINE_MS } from '../lab/cluster/control-plane.js';
import { demoManifestsDir } from '../lab/cluster/demo.js';
import { isRunning, type PodState } from '../lab/cluster/state.js';
import { listNetns } from '../lab/cluster/topology.js';
import type { BenchLab } from './bench-lab.js';
import { withBenchLab } from './bench-lab.js';
import {
  drainsFromLog,
  eventWindows,
  failedRequests,
  outages,
  perSecond,
  processStartFromLog,
  summarizeStreams,
  windowFigures,
  type ChaosEvent,
  type ChaosMode,
  type LoggedDrain,
} from './chaos/analysis.js';
import type { ChaosClientResult, ChaosClientStarted, ChaosLoads } from './chaos/client.js';
import { CpuWatch, type CpuUse } from './chaos/cpu-watch.js';
import { LinkCapture, type LinkCaptureResult } from './chaos/link-capture.js';
import type { LoadErrorKind } from './load/types.js';
import {
  isSustained,
  loadTotals,
  scenarioCriteria,
  scenarioProblems,
  type ChaosReport,
  type ChaosScenarioResult,
} from './chaos/result.js';

const NAMESPACE = 'default';
const CLIENT = `${NAMESPACE}/client`;
const WAYPOINT = 'waypoint';
const WAYPOINT_POD = `${NAMESPACE}/${WAYPOINT}-0`;
/** A Service of echo-v2 alone (node-2), so every request crosses both nodes. */
const HTTP_SERVICE = 'chaos-echo';
const TCP_SERVICE = 'tcp-echo';
const NODES = ['node-1', 'node-2'] as const;
/** How long a killed process may take to be replaced by a ready one. */
const REPLACE_TIMEOUT_MS = 30_000;
/** How long the client may take to stop and print its result once told to. */
const CLIENT_STOP_TIMEOUT_MS = 30_000;
/** Failed requests listed one by one in the result (all are counted). */
const MAX_FAILURES_LISTED = 200;
/** The readiness port every agent listens on: the target of the plaintext control request. */
const AGENT_READINESS_PORT = 15021;

const CHAOS_SERVICE_YAML = `# weft bench chaos: echo-v2 alone behind a Service, so every request crosses both nodes.
apiVersion: v1
kind: Service
metadata:
  name: ${HTTP_SERVICE}
  namespace: ${NAMESPACE}
spec:
  selector:
    app: echo
    version: v2
  ports:
    - name: http
      port: 80
      targetPort: 8080
`;

export interface ChaosOptions extends ChaosLoads {
  readonly modes: readonly ChaosMode[];
  /** The measured run's least length; the events are spread over it. */
  readonly durationMs: number;
  /** At least this long between one event's end and the next one's start, and after the last. */
  readonly gapMs: number;
  /**
   * The client under chrt -f (fixed-rate latency measured from the schedule, bench/load/scheduler.ts);
   * off where other jobs share the machine (the test): a real-time process must never be able to keep
   * the CPUs from everything else.
   */
  readonly realtime: boolean;
  readonly command: string;
  readonly out: (line: string) => void;
}

function ms(value: number): string {
  return `${Math.round(value)}ms`;
}

/** The bytes of `file` from `offset` on (the part a run appended). */
function readFrom(file: string, offset: number): string {
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    return '';
  }
  if (size <= offset) return '';
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(size - offset);
    readSync(fd, buf, 0, buf.length, offset);
    return buf.toString('utf8');
  } finally {
    closeSync(fd);
  }
}

function sizeOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** Lines of `text` that hold every one of `parts`. */
function countLines(text: string, ...parts: string[]): number {
  let n = 0;
  for (const line of text.split('\n')) if (parts.every((p) => line.includes(p))) n++;
  return n;
}

/** `promise`, or an error naming `what` after `ms`. */
async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The client in the pod: its started line, then (once stopped) its result. */
class ClientRun {
  readonly started: Promise<ChaosClientStarted>;
  readonly result: Promise<ChaosClientResult>;
  #stderr = '';

  constructor(readonly child: ChildProcess) {
    let out = '';
    let resolveStarted!: (s: ChaosClientStarted) => void;
    let rejectStarted!: (err: Error) => void;
    this.started = new Promise((resolve, reject) => {
      resolveStarted = resolve;
      rejectStarted = reject;
    });
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      const first = out.slice(0, nl);
      if (first.startsWith('{"started"')) {
        resolveStarted((JSON.parse(first) as { started: ChaosClientStarted }).started);
      }
    });
    child.stderr!.on('data', (d: Buffer) => (this.#stderr += d.toString()));
    this.result = new Promise((resolve, reject) => {
      child.once('exit', (code, signal) => {
        const fail = (why: string): void => {
          const err = new Error(`the chaos client in ${CLIENT} ${why}: ${this.#stderr.trim().slice(-2000)}`);
          rejectStarted(err);
          reject(err);
        };
        if (code !== 0) return fail(`failed (${signal ?? String(code)})`);
        const last = out.trim().split('\n').at(-1) ?? '';
        try {
          const parsed = JSON.parse(last) as { result?: ChaosClientResult };
          if (parsed.result === undefined) return fail('printed no result');
          resolve(parsed.result);
        } catch {
          fail(`printed no JSON result (${JSON.stringify(last.slice(0, 200))})`);
        }
      });
    });
    // Read by the bench; an early failure is reported by whichever is awaited.
    this.result.catch(() => undefined);
    this.started.catch(() => undefined);
  }
}

class ChaosBench {
  readonly httpTarget: HostPort;
  readonly tcpTarget: HostPort;
  readonly waypointNode: string;

  constructor(
    readonly lab: BenchLab,
    readonly o: ChaosOptions,
  ) {
    const vip = (name: string): HostPort => {
      const s = lab.state().services.find((x) => x.namespace === NAMESPACE && x.name === name);
      const ip = s?.clusterIps[0];
      const port = Number(/^(\d+)\//.exec(s?.ports[0] ?? '')?.[1]);
      if (ip === undefined || !Number.isInteger(port))
        throw new Error(`the lab has no Service ${NAMESPACE}/${name}`);
      return { host: ip, port };
    };
    this.httpTarget = vip(HTTP_SERVICE);
    this.tcpTarget = vip(TCP_SERVICE);
    this.waypointNode = this.pod(WAYPOINT_POD).node;
  }

  pod(name: string): PodState {
    const p = this.lab.state().pods.find((x) => `${x.namespace}/${x.name}` === name);
    if (p === undefined) throw new Error(`the lab has no pod ${name}`);
    return p;
  }

  agentLog(node: string): string {
    return join(this.lab.state().logsDir, `agent-${node}.log`);
  }

  waypointLog(): string {
    return this.pod(WAYPOINT_POD).log;
  }

  /** The lab's processes by what they are (`agent-node-1`, `pod default/waypoint-0`, …), and the client. */
  processes(clientPid: number): Map<string, number[]> {
    const roles = new Map<string, number[]>([['chaos client', [clientPid]]]);
    const state = this.lab.state();
    const records = [
      ...state.processes,
      ...state.pods.flatMap((p) => (p.process === null ? [] : [p.process])),
    ];
    for (const r of records) {
      const pids = roles.get(r.name) ?? [];
      if (!pids.includes(r.pid)) pids.push(r.pid);
      roles.set(r.name, pids);
    }
    return roles;
  }

  /** One plaintext HTTP request from node-1's namespace to node-2's agent: the capture must see it. */
  async sendControl(control: string): Promise<void> {
    const node2 = this.lab.state().nodes.find((n) => n.name === 'node-2');
    if (node2 === undefined) throw new Error('the lab has no node-2');
    const url = `http://${node2.uplinkIp}:${AGENT_READINESS_PORT}/${control}`;
    // Any answer will do (404): the request's bytes crossed the link.
    await this.lab
      .weft([
        'lab',
        'exec',
        '--dir',
        this.lab.dir,
        'node-1',
        '--',
        'curl',
        '-s',
        '-o',
        '/dev/null',
        '-m',
        '2',
        url,
      ])
      .catch(() => undefined);
  }

  startClient(marker: string): ClientRun {
    const o = this.o;
    const args = [
      'bench',
      'chaos-client',
      '--http',
      formatHostPort(this.httpTarget),
      '--tcp',
      formatHostPort(this.tcpTarget),
      '--marker',
      marker,
      '--rate',
      String(o.keepAliveRate),
      '--connections',
      String(o.keepAliveConnections),
      '--new-rate',
      String(o.newConnectionRate),
      '--streams',
      String(o.streams),
      '--stream-interval',
      ms(o.streamIntervalMs),
      '--probe-interval',
      ms(o.probeIntervalMs),
      '--probe-timeout',
      ms(o.probeTimeoutMs),
      '--warmup',
      ms(o.warmupMs),
    ];
    // Real time, as fixed-rate loads run (bench/load/scheduler.ts): latency from the schedule, not from
    // a generator that woke late.
    return new ClientRun(this.lab.spawnInPod(CLIENT, args, { realtime: this.o.realtime }));
  }

  /** Waits (bounded) until the lab reports a ready process other than `pid` for `target`. */
  async replaced(kind: 'agent' | 'waypoint', node: string, pid: number): Promise<number> {
    return this.lab.until(
      `a new ${kind === 'agent' ? `agent on ${node}` : 'waypoint'}`,
      REPLACE_TIMEOUT_MS,
      () => {
        if (kind === 'agent') {
          const n = this.lab.state().nodes.find((x) => x.name === node);
          const now = n?.agent?.pid;
          return Promise.resolve(
            n?.agentPhase === 'ready' && now !== undefined && now !== pid ? now : undefined,
          );
        }
        const p = this.pod(WAYPOINT_POD);
        const now = p.process?.pid;
        return Promise.resolve(p.phase === 'ready' && now !== undefined && now !== pid ? now : undefined);
      },
    );
  }

  async event(mode: ChaosMode, target: (typeof NODES)[number] | 'waypoint'): Promise<ChaosEvent> {
    const lab = this.lab;
    const kind = target === 'waypoint' ? 'waypoint' : 'agent';
    const name = kind === 'agent' ? `agent ${target}` : `waypoint ${NAMESPACE}/${WAYPOINT}`;
    const pidNow = (): number | null => {
      try {
        return kind === 'agent' ? lab.agentPid(target) : lab.podPid(WAYPOINT_POD);
      } catch {
        return null;
      }
    };
    const pidBefore = pidNow();
    const startedAtMs = Date.now();
    let action: string;
    let problem: string | undefined;
    let replacedAtMs: number | undefined;
    try {
      if (mode === 'restart') {
        const args =
          kind === 'agent'
            ? ['lab', 'restart', 'agent', '--node', target]
            : ['lab', 'restart', 'waypoint', '--namespace', NAMESPACE, '--name', WAYPOINT];
        action = `weft ${args.join(' ')}`;
        await lab.weft([...args, '--dir', lab.dir]);
      } else if (kind === 'agent') {
        action = `weft lab agent kill ${target}`;
        await lab.weft(['lab', 'agent', 'kill', target, '--dir', lab.dir]);
      } else {
        // `weft lab` has no command to kill a pod: SIGKILL its process, as a crash would; the lab
        // restarts an exited pod command at once.
        const record = this.pod(WAYPOINT_POD).process;
        action = `SIGKILL to the ${WAYPOINT_POD} pod's process`;
        if (record === null || !isRunning(record)) throw new Error(`${WAYPOINT_POD} has no running process`);
        process.kill(record.pid, 'SIGKILL');
      }
    } catch (err) {
      action ??= 'none';
      // The first line: a usage error's text follows it.
      problem = (err as Error).message.split('\n')[0];
    }
    const endedAtMs = Date.now();
    if (problem === undefined && mode === 'kill' && pidBefore !== null) {
      try {
        await this.replaced(kind, target, pidBefore);
        replacedAtMs = Date.now();
      } catch (err) {
        problem = (err as Error).message;
      }
    }
    const pidAfter = pidNow();
    const newProcess =
      replacedAtMs === undefined || pidAfter === null
        ? undefined
        : processStartFromLog(
            readFileSync(kind === 'agent' ? this.agentLog(target) : this.waypointLog(), 'utf8'),
            pidAfter,
            kind === 'agent' ? 'agent ready' : 'waypoint ready',
          );
    return {
      mode,
      target: name,
      kind,
      action: action!,
      startedAtMs,
      endedAtMs,
      ...(replacedAtMs === undefined ? {} : { replacedAtMs }),
      ...(newProcess === undefined ? {} : { newProcess }),
      pidBefore,
      pidAfter,
      ...(problem === undefined ? {} : { problem }),
    };
  }

  /**
   * The events, one after another: event k is due at k+1 parts of the duration in n+1, but never sooner
   * than `gapMs` after the previous one ended. Resolves once the last has ended and `gapMs` more passed
   * (and the duration is over).
   */
  async sequence(mode: ChaosMode, startedAtMs: number): Promise<ChaosEvent[]> {
    const targets = [...NODES, 'waypoint'] as const;
    const events: ChaosEvent[] = [];
    let prevEnd = startedAtMs;
    for (let k = 0; k < targets.length; k++) {
      const due = Math.max(
        startedAtMs + (this.o.durationMs * (k + 1)) / (targets.length + 1),
        prevEnd + this.o.gapMs,
      );
      await sleep(Math.max(0, due - Date.now()), undefined, { signal: this.lab.signal });
      this.o.out(`${mode} ${targets[k]} …`);
      const e = await this.event(mode, targets[k]!);
      events.push(e);
      prevEnd = Math.max(e.endedAtMs, e.replacedAtMs ?? 0);
      this.o.out(
        `  ${e.action}: ${((prevEnd - e.startedAtMs) / 1000).toFixed(1)} s, pid ${e.pidBefore} → ${e.pidAfter}${e.problem ? ` (${e.problem})` : ''}`,
      );
    }
    const end = Math.max(startedAtMs + this.o.durationMs, prevEnd + this.o.gapMs);
    await sleep(Math.max(0, end - Date.now()), undefined, { signal: this.lab.signal });
    return events;
  }

  async scenario(mode: ChaosMode): Promise<ChaosScenarioResult> {
    const o = this.o;
    const lab = this.lab;
    const marker = `chaos-marker-${randomBytes(6).toString('hex')}`;
    const control = `chaos-control-${randomBytes(6).toString('hex')}`;
    const logs = { agents: NODES.map((n) => this.agentLog(n)), waypoint: this.waypointLog() };
    const offsets = { agents: logs.agents.map(sizeOf), waypoint: sizeOf(logs.waypoint) };
    const sinceMs = Date.now();
    const state = lab.state();
    const links = state.nodes.map((n) => ({
      what: 'uplink',
      node: n.name,
      netns: n.netns,
      device: n.uplink,
    }));
    // The waypoint shares node-1 with the client: its leg from node-1's agent never crosses a link, so
    // its pod's interface is captured too (everything in and out of it must be HBONE).
    const wp = this.pod(WAYPOINT_POD);
    const wpNode = state.nodes.find((n) => n.name === wp.node);
    if (wpNode !== undefined)
      links.push({ what: 'waypoint pod', node: wp.node, netns: wpNode.netns, device: wp.veth });
    const capture = await LinkCapture.start(links, [marker, control]);
    let client: ClientRun | undefined;
    let events: ChaosEvent[];
    let run: ChaosClientResult;
    let cpu!: CpuUse;
    let captured: LinkCaptureResult[];
    try {
      await this.sendControl(control);
      client = this.startClient(marker);
      const started = await client.started;
      o.out(
        `${mode}: the load runs (${started.streamsOpen} long-lived connections open); the measured window starts`,
      );
      const cpuWatch = new CpuWatch(() => this.processes(started.pid));
      try {
        events = await this.sequence(mode, started.startedAtMs);
      } finally {
        cpu = cpuWatch.stop();
      }
      // Its own pid (it runs under `lab exec`): SIGINT ends its loads and makes it print its result.
      process.kill(started.pid, 'SIGINT');
      run = await withTimeout(client.result, CLIENT_STOP_TIMEOUT_MS, 'the chaos client to stop');
      await this.sendControl(control);
    } finally {
      if (client !== undefined && client.child.exitCode === null) client.child.kill('SIGKILL');
      captured = await capture.stop();
    }
    const needle = (text: string): number =>
      captured.reduce((s, l) => s + (l.needles.find((n) => n.needle === text)?.packets ?? 0), 0);
    // Appended since the run started: restarted agents write to the same file; a restarted waypoint too.
    const agentText = logs.agents.map((f, i) => readFrom(f, offsets.agents[i]!));
    const waypointText = readFrom(
      this.waypointLog(),
      this.waypointLog() === logs.waypoint ? offsets.waypoint : 0,
    );
    const drains: LoggedDrain[] = [
      ...NODES.flatMap((n, i) => drainsFromLog(agentText[i]!, `agent ${n}`, sinceMs)),
      ...drainsFromLog(waypointText, `waypoint ${NAMESPACE}/${WAYPOINT}`, sinceMs),
    ].sort((a, b) => a.startedAtMs - b.startedAtMs);
    const timelines = {
      originAtMs: run.originAtMs,
      startedAtMs: run.startedAtMs,
      stoppedAtMs: run.stoppedAtMs,
      keepAlive: run.keepAlive.timeline,
      newConnection: run.newConnection.timeline,
      probes: run.probes.timeline,
    };
    const ka = run.keepAlive.result;
    const nc = run.newConnection.result;
    // From the results, not the timelines: requests that never came back (timeouts) are only there.
    const byKind = (r: typeof ka): Partial<Record<LoadErrorKind, number>> =>
      Object.fromEntries(Object.entries(r.errors).filter(([, n]) => n > 0));
    const keepAlive = { ...loadTotals(ka, byKind(ka)), connections: ka.connections };
    const newConnection = loadTotals(nc, byKind(nc));
    const seconds = Math.round((run.stoppedAtMs - run.startedAtMs) / 100) / 10;
    const measuredProbes = windowFigures(
      run.probes.timeline,
      run.originAtMs,
      run.startedAtMs,
      run.stoppedAtMs,
    );
    const partial = {
      mode,
      seconds,
      events,
      keepAlive,
      newConnection,
      probes: {
        intervalMs: run.probes.intervalMs,
        timeoutMs: run.probes.timeoutMs,
        // In the measured window, as the loads' requests (the probe starts with the warm-up).
        sent: measuredProbes.requests,
        failed: measuredProbes.failed,
      },
      outages: outages(timelines, events),
      streams: summarizeStreams(run.streams, events, drains, AGENT_DRAIN_DEADLINE_MS),
      capture: {
        links: captured,
        markerPackets: needle(marker),
        controlPackets: needle(control),
        hbonePackets: captured.reduce((s, l) => s + l.hbonePackets, 0),
      },
      mesh: {
        waypointRequestsWithMarker: countLines(waypointText, marker, 'request complete'),
        agentConnectionsLogged: Object.fromEntries(
          NODES.map((n, i) => [n, countLines(agentText[i]!, 'connection complete')]),
        ),
      },
    };
    const problems = scenarioProblems(partial);
    const criteria = scenarioCriteria(partial);
    return {
      ...partial,
      marker,
      startedAt: new Date(run.startedAtMs).toISOString(),
      requests: {
        sent: keepAlive.sent + newConnection.sent,
        failed: keepAlive.failed + newConnection.failed,
        retried: keepAlive.retried + newConnection.retried,
      },
      sustained: isSustained(keepAlive, newConnection),
      windows: eventWindows(timelines, events),
      failures: failedRequests(timelines, MAX_FAILURES_LISTED),
      perSecond: {
        keepAlive: perSecond(timelines.keepAlive, timelines),
        newConnection: perSecond(timelines.newConnection, timelines),
      },
      drains,
      cpu,
      check: { passed: problems.length === 0, problems },
      criteria,
      criteriaPassed: criteria.every((c) => c.passed),
      loads: { keepAlive: ka, newConnection: nc },
    };
  }
}

async function setUp(lab: BenchLab, out: (line: string) => void): Promise<void> {
  const dir = demoManifestsDir();
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => join(dir, f));
  const chaosFile = join(lab.top, `${HTTP_SERVICE}.yaml`);
  writeFileSync(chaosFile, CHAOS_SERVICE_YAML);
  await lab.weft(['apply', ...[...files, chaosFile].flatMap((f) => ['-f', f]), '--dir', lab.dir]);
  await lab.weft(['label', 'namespace', NAMESPACE, 'istio.io/dataplane-mode=ambient', '--dir', lab.dir]);
  await lab.untilPodsReady([NAMESPACE], 4);
  // Binds the namespace once the waypoint pod is ready.
  await lab.weft([
    'waypoint',
    'apply',
    '-n',
    NAMESPACE,
    '--name',
    WAYPOINT,
    '--enroll-namespace',
    '--dir',
    lab.dir,
  ]);
  await lab.untilPodsReady([NAMESPACE], 5);
  out(`the demo applied, namespace ${NAMESPACE} enrolled and bound to waypoint ${WAYPOINT}, its pods ready`);
  // 200 new connections a second from one address: reuse TIME_WAIT ports (as observe-cost does).
  const tuneCmd = ['--', 'sysctl', '-qw', 'net.ipv4.tcp_tw_reuse=1'];
  await Promise.all(
    [CLIENT, ...NODES].map((where) => lab.weft(['lab', 'exec', '--dir', lab.dir, where, ...tuneCmd])),
  );
}

/** Waits (bounded) until a request from the client reaches echo-v2 through the waypoint. */
async function untilMeshed(bench: ChaosBench): Promise<void> {
  const lab = bench.lab;
  const path = `/chaos-meshed-${randomBytes(4).toString('hex')}`;
  const url = `http://${formatHostPort(bench.httpTarget)}${path}`;
  await lab.until(`${CLIENT} → ${HTTP_SERVICE} through the waypoint`, 30_000, async () => {
    const body = await lab.weft([
      'lab',
      'exec',
      '--dir',
      lab.dir,
      CLIENT,
      '--',
      'curl',
      '-sf',
      '-m',
      '2',
      url,
    ]);
    if (!body.includes('echo-v2')) throw new Error(`not answered by echo-v2: ${body.slice(0, 200)}`);
    const logged = readFileSync(bench.waypointLog(), 'utf8').includes(path);
    return logged ? true : undefined;
  });
}

export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const out = o.out;
  const loadavgAtStart = loadavg().map((v) => Math.round(v * 100) / 100);
  const otherLabs = [
    ...new Set(
      (await listNetns()).map((n) => /^weft-([0-9a-z]+)-/.exec(n)?.[1]).filter((x) => x !== undefined),
    ),
  ];
  return withBenchLab('weft-bench-chaos-', out, async (lab) => {
    out(`built the lab in ${lab.dir}`);
    await setUp(lab, out);
    const bench = new ChaosBench(lab, o);
    await untilMeshed(bench);
    out(
      `meshed: ${CLIENT} (node-1) → ${HTTP_SERVICE} ${formatHostPort(bench.httpTarget)} (echo-v2, node-2) through the waypoint on ${bench.waypointNode}`,
    );
    const scenarios: ChaosScenarioResult[] = [];
    for (const mode of o.modes) {
      const s = await bench.scenario(mode);
      scenarios.push(s);
      out(
        `${mode}: ${s.requests.sent} requests, ${s.requests.failed} failed, ${s.requests.retried} retried; marker packets on the links: ${s.capture.markerPackets}`,
      );
    }
    const report: ChaosReport = {
      command: o.command,
      date: new Date().toISOString(),
      commit: describeCommit(),
      labId: lab.state().id,
      waypointNode: bench.waypointNode,
      path: `${CLIENT} (node-1) → agent node-1 → waypoint ${NAMESPACE}/${WAYPOINT} (${bench.waypointNode}) → agent node-2 → echo-v2 (node-2); long-lived: → ${TCP_SERVICE} (node-2)`,
      machine: {
        cpus: cpus().length,
        loadavgAtStart,
        otherLabs: otherLabs.filter((id) => id !== lab.state().id),
      },
      scenarios,
    };
    // Logs are kept (and named) when a check or a target failed: what to read to find out why.
    return { result: report, ok: scenarios.every((s) => s.check.passed && s.criteriaPassed) };
  });
}
