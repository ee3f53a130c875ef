// Reads `/flows` from one agent or waypoint: JSON lines, each checked (core/flows/event.ts), a line
// longer than MAX_LINE_BYTES refused rather than buffered without end. Many targets are read at once and
// their lines merged as they arrive; one target that fails is reported and the others go on.
import http from 'node:http';
import type { FlowFilter } from '../core/flows/filter.js';
import { flowFilterQuery } from '../core/flows/filter.js';
import { parseFlowLine, type FlowStreamLine } from '../core/flows/event.js';
import type { FlowTarget } from './targets.js';

/** An event line is well under 2 KiB; anything near this is not one. */
const MAX_LINE_BYTES = 64 * 1024;
const CONNECT_TIMEOUT_MS = 3_000;

export interface FlowRequest {
  readonly filter: FlowFilter;
  readonly follow: boolean;
  /** Recent events to start with, per target. */
  readonly last: number;
}

export interface FlowStreamHandlers {
  line(line: FlowStreamLine, target: FlowTarget): void;
  /** A target could not be read (or stopped with an error); the others carry on. */
  failed(target: FlowTarget, error: Error): void;
}

export function flowsPath(request: FlowRequest): string {
  const query = flowFilterQuery(request.filter);
  if (request.follow) query.set('follow', '1');
  query.set('last', String(request.last));
  return `/flows?${query.toString()}`;
}

/** Reads one target until its response ends, `signal` aborts, or it fails; never rejects. */
export function readFlows(
  target: FlowTarget,
  request: FlowRequest,
  handlers: FlowStreamHandlers,
  signal: AbortSignal,
): Promise<void> {
  return new Promise((resolve) => {
    let settled = false;
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      if (!signal.aborted) handlers.failed(target, err);
      resolve();
    };
    const req = http.get(
      { ...whereOf(target), path: flowsPath(request), signal, timeout: CONNECT_TIMEOUT_MS },
      (res) => {
        // Connected: a quiet follower may wait indefinitely.
        req.setTimeout(0);
        if (res.statusCode !== 200) {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body = (body + c).slice(0, 4096)));
          res.on('end', () => fail(new Error(`HTTP ${String(res.statusCode)}: ${errorOf(body)}`)));
          return;
        }
        let pending = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          pending += chunk;
          let nl: number;
          while ((nl = pending.indexOf('\n')) >= 0) {
            const text = pending.slice(0, nl);
            pending = pending.slice(nl + 1);
            if (text === '') continue;
            let line: FlowStreamLine;
            try {
              line = parseFlowLine(text);
            } catch (err) {
              res.destroy();
              return fail(new Error(`a bad flow line: ${(err as Error).message}`));
            }
            handlers.line(line, target);
          }
          if (pending.length > MAX_LINE_BYTES) {
            res.destroy();
            fail(new Error(`a line longer than ${MAX_LINE_BYTES} bytes`));
          }
        });
        res.on('end', () => {
          if (!settled) {
            settled = true;
            resolve();
          }
        });
        res.on('error', (err) => fail(err));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${CONNECT_TIMEOUT_MS} ms`)));
    req.on('error', (err) => fail(err));
  });
}

/** How the HTTP client reaches `target`: a socket it opens, or (a pod) the port-forward's stream. */
function whereOf(target: FlowTarget): http.RequestOptions {
  switch (target.kind) {
    case 'unix':
      return { socketPath: target.path };
    case 'tcp':
      return { host: target.host, port: target.port };
    case 'pod':
      // http applies `timeout` itself only to the sockets it opens.
      return {
        createConnection: (options) =>
          target.forwarder.open(target.namespace, target.pod, target.port).setTimeout(options.timeout ?? 0),
      };
  }
}

function errorOf(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: unknown };
    if (typeof parsed.error === 'string') return parsed.error;
  } catch {
    // not JSON: show it as it came
  }
  return body.trim();
}
