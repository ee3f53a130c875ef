// The HBONE client pool against a real HTTP/2 TLS server on loopback: keying, stream limits, one dial per
// key, refusals, peer identity, GOAWAY drain, keepalive, idle close and connect timeout.
import t, { type Test } from 'tap';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { constants as h2c, type ClientHttp2Stream } from 'node:http2';
import {
  HboneClientPool,
  TunnelRefusedError,
  type PoolKey,
  type PoolTimings,
} from '../../../core/hbone/client-pool.js';
import { CertificateManager, type WorkloadCertificate } from '../../../core/identity/manager.js';
import { WeftError } from '../../../core/errors.js';
import { componentLogger } from '../../../core/log.js';
import { LocalCaClient } from '../../helpers/local-ca-client.js';
import {
  HboneTestServer,
  issueServerCertificate,
  type ServerSessionRecord,
} from '../../helpers/hbone-test-server.js';
import { TcpRelay } from '../../helpers/tcp-relay.js';

const id = (sa: string) => `spiffe://cluster.local/ns/default/sa/${sa}`;
const WEB = id('web');
const WEB2 = id('web2');
const SERVER = id('server');
const OTHER = id('other');
const AUTHORITY = '10.0.0.7:8080';
const log = componentLogger('agent.pool');
const testLog = componentLogger('test');

// Client certificates come from the agent's own manager; server ones from the same authority, so every
// chain verifies and only the identities differ.
const ca = await LocalCaClient.create();
const manager = new CertificateManager({
  caClient: ca,
  trustDomain: 'cluster.local',
  ttlSeconds: 3600,
  log: testLog,
});
t.teardown(() => manager.close());
const webCert = await manager.fetch(WEB);
const web2Cert = await manager.fetch(WEB2);
const serverCert = await issueServerCertificate(ca.authority, SERVER);
const otherCert = await issueServerCertificate(ca.authority, OTHER);

function keyFor(port: number, srcIdentity = WEB, dstIdentity = SERVER): PoolKey {
  return { srcIdentity, dstIdentity, dstIp: '127.0.0.1', dstPort: port };
}

async function startServer(
  t: Test,
  cert: WorkloadCertificate = serverCert,
  maxConcurrentStreams?: number,
): Promise<HboneTestServer> {
  const server = await HboneTestServer.start(cert, maxConcurrentStreams ? { maxConcurrentStreams } : {});
  t.teardown(() => server.close());
  return server;
}

/** A pool whose tunnels are all closed at teardown. */
function startPool(t: Test, timings: Partial<PoolTimings> = {}) {
  const pool = new HboneClientPool(log, timings);
  const streams: ClientHttp2Stream[] = [];
  t.teardown(() => {
    // close(), not destroy(): on Node 20, destroy() of a stream whose session saw a peer RST_STREAM spins.
    for (const s of streams) s.close(h2c.NGHTTP2_CANCEL);
    pool.close();
  });
  const open = async (key: PoolKey, cert: WorkloadCertificate = webCert): Promise<ClientHttp2Stream> => {
    const stream = await pool.connect(key, cert, AUTHORITY, {});
    streams.push(stream);
    return stream;
  };
  return { pool, open };
}

/** Writes `data`; resolves with the echo once as many bytes came back, rejects if the stream closes first. */
function echo(stream: ClientHttp2Stream, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (chunk: Buffer): void => {
      got += chunk.toString();
      if (got.length < data.length) return;
      stream.off('data', onData).off('close', onClose);
      resolve(got);
    };
    const onClose = (): void => reject(new Error(`stream closed after ${got.length}/${data.length} bytes`));
    stream.on('data', onData).once('close', onClose);
    stream.write(data);
  });
}

/** Ends our side and waits for the stream to close (the echo server ends its side in turn). */
async function finish(stream: ClientHttp2Stream): Promise<void> {
  const closed = once(stream, 'close');
  stream.resume();
  stream.end();
  await closed;
}

function rejection(p: Promise<unknown>): Promise<Error> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err as Error,
  );
}

t.test(
  'streams of one key share a connection; each part of the key gets its own',
  { timeout: 5000 },
  async (t) => {
    t.plan(10);
    const server = await startServer(t);
    const relay = await TcpRelay.start(server.port);
    t.teardown(() => relay.close());
    const { pool, open } = startPool(t);
    const base = keyFor(server.port);

    const first = await open(base);
    const second = await open(base);
    t.equal(server.tlsConnections, 1, 'two streams, one key: one connection');
    t.same(
      await Promise.all([echo(first, 'one'), echo(second, 'two')]),
      ['one', 'two'],
      'both streams carry their own bytes',
    );

    await open({ ...base, srcIdentity: WEB2 }, web2Cert);
    t.equal(server.tlsConnections, 2, 'another source identity: another connection');
    t.equal(server.sessions[1]?.clientIdentity, WEB2, 'which presents that identity');

    server.presentCertificate(otherCert);
    await open({ ...base, dstIdentity: OTHER });
    t.equal(server.tlsConnections, 3, 'another destination identity: another connection');
    server.presentCertificate(serverCert);

    await open({ ...base, dstPort: relay.port });
    t.equal(server.tlsConnections, 4, 'another destination address: another connection');

    await open(base);
    t.equal(server.tlsConnections, 4, 'the first key still reuses its connection');
    t.same(
      pool.connections(base).map((c) => c.active),
      [3],
      'with all three of its streams',
    );
    t.equal(pool.connectionCount, 4);
    t.same(
      server.sessions.map((r) => r.streams),
      [3, 1, 1, 1],
      'the server saw each stream on the connection of its key',
    );
  },
);

t.test('150 concurrent streams make two connections: 100 + 50', { timeout: 5000 }, async (t) => {
  t.plan(4);
  const server = await startServer(t);
  const { pool, open } = startPool(t);
  const key = keyFor(server.port);
  const streams = await Promise.all(Array.from({ length: 150 }, () => open(key)));
  t.equal(server.tlsConnections, 2);
  t.same(
    pool.connections(key).map((c) => c.active),
    [100, 50],
  );
  t.same(
    server.sessions.map((r) => r.streams),
    [100, 50],
    'the server agrees',
  );
  t.equal(await echo(streams[149]!, 'last'), 'last', 'the 150th stream works');
});

t.test(
  'a peer advertising 10 concurrent streams: 25 streams make three connections',
  { timeout: 5000 },
  async (t) => {
    t.plan(4);
    const server = await startServer(t, serverCert, 10);
    const { pool, open } = startPool(t);
    const key = keyFor(server.port);
    const results = await Promise.allSettled(Array.from({ length: 25 }, () => open(key)));
    const streams = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    t.equal(streams.length, 25, 'the peer refused none');
    t.equal(server.tlsConnections, 3);
    t.same(
      pool.connections(key).map((c) => c.active),
      [10, 10, 5],
    );
    t.same(
      await Promise.all(streams.map((s, i) => echo(s, `s${i}`))),
      streams.map((_, i) => `s${i}`),
      'every stream is live, none queued behind the peer limit',
    );
  },
);

t.test('50 concurrent first streams for a fresh key share one dial', { timeout: 5000 }, async (t) => {
  t.plan(4);
  const server = await startServer(t);
  const { pool, open } = startPool(t);
  const key = keyFor(server.port);
  const streams = await Promise.all(Array.from({ length: 50 }, () => open(key)));
  t.equal(streams.length, 50, 'all streams open');
  t.equal(server.tcpConnections, 1, 'one TCP connection');
  t.equal(server.tlsConnections, 1, 'one TLS handshake');
  t.same(
    pool.connections(key).map((c) => c.active),
    [50],
  );
});

t.test(
  'a CONNECT refused with REFUSED_STREAM is asked again on a new connection',
  { timeout: 5000 },
  async (t) => {
    const server = await startServer(t);
    const { open } = startPool(t);
    const key = keyFor(server.port);
    t.equal(await echo(await open(key), 'first'), 'first', 'a connection serves');
    server.refuseNext = 1;
    const stream = await open(key);
    t.equal(await echo(stream, 'again'), 'again', 'the refused CONNECT succeeded on another connection');
    t.equal(
      server.tlsConnections,
      2,
      'the refusing connection takes no new streams: a second one was opened',
    );
  },
);

t.test('a status other than 200 is a TunnelRefusedError carrying it', { timeout: 5000 }, async (t) => {
  t.plan(8);
  const server = await startServer(t);
  const { open } = startPool(t);
  const key = keyFor(server.port);

  server.status = 503;
  const unavailable = await rejection(open(key));
  t.type(unavailable, TunnelRefusedError);
  t.equal((unavailable as TunnelRefusedError).status, 503);

  server.status = 401;
  const denied = await rejection(open(key));
  t.type(denied, TunnelRefusedError);
  t.equal((denied as TunnelRefusedError).status, 401, 'a denial is told apart by its status');
  t.match(denied.message, /401/);
  t.match(denied.message, AUTHORITY, 'naming the authority asked for');

  server.status = 200;
  const ok = await open(key);
  t.equal(await echo(ok, 'after'), 'after', 'the connection still serves');
  t.equal(server.tlsConnections, 1, 'refusals do not cost the connection');
});

t.test(
  'a server presenting another identity fails the dial, naming the expected one; nothing pooled',
  { timeout: 5000 },
  async (t) => {
    t.plan(8);
    const server = await startServer(t, otherCert);
    const { pool, open } = startPool(t);
    const key = keyFor(server.port);

    const [a, b] = await Promise.all([rejection(open(key)), rejection(open(key))]);
    t.type(a, WeftError);
    t.match(a.message, SERVER, 'names the expected identity');
    t.match(a.message, OTHER, 'and the one presented');
    t.equal(b, a, 'a waiter shares the dial and its failure');
    t.equal(server.tcpConnections, 1, 'one dial for both');
    t.equal(pool.connectionCount, 0, 'nothing pooled');
    t.same(pool.connections(key), []);

    await rejection(open(key));
    t.equal(server.tcpConnections, 2, 'the failure is not cached: the next stream dials again');
  },
);

t.test(
  'GOAWAY: in-flight streams finish, the next stream dials a new connection',
  { timeout: 5000 },
  async (t) => {
    t.plan(7);
    const server = await startServer(t);
    const { pool, open } = startPool(t);
    const key = keyFor(server.port);

    const answered = [await open(key), await open(key)];
    server.holdAnswers = true;
    const pending = open(key);
    await server.until((s) => s.heldAnswers === 1);
    const old = server.sessions[0]!;
    server.goaway(old);
    server.releaseAnswers();
    const inFlight = [...answered, await pending];
    t.pass('a stream whose CONNECT was in flight at the GOAWAY is answered');

    t.same(
      await Promise.all(inFlight.map((s, i) => echo(s, `drain-${i}`))),
      ['drain-0', 'drain-1', 'drain-2'],
      'every stream the GOAWAY covered still echoes',
    );

    const fresh = await open(key);
    t.equal(server.tlsConnections, 2, 'the next stream went over a new connection');
    t.equal(server.sessions[1]?.streams, 1, 'which carries it');
    t.equal(old.streams, 3, 'the draining connection took no more');
    t.equal(await echo(fresh, 'new'), 'new');

    await Promise.all(inFlight.map(finish));
    await server.until(() => old.closed);
    t.same(
      pool.connections(key).map((c) => c.active),
      [1],
      'once drained, the old connection is gone and the new one stays',
    );
  },
);

t.test(
  'keepalive: a peer that stops answering PINGs is dropped in time and its streams fail',
  { timeout: 5000 },
  async (t) => {
    t.plan(8);
    const timings = { pingIntervalMs: 300, pingTimeoutMs: 350 };
    const server = await startServer(t);
    const relay = await TcpRelay.start(server.port);
    t.teardown(() => relay.close());
    const { open } = startPool(t, timings);
    const key = keyFor(relay.port);

    const stream = await open(key);
    t.equal(await echo(stream, 'alive'), 'alive');
    // Right after a PING reached the server (so it is answered), the peer goes silent.
    await once(server, 'ping');
    relay.silenceClients();
    const silencedAt = performance.now();
    let streamError: Error | undefined;
    stream.once('error', (err) => (streamError = err));
    const closed = new Promise((resolve) => stream.once('close', resolve));
    const stuck = rejection(open(key));

    await closed;
    const elapsed = performance.now() - silencedAt;
    t.ok(elapsed >= timings.pingTimeoutMs, `not dropped before the PING timeout (${elapsed.toFixed(0)} ms)`);
    // The next PING goes out within one interval and times out one timeout later; 100 ms of scheduling slack.
    t.ok(
      elapsed <= timings.pingIntervalMs + timings.pingTimeoutMs + 100,
      `dropped within interval + timeout (${elapsed.toFixed(0)} ms)`,
    );
    t.match(
      streamError?.message,
      /PING/,
      'the open stream failed with the keepalive error, not left hanging',
    );
    const err = await stuck;
    t.type(err, WeftError, 'a stream opened on the silent connection fails too');
    t.match(err.message, /PING/, 'naming the keepalive');

    const again = await open(key);
    t.equal(server.sessions.length, 2, 'the next stream dials a new connection');
    t.equal(await echo(again, 'back'), 'back');
  },
);

t.test(
  'idle: a connection without streams is closed after idleTimeoutMs; one with a stream is not',
  { timeout: 5000 },
  async (t) => {
    t.plan(7);
    const idleTimeoutMs = 300;
    const server = await startServer(t);
    const { pool, open } = startPool(t, { idleTimeoutMs });
    const busyKey = keyFor(server.port, WEB2);
    const idleKey = keyFor(server.port, WEB);
    const session = (identity: string): ServerSessionRecord =>
      server.sessions.find((r) => r.clientIdentity === identity)!;

    // The busy connection is opened first, so its idle timer fires before the other one's.
    const busy = await open(busyKey, web2Cert);
    const quiet = await open(idleKey);
    await finish(quiet);
    const quietAt = performance.now();

    await server.until(() => session(WEB).closed);
    const elapsed = performance.now() - quietAt;
    t.ok(elapsed >= idleTimeoutMs - 50, `closed after the idle timeout (${elapsed.toFixed(0)} ms)`);
    await open(idleKey);
    t.equal(server.tlsConnections, 3, 'the closed connection is not reused: the next stream dials');
    t.notOk(session(WEB2).closed, 'the connection with an open stream stays');
    t.equal(await echo(busy, 'still here'), 'still here');
    const more = await open(busyKey, web2Cert);
    t.same(
      pool.connections(busyKey).map((c) => c.active),
      [2],
      'and still takes new streams (it was not put to drain)',
    );
    t.equal(server.tlsConnections, 3);

    await Promise.all([finish(busy), finish(more)]);
    await server.until(() => session(WEB2).closed);
    t.pass('once its stream ends, it too closes when idle');
  },
);

t.test(
  'connect timeout: a peer that never answers TLS fails the dial after connectTimeoutMs',
  { timeout: 5000 },
  async (t) => {
    t.plan(7);
    const connectTimeoutMs = 300;
    const silent = net.createServer();
    const accepted: net.Socket[] = [];
    const closed: Promise<unknown>[] = [];
    silent.on('connection', (s) => {
      // Reads (so it notices the client leave) but never answers.
      s.resume();
      accepted.push(s);
      closed.push(once(s, 'close'));
    });
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    t.teardown(() => {
      for (const s of accepted) s.destroy();
      silent.close();
    });
    const port = (silent.address() as AddressInfo).port;
    const { pool, open } = startPool(t, { connectTimeoutMs });
    const key = keyFor(port);

    const started = performance.now();
    const [err, waiter] = await Promise.all([rejection(open(key)), rejection(open(key))]);
    const elapsed = performance.now() - started;
    t.type(err, WeftError);
    t.match(err.message, `timed out after ${connectTimeoutMs} ms`, 'says it timed out');
    t.match(err.message, `127.0.0.1:${port}`, 'names the address');
    t.ok(
      elapsed >= connectTimeoutMs - 5 && elapsed < connectTimeoutMs + 500,
      `after the timeout (${elapsed.toFixed(0)} ms)`,
    );
    t.equal(waiter, err, 'a waiter shares the failed dial');
    t.equal(pool.connectionCount, 0, 'nothing pooled');
    await Promise.all(closed);
    t.equal(accepted.length, 1, 'one socket, closed by the pool');
  },
);
