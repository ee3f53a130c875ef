// How many connections the agent carries at once: a bound for the agent and a smaller one per workload
// and direction, so one pod's flood is refused at its own bound while every other pod is still served
// (ztunnel has neither; a flood there takes the agent's file descriptors and memory from everyone).
//
// The agent bound also follows the process's file-descriptor limit (two per proxied connection, some
// kept for listeners, the CA, config and HBONE connections): a connection refused here is refused
// cleanly, before accept-time EMFILE would refuse connections at random.
//
// Invariants: every `acquire` that returned undefined is matched by exactly one `release` of the same
// key (the caller ties it to the connection's close); counts never go below zero.
import { readFileSync } from 'node:fs';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../core/log.js';

export interface ConnectionLimits {
  /** Connections the agent carries at once (inbound and outbound). */
  readonly perAgent: number;
  /** Connections one workload (pod IP) has open at once in one direction. */
  readonly perWorkload: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = { perAgent: 100_000, perWorkload: 20_000 };

/** Descriptors kept aside from the connection budget (listeners, CA, config, HBONE, logs). */
const RESERVED_FDS = 256;
/** At most one warning per reason this often. */
const WARN_INTERVAL_MS = 10_000;

export type Direction = 'inbound' | 'outbound';
export type RefusalReason = 'agent_limit' | 'workload_limit';

/** The soft RLIMIT_NOFILE of this process, or undefined when it cannot be read or is unlimited. */
export function openFileLimit(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line?.split(/\s{2,}/)[1];
    return soft === undefined || soft === 'unlimited' ? undefined : Number(soft);
  } catch {
    return undefined;
  }
}

export class ConnectionBudget {
  readonly limits: ConnectionLimits;
  readonly #byKey = new Map<string, number>();
  #total = 0;
  readonly #refused: Counter<'reason' | 'direction'>;
  readonly #lastWarn = new Map<RefusalReason, number>();

  constructor(
    limits: ConnectionLimits,
    registry: Registry,
    readonly log: Logger,
    fdLimit: number | undefined = openFileLimit(),
  ) {
    const byFds = fdLimit === undefined ? Infinity : Math.max(1, Math.floor((fdLimit - RESERVED_FDS) / 2));
    this.limits = { perAgent: Math.min(limits.perAgent, byFds), perWorkload: limits.perWorkload };
    this.#refused = new Counter({
      name: 'weft_connections_refused_total',
      help: 'Connections the agent refused because a connection bound was reached',
      labelNames: ['reason', 'direction'],
      registers: [registry],
    });
    const open = (): number => this.#total;
    const limit = this.limits.perAgent;
    new Gauge({
      name: 'weft_connections_open',
      help: 'Connections the agent carries now, against weft_connections_limit',
      registers: [registry],
      collect() {
        this.set(open());
      },
    });
    new Gauge({
      name: 'weft_connections_limit',
      help: 'The agent connection bound (the configured one, or what the file-descriptor limit allows)',
      registers: [registry],
      collect() {
        this.set(limit);
      },
    });
  }

  get open(): number {
    return this.#total;
  }

  /** Takes a place for a connection of workload `ip` in `direction`; the reason when there is none. */
  acquire(direction: Direction, ip: string): RefusalReason | undefined {
    const key = `${direction}|${ip}`;
    const mine = this.#byKey.get(key) ?? 0;
    const reason: RefusalReason | undefined =
      mine >= this.limits.perWorkload
        ? 'workload_limit'
        : this.#total >= this.limits.perAgent
          ? 'agent_limit'
          : undefined;
    if (reason !== undefined) {
      this.#refused.inc({ reason, direction });
      this.#warn(reason, direction, ip);
      return reason;
    }
    this.#byKey.set(key, mine + 1);
    this.#total++;
    return undefined;
  }

  release(direction: Direction, ip: string): void {
    const key = `${direction}|${ip}`;
    const mine = this.#byKey.get(key) ?? 0;
    if (mine <= 0) return;
    if (mine === 1) this.#byKey.delete(key);
    else this.#byKey.set(key, mine - 1);
    this.#total--;
  }

  #warn(reason: RefusalReason, direction: Direction, ip: string): void {
    const now = Date.now();
    if (now - (this.#lastWarn.get(reason) ?? 0) < WARN_INTERVAL_MS) return;
    this.#lastWarn.set(reason, now);
    this.log.warn(
      {
        reason,
        direction,
        workload: ip,
        open: this.#total,
        limit: reason === 'agent_limit' ? this.limits.perAgent : this.limits.perWorkload,
      },
      'connection bound reached: new connections refused (at most one such line per 10 s)',
    );
  }
}

/**
 * Logs a listener's accept error instead of letting it end the process: with descriptors exhausted
 * (EMFILE/ENFILE) libuv refuses the waiting connection itself and reports the error here; the
 * connections already open carry on.
 */
export function survivingAcceptErrors(
  server: { on(event: 'error', listener: (err: Error) => void): unknown },
  what: string,
  log: Logger,
): void {
  let last = 0;
  server.on('error', (err: Error & { code?: string }) => {
    const now = Date.now();
    if (now - last < WARN_INTERVAL_MS) return;
    last = now;
    log.warn(
      { listener: what, error: err.message, code: err.code },
      'accept failed; the connection was refused and the listener goes on (at most one line per 10 s)',
    );
  });
}
