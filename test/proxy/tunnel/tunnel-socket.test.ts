// proxy/tunnel/tunnel-socket.ts: the tunnel stream as the socket Node's HTTP servers use. Bytes pass
// exactly (strings of any encoding become Buffers, corked writes go one at a time), backpressure holds
// both ways, end and destroy propagate; and end to end, Node's HTTP/1 server answers correctly over a
// real HTTP/2 CONNECT stream (on Node 20, without the adapter, the response head arrives corrupted).
import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import {
  connect as connectHttp2,
  createServer as createHttp2Server,
  type ClientHttp2Stream,
  type ServerHttp2Stream,
} from 'node:http2';
import type { AddressInfo } from 'node:net';
import { Duplex, PassThrough } from 'node:stream';
import t, { type Test } from 'tap';
import { TunnelSocket } from '../../../proxy/tunnel/tunnel-socket.js';

const tick = (ms = 0): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves when `stream` ends or after `ms`, whichever is first; leaves no timer behind. */
async function endOrTimeout(stream: NodeJS.EventEmitter, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([once(stream, 'end'), new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * An inner stream whose writes we see and complete by hand: `written` records each chunk as given to
 * `_write` (its type included), `release()` completes the oldest pending write.
 */
class ManualInner extends Duplex {
  readonly written: unknown[] = [];
  readonly pending: (() => void)[] = [];
  autoComplete = true;
  finalCallback: (() => void) | undefined;

  constructor(writableHighWaterMark = 16 * 1024) {
    super({ writableHighWaterMark, allowHalfOpen: true });
  }

  override _read(): void {}

  override _write(chunk: unknown, _encoding: BufferEncoding, callback: () => void): void {
    this.written.push(chunk);
    if (this.autoComplete) callback();
    else this.pending.push(callback);
  }

  override _final(callback: () => void): void {
    this.finalCallback = callback;
  }

  release(): void {
    this.pending.shift()?.();
  }

  bytes(): Buffer {
    return Buffer.concat(this.written.map((c) => c as Buffer));
  }
}

t.test('strings of any encoding reach the inner stream as their exact bytes, as Buffers', async (t) => {
  const inner = new ManualInner();
  const socket = new TunnelSocket(inner);
  socket.write('caf\u00e9 ', 'latin1');
  socket.write('caf\u00e9 ', 'utf8');
  socket.write('00ff', 'hex');
  socket.write('AAE=', 'base64');
  socket.write(Buffer.from([0x0d, 0x0a]));
  socket.write(new Uint8Array([0x21]));
  await tick();
  t.same(
    [...inner.bytes()],
    [
      ...[0x63, 0x61, 0x66, 0xe9, 0x20],
      ...[0x63, 0x61, 0x66, 0xc3, 0xa9, 0x20],
      ...[0x00, 0xff],
      ...[0x00, 0x01],
      ...[0x0d, 0x0a],
      0x21,
    ],
  );
  t.ok(
    inner.written.every((c) => Buffer.isBuffer(c)),
    'every chunk handed to the inner stream is a Buffer',
  );
});

t.test('corked writes (writev) go to the inner stream in order, one Buffer each', async (t) => {
  const inner = new ManualInner();
  const socket = new TunnelSocket(inner);
  const done: string[] = [];
  socket.cork();
  socket.write('HTTP/1.1 200 OK\r\n', 'latin1', () => done.push('head'));
  socket.write('x-name: \u00ff\r\n\r\n', 'latin1', () => done.push('header'));
  socket.write(Buffer.from('body'), () => done.push('body'));
  await tick();
  t.same(inner.written, [], 'nothing while corked');
  process.nextTick(() => socket.uncork());
  await tick();
  t.same(
    inner.written.map((c) => (Buffer.isBuffer(c) ? c.toString('latin1') : `not a Buffer: ${typeof c}`)),
    ['HTTP/1.1 200 OK\r\n', 'x-name: \u00ff\r\n\r\n', 'body'],
  );
  t.equal(inner.bytes().subarray(25, 26)[0], 0xff, 'latin1 \\u00ff is the single byte 0xff');
  t.same(done, ['head', 'header', 'body'], 'every write callback ran, in order');
});

t.test('what the inner stream sends arrives unchanged', async (t) => {
  const inner = new PassThrough();
  const socket = new TunnelSocket(inner);
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const payload = Buffer.from([0x00, 0xe9, 0xff, 0x0d, 0x0a, 0x80]);
  inner.end(payload);
  await once(socket, 'end');
  t.same(Buffer.concat(chunks), payload);
});

t.test('write backpressure: the callback waits for the inner stream to drain', async (t) => {
  const inner = new ManualInner(4);
  inner.autoComplete = false;
  const socket = new TunnelSocket(inner);
  const done: string[] = [];
  socket.write('abcdef', () => done.push('first'));
  socket.write('ghijk', () => done.push('second'));
  await tick(10);
  t.same(
    inner.written.map(String),
    ['abcdef'],
    'one write at a time: the second waits while the inner stream is full',
  );
  t.same(done, [], 'no callback while the inner stream is over its high-water mark');
  t.ok(socket.writableNeedDrain || socket.writableLength > 0, 'the socket holds the second write');

  inner.release(); // inner drains
  await tick(10);
  t.same(done, ['first'], 'drain completes the first write');
  t.same(inner.written.map(String), ['abcdef', 'ghijk'], 'and lets the second through');
  t.same(done, ['first'], 'which waits for the next drain in turn');
  inner.release();
  await tick(10);
  t.same(done, ['first', 'second']);
});

t.test('read backpressure: a full socket pauses the inner stream; reading resumes it', async (t) => {
  const inner = new PassThrough();
  const socket = new TunnelSocket(inner);
  const hwm = socket.readableHighWaterMark;
  inner.write(Buffer.alloc(hwm + 1, 1));
  await tick();
  t.equal(inner.isPaused(), true, 'the inner stream is paused once push() returned false');
  inner.write(Buffer.alloc(1000, 2));
  await tick();
  t.equal(inner.readableLength, 1000, 'later bytes wait in the inner stream');
  t.equal(socket.readableLength, hwm + 1, 'the socket buffers no more than it was given');

  let received = 0;
  socket.on('data', (c: Buffer) => (received += c.length));
  await tick();
  t.equal(inner.isPaused(), false, 'reading from the socket resumes the inner stream');
  t.equal(received, hwm + 1 + 1000, 'everything arrives');
});

t.test('end: the socket finishes only once the inner stream has ended', async (t) => {
  const inner = new ManualInner();
  const socket = new TunnelSocket(inner);
  let finished = false;
  socket.on('finish', () => (finished = true));
  socket.end('bye');
  await tick();
  t.ok(inner.writableEnded, 'inner.end() was called');
  t.same(inner.written.map(String), ['bye'], 'after the last bytes');
  t.notOk(finished, 'the socket is not finished before the inner stream is');
  inner.finalCallback?.();
  await tick();
  t.ok(finished, 'then it is');
  t.notOk(socket.destroyed, 'and stays open for reading (half-close)');
});

t.test('the inner stream ending ends the socket for reading only', async (t) => {
  const inner = new ManualInner();
  const socket = new TunnelSocket(inner);
  socket.resume();
  inner.push('request');
  inner.push(null);
  await once(socket, 'end');
  t.notOk(socket.destroyed, 'the socket stays open');
  t.ok(socket.writable, 'and can still write (the response after the request)');
  socket.write('late answer');
  await tick();
  t.same(inner.written.map(String), ['late answer']);
});

t.test('destroy propagates both ways', async (t) => {
  await t.test('socket.destroy() destroys the inner stream', async (t) => {
    const inner = new PassThrough();
    const socket = new TunnelSocket(inner);
    socket.destroy();
    await tick();
    t.ok(inner.destroyed);
  });
  await t.test('socket.destroy(err) destroys the inner stream with err', async (t) => {
    const inner = new PassThrough();
    const socket = new TunnelSocket(inner);
    const err = new Error('boom');
    const innerErrors: unknown[] = [];
    const socketErrors: unknown[] = [];
    inner.on('error', (e) => innerErrors.push(e));
    socket.on('error', (e) => socketErrors.push(e));
    socket.destroy(err);
    await tick();
    t.ok(inner.destroyed);
    t.same(innerErrors, [err], 'the inner stream saw the error');
    t.same(socketErrors, [err], 'the socket reported it once');
  });
  await t.test('inner.destroy() destroys the socket', async (t) => {
    const inner = new PassThrough();
    const socket = new TunnelSocket(inner);
    const closed = once(socket, 'close');
    inner.destroy();
    await closed;
    t.ok(socket.destroyed);
  });
  await t.test('inner.destroy(err) destroys the socket with err', async (t) => {
    const inner = new PassThrough();
    const socket = new TunnelSocket(inner);
    const err = new Error('reset by peer');
    const errored = once(socket, 'error');
    inner.destroy(err);
    const [seen] = (await errored) as [unknown];
    t.equal(seen, err);
    t.ok(socket.destroyed);
  });
});

t.test('the net.Socket knobs Node calls are harmless no-ops', async (t) => {
  const socket = new TunnelSocket(new PassThrough());
  t.equal(socket.setNoDelay(), socket);
  t.equal(socket.setKeepAlive(), socket);
  t.equal(
    socket.setTimeout(10, () => t.fail('no timer')),
    socket,
  );
  t.equal(socket.ref(), socket);
  t.equal(socket.unref(), socket);
  await tick(30);
  socket.destroy();
});

/**
 * A node:http2 server on 127.0.0.1 that accepts every CONNECT with 200 and hands the stream, wrapped,
 * to an HTTP/1 server that is not listening; and a client that opens one CONNECT stream to it.
 */
async function connectTunnel(
  t: Test,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<ClientHttp2Stream> {
  const http1 = createHttpServer(handler);
  const h2 = createHttp2Server();
  h2.on('stream', (stream: ServerHttp2Stream) => {
    stream.respond({ ':status': 200 });
    http1.emit('connection', new TunnelSocket(stream));
  });
  h2.listen(0, '127.0.0.1');
  await once(h2, 'listening');
  const client = connectHttp2(`http://127.0.0.1:${(h2.address() as AddressInfo).port}`);
  t.teardown(() => {
    client.destroy();
    http1.closeAllConnections();
    h2.close();
  });
  const stream = client.request({ ':method': 'CONNECT', ':authority': '10.96.0.10:80' });
  const [headers] = (await once(stream, 'response')) as [Record<string, unknown>];
  t.equal(headers[':status'], 200, 'the CONNECT is accepted');
  return stream;
}

/** What the server sends back on the tunnel until it ends it (bounded). */
async function response(stream: ClientHttp2Stream): Promise<string> {
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  await endOrTimeout(stream, 3000);
  return Buffer.concat(chunks).toString('latin1');
}

t.test('end to end: Node HTTP/1 server over an HTTP/2 CONNECT stream answers a correct head', async (t) => {
  const stream = await connectTunnel(t, (req, res) => {
    res.setHeader('x-method', req.method ?? '');
    res.end(`hello ${req.url ?? ''}`);
  });
  stream.write('GET /path HTTP/1.1\r\nHost: echo\r\nConnection: close\r\n\r\n');
  const text = await response(stream);
  t.match(text, /^HTTP\/1\.1 200 OK\r\n/, 'the status line arrives intact');
  t.match(text, /\r\nx-method: GET\r\n/i);
  t.match(text, /\r\nContent-Length: 11\r\n/i);
  t.ok(text.endsWith('\r\n\r\nhello /path'), 'then the body, and the tunnel ends');
});

t.test('end to end: a request body in, a chunked response out, keep-alive then close', async (t) => {
  const stream = await connectTunnel(t, (req, res) => {
    const body: Buffer[] = [];
    req.on('data', (c: Buffer) => body.push(c));
    req.on('end', () => {
      res.writeHead(201, { 'content-type': 'text/plain' });
      res.write('got ');
      res.end(Buffer.concat(body));
    });
  });
  stream.write('POST /a HTTP/1.1\r\nHost: echo\r\nContent-Length: 4\r\n\r\nping');
  stream.write('POST /b HTTP/1.1\r\nHost: echo\r\nContent-Length: 4\r\nConnection: close\r\n\r\npong');
  const text = await response(stream);
  const heads = text.match(/HTTP\/1\.1 \d{3} [A-Za-z ]+\r\n/g) ?? [];
  t.same(heads, ['HTTP/1.1 201 Created\r\n', 'HTTP/1.1 201 Created\r\n'], 'two intact status lines');
  t.ok(text.startsWith('HTTP/1.1 201 Created\r\n'), 'the first at the very start');
  t.match(text, /\r\n\r\n4\r\ngot \r\n4\r\nping\r\n0\r\n\r\n/, 'the first body, chunked');
  t.match(text, /\r\n\r\n4\r\ngot \r\n4\r\npong\r\n0\r\n\r\n$/, 'the second body, then the end');
});
