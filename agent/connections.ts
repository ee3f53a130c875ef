// Live inbound connections, so a policy change can close exactly those it now denies (ztunnel's
// connection manager). A connection is registered before it is answered; a change applied between the
// check and the registration is therefore re-checked too.
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../core/log.js';
import type { ConfigStore } from '../core/store.js';
import type { Workload } from '../core/model/workload.js';
import type { InboundAuthorizer, L4Connection } from './authorizer.js';
import { abort, type PumpHandle } from '../core/copy.js';
import { exchangeControl, type ExchangeControl } from './drain.js';
import type { ConnectionResult } from './connection-result.js';

export class RegisteredConnection {
  closed = false;
  upstream: Duplex | undefined = undefined;
  /** The pump between downstream and upstream, once attached. */
  pump: PumpHandle | undefined = undefined;

  constructor(
    readonly registry: ConnectionRegistry,
    readonly workloadUid: string,
    readonly conn: L4Connection,
    readonly downstream: Duplex,
    readonly result: ConnectionResult,
  ) {}

  attach(upstream: Duplex, pump?: PumpHandle): void {
    this.upstream = upstream;
    this.pump = pump;
  }

  /** The connection ended by itself. */
  release(): void {
    this.registry.remove(this);
  }

  /** Policy now denies it: reset both sides; its access-log line says why. */
  close(reason: string, policy: string | undefined): void {
    if (this.closed) return;
    this.closed = true;
    this.result.decided({ verdict: 'denied', policy, reason });
    this.result.failed('DENY', `closed by a policy change: ${reason}`);
    abort(this.downstream);
    if (this.upstream) abort(this.upstream);
    this.registry.remove(this);
  }
}

export class ConnectionRegistry {
  readonly #live = new Set<RegisteredConnection>();

  constructor(
    readonly store: ConfigStore,
    readonly authorizer: InboundAuthorizer,
    readonly log: Logger,
  ) {}

  get size(): number {
    return this.#live.size;
  }

  register(
    workload: Workload,
    conn: L4Connection,
    downstream: Duplex,
    result: ConnectionResult,
  ): RegisteredConnection {
    const entry = new RegisteredConnection(this, workload.uid, conn, downstream, result);
    this.#live.add(entry);
    return entry;
  }

  /** The live connections, for /config_dump. */
  describe(): { src: string; dst: string; upstream: boolean; downstreamDestroyed: boolean }[] {
    return [...this.#live].map((e) => ({
      src: e.conn.srcIp,
      dst: `${e.conn.dstIp}:${e.conn.dstPort}`,
      upstream: e.upstream !== undefined,
      downstreamDestroyed: e.downstream.destroyed,
    }));
  }

  /** Live connections still dialling their workload (no socket to it yet). */
  get dialling(): number {
    let n = 0;
    for (const entry of this.#live) if (entry.upstream === undefined) n++;
    return n;
  }

  /**
   * The sockets to local workloads of the live connections already connected (what a drain ends), with
   * their pumps seen from the asking side (the stream or socket from the client).
   */
  *workloadSockets(): Iterable<{ socket: Socket; exchange: ExchangeControl | undefined }> {
    for (const entry of this.#live)
      if (entry.upstream instanceof Socket)
        yield {
          socket: entry.upstream,
          exchange: entry.pump && exchangeControl(entry.pump, entry.downstream),
        };
  }

  remove(entry: RegisteredConnection): void {
    this.#live.delete(entry);
  }

  /** Re-evaluates every live connection against the current config; closes the denied ones. */
  recheck(): number {
    let closed = 0;
    for (const entry of [...this.#live]) {
      const workload = this.store.workloadByUid(entry.workloadUid);
      const verdict = workload ? this.authorizer.authorize(workload, entry.conn) : undefined;
      if (verdict?.allowed) continue;
      this.log.info(
        {
          'src.addr': entry.conn.srcIp,
          'dst.addr': `${entry.conn.dstIp}:${entry.conn.dstPort}`,
          policy: verdict?.policy,
          reason: verdict ? verdict.message : 'destination workload is gone',
        },
        'connection closed: no longer allowed',
      );
      entry.close(verdict ? verdict.message : 'destination workload is gone', verdict?.policy);
      closed++;
    }
    return closed;
  }
}
