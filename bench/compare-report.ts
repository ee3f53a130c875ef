// What `weft bench compare` produces: one JSON document with every run, from which the Markdown table,
// the HTML report and RESULTS.md are rendered. Versioned: readers refuse other versions.
import type { BulkResult } from './load/bulk.js';
import type { LoadResult } from './load/run.js';

export const COMPARE_REPORT_VERSION = 1;

/** The paths compared, in the order runs are interleaved. */
export type PathId = 'direct' | 'mesh' | 'waypoint' | 'haproxy';

export interface PathInfo {
  readonly id: PathId;
  /** `client pod → agent → agent → server pod`. */
  readonly title: string;
  /** False when the path cannot run here yet (e.g. no waypoint); `why` says why. */
  readonly available: boolean;
  readonly why?: string;
  /** Names of the processes on the path whose CPU and memory are sampled (`agent-node-1`, `haproxy-client`). */
  readonly processes: readonly string[];
}

/** CPU and memory of the path's processes over one run. */
export interface PathUsage {
  /** Seconds of load (warm-up included) the CPU figures cover. */
  readonly seconds: number;
  /** CPU seconds (user + system) per process, keyed by PathInfo.processes names. */
  readonly cpuSeconds: Readonly<Record<string, number>>;
  /** Resident memory at the end of the run, MiB, per process. */
  readonly rssMiB: Readonly<Record<string, number>>;
  /** Sum of CPU seconds per second, divided by thousands of requests per second (null for bulk/idle). */
  readonly vcpuPer1000Rps: number | null;
  /** Sum of RSS in MiB, divided by thousands of requests per second (null for bulk/idle). */
  readonly mibPer1000Rps: number | null;
}

/** Scenario (e): memory held by idle tunnelled connections. */
export interface IdleResult {
  /** Connections opened and held open (through the path) when memory was sampled. */
  readonly connections: number;
  /** Connections that failed to open. */
  readonly failed: number;
  /** RSS per process before opening them and while they were held, MiB. */
  readonly rssBeforeMiB: Readonly<Record<string, number>>;
  readonly rssHeldMiB: Readonly<Record<string, number>>;
  /** (held - before) summed over the path's processes, per 1000 connections, MiB. */
  readonly mibPer1000Connections: number;
}

export type ScenarioKind = 'latency' | 'throughput' | 'bulk' | 'memory';

export interface PathRun {
  readonly path: PathId;
  readonly load?: LoadResult;
  readonly bulk?: BulkResult;
  readonly idle?: IdleResult;
  readonly usage?: PathUsage;
  /** Set when the run failed; the other fields may be missing. */
  readonly error?: string;
}

export interface ScenarioReport {
  /** `a`, `b`, `c1`, `c8`, `d`, `e`. */
  readonly id: string;
  /** `HTTP/1.1 1 KiB at 1000 rps, 4 connections, 30 s`. */
  readonly title: string;
  readonly kind: ScenarioKind;
  /** The exact `weft …` arguments (without --target and --json) the client ran, for reproduction. */
  readonly clientArgs: readonly string[];
  readonly runs: readonly PathRun[];
}

export interface CompareReport {
  readonly version: typeof COMPARE_REPORT_VERSION;
  /** The command line that produced it. */
  readonly command: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly commit: string;
  readonly machine: {
    readonly cpus: number;
    readonly cpuModel: string;
    readonly memoryGiB: number;
    readonly kernel: string;
    readonly node: string;
  };
  /** The generator's own scheduling policy for fixed-rate runs (SCHED_FIFO when run as root). */
  readonly generatorScheduler: string;
  /**
   * The generator's own floor: p99 from the schedule of scenario (a)'s load against a trivial HTTP
   * server on loopback inside the client pod (no network, no proxy), run before the scenarios.
   */
  readonly generatorFloorP99Us: number | null;
  /** That run in full (its lateness and service time tell the generator's share apart). */
  readonly generatorFloor?: LoadResult;
  readonly paths: readonly PathInfo[];
  readonly scenarios: readonly ScenarioReport[];
}
