// `weft bench agree`: does the load generator measure what independent tools measure on the same path?
// Each pair runs back to back with the same parameters, ours first, then the tool:
// - HTTP/1.1, closed loop, N connections: `weft bench load --protocol http1` against `wrk` (one thread,
//   one event loop like ours): requests/s and mean latency;
// - HTTP/2 (h2c), closed loop, N connections × M streams: `--protocol http2` against `h2load -c N -m M`:
//   requests/s and mean request time;
// - HTTP/2, fixed rate R over K connections: ours with latency from the send (the service time) against
//   `h2load --rps R/K`, which times a request from its own send too and reports min/max/mean/sd only (no
//   percentiles): achieved rate and mean request time;
// - TCP bulk upload: `--protocol tcp --bulk` to the bench's discard server against `iperf3 -c` to an
//   `iperf3 -s`: Gbit/s as counted by the receiver. The servers differ (ours is Node.js, iperf3's is C),
//   so this pair compares the two on one path, not the clients alone.
// Nothing is started here but the clients: the servers' addresses are given, so it can run from inside a
// lab pod (`weft lab exec`). Our generator runs as a child process from the build, like the tools.
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { formatHostPort, type HostPort } from '../core/address.js';
import { weftCliPath } from '../lab/processes.js';
import type { BulkResult } from './load/bulk.js';
import type { LoadResult } from './load/run.js';
import { realtimeArgv } from './load/scheduler.js';

/** The figures agree when ours is within this fraction of the tool's: |weft − tool| ≤ 20 % of tool. */
export const TOLERANCE = 0.2;

/** How long past its own duration a client may take before it is killed. */
const CHILD_GRACE_MS = 30_000;

export type ToolName = 'wrk' | 'h2load' | 'iperf3';

/** The Debian package that installs each tool (scripts/setup.sh installs them all). */
export const TOOL_PACKAGES: Readonly<Record<ToolName, string>> = {
  wrk: 'wrk',
  h2load: 'nghttp2-client',
  iperf3: 'iperf3',
};

export interface AgreementOptions {
  /** HTTP/1.1 trivial server (`weft bench serve --http`). */
  readonly http1: HostPort;
  /** h2c trivial server (`weft bench serve --h2c`). */
  readonly h2c: HostPort;
  /** Discard server (`weft bench serve --discard`). */
  readonly discard: HostPort;
  /** `iperf3 -s`. */
  readonly iperf3: HostPort;
  /** Measured seconds of every run (whole seconds: wrk and iperf3 take no fractions). */
  readonly durationS: number;
  /** Warm-up seconds before measuring: ours and h2load (wrk has no warm-up, iperf3 and bulk none here). */
  readonly warmupS: number;
  /** Closed loop: connections for both HTTP/1.1 and HTTP/2. */
  readonly connections: number;
  /** Closed loop: concurrent streams per HTTP/2 connection. */
  readonly streams: number;
  /** Fixed rate: requests/s over all connections (a multiple of `rateConnections`). */
  readonly rate: number;
  readonly rateConnections: number;
  readonly bulkStreams: number;
  /** Fixed-rate pair under SCHED_FIFO (`chrt -f`), ours and h2load alike; needs root. */
  readonly realtime: boolean;
  /** Announces each run. */
  readonly out?: (line: string) => void;
}

export const AGREEMENT_DEFAULTS = {
  durationS: 5,
  warmupS: 1,
  connections: 16,
  streams: 10,
  rate: 1000,
  rateConnections: 4,
  bulkStreams: 1,
} as const;

export interface AgreementMetric {
  readonly key: string;
  /** What is compared, with its parameters and unit. */
  readonly metric: string;
  readonly unit: 'req/s' | 'µs' | 'Gbit/s';
  readonly tool: ToolName;
  readonly weft: number;
  readonly independent: number;
  /** weft / independent. */
  readonly ratio: number;
  readonly within: boolean;
}

/** One client run: the exact command, its scheduling class and what it reported. */
export interface AgreementRun {
  readonly client: 'weft' | ToolName;
  readonly argv: readonly string[];
  readonly realtime: boolean;
  /** Failed requests (or 0 for bulk transfer). */
  readonly errors: number;
  readonly parsed: LoadResult | BulkResult | WrkResult | H2loadResult | Iperf3Result;
}

export interface AgreementResult {
  readonly startedAt: string;
  readonly targets: {
    readonly http1: string;
    readonly h2c: string;
    readonly discard: string;
    readonly iperf3: string;
  };
  readonly parameters: Omit<AgreementOptions, 'http1' | 'h2c' | 'discard' | 'iperf3' | 'out'>;
  readonly tolerance: number;
  readonly metrics: readonly AgreementMetric[];
  readonly runs: readonly AgreementRun[];
}

// ---- the tools' outputs ----

export interface WrkResult {
  readonly requests: number;
  readonly seconds: number;
  readonly requestsPerSecond: number;
  readonly latencyMeanUs: number;
  /** Socket errors (connect, read, write, timeout) plus non-2xx/3xx responses. */
  readonly errors: number;
}

export interface H2loadResult {
  readonly requestsPerSecond: number;
  readonly requests: {
    readonly total: number;
    readonly succeeded: number;
    readonly failed: number;
    readonly errored: number;
    readonly timeout: number;
  };
  /** "time for request": from the request's submission to its response's end. */
  readonly requestTimeUs: {
    readonly min: number;
    readonly max: number;
    readonly mean: number;
    readonly sd: number;
  };
}

export interface Iperf3Result {
  /** Received by the server (iperf3's "receiver" line). */
  readonly receivedBitsPerSecond: number;
  readonly sentBitsPerSecond: number;
  readonly receivedBytes: number;
  readonly seconds: number;
  /** CPU of the client (local) and server (remote) process: their CPU time over the test's, in % of a core. */
  readonly cpuPercent: { readonly client: number; readonly server: number };
}

const TIME_UNITS_US: Readonly<Record<string, number>> = {
  ns: 0.001,
  us: 1,
  µs: 1,
  ms: 1000,
  s: 1e6,
  m: 60e6,
  h: 3600e6,
};

/** `192.90us`, `16.72ms`, `1.23s`, `2.00m` (wrk and h2load print durations so) → microseconds. */
export function parseDurationUs(text: string): number {
  const m = /^([\d.]+)(ns|us|µs|ms|s|m|h)$/.exec(text.trim());
  const n = m ? Number(m[1]) : NaN;
  if (!m || !Number.isFinite(n)) throw new Error(`not a duration: ${JSON.stringify(text)}`);
  return n * TIME_UNITS_US[m[2]!]!;
}

/** `1.23k`, `87.84k`, `2.00M` (wrk's counts) → a number. */
function parseMetric(text: string): number {
  const m = /^([\d.]+)([kMG]?)$/.exec(text.trim());
  if (!m) throw new Error(`not a number: ${JSON.stringify(text)}`);
  return Number(m[1]) * ({ '': 1, k: 1e3, M: 1e6, G: 1e9 }[m[2]!] ?? 1);
}

function need(text: string, re: RegExp, tool: string, what: string): RegExpExecArray {
  const m = re.exec(text);
  if (!m) throw new Error(`${tool}: no ${what} in its output: ${JSON.stringify(text.trim().slice(-600))}`);
  return m;
}

/** wrk's report (no Lua script, with or without --latency). */
export function parseWrk(text: string): WrkResult {
  const rps = need(text, /^Requests\/sec:\s+([\d.]+)\s*$/m, 'wrk', '"Requests/sec:" line');
  const latency = need(text, /^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)\s+\S+\s*$/m, 'wrk', '"Latency" line');
  const total = need(text, /^\s*(\d+) requests in ([\d.]+\w+), /m, 'wrk', '"N requests in" line');
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  const socketErrors = socket ? socket.slice(1, 5).reduce((s, v) => s + Number(v), 0) : 0;
  return {
    requests: parseMetric(total[1]!),
    seconds: parseDurationUs(total[2]!) / 1e6,
    requestsPerSecond: Number(rps[1]),
    latencyMeanUs: parseDurationUs(latency[1]!),
    errors: socketErrors + (non2xx ? Number(non2xx[1]) : 0),
  };
}

/** h2load's report: the "finished in" line (req/s over the main duration), requests, time for request. */
export function parseH2load(text: string): H2loadResult {
  const finished = need(
    text,
    /^finished in [\d.]+\w+, ([\d.]+) req\/s/m,
    'h2load',
    '"finished in …, N req/s" line',
  );
  const requests = need(
    text,
    /^requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/m,
    'h2load',
    '"requests:" line',
  );
  const time = need(
    text,
    /^time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)/m,
    'h2load',
    '"time for request:" line',
  );
  // Exit 0 and zeros when nothing could connect: a run without a single answer measured nothing.
  if (Number(requests[2]) === 0)
    throw new Error(`h2load: no request succeeded ("${requests[0]}"): is the server up and speaking h2c?`);
  const [min, max, mean, sd] = time.slice(1, 5).map((v) => parseDurationUs(v)) as [
    number,
    number,
    number,
    number,
  ];
  return {
    requestsPerSecond: Number(finished[1]),
    requests: {
      total: Number(requests[1]),
      succeeded: Number(requests[2]),
      failed: Number(requests[3]),
      errored: Number(requests[4]),
      timeout: Number(requests[5]),
    },
    requestTimeUs: { min, max, mean, sd },
  };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function num(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`iperf3: ${what} missing in its JSON`);
  return v;
}

/** `iperf3 -c … -J`: the receiver's total over the test. */
export function parseIperf3(json: string): Iperf3Result {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch {
    throw new Error(`iperf3: its output is not JSON: ${JSON.stringify(json.trim().slice(0, 300))}`);
  }
  if (!isRecord(doc)) throw new Error('iperf3: its JSON is not an object');
  if (typeof doc.error === 'string') throw new Error(`iperf3: ${doc.error}`);
  const end = doc.end;
  if (!isRecord(end) || !isRecord(end.sum_received) || !isRecord(end.sum_sent))
    throw new Error('iperf3: end.sum_received/sum_sent missing in its JSON');
  const cpu = isRecord(end.cpu_utilization_percent) ? end.cpu_utilization_percent : {};
  return {
    receivedBitsPerSecond: num(end.sum_received.bits_per_second, 'end.sum_received.bits_per_second'),
    sentBitsPerSecond: num(end.sum_sent.bits_per_second, 'end.sum_sent.bits_per_second'),
    receivedBytes: num(end.sum_received.bytes, 'end.sum_received.bytes'),
    seconds: num(end.sum_received.seconds, 'end.sum_received.seconds'),
    cpuPercent: {
      client: typeof cpu.host_total === 'number' ? cpu.host_total : NaN,
      server: typeof cpu.remote_total === 'number' ? cpu.remote_total : NaN,
    },
  };
}

// ---- running the clients ----

function onPath(command: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

/** The tools not on PATH. */
export function missingTools(): ToolName[] {
  return (Object.keys(TOOL_PACKAGES) as ToolName[]).filter((tool) => !onPath(tool));
}

/** What to tell someone who lacks `missing`: each tool with its Debian package, and the install line. */
export function missingToolsMessage(missing: readonly ToolName[]): string {
  const packages = missing.map((t) => TOOL_PACKAGES[t]);
  return (
    `weft bench agree needs wrk, h2load and iperf3; not found on PATH: ` +
    `${missing.map((t) => `${t} (Debian package ${TOOL_PACKAGES[t]})`).join(', ')}. ` +
    `Install with \`apt-get install ${packages.join(' ')}\` (scripts/setup.sh installs them)`
  );
}

function requireTools(): void {
  const missing = missingTools();
  if (missing.length > 0) throw new Error(missingToolsMessage(missing));
}

interface ChildOutput {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs one client to its end (killing it past `deadlineMs`) and returns what it printed. */
function runClient(argv: readonly string[], deadlineMs: number): Promise<ChildOutput> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), deadlineMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${argv[0]}: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function failed(argv: readonly string[], r: ChildOutput): Error {
  const how = r.signal !== null ? `killed by ${r.signal}` : `exit ${String(r.code)}`;
  const said = `${r.stderr.trim()}\n${r.stdout.trim()}`.trim().slice(-1500);
  return new Error(`${argv.join(' ')}: ${how}${said ? `: ${said}` : ''}`);
}

function lastJsonLine(argv: readonly string[], r: ChildOutput): unknown {
  const last = r.stdout.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(last) as unknown;
  } catch {
    throw failed(argv, r);
  }
}

function url(addr: HostPort): string {
  return `http://${formatHostPort(addr)}/`;
}

function within(weft: number, independent: number): { ratio: number; within: boolean } {
  const ratio = independent > 0 ? weft / independent : NaN;
  return { ratio, within: Number.isFinite(ratio) && Math.abs(ratio - 1) <= TOLERANCE + 1e-9 };
}

export async function runAgreement(options: AgreementOptions): Promise<AgreementResult> {
  const o = options;
  for (const [name, v] of Object.entries({
    durationS: o.durationS,
    connections: o.connections,
    streams: o.streams,
    rate: o.rate,
    rateConnections: o.rateConnections,
    bulkStreams: o.bulkStreams,
  }))
    if (!Number.isInteger(v) || v < 1) throw new Error(`runAgreement: ${name} must be a positive integer`);
  if (!Number.isInteger(o.warmupS) || o.warmupS < 0) throw new Error('runAgreement: warmupS must be ≥ 0');
  if (o.rate % o.rateConnections !== 0)
    throw new Error(`runAgreement: rate ${o.rate} is not a multiple of ${o.rateConnections} connections`);
  if (o.realtime && process.getuid?.() !== 0) throw new Error('runAgreement: realtime needs root (chrt -f)');
  requireTools();
  const main = weftCliPath();
  if (!existsSync(main)) throw new Error(`${main} not found: run \`npm run build\` first`);

  const out = o.out ?? (() => undefined);
  const startedAt = new Date().toISOString();
  const deadline = (o.warmupS + o.durationS) * 1000 + CHILD_GRACE_MS;
  const runs: AgreementRun[] = [];
  const metrics: AgreementMetric[] = [];
  const metric = (m: Omit<AgreementMetric, 'ratio' | 'within'>): void => {
    metrics.push({ ...m, ...within(m.weft, m.independent) });
  };

  const weft = async (
    args: readonly string[],
    realtime = false,
  ): Promise<{ argv: string[]; r: LoadResult }> => {
    const base = [process.execPath, main, 'bench', 'load', '--json', '--no-progress', ...args];
    const argv = realtime ? realtimeArgv(base) : base;
    out(`  weft: ${argv.join(' ')}`);
    const r = await runClient(argv, deadline);
    // Exit 2: the run had failed requests; its JSON still says which.
    if (r.code !== 0 && r.code !== 2) throw failed(argv, r);
    const result = lastJsonLine(argv, r) as LoadResult;
    runs.push({ client: 'weft', argv, realtime, errors: result.errorCount, parsed: result });
    return { argv, r: result };
  };
  const tool = async <T>(
    name: ToolName,
    argv: string[],
    parse: (text: string) => T,
    errors: (t: T) => number,
    realtime = false,
  ): Promise<T> => {
    out(`  ${name}: ${argv.join(' ')}`);
    const r = await runClient(argv, deadline);
    if (r.code !== 0) throw failed(argv, r);
    let parsed: T;
    try {
      parsed = parse(r.stdout);
    } catch (err) {
      throw new Error(`${argv.join(' ')}: ${(err as Error).message}`, { cause: err });
    }
    runs.push({
      client: name,
      argv,
      realtime,
      errors: errors(parsed),
      parsed: parsed as AgreementRun['parsed'],
    });
    return parsed;
  };
  const timing = ['--duration', `${o.durationS}s`, '--warmup', `${o.warmupS}s`];
  const h2Timing = ['-D', `${o.durationS}`, ...(o.warmupS > 0 ? [`--warm-up-time=${o.warmupS}`] : [])];
  const h2Errors = (h: H2loadResult): number => h.requests.total - h.requests.succeeded;

  // 1. HTTP/1.1, closed loop.
  out(`HTTP/1.1 closed loop, ${o.connections} connections`);
  const w1 = await weft([
    '--protocol',
    'http1',
    '--target',
    formatHostPort(o.http1),
    '--connections',
    String(o.connections),
    ...timing,
  ]);
  const wrk = await tool(
    'wrk',
    ['wrk', '-t', '1', '-c', String(o.connections), '-d', `${o.durationS}s`, url(o.http1)],
    parseWrk,
    (w) => w.errors,
  );
  const c1 = `${o.connections} connections`;
  metric({
    key: 'http1-max-rps',
    metric: `HTTP/1.1 max rate, closed loop, ${c1} (req/s)`,
    unit: 'req/s',
    tool: 'wrk',
    weft: w1.r.achievedRps,
    independent: wrk.requestsPerSecond,
  });
  metric({
    key: 'http1-closed-mean-latency',
    metric: `HTTP/1.1 mean latency, closed loop, ${c1} (µs)`,
    unit: 'µs',
    tool: 'wrk',
    weft: w1.r.latencyUs.mean,
    independent: wrk.latencyMeanUs,
  });

  // 2. HTTP/2, closed loop.
  const c2 = `${o.connections} connections × ${o.streams} streams`;
  out(`HTTP/2 closed loop, ${c2}`);
  const w2 = await weft([
    '--protocol',
    'http2',
    '--target',
    formatHostPort(o.h2c),
    '--connections',
    String(o.connections),
    '--streams',
    String(o.streams),
    ...timing,
  ]);
  const h2 = await tool(
    'h2load',
    ['h2load', '-t', '1', '-c', String(o.connections), '-m', String(o.streams), ...h2Timing, url(o.h2c)],
    parseH2load,
    h2Errors,
  );
  metric({
    key: 'http2-max-rps',
    metric: `HTTP/2 max rate, closed loop, ${c2} (req/s)`,
    unit: 'req/s',
    tool: 'h2load',
    weft: w2.r.achievedRps,
    independent: h2.requestsPerSecond,
  });
  metric({
    key: 'http2-closed-mean-latency',
    metric: `HTTP/2 mean latency, closed loop, ${c2} (µs)`,
    unit: 'µs',
    tool: 'h2load',
    weft: w2.r.latencyUs.mean,
    independent: h2.requestTimeUs.mean,
  });

  // 3. HTTP/2, fixed rate.
  const c3 = `${o.rate} req/s over ${o.rateConnections} connections`;
  out(`HTTP/2 fixed rate, ${c3}${o.realtime ? ', SCHED_FIFO' : ''}`);
  const w3 = await weft(
    [
      '--protocol',
      'http2',
      '--target',
      formatHostPort(o.h2c),
      '--connections',
      String(o.rateConnections),
      '--streams',
      '1',
      '--rate',
      String(o.rate),
      ...timing,
    ],
    o.realtime,
  );
  const h2Fixed = ['h2load', '-t', '1', '-c', String(o.rateConnections), '-m', '1'];
  const perClient = String(o.rate / o.rateConnections);
  const base3 = [...h2Fixed, '--rps', perClient, ...h2Timing, url(o.h2c)];
  const h3 = await tool(
    'h2load',
    o.realtime ? realtimeArgv(base3) : base3,
    parseH2load,
    h2Errors,
    o.realtime,
  );
  metric({
    key: 'http2-fixed-rps',
    metric: `HTTP/2 achieved rate at fixed ${c3} (req/s)`,
    unit: 'req/s',
    tool: 'h2load',
    weft: w3.r.achievedRps,
    independent: h3.requestsPerSecond,
  });
  metric({
    key: 'http2-fixed-mean-latency',
    metric: `HTTP/2 mean latency from the send at fixed ${c3} (µs)`,
    unit: 'µs',
    tool: 'h2load',
    weft: w3.r.serviceUs.mean,
    independent: h3.requestTimeUs.mean,
  });

  // 4. TCP bulk: ours to the discard server, iperf3 to its own server.
  out(`TCP bulk, ${o.bulkStreams} stream(s), ${o.durationS} s`);
  const bulkArgv = [
    process.execPath,
    main,
    'bench',
    'load',
    '--json',
    '--protocol',
    'tcp',
    '--bulk',
    '--target',
    formatHostPort(o.discard),
    '--streams',
    String(o.bulkStreams),
    '--duration',
    `${o.durationS}s`,
  ];
  out(`  weft: ${bulkArgv.join(' ')}`);
  const rb = await runClient(bulkArgv, deadline);
  if (rb.code !== 0) throw failed(bulkArgv, rb);
  const bulk = lastJsonLine(bulkArgv, rb) as BulkResult;
  runs.push({ client: 'weft', argv: bulkArgv, realtime: false, errors: 0, parsed: bulk });
  const ip = await tool(
    'iperf3',
    [
      'iperf3',
      '-c',
      o.iperf3.host,
      '-p',
      String(o.iperf3.port),
      '-t',
      String(o.durationS),
      '-P',
      String(o.bulkStreams),
      '-J',
    ],
    parseIperf3,
    () => 0,
  );
  metric({
    key: 'tcp-bulk-gbps',
    metric: `TCP bulk upload, ${o.bulkStreams} stream${o.bulkStreams === 1 ? '' : 's'}, received (Gbit/s; different servers)`,
    unit: 'Gbit/s',
    tool: 'iperf3',
    // Unrounded: BulkResult rounds to 2 decimals.
    weft: (bulk.bytes * 8) / bulk.seconds / 1e9,
    independent: ip.receivedBitsPerSecond / 1e9,
  });

  return {
    startedAt,
    targets: {
      http1: formatHostPort(o.http1),
      h2c: formatHostPort(o.h2c),
      discard: formatHostPort(o.discard),
      iperf3: formatHostPort(o.iperf3),
    },
    parameters: {
      durationS: o.durationS,
      warmupS: o.warmupS,
      connections: o.connections,
      streams: o.streams,
      rate: o.rate,
      rateConnections: o.rateConnections,
      bulkStreams: o.bulkStreams,
      realtime: o.realtime,
    },
    tolerance: TOLERANCE,
    metrics,
    runs,
  };
}

// ---- the report ----

function figure(v: number, unit: AgreementMetric['unit']): string {
  if (!Number.isFinite(v)) return '–';
  return unit === 'Gbit/s' ? v.toFixed(2) : String(Math.round(v));
}

/** Markdown: one row per metric, then the runs' failed requests when there were any. */
export function formatAgreement(result: AgreementResult): string {
  const pct = Math.round(result.tolerance * 100);
  const lines = [
    `| metric | weft | independent tool | ratio weft / tool | within ${pct} %? |`,
    '|---|---:|---:|---:|---|',
    ...result.metrics.map(
      (m) =>
        `| ${m.metric} | ${figure(m.weft, m.unit)} | ${m.tool}: ${figure(m.independent, m.unit)} | ${
          Number.isFinite(m.ratio) ? m.ratio.toFixed(2) : '–'
        } | ${m.within ? 'yes' : 'no'} |`,
    ),
  ];
  const withErrors = result.runs.filter((r) => r.errors > 0);
  if (withErrors.length > 0) {
    lines.push('');
    for (const r of withErrors) lines.push(`failed requests: ${r.errors} in \`${r.argv.join(' ')}\``);
  }
  return lines.join('\n');
}
