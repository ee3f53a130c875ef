// lab/workloads/echo.ts over HTTP/1.1 and tcp-echo.ts, on loopback: what the echo reports, every
// steering header, trailers both ways, and the log line per request. HTTP/2, gRPC and upgrades have
// their own files.
import t from 'tap';
import { once } from 'node:events';
import { connect, type AddressInfo } from 'node:net';
import { createTcpEchoServer } from '../../../lab/workloads/tcp-echo.js';
import { run } from '../../helpers/exec.js';
import { get, IDENTITY, startEcho, type ReplyBody } from './echo-peers.js';

t.test('echo describes the request: identity, method, path, query, host, headers, peer, body', async (t) => {
  const { port } = await startEcho(t);
  t.plan(9);
  const a = await get(port, '/x/y?y=1&z=2&z=3', { 'x-custom': 'v' }, 'hello');
  t.equal(a.status, 200);
  t.match(a.body, IDENTITY);
  t.match(a.body, {
    method: 'POST',
    path: '/x/y',
    url: '/x/y?y=1&z=2&z=3',
    host: `127.0.0.1:${port}`,
    httpVersion: '1.1',
  });
  t.same(a.body.query, { y: '1', z: ['2', '3'] });
  t.equal(a.body.headers['x-custom'], 'v');
  t.equal(a.body.peer.address, '127.0.0.1');
  t.equal(a.body.local.port, port);
  t.same(a.body.body, { bytes: 5, text: 'hello' });
  t.equal(a.headers['content-type'], 'application/json');
});

t.test('x-echo-status, x-echo-header (repeatable) and x-echo-delay-ms', async (t) => {
  const { port } = await startEcho(t);
  t.plan(6);
  const a = await get(port, '/', { 'x-echo-status': '418', 'x-echo-header': ['a=1', 'b = two words'] });
  t.equal(a.status, 418);
  t.equal(a.body.status, 418);
  t.same([a.headers.a, a.headers.b], ['1', 'two words']);
  const started = performance.now();
  const slow = await get(port, '/', { 'x-echo-delay-ms': '150' });
  t.ok(performance.now() - started >= 140, 'delayed');
  t.equal(slow.status, 200);
  const bad = await get(port, '/', { 'x-echo-status': '42' });
  t.match(bad, { status: 400, body: { error: /x-echo-status must be an integer 200-599, got "42"/ } });
});

t.test('x-echo-fail-first and x-echo-reset-first count attempts per x-request-id', async (t) => {
  const { port } = await startEcho(t);
  t.plan(7);
  const fail = { 'x-request-id': 'r1', 'x-echo-fail-first': '2' };
  t.same([(await get(port, '/', fail)).status, (await get(port, '/', fail)).status], [503, 503]);
  const third = await get(port, '/', fail);
  t.same([third.status, third.body.attempt], [200, 3]);
  t.equal(
    (await get(port, '/', { ...fail, 'x-request-id': 'r2' })).status,
    503,
    'another id counts on its own',
  );
  const reset = { 'x-request-id': 'r3', 'x-echo-reset-first': '1', 'x-echo-fail-first': '2' };
  await t.rejects(get(port, '/', reset), { code: 'ECONNRESET' }, 'attempt 1: TCP reset');
  t.equal((await get(port, '/', reset)).status, 503, 'attempt 2: past reset-first, within fail-first');
  t.equal((await get(port, '/', reset)).status, 200, 'attempt 3: answered');
  const noId = await get(port, '/', { 'x-echo-fail-first': '1' });
  t.match(noId, { status: 400, body: { error: /x-request-id, which is missing/ } });
});

t.test('curl over HTTP/1.1 sees the same JSON', async (t) => {
  const { port } = await startEcho(t);
  const r = await run('curl', [
    '-sS',
    '--http1.1',
    '-D',
    '-',
    '-H',
    'x-echo-header: x-from=echo',
    `http://127.0.0.1:${port}/c?a=1`,
  ]);
  t.equal(r.code, 0, r.stderr);
  const [head = '', body = ''] = r.stdout.split('\r\n\r\n');
  t.match(head, /^HTTP\/1\.1 200 OK\r\n/);
  t.match(head, /\r\nx-from: echo\r\n/i);
  const reply = JSON.parse(body) as ReplyBody;
  t.match(reply, {
    ...IDENTITY,
    httpVersion: '1.1',
    path: '/c',
    query: { a: '1' },
    host: `127.0.0.1:${port}`,
  });
});

t.test(
  'trailers both ways over HTTP/1.1: x-echo-trailer answers chunked with a Trailer header',
  async (t) => {
    const { port } = await startEcho(t);
    const a = await get(
      port,
      '/t',
      { 'x-echo-trailer': ['x-checksum=abc', 'x-multi=1', 'x-multi=2'] },
      'payload',
      { trailers: { 'x-sent-after': 'body' } },
    );
    t.equal(a.status, 200);
    t.same(a.body.trailers, { 'x-sent-after': 'body' }, 'request trailers are echoed');
    t.same(a.body.body, { bytes: 7, text: 'payload' });
    t.equal(a.headers['transfer-encoding'], 'chunked');
    t.equal(a.headers['content-length'], undefined);
    t.equal(a.headers.trailer, 'x-checksum, x-multi');
    t.equal(a.trailers['x-checksum'], 'abc');
    t.equal(a.trailers['x-multi'], '1, 2');
    const plain = await get(port, '/');
    t.same(plain.trailers, {}, 'no trailers unless asked');
    t.same(plain.body.trailers, {});
    t.ok(plain.headers['content-length'], 'and a Content-Length then');
    const bad = await get(port, '/', { 'x-echo-trailer': 'content-length=3' });
    t.match(bad, { status: 400, body: { error: 'x-echo-trailer cannot set content-length here' } });
    const noValue = await get(port, '/', { 'x-echo-trailer': 'just-a-name' });
    t.match(noValue, {
      status: 400,
      body: { error: /x-echo-trailer must be name=value, got "just-a-name"/ },
    });
  },
);

t.test('answers without content (HEAD, 204) carry no body and no trailers', async (t) => {
  const { port } = await startEcho(t);
  const noContent = await get(port, '/', { 'x-echo-status': '204', 'x-echo-trailer': 'x-a=1' });
  t.same([noContent.status, noContent.text, noContent.trailers], [204, '', {}]);
  const head = await get(port, '/', { 'x-echo-trailer': 'x-a=1' }, undefined, { method: 'HEAD' });
  t.equal(head.status, 200);
  t.equal(head.text, '');
  t.ok(Number(head.headers['content-length']) > 0, 'HEAD says how long the GET would be');
});

t.test('one JSON log line per request: request line, host and x-* headers, outcome, time', async (t) => {
  const { port, logs, lines } = await startEcho(t);
  await get(port, '/logged?k=v&k=w', { 'x-request-id': 'id-1', 'x-custom': 'c', 'user-agent': 'ua' }, 'b');
  await t.rejects(get(port, '/r', { 'x-request-id': 'id-2', 'x-echo-reset-first': '1' }));
  await get(port, '/bad', { 'x-echo-delay-ms': 'soon' });
  t.equal(lines.length, 3);
  for (const line of lines) t.notMatch(line, /\n/, 'one line each');
  t.same(logs[0], {
    msg: 'request',
    pod: 'echo-v1',
    namespace: 'default',
    service: 'echo',
    version: 'v1',
    method: 'POST',
    path: '/logged',
    query: { k: ['v', 'w'] },
    host: `127.0.0.1:${port}`,
    httpVersion: '1.1',
    requestId: 'id-1',
    attempt: 1,
    status: 200,
    headers: { host: `127.0.0.1:${port}`, 'x-request-id': 'id-1', 'x-custom': 'c' },
    time: logs[0]!.time,
  });
  t.ok(Math.abs(Date.parse(String(logs[0]!.time)) - Date.now()) < 10_000, 'time is an ISO timestamp of now');
  t.match(String(logs[0]!.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  t.match(logs[1], { path: '/r', requestId: 'id-2', attempt: 1, status: 0, reset: true });
  t.match(logs[2], { path: '/bad', status: 400, requestId: null });
});

t.test(
  'an Upgrade other than websocket is declined: answered over HTTP/1.1, body read, then closed',
  async (t) => {
    const { port, logs } = await startEcho(t);
    // curl --http2 on http:// asks to upgrade to h2c; the echo only speaks h2c with prior knowledge.
    const r = await run('curl', [
      '-sS',
      '--http2',
      '-D',
      '-',
      '--data-binary',
      'hello',
      `http://127.0.0.1:${port}/up`,
    ]);
    t.equal(r.code, 0, r.stderr);
    const [head = '', body = ''] = r.stdout.split('\r\n\r\n');
    t.match(head, /^HTTP\/1\.1 200 OK\r\n/);
    t.match(head, /\r\nconnection: close\r\n/i);
    t.match(JSON.parse(body), {
      httpVersion: '1.1',
      path: '/up',
      method: 'POST',
      body: { bytes: 5, text: 'hello' },
    });
    const foo = await get(port, '/foo', { upgrade: 'foo/1', connection: 'upgrade', 'x-echo-status': '202' });
    t.match(foo, { status: 202, body: { headers: { upgrade: 'foo/1' }, status: 202 } });
    t.match(logs, [
      { path: '/up', status: 200 },
      { path: '/foo', status: 202 },
    ]);
  },
);

t.test('tcp-echo sends every byte back and passes the half-close on', async (t) => {
  const { server } = createTcpEchoServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
  let got = '';
  socket.setEncoding('utf8');
  socket.on('data', (c: string) => (got += c));
  socket.end('ping\nmore');
  await once(socket, 'end');
  t.plan(1);
  t.equal(got, 'ping\nmore');
});
