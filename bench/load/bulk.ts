// Bulk TCP: upload as fast as back-pressure allows on N connections for a duration, against the bench's
// discard server, which answers a finished upload with the byte count it received, so the rate is
// what arrived, not what the client managed to buffer.
import type net from 'node:net';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { dial, type DialOptions } from './protocols/dial.js';

const CHUNK_BYTES = 256 * 1024;
const COUNT_TIMEOUT_MS = 10_000;

export interface BulkOptions extends DialOptions {
  readonly durationMs: number;
  readonly streams: number;
}

export interface BulkResult {
  readonly streams: number;
  readonly bytes: number;
  readonly seconds: number;
  readonly gbitPerSecond: number;
}

async function upload(socket: net.Socket, chunk: Buffer, stopAt: number): Promise<number> {
  const reply: Buffer[] = [];
  socket.on('data', (d: Buffer) => reply.push(d));
  while (performance.now() < stopAt) if (!socket.write(chunk)) await once(socket, 'drain');
  socket.end();
  // The count comes right after the server sees the end; a server that never sends it must not hang us.
  const closed = await Promise.race([
    once(socket, 'close').then(() => true),
    sleep(COUNT_TIMEOUT_MS, false, { ref: false }),
  ]);
  if (!closed) {
    socket.destroy();
    throw new Error(`bulk: no byte count from the server within ${COUNT_TIMEOUT_MS} ms of the end`);
  }
  const counted = Buffer.concat(reply);
  if (counted.length !== 8) throw new Error(`bulk: the server answered ${counted.length} bytes, not a count`);
  return Number(counted.readBigUInt64BE(0));
}

export async function runBulk(options: BulkOptions): Promise<BulkResult> {
  const chunk = Buffer.alloc(CHUNK_BYTES, 0x62);
  const sockets = await Promise.all(Array.from({ length: options.streams }, () => dial(options)));
  const t0 = performance.now();
  const counts = await Promise.all(sockets.map((s) => upload(s, chunk, t0 + options.durationMs)));
  const seconds = (performance.now() - t0) / 1000;
  const bytes = counts.reduce((a, b) => a + b, 0);
  return {
    streams: options.streams,
    bytes,
    seconds: Math.round(seconds * 100) / 100,
    gbitPerSecond: Math.round(((bytes * 8) / seconds / 1e9) * 100) / 100,
  };
}
