// proxy/tunnel/protocol.ts: what a port declares (appProtocol, then the port name's prefix), how the
// client's first bytes are classified, and detection on real streams (loopback TCP and a PassThrough):
// the verdict, the bytes put back for the next reader, the timeout and an early end.
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { Duplex, PassThrough } from 'node:stream';
import t, { type Test } from 'tap';
import type { ServicePort } from '../../../core/model/service.js';
import {
  classifyPrefix,
  declaredProtocol,
  H2_PREFACE,
  sniffProtocol,
  SNIFF_BYTES,
  type DeclaredProtocol,
  type TunnelProtocol,
} from '../../../proxy/tunnel/protocol.js';

function port(name: string | undefined, appProtocol?: string): ServicePort {
  return { name, port: 80, targetPort: 8080, protocol: 'TCP', appProtocol };
}

const HTTP1: DeclaredProtocol = { kind: 'http', backend: 'http1' };
const H2: DeclaredProtocol = { kind: 'http', backend: 'h2' };
const TCP: DeclaredProtocol = { kind: 'tcp' };
const UNDECLARED: DeclaredProtocol = { kind: 'undeclared' };

t.test('declaredProtocol: appProtocol wins over the port name; the name prefix otherwise', async (t) => {
  const cases: [label: string, port: ServicePort | undefined, expected: DeclaredProtocol][] = [
    ['no port (workload-addressed)', undefined, UNDECLARED],
    ['no name, no appProtocol', port(undefined), UNDECLARED],
    ['name http', port('http'), HTTP1],
    ['name http-web', port('http-web'), HTTP1],
    ['name http-web-v2 (up to the first dash)', port('http-web-v2'), HTTP1],
    ['name HTTP (case-insensitive)', port('HTTP'), HTTP1],
    ['name http2', port('http2'), H2],
    ['name grpc-x', port('grpc-x'), H2],
    ['name grpc-web (prefix grpc)', port('grpc-web'), H2],
    ['name h2c-api', port('h2c-api'), H2],
    ['name tcp-x', port('tcp-x'), TCP],
    ['name tls', port('tls'), TCP],
    ['name https-admin', port('https-admin'), TCP],
    ['name mysql-main', port('mysql-main'), TCP],
    ['name redis', port('redis'), TCP],
    ['name web (unknown)', port('web'), UNDECLARED],
    ['name httpx (no dash: not the http prefix)', port('httpx'), UNDECLARED],
    ['name xhttp-1 (prefix is xhttp)', port('xhttp-1'), UNDECLARED],
    ['name -http (empty prefix)', port('-http'), UNDECLARED],
    ['appProtocol http2 beats name tcp-x', port('tcp-x', 'http2'), H2],
    ['appProtocol tcp beats name http', port('http', 'tcp'), TCP],
    ['appProtocol http beats name grpc', port('grpc', 'http'), HTTP1],
    ['appProtocol GRPC (case-insensitive)', port(undefined, 'GRPC'), H2],
    ['unknown appProtocol beats a known name: undeclared', port('http', 'example.com/custom'), UNDECLARED],
    ['appProtocol grpc-web', port('web', 'grpc-web'), H2],
    ['appProtocol kubernetes.io/h2c', port('web', 'kubernetes.io/h2c'), H2],
    ['appProtocol kubernetes.io/ws', port('tcp', 'kubernetes.io/ws'), HTTP1],
    ['appProtocol kubernetes.io/wss', port('http', 'kubernetes.io/wss'), TCP],
  ];
  for (const [label, p, expected] of cases) t.same(declaredProtocol(p), expected, label);
});

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH', 'CONNECT', 'TRACE'];

t.test('classifyPrefix: every prefix of the HTTP/2 preface is "more", the whole is h2', async (t) => {
  t.equal(SNIFF_BYTES, 24, 'the preface is 24 bytes');
  t.equal(H2_PREFACE.toString('latin1'), 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
  for (let k = 1; k < H2_PREFACE.length; k++)
    t.equal(classifyPrefix(H2_PREFACE.subarray(0, k)), 'more', `${k} bytes of the preface`);
  t.equal(classifyPrefix(H2_PREFACE), 'h2', 'the whole preface');
  const withSettings = Buffer.concat([H2_PREFACE, Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);
  t.equal(classifyPrefix(withSettings), 'h2', 'the preface and a SETTINGS frame');
});

t.test('classifyPrefix: every prefix of each HTTP/1 method and its space, then http1', async (t) => {
  for (const method of METHODS) {
    const line = Buffer.from(`${method} /index.html HTTP/1.1\r\nhost: a\r\n\r\n`, 'latin1');
    for (let k = 1; k <= method.length; k++)
      t.equal(classifyPrefix(line.subarray(0, k)), 'more', `${JSON.stringify(method.slice(0, k))}`);
    t.equal(classifyPrefix(line.subarray(0, method.length + 1)), 'http1', `"${method} "`);
    t.equal(classifyPrefix(line), 'http1', `a whole ${method} request`);
  }
});

t.test('classifyPrefix: everything else is tcp, as soon as it cannot be HTTP', async (t) => {
  const tlsClientHello = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]);
  const cases: [label: string, bytes: Buffer][] = [
    ['TLS ClientHello', tlsClientHello],
    ['its first byte alone', tlsClientHello.subarray(0, 1)],
    ['NUL bytes', Buffer.alloc(8)],
    ['0xff', Buffer.from([0xff])],
    ['SSH banner', Buffer.from('SSH-2.0-OpenSSH_9.6\r\n')],
    ['MySQL-ish length prefix', Buffer.from([0x4a, 0x00, 0x00, 0x00, 0x0a])],
    ['lower-case method', Buffer.from('get / HTTP/1.1\r\n')],
    ['method without a space', Buffer.from('GET/ HTTP/1.1\r\n')],
    ['longer word sharing a method prefix', Buffer.from('GETS ')],
    ['unknown method', Buffer.from('BREW / HTTP/1.1\r\n')],
    ['HTTP/1.1 lookalike of the preface', Buffer.from('PRI * HTTP/1.1\r\n')],
    ['preface with a wrong byte at the end', Buffer.concat([H2_PREFACE.subarray(0, 23), Buffer.from('X')])],
    ['a redis command', Buffer.from('*1\r\n$4\r\nPING\r\n')],
  ];
  for (const [label, bytes] of cases) t.equal(classifyPrefix(bytes), 'tcp', label);
});

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

/** Everything `stream` yields from now until it ends (or `ms` pass: the test then sees a short read). */
async function readAll(stream: Duplex, ms = 2000): Promise<Buffer> {
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  await endOrTimeout(stream, ms);
  return Buffer.concat(chunks);
}

/** A connected pair of sockets on 127.0.0.1: `client` is ours, `server` what the waypoint sniffs. */
async function socketPair(t: Test): Promise<{ client: Socket; server: Socket }> {
  const listener = createServer();
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const accepted = once(listener, 'connection') as Promise<[Socket]>;
  const client = connect((listener.address() as AddressInfo).port, '127.0.0.1');
  client.setNoDelay(true);
  const [[server]] = await Promise.all([accepted, once(client, 'connect')]);
  listener.close();
  t.teardown(() => {
    client.destroy();
    server.destroy();
  });
  return { client, server };
}

/** Writes each chunk with a pause between, so they arrive as separate reads. */
async function dribble(client: Socket, chunks: readonly Buffer[]): Promise<void> {
  for (const c of chunks) {
    client.write(c);
    await tick(15);
  }
}

function split(bytes: Buffer, ...at: number[]): Buffer[] {
  const out: Buffer[] = [];
  let from = 0;
  for (const i of at) {
    out.push(bytes.subarray(from, i));
    from = i;
  }
  out.push(bytes.subarray(from));
  return out;
}

t.test('sniffProtocol over loopback TCP: small chunks, bytes put back for the next reader', async (t) => {
  const request = Buffer.from('GET /hello HTTP/1.1\r\nhost: echo\r\n\r\n', 'latin1');
  const h2 = Buffer.concat([H2_PREFACE, Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);
  const hello = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00]);
  const cases: [label: string, chunks: Buffer[], expected: TunnelProtocol][] = [
    ['HTTP/1 request byte by byte at first', split(request, 1, 2, 3, 4, 10), 'http1'],
    ['HTTP/2 preface in three pieces, then a frame', split(h2, 5, 16, 24), 'h2'],
    ['a partial method, then not HTTP', [Buffer.from('PO'), Buffer.from('Xyz\x00\x01')], 'tcp'],
    ['TLS ClientHello', split(hello, 1), 'tcp'],
  ];
  for (const [label, chunks, expected] of cases) {
    await t.test(label, async (t) => {
      const { client, server } = await socketPair(t);
      const readableBefore = server.listenerCount('readable');
      const endBefore = server.listenerCount('end');
      const closeBefore = server.listenerCount('close');
      const verdict = sniffProtocol(server, 2000);
      await dribble(client, chunks);
      t.equal(await verdict, expected, 'verdict');
      t.equal(server.listenerCount('readable'), readableBefore, 'its readable listener is gone');
      t.equal(server.listenerCount('end'), endBefore, 'its end listener is gone');
      t.equal(server.listenerCount('close'), closeBefore, 'its close listener is gone');
      const sent = Buffer.concat(chunks);
      const more = Buffer.from('...and more after detection');
      client.end(more);
      const got = await readAll(server);
      t.same(got, Buffer.concat([sent, more]), 'the consumer reads exactly what was sent, in order');
    });
  }
});

t.test('sniffProtocol over loopback TCP: a silent client is tcp after the timeout', async (t) => {
  const { client, server } = await socketPair(t);
  const start = performance.now();
  t.equal(await sniffProtocol(server, 60), 'tcp');
  const elapsed = performance.now() - start;
  t.ok(elapsed >= 50, `waited for the timeout (${elapsed.toFixed(0)} ms)`);
  t.ok(elapsed < 1000, 'and not much longer');
  t.notOk(server.destroyed, 'the stream is still usable');
  client.end('server speaks first, client answers later');
  t.equal((await readAll(server)).toString(), 'server speaks first, client answers later');
});

t.test(
  'sniffProtocol over loopback TCP: part of a method, then silence: tcp after the timeout',
  async (t) => {
    const { client, server } = await socketPair(t);
    const verdict = sniffProtocol(server, 60);
    client.write('OPTI');
    t.equal(await verdict, 'tcp');
    client.end('ONS');
    t.equal((await readAll(server)).toString(), 'OPTIONS', 'the bytes seen before the timeout are put back');
  },
);

t.test('sniffProtocol over loopback TCP: a client that ends without a byte is tcp at once', async (t) => {
  const { client, server } = await socketPair(t);
  const start = performance.now();
  const verdict = sniffProtocol(server, 5000);
  client.end();
  t.equal(await verdict, 'tcp');
  t.ok(performance.now() - start < 2000, 'without waiting for the timeout');
});

t.test('sniffProtocol: a half-closed stream (client sent END_STREAM, no bytes) is tcp at once', async (t) => {
  // As an HTTP/2 stream whose client ended its side: 'end' without 'close'.
  const stream = new Duplex({ allowHalfOpen: true, read() {}, write: (_c, _e, cb) => cb() });
  const verdict = sniffProtocol(stream, 5000);
  stream.push(null);
  const start = performance.now();
  t.equal(await verdict, 'tcp');
  t.ok(performance.now() - start < 2000, 'without waiting for the timeout');
  t.notOk(stream.destroyed, 'the stream stays open for the answer');
});

t.test('sniffProtocol over loopback TCP: a client that resets is tcp', async (t) => {
  const { client, server } = await socketPair(t);
  server.on('error', () => undefined);
  const verdict = sniffProtocol(server, 5000);
  client.resetAndDestroy();
  t.equal(await verdict, 'tcp');
});

t.test('sniffProtocol on a PassThrough: undecided while the prefix could still be HTTP', async (t) => {
  const stream = new PassThrough();
  let verdict: TunnelProtocol | undefined;
  const sniffed = sniffProtocol(stream, 5000).then((v) => (verdict = v));
  for (const piece of ['P', 'U', 'T']) {
    stream.write(piece);
    await tick();
    t.equal(verdict, undefined, `after ${JSON.stringify(piece)}: still waiting`);
  }
  stream.write(' /x HTTP/1.1\r\n\r\n');
  await sniffed;
  t.equal(verdict, 'http1');
  stream.end();
  t.equal((await readAll(stream)).toString(), 'PUT /x HTTP/1.1\r\n\r\n', 'all pieces put back as one');
});

t.test('sniffProtocol on a PassThrough: the preface one byte at a time', async (t) => {
  const stream = new PassThrough();
  let verdict: TunnelProtocol | undefined;
  const sniffed = sniffProtocol(stream, 5000).then((v) => (verdict = v));
  for (let i = 0; i < H2_PREFACE.length - 1; i++) {
    stream.write(H2_PREFACE.subarray(i, i + 1));
    await tick();
  }
  t.equal(verdict, undefined, '23 bytes: still waiting');
  stream.write(H2_PREFACE.subarray(23));
  await sniffed;
  t.equal(verdict, 'h2');
  stream.end();
  t.same(await readAll(stream), H2_PREFACE);
});

t.test(
  'sniffProtocol: a client that sends part of a method and ends is tcp, and its bytes are put back',
  async (t) => {
    const stream = new PassThrough();
    const errors: Error[] = [];
    stream.on('error', (err) => errors.push(err));
    const verdict = sniffProtocol(stream, 5000);
    stream.end('GE');
    t.equal(await verdict, 'tcp');
    await tick();
    t.same(
      errors.map((e) => e.message),
      [],
      'no error on the stream',
    );
    t.notOk(stream.destroyed, 'the stream is not destroyed');
    t.equal((await readAll(stream, 200)).toString(), 'GE', 'the next reader gets the bytes, then the end');
  },
);
