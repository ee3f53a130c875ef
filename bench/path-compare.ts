// Path comparison helpers: the raw-TCP load tests of `weft bench capture` and their `weft bench tcp`
// arguments, running them interleaved per test (so drift hits every path alike), sampling the CPU and
// memory of the processes on a path around a run (also used by `weft bench compare`), and the tables.
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { sampleProcess, type ProcSample } from './proc-stats.js';
import type { BulkResult } from './load/bulk.js';
import type { LoadResult } from './load/run.js';

export interface LoadWindow {
  readonly durationS: number;
  readonly warmupS: number;
}

/** `weft bench tcp` arguments (after --target) of a run short enough to prove a path works. */
export const PROBE_ARGS: readonly string[] = ['--connections', '1', '--duration', '200ms', '--warmup', '0s'];

/** Connections per test, for the caller's accounting of what a run opened. */
export const FIXED_RATE_CONNECTIONS = 4;
export const MAX_RATE_CONNECTIONS = 16;

/** A duration flag's value: whole seconds as such, fractions in milliseconds. */
function ms(seconds: number): string {
  return Number.isInteger(seconds) ? `${seconds}s` : `${Math.round(seconds * 1000)}ms`;
}

function common(w: LoadWindow): string[] {
  return ['--payload', '1024', '--duration', ms(w.durationS), '--warmup', ms(w.warmupS)];
}

/** Open loop: 1000 requests/s of 1 KiB over 4 connections (echo server). */
export function fixedRateArgs(w: LoadWindow): string[] {
  return [...common(w), '--connections', String(FIXED_RATE_CONNECTIONS), '--rate', '1000'];
}

/** Closed loop at the maximum rate, 1 KiB over 16 connections (echo server). */
export function maxRateArgs(w: LoadWindow): string[] {
  return [...common(w), '--connections', String(MAX_RATE_CONNECTIONS)];
}

/** Upload for the duration over `streams` connections (discard server); no warm-up. */
export function bulkArgs(w: LoadWindow, streams: number): string[] {
  return ['--bulk', '--streams', String(streams), '--duration', ms(w.durationS)];
}

/** Runs `fn` for each path in turn, announcing each, so one test's paths run back to back. */
export async function interleaved<S extends string>(
  paths: readonly S[],
  label: string,
  out: (line: string) => void,
  fn: (path: S) => Promise<void>,
): Promise<void> {
  for (const p of paths) {
    out(`  ${label}: ${p}`);
    await fn(p);
  }
}

/** Waits for a `weft bench tcp --json` child and returns its result (its last line of output). */
export async function childJson(child: ChildProcess, what: string): Promise<unknown> {
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  // Exit 2 is a load run that completed with errors: its result (errors by kind) is the answer.
  if (code !== 0 && code !== 2) throw new Error(`${what} failed (${signal ?? String(code)}): ${err.trim()}`);
  const last = out.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(last) as unknown;
  } catch {
    throw new Error(`${what}: expected JSON on its last line, got ${JSON.stringify(last.slice(0, 200))}`);
  }
}

/** CPU and memory of some processes over one run. */
export interface ProcessUsage {
  /** Wall-clock seconds the run took. */
  readonly seconds: number;
  /** CPU seconds (user + system) each process used during the run, in the order given. */
  readonly cpuSeconds: readonly number[];
  /** Resident memory of each process at the end of the run. */
  readonly rssBytes: readonly number[];
}

/** Runs `run`, sampling the processes `pids` from /proc before and after it. */
export async function withUsage<T>(
  pids: readonly number[],
  run: () => Promise<T>,
): Promise<{ result: T; usage: ProcessUsage }> {
  const before: ProcSample[] = pids.map((pid) => sampleProcess(pid));
  const t0 = performance.now();
  const result = await run();
  const seconds = (performance.now() - t0) / 1000;
  const after = pids.map((pid) => sampleProcess(pid));
  return {
    result,
    usage: {
      seconds,
      cpuSeconds: after.map((a, i) => a.cpuSeconds - before[i]!.cpuSeconds),
      rssBytes: after.map((a) => a.rssBytes),
    },
  };
}

export function sum(values: readonly number[]): number {
  return values.reduce((s, v) => s + v, 0);
}

export function mib(bytes: number): number {
  return Math.round(bytes / 2 ** 20);
}

/** Rounded to 3 decimals (NaN when undefined by the inputs). */
export function round3(v: number): number {
  return Math.round(v * 1000) / 1000;
}

/** The results every path comparison has, per path. */
export interface PathRow {
  readonly scenario: string;
  readonly fixed1000: LoadResult;
  readonly maxRps: LoadResult;
  readonly bulk1: BulkResult;
  readonly bulk8?: BulkResult;
}

/** p99 at 1000 rps from the send: the path's latency, without the generator's timer lateness. */
export function p99At1000(r: PathRow): number {
  return (r.fixed1000.serviceUs ?? r.fixed1000.latencyUs).p99;
}

export function ratio(a: number, b: number): string {
  return b > 0 ? `${(a / b).toFixed(2)}×` : '–';
}

/** Latency, rate and throughput of each path, as a Markdown table (bulk 8 only when measured). */
export function formatPathTable(rows: readonly PathRow[]): string {
  const with8 = rows.every((r) => r.bulk8 !== undefined);
  const lines: string[] = [];
  lines.push(
    '| path | 1000 rps: p50 µs | p90 | p99 | p99.9 | max | p99 from schedule | generator lag p99 | errors | max rps (16 conn) | max-rps p99 µs | bulk 1 stream Gbit/s |' +
      (with8 ? ' bulk 8 streams Gbit/s |' : ''),
  );
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|' + (with8 ? '---:|' : ''));
  for (const r of rows) {
    const l = r.fixed1000.serviceUs ?? r.fixed1000.latencyUs;
    lines.push(
      `| ${r.scenario} | ${l.p50} | ${l.p90} | ${l.p99} | ${l.p999} | ${l.max} | ${r.fixed1000.latencyUs.p99} | ${r.fixed1000.sendLagUs?.p99 ?? '–'} | ${r.fixed1000.errorCount + r.maxRps.errorCount} | ${r.maxRps.achievedRps} | ${r.maxRps.latencyUs.p99} | ${r.bulk1.gbitPerSecond} |` +
        (with8 ? ` ${r.bulk8!.gbitPerSecond} |` : ''),
    );
  }
  return lines.join('\n');
}

/** A path to compare against, and how the table names it. */
export interface Reference {
  readonly scenario: string;
  readonly label: string;
}

export interface ExtraColumn<R> {
  readonly header: string;
  readonly cell: (row: R) => string;
}

/**
 * Every path but the first reference (the baseline), against each reference: p99 at 1000 rps, maximum
 * rate and single-stream bulk; then `extra` columns (costs) per path.
 */
export function formatRatioTable<R extends PathRow>(
  rows: readonly R[],
  references: readonly Reference[],
  extra: readonly ExtraColumn<R>[],
): string {
  const refs = references.map((ref) => {
    const row = rows.find((r) => r.scenario === ref.scenario);
    if (row === undefined) throw new Error(`no results for the reference path ${ref.scenario}`);
    return row;
  });
  const metrics: { name: string; value: (r: PathRow) => number }[] = [
    { name: 'p99 @1000 rps', value: p99At1000 },
    { name: 'max rps', value: (r) => r.maxRps.achievedRps },
    { name: 'bulk 1', value: (r) => r.bulk1.gbitPerSecond },
  ];
  const headers = metrics.flatMap((m) =>
    references.map((ref, i) => (i === 0 ? `${m.name} vs ${ref.label}` : `vs ${ref.label}`)),
  );
  headers.push(...extra.map((c) => c.header));
  const lines = [`| path | ${headers.join(' | ')} |`, `|---|${headers.map(() => '---:|').join('')}`];
  for (const r of rows) {
    if (r.scenario === references[0]!.scenario) continue;
    const cells = metrics.flatMap((m) => refs.map((ref) => ratio(m.value(r), m.value(ref))));
    cells.push(...extra.map((c) => c.cell(r)));
    lines.push(`| ${r.scenario} | ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}
