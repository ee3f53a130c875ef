// What the Markdown and the HTML renderings of a CompareReport share: the header facts and every table as
// rows of formatted cells, so both say the same numbers. Ratios are path ÷ reference.
import type {
  CompareReport,
  IdleResult,
  PathId,
  PathInfo,
  PathRun,
  ScenarioKind,
  ScenarioReport,
} from '../compare-report.js';
import type { LoadResult } from '../load/run.js';

/** Every path is compared with the unproxied path and with the baseline proxy. */
export const REFERENCES: readonly PathId[] = ['direct', 'haproxy'];

/** A row either has one cell per header after the first, or one note spanning them (an error). */
export type TableRow =
  | { readonly label: string; readonly cells: readonly string[] }
  | { readonly label: string; readonly note: string };

export interface Table {
  /** The first header names the label column. */
  readonly headers: readonly string[];
  readonly rows: readonly TableRow[];
}

export function availablePaths(report: CompareReport): PathInfo[] {
  return report.paths.filter((p) => p.available);
}

export function unavailablePaths(report: CompareReport): PathInfo[] {
  return report.paths.filter((p) => !p.available);
}

export function whyUnavailable(p: PathInfo): string {
  return p.why ?? 'unavailable (no reason given)';
}

export function runOf(s: ScenarioReport, path: PathId): PathRun | undefined {
  return s.runs.find((r) => r.path === path);
}

/** A run's result when it did not fail. */
function ok(run: PathRun | undefined): PathRun | undefined {
  return run?.error === undefined ? run : undefined;
}

/** `1.23×`, or `–` when either side is missing or the reference is not positive. */
export function ratio(value: number | null | undefined, reference: number | null | undefined): string {
  if (value == null || reference == null || !(reference > 0) || !Number.isFinite(value)) return '–';
  return `${(value / reference).toFixed(2)}×`;
}

function fixed(v: number | null | undefined, digits: number): string {
  return v == null || !Number.isFinite(v) ? '–' : v.toFixed(digits);
}

function int(v: number): string {
  return String(Math.round(v));
}

function errorsCell(r: LoadResult): string {
  const kinds = Object.entries(r.errors)
    .filter(([, n]) => n > 0)
    .map(([kind, n]) => `${kind} ${n}`);
  return kinds.length === 0 ? String(r.errorCount) : `${r.errorCount} (${kinds.join(', ')})`;
}

export function connectionPerRequest(s: ScenarioReport): boolean {
  return s.runs.some((r) => r.load?.connectionPerRequest === true);
}

// ---- what the tables mean ----

export const LATENCY_NOTE =
  'Latency from each request’s scheduled start; “service” from the send; “generator lateness” is how late ' +
  'the generator sent.';
export const RATIO_NOTE =
  'Each path’s figure divided by the reference’s (lower is better for latency and memory, higher for rates ' +
  'and Gbit/s); – where either is missing or zero.';
export const COST_NOTE =
  'CPU seconds per second and resident MiB of the processes on each path, per thousand requests per second.';

// ---- header ----

export interface HeaderFacts {
  readonly date: string;
  readonly machine: string;
  readonly floor: string;
}

function hhmm(d: Date): string {
  return d.toISOString().slice(11, 16);
}

export function headerFacts(r: CompareReport): HeaderFacts {
  const start = new Date(r.startedAt);
  const end = new Date(r.finishedAt);
  let date = `${r.startedAt} – ${r.finishedAt}`;
  if (!Number.isNaN(start.getTime()) && !Number.isNaN(end.getTime())) {
    const day = start.toISOString().slice(0, 10);
    const endDay = end.toISOString().slice(0, 10);
    date = `${day} ${hhmm(start)}–${endDay === day ? '' : `${endDay} `}${hhmm(end)} UTC`;
  }
  const m = r.machine;
  const floor =
    r.generatorFloorP99Us === null
      ? `not measured (generator scheduler ${r.generatorScheduler})`
      : `p99 ${int(r.generatorFloorP99Us)} µs at 1000 rps against a trivial HTTP/1.1 server on loopback in the client pod` +
        (r.generatorFloor
          ? ` (p50 ${int(r.generatorFloor.latencyUs.p50)} µs, generator lateness p99 ${int(r.generatorFloor.sendLagUs.p99)} µs)`
          : '') +
        ` (generator scheduler ${r.generatorScheduler})`;
  return {
    date,
    machine: `${m.cpus} vCPU ${m.cpuModel}, ${m.memoryGiB} GiB, Linux ${m.kernel}, Node.js ${m.node}`,
    floor,
  };
}

// ---- absolute results per scenario ----

interface Columns {
  readonly headers: readonly string[];
  readonly cells: (run: PathRun) => readonly string[] | undefined;
}

function rssCell(idle: IdleResult): string {
  const names = Object.keys(idle.rssHeldMiB);
  if (names.length === 0) return '–';
  return names
    .map((n) => {
      const held = idle.rssHeldMiB[n]!;
      const before = idle.rssBeforeMiB[n];
      return `${n} ${held.toFixed(1)}${before === undefined ? '' : ` (+${(held - before).toFixed(1)})`}`;
    })
    .join(', ');
}

const COLUMNS: Record<ScenarioKind, Columns> = {
  latency: {
    headers: [
      'p50 µs',
      'p90',
      'p99',
      'p99.9',
      'max',
      'service p99',
      'generator lateness p99',
      'errors',
      'achieved rps',
    ],
    cells: ({ load: l }) =>
      l && [
        ...[l.latencyUs.p50, l.latencyUs.p90, l.latencyUs.p99, l.latencyUs.p999, l.latencyUs.max].map(int),
        int(l.serviceUs.p99),
        int(l.sendLagUs.p99),
        errorsCell(l),
        int(l.achievedRps),
      ],
  },
  throughput: {
    headers: ['achieved rps', 'p99 µs', 'errors'],
    cells: ({ load: l }) => l && [int(l.achievedRps), int(l.latencyUs.p99), errorsCell(l)],
  },
  bulk: {
    headers: ['streams', 'Gbit/s'],
    cells: ({ bulk: b }) => b && [String(b.streams), b.gbitPerSecond.toFixed(2)],
  },
  memory: {
    headers: ['connections held', 'failed', 'MiB per 1000 connections', 'RSS held MiB per process (growth)'],
    cells: ({ idle: i }) =>
      i && [String(i.connections), String(i.failed), i.mibPer1000Connections.toFixed(1), rssCell(i)],
  },
};

/** One row per available path: the scenario's absolute figures, or why there are none. */
export function scenarioTable(report: CompareReport, s: ScenarioReport): Table {
  const columns = COLUMNS[s.kind];
  const rows = availablePaths(report).map((p): TableRow => {
    const run = runOf(s, p.id);
    if (run === undefined) return { label: p.id, note: 'not run' };
    if (run.error !== undefined) return { label: p.id, note: `error: ${run.error}` };
    const cells = columns.cells(run);
    return cells === undefined ? { label: p.id, note: 'no result recorded' } : { label: p.id, cells };
  });
  return { headers: ['path', ...columns.headers], rows };
}

// ---- ratios ----

interface Metric {
  readonly label: string;
  readonly value: (run: PathRun) => number | undefined;
}

const p99: (id: string) => Metric = (id) => ({
  label: `${id}: p99 from schedule`,
  value: (r) => r.load?.latencyUs.p99,
});
const rps: (id: string) => Metric = (id) => ({
  label: `${id}: achieved rps`,
  value: (r) => r.load?.achievedRps,
});

/** The headline figures of a scenario; connection-per-request scenarios get both latency and rate. */
export function metricsOf(s: ScenarioReport): Metric[] {
  const perRequest = connectionPerRequest(s);
  switch (s.kind) {
    case 'latency':
      return perRequest ? [p99(s.id), rps(s.id)] : [p99(s.id)];
    case 'throughput':
      return perRequest ? [rps(s.id), p99(s.id)] : [{ ...rps(s.id), label: `${s.id}: max rps` }];
    case 'bulk':
      return [{ label: `${s.id}: Gbit/s`, value: (r) => r.bulk?.gbitPerSecond }];
    case 'memory':
      return [
        { label: `${s.id}: MiB per 1000 idle connections`, value: (r) => r.idle?.mibPer1000Connections },
      ];
  }
}

/** One row per headline figure, one column per (available path, available reference) pair. */
export function ratioTable(report: CompareReport): Table {
  const available = availablePaths(report).map((p) => p.id);
  const refs = REFERENCES.filter((r) => available.includes(r));
  const pairs = available
    .filter((p) => p !== 'direct')
    .flatMap((p) => [
      ...refs.filter((ref) => ref !== p).map((ref) => [p, ref] as const),
      // The waypoint's own cost is what it adds to the L4 path it rides on.
      ...(p === 'waypoint' && available.includes('mesh') ? [[p, 'mesh'] as const] : []),
    ]);
  const rows = report.scenarios.flatMap((s) =>
    metricsOf(s).map((m): TableRow => {
      const value = (p: PathId): number | undefined => {
        const run = ok(runOf(s, p));
        return run && m.value(run);
      };
      return { label: m.label, cells: pairs.map(([p, ref]) => ratio(value(p), value(ref))) };
    }),
  );
  return { headers: ['figure', ...pairs.map(([p, ref]) => `${p} vs ${ref}`)], rows };
}

// ---- cost per 1000 rps ----

/** vCPU and MiB per 1000 rps of each path's processes, for the request scenarios that sampled them. */
export function costTable(report: CompareReport): Table {
  const scenarios = report.scenarios.filter(
    (s) => (s.kind === 'latency' || s.kind === 'throughput') && s.runs.some((r) => r.usage !== undefined),
  );
  const headers = [
    'path',
    ...scenarios.flatMap((s) => [`${s.id}: vCPU per 1000 rps`, `${s.id}: MiB per 1000 rps`]),
  ];
  const rows = availablePaths(report).map((p): TableRow => ({
    label: p.id,
    cells: scenarios.flatMap((s) => {
      const u = ok(runOf(s, p.id))?.usage;
      return [fixed(u?.vcpuPer1000Rps, 3), fixed(u?.mibPer1000Rps, 1)];
    }),
  }));
  return { headers, rows };
}
