// lab/workloads/echo.ts and tcp-echo.ts on loopback: what the echo reports, and every steering header.
import t from 'tap';
import { once } from 'node:events';
import { request } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { createEchoServer, type EchoReply } from '../../../lab/workloads/echo.js';
import { createTcpEchoServer } from '../../../lab/workloads/tcp-echo.js';

const IDENTITY = { pod: 'echo-v1', namespace: 'default', service: 'echo', version: 'v1', node: 'node-1' };

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: EchoReply & { error?: string };
}

async function startEcho(t: { teardown(fn: () => unknown): void }): Promise<number> {
  const server = createEchoServer(IDENTITY);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    server.close();
    server.closeAllConnections();
  });
  return (server.address() as AddressInfo).port;
}

/** One request on a fresh connection; rejects with the socket error on a reset. */
function get(
  port: number,
  path: string,
  headers: Record<string, string | string[]> = {},
  body?: string,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, headers, agent: false, method: body ? 'POST' : 'GET' },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: JSON.parse(text) as Answer['body'],
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

t.test('echo describes the request: identity, method, path, query, host, headers, peer, body', async (t) => {
  const port = await startEcho(t);
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
  const port = await startEcho(t);
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
  const port = await startEcho(t);
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
