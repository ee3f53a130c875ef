// HTTP/1.1 upgrades. `Upgrade: websocket` gets a real RFC 6455 handshake (101 with the right
// Sec-WebSocket-Accept), after which the connection is a plain byte echo: every byte the client sends,
// frames included, comes back unchanged. That is not a WebSocket implementation (a real peer would
// mask/unmask frames); it is what a test needs to see that a proxy switched protocols and then carried
// bytes both ways. Any other upgrade token is declined: the request is answered as an ordinary one.
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { answer, log, plan, type EchoContext } from './answer.js';
import { declinedUpgradeExchange } from './exchange.js';

/** RFC 6455 section 1.3: appended to the client's key before hashing. */
const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** An upgraded connection with no bytes either way for this long is closed, so none lingers forever. */
export const UPGRADED_IDLE_MS = 60_000;

export function webSocketAccept(key: string): string {
  return createHash('sha1').update(`${key}${WEBSOCKET_GUID}`).digest('base64');
}

function wantsWebSocket(req: IncomingMessage): boolean {
  const tokens = (req.headers.upgrade ?? '').split(',').map((t) => t.trim().toLowerCase());
  return req.method === 'GET' && tokens.includes('websocket');
}

/** A valid key is 16 random bytes in base64 (RFC 6455 section 4.1). */
function validKey(key: string | undefined): key is string {
  return key !== undefined && /^[A-Za-z0-9+/]{22}==$/.test(key);
}

/** Handles Node's 'upgrade' event. The steering headers apply as for any request: the switch happens
 *  only where the answer would have been a 200; otherwise that answer is sent instead. */
export async function answerUpgrade(
  ctx: EchoContext,
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
): Promise<void> {
  const ex = declinedUpgradeExchange(req, socket, head);
  const key = req.headers['sec-websocket-key'];
  if (!wantsWebSocket(req)) return answer(ctx, ex);
  if (!validKey(key))
    return answer(ctx, ex, { kind: 'bad', error: `sec-websocket-key must be 16 bytes in base64` });
  const p = plan(ctx, ex);
  if (p.kind !== 'answer' || p.failing || p.steering.status !== 200) return answer(ctx, ex, p);
  if (p.steering.delayMs > 0) await sleep(p.steering.delayMs);
  // The socket leaves HTTP for good: unhook the response that was ready for an ordinary answer.
  ex.res.detachSocket(socket);
  const lines = [
    'HTTP/1.1 101 Switching Protocols',
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Accept: ${webSocketAccept(key)}`,
    // Header values came in as request header values, so they hold no CR or LF.
    ...p.steering.headers.map(([name, value]) => `${name}: ${value}`),
  ];
  socket.write(`${lines.join('\r\n')}\r\n\r\n`);
  log(ctx, ex, { attempt: p.attempt, status: 101 });
  byteEcho(socket, head, ctx.upgradedIdleMs);
}

function byteEcho(socket: Socket, head: Buffer, idleMs: number): void {
  socket.setTimeout(idleMs, () => socket.destroy());
  if (head.length > 0) socket.unshift(head);
  // pipe() ends the writable side when the client ends, so a half-close is passed on.
  socket.pipe(socket);
}
