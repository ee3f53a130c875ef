// Answering one request: first decide what the steering headers ask for (a plan), then carry it out as
// JSON, a gRPC-shaped echo or a reset. The WebSocket path reuses the plan to decide whether to switch.
import type { OutgoingHttpHeaders } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Exchange } from './exchange.js';
import { buildReply, readBody, requestLogLine, type EchoIdentity, type LogOutcome } from './reply.js';
import {
  AttemptCounter,
  BadRequest,
  headerValues,
  readSteering,
  type Field,
  type Steering,
} from './steering.js';

/** gRPC status UNAVAILABLE: what a failing attempt answers over gRPC, so gRPC retry policies see it. */
const GRPC_UNAVAILABLE = 14;

export interface EchoContext {
  readonly identity: EchoIdentity;
  readonly attempts: AttemptCounter;
  /** Takes one log line without its newline. */
  readonly log: (line: string) => void;
  /** An upgraded connection idle (no bytes either way) this long is closed. */
  readonly upgradedIdleMs: number;
}

export type Plan =
  | { readonly kind: 'bad'; readonly error: string }
  | { readonly kind: 'reset'; readonly steering: Steering; readonly attempt: number }
  | {
      readonly kind: 'answer';
      readonly steering: Steering;
      readonly attempt: number | undefined;
      /** Within x-echo-fail-first: answer 503 (gRPC: grpc-status 14) whatever else was asked. */
      readonly failing: boolean;
    };

/** Counts the attempt, so call it once per request. */
export function plan(ctx: EchoContext, ex: Exchange): Plan {
  let steering: Steering;
  try {
    steering = readSteering(headerValues(ex.rawHeaders), ex.h2);
  } catch (err) {
    if (!(err instanceof BadRequest)) throw err;
    return { kind: 'bad', error: err.message };
  }
  const attempt = steering.requestId === undefined ? undefined : ctx.attempts.next(steering.requestId);
  // Attempt n is reset if n <= reset-first, else fails if n <= fail-first, else answered as asked.
  if (attempt !== undefined && attempt <= steering.resetFirst) return { kind: 'reset', steering, attempt };
  return {
    kind: 'answer',
    steering,
    attempt,
    failing: attempt !== undefined && attempt <= steering.failFirst,
  };
}

export function log(ctx: EchoContext, ex: Exchange, outcome: LogOutcome): void {
  ctx.log(requestLogLine(ctx.identity, ex, outcome));
}

export function isGrpc(ex: Exchange): boolean {
  const type = ex.headers['content-type'];
  return ex.h2 && typeof type === 'string' && /^application\/grpc(?:[+;]|$)/i.test(type);
}

/** Answers `ex` as planned (planning it first if not given); never rejects. */
export async function answer(ctx: EchoContext, ex: Exchange, planned?: Plan): Promise<void> {
  try {
    const p = planned ?? plan(ctx, ex);
    if (p.kind === 'bad') {
      ex.discardBody();
      sendJson(ex, 400, { ...ctx.identity, error: p.error });
      log(ctx, ex, { attempt: undefined, status: 400 });
    } else if (p.kind === 'reset') {
      log(ctx, ex, { attempt: p.attempt, status: 0, reset: true });
      ex.reset();
    } else if (isGrpc(ex)) {
      await answerGrpc(ctx, ex, p.steering, p.attempt, p.failing);
    } else {
      await answerJson(ctx, ex, p.steering, p.attempt, p.failing);
    }
  } catch (err) {
    if (ex.res.headersSent) {
      ex.res.destroy();
      return;
    }
    sendJson(ex, 500, { ...ctx.identity, error: String(err) });
    log(ctx, ex, { attempt: undefined, status: 500 });
  }
}

async function answerJson(
  ctx: EchoContext,
  ex: Exchange,
  steering: Steering,
  attempt: number | undefined,
  failing: boolean,
): Promise<void> {
  const status = failing ? 503 : steering.status;
  const body = await readBody(ex.body);
  if (steering.delayMs > 0) await sleep(steering.delayMs);
  const reply = buildReply(ctx.identity, ex, body, { requestId: steering.requestId, attempt, status });
  sendJson(ex, status, reply, steering.headers, steering.trailers);
  log(ctx, ex, { attempt, status });
}

/**
 * A gRPC call answered without protobuf: the request body (already length-prefixed messages) streams
 * back as the response body, then grpc-status/grpc-message trailers. A non-zero status sends no
 * messages, as real servers do. Streaming, so a bidirectional call echoes each message as it comes.
 */
async function answerGrpc(
  ctx: EchoContext,
  ex: Exchange,
  steering: Steering,
  attempt: number | undefined,
  failing: boolean,
): Promise<void> {
  const grpcStatus = failing ? GRPC_UNAVAILABLE : steering.grpcStatus;
  const grpcMessage = failing
    ? `echo: attempt ${attempt ?? 0} fails (x-echo-fail-first: ${steering.failFirst})`
    : steering.grpcMessage;
  if (grpcStatus !== 0) ex.discardBody();
  if (steering.delayMs > 0) await sleep(steering.delayMs);
  const trailers = trailerObject(steering.trailers);
  trailers['grpc-status'] = String(grpcStatus);
  if (grpcMessage !== undefined) trailers['grpc-message'] = grpcMessage;
  setHeaders(ex, steering.headers);
  ex.res.setHeader('content-type', 'application/grpc');
  ex.res.addTrailers(trailers);
  ex.res.writeHead(steering.status);
  log(ctx, ex, { attempt, status: steering.status, grpcStatus });
  if (grpcStatus === 0) await pipeline(ex.body, ex.res);
  else ex.res.end();
}

function trailerObject(trailers: readonly Field[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of trailers) {
    const had = out[name];
    out[name] = had === undefined ? value : [...(Array.isArray(had) ? had : [had]), value];
  }
  return out;
}

function setHeaders(ex: Exchange, headers: readonly Field[]): void {
  for (const [name, value] of Object.entries(trailerObject(headers))) ex.res.setHeader(name, value);
}

/** Statuses (and HEAD) whose answers have no content, so neither a body nor trailers can follow. */
function bodyless(ex: Exchange, status: number): boolean {
  return ex.method === 'HEAD' || status === 204 || status === 205 || status === 304;
}

function sendJson(
  ex: Exchange,
  status: number,
  body: unknown,
  headers: readonly Field[] = [],
  trailers: readonly Field[] = [],
): void {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  const { res } = ex;
  setHeaders(ex, headers);
  res.setHeader('content-type', 'application/json');
  const noContent = bodyless(ex, status);
  // HTTP/1.1 carries trailers only in a chunked body, so that answer goes without Content-Length
  // (HTTP/1.0 has no chunked encoding and gets no trailers).
  const withTrailers = trailers.length > 0 && !noContent && (ex.h2 || ex.httpVersion === '1.1');
  if (withTrailers) {
    res.setHeader('trailer', [...new Set(trailers.map(([name]) => name))].join(', '));
    res.addTrailers(trailerObject(trailers) as OutgoingHttpHeaders);
  }
  if ((ex.h2 || !withTrailers) && (ex.method === 'HEAD' || !noContent))
    res.setHeader('content-length', Buffer.byteLength(text));
  res.writeHead(status);
  res.end(noContent ? undefined : text);
}
