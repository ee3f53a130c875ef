// `weft bench compare`: the scenarios we quote, on a real `weft lab`, over every path, interleaved per
// scenario so drift hits all paths alike:
//
// - direct: plain client pod → plain server pod;
// - mesh (L4): enrolled client → node-1's agent (captured by tc eBPF) → HBONE mTLS → node-2's agent →
//   enrolled server;
// - waypoint (L4 + waypoint): enrolled client → node-1's agent → HBONE → the namespace's waypoint
//   (HTTP parsed, routed and authorized at L7; TCP ports piped under L4 policy) → HBONE → node-2's agent
//   → enrolled server, addressed by the Service VIP as a waypoint requires;
// - haproxy (the baseline): plain client → HAProxy pod on node 1 → TLS 1.3 with client certificates from
//   the mesh CA → HAProxy pod on node 2 → plain server. One thread each, like one agent process.
//
// CPU seconds and RSS of the path's processes are sampled from /proc around each run. Fixed-rate
// clients and the trivial servers run under SCHED_FIFO for the run (see load/scheduler.ts), and for the whole bench /dev/cpu_dma_latency is
// held at 0 (as tuned's latency-performance profile does), so idle vCPUs poll instead of halting and a
// wake-up is not a VM exit: both remove the generator's and the VM's share from the latencies.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { issueCertificateFiles } from '../lab/certs.js';
import { manifestFile, namespaceManifest, podManifest } from '../lab/manifests.js';
import { BenchLab, withBenchLab } from './bench-lab.js';
import {
  COMPARE_REPORT_VERSION,
  type CompareReport,
  type IdleResult,
  type PathId,
  type PathInfo,
  type PathRun,
  type PathUsage,
  type ScenarioReport,
} from './compare-report.js';
import type { BulkResult } from './load/bulk.js';
import type { LoadResult } from './load/run.js';
import { sampleProcess } from './proc-stats.js';
import { REALTIME_PRIORITY } from './load/scheduler.js';
import { mib, round3, sum, withUsage } from './path-compare.js';

const PLAIN_NS = 'plain';
const MESH_NS = 'mesh';
const WAYPOINT_NS = 'wp';
/** The waypoint path's Service (VIP fixed so the route is known before the lab allocates). */
const WAYPOINT_VIP = '10.96.1.10';
const IP = {
  plainClient: '10.77.1.10',
  meshClient: '10.77.1.11',
  haproxyClient: '10.77.1.12',
  plainServer: '10.77.2.10',
  meshServer: '10.77.2.11',
  haproxyServer: '10.77.2.12',
  waypointClient: '10.77.1.13',
  waypointServer: '10.77.2.13',
} as const;
const PORT = { http: 8080, echo: 9000, discard: 9001 } as const;
type Service = keyof typeof PORT;
/** Idle connections HAProxy can hold here: each takes two of its 20,000 file descriptors. */
const HAPROXY_MAX_IDLE = 9000;
/** HAProxy's TLS listener for a service is its port + this. */
const TUNNEL_OFFSET = 10_000;

export const PATHS: readonly PathInfo[] = [
  { id: 'direct', title: 'client pod → server pod (plain TCP)', available: true, processes: [] },
  {
    id: 'mesh',
    title: 'client pod → agent node-1 (tc eBPF capture) → HBONE mTLS → agent node-2 → server pod',
    available: true,
    processes: ['agent-node-1', 'agent-node-2'],
  },
  {
    id: 'waypoint',
    title: 'client pod → agent node-1 → HBONE → waypoint (L7) → HBONE → agent node-2 → server pod',
    available: true,
    processes: ['agent-node-1', 'agent-node-2', 'waypoint'],
  },
  {
    id: 'haproxy',
    title: 'client pod → HAProxy node-1 → TLS 1.3 mTLS → HAProxy node-2 → server pod',
    available: true,
    processes: ['haproxy-client', 'haproxy-server'],
  },
];

/** Which pod a path's client runs in and where it connects for a service. */
function route(path: PathId, service: Service): { pod: string; target: string } {
  const port = PORT[service];
  if (path === 'mesh') return { pod: `${MESH_NS}/client`, target: `${IP.meshServer}:${port}` };
  if (path === 'waypoint') return { pod: `${WAYPOINT_NS}/client`, target: `${WAYPOINT_VIP}:${port}` };
  if (path === 'haproxy') return { pod: `${PLAIN_NS}/client`, target: `${IP.haproxyClient}:${port}` };
  return { pod: `${PLAIN_NS}/client`, target: `${IP.plainServer}:${port}` };
}

export interface CompareOptions {
  /** Measured seconds of each load run (bulk runs too). */
  readonly durationS: number;
  readonly warmupS: number;
  /** Idle connections held for scenario (e). */
  readonly idleConnections: number;
  /** Where report.json and report.html go. */
  readonly outDir: string;
  readonly command: string;
  readonly out: (line: string) => void;
}

interface ScenarioPlan {
  readonly id: string;
  readonly title: string;
  readonly kind: ScenarioReport['kind'];
  readonly service: Service;
  /** `weft bench …` arguments, without --target and --json. */
  readonly args: readonly string[];
  /** Whether the client runs under SCHED_FIFO (fixed rate only). */
  readonly realtime: boolean;
}

function scenarioPlans(o: CompareOptions): ScenarioPlan[] {
  const d = `${o.durationS}s`;
  const w = `${o.warmupS}s`;
  const load = ['bench', 'load', '--no-progress', '--duration', d, '--warmup', w];
  // (e) first: memory is measured as RSS growth, which the garbage of the load runs would blur.
  return [
    {
      id: 'e',
      title: `memory with ${o.idleConnections} idle tunnelled connections`,
      kind: 'memory',
      service: 'echo',
      args: ['bench', 'hold', '--connections', String(o.idleConnections), '--hold', '5s'],
      realtime: false,
    },
    {
      id: 'a',
      title: `HTTP/1.1, 1 KiB responses at 1000 rps, 4 connections, ${d}`,
      kind: 'latency',
      service: 'http',
      args: [...load, '--protocol', 'http1', '--connections', '4', '--rate', '1000'],
      realtime: true,
    },
    {
      id: 'b',
      title: `HTTP/1.1, 1 KiB responses, maximum rate, 16 connections, ${d}`,
      kind: 'throughput',
      service: 'http',
      args: [...load, '--protocol', 'http1', '--connections', '16'],
      realtime: false,
    },
    ...[1, 8].map((streams): ScenarioPlan => ({
      id: `c${streams}`,
      title: `bulk TCP upload, ${streams} stream${streams > 1 ? 's' : ''}, ${d}`,
      kind: 'bulk',
      service: 'discard',
      args: ['bench', 'load', '--protocol', 'tcp', '--bulk', '--streams', String(streams), '--duration', d],
      realtime: false,
    })),
    {
      id: 'd',
      title: `HTTP/1.1, a new connection per request at 500 conn/s, ${d}`,
      kind: 'latency',
      service: 'http',
      args: [...load, '--protocol', 'http1', '--new-connection', '--rate', '500'],
      realtime: true,
    },
  ];
}

const FLOOR_TARGET = `127.0.0.1:${PORT.http}`;
const FLOOR_SERVE = ['weft', 'bench', 'serve', '--http', FLOOR_TARGET, '--response-size', '1024'];

const SERVE = [
  'weft',
  'bench',
  'serve',
  '--http',
  `0.0.0.0:${PORT.http}`,
  '--echo',
  `0.0.0.0:${PORT.echo}`,
  '--discard',
  `0.0.0.0:${PORT.discard}`,
  '--response-size',
  '1024',
];

function haproxyConfig(frontends: string[]): string {
  return [
    'global',
    // One thread, as one agent process is one event loop: a like-for-like baseline.
    '  nbthread 1',
    // Two descriptors per tunnelled connection within the 20,000 a process may have here (the limit
    // cannot be raised in this sandbox): see HAPROXY_MAX_IDLE.
    `  maxconn ${HAPROXY_MAX_IDLE + 500}`,
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    '  timeout client 600s',
    '  timeout server 600s',
    ...frontends,
    '',
  ].join('\n');
}

/** HAProxy pair configs: node-1 listens plain and originates mTLS; node-2 terminates it. */
function haproxyConfigs(pem: { client: string; server: string; ca: string }): {
  client: string;
  server: string;
} {
  const client: string[] = [];
  const server: string[] = [];
  for (const [name, port] of Object.entries(PORT)) {
    const tunnel = `${IP.haproxyServer}:${port + TUNNEL_OFFSET}`;
    client.push(
      `frontend ${name}`,
      `  bind ${IP.haproxyClient}:${port}`,
      `  default_backend ${name}`,
      `backend ${name}`,
      `  server tunnel ${tunnel} ssl crt ${pem.client} ca-file ${pem.ca} verify required ssl-min-ver TLSv1.3`,
    );
    server.push(
      `frontend ${name}`,
      `  bind ${tunnel} ssl crt ${pem.server} ca-file ${pem.ca} verify required ssl-min-ver TLSv1.3`,
      `  default_backend ${name}`,
      `backend ${name}`,
      `  server app ${IP.plainServer}:${port}`,
    );
  }
  return { client: haproxyConfig(client), server: haproxyConfig(server) };
}

async function deploy(lab: BenchLab, out: (line: string) => void): Promise<void> {
  const state = lab.state();
  const certs = join(lab.top, 'haproxy');
  mkdirSync(certs, { recursive: true });
  const td = 'cluster.local';
  const c = await issueCertificateFiles(
    state.caDir,
    td,
    `spiffe://${td}/ns/${PLAIN_NS}/sa/haproxy-client`,
    certs,
    'client',
  );
  const s = await issueCertificateFiles(
    state.caDir,
    td,
    `spiffe://${td}/ns/${PLAIN_NS}/sa/haproxy-server`,
    certs,
    'server',
  );
  const configs = haproxyConfigs({ client: c.combined, server: s.combined, ca: state.ca.rootCertFile });
  writeFileSync(join(certs, 'client.cfg'), configs.client);
  writeFileSync(join(certs, 'server.cfg'), configs.server);
  const haproxy = (cfg: string) => ['haproxy', '-db', '-f', cfg];
  const pod = (name: string, ns: string, node: string, ip: string, command: string[], ports: number[] = []) =>
    podManifest({ name, namespace: ns, serviceAccount: name, node, ip, command, containerPorts: ports });
  const servicePorts = Object.values(PORT);
  const manifests = join(lab.top, 'compare.yaml');
  writeFileSync(
    manifests,
    manifestFile(
      namespaceManifest(PLAIN_NS),
      namespaceManifest(MESH_NS),
      // The plain client also serves the trivial HTTP server on its loopback: the generator's floor.
      pod('client', PLAIN_NS, 'node-1', IP.plainClient, FLOOR_SERVE),
      pod('client', MESH_NS, 'node-1', IP.meshClient, ['sleep', 'infinity']),
      namespaceManifest(WAYPOINT_NS),
      pod('client', WAYPOINT_NS, 'node-1', IP.waypointClient, ['sleep', 'infinity']),
      pod('server', WAYPOINT_NS, 'node-2', IP.waypointServer, SERVE, servicePorts),
      waypointService(),
      pod('server', PLAIN_NS, 'node-2', IP.plainServer, SERVE, servicePorts),
      pod('server', MESH_NS, 'node-2', IP.meshServer, SERVE, servicePorts),
      pod(
        'haproxy-client',
        PLAIN_NS,
        'node-1',
        IP.haproxyClient,
        haproxy(join(certs, 'client.cfg')),
        servicePorts,
      ),
      pod(
        'haproxy-server',
        PLAIN_NS,
        'node-2',
        IP.haproxyServer,
        haproxy(join(certs, 'server.cfg')),
        servicePorts.map((p) => p + TUNNEL_OFFSET),
      ),
    ),
  );
  await lab.weft(['apply', '-f', manifests, '--dir', lab.dir]);
  await lab.weft(['label', 'namespace', MESH_NS, 'istio.io/dataplane-mode=ambient', '--dir', lab.dir]);
  await lab.weft(['label', 'namespace', WAYPOINT_NS, 'istio.io/dataplane-mode=ambient', '--dir', lab.dir]);
  out('pods: clients and HAProxy on node-1; servers and HAProxy on node-2; namespaces mesh and wp enrolled');
  await lab.untilPodsReady([PLAIN_NS, MESH_NS, WAYPOINT_NS], 8);
  // The waypoint pod goes where the lab's scheduler puts it (the node with the fewest pods), as a
  // Deployment's would; `--enroll-namespace` binds the namespace once it is ready.
  await lab.weft(['waypoint', 'apply', '-n', WAYPOINT_NS, '--enroll-namespace', '--dir', lab.dir]);
  out(`waypoint ${WAYPOINT_NS}/waypoint ready; namespace ${WAYPOINT_NS} bound to it`);
  // Scenario (d) opens 500 connections/s from one address: whoever dials a new connection per request
  // (the client; the agents and HAProxy toward the server) accumulates TIME_WAIT ports, and without
  // reusing them for new outgoing connections the kernel's search for a free port grows with each one
  // until connecting takes seconds: the port search, not the path, would be measured. Every dialling
  // side gets net.ipv4.tcp_tw_reuse=1 (per network namespace), as a load-testing client would.
  const dialling = [
    `${PLAIN_NS}/client`,
    `${MESH_NS}/client`,
    `${WAYPOINT_NS}/client`,
    `${WAYPOINT_NS}/waypoint-0`,
    `${PLAIN_NS}/haproxy-client`,
    `${PLAIN_NS}/haproxy-server`,
    'node-1',
    'node-2',
  ];
  for (const where of dialling)
    await lab.weft([
      'lab',
      'exec',
      '--dir',
      lab.dir,
      where,
      '--',
      'sysctl',
      '-qw',
      'net.ipv4.tcp_tw_reuse=1',
    ]);
}

/**
 * The waypoint path's Service: HTTP on `http` (parsed at L7 by the waypoint), the echo and discard
 * ports named as TCP (piped under L4 policy), as a user would declare them.
 */
function waypointService(): string {
  return `apiVersion: v1
kind: Service
metadata: { name: server, namespace: ${WAYPOINT_NS} }
spec:
  clusterIP: ${WAYPOINT_VIP}
  selector: { app: server }
  ports:
    - { name: http, port: ${PORT.http}, targetPort: ${PORT.http} }
    - { name: tcp-echo, port: ${PORT.echo}, targetPort: ${PORT.echo} }
    - { name: tcp-discard, port: ${PORT.discard}, targetPort: ${PORT.discard} }
`;
}

function processPids(lab: BenchLab, info: PathInfo): number[] {
  return info.processes.map((name) =>
    name.startsWith('agent-')
      ? lab.agentPid(name.slice('agent-'.length))
      : name === 'waypoint'
        ? lab.podPid(`${WAYPOINT_NS}/waypoint-0`)
        : lab.podPid(`${PLAIN_NS}/${name}`),
  );
}

function usageOf(
  info: PathInfo,
  usage: { seconds: number; cpuSeconds: readonly number[]; rssBytes: readonly number[] },
  rps: number | null,
): PathUsage {
  const cpu = Object.fromEntries(info.processes.map((n, i) => [n, round3(usage.cpuSeconds[i]!)]));
  const rss = Object.fromEntries(info.processes.map((n, i) => [n, mib(usage.rssBytes[i]!)]));
  const cpuTotal = sum(usage.cpuSeconds);
  const rssTotal = sum(Object.values(rss));
  const perK = rps !== null && rps > 0 && info.processes.length > 0 ? rps / 1000 : null;
  return {
    seconds: round3(usage.seconds),
    cpuSeconds: cpu,
    rssMiB: rss,
    vcpuPer1000Rps: perK === null ? null : round3(cpuTotal / usage.seconds / perK),
    mibPer1000Rps: perK === null ? null : round3(rssTotal / perK),
  };
}

/** Scenario (e) on one path: hold the connections, sample memory while held, let go. */
async function idleRun(
  lab: BenchLab,
  info: PathInfo,
  plan: ScenarioPlan,
  connections: number,
): Promise<IdleResult> {
  const pids = processPids(lab, info);
  const before = pids.map((pid) => sampleProcess(pid).rssBytes);
  const { pod, target } = route(info.id, plan.service);
  const args = plan.args.map((a, i) => (plan.args[i - 1] === '--connections' ? String(connections) : a));
  const child: ChildProcess = lab.spawnInPod(pod, [...args, '--target', target]);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const lines = createInterface({ input: child.stdout! });
  try {
    for await (const line of lines) {
      const opened = JSON.parse(line) as { opened: number; failed: number };
      // Let the proxies settle (pool setup, allocations) before sampling.
      await new Promise((r) => setTimeout(r, 2000));
      const held = pids.map((pid) => sampleProcess(pid).rssBytes);
      const delta = held.reduce((s, v, i) => s + v - before[i]!, 0);
      return {
        connections: opened.opened,
        failed: opened.failed,
        rssBeforeMiB: Object.fromEntries(info.processes.map((n, i) => [n, mib(before[i]!)])),
        rssHeldMiB: Object.fromEntries(info.processes.map((n, i) => [n, mib(held[i]!)])),
        mibPer1000Connections: opened.opened > 0 ? round3(delta / 2 ** 20 / (opened.opened / 1000)) : 0,
      };
    }
    throw new Error(`the idle client printed nothing: ${err.trim()}`);
  } finally {
    // It lets go by itself after --hold; the next path must not share the machine with its connections.
    if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
  }
}

async function run(lab: BenchLab, info: PathInfo, plan: ScenarioPlan, o: CompareOptions): Promise<PathRun> {
  if (!info.available) return { path: info.id };
  try {
    if (plan.kind === 'memory') {
      // HAProxy cannot hold more here (two descriptors per connection); per-1000 figures normalize.
      const n = info.id === 'haproxy' ? Math.min(HAPROXY_MAX_IDLE, o.idleConnections) : o.idleConnections;
      return { path: info.id, idle: await idleRun(lab, info, plan, n) };
    }
    const { pod, target } = route(info.id, plan.service);
    // Fixed rate: the generator and the trivial servers (the instruments, the same on every path) run
    // real-time for the run; the proxies under test keep the default policy, as they would in production.
    const servers = plan.realtime
      ? [PLAIN_NS, MESH_NS, WAYPOINT_NS].map((ns) => lab.podPid(`${ns}/server`))
      : [];
    for (const pid of servers) setRealtime(pid, true);
    const { result, usage } = await withUsage(processPids(lab, info), () =>
      lab.runInPod(pod, [...plan.args, '--target', target], { realtime: plan.realtime }),
    ).finally(() => {
      for (const pid of servers) setRealtime(pid, false);
    });
    if (plan.kind === 'bulk')
      return { path: info.id, bulk: result as BulkResult, usage: usageOf(info, usage, null) };
    const load = result as LoadResult;
    return { path: info.id, load, usage: usageOf(info, usage, load.achievedRps) };
  } catch (err) {
    return { path: info.id, error: (err as Error).message };
  }
}

/** Scenario (a)'s load against the trivial server on the client pod's loopback, both real-time. */
async function floorRun(lab: BenchLab, plans: readonly ScenarioPlan[]): Promise<LoadResult | undefined> {
  const a = plans.find((p) => p.id === 'a');
  if (a === undefined) return undefined;
  const pid = lab.podPid(`${PLAIN_NS}/client`);
  setRealtime(pid, true);
  try {
    return (await lab.runInPod(`${PLAIN_NS}/client`, [...a.args, '--target', FLOOR_TARGET], {
      realtime: true,
    })) as LoadResult;
  } finally {
    setRealtime(pid, false);
  }
}

/** Moves every thread of `pid` to SCHED_FIFO at the generator's priority, or back to SCHED_OTHER. */
function setRealtime(pid: number, on: boolean): void {
  const policy = on ? ['-f', String(REALTIME_PRIORITY)] : ['-o', '0'];
  execFileSync('chrt', ['-a', '-p', ...policy, String(pid)], { stdio: 'ignore' });
}

/** Holds the machine's CPU wake-up latency requirement at 0 µs until the returned function is called. */
function holdCpuDmaLatency(out: (line: string) => void): () => void {
  try {
    const fd = openSync('/dev/cpu_dma_latency', 'w');
    const zero = Buffer.alloc(4);
    writeSync(fd, zero);
    return () => closeSync(fd);
  } catch (err) {
    out(
      `cannot hold /dev/cpu_dma_latency at 0 (${(err as Error).message}): latencies include idle-state exits`,
    );
    return () => undefined;
  }
}

export async function runCompare(o: CompareOptions): Promise<CompareReport> {
  const startedAt = new Date().toISOString();
  const plans = scenarioPlans(o);
  const release_ = holdCpuDmaLatency(o.out);
  try {
    return await withBenchLab('weft-bench-compare-', o.out, async (lab) => {
      o.out(`built the lab in ${lab.dir}`);
      await deploy(lab, o.out);
      // Every path answers before anything is measured.
      for (const info of PATHS.filter((p) => p.available)) {
        const { pod, target } = route(info.id, 'http');
        await lab.until(`the ${info.id} path`, 30_000, () =>
          lab.runInPod(pod, [
            'bench',
            'load',
            '--no-progress',
            '--duration',
            '300ms',
            '--warmup',
            '0s',
            '--connections',
            '1',
            '--target',
            target,
          ]),
        );
      }
      const floor = await floorRun(lab, plans);
      o.out(`generator floor (trivial server on loopback): p99 ${floor?.latencyUs.p99 ?? '–'} µs`);
      const scenarios: ScenarioReport[] = [];
      for (const plan of plans) {
        const runs: PathRun[] = [];
        for (const info of PATHS) {
          if (info.available) o.out(`  (${plan.id}) ${plan.title}: ${info.id}`);
          runs.push(await run(lab, info, plan, o));
        }
        scenarios.push({ id: plan.id, title: plan.title, kind: plan.kind, clientArgs: plan.args, runs });
      }
      const report: CompareReport = {
        version: COMPARE_REPORT_VERSION,
        command: o.command,
        startedAt,
        finishedAt: new Date().toISOString(),
        commit: gitCommit(),
        machine: {
          cpus: cpus().length,
          cpuModel: cpus()[0]?.model ?? 'unknown',
          memoryGiB: Math.round(totalmem() / 2 ** 30),
          kernel: release(),
          node: process.version,
        },
        generatorScheduler: process.getuid?.() === 0 ? 'SCHED_FIFO (fixed-rate runs)' : 'SCHED_OTHER',
        generatorFloorP99Us: floor?.latencyUs.p99 ?? null,
        ...(floor === undefined ? {} : { generatorFloor: floor }),
        paths: PATHS,
        scenarios,
      };
      const failed = scenarios.flatMap((s) => s.runs.filter((r) => r.error !== undefined));
      return { result: report, ok: failed.length === 0 };
    });
  } finally {
    release_();
  }
}

function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return 'unknown';
  }
}
