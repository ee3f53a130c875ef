// The echo's gRPC-shaped answer (HTTP/2 + content-type application/grpc): the framed request body comes
// back as the response body, then grpc-status/grpc-message trailers. Checked at the frame level with
// Node's HTTP/2 client and end to end with real gRPC stacks (grpc-js in-process, Python grpcio).
import t from 'tap';
import { Client, credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { missingPython, run, skipReason, SYSTEM_PYTHON } from '../../helpers/exec.js';
import { get, grpcFrame, h2request, h2session, startEcho } from './echo-peers.js';

const GRPC = { ':path': '/echo.Echo/Say', 'content-type': 'application/grpc', te: 'trailers' };
const identity = (b: Buffer): Buffer => b;

function unary(
  port: number,
  message: string,
  metadata: Record<string, string> = {},
): Promise<{ reply?: Buffer; error?: ServiceError }> {
  const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  const md = new Metadata();
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      '/echo.Echo/Say',
      identity,
      identity,
      Buffer.from(message),
      md,
      (error, reply) => {
        client.close();
        resolve(error ? { error } : { reply });
      },
    );
  });
}

t.test('frames: the request messages come back unchanged, then grpc-status 0', async (t) => {
  const { port, logs } = await startEcho(t);
  const session = await h2session(t, port);
  const body = Buffer.concat([grpcFrame('first'), grpcFrame('second message')]);
  const a = await h2request(session, GRPC, body);
  t.equal(a.headers[':status'], 200);
  t.equal(a.headers['content-type'], 'application/grpc');
  t.ok(a.body.equals(body), 'body echoed byte for byte');
  t.same(a.trailers['grpc-status'], '0');
  t.equal(a.trailers['grpc-message'], undefined);
  t.match(logs, [{ path: '/echo.Echo/Say', httpVersion: '2.0', status: 200, grpcStatus: 0 }]);
});

t.test('x-echo-grpc-status and x-echo-grpc-message become the trailers, with no messages', async (t) => {
  const { port } = await startEcho(t);
  const session = await h2session(t, port);
  const a = await h2request(
    session,
    { ...GRPC, 'x-echo-grpc-status': '5', 'x-echo-grpc-message': 'no such thing', 'x-echo-trailer': 'x-t=1' },
    grpcFrame('ignored'),
  );
  t.equal(a.headers[':status'], 200);
  t.equal(a.body.length, 0);
  t.match(a.trailers, { 'grpc-status': '5', 'grpc-message': 'no such thing', 'x-t': '1' });
  const bad = await h2request(session, { ...GRPC, 'x-echo-grpc-status': '17' }, grpcFrame('x'));
  t.equal(bad.headers[':status'], 400, 'a bad steering header is still a 400');
});

t.test('grpc-js: a unary call echoes; status, fail-first (UNAVAILABLE) and delay apply', async (t) => {
  const { port } = await startEcho(t);
  const ok = await unary(port, 'hello grpc');
  t.equal(ok.error, undefined);
  t.equal(ok.reply?.toString(), 'hello grpc');
  const notFound = await unary(port, 'x', { 'x-echo-grpc-status': '5', 'x-echo-grpc-message': 'gone' });
  t.match(notFound.error, { code: status.NOT_FOUND, details: 'gone' });
  const steer = { 'x-request-id': 'g1', 'x-echo-fail-first': '1' };
  const first = await unary(port, 'x', steer);
  t.match(first.error, { code: status.UNAVAILABLE, details: /attempt 1 fails/ });
  const started = performance.now();
  const second = await unary(port, 'again', { ...steer, 'x-echo-delay-ms': '120' });
  t.ok(performance.now() - started >= 110, 'delayed');
  t.equal(second.reply?.toString(), 'again');
});

t.test('application/grpc over HTTP/1.1 is not gRPC: it gets the JSON echo', async (t) => {
  const { port } = await startEcho(t);
  const a = await get(port, '/echo.Echo/Say', { 'content-type': 'application/grpc' }, 'x');
  t.equal(a.headers['content-type'], 'application/json');
  t.equal(a.body.httpVersion, '1.1');
});

const PYTHON_STREAM = `
import grpc, sys
port = sys.argv[1]
ch = grpc.insecure_channel('127.0.0.1:' + port)
call = ch.stream_stream('/echo.Echo/Chat', request_serializer=None, response_deserializer=None)
replies = call(iter([b'one', b'two', b'three']))
print(','.join(r.decode() for r in replies))
try:
    ch.unary_unary('/echo.Echo/Say')(b'x', metadata=[('x-echo-grpc-status', '7'), ('x-echo-grpc-message', 'nope')])
except grpc.RpcError as e:
    print(e.code().name, e.details())
`;

const noPython = await missingPython(['grpc']);

t.test(
  'Python grpcio: a bidirectional stream echoes each message; statuses reach it',
  { skip: skipReason(t, noPython) },
  async (t) => {
    const { port } = await startEcho(t);
    const r = await run(SYSTEM_PYTHON, ['-c', PYTHON_STREAM, String(port)]);
    t.equal(r.code, 0, r.stderr);
    t.same(r.stdout.trim().split('\n'), ['one,two,three', 'PERMISSION_DENIED nope']);
  },
);
