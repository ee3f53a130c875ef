// Idle connections held open, for memory per connection: opens `connections` TCP connections to the
// target (a bounded number at a time, as a real client population would arrive), sends nothing, and
// keeps them until told to let go. Each connection that does not open is counted, not retried.
import type net from 'node:net';
import { dial, type DialOptions } from './protocols/dial.js';

/** Connections being opened at once. */
const OPEN_CONCURRENCY = 200;

export interface HoldOptions extends DialOptions {
  readonly connections: number;
}

export interface HeldConnections {
  readonly opened: number;
  readonly failed: number;
  /** How many of the opened ones are still open (a proxy may drop idle ones). */
  open(): number;
  close(): void;
}

export async function holdConnections(options: HoldOptions): Promise<HeldConnections> {
  const sockets: net.Socket[] = [];
  let failed = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < options.connections) {
      next++;
      try {
        const s = await dial(options);
        s.on('error', () => undefined);
        sockets.push(s);
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(OPEN_CONCURRENCY, options.connections) }, worker));
  return {
    opened: sockets.length,
    failed,
    open: () => sockets.filter((s) => !s.destroyed && s.readyState === 'open').length,
    close: () => {
      for (const s of sockets) s.destroy();
    },
  };
}
