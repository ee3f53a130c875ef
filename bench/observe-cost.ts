// `weft bench observe`: what flow observers cost the node agent. A real `weft lab` with the demo, its
// namespace enrolled, and the heaviest event rate an agent sees: the client pod on node-1 opening a new
// connection per request to echo-v2 on node-2 (closed loop), so each request is an `open` and a `close`
// flow event at both agents. The same load runs under each mode, the modes in turn, round after round
// (A B C D A B C D), so drift does not favour one:
//
// - A: nobody reads flows (the baseline);
// - B: `--readers` stalled readers per agent on `/flows?follow=1&last=0` that never read;
// - C: as many fast readers, reading and discarding everything;
// - D: as many slow readers, ~64 KiB/s each (see flow-clients.ts for why not slower).
//
// Per run: requests/s and latency from the generator; each agent's live memory after a full GC at the
// end, the readers still connected (live-memory.ts: RSS alone is the collector's saw-tooth), its RSS (sampled every 200 ms, and the kernel's peak) and CPU time per
// request; what the readers received and were told they lost; the machine's other CPU. Every run
// must be in both agents' access logs (the load went through the mesh) and every reader must stay
// connected, or the bench fails: the figures would not measure what they claim.
import { describeCommit } from './commit.js';
import { readdirSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { demoManifestsDir } from '../lab/cluster/demo.js';
import { DEFAULT_FLOW_RING_CAPACITY } from '../core/flows/ring.js';
import { ADMIN_DIR } from '../lab/cluster/plan.js';
import type { BenchLab } from './bench-lab.js';
import { withBenchLab } from './bench-lab.js';
import type { LoadResult } from './load/run.js';
import { countMeshed, logOffset } from './observe-cost/access-log.js';
import { readMachineCpu, UsageWatch, type AgentRunUsage } from './observe-cost/agent-usage.js';
import { FlowStreamClient, type FlowReaderKind, type FlowReaderStats } from './observe-cost/flow-clients.js';
import { liveMemoryInNetns, openInspector, type LiveMemory } from './observe-cost/live-memory.js';
import {
  disturbedRuns,
  evaluateCriteria,
  OBSERVE_MODES,
  readerTotals,
  summarize,
  liveMiB,
  type AgentRun,
  type LoadFigures,
  type ModeRun,
  type ObserveCostResult,
  type ObserveMode,
} from './observe-cost/report.js';

const NAMESPACE = 'default';
const CLIENT = `${NAMESPACE}/client`;
const SERVER = `${NAMESPACE}/echo-v2`;
const ECHO_PORT = 8080;
const NODES = ['node-1', 'node-2'] as const;
const FLOWS_PATH = '/flows?follow=1&last=0';
/** How long a released stalled reader may take to be told what it lost (it is told on its first drain). */
const RELEASE_TIMEOUT_MS = 5_000;
/** An `open` and a `close` per proxied connection, at each agent. */
const EVENTS_PER_CONNECTION = 2;
/** More than a stalled reader's socket buffers hold (~125 KB, ~220 events): they are lapped, not just full. */
const LAP_MARGIN_EVENTS = 1024;
const MAX_LAP_LOADS = 5;
/** How long the agents may take to log a run's last connections after the load ended. */
const LOG_SETTLE_MS = 5_000;

export interface ObserveCostOptions {
  readonly durationS: number;
  readonly warmupS: number;
  readonly rounds: number;
  readonly readersPerAgent: number;
  readonly command: string;
  readonly out: (line: string) => void;
}

const READER_KIND: Record<Exclude<ObserveMode, 'none'>, FlowReaderKind> = {
  stalled: 'stalled',
  fast: 'fast',
  slow: 'slow',
};

function seconds(s: number): string {
  return Number.isInteger(s) ? `${s}s` : `${Math.round(s * 1000)}ms`;
}

/** The load of every run, but its window: HTTP/1.1, a new connection per request, to echo-v2. */
function loadCommand(server: string): string[] {
  return [
    'bench',
    'load',
    '--protocol',
    'http1',
    '--new-connection',
    '--target',
    `${server}:${ECHO_PORT}`,
    '--no-progress',
  ];
}

function windowArgs(durationS: number, warmupS: number): string[] {
  return ['--duration', seconds(durationS), '--warmup', seconds(warmupS)];
}

function loadArgs(server: string, o: ObserveCostOptions): string[] {
  return [...loadCommand(server), ...windowArgs(o.durationS, o.warmupS)];
}

/** What one bench needs to run a mode: the lab, the route, the agents. */
class ObserveBench {
  readonly client: string;
  readonly server: string;
  readonly problems: string[] = [];

  constructor(
    readonly lab: BenchLab,
    readonly options: ObserveCostOptions,
  ) {
    const ip = (pod: string): string => {
      const p = lab.state().pods.find((x) => `${x.namespace}/${x.name}` === pod);
      if (p === undefined) throw new Error(`the lab has no pod ${pod}`);
      return p.ip;
    };
    this.client = ip(CLIENT);
    this.server = ip(SERVER);
  }

  agents(): { node: string; pid: number }[] {
    return NODES.map((node) => ({ node, pid: this.lab.agentPid(node) }));
  }

  logFile(node: string): string {
    return join(this.lab.state().logsDir, `agent-${node}.log`);
  }

  logOffsets(): number[] {
    return NODES.map((n) => logOffset(this.logFile(n)));
  }

  logged(offsets: readonly number[]): number[] {
    const route = { client: this.client, server: `${this.server}:${ECHO_PORT}` };
    return NODES.map((n, i) =>
      countMeshed(this.logFile(n), offsets[i]!, route, i === 0 ? 'outbound' : 'inbound'),
    );
  }

  /** Waits (bounded) until both agents logged at least `atLeast` connections since `offsets` and stopped. */
  async loggedSettled(offsets: readonly number[], atLeast: number): Promise<number[]> {
    const deadline = Date.now() + LOG_SETTLE_MS;
    let last = this.logged(offsets);
    for (;;) {
      await sleep(200);
      const now = this.logged(offsets);
      const stable = now.every((v, i) => v === last[i]);
      last = now;
      if ((stable && now.every((v) => v >= atLeast)) || Date.now() > deadline) return now;
    }
  }

  load(): Promise<LoadResult> {
    return this.lab.runInPod(CLIENT, loadArgs(this.server, this.options)) as Promise<LoadResult>;
  }

  /** Both agents' memory after a full GC (their inspectors open: `openInspectors`). */
  liveMemory(): Promise<LiveMemory[]> {
    const netns = (node: string): string => {
      const n = this.lab.state().nodes.find((x) => x.name === node);
      if (n === undefined) throw new Error(`the lab has no node ${node}`);
      return n.netns;
    };
    return Promise.all(NODES.map((node) => liveMemoryInNetns(netns(node), this.lab.signal)));
  }

  async openInspectors(): Promise<void> {
    for (const a of this.agents()) openInspector(a.pid);
    await this.lab.until("the agents' inspectors", 15_000, () => this.liveMemory());
  }

  async openReaders(kind: FlowReaderKind): Promise<FlowStreamClient[][]> {
    const dir = join(this.lab.dir, ADMIN_DIR);
    return Promise.all(
      NODES.map((node) =>
        Promise.all(
          Array.from({ length: this.options.readersPerAgent }, () =>
            FlowStreamClient.open(join(dir, `agent-${node}.sock`), FLOWS_PATH, kind),
          ),
        ),
      ),
    );
  }

  /**
   * Stalled readers show that they are skipped only once the ring has overwritten the events they were
   * due: more than its capacity since they stalled. A short run, or a slow machine, may not get there;
   * then short unmeasured loads follow (the readers still stalled) until it has. Returns how many.
   */
  async lapStalledReaders(offsets: readonly number[], logged: readonly number[]): Promise<number> {
    const lapped = (l: readonly number[]): boolean =>
      Math.min(...l) * EVENTS_PER_CONNECTION >= DEFAULT_FLOW_RING_CAPACITY + LAP_MARGIN_EVENTS;
    let loads = 0;
    for (let l = logged; !lapped(l) && loads < MAX_LAP_LOADS; loads++) {
      await this.lab.runInPod(CLIENT, [...loadCommand(this.server), ...windowArgs(1, 0)]);
      l = await this.loggedSettled(offsets, 0);
    }
    return loads;
  }

  /** One run of `mode`: readers attached, the load, the agents watched; then the readers released. */
  async run(mode: ObserveMode, round: number): Promise<ModeRun> {
    const readers = mode === 'none' ? NODES.map(() => []) : await this.openReaders(READER_KIND[mode]);
    const agents = this.agents();
    const offsets = this.logOffsets();
    const startedAt = new Date().toISOString();
    const machine0 = readMachineCpu();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const watch = UsageWatch.start(agents);
    let load: LoadResult;
    let usage: AgentRunUsage[];
    try {
      load = await this.load();
    } finally {
      usage = watch.stop();
    }
    const wallSeconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const machine = readMachineCpu();
    const observerCpuSeconds = Math.round((cpu.user + cpu.system) / 1e4) / 100;
    const agentsCpu = usage.reduce((s, u) => s + u.cpuSeconds, 0);
    const otherCpuSeconds = machine.busySeconds - machine0.busySeconds - agentsCpu - observerCpuSeconds;
    // With the readers still connected and the stalled ones still not reading: what they cost now. The
    // collection also leaves the next run a compacted heap, so none inherits another's garbage.
    const liveEnd = await this.liveMemory();
    const logged = await this.loggedSettled(offsets, load.requests);
    const lapLoads = mode === 'stalled' ? await this.lapStalledReaders(offsets, logged) : 0;
    // Stalled readers read at last: what they get first is what was buffered for them, then the loss.
    await Promise.all(
      readers.flat().map((r) => (r.kind === 'stalled' ? r.release(RELEASE_TIMEOUT_MS) : null)),
    );
    const stats = readers.map((rs) => rs.map((r) => r.stats()));
    for (const r of readers.flat()) r.close();
    const restarted = this.agents().some((a, i) => a.pid !== agents[i]!.pid);
    this.problems.push(...runProblems(`round ${round}, ${mode}`, load, logged, stats, restarted));
    const figures: LoadFigures = {
      achievedRps: load.achievedRps,
      requests: load.requests,
      errorCount: load.errorCount,
      p50Us: load.latencyUs.p50,
      p90Us: load.latencyUs.p90,
      p99Us: load.latencyUs.p99,
      maxUs: load.latencyUs.max,
    };
    return {
      mode,
      round,
      startedAt,
      lapLoads,
      otherCpuSeconds: Math.round(otherCpuSeconds * 100) / 100,
      otherCpuUsPerRequest: logged[0]! > 0 ? Math.round((otherCpuSeconds / logged[0]!) * 1e6) : null,
      stealSeconds: Math.round((machine.stealSeconds - machine0.stealSeconds) * 100) / 100,
      wallSeconds: Math.round(wallSeconds * 100) / 100,
      load: figures,
      observerCpuSeconds,
      agents: usage.map((u, i): AgentRun => ({
        ...u,
        liveEnd: liveEnd[i]!,
        liveEndMiB: liveMiB(liveEnd[i]!),
        rssAfterGcMiB: Math.round((liveEnd[i]!.rss / 2 ** 20) * 10) / 10,
        connectionsLogged: logged[i]!,
        cpuUsPerRequest: logged[i]! > 0 ? Math.round((u.cpuSeconds / logged[i]!) * 1e7) / 10 : null,
        readers: mode === 'none' ? null : readerTotals(stats[i]!),
      })),
    };
  }
}

/** Why a run does not measure what it claims, if it does not. */
function runProblems(
  where: string,
  load: LoadResult,
  logged: readonly number[],
  readers: readonly (readonly FlowReaderStats[])[],
  agentRestarted: boolean,
): string[] {
  const problems: string[] = [];
  if (agentRestarted) problems.push(`${where}: an agent restarted during the run`);
  NODES.forEach((node, i) => {
    if (logged[i]! < load.requests)
      problems.push(
        `${where}: ${node}'s agent logged ${logged[i]} client → echo-v2 connections, fewer than the ${load.requests} requests measured`,
      );
    for (const r of readers[i]!)
      if (r.endedEarly !== undefined)
        problems.push(`${where}: a reader of ${node}'s flows ended early: ${r.endedEarly}`);
  });
  if (load.errorCount > load.requests / 100)
    problems.push(`${where}: ${load.errorCount} of ${load.requests} requests failed`);
  return problems;
}

async function setUp(lab: BenchLab, out: (line: string) => void): Promise<void> {
  const dir = demoManifestsDir();
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => join(dir, f));
  await lab.weft(['apply', ...files.flatMap((f) => ['-f', f]), '--dir', lab.dir]);
  await lab.weft(['label', 'namespace', NAMESPACE, 'istio.io/dataplane-mode=ambient', '--dir', lab.dir]);
  await lab.untilPodsReady([NAMESPACE], 4);
  out(`the demo applied, namespace ${NAMESPACE} enrolled, its pods ready`);
  // A new connection per request from one address: the client and both agents (which dial per
  // connection) reuse TIME_WAIT ports, or the port search, not the agent, would be measured.
  const tuneCmd = ['--', 'sysctl', '-qw', 'net.ipv4.tcp_tw_reuse=1'];
  await Promise.all(
    [CLIENT, ...NODES].map((where) => lab.weft(['lab', 'exec', '--dir', lab.dir, where, ...tuneCmd])),
  );
}

export async function runObserveCost(o: ObserveCostOptions): Promise<ObserveCostResult> {
  const out = o.out;
  const loadavgAtStart = loadavg().map((v) => Math.round(v * 100) / 100);
  return withBenchLab('weft-bench-observe-', out, async (lab) => {
    out(`built the lab in ${lab.dir}`);
    await setUp(lab, out);
    const bench = new ObserveBench(lab, o);
    await lab.until(`${CLIENT} → ${SERVER} to be carried by both agents`, 30_000, async () => {
      const offsets = bench.logOffsets();
      await lab.runInPod(CLIENT, [
        'bench',
        'load',
        '--target',
        `${bench.server}:${ECHO_PORT}`,
        '--connections',
        '1',
        '--duration',
        '200ms',
        '--warmup',
        '0s',
      ]);
      const logged = await bench.loggedSettled(offsets, 1);
      if (logged.every((n) => n > 0)) return true;
      throw new Error(`the agents logged ${logged.join(' and ')} probe connections (not meshed yet)`);
    });
    await bench.openInspectors();
    out(`meshed: ${CLIENT} (${bench.client}) → ${SERVER} (${bench.server}:${ECHO_PORT}) through both agents`);
    // One unmeasured run first: the agents' heaps and JIT reach their working size under this load.
    out('warm-up run (not measured) …');
    await bench.run('none', 0);
    bench.problems.length = 0;
    const runs: ModeRun[] = [];
    for (let round = 1; round <= o.rounds; round++)
      for (const mode of OBSERVE_MODES) {
        const r = await bench.run(mode, round);
        runs.push(r);
        const a = r.agents;
        out(
          `round ${round} ${mode}: ${r.load.achievedRps} rps, p99 ${r.load.p99Us} µs; RSS peak ${a.map((x) => `${x.node} ${x.rssPeakMiB}`).join(', ')} MiB`,
        );
      }
    const summary = summarize(runs);
    const criteria = evaluateCriteria(summary, o.readersPerAgent);
    const result: ObserveCostResult = {
      command: o.command,
      date: new Date().toISOString(),
      commit: describeCommit(),
      labId: lab.state().id,
      durationS: o.durationS,
      warmupS: o.warmupS,
      rounds: o.rounds,
      readersPerAgent: o.readersPerAgent,
      load: `weft ${loadArgs(bench.server, o).join(' ')} (in ${CLIENT}, to ${SERVER} on node-2)`,
      machine: { cpus: cpus().length, loadavgAtStart },
      runs,
      summary,
      check: { passed: bench.problems.length === 0, problems: [...bench.problems] },
      disturbed: disturbedRuns(runs),
      criteria,
      criteriaPassed: criteria.every((c) => c.passed),
    };
    return { result, ok: result.check.passed };
  });
}
