// The agents' memory and CPU over one run of `weft bench observe`: resident memory sampled from
// /proc/<pid>/status every SAMPLE_INTERVAL_MS (start, peak, end), the kernel's own peak (VmHWM, reset at
// the start of the run, so a spike between two samples is not missed), and CPU time (utime + stime)
// from /proc/<pid>/stat.
import { readFileSync, writeFileSync } from 'node:fs';
import { sampleProcess } from '../proc-stats.js';

/** Often enough to see a buffer building up over a 10 s run; reading two small /proc files is ~20 µs. */
export const SAMPLE_INTERVAL_MS = 200;

const MIB = 2 ** 20;

/** VmRSS and VmHWM of `pid`, in bytes. */
export function readMemory(pid: number): { rssBytes: number; hwmBytes: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!m) throw new Error(`/proc/${pid}/status has no ${field}`);
    return Number(m[1]) * 1024;
  };
  return { rssBytes: kib('VmRSS'), hwmBytes: kib('VmHWM') };
}

/** The machine's CPU time (all CPUs) from the first line of /proc/stat, in seconds. */
export interface MachineCpu {
  readonly busySeconds: number;
  /** Time the hypervisor ran something else while a vCPU wanted to run. */
  readonly stealSeconds: number;
}

/** As in ../proc-stats.ts. */
const CLK_TCK = 100;

export function readMachineCpu(): MachineCpu {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  // cpu user nice system idle iowait irq softirq steal …
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  return {
    busySeconds: (user! + nice! + system! + irq! + softirq! + steal!) / CLK_TCK,
    stealSeconds: steal! / CLK_TCK,
  };
}

/** Resets VmHWM to the current RSS (Linux ≥ 4.0: `5` to clear_refs touches nothing else). */
function resetPeak(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

function mib1(bytes: number): number {
  return Math.round((bytes / MIB) * 10) / 10;
}

/** One agent over one run. */
export interface AgentRunUsage {
  readonly node: string;
  readonly pid: number;
  readonly rssStartMiB: number;
  /** The larger of the sampled maximum and the kernel's VmHWM over the run. */
  readonly rssPeakMiB: number;
  readonly rssEndMiB: number;
  /** Every sample, in order (MiB): the collector's saw-tooth, for whoever wants to see it. */
  readonly rssSamplesMiB: readonly number[];
  readonly cpuSeconds: number;
}

/** Samples a set of processes from `start()` to `stop()`. */
export class UsageWatch {
  readonly #agents: readonly { node: string; pid: number }[];
  readonly #startRss: number[];
  readonly #peakRss: number[];
  readonly #startCpu: number[];
  readonly #samples: number[][];
  readonly #timer: NodeJS.Timeout;

  private constructor(agents: readonly { node: string; pid: number }[]) {
    this.#agents = agents;
    for (const a of agents) resetPeak(a.pid);
    this.#startRss = agents.map((a) => readMemory(a.pid).rssBytes);
    this.#peakRss = [...this.#startRss];
    this.#samples = this.#startRss.map((b) => [mib1(b)]);
    this.#startCpu = agents.map((a) => sampleProcess(a.pid).cpuSeconds);
    this.#timer = setInterval(() => this.#sample(), SAMPLE_INTERVAL_MS);
  }

  static start(agents: readonly { node: string; pid: number }[]): UsageWatch {
    return new UsageWatch(agents);
  }

  #sample(): void {
    this.#agents.forEach((a, i) => {
      const rss = readMemory(a.pid).rssBytes;
      this.#peakRss[i] = Math.max(this.#peakRss[i]!, rss);
      this.#samples[i]!.push(mib1(rss));
    });
  }

  stop(): AgentRunUsage[] {
    clearInterval(this.#timer);
    this.#sample();
    return this.#agents.map((a, i) => {
      const { rssBytes, hwmBytes } = readMemory(a.pid);
      return {
        node: a.node,
        pid: a.pid,
        rssStartMiB: mib1(this.#startRss[i]!),
        rssPeakMiB: mib1(Math.max(this.#peakRss[i]!, hwmBytes)),
        rssEndMiB: mib1(rssBytes),
        rssSamplesMiB: this.#samples[i]!,
        cpuSeconds: Math.round((sampleProcess(a.pid).cpuSeconds - this.#startCpu[i]!) * 100) / 100,
      };
    });
  }
}
