// `GET /flows` on the admin port: the ring's events as JSON lines (application/x-ndjson).
//
//   /flows?last=20                 the 20 newest events that pass the filter, then the response ends
//   /flows?follow=1&last=0         new events as they happen, until the client goes away
//   …&verdict=DENIED&namespace=shop&pod=shop/web-0&identity=…&protocol=http&port=8080&type=request
//
// Backpressure is the socket's: a client that reads slowly is written to only when its socket drains
// (ring.ts), so it costs its ~16 KiB of socket buffer and its place in the ring, nothing more.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { compileFlowFilter, parseFlowFilter } from './filter.js';
import { FlowReadersExhausted, type FlowRing } from './ring.js';

/** Without `last`, a non-following request gets the whole ring; a following one only new events. */
function lastOf(query: URLSearchParams, follow: boolean, capacity: number): number {
  const raw = query.get('last');
  if (raw === null) return follow ? 0 : capacity;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`last: ${JSON.stringify(raw)} is not a count`);
  return n;
}

function isTrue(value: string | null): boolean {
  return value === '' || value === '1' || value === 'true';
}

function refuse(res: ServerResponse, status: number, error: string): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error }) + '\n');
}

export function serveFlows(
  ring: FlowRing,
  req: IncomingMessage,
  res: ServerResponse,
  query: URLSearchParams,
): void {
  let filter;
  let follow;
  let last;
  try {
    follow = isTrue(query.get('follow'));
    last = lastOf(query, follow, ring.capacity);
    filter = compileFlowFilter(parseFlowFilter(query.entries()));
  } catch (err) {
    return refuse(res, 400, (err as Error).message);
  }
  let reader;
  try {
    reader = ring.read({
      last,
      follow,
      filter,
      sink: res,
      onEnd: () => res.end(),
    });
  } catch (err) {
    if (err instanceof FlowReadersExhausted) return refuse(res, 503, err.message);
    throw err;
  }
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  // Headers now, so a follower with a quiet filter knows it is connected.
  res.flushHeaders();
  res.on('drain', () => reader.resume());
  res.on('close', () => reader.close());
  req.on('error', () => reader.close());
}
