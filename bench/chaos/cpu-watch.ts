// Where the CPU went during a chaos run: every 500 ms, the CPU time of each process playing a role
// (the agents, the waypoint, the echo pods, the client), by pid, so a process that is replaced or killed
// midway still counts up to its last sample, and its replacement from its start; and the machine's, all
// processes included (other labs too).
// What tells whether the rate asked for is beyond what the machine can carry, and which part is the limit.
import { sampleProcess } from '../proc-stats.js';
import { readMachineCpu } from '../observe-cost/agent-usage.js';

const SAMPLE_MS = 500;

export interface CpuUse {
  readonly seconds: number;
  /** CPUs busy on average, the whole machine (steal included). */
  readonly machineCores: number;
  /** CPUs busy on average, per role: `agent node-1`, `waypoint`, … */
  readonly roles: Readonly<Record<string, number>>;
}

export class CpuWatch {
  readonly #pids: () => ReadonlyMap<string, readonly number[]>;
  readonly #last = new Map<number, number>();
  readonly #byRole = new Map<string, number>();
  readonly #t0 = performance.now();
  readonly #machine0 = readMachineCpu().busySeconds;
  readonly #timer: NodeJS.Timeout;

  /** `pids()` names the processes of each role now (read again at every sample). */
  constructor(pids: () => ReadonlyMap<string, readonly number[]>) {
    this.#pids = pids;
    this.#sample(true);
    this.#timer = setInterval(() => this.#sample(false), SAMPLE_MS);
  }

  #sample(first: boolean): void {
    let roles: ReadonlyMap<string, readonly number[]>;
    try {
      roles = this.#pids();
    } catch {
      return;
    }
    for (const [role, pids] of roles)
      for (const pid of pids) {
        let cpu: number;
        try {
          cpu = sampleProcess(pid).cpuSeconds;
        } catch {
          continue;
        }
        const before = this.#last.get(pid);
        this.#last.set(pid, cpu);
        if (first) continue;
        // A process first seen midway started during the run (a replacement): all its time counts.
        this.#byRole.set(role, (this.#byRole.get(role) ?? 0) + cpu - (before ?? 0));
      }
  }

  stop(): CpuUse {
    clearInterval(this.#timer);
    this.#sample(false);
    const seconds = (performance.now() - this.#t0) / 1000;
    const cores = (cpuSeconds: number): number => Math.round((cpuSeconds / seconds) * 100) / 100;
    return {
      seconds: Math.round(seconds * 10) / 10,
      machineCores: cores(readMachineCpu().busySeconds - this.#machine0),
      roles: Object.fromEntries([...this.#byRole].sort((a, b) => b[1] - a[1]).map(([r, s]) => [r, cores(s)])),
    };
  }
}
