// The waypoint sends a request again, once, when its upstream connection drops it before any answer
// and sending it again is safe: an idempotent request on a keep-alive connection the backend closed
// under it (RFC 9110 §9.2.2), and an HTTP/2 stream the backend refused (RFC 9113 §8.7), whatever the
// method. A POST dropped the same way is not sent again, nor a request whose body was streamed (without
// a retry policy the waypoint keeps no copy): they fail with 503 UC, as before. No route retry policy is
// involved. The whole waypoint runs in this process (test/helpers/in-process-waypoint.ts).
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo, Server } from 'node:net';
import t from 'tap';
import { waypointFixture } from '../../helpers/in-process-waypoint.js';

const PORTS = { http: 80, h2: 82 } as const;

interface Backend {
  readonly port: number;
  /** `METHOD path` of every request or stream the backend saw, in order. */
  readonly seen: string[];
  close(): void;
}

async function onLoopback(server: Server, seen: string[], close: () => void): Promise<Backend> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as AddressInfo).port, seen, close };
}

interface Answer {
  status: number;
  body: string;
}

/** HTTP/1 backend: answers the first request on each connection; any later one is dropped unanswered. */
async function droppingBackend(): Promise<Backend> {
  const seen: string[] = [];
  const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    seen.push(`${req.method} ${req.url}`);
    const socket = req.socket as typeof req.socket & { served?: number };
    socket.served = (socket.served ?? 0) + 1;
    if (socket.served > 1) {
      socket.destroy();
      return;
    }
    req.resume();
    req.on('end', () => res.end(`ok ${req.url}`));
  });
  return onLoopback(server, seen, () => {
    server.closeAllConnections();
    server.close();
  });
}

/** HTTP/2 backend: refuses the first stream of each session (REFUSED_STREAM), answers the rest. */
async function refusingBackend(): Promise<Backend> {
  const seen: string[] = [];
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s: http2.ServerHttp2Session) => {
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
  });
  let streams = 0;
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    seen.push(`${String(headers[':method'])} ${String(headers[':path'])}`);
    if (streams++ === 0) {
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    stream.resume();
    stream.on('end', () => {
      stream.respond({ ':status': 200 });
      stream.end(`ok ${String(headers[':path'])}`);
    });
  });
  return onLoopback(server, seen, () => {
    for (const s of sessions) s.destroy();
    server.close();
  });
}

function send(agent: http.Agent, port: number, method: string, path: string, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '10.96.8.8', port, method, path, agent }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

t.test('a request dropped by its upstream connection before any answer', { timeout: 30_000 }, async (t) => {
  const h1 = await droppingBackend();
  const h2 = await refusingBackend();
  t.teardown(() => {
    h1.close();
    h2.close();
  });
  const waypoints = await waypointFixture([
    { name: 'http', port: PORTS.http, targetPort: h1.port },
    { name: 'http2', port: PORTS.h2, targetPort: h2.port },
  ]);
  t.teardown(() => waypoints.close());
  const waypoint = await waypoints.start();
  const agent = waypoints.http1Agent(waypoint.hboneAddress.port, PORTS.http);
  const h2Agent = waypoints.http1Agent(waypoint.hboneAddress.port, PORTS.h2);
  t.teardown(() => {
    agent.destroy();
    h2Agent.destroy();
  });

  t.same(await send(agent, PORTS.http, 'GET', '/first'), { status: 200, body: 'ok /first' });
  t.same(
    await send(agent, PORTS.http, 'GET', '/second'),
    { status: 200, body: 'ok /second' },
    'a GET dropped on a reused connection is answered: sent again on a new one',
  );
  t.same(h1.seen, ['GET /first', 'GET /second', 'GET /second'], 'the backend saw it twice');

  const post = await send(agent, PORTS.http, 'POST', '/pay', 'once');
  t.equal(post.status, 503, 'a POST dropped the same way fails');
  t.match(post.body, /upstream reset/);
  t.same(h1.seen.slice(3), ['POST /pay'], 'and was sent once only');

  // Each dropped request costs its connection, so a GET first makes the next one a reused connection.
  t.equal((await send(agent, PORTS.http, 'GET', '/third')).status, 200);
  const put = await send(agent, PORTS.http, 'PUT', '/item', 'v');
  t.equal(put.status, 503, 'a PUT whose body was streamed (no retry policy kept it) cannot be sent again');
  t.equal((await send(agent, PORTS.http, 'GET', '/fourth')).status, 200);
  t.same(
    await send(agent, PORTS.http, 'DELETE', '/item'),
    { status: 200, body: 'ok /item' },
    'a DELETE without a body is idempotent: sent again',
  );
  t.same(h1.seen.slice(4), ['GET /third', 'PUT /item', 'GET /fourth', 'DELETE /item', 'DELETE /item']);

  t.same(
    await send(h2Agent, PORTS.h2, 'POST', '/refused'),
    { status: 200, body: 'ok /refused' },
    'a POST on a stream the HTTP/2 backend refused is sent again (it was not processed)',
  );
  t.same(h2.seen, ['POST /refused', 'POST /refused']);
});
