// `weft bench capture`: what transparent capture costs by itself, apart from the tunnel. A real
// `weft lab` (two nodes, its agents capturing with tc eBPF) with a plain and an enrolled namespace, and
// three paths from node 1 to node 2, run interleaved per test:
//
// - direct: plain client → plain server; nothing captures it;
// - capture: enrolled client → plain server; node 1's agent captures the connection and, the server
//   being outside the mesh, pipes the bytes to it itself (verdict `passthrough`, no TLS): the cost of
//   capture and one user-space hop, without HBONE;
// - mesh: enrolled client → enrolled server; captured and carried over HBONE (mTLS) by both agents.
//
// Each captured run is checked against node 1's access log: a run whose connections the agent did not
// log with the expected verdict did not measure what it claims, and fails the bench.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { manifestFile, namespaceManifest, podManifest } from '../lab/manifests.js';
import { BenchLab, withBenchLab } from './bench-lab.js';
import {
  bulkArgs,
  FIXED_RATE_CONNECTIONS,
  fixedRateArgs,
  formatPathTable,
  formatRatioTable,
  interleaved,
  MAX_RATE_CONNECTIONS,
  maxRateArgs,
  mib,
  PROBE_ARGS,
  withUsage,
  type LoadWindow,
  type PathRow,
} from './path-compare.js';
import type { BulkResult } from './load/bulk.js';
import type { LoadResult } from './load/run.js';

export type CapturePath = 'direct' | 'capture' | 'mesh';
export const CAPTURE_PATHS: readonly CapturePath[] = ['direct', 'capture', 'mesh'];

const PLAIN_NS = 'plain';
const MESH_NS = 'mesh';
const PLAIN_CLIENT = '10.77.1.10';
const MESH_CLIENT = '10.77.1.11';
const PLAIN_SERVER = '10.77.2.10';
const MESH_SERVER = '10.77.2.11';
const ECHO_PORT = 8080;
const DISCARD_PORT = 8081;
const NODES = ['node-1', 'node-2'] as const;

const SERVE = [
  'weft',
  'bench',
  'serve',
  '--echo',
  `0.0.0.0:${ECHO_PORT}`,
  '--discard',
  `0.0.0.0:${DISCARD_PORT}`,
];
const SLEEP = ['sleep', 'infinity'];

/** Both namespaces unlabelled: `mesh` is enrolled afterwards with `weft label namespace`. */
const MANIFESTS = manifestFile(
  namespaceManifest(PLAIN_NS),
  namespaceManifest(MESH_NS),
  podManifest({
    name: 'client',
    namespace: PLAIN_NS,
    serviceAccount: 'client',
    node: 'node-1',
    ip: PLAIN_CLIENT,
    command: SLEEP,
  }),
  podManifest({
    name: 'client',
    namespace: MESH_NS,
    serviceAccount: 'client',
    node: 'node-1',
    ip: MESH_CLIENT,
    command: SLEEP,
  }),
  podManifest({
    name: 'server',
    namespace: PLAIN_NS,
    serviceAccount: 'server',
    node: 'node-2',
    ip: PLAIN_SERVER,
    command: SERVE,
    containerPorts: [ECHO_PORT, DISCARD_PORT],
  }),
  podManifest({
    name: 'server',
    namespace: MESH_NS,
    serviceAccount: 'server',
    node: 'node-2',
    ip: MESH_SERVER,
    command: SERVE,
    containerPorts: [ECHO_PORT, DISCARD_PORT],
  }),
);

/** Which pod each path's client runs in, and which server it reaches. */
const ROUTES: Record<CapturePath, { readonly pod: string; readonly server: string }> = {
  direct: { pod: `${PLAIN_NS}/client`, server: PLAIN_SERVER },
  capture: { pod: `${MESH_NS}/client`, server: PLAIN_SERVER },
  mesh: { pod: `${MESH_NS}/client`, server: MESH_SERVER },
};

export interface CaptureCostOptions extends LoadWindow {
  readonly out: (line: string) => void;
}

/** The agents' CPU and memory over one run; index 0 is node-1's agent, 1 node-2's. */
export interface AgentUsage {
  /** Wall-clock seconds of the whole run (client start-up included). */
  readonly seconds: number;
  /** Seconds the load ran: warm-up + measured duration. */
  readonly loadSeconds: number;
  readonly cpuSeconds: readonly [number, number];
  /** Resident memory at the end of the run. */
  readonly rssMiB: readonly [number, number];
}

export interface CaptureRow extends PathRow {
  readonly scenario: CapturePath;
  readonly fixed1000: LoadResult;
  readonly fixed1000Cost: AgentUsage;
  readonly maxRps: LoadResult;
  readonly maxRpsCost: AgentUsage;
  readonly bulk1: BulkResult;
  readonly bulk1Cost: AgentUsage;
}

/** What node-1's access log said about one captured run. */
export interface LoggedRun {
  readonly path: CapturePath;
  readonly test: string;
  /** Connections the run opened. */
  readonly connections: number;
  /** Connections of this route logged with the expected verdict (`passthrough`, or `allowed` via HBONE). */
  readonly logged: number;
  /** Connections of this route logged with any other verdict. */
  readonly otherVerdict: number;
}

export interface CaptureCheck {
  readonly passed: boolean;
  readonly problems: readonly string[];
  readonly runs: readonly LoggedRun[];
  /** Connections from the plain client node-1's agent logged over the whole bench (must be 0). */
  readonly directSeen: number;
  /** Totals over the bench (probes included), as node-1's access log has them. */
  readonly totals: AccessCounts;
}

export interface CaptureCostResult {
  readonly date: string;
  /** The lab the bench built (and took down). */
  readonly labId: string;
  readonly durationS: number;
  readonly warmupS: number;
  /** How busy the machine was: other labs running beside this one disturb the figures. */
  readonly machine: {
    readonly cpus: number;
    readonly loadavgAtStart: readonly number[];
    readonly otherLabsAtStart: readonly string[];
    readonly otherLabsAtEnd: readonly string[];
  };
  readonly paths: readonly CaptureRow[];
  readonly check: CaptureCheck;
}

/** node-1's outbound access log, by route. */
export interface AccessCounts {
  /** mesh client → plain server, verdict passthrough. */
  readonly passthrough: number;
  readonly passthroughOther: number;
  /** mesh client → mesh server over HBONE, verdict allowed. */
  readonly mesh: number;
  readonly meshOther: number;
  /** Anything from the plain client (never captured). */
  readonly direct: number;
  /** Lines of the two captured routes that carry an error (a reset at close, say). */
  readonly withError: number;
}

interface AccessLine {
  readonly msg?: unknown;
  readonly direction?: unknown;
  readonly 'src.addr'?: unknown;
  readonly 'dst.addr'?: unknown;
  readonly 'dst.hbone_addr'?: unknown;
  readonly verdict?: unknown;
  readonly error?: unknown;
}

function onHost(addr: unknown, ip: string): boolean {
  return typeof addr === 'string' && addr.startsWith(`${ip}:`);
}

/** Counts node-1's `connection complete` lines per route. */
export function countAccessLog(text: string): AccessCounts {
  const c = { passthrough: 0, passthroughOther: 0, mesh: 0, meshOther: 0, direct: 0, withError: 0 };
  for (const raw of text.split('\n')) {
    if (!raw.includes('"connection complete"')) continue;
    let l: AccessLine;
    try {
      l = JSON.parse(raw) as AccessLine;
    } catch {
      continue;
    }
    if (l.msg !== 'connection complete' || l.direction !== 'outbound') continue;
    if (onHost(l['src.addr'], PLAIN_CLIENT)) {
      c.direct++;
      continue;
    }
    if (!onHost(l['src.addr'], MESH_CLIENT)) continue;
    if (onHost(l['dst.addr'], PLAIN_SERVER)) {
      if (l.verdict === 'passthrough') c.passthrough++;
      else c.passthroughOther++;
    } else if (onHost(l['dst.hbone_addr'], MESH_SERVER)) {
      if (l.verdict === 'allowed') c.mesh++;
      else c.meshOther++;
    } else continue;
    if (l.error !== undefined) c.withError++;
  }
  return c;
}

/** `weft bench tcp` in the path's client pod, against its server. */
function client(lab: BenchLab, path: CapturePath, port: number, args: readonly string[]): Promise<unknown> {
  const { pod, server } = ROUTES[path];
  return lab.runInPod(pod, ['bench', 'tcp', '--target', `${server}:${port}`, ...args]);
}

function agentPids(lab: BenchLab): [number, number] {
  return [lab.agentPid(NODES[0]), lab.agentPid(NODES[1])];
}

function accessCounts(lab: BenchLab): AccessCounts {
  return countAccessLog(readFileSync(join(lab.state().logsDir, `agent-${NODES[0]}.log`), 'utf8'));
}

/** Which counter of node-1's access log a path's connections go to, and the other-verdict one. */
const LOGGED: Record<'capture' | 'mesh', { ok: keyof AccessCounts; other: keyof AccessCounts }> = {
  capture: { ok: 'passthrough', other: 'passthroughOther' },
  mesh: { ok: 'mesh', other: 'meshOther' },
};

/** Waits (bounded) until node-1 logged `n` more connections of `path` than `before` (lines come at close). */
async function loggedSince(
  lab: BenchLab,
  path: 'capture' | 'mesh',
  before: AccessCounts,
  n: number,
): Promise<{ logged: number; otherVerdict: number }> {
  const { ok, other } = LOGGED[path];
  let now = accessCounts(lab);
  for (let i = 0; i < 50 && now[ok] - before[ok] < n; i++) {
    await sleep(100);
    now = accessCounts(lab);
  }
  return { logged: now[ok] - before[ok], otherVerdict: now[other] - before[other] };
}

function round2(v: number): number {
  return Math.round(v * 100) / 100;
}

/** Ids of the weft labs on this machine (from their network namespaces), but `ownId`. */
async function otherLabs(ownId: string | undefined): Promise<string[]> {
  const child = spawn('ip', ['netns', 'list'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await once(child, 'exit');
  const ids = new Set<string>();
  for (const line of out.split('\n')) {
    const m = /^weft-([0-9a-z]+)-/.exec(line);
    if (m && m[1] !== ownId) ids.add(m[1]!);
  }
  return [...ids].sort();
}

export async function runCaptureCost(opts: CaptureCostOptions): Promise<CaptureCostResult> {
  const out = opts.out;
  const loadavgAtStart = loadavg().map(round2);
  const labsAtStart = await otherLabs(undefined);
  return withBenchLab('weft-bench-capture-', out, async (lab) => {
    out(`built the lab in ${lab.dir}: two nodes, the CA, two capturing agents`);
    const manifests = join(lab.top, 'capture-bench.yaml');
    writeFileSync(manifests, MANIFESTS);
    await lab.weft(['apply', '-f', manifests, '--dir', lab.dir]);
    await lab.weft(['label', 'namespace', MESH_NS, 'istio.io/dataplane-mode=ambient', '--dir', lab.dir]);
    out('pods: plain/client and mesh/client on node-1, plain/server and mesh/server on node-2');
    await lab.until('the four pods to be ready', 60_000, () =>
      Promise.resolve(
        lab.state().pods.filter((p) => p.phase === 'ready' && [PLAIN_NS, MESH_NS].includes(p.namespace))
          .length === 4
          ? true
          : undefined,
      ),
    );

    // Every path works, and the captured ones are captured as intended, before anything is measured.
    for (const path of CAPTURE_PATHS)
      await lab.until(`the ${path} path`, 30_000, async () => {
        const before = accessCounts(lab);
        await client(lab, path, ECHO_PORT, PROBE_ARGS);
        if (path === 'direct') return true;
        const seen = await loggedSince(lab, path, before, 1);
        if (seen.logged > 0) return true;
        throw new Error(
          `node-1's agent did not log the probe connection as ${LOGGED[path].ok}` +
            (seen.otherVerdict > 0 ? ` (it logged it with another verdict)` : ' (not captured)'),
        );
      });

    const runs: LoggedRun[] = [];
    const rows = new Map<CapturePath, Partial<{ -readonly [K in keyof CaptureRow]: CaptureRow[K] }>>();
    for (const p of CAPTURE_PATHS) rows.set(p, { scenario: p });
    const measured = async <T>(
      path: CapturePath,
      test: string,
      connections: number,
      loadSeconds: number,
      run: () => Promise<T>,
    ): Promise<{ result: T; cost: AgentUsage }> => {
      const pids = agentPids(lab);
      const before = accessCounts(lab);
      const { result, usage } = await withUsage(pids, run).catch((err: unknown) => {
        if (agentPids(lab).some((pid, i) => pid !== pids[i]))
          throw new Error(`an agent restarted during the ${path} run (${test})`, { cause: err });
        throw err;
      });
      if (path !== 'direct')
        runs.push({ path, test, connections, ...(await loggedSince(lab, path, before, connections)) });
      return {
        result,
        cost: {
          seconds: round2(usage.seconds),
          loadSeconds,
          cpuSeconds: [round2(usage.cpuSeconds[0]!), round2(usage.cpuSeconds[1]!)],
          rssMiB: [mib(usage.rssBytes[0]!), mib(usage.rssBytes[1]!)],
        },
      };
    };
    const w: LoadWindow = opts;
    const step = (label: string, fn: (p: CapturePath) => Promise<void>) =>
      interleaved(CAPTURE_PATHS, label, out, fn);
    await step('1000 rps, 4 connections, 1 KiB', async (p) => {
      const m = await measured(
        p,
        'fixed1000',
        FIXED_RATE_CONNECTIONS,
        w.warmupS + w.durationS,
        async () => (await client(lab, p, ECHO_PORT, fixedRateArgs(w))) as LoadResult,
      );
      Object.assign(rows.get(p)!, { fixed1000: m.result, fixed1000Cost: m.cost });
    });
    await step('max rps, 16 connections, 1 KiB', async (p) => {
      const m = await measured(
        p,
        'maxRps',
        MAX_RATE_CONNECTIONS,
        w.warmupS + w.durationS,
        async () => (await client(lab, p, ECHO_PORT, maxRateArgs(w))) as LoadResult,
      );
      Object.assign(rows.get(p)!, { maxRps: m.result, maxRpsCost: m.cost });
    });
    await step('bulk, 1 stream', async (p) => {
      const m = await measured(
        p,
        'bulk1',
        1,
        w.durationS,
        async () => (await client(lab, p, DISCARD_PORT, bulkArgs(w, 1))) as BulkResult,
      );
      Object.assign(rows.get(p)!, { bulk1: m.result, bulk1Cost: m.cost });
    });

    const totals = accessCounts(lab);
    const problems: string[] = [];
    for (const r of runs) {
      const expected = r.path === 'capture' ? 'passthrough' : 'allowed (HBONE)';
      if (r.logged < r.connections)
        problems.push(
          `${r.path} ${r.test}: node-1's agent logged ${r.logged} of ${r.connections} connections as ${expected}` +
            (r.otherVerdict > 0 ? ` and ${r.otherVerdict} with another verdict` : ''),
        );
      else if (r.otherVerdict > 0)
        problems.push(
          `${r.path} ${r.test}: ${r.otherVerdict} connections logged with a verdict other than ${expected}`,
        );
    }
    if (totals.direct > 0)
      problems.push(
        `node-1's agent logged ${totals.direct} connections of the plain client, which it must not capture`,
      );
    const result: CaptureCostResult = {
      date: new Date().toISOString(),
      labId: lab.state().id,
      durationS: opts.durationS,
      warmupS: opts.warmupS,
      machine: {
        cpus: cpus().length,
        loadavgAtStart,
        otherLabsAtStart: labsAtStart,
        otherLabsAtEnd: await otherLabs(lab.state().id),
      },
      paths: CAPTURE_PATHS.map((p) => rows.get(p) as CaptureRow),
      check: { passed: problems.length === 0, problems, runs, directSeen: totals.direct, totals },
    };
    return { result, ok: result.check.passed };
  });
}

function perRequestUs(cost: AgentUsage, rps: number, node: 0 | 1): string {
  const requests = rps * cost.loadSeconds;
  return requests > 0 ? ((cost.cpuSeconds[node] * 1e6) / requests).toFixed(1) : '–';
}

function pair(f: (node: 0 | 1) => string): string {
  return `${f(0)} + ${f(1)}`;
}

/** The result as Markdown: per-path figures, ratios against direct and mesh, the agents' costs. */
export function formatCaptureCost(result: CaptureCostResult): string {
  const rows = result.paths;
  const costs = [
    '| path | agents CPU µs per request @1000 rps (node-1 + node-2) | @max rps | agents CPU s per GB, bulk 1 stream | agents RSS MiB after max rps (node-1 / node-2) |',
    '|---|---:|---:|---:|---:|',
    ...rows.map((r) => {
      const gb = r.bulk1.bytes / 1e9;
      return `| ${r.scenario} | ${pair((n) => perRequestUs(r.fixed1000Cost, r.fixed1000.achievedRps, n))} | ${pair((n) => perRequestUs(r.maxRpsCost, r.maxRps.achievedRps, n))} | ${pair((n) => (gb > 0 ? (r.bulk1Cost.cpuSeconds[n] / gb).toFixed(2) : '–'))} | ${r.maxRpsCost.rssMiB[0]} / ${r.maxRpsCost.rssMiB[1]} |`;
    }),
  ];
  const c = result.check;
  const check = c.passed
    ? `capture check passed: every captured run's connections are in node-1's access log (passthrough ${c.totals.passthrough}, HBONE ${c.totals.mesh}, plain client ${c.directSeen})`
    : `CAPTURE CHECK FAILED:\n${c.problems.map((p) => `- ${p}`).join('\n')}`;
  return [
    formatPathTable(rows),
    '',
    formatRatioTable(
      rows,
      [
        { scenario: 'direct', label: 'direct' },
        { scenario: 'mesh', label: 'mesh' },
      ],
      [],
    ),
    '',
    ...costs,
    '',
    check,
  ].join('\n');
}
