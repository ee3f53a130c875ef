// client → agent → agent → server against the direct path and an HAProxy mTLS pair, in one run, on the
// same two lab nodes. Scenarios run interleaved per test so drift hits all alike. Agent (and HAProxy)
// CPU and RSS are sampled from /proc around each run.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { MeshLab } from '../lab/mesh-lab.js';
import { manifestFile, namespaceManifest, podManifest } from '../lab/manifests.js';
import { issueCertificateFiles } from '../lab/certs.js';
import { waitFor, weftCliPath } from '../lab/processes.js';
import { startHaproxyPair } from './haproxy.js';
import {
  bulkArgs,
  childJson,
  fixedRateArgs,
  formatPathTable,
  formatRatioTable,
  interleaved,
  maxRateArgs,
  mib,
  PROBE_ARGS,
  round3,
  sum,
  withUsage,
  type LoadWindow,
  type PathRow,
} from './path-compare.js';
import type { BulkResult } from './load/bulk.js';
import type { LoadResult } from './load/run.js';

const MANIFESTS = manifestFile(
  namespaceManifest('bench', { ambient: true }),
  podManifest({
    name: 'client-0',
    namespace: 'bench',
    serviceAccount: 'client',
    node: 'node-1',
    ip: '10.77.1.10',
  }),
  podManifest({
    name: 'server-0',
    namespace: 'bench',
    serviceAccount: 'server',
    node: 'node-2',
    ip: '10.77.2.10',
  }),
);

const CLIENT_IP = '10.77.1.10';
const ECHO = '10.77.2.10:8080';
const DISCARD = '10.77.2.10:8081';

type ScenarioName = 'direct' | 'weft' | 'haproxy';
const SCENARIOS: readonly ScenarioName[] = ['direct', 'weft', 'haproxy'];

/** How each scenario's client reaches the echo and discard servers. */
const ROUTES: Record<ScenarioName, { echo: string[]; discard: string[] }> = {
  direct: { echo: ['--target', ECHO], discard: ['--target', DISCARD] },
  weft: {
    echo: ['--target', ECHO, '--socks5', '127.0.0.1:15080'],
    discard: ['--target', DISCARD, '--socks5', '127.0.0.1:15080'],
  },
  haproxy: { echo: ['--target', '127.0.0.1:16001'], discard: ['--target', '127.0.0.1:16002'] },
};

export interface CompareOptions {
  readonly durationS: number;
  readonly warmupS: number;
  readonly out: (line: string) => void;
}

export interface ProxyCost {
  /** vCPU (CPU seconds per second) of the proxies on the path, per 1000 requests/s. */
  readonly vcpuPer1000Rps: number;
  /** Sum of the proxies' resident memory at the end of the run, MiB. */
  readonly rssMiB: number;
}

export interface CompareRow extends PathRow {
  readonly scenario: ScenarioName;
  readonly fixed1000: LoadResult;
  readonly fixed1000Cost: ProxyCost | undefined;
  readonly maxRps: LoadResult;
  readonly maxRpsCost: ProxyCost | undefined;
  readonly bulk1: BulkResult;
  readonly bulk8: BulkResult;
}

function runClient(lab: MeshLab, args: string[]): Promise<unknown> {
  const child = lab
    .node(0)
    .spawn(
      process.execPath,
      [weftCliPath(), 'bench', 'tcp', '--local-address', CLIENT_IP, '--json', ...args],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
  return childJson(child, `bench client ${args.join(' ')}`);
}

function proxiesOf(lab: MeshLab, scenario: ScenarioName): ChildProcess[] {
  const names =
    scenario === 'weft'
      ? ['agent-node-1', 'agent-node-2']
      : scenario === 'haproxy'
        ? ['haproxy-client', 'haproxy-server']
        : [];
  return names.map((n) => lab.processes.get(n)!);
}

async function measured<T extends { achievedRps?: number }>(
  lab: MeshLab,
  scenario: ScenarioName,
  run: () => Promise<T>,
): Promise<{ result: T; cost: ProxyCost | undefined }> {
  const procs = proxiesOf(lab, scenario);
  const { result, usage } = await withUsage(
    procs.map((p) => p.pid!),
    run,
  );
  if (procs.length === 0) return { result, cost: undefined };
  const rps = result.achievedRps ?? 0;
  return {
    result,
    cost: {
      vcpuPer1000Rps: rps > 0 ? round3(sum(usage.cpuSeconds) / usage.seconds / (rps / 1000)) : NaN,
      rssMiB: mib(sum(usage.rssBytes)),
    },
  };
}

export async function runMeshCompare(opts: CompareOptions): Promise<CompareRow[]> {
  const out = opts.out;
  out('building the lab: two nodes, CA, two agents …');
  const lab = await MeshLab.start({ 'bench.yaml': MANIFESTS });
  try {
    const dir = mkdtempSync(join(tmpdir(), 'weft-bench-'));
    lab.spawnWeft(1, 'bench-servers', ['bench', 'serve', '--echo', ECHO, '--discard', DISCARD]);
    const client = await issueCertificateFiles(
      lab.caDir,
      'cluster.local',
      'spiffe://cluster.local/ns/bench/sa/haproxy-client',
      dir,
      'hp-client',
    );
    const server = await issueCertificateFiles(
      lab.caDir,
      'cluster.local',
      'spiffe://cluster.local/ns/bench/sa/haproxy-server',
      dir,
      'hp-server',
    );
    startHaproxyPair(
      lab,
      dir,
      [
        { listen: '127.0.0.1:16001', tunnel: '10.77.0.2:16443', target: ECHO },
        { listen: '127.0.0.1:16002', tunnel: '10.77.0.2:16444', target: DISCARD },
      ],
      { client: client.combined, server: server.combined, ca: lab.rootCertFile },
    );
    // Everything is up when a request succeeds on every path.
    for (const s of SCENARIOS)
      await waitFor(`the ${s} path`, async () => {
        await runClient(lab, [...ROUTES[s].echo, ...PROBE_ARGS]);
        return true;
      });

    const w: LoadWindow = opts;
    const rows = new Map<ScenarioName, Partial<{ -readonly [K in keyof CompareRow]: CompareRow[K] }>>();
    for (const s of SCENARIOS) rows.set(s, { scenario: s });
    const step = (label: string, fn: (s: ScenarioName) => Promise<void>) =>
      interleaved(SCENARIOS, label, out, fn);
    await step('1000 rps, 4 connections, 1 KiB', async (s) => {
      const m = await measured(
        lab,
        s,
        async () => (await runClient(lab, [...ROUTES[s].echo, ...fixedRateArgs(w)])) as LoadResult,
      );
      Object.assign(rows.get(s)!, { fixed1000: m.result, fixed1000Cost: m.cost });
    });
    await step('max rps, 16 connections, 1 KiB', async (s) => {
      const m = await measured(
        lab,
        s,
        async () => (await runClient(lab, [...ROUTES[s].echo, ...maxRateArgs(w)])) as LoadResult,
      );
      Object.assign(rows.get(s)!, { maxRps: m.result, maxRpsCost: m.cost });
    });
    await step('bulk, 1 stream', async (s) => {
      rows.get(s)!.bulk1 = (await runClient(lab, [...ROUTES[s].discard, ...bulkArgs(w, 1)])) as BulkResult;
    });
    await step('bulk, 8 streams', async (s) => {
      rows.get(s)!.bulk8 = (await runClient(lab, [...ROUTES[s].discard, ...bulkArgs(w, 8)])) as BulkResult;
    });
    return SCENARIOS.map((s) => rows.get(s) as CompareRow);
  } finally {
    await lab.stop();
  }
}

/** The comparison as Markdown tables, with ratios against direct and against HAProxy. */
export function formatCompare(rows: readonly CompareRow[]): string {
  return [
    formatPathTable(rows),
    '',
    formatRatioTable(
      rows,
      [
        { scenario: 'direct', label: 'direct' },
        { scenario: 'haproxy', label: 'HAProxy' },
      ],
      [
        {
          header: 'proxies vCPU per 1000 rps (@1000 / @max)',
          cell: (r) => `${r.fixed1000Cost?.vcpuPer1000Rps ?? '–'} / ${r.maxRpsCost?.vcpuPer1000Rps ?? '–'}`,
        },
        { header: 'proxies RSS MiB', cell: (r) => `${r.maxRpsCost?.rssMiB ?? '–'}` },
      ],
    ),
  ].join('\n');
}
