// The last hop of an admitted inbound connection: dial the workload, then pipe. Shared by the HBONE
// server (downstream = the CONNECT stream) and plaintext inbound (downstream = the captured socket).
import type { Duplex } from 'node:stream';
import { errorMessage } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { CONNECT_TIMEOUT_MS } from '../core/hbone/settings.js';
import type { ConnectionResult } from './connection-result.js';
import type { RegisteredConnection } from './connections.js';
import { abort, pump } from '../core/copy.js';
import type { UpstreamDialer } from './socket.js';

export interface DeliveryTarget {
  readonly ip: string;
  readonly port: number;
  /** The original client's address, for a transparent source when capture allows it. */
  readonly sourceIp: string;
}

export interface DeliveryHooks {
  /** The upstream is connected: answer the client (200) if it can still take it; false to abandon. */
  connected(): boolean;
  /** The upstream could not be reached: answer the client (503, reset). */
  unreachable(): void;
  /** Runs once the dial settled either way. */
  settled?(): void;
}

export function deliver(
  dial: UpstreamDialer,
  target: DeliveryTarget,
  downstream: Duplex,
  entry: RegisteredConnection,
  result: ConnectionResult,
  hooks: DeliveryHooks,
  log: Logger,
): void {
  dial(target.ip, target.port, target.sourceIp, CONNECT_TIMEOUT_MS)
    .then(
      (upstream) => {
        hooks.settled?.();
        if (downstream.destroyed || entry.closed || !hooks.connected()) {
          upstream.destroy();
          entry.release();
          result.close(0, 0);
          return;
        }
        result.opened();
        const handle = pump(downstream, upstream, (err) => {
          entry.release();
          if (err) result.failed('-', errorMessage(err));
          // The workload received what we wrote to it (request) and answered what we read (response).
          result.close(upstream.bytesWritten, upstream.bytesRead);
        });
        entry.attach(upstream, handle);
      },
      (err: unknown) => {
        hooks.settled?.();
        entry.release();
        result.failed('CONNECT', errorMessage(err));
        result.close(0, 0);
        hooks.unreachable();
      },
    )
    .catch((err: unknown) => {
      // A bug in a hook must cost one connection, never the agent.
      log.error(
        { error: errorMessage(err), 'dst.addr': `${target.ip}:${target.port}` },
        'delivery failed unexpectedly',
      );
      abort(downstream);
    });
}
