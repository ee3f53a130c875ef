// `weft bench kube-scale`: does the agent's config path from the Kubernetes API hold a large cluster
// (100,000 pods, 10,000 Services) in flat memory and CPU? Four kinds of process, one at a time:
//
// - the API server double (test/helpers/kube-api-server.ts) holding a generated, realistic object set
//   (bench/kube-scale/objects.ts), in its own process so that its memory is not counted;
// - the baseline: the same set as JSON `List` files through the `file:` source into a ConfigStore;
// - the subject: `kubernetes:KUBECONFIG` into a ConfigStore, the agent's per-node view recomputed per
//   batch: initial sync, then a bounded churn at a fixed write rate (sampled every `sampleSeconds` after
//   a forced GC, between churn segments so that the GC pauses land in no latency), then a relist forced
//   by cutting the watches and compacting history (410 Gone);
// - a reference: the same churn against a cluster 100 times smaller, for the CPU per write at both sizes.
//
// Memory is read after forced GCs (the consumers run with --expose-gc): live bytes, not garbage.
// Latency is the writer's clock, put in a label of each written object, against the consumer's when the
// batch holding it is applied (both processes read one machine clock).
import { describeCommit } from './commit.js';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { sampleProcess } from './proc-stats.js';
import { nodeName, scaleSpec, type ScaleSpec } from './kube-scale/objects.js';
import { readPeakRss, resetPeakRss } from './kube-scale/peak-rss.js';
import {
  BenchChild,
  type ApiChildOptions,
  type ApiCommand,
  type ChurnCounts,
  type ConsumerCommand,
  type ConsumerOptions,
  type ConsumerSample,
  type ConsumerSynced,
  type ConsumerTornDown,
} from './kube-scale/protocol.js';
import { summarizeHeapSnapshot, type HeapSummaryRow } from './kube-scale/heap-summary.js';

export const KUBE_SCALE_DEFAULTS = {
  pods: 100_000,
  services: 10_000,
  churnSeconds: 60,
  rate: 100,
  sampleSeconds: 5,
  seed: 1,
} as const;

/** The reference cluster is this much smaller (with the same pods per Service and per namespace). */
const REFERENCE_DIVISOR = 100;
/**
 * Quiet time before memory is read: for the consumer to apply a churn segment's last writes, and for a
 * (re)list's transient references to go (see RelistReport.heapRightAfterMiB).
 */
const DEFAULT_SETTLE_MS = 1000;
/** Heap growth over the whole churn (by the fitted slope) below this share of the synced heap is flat. */
const FLAT_SHARE = 0.01;
/** … or below this many MiB, whichever is larger (small clusters have small heaps). */
const FLAT_MIN_MIB = 2;
/** CPU per write at full scale within this factor of the reference's counts as flat. */
const CPU_FLAT_RATIO = 1.5;
const MIB = 2 ** 20;

export interface KubeScaleOptions {
  readonly pods: number;
  readonly services: number;
  readonly namespaces?: number;
  readonly nodes?: number;
  readonly seed?: number;
  readonly churnSeconds: number;
  /** API writes per second during the churn. */
  readonly rate: number;
  /** Memory is sampled (forced GC) between churn segments of this length. */
  readonly sampleSeconds?: number;
  /** Quiet time before memory is read (DEFAULT_SETTLE_MS); tests shorten it. */
  readonly settleMs?: number;
  /** Also churn a cluster REFERENCE_DIVISOR times smaller, for CPU per write at both sizes. */
  readonly reference?: boolean;
  /** --max-old-space-size of the consumers (MiB); V8's default when absent, as the agent runs. */
  readonly consumerHeapMiB?: number;
  /**
   * Write a heap snapshot of the kubernetes consumer here after the relist and summarise it. Slow and
   * memory hungry (several times the heap); the teardown figures after it are disturbed.
   */
  readonly heapSnapshot?: string;
  /** The command line, for the report. */
  readonly command?: string;
  readonly out?: (line: string) => void;
}

export interface SourceReport {
  readonly source: 'kubernetes' | 'file';
  readonly firstBatchSeconds: number;
  readonly syncSeconds: number;
  readonly cpuSeconds: number;
  readonly peakRssMiB: number | undefined;
  /** After a forced GC, before the source existed. */
  readonly baseHeapMiB: number;
  readonly heapMiB: number;
  readonly rssMiB: number;
  /** (heap − base heap) / pods: every object of the set, counted per pod. */
  readonly heapBytesPerPod: number;
  /**
   * At the end of the run (for kubernetes after the churn and the relist): the heap with the source
   * running, and with it stopped and dropped (the store's records and indexes alone); the difference is
   * what the source itself keeps (informer caches, file contents).
   */
  readonly endHeapMiB: number;
  readonly storeOnlyHeapMiB: number;
  readonly sourceHeapMiB: number;
  /** Of the store: its records (all kinds) and its indexes, per pod. */
  readonly recordBytesPerPod: number;
  readonly indexBytesPerPod: number;
  readonly rejections: number;
  readonly present: Readonly<Record<string, number>>;
  readonly identitiesOnNode: number;
  readonly batches: number;
}

export interface MemoryPoint {
  /** Churn seconds before the sample. */
  readonly atSeconds: number;
  readonly heapMiB: number;
  readonly rssMiB: number;
}

export interface ChurnReport {
  readonly seconds: number;
  readonly rate: number;
  readonly writes: number;
  readonly writesPerSecond: number;
  /** Writes whose object carries the writer's clock (all but deletes): what latency is measured on. */
  readonly stamped: number;
  readonly counts: ChurnCounts;
  /** The consumer's CPU over the churn, the forced GCs of the samples left out. */
  readonly cpuSeconds: number;
  readonly cpuPercentOfCore: number;
  readonly cpuMsPerWrite: number;
  readonly latencyMs: {
    readonly count: number;
    readonly p50: number;
    readonly p90: number;
    readonly p99: number;
    readonly max: number;
    readonly mean: number;
  };
  readonly batches: number;
  readonly samples: readonly MemoryPoint[];
  readonly heapSlopeMiBPerMin: number;
  readonly rssSlopeMiBPerMin: number;
  /** Heap growth over the churn by the fitted slope, and the most that counts as flat. */
  readonly heapGrowthMiB: number;
  /** The same per write: what a leak of something per event would show as. */
  readonly heapGrowthBytesPerWrite: number;
  readonly flatLimitMiB: number;
  readonly heapFlat: boolean;
}

export interface RelistReport {
  readonly updated: number;
  readonly deleted: number;
  /** From cutting the watches to the store holding every change. */
  readonly seconds: number;
  readonly cpuSeconds: number;
  readonly peakRssMiB: number | undefined;
  readonly heapBeforeMiB: number;
  /** Right when the store has every change: the list's stubs are still referenced until the watch is open again. */
  readonly heapRightAfterMiB: number;
  /** `settleSeconds` later. */
  readonly heapAfterMiB: number;
  readonly settleSeconds: number;
  readonly rssAfterMiB: number;
  readonly batches: number;
}

export interface KubeScaleReport {
  readonly date: string;
  readonly command: string;
  /** `git describe --always --dirty` of the working tree measured. */
  readonly commit: string;
  readonly machine: {
    readonly cpus: number;
    readonly memGiB: number;
    readonly node: string;
    readonly kernel: string;
  };
  readonly logLevel: string;
  readonly consumerHeapLimitMiB: number | 'default';
  readonly spec: ScaleSpec;
  readonly objects: number;
  readonly generateSeconds: number;
  /** The set as the API server serialises it. */
  readonly jsonMiB: number;
  readonly jsonBytesPerPod: number;
  readonly kubernetes: SourceReport;
  readonly file: SourceReport;
  /** kubernetes / file. */
  readonly ratios: {
    readonly heap: number;
    readonly rss: number;
    readonly peakRss: number | undefined;
    readonly syncTime: number;
    readonly syncCpu: number;
  };
  readonly churn: ChurnReport;
  readonly relist: RelistReport;
  readonly reference:
    { readonly spec: ScaleSpec; readonly kubernetes: SourceReport; readonly churn: ChurnReport } | undefined;
  /** Full-scale CPU per write / the reference's. */
  readonly cpuPerWriteRatio: number | undefined;
  readonly cpuFlat: boolean | undefined;
  readonly heapSummary: readonly HeapSummaryRow[] | undefined;
}

/** The child scripts, compiled: next to this file in dist/, or under dist/ when run from the sources. */
function childScript(name: 'api-child' | 'consumer-child'): string {
  const url = import.meta.url.endsWith('.ts')
    ? new URL(`../dist/bench/kube-scale/${name}.js`, import.meta.url)
    : new URL(`./kube-scale/${name}.js`, import.meta.url);
  const path = fileURLToPath(url);
  if (!existsSync(path)) throw new Error(`${path} is missing: run npm run build first`);
  return path;
}

function mib(bytes: number): number {
  return Math.round((bytes / MIB) * 10) / 10;
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Least-squares slope of y over x. */
export function slope(xs: readonly number[], ys: readonly number[]): number {
  const n = Math.min(xs.length, ys.length);
  if (n < 2) return 0;
  let sx = 0;
  let sy = 0;
  for (let i = 0; i < n; i += 1) {
    sx += xs[i] as number;
    sy += ys[i] as number;
  }
  const mx = sx / n;
  const my = sy / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i += 1) {
    const dx = (xs[i] as number) - mx;
    num += dx * ((ys[i] as number) - my);
    den += dx * dx;
  }
  return den === 0 ? 0 : num / den;
}

type ApiChild = BenchChild<ApiCommand>;
type Consumer = BenchChild<ConsumerCommand>;

interface Run {
  readonly out: (line: string) => void;
  readonly env: NodeJS.ProcessEnv;
  readonly consumerArgv: readonly string[];
  readonly children: Set<BenchChild<{ readonly cmd: string }>>;
  readonly settleMs: number;
}

/** Bounds for the waits: generous for 100,000 pods on 2 cores, finite for anything. */
function loadTimeoutMs(spec: ScaleSpec): number {
  return 120_000 + spec.pods * 10;
}

async function startApi(run: Run, spec: ScaleSpec, dir: string, writeFiles: boolean) {
  const options: ApiChildOptions = { spec, dir, writeFiles };
  const api: ApiChild = new BenchChild('API server double', childScript('api-child'), options, [], run.env);
  run.children.add(api);
  const ready = await api.next('ready', loadTimeoutMs(spec));
  return { api, ready };
}

function startConsumer(run: Run, spec: ScaleSpec, source: string, name: string): Consumer {
  const options: ConsumerOptions = { spec, source, nodeName: nodeName(0), settleMs: run.settleMs };
  const consumer: Consumer = new BenchChild(
    name,
    childScript('consumer-child'),
    options,
    run.consumerArgv,
    run.env,
  );
  run.children.add(consumer);
  return consumer;
}

function sourceReport(
  source: 'kubernetes' | 'file',
  spec: ScaleSpec,
  synced: ConsumerSynced,
  end: ConsumerTornDown,
): SourceReport {
  return {
    source,
    firstBatchSeconds: round(synced.firstBatchSeconds, 2),
    syncSeconds: round(synced.syncSeconds, 2),
    cpuSeconds: round(synced.cpuSeconds, 2),
    peakRssMiB: synced.peakRssBytes === undefined ? undefined : mib(synced.peakRssBytes),
    baseHeapMiB: mib(synced.before.heapUsedBytes),
    heapMiB: mib(synced.after.heapUsedBytes),
    rssMiB: mib(synced.after.rssBytes),
    heapBytesPerPod: Math.round((synced.after.heapUsedBytes - synced.before.heapUsedBytes) / spec.pods),
    endHeapMiB: mib(end.withSource.heapUsedBytes),
    storeOnlyHeapMiB: mib(end.storeOnly.heapUsedBytes),
    sourceHeapMiB: mib(end.withSource.heapUsedBytes - end.storeOnly.heapUsedBytes),
    recordBytesPerPod: Math.round((end.recordsOnly.heapUsedBytes - synced.before.heapUsedBytes) / spec.pods),
    indexBytesPerPod: Math.round((end.storeOnly.heapUsedBytes - end.recordsOnly.heapUsedBytes) / spec.pods),
    rejections: synced.rejections,
    present: synced.present,
    identitiesOnNode: synced.identitiesOnNode,
    batches: synced.batches,
  };
}

/** The file baseline: load, measure, tear down, exit. */
async function fileBaseline(run: Run, spec: ScaleSpec, manifestsDir: string): Promise<SourceReport> {
  const consumer = startConsumer(run, spec, `file:${manifestsDir}`, 'file consumer');
  try {
    const synced = await consumer.next('synced', loadTimeoutMs(spec));
    run.out(
      `file: loaded in ${synced.syncSeconds.toFixed(1)} s, heap ${mib(synced.after.heapUsedBytes)} MiB`,
    );
    const end = await consumer.ask({ cmd: 'teardown' }, 'torn-down', 120_000);
    return sourceReport('file', spec, synced, end);
  } finally {
    await consumer.stop();
    run.children.delete(consumer);
  }
}

/**
 * `seconds` of churn at `rate` writes/s in segments of `sampleSeconds`, the consumer's memory sampled
 * (forced GC) before the first and after each, outside the CPU windows.
 */
async function churn(
  api: ApiChild,
  consumer: Consumer,
  synced: ConsumerSynced,
  opts: { seconds: number; rate: number; sampleSeconds: number; seed: number; settleMs: number },
): Promise<ChurnReport> {
  const samples: MemoryPoint[] = [];
  const point = (atSeconds: number, s: ConsumerSample): MemoryPoint => ({
    atSeconds: round(atSeconds, 1),
    heapMiB: mib(s.memory.heapUsedBytes),
    rssMiB: mib(s.memory.rssBytes),
  });
  samples.push(point(0, await consumer.ask({ cmd: 'sample' }, 'sample', 120_000)));
  consumer.send({ cmd: 'latency', on: true });
  const counts = { podUpdates: 0, podReplacements: 0, sliceUpdates: 0, serviceUpdates: 0 };
  let elapsed = 0;
  let writes = 0;
  let stamped = 0;
  let cpuSeconds = 0;
  for (let segment = 0; elapsed < opts.seconds - 1e-6; segment += 1) {
    const seconds = Math.min(opts.sampleSeconds, opts.seconds - elapsed);
    const cpu0 = sampleProcess(consumer.pid).cpuSeconds;
    const done = await api.ask(
      { cmd: 'churn', seconds, rate: opts.rate, seed: opts.seed * 1000 + segment },
      'churned',
      seconds * 1000 + 60_000,
    );
    await sleep(opts.settleMs);
    cpuSeconds += sampleProcess(consumer.pid).cpuSeconds - cpu0;
    elapsed += done.seconds;
    writes += done.writes;
    stamped += done.stamped;
    counts.podUpdates += done.counts.podUpdates;
    counts.podReplacements += done.counts.podReplacements;
    counts.sliceUpdates += done.counts.sliceUpdates;
    counts.serviceUpdates += done.counts.serviceUpdates;
    samples.push(point(elapsed, await consumer.ask({ cmd: 'sample' }, 'sample', 120_000)));
  }
  const latency = await consumer.ask({ cmd: 'latency', on: false }, 'latency', 30_000);
  const minutes = samples.map((s) => s.atSeconds / 60);
  const heapSlope = slope(
    minutes,
    samples.map((s) => s.heapMiB),
  );
  const rssSlope = slope(
    minutes,
    samples.map((s) => s.rssMiB),
  );
  const heapGrowthMiB = heapSlope * (elapsed / 60);
  const flatLimitMiB = Math.max(FLAT_MIN_MIB, (synced.after.heapUsedBytes / MIB) * FLAT_SHARE);
  const ms = (us: number): number => round(us / 1000, 2);
  return {
    seconds: round(elapsed, 1),
    rate: opts.rate,
    writes,
    writesPerSecond: round(writes / elapsed, 1),
    stamped,
    counts,
    cpuSeconds: round(cpuSeconds, 2),
    cpuPercentOfCore: round((cpuSeconds / elapsed) * 100, 1),
    cpuMsPerWrite: round((cpuSeconds * 1000) / Math.max(1, writes), 3),
    latencyMs: {
      count: latency.count,
      p50: ms(latency.latencyUs.p50),
      p90: ms(latency.latencyUs.p90),
      p99: ms(latency.latencyUs.p99),
      max: ms(latency.latencyUs.max),
      mean: ms(latency.latencyUs.mean),
    },
    batches: latency.batches,
    samples,
    heapSlopeMiBPerMin: round(heapSlope, 2),
    rssSlopeMiBPerMin: round(rssSlope, 2),
    heapGrowthMiB: round(heapGrowthMiB, 2),
    heapGrowthBytesPerWrite: Math.round((heapGrowthMiB * MIB) / Math.max(1, writes)),
    flatLimitMiB: round(flatLimitMiB, 1),
    heapFlat: heapGrowthMiB <= flatLimitMiB,
  };
}

async function relist(
  api: ApiChild,
  consumer: Consumer,
  spec: ScaleSpec,
  heapBeforeMiB: number,
  settleMs: number,
) {
  const updates = Math.min(1000, Math.max(1, Math.round(spec.pods / 100)));
  const deletes = Math.min(100, Math.max(1, Math.round(spec.pods / 1000)));
  const peakReset = resetPeakRss(consumer.pid);
  const cpu0 = sampleProcess(consumer.pid).cpuSeconds;
  const cut = await api.ask({ cmd: 'relist', updates, deletes }, 'relisted', 60_000);
  const timeoutMs = loadTimeoutMs(spec);
  const done = await consumer.ask(
    { cmd: 'await-relist', marker: cut.marker, updated: cut.updated, deleted: cut.deleted, timeoutMs },
    'relist-done',
    timeoutMs + 10_000,
  );
  const cpuSeconds = sampleProcess(consumer.pid).cpuSeconds - cpu0;
  const peak = peakReset ? readPeakRss(consumer.pid) : undefined;
  const rightAfter = await consumer.ask({ cmd: 'sample' }, 'sample', 120_000);
  await sleep(settleMs);
  const after = await consumer.ask({ cmd: 'sample' }, 'sample', 120_000);
  const report: RelistReport = {
    updated: cut.updated.length,
    deleted: cut.deleted.length,
    seconds: round((done.doneAtUs - cut.droppedAtUs) / 1e6, 2),
    cpuSeconds: round(cpuSeconds, 2),
    peakRssMiB: peak === undefined ? undefined : mib(peak),
    heapBeforeMiB,
    heapRightAfterMiB: mib(rightAfter.memory.heapUsedBytes),
    heapAfterMiB: mib(after.memory.heapUsedBytes),
    settleSeconds: settleMs / 1000,
    rssAfterMiB: mib(after.memory.rssBytes),
    batches: done.batches,
  };
  return report;
}

function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined || b === 0 ? undefined : round(a / b, 2);
}

export async function runKubeScale(options: KubeScaleOptions): Promise<KubeScaleReport> {
  const out = options.out ?? (() => undefined);
  const spec = scaleSpec(options.pods, options.services, {
    namespaces: options.namespaces,
    nodes: options.nodes,
    seed: options.seed ?? KUBE_SCALE_DEFAULTS.seed,
  });
  const sampleSeconds = options.sampleSeconds ?? KUBE_SCALE_DEFAULTS.sampleSeconds;
  if (!(options.churnSeconds > 0) || !(options.rate > 0) || !(sampleSeconds > 0))
    throw new Error('kube-scale: churn seconds, rate and sample seconds must be positive');
  const logLevel = process.env.WEFT_LOG_LEVEL ?? 'info';
  const run: Run = {
    out,
    // Plain node: no loader or hook a parent (tap, a profiler) put in NODE_OPTIONS runs in the children.
    env: { ...process.env, WEFT_LOG_LEVEL: logLevel, NODE_OPTIONS: undefined },
    consumerArgv: [
      '--expose-gc',
      ...(options.consumerHeapMiB === undefined ? [] : [`--max-old-space-size=${options.consumerHeapMiB}`]),
    ],
    children: new Set(),
    settleMs: options.settleMs ?? DEFAULT_SETTLE_MS,
  };
  const dir = mkdtempSync(join(tmpdir(), 'weft-kube-scale-'));
  try {
    out(`generating ${spec.pods} pods, ${spec.services} services in ${spec.namespaces} namespaces`);
    const { api, ready } = await startApi(run, spec, dir, true);
    const jsonBytes = Object.values(ready.jsonBytes).reduce((a, b) => a + b, 0);
    out(
      `API server double ready in ${ready.createSeconds.toFixed(1)} s: ${ready.objects} objects, ${mib(jsonBytes)} MiB of JSON`,
    );
    if (ready.manifestsDir === undefined) throw new Error('kube-scale: the API child wrote no manifests');
    const file = await fileBaseline(run, spec, ready.manifestsDir);

    const consumer = startConsumer(run, spec, `kubernetes:${ready.kubeconfig}`, 'kubernetes consumer');
    const synced = await consumer.next('synced', loadTimeoutMs(spec));
    out(
      `kubernetes: synced in ${synced.syncSeconds.toFixed(1)} s, heap ${mib(synced.after.heapUsedBytes)} MiB`,
    );
    out(`churn: ${options.churnSeconds} s at ${options.rate} writes/s`);
    const churnReport = await churn(api, consumer, synced, {
      seconds: options.churnSeconds,
      rate: options.rate,
      sampleSeconds,
      seed: spec.seed,
      settleMs: run.settleMs,
    });
    out(
      `churn: CPU ${churnReport.cpuPercentOfCore} % of a core, heap slope ${churnReport.heapSlopeMiBPerMin} MiB/min`,
    );
    const lastHeap = churnReport.samples.at(-1)?.heapMiB ?? mib(synced.after.heapUsedBytes);
    const relistReport = await relist(api, consumer, spec, lastHeap, run.settleMs);
    out(`relist: ${relistReport.seconds} s, ${relistReport.cpuSeconds} CPU s`);
    // Last, as writing a snapshot disturbs the memory (and the time) of whatever would follow it.
    let heapSummary: readonly HeapSummaryRow[] | undefined;
    if (options.heapSnapshot !== undefined) {
      const snapshot = await consumer.ask(
        { cmd: 'heap-snapshot', path: options.heapSnapshot },
        'heap-snapshot',
        1_800_000,
      );
      out(`heap snapshot: ${snapshot.path}`);
      heapSummary = summarizeHeapSnapshot(snapshot.path, spec.pods);
    }
    const end = await consumer.ask({ cmd: 'teardown' }, 'torn-down', 120_000);
    const kubernetes = sourceReport('kubernetes', spec, synced, end);
    await consumer.stop();
    await api.stop();
    run.children.clear();

    let reference: KubeScaleReport['reference'];
    if (options.reference !== false) {
      const small = scaleSpec(
        Math.max(200, Math.round(spec.pods / REFERENCE_DIVISOR)),
        Math.max(20, Math.round(spec.services / REFERENCE_DIVISOR)),
        { seed: spec.seed },
      );
      out(`reference: ${small.pods} pods, ${small.services} services, the same churn`);
      const refDir = mkdtempSync(join(dir, 'reference-'));
      const ref = await startApi(run, small, refDir, false);
      const refConsumer = startConsumer(
        run,
        small,
        `kubernetes:${ref.ready.kubeconfig}`,
        'reference consumer',
      );
      const refSynced = await refConsumer.next('synced', loadTimeoutMs(small));
      const refChurn = await churn(ref.api, refConsumer, refSynced, {
        seconds: options.churnSeconds,
        rate: options.rate,
        sampleSeconds,
        seed: spec.seed,
        settleMs: run.settleMs,
      });
      const refTorn = await refConsumer.ask({ cmd: 'teardown' }, 'torn-down', 120_000);
      reference = {
        spec: small,
        kubernetes: sourceReport('kubernetes', small, refSynced, refTorn),
        churn: refChurn,
      };
      await refConsumer.stop();
      await ref.api.stop();
      run.children.clear();
    }
    const cpuPerWriteRatio = ratio(churnReport.cpuMsPerWrite, reference?.churn.cpuMsPerWrite);
    return {
      date: new Date().toISOString(),
      command: options.command ?? 'weft bench kube-scale',
      commit: describeCommit(),
      machine: {
        cpus: cpus().length,
        memGiB: Math.round(totalmem() / 2 ** 30),
        node: process.version,
        kernel: release(),
      },
      logLevel,
      consumerHeapLimitMiB: options.consumerHeapMiB ?? 'default',
      spec,
      objects: ready.objects,
      generateSeconds: round(ready.createSeconds, 1),
      jsonMiB: mib(jsonBytes),
      jsonBytesPerPod: Math.round(jsonBytes / spec.pods),
      kubernetes,
      file,
      ratios: {
        heap: ratio(kubernetes.heapMiB, file.heapMiB) ?? NaN,
        rss: ratio(kubernetes.rssMiB, file.rssMiB) ?? NaN,
        peakRss: ratio(kubernetes.peakRssMiB, file.peakRssMiB),
        syncTime: ratio(kubernetes.syncSeconds, file.syncSeconds) ?? NaN,
        syncCpu: ratio(kubernetes.cpuSeconds, file.cpuSeconds) ?? NaN,
      },
      churn: churnReport,
      relist: relistReport,
      reference,
      cpuPerWriteRatio,
      cpuFlat: cpuPerWriteRatio === undefined ? undefined : cpuPerWriteRatio <= CPU_FLAT_RATIO,
      heapSummary,
    };
  } finally {
    for (const child of run.children) await child.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- the report as Markdown ----------------------------------------------------------------------

function cell(value: number | string | boolean | undefined): string {
  if (value === undefined) return '–';
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  return String(value);
}

export function formatKubeScale(r: KubeScaleReport): string {
  const k = r.kubernetes;
  const f = r.file;
  const c = r.churn;
  const lines = [
    `${r.spec.pods} pods, ${r.spec.services} Services (+ as many EndpointSlices), ${r.spec.namespaces} namespaces, ` +
      `${r.spec.nodes} nodes, ${r.spec.policies} AuthorizationPolicies: ${r.objects} objects, ` +
      `${r.jsonMiB} MiB of JSON (${r.jsonBytesPerPod} B per pod, all kinds)`,
    '',
    '| initial sync | kubernetes | file (baseline) | kubernetes / file |',
    '|---|---:|---:|---:|',
    `| time to the first applied batch (s) | ${k.firstBatchSeconds} | ${f.firstBatchSeconds} | ${cell(r.ratios.syncTime)} |`,
    `| CPU for the sync (s) | ${k.cpuSeconds} | ${f.cpuSeconds} | ${cell(r.ratios.syncCpu)} |`,
    `| peak RSS during the sync (MiB) | ${cell(k.peakRssMiB)} | ${cell(f.peakRssMiB)} | ${cell(r.ratios.peakRss)} |`,
    `| heap used after sync, after GC (MiB) | ${k.heapMiB} | ${f.heapMiB} | ${cell(r.ratios.heap)} |`,
    `| RSS after sync, after GC (MiB) | ${k.rssMiB} | ${f.rssMiB} | ${cell(r.ratios.rss)} |`,
    `| heap per pod (whole set ÷ pods, bytes) | ${k.heapBytesPerPod} | ${f.heapBytesPerPod} | ${cell(ratio(k.heapBytesPerPod, f.heapBytesPerPod))} |`,
    `| at the end: heap with the source (MiB) | ${k.endHeapMiB} | ${f.endHeapMiB} | ${cell(ratio(k.endHeapMiB, f.endHeapMiB))} |`,
    `| at the end: the store alone (MiB) | ${k.storeOnlyHeapMiB} | ${f.storeOnlyHeapMiB} | ${cell(ratio(k.storeOnlyHeapMiB, f.storeOnlyHeapMiB))} |`,
    `| at the end: what the source keeps (MiB) | ${k.sourceHeapMiB} | ${f.sourceHeapMiB} | ${cell(ratio(k.sourceHeapMiB, f.sourceHeapMiB))} |`,
    `| the store's records, per pod (bytes) | ${k.recordBytesPerPod} | ${f.recordBytesPerPod} | ${cell(ratio(k.recordBytesPerPod, f.recordBytesPerPod))} |`,
    `| the store's indexes, per pod (bytes) | ${k.indexBytesPerPod} | ${f.indexBytesPerPod} | ${cell(ratio(k.indexBytesPerPod, f.indexBytesPerPod))} |`,
    `| rejected objects | ${k.rejections} | ${f.rejections} | |`,
    '',
    `| churn: ${c.seconds} s at ${c.rate} writes/s | kubernetes |${r.reference === undefined ? '' : ` reference (${r.reference.spec.pods} pods) | full / reference |`}`,
    `|---|---:|${r.reference === undefined ? '' : '---:|---:|'}`,
  ];
  const ref = r.reference?.churn;
  const row = (
    label: string,
    full: number | string | boolean,
    small?: number | string | boolean,
    q?: number,
  ) => lines.push(`| ${label} | ${cell(full)} |${ref === undefined ? '' : ` ${cell(small)} | ${cell(q)} |`}`);
  row('writes/s achieved', c.writesPerSecond, ref?.writesPerSecond);
  row(
    'consumer CPU (% of one core)',
    c.cpuPercentOfCore,
    ref?.cpuPercentOfCore,
    ratio(c.cpuPercentOfCore, ref?.cpuPercentOfCore),
  );
  row('CPU per write (ms)', c.cpuMsPerWrite, ref?.cpuMsPerWrite, r.cpuPerWriteRatio);
  row(
    'write → applied latency p50 (ms)',
    c.latencyMs.p50,
    ref?.latencyMs.p50,
    ratio(c.latencyMs.p50, ref?.latencyMs.p50),
  );
  row(
    'write → applied latency p99 (ms)',
    c.latencyMs.p99,
    ref?.latencyMs.p99,
    ratio(c.latencyMs.p99, ref?.latencyMs.p99),
  );
  row('write → applied latency max (ms)', c.latencyMs.max, ref?.latencyMs.max);
  row(
    'heap first → last, after GC (MiB)',
    `${c.samples[0]?.heapMiB} → ${c.samples.at(-1)?.heapMiB}`,
    ref && `${ref.samples[0]?.heapMiB} → ${ref.samples.at(-1)?.heapMiB}`,
  );
  row('heap slope (MiB/min)', c.heapSlopeMiBPerMin, ref?.heapSlopeMiBPerMin);
  row(
    'RSS first → last (MiB)',
    `${c.samples[0]?.rssMiB} → ${c.samples.at(-1)?.rssMiB}`,
    ref && `${ref.samples[0]?.rssMiB} → ${ref.samples.at(-1)?.rssMiB}`,
  );
  row('RSS slope (MiB/min)', c.rssSlopeMiBPerMin, ref?.rssSlopeMiBPerMin);
  row('heap growth per write (bytes)', c.heapGrowthBytesPerWrite, ref?.heapGrowthBytesPerWrite);
  row(
    `heap flat (growth ≤ ${c.flatLimitMiB} MiB)`,
    `${cell(c.heapFlat)} (${c.heapGrowthMiB} MiB)`,
    ref && `${cell(ref.heapFlat)} (${ref.heapGrowthMiB} MiB)`,
  );
  const l = r.relist;
  lines.push(
    '',
    `| relist (410 Gone; ${l.updated} pods changed, ${l.deleted} objects deleted meanwhile) | kubernetes |`,
    '|---|---:|',
    `| watches cut → every change applied (s) | ${l.seconds} |`,
    `| CPU (s) | ${l.cpuSeconds} |`,
    `| peak RSS (MiB) | ${cell(l.peakRssMiB)} |`,
    `| heap after GC: before → right after → ${l.settleSeconds} s later (MiB) | ${l.heapBeforeMiB} → ${l.heapRightAfterMiB} → ${l.heapAfterMiB} |`,
    `| batches | ${l.batches} |`,
  );
  if (r.heapSummary !== undefined) {
    lines.push(
      '',
      '| heap snapshot at the end: top self sizes | MiB | bytes per pod | count |',
      '|---|---:|---:|---:|',
    );
    for (const h of r.heapSummary)
      lines.push(`| ${h.what} | ${mib(h.selfBytes)} | ${h.bytesPerPod} | ${h.count} |`);
  }
  return lines.join('\n');
}
