// Enrolment: which pod IPs of this node the kernel captures, kept in step with Namespace and Pod labels.
//
// Invariants:
// - A pod is captured (outbound and inbound) exactly while it is an enrolled, live workload of this
//   node (LocalWorkloads.owning); a change applies to new connections at once, with no restart.
// - Leaving the mesh goes through DRAIN first: connections already captured keep their redirect, new
//   ones go direct, and the entry is removed after `drainMs` (capture.md §4: an entry dropped at once
//   resets captured connections, and node-side sockets shadow the pod's 4-tuples for a while).
// - Coming back during the drain cancels it.
import type { Clock, TimerHandle } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import type { LocalWorkloads } from './workloads.js';

/** Flags of an enrolment entry (the kernel map's value). */
export const CAPTURE_OUTBOUND = 1;
export const CAPTURE_INBOUND = 2;
export const CAPTURE_DRAIN = 4;
export const CAPTURE_BOTH = CAPTURE_OUTBOUND | CAPTURE_INBOUND;

/** Where enrolment lives: the pinned BPF map in production, a Map in tests. */
export interface EnrolmentTable {
  set(ip: string, flags: number): void;
  delete(ip: string): void;
  /** The entries present now (read once at start, to adopt what a previous agent left). */
  entries(): Iterable<[ip: string, flags: number]>;
}

/** Drain long enough for TIME_WAIT (60 s on Linux) to pass on the node-side sockets. */
export const DEFAULT_DRAIN_MS = 65_000;

export class EnrolmentController {
  readonly #drains = new Map<string, TimerHandle>();
  /** What we believe the table holds. */
  readonly #current = new Map<string, number>();

  constructor(
    readonly local: LocalWorkloads,
    readonly table: EnrolmentTable,
    readonly clock: Clock,
    readonly log: Logger,
    readonly drainMs = DEFAULT_DRAIN_MS,
  ) {
    // Adopt the table as a previous agent left it: nothing is dropped by restarting.
    for (const [ip, flags] of table.entries()) this.#current.set(ip, flags);
  }

  /** Brings the table in line with the config; call on every applied config change. */
  sync(): void {
    const wanted = new Set<string>();
    for (const w of this.local.store.workloadsOnNode(this.local.nodeName))
      for (const ip of w.podIps) if (this.local.owning(ip) === w) wanted.add(ip);
    for (const ip of wanted) {
      if (this.#current.get(ip) === CAPTURE_BOTH) continue;
      this.#drains.get(ip)?.cancel();
      this.#drains.delete(ip);
      this.table.set(ip, CAPTURE_BOTH);
      this.#current.set(ip, CAPTURE_BOTH);
      this.log.info({ ip }, 'pod enrolled: new connections are captured');
    }
    for (const [ip, flags] of [...this.#current]) {
      if (wanted.has(ip) || flags & CAPTURE_DRAIN) continue;
      this.table.set(ip, flags | CAPTURE_DRAIN);
      this.#current.set(ip, flags | CAPTURE_DRAIN);
      this.#drains.set(
        ip,
        this.clock.schedule(this.drainMs, () => this.#finishDrain(ip)),
      );
      this.log.info({ ip, drain_ms: this.drainMs }, 'pod left the mesh: draining captured connections');
    }
  }

  #finishDrain(ip: string): void {
    this.#drains.delete(ip);
    if (!((this.#current.get(ip) ?? 0) & CAPTURE_DRAIN)) return;
    this.table.delete(ip);
    this.#current.delete(ip);
    this.log.info({ ip }, 'pod drained: capture entry removed');
  }

  /** The table as this controller sees it, for /config_dump. */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.#current);
  }

  close(): void {
    for (const t of this.#drains.values()) t.cancel();
    this.#drains.clear();
  }
}
