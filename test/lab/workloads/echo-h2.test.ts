// lab/workloads/echo.ts over cleartext HTTP/2 with prior knowledge, on the same port as HTTP/1.1:
// curl and nghttp as outside peers, Node's HTTP/2 client for trailers both ways and for RST_STREAM on
// one stream of a shared connection.
import t from 'tap';
import { once } from 'node:events';
import { constants } from 'node:http2';
import { connect } from 'node:net';
import { run } from '../../helpers/exec.js';
import { get, h2request, h2session, IDENTITY, startEcho, type ReplyBody } from './echo-peers.js';

t.test('curl --http2-prior-knowledge and HTTP/1.1 on the same port get the same JSON', async (t) => {
  const { port, logs } = await startEcho(t);
  const r = await run('curl', [
    '-sS',
    '--http2-prior-knowledge',
    '-D',
    '-',
    '-H',
    'x-echo-status: 201',
    '-H',
    'x-echo-header: x-from=echo',
    '--data-binary',
    'over h2',
    `http://127.0.0.1:${port}/two?x=1`,
  ]);
  t.equal(r.code, 0, r.stderr);
  const [head = '', body = ''] = r.stdout.split('\r\n\r\n');
  t.match(head, /^HTTP\/2 201 ?\r\n/);
  t.match(head, /\r\nx-from: echo\r\n/);
  t.match(JSON.parse(body) as ReplyBody, {
    ...IDENTITY,
    method: 'POST',
    path: '/two',
    query: { x: '1' },
    url: '/two?x=1',
    host: `127.0.0.1:${port}`,
    httpVersion: '2.0',
    headers: { ':authority': `127.0.0.1:${port}`, ':method': 'POST' },
    peer: { address: '127.0.0.1' },
    local: { port },
    body: { bytes: 7, text: 'over h2' },
    status: 201,
  });
  const h1 = await get(port, '/one');
  t.equal(h1.body.httpVersion, '1.1', 'the next connection may still speak HTTP/1.1');
  t.match(logs, [{ httpVersion: '2.0', host: `127.0.0.1:${port}`, status: 201 }, { httpVersion: '1.1' }]);
});

t.test('nghttp: response trailers arrive as a final HEADERS frame', async (t) => {
  const { port } = await startEcho(t);
  const r = await run('nghttp', [
    '-v',
    '-H',
    'x-echo-trailer: x-checksum=abc',
    '-H',
    'x-echo-trailer: x-other=2',
    `http://127.0.0.1:${port}/nghttp`,
  ]);
  t.equal(r.code, 0, r.stderr);
  // nghttp opens idle priority streams first, so the request's stream id varies; take it from :status.
  const id = /recv \(stream_id=(\d+)\) :status: 200/.exec(r.stdout)?.[1];
  t.ok(id, 'answered 200');
  t.match(r.stdout, `recv (stream_id=${id}) trailer: x-checksum, x-other`);
  // The trailers come after the body, in a HEADERS frame that ends the stream (flags 0x05).
  const after = r.stdout.slice(r.stdout.lastIndexOf(`recv DATA frame`));
  t.match(after, `recv (stream_id=${id}) x-checksum: abc`);
  t.match(after, `recv (stream_id=${id}) x-other: 2`);
  t.match(after, new RegExp(`recv HEADERS frame <length=\\d+, flags=0x05, stream_id=${id}>`));
  t.match(r.stdout, /"httpVersion": "2.0"/);
});

t.test('trailers both ways over HTTP/2 with Node as the client', async (t) => {
  const { port } = await startEcho(t);
  const session = await h2session(t, port);
  const a = await h2request(session, { 'x-echo-trailer': 'x-done=yes' }, 'body', { 'x-req-trailer': 'sent' });
  t.equal(a.headers[':status'], 200);
  t.equal(a.trailers['x-done'], 'yes');
  const reply = JSON.parse(a.body.toString()) as ReplyBody;
  t.same(reply.trailers, { 'x-req-trailer': 'sent' });
  t.same(reply.body, { bytes: 4, text: 'body' });
  const plain = await h2request(session, {});
  t.same(plain.trailers, {}, 'none unless asked');
  const hopByHop = await h2request(session, { 'x-echo-header': 'connection=close' });
  t.equal(hopByHop.headers[':status'], 400, 'HTTP/2 cannot carry connection-specific headers');
  t.match(JSON.parse(hopByHop.body.toString()), { error: 'x-echo-header cannot set connection here' });
});

t.test('reset-first over HTTP/2 resets that stream only; the connection carries on', async (t) => {
  const { port, logs } = await startEcho(t);
  const session = await h2session(t, port);
  t.equal(session.remoteSettings.maxConcurrentStreams, 1000, 'streams per connection are bounded');
  const steer = { 'x-request-id': 'r1', 'x-echo-reset-first': '1' };
  // Both streams are open at once on the one connection; the slow one is answered after the reset.
  const [reset, other] = await Promise.all([
    h2request(session, steer),
    h2request(session, { 'x-echo-delay-ms': '100' }),
  ]);
  t.equal(reset.rstCode, constants.NGHTTP2_INTERNAL_ERROR, 'RST_STREAM with INTERNAL_ERROR');
  t.same(reset.headers, {}, 'no response on the reset stream');
  t.equal(other.headers[':status'], 200);
  t.equal(other.rstCode, constants.NGHTTP2_NO_ERROR);
  const retried = await h2request(session, steer);
  t.equal(retried.headers[':status'], 200, 'attempt 2 is answered, on the same connection');
  t.equal((JSON.parse(retried.body.toString()) as ReplyBody).attempt, 2);
  t.notOk(session.destroyed || session.closed, 'connection still open');
  t.match(logs, [{ status: 0, reset: true, attempt: 1 }, { status: 200 }, { status: 200, attempt: 2 }]);
});

t.test('fail-first and delay apply over HTTP/2 as over HTTP/1.1', async (t) => {
  const { port } = await startEcho(t);
  const session = await h2session(t, port);
  const steer = { 'x-request-id': 'f1', 'x-echo-fail-first': '1' };
  t.equal((await h2request(session, steer)).headers[':status'], 503);
  const started = performance.now();
  const second = await h2request(session, { ...steer, 'x-echo-delay-ms': '120' });
  t.ok(performance.now() - started >= 110, 'delayed');
  t.equal(second.headers[':status'], 200);
});

t.test('a connection is closed if it sends nothing, or ends inside the preface', async (t) => {
  const { port } = await startEcho(t, { firstBytesTimeoutMs: 200 });
  const silent = connect(port, '127.0.0.1');
  t.teardown(() => silent.destroy());
  silent.resume();
  const started = performance.now();
  await once(silent, 'close');
  const waited = performance.now() - started;
  t.ok(waited >= 150 && waited < 5_000, `silent connection closed after ${Math.round(waited)} ms`);
  const partial = connect(port, '127.0.0.1');
  t.teardown(() => partial.destroy());
  partial.resume();
  partial.end('PRI * HTTP/2');
  const startedPartial = performance.now();
  await once(partial, 'close');
  t.ok(performance.now() - startedPartial < 150, 'a half preface and an end: closed at once');
});

t.test('clients that give up mid-answer do not disturb the server', async (t) => {
  const { port, logs } = await startEcho(t);
  const session = await h2session(t, port);
  const slow = session.request({ ':path': '/slow', 'x-echo-delay-ms': '100' });
  slow.on('error', () => {});
  slow.close(constants.NGHTTP2_CANCEL);
  const grpc = session.request({ ':path': '/g', ':method': 'POST', 'content-type': 'application/grpc' });
  grpc.on('error', () => {});
  grpc.write(Buffer.from([0, 0, 0, 0, 9]));
  await new Promise((r) => setTimeout(r, 30));
  grpc.close(constants.NGHTTP2_CANCEL);
  const h1 = connect(port, '127.0.0.1');
  h1.on('error', () => {});
  h1.write('GET /h1 HTTP/1.1\r\nHost: echo\r\nx-echo-delay-ms: 100\r\n\r\n');
  await new Promise((r) => setTimeout(r, 20));
  h1.resetAndDestroy();
  await new Promise((r) => setTimeout(r, 200));
  const after = await h2request(session, { ':path': '/after' });
  t.equal(after.headers[':status'], 200, 'the same connection still answers');
  t.match(logs, [{ path: '/g' }, { path: '/slow' }, { path: '/h1' }, { path: '/after' }]);
});
