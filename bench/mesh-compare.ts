// client → agent → agent → server against the direct path and an HAProxy mTLS pair, in one run, on the
// same two lab nodes. Scenarios run interleaved per test so drift hits all alike. Agent (and HAProxy)
// CPU and RSS are sampled from /proc around each run.
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { MeshLab } from '../lab/mesh-lab.js';
import { manifestFile, namespaceManifest, podManifest } from '../lab/manifests.js';
import { issueCertificateFiles } from '../lab/certs.js';
import { waitFor, weftCliPath } from '../lab/processes.js';
import { startHaproxyPair } from './haproxy.js';
import { sampleProcess, type ProcSample } from './proc-stats.js';
import type { BulkResult, TcpLoadResult } from './tcp-load.js';

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

export interface CompareRow {
  readonly scenario: ScenarioName;
  readonly fixed1000: TcpLoadResult;
  readonly fixed1000Cost: ProxyCost | undefined;
  readonly maxRps: TcpLoadResult;
  readonly maxRpsCost: ProxyCost | undefined;
  readonly bulk1: BulkResult;
  readonly bulk8: BulkResult;
}

async function runClient(lab: MeshLab, args: string[]): Promise<unknown> {
  const child = lab
    .node(0)
    .spawn(
      process.execPath,
      [weftCliPath(), 'bench', 'tcp', '--local-address', CLIENT_IP, '--json', ...args],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const [code] = (await once(child, 'exit')) as [number];
  if (code !== 0) throw new Error(`bench client ${args.join(' ')} failed (${code}): ${err.trim()}`);
  return JSON.parse(out.trim().split('\n').at(-1)!) as unknown;
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
  const before: ProcSample[] = procs.map((p) => sampleProcess(p.pid!));
  const t0 = performance.now();
  const result = await run();
  const seconds = (performance.now() - t0) / 1000;
  if (procs.length === 0) return { result, cost: undefined };
  const after = procs.map((p) => sampleProcess(p.pid!));
  const cpu = after.reduce((s, a, i) => s + a.cpuSeconds - before[i]!.cpuSeconds, 0);
  const rps = result.achievedRps ?? 0;
  return {
    result,
    cost: {
      vcpuPer1000Rps: rps > 0 ? Math.round((cpu / seconds / (rps / 1000)) * 1000) / 1000 : NaN,
      rssMiB: Math.round(after.reduce((s, a) => s + a.rssBytes, 0) / 2 ** 20),
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
        await runClient(lab, [
          ...ROUTES[s].echo,
          '--connections',
          '1',
          '--duration',
          '200ms',
          '--warmup',
          '0s',
        ]);
        return true;
      });

    const common = ['--payload', '1024', '--duration', `${opts.durationS}s`, '--warmup', `${opts.warmupS}s`];
    const rows = new Map<ScenarioName, Partial<{ -readonly [K in keyof CompareRow]: CompareRow[K] }>>();
    for (const s of SCENARIOS) rows.set(s, { scenario: s });
    const step = async (label: string, fn: (s: ScenarioName) => Promise<void>) => {
      for (const s of SCENARIOS) {
        out(`  ${label}: ${s}`);
        await fn(s);
      }
    };
    await step('1000 rps, 4 connections, 1 KiB', async (s) => {
      const m = await measured(
        lab,
        s,
        async () =>
          (await runClient(lab, [
            ...ROUTES[s].echo,
            ...common,
            '--connections',
            '4',
            '--rate',
            '1000',
          ])) as TcpLoadResult,
      );
      Object.assign(rows.get(s)!, { fixed1000: m.result, fixed1000Cost: m.cost });
    });
    await step('max rps, 16 connections, 1 KiB', async (s) => {
      const m = await measured(
        lab,
        s,
        async () =>
          (await runClient(lab, [...ROUTES[s].echo, ...common, '--connections', '16'])) as TcpLoadResult,
      );
      Object.assign(rows.get(s)!, { maxRps: m.result, maxRpsCost: m.cost });
    });
    await step('bulk, 1 stream', async (s) => {
      rows.get(s)!.bulk1 = (await runClient(lab, [
        ...ROUTES[s].discard,
        '--bulk',
        '--streams',
        '1',
        '--duration',
        `${opts.durationS}s`,
      ])) as BulkResult;
    });
    await step('bulk, 8 streams', async (s) => {
      rows.get(s)!.bulk8 = (await runClient(lab, [
        ...ROUTES[s].discard,
        '--bulk',
        '--streams',
        '8',
        '--duration',
        `${opts.durationS}s`,
      ])) as BulkResult;
    });
    return SCENARIOS.map((s) => rows.get(s) as CompareRow);
  } finally {
    await lab.stop();
  }
}

/** p99 at 1000 rps from the send: the path's latency, without the generator's timer lateness. */
function p99(r: CompareRow): number {
  return (r.fixed1000.serviceUs ?? r.fixed1000.latencyUs).p99;
}

function ratio(a: number, b: number): string {
  return b > 0 ? `${(a / b).toFixed(2)}×` : '–';
}

/** The comparison as Markdown tables, with ratios against direct and against HAProxy. */
export function formatCompare(rows: readonly CompareRow[]): string {
  const by = (s: ScenarioName) => rows.find((r) => r.scenario === s)!;
  const d = by('direct');
  const h = by('haproxy');
  const lines: string[] = [];
  lines.push(
    '| path | 1000 rps: p50 µs | p90 | p99 | p99.9 | max | p99 from schedule | generator lag p99 | errors | max rps (16 conn) | max-rps p99 µs | bulk 1 stream Gbit/s | bulk 8 streams Gbit/s |',
  );
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    const l = r.fixed1000.serviceUs ?? r.fixed1000.latencyUs;
    lines.push(
      `| ${r.scenario} | ${l.p50} | ${l.p90} | ${l.p99} | ${l.p999} | ${l.max} | ${r.fixed1000.latencyUs.p99} | ${r.fixed1000.sendLagUs?.p99 ?? '–'} | ${r.fixed1000.errors + r.maxRps.errors} | ${r.maxRps.achievedRps} | ${r.maxRps.latencyUs.p99} | ${r.bulk1.gbitPerSecond} | ${r.bulk8.gbitPerSecond} |`,
    );
  }
  lines.push('');
  lines.push(
    '| path | p99 @1000 rps vs direct | vs HAProxy | max rps vs direct | vs HAProxy | bulk 1 vs direct | vs HAProxy | proxies vCPU per 1000 rps (@1000 / @max) | proxies RSS MiB |',
  );
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    if (r.scenario === 'direct') continue;
    const c1 = r.fixed1000Cost;
    const c2 = r.maxRpsCost;
    lines.push(
      `| ${r.scenario} | ${ratio(p99(r), p99(d))} | ${ratio(p99(r), p99(h))} | ${ratio(r.maxRps.achievedRps, d.maxRps.achievedRps)} | ${ratio(r.maxRps.achievedRps, h.maxRps.achievedRps)} | ${ratio(r.bulk1.gbitPerSecond, d.bulk1.gbitPerSecond)} | ${ratio(r.bulk1.gbitPerSecond, h.bulk1.gbitPerSecond)} | ${c1?.vcpuPer1000Rps ?? '–'} / ${c2?.vcpuPer1000Rps ?? '–'} | ${c2?.rssMiB ?? '–'} |`,
    );
  }
  return lines.join('\n');
}
