// The renderings of a `weft bench compare` report: the Markdown section for RESULTS.md and the
// self-contained HTML page, from a fixture with direct, mesh and HAProxy measured, the waypoint
// unavailable and one failed run.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  COMPARE_REPORT_VERSION,
  type CompareReport,
  type PathId,
  type PathRun,
  type PathUsage,
} from '../../bench/compare-report.js';
import type { LatencySummaryUs } from '../../bench/load/recorder.js';
import type { LoadResult } from '../../bench/load/run.js';
import { renderCompareHtml } from '../../bench/report/html.js';
import { formatCompareMarkdown } from '../../bench/report/markdown.js';

// ---- fixture ----

interface LoadSpec {
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly fixedRate?: number;
  readonly connections?: number;
  readonly perRequest?: boolean;
  readonly timeouts?: number;
}

function summary(p50: number, p99: number, max: number): LatencySummaryUs {
  return {
    p50,
    p90: Math.round((p50 + p99) / 2),
    p99,
    p999: Math.round((p99 + max) / 2),
    max,
    mean: Math.round(p50 * 1.3),
  };
}

function load(s: LoadSpec): LoadResult {
  const l = summary(s.p50, s.p99, s.max);
  const timeouts = s.timeouts ?? 0;
  return {
    protocol: 'http1',
    mode: s.fixedRate === undefined ? 'closed-loop' : 'fixed-rate',
    connectionPerRequest: s.perRequest === true,
    connections: s.connections ?? 4,
    depth: 1,
    targetRps: s.fixedRate ?? null,
    seconds: 30,
    requests: s.rps * 30,
    achievedRps: s.rps,
    errors: { connect: 0, reset: 0, status: 0, protocol: 0, timeout: timeouts },
    errorCount: timeouts,
    latencyUs: l,
    serviceUs: summary(Math.round(s.p50 * 0.8), Math.round(s.p99 * 0.7), s.max),
    sendLagUs: summary(20, 150, 2100),
    latencyCurve: [
      [0, Math.round(s.p50 / 2)],
      [50, l.p50],
      [90, l.p90],
      [99, l.p99],
      [99.9, l.p999],
      [99.99, Math.round(s.max * 0.9)],
      [99.999, s.max],
    ],
  };
}

function usage(vcpuPer1000Rps: number | null, mibPer1000Rps: number | null): PathUsage {
  return {
    seconds: 32,
    cpuSeconds: { 'proxy-1': 3.1, 'proxy-2': 2.9 },
    rssMiB: { 'proxy-1': 80, 'proxy-2': 78 },
    vcpuPer1000Rps,
    mibPer1000Rps,
  };
}

const BULK_ERROR = 'bulk: the server answered 0 bytes, not a count\nstderr: reset | by peer';
const HAPROXY_TITLE = 'client → HAProxy <script>alert("x")</script> & TLS → HAProxy → server';
const WAYPOINT_WHY = 'no waypoint proxy in the lab yet (issue 12)';

const A: Record<'direct' | 'mesh' | 'haproxy', LoadSpec> = {
  direct: { rps: 1000, fixedRate: 1000, p50: 40, p99: 210, max: 3100 },
  mesh: { rps: 1000, fixedRate: 1000, p50: 190, p99: 620, max: 9800 },
  haproxy: { rps: 999, fixedRate: 1000, p50: 140, p99: 500, max: 6200, timeouts: 3 },
};
const B_RPS = { direct: 121879, mesh: 31550, haproxy: 30256 };

const report: CompareReport = {
  version: COMPARE_REPORT_VERSION,
  command: 'node dist/cli/main.js bench compare --duration 30s --warmup 5s --json report.json',
  startedAt: '2026-11-30T09:14:03.120Z',
  finishedAt: '2026-11-30T09:41:55.004Z',
  commit: '883e9a8',
  machine: { cpus: 2, cpuModel: 'AMD EPYC 7B13', memoryGiB: 24, kernel: '6.8.0-1019-gcp', node: 'v20.20.0' },
  generatorScheduler: 'SCHED_FIFO 20',
  generatorFloorP99Us: 210,
  paths: [
    { id: 'direct', title: 'client pod → server pod', available: true, processes: [] },
    {
      id: 'mesh',
      title: 'client pod → agent → agent → server pod',
      available: true,
      processes: ['agent-node-1', 'agent-node-2'],
    },
    {
      id: 'waypoint',
      title: 'client pod → agent → waypoint → agent → server pod',
      available: false,
      why: WAYPOINT_WHY,
      processes: [],
    },
    { id: 'haproxy', title: HAPROXY_TITLE, available: true, processes: ['haproxy-client', 'haproxy-server'] },
  ],
  scenarios: [
    {
      id: 'a',
      title: 'HTTP/1.1 1 KiB at 1000 rps, 4 connections, 30 s',
      kind: 'latency',
      clientArgs: [
        'bench',
        'load',
        '--protocol',
        'http1',
        '--rate',
        '1000',
        '--connections',
        '4',
        '--duration',
        '30s',
      ],
      runs: [
        { path: 'direct', load: load(A.direct), usage: usage(0, 0) },
        { path: 'mesh', load: load(A.mesh), usage: usage(0.123, 165) },
        { path: 'haproxy', load: load(A.haproxy), usage: usage(0.075, 36) },
      ],
    },
    {
      id: 'b',
      title: 'HTTP/1.1 1 KiB at the maximum rate, 16 connections, 30 s',
      kind: 'throughput',
      clientArgs: ['bench', 'load', '--protocol', 'http1', '--connections', '16', '--duration', '30s'],
      runs: (['direct', 'mesh', 'haproxy'] as const).map((path): PathRun => ({
        path,
        load: load({
          rps: B_RPS[path],
          p50: 100,
          p99: path === 'direct' ? 408 : 1200,
          max: 9000,
          connections: 16,
        }),
        usage: usage(path === 'direct' ? null : 0.03, path === 'direct' ? null : 5.2),
      })),
    },
    {
      id: 'c1',
      title: 'bulk upload, 1 stream, 30 s',
      kind: 'bulk',
      clientArgs: ['bench', 'load', '--bulk', '--streams', '1'],
      runs: [
        { path: 'direct', bulk: { streams: 1, bytes: 37387500000, seconds: 30, gbitPerSecond: 9.97 } },
        { path: 'mesh', bulk: { streams: 1, bytes: 9225000000, seconds: 30, gbitPerSecond: 2.46 } },
        { path: 'haproxy', bulk: { streams: 1, bytes: 21112500000, seconds: 30, gbitPerSecond: 5.63 } },
      ],
    },
    {
      id: 'c8',
      title: 'bulk upload, 8 streams, 30 s',
      kind: 'bulk',
      clientArgs: ['bench', 'load', '--bulk', '--streams', '8'],
      runs: [
        { path: 'direct', bulk: { streams: 8, bytes: 49800000000, seconds: 30, gbitPerSecond: 13.28 } },
        { path: 'mesh', error: BULK_ERROR },
        { path: 'haproxy', bulk: { streams: 8, bytes: 19500000000, seconds: 30, gbitPerSecond: 5.2 } },
      ],
    },
    {
      id: 'd',
      title: 'HTTP/1.1, a new connection per request, 500 rps, 30 s',
      kind: 'latency',
      clientArgs: ['bench', 'load', '--protocol', 'http1', '--rate', '500', '--connection-per-request'],
      runs: [
        {
          path: 'direct',
          load: load({ rps: 500, fixedRate: 500, p50: 300, p99: 900, max: 4000, perRequest: true }),
        },
        {
          path: 'mesh',
          load: load({ rps: 498, fixedRate: 500, p50: 900, p99: 2400, max: 12000, perRequest: true }),
        },
        {
          path: 'haproxy',
          load: load({ rps: 500, fixedRate: 500, p50: 700, p99: 1800, max: 8000, perRequest: true }),
        },
      ],
    },
    {
      id: 'e',
      title: '10000 idle connections held open',
      kind: 'memory',
      clientArgs: ['bench', 'load', '--idle', '10000'],
      runs: [
        {
          path: 'direct',
          idle: { connections: 10000, failed: 0, rssBeforeMiB: {}, rssHeldMiB: {}, mibPer1000Connections: 0 },
        },
        {
          path: 'mesh',
          idle: {
            connections: 10000,
            failed: 0,
            rssBeforeMiB: { 'agent-node-1': 80, 'agent-node-2': 78 },
            rssHeldMiB: { 'agent-node-1': 104, 'agent-node-2': 96 },
            mibPer1000Connections: 4.2,
          },
        },
        {
          path: 'haproxy',
          idle: {
            connections: 9990,
            failed: 10,
            rssBeforeMiB: { 'haproxy-client': 18, 'haproxy-server': 18 },
            rssHeldMiB: { 'haproxy-client': 33.5, 'haproxy-server': 33.5 },
            mibPer1000Connections: 3.1,
          },
        },
      ],
    },
  ],
};

const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)}×`;

// ---- helpers ----

/** The Markdown table whose header row starts with `| first |`, as rows of cells (header included). */
function mdTable(markdown: string, first: string, after = 0): string[][] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l, i) => i >= after && l.startsWith(`| ${first} |`));
  if (start < 0) throw new Error(`no table starting with ${first}`);
  const rows: string[][] = [];
  for (let i = start; i < lines.length && lines[i]!.startsWith('|'); i++) {
    if (i === start + 1) continue; // the alignment row
    rows.push(
      lines[i]!.split(/(?<!\\)\|/)
        .slice(1, -1)
        .map((c) => c.trim()),
    );
  }
  return rows;
}

/** The cell of `table` in the row labelled `row` and the column headed `column`. */
function cell(table: string[][], row: string, column: string): string | undefined {
  const col = table[0]!.indexOf(column);
  return col < 0 ? undefined : table.find((r) => r[0] === row)?.[col];
}

/** Problems that would stop an XML parser: bad tags or attributes, unbalanced nesting, stray `&`. */
function xmlProblems(xml: string): string[] {
  const problems: string[] = [];
  const badAmp = /&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-f]+);)/i;
  const tag = /^<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>$/;
  const stack: string[] = [];
  let roots = 0;
  let last = 0;
  for (const m of xml.matchAll(/<[^>]*>/g)) {
    const text = xml.slice(last, m.index);
    last = m.index + m[0].length;
    if (text.includes('<') || badAmp.test(text)) problems.push(`bad text: ${text.slice(0, 60)}`);
    if (stack.length === 0 && text.trim() !== '')
      problems.push(`text outside the root: ${text.slice(0, 60)}`);
    const t = tag.exec(m[0]);
    if (t === null) {
      problems.push(`bad tag: ${m[0].slice(0, 80)}`);
      continue;
    }
    const [, close, name, attrs, selfClose] = t;
    const names = [...attrs!.matchAll(/([\w:.-]+)="([^"]*)"/g)].map((a) => {
      if (badAmp.test(a[2]!)) problems.push(`bad attribute value in ${m[0].slice(0, 80)}`);
      return a[1]!;
    });
    if (new Set(names).size !== names.length) problems.push(`repeated attribute in ${m[0].slice(0, 80)}`);
    if (close === '/') {
      const open = stack.pop();
      if (open !== name) problems.push(`</${name}> closes <${open ?? 'nothing'}>`);
    } else {
      if (stack.length === 0) roots++;
      if (selfClose !== '/') stack.push(name!);
    }
  }
  if (xml.slice(last).trim() !== '') problems.push('text after the root');
  if (stack.length > 0) problems.push(`unclosed: ${stack.join(' > ')}`);
  if (roots !== 1) problems.push(`${roots} root elements`);
  return problems;
}

/** The polylines' points of an SVG, as [x, y] pairs. */
function polylines(svg: string): [number, number][][] {
  return [...svg.matchAll(/<polyline [^>]*points="([^"]*)"/g)].map((m) =>
    m[1]!.split(' ').map((p) => p.split(',').map(Number) as [number, number]),
  );
}

// ---- Markdown ----

t.test('Markdown: header, absolute figures, ratios vs direct and haproxy, costs', async (t) => {
  const md = formatCompareMarkdown(report);

  t.match(md, /^## /, 'a section heading');
  t.ok(md.includes(`\`\`\`sh\n${report.command}\n\`\`\``), 'the exact command in a code block');
  t.match(md, /2026-11-30 09:14–09:41 UTC/);
  t.match(md, /Commit: 883e9a8/);
  t.match(md, /Machine: 2 vCPU AMD EPYC 7B13, 24 GiB, Linux 6\.8\.0-1019-gcp, Node\.js v20\.20\.0/);
  t.match(
    md,
    /Generator floor: p99 210 µs at 1000 rps against a trivial HTTP\/1.1 server on loopback in the client pod \(generator scheduler SCHED_FIFO 20\)/,
  );

  const lines = md.split('\n');
  const a = mdTable(md, 'path', lines.indexOf(`### (a) ${report.scenarios[0]!.title}`));
  t.equal(cell(a, 'mesh', 'p99'), '620', 'mesh p99 from schedule in (a)');
  t.equal(cell(a, 'haproxy', 'errors'), '3 (timeout 3)', 'errors by kind');
  t.equal(cell(a, 'haproxy', 'achieved rps'), '999');
  t.equal(cell(a, 'direct', 'generator lateness p99'), '150');
  t.equal(cell(a, 'mesh', 'service p99'), String(Math.round(620 * 0.7)));

  const c8 = mdTable(md, 'path', lines.indexOf('### (c8) bulk upload, 8 streams, 30 s'));
  const meshC8 = c8.find((r) => r[0] === 'mesh')!;
  t.same(
    meshC8,
    ['mesh', 'error: bulk: the server answered 0 bytes, not a count stderr: reset \\| by peer'],
    'the error on one line, its pipe escaped: one cell',
  );
  t.equal(cell(c8, 'haproxy', 'Gbit/s'), '5.20');

  const e = mdTable(md, 'path', lines.indexOf('### (e) 10000 idle connections held open'));
  t.equal(cell(e, 'mesh', 'MiB per 1000 connections'), '4.2');
  t.equal(
    cell(e, 'mesh', 'RSS held MiB per process (growth)'),
    'agent-node-1 104.0 (+24.0), agent-node-2 96.0 (+18.0)',
  );

  // The unavailable path: one line with the reason, in no table.
  t.ok(lines.includes(`- **waypoint**: not measured: ${WAYPOINT_WHY}`));
  t.notOk(
    lines.some((l) => l.startsWith('| waypoint')),
    'no row for the waypoint',
  );
  t.notOk(md.includes('waypoint vs'), 'no ratio column for the waypoint');

  const r = mdTable(md, 'figure');
  t.same(r[0], ['figure', 'mesh vs direct', 'mesh vs haproxy', 'haproxy vs direct']);
  t.equal(cell(r, 'a: p99 from schedule', 'mesh vs direct'), ratio(620, 210));
  t.equal(cell(r, 'a: p99 from schedule', 'mesh vs haproxy'), ratio(620, 500));
  t.equal(cell(r, 'a: p99 from schedule', 'haproxy vs direct'), ratio(500, 210));
  t.equal(cell(r, 'b: max rps', 'mesh vs direct'), ratio(31550, 121879));
  t.equal(cell(r, 'b: max rps', 'mesh vs haproxy'), ratio(31550, 30256));
  t.equal(cell(r, 'c1: Gbit/s', 'mesh vs haproxy'), ratio(2.46, 5.63));
  t.equal(cell(r, 'c8: Gbit/s', 'mesh vs direct'), '–', 'the failed run has no ratio');
  t.equal(cell(r, 'c8: Gbit/s', 'haproxy vs direct'), ratio(5.2, 13.28));
  t.equal(cell(r, 'd: p99 from schedule', 'mesh vs haproxy'), ratio(2400, 1800));
  t.equal(cell(r, 'd: achieved rps', 'mesh vs direct'), ratio(498, 500));
  t.equal(cell(r, 'e: MiB per 1000 idle connections', 'mesh vs haproxy'), ratio(4.2, 3.1));
  t.equal(cell(r, 'e: MiB per 1000 idle connections', 'mesh vs direct'), '–', 'direct holds no memory');

  const cost = mdTable(md, 'path', lines.indexOf('### Cost per 1000 rps'));
  t.equal(cell(cost, 'mesh', 'a: vCPU per 1000 rps'), '0.123');
  t.equal(cell(cost, 'haproxy', 'a: MiB per 1000 rps'), '36.0');
  t.equal(cell(cost, 'direct', 'b: vCPU per 1000 rps'), '–');
  t.notOk(
    cost[0]!.some((h) => h.startsWith('c1') || h.startsWith('e')),
    'no cost per request for bulk or memory',
  );

  t.notOk(md.includes('<script>'), 'HTML in a title is escaped');
});

// ---- HTML ----

t.test('HTML: self-contained, escaped, well-formed SVG, one curve per measured path', async (t) => {
  const html = renderCompareHtml(report);

  t.match(html, /^<!doctype html>/);
  t.notOk(/<script/i.test(html), 'no script, not even the one in a title');
  t.ok(html.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; TLS'), 'the title escaped');
  t.ok(html.includes(report.command), 'the command');
  t.ok(html.includes('bulk: the server answered 0 bytes, not a count'), 'the error');
  t.ok(html.includes(WAYPOINT_WHY), 'why the waypoint is missing');
  t.notOk(/\b(?:src|href)\s*=/i.test(html), 'no src= or href=');
  t.notOk(/<link|@import|url\(/i.test(html), 'no stylesheet or font fetched');
  t.ok(html.includes(`<td>${ratio(620, 210)}</td>`), 'the ratio table');

  const svgs = [...html.matchAll(/<svg[\s\S]*?<\/svg>/g)].map((m) => m[0]);
  t.equal(svgs.length, report.scenarios.length, 'one chart per scenario');
  for (const [i, svg] of svgs.entries()) t.same(xmlProblems(svg), [], `svg ${i} is well-formed`);

  const plots = svgs.filter((s) => s.includes('class="latency-plot"'));
  t.equal(plots.length, 2, 'a latency plot for (a) and (d)');
  for (const plot of plots) {
    const lines = polylines(plot);
    t.equal(lines.length, 3, 'one line per measured path (not the waypoint)');
    for (const label of ['0%', '90%', '99%', '99.9%', '99.99%', '99.999%'])
      t.ok(plot.includes(`>${label}</text>`));
    t.ok(plot.includes('>haproxy</text>') && !plot.includes('waypoint'), 'legend');
    for (const pts of lines) {
      t.equal(pts.length, 7, 'a point per curve entry');
      t.ok(
        pts.every(([x, y], k) => k === 0 || (x > pts[k - 1]![0] && y <= pts[k - 1]![1])),
        'percentile rightwards, latency upwards',
      );
      const xs = pts.map(([x]) => x);
      // On the log(1/(1-p)) axis 90 %, 99 %, 99.9 % are evenly spaced.
      t.ok(Math.abs(xs[3]! - xs[2]! - (xs[4]! - xs[3]!)) < 0.5, 'log-percentile spacing');
    }
  }

  const b = svgs.find((s) => s.includes('requests per second'))!;
  t.ok(b.includes('>31550 rps</text>'), 'the value written on the bar');
  t.equal([...b.matchAll(/class="bar"/g)].length, 3);
  const c8 = svgs.find((s) => s.includes('(c8)'))!;
  t.equal([...c8.matchAll(/class="bar"/g)].length, 2, 'no bar for the failed run');
  t.ok(c8.includes('>error</text>'));
  t.ok(
    svgs.some((s) => s.includes('>4.2 MiB</text>')),
    'memory bars',
  );

  const xmllint = '/usr/bin/xmllint';
  if (!existsSync(xmllint)) {
    t.comment('xmllint not installed: the SVGs were checked by the built-in check only');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'weft-report-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const [i, svg] of svgs.entries()) {
    const file = join(dir, `${i}.svg`);
    writeFileSync(file, svg);
    const r = spawnSync(xmllint, ['--noout', file], { encoding: 'utf8' });
    t.equal(r.status, 0, `xmllint accepts svg ${i}: ${r.stderr}`);
  }
});

t.test('the XML check catches what it should', async (t) => {
  t.same(xmlProblems('<svg><g><text>a &amp; b</text></g></svg>'), []);
  t.not(xmlProblems('<svg><g></svg>').length, 0, 'unbalanced');
  t.not(xmlProblems('<svg><text>a & b</text></svg>').length, 0, 'raw &');
  t.not(xmlProblems('<svg x=1></svg>').length, 0, 'unquoted attribute');
  t.not(xmlProblems('<svg/><svg/>').length, 0, 'two roots');
});

t.test('an unmeasured generator floor and a missing baseline', async (t) => {
  const noHaproxy: CompareReport = {
    ...report,
    generatorFloorP99Us: null,
    paths: report.paths.map((p) =>
      p.id === 'haproxy' ? { ...p, available: false, why: 'haproxy not installed' } : p,
    ),
  };
  const md = formatCompareMarkdown(noHaproxy);
  t.match(md, /Generator floor: not measured/);
  t.same(mdTable(md, 'figure')[0], ['figure', 'mesh vs direct']);
  t.ok(md.includes('- **haproxy**: not measured: haproxy not installed'));
  const html = renderCompareHtml(noHaproxy);
  const only = (id: PathId): boolean => html.includes(`>${id}</text>`);
  t.ok(only('mesh') && !only('haproxy'), 'haproxy in no chart');
});
