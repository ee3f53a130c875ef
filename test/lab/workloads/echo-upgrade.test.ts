// The echo's HTTP/1.1 upgrade handling over raw sockets: the RFC 6455 handshake (accept key checked
// against the RFC's own example and against Python's hashlib), the byte echo after the 101, the idle
// bound, and steering that refuses the switch.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { WebSocket } from 'undici';
import { run, SYSTEM_PYTHON } from '../../helpers/exec.js';
import { startEcho } from './echo-peers.js';

/** RFC 6455 section 1.3's worked example. */
const RFC_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const RFC_ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';

async function open(t: { teardown(fn: () => unknown): void }, port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  t.teardown(() => socket.destroy());
  await once(socket, 'connect');
  return socket;
}

function handshake(key: string, extra: Record<string, string> = {}): string {
  const lines = [
    'GET /chat HTTP/1.1',
    'Host: echo',
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${key}`,
    'Sec-WebSocket-Version: 13',
    ...Object.entries(extra).map(([k, v]) => `${k}: ${v}`),
  ];
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** Everything the socket sends until `done` says enough (or it ends): latin1, byte for byte. */
function readUntil(socket: Socket, done: (got: string) => boolean): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const onData = (c: Buffer): void => {
      got += c.toString('latin1');
      if (done(got)) finish();
    };
    const finish = (): void => {
      socket.off('data', onData);
      socket.off('close', finish);
      socket.pause();
      resolve(got);
    };
    socket.on('data', onData);
    socket.once('close', finish);
    socket.resume();
  });
}

function splitHead(got: string): { head: string; rest: string } {
  const end = got.indexOf('\r\n\r\n');
  return end === -1 ? { head: got, rest: '' } : { head: got.slice(0, end), rest: got.slice(end + 4) };
}

t.test('websocket: 101 with the RFC 6455 example accept key, then every byte comes back', async (t) => {
  const { port, logs } = await startEcho(t);
  const socket = await open(t, port);
  // Bytes right behind the handshake arrive with it; they must be echoed too, first.
  socket.write(`${handshake(RFC_KEY, { 'x-request-id': 'ws-1' })}early`);
  const first = splitHead(await readUntil(socket, (g) => g.includes('\r\n\r\n') && g.endsWith('early')));
  t.match(first.head, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  t.match(first.head, /\r\nUpgrade: websocket(\r\n|$)/i);
  t.match(first.head, /\r\nConnection: Upgrade(\r\n|$)/i);
  t.match(
    first.head,
    new RegExp(`\\r\\nSec-WebSocket-Accept: ${RFC_ACCEPT.replace(/\+/g, '\\+')}(\\r\\n|$)`),
  );
  t.equal(first.rest, 'early');
  const binary = Buffer.from([0x81, 0x85, 0x00, 0xff, 0x0d, 0x0a, 0x80]);
  socket.write(binary);
  const echoed = await readUntil(socket, (g) => g.length >= binary.length);
  t.ok(Buffer.from(echoed, 'latin1').equals(binary), 'binary bytes (a frame, even) come back unchanged');
  socket.end();
  await once(socket, 'close');
  t.pass('the client ending ends the echo');
  t.match(logs, [{ path: '/chat', status: 101, requestId: 'ws-1', headers: { host: 'echo' } }]);
});

t.test('the accept key matches an independent computation (Python hashlib) for a fresh key', async (t) => {
  const key = randomBytes(16).toString('base64');
  const py = await run(SYSTEM_PYTHON, [
    '-c',
    'import base64, hashlib, sys; print(base64.b64encode(hashlib.sha1((sys.argv[1] + ' +
      '"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode())',
    key,
  ]);
  t.equal(py.code, 0, py.stderr);
  const { port } = await startEcho(t);
  const socket = await open(t, port);
  socket.write(handshake(key));
  const { head } = splitHead(await readUntil(socket, (g) => g.includes('\r\n\r\n')));
  t.match(head, /^HTTP\/1\.1 101 /);
  t.equal(/\r\nSec-WebSocket-Accept: (\S+)/i.exec(head)?.[1], py.stdout.trim());
});

t.test('a real WebSocket client (undici) accepts the handshake', async (t) => {
  const { port, logs } = await startEcho(t);
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?room=1`);
  t.teardown(() => ws.close());
  const opened = await new Promise<boolean>((resolve) => {
    ws.addEventListener('open', () => resolve(true));
    // undici fails the connection if Sec-WebSocket-Accept is wrong.
    ws.addEventListener('error', () => resolve(false));
  });
  t.ok(opened, 'open');
  t.match(logs, [{ path: '/ws', query: { room: '1' }, status: 101 }]);
});

t.test('steering can refuse the switch: a non-200 answer, a bad key, a reset', async (t) => {
  const { port } = await startEcho(t);
  const refused = await open(t, port);
  refused.write(handshake(RFC_KEY, { 'x-echo-status': '503', 'x-echo-header': 'x-why=test' }));
  const r = splitHead(await readUntil(refused, () => false));
  t.match(r.head, /^HTTP\/1\.1 503 /);
  t.match(r.head, /\r\nx-why: test(\r\n|$)/);
  t.match(r.head, /\r\nConnection: close(\r\n|$)/i);
  t.match(JSON.parse(r.rest), { status: 503, path: '/chat', headers: { upgrade: 'websocket' } });
  const badKey = await open(t, port);
  badKey.write(handshake('too-short'));
  const b = splitHead(await readUntil(badKey, () => false));
  t.match(b.head, /^HTTP\/1\.1 400 /);
  t.match(JSON.parse(b.rest), { error: 'sec-websocket-key must be 16 bytes in base64' });
  const reset = await open(t, port);
  const error = once(reset, 'error');
  reset.write(handshake(RFC_KEY, { 'x-request-id': 'w', 'x-echo-reset-first': '1' }));
  t.match((await error)[0], { code: 'ECONNRESET' });
});

t.test('an idle upgraded connection is closed', async (t) => {
  const { port } = await startEcho(t, { upgradedIdleMs: 200 });
  const socket = await open(t, port);
  socket.write(handshake(RFC_KEY));
  await readUntil(socket, (g) => g.includes('\r\n\r\n'));
  const started = performance.now();
  socket.write('still here');
  await readUntil(socket, (g) => g === 'still here');
  socket.resume();
  await once(socket, 'close');
  const idle = performance.now() - started;
  t.ok(idle >= 180 && idle < 5_000, `closed after ${Math.round(idle)} ms idle`);
});
