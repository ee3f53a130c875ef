// Failures counted by kind, against real servers that fail on purpose (Python peers, and a raw socket for
// a malformed HTTP answer): refused → connect, a reset mid-request → reset, HTTP 500 and gRPC error
// statuses → status, an answer that does not match → protocol, no answer at all → timeout after the drain.
// In every open-loop run each scheduled request of the window is accounted for exactly once.
import t, { type Test } from 'tap';
import net, { type AddressInfo } from 'node:net';
import { grpcProtocol } from '../../../bench/load/protocols/grpc.js';
import { http1Protocol } from '../../../bench/load/protocols/http1.js';
import { http2Protocol } from '../../../bench/load/protocols/http2.js';
import { tcpProtocol } from '../../../bench/load/protocols/tcp.js';
import { runLoad, type LoadOptions, type LoadResult } from '../../../bench/load/run.js';
import type { LoadErrorKind, LoadProtocol } from '../../../bench/load/types.js';
import { missingPython, skipReason } from '../../helpers/exec.js';
import { accounted, at, LOCAL, PythonPeer, refusedPort, scheduled, zeroErrors } from './peers.js';

t.setTimeout(90_000);

const missing = await missingPython(['h2', 'grpc']);
const skip = skipReason(t, missing);

type Name = 'tcp' | 'http1' | 'http2' | 'grpc';
const make: Record<Name, (port: number, streams?: number) => LoadProtocol> = {
  tcp: (port) => tcpProtocol({ target: at(port), payloadBytes: 64 }),
  http1: (port) => http1Protocol({ target: at(port), payloadBytes: 0, path: '/' }),
  http2: (port, streams = 1) => http2Protocol({ target: at(port), payloadBytes: 0, path: '/', streams }),
  grpc: (port, streams = 1) => grpcProtocol({ target: at(port), payloadBytes: 64, streams }),
};

/** A short open loop: 100 rps for 0.5 s after 0.1 s of warm-up, two connections. */
const RATE = 100;
const WINDOW_MS = 500;
const N = scheduled(RATE, WINDOW_MS);
function openLoop(protocol: LoadProtocol, extra: Partial<LoadOptions> = {}): Promise<LoadResult> {
  return runLoad({ protocol, connections: 2, durationMs: WINDOW_MS, warmupMs: 100, rate: RATE, ...extra });
}

/** Every request of the window failed, and all of them with `kind`. */
function allFailedWith(t: Test, r: LoadResult, kind: LoadErrorKind): void {
  t.equal(r.requests, 0, `${r.protocol}: nothing succeeded`);
  t.ok(Math.abs(r.errors[kind] - N) <= 1, `${r.protocol}: ${r.errors[kind]} ${kind} errors ≈ ${N}`);
  t.same({ ...r.errors, [kind]: 0 }, zeroErrors(), `${r.protocol}: no other kind`);
  t.equal(r.errorCount, r.errors[kind]);
}

t.test('connect: a refused port', { skip }, async (t) => {
  const port = await refusedPort();
  // Connections are opened before the clock starts: a target that refuses fails the run, at once.
  for (const name of ['tcp', 'http1', 'http2'] as const)
    await t.rejects(openLoop(make[name](port)), { code: 'ECONNREFUSED' }, `${name}: the run fails`);
  const started = Date.now();
  await t.rejects(openLoop(make.grpc(port)), 'grpc: the run fails');
  // grpc-js would otherwise wait out its 5 s ready deadline on a port that refuses at once.
  t.ok(Date.now() - started < 4000, `grpc: the refusal is reported without waiting for the deadline`);

  // A connection per request: each request's own connection is refused, counted as `connect`.
  const runs = await Promise.all(
    (['tcp', 'http1', 'http2', 'grpc'] as const).map((name) =>
      openLoop(make[name](port), { connectionPerRequest: true }),
    ),
  );
  for (const r of runs) allFailedWith(t, r, 'connect');
});

t.test('connect and reset: the server goes away in the middle of the run', { skip }, async (t) => {
  // After 100 requests the echo server stops listening and resets every connection: requests in flight
  // are `reset`, and the runner's attempts to reconnect are refused (`connect`).
  const peer = await PythonPeer.start('tcp-echo', ['--payload', '64', '--die-after', '100']);
  t.teardown(() => peer.close());
  const r = await runLoad({
    protocol: make.tcp(peer.port),
    connections: 2,
    durationMs: 1000,
    warmupMs: 0,
    rate: 200,
  });
  t.ok(r.requests > 50 && r.requests < 100, `${r.requests} answered before it went away`);
  t.ok(r.errors.connect > 0, `${r.errors.connect} connect errors after`);
  t.equal(r.errors.timeout, 0, 'nothing left hanging');
  t.equal(r.errors.status + r.errors.protocol, 0);
  t.ok(Math.abs(accounted(r) - 200) <= 2, `every scheduled request accounted for (${accounted(r)})`);

  // Closed loop: after a failure a connection pauses 10 ms, so a dead target is not hammered.
  const peer2 = await PythonPeer.start('tcp-echo', ['--payload', '64', '--die-after', '50']);
  t.teardown(() => peer2.close());
  const closed = await runLoad({
    protocol: make.tcp(peer2.port),
    connections: 2,
    durationMs: 500,
    warmupMs: 0,
  });
  t.ok(closed.errors.connect > 0, `closed loop: ${closed.errors.connect} connect errors`);
  t.ok(
    closed.errors.connect <= 2 * (500 / 10 + 2),
    `closed loop: at most one attempt per connection per 10 ms (${closed.errors.connect})`,
  );
});

t.test('reset: the connection or the stream is reset mid-request', { skip }, async (t) => {
  const peers = {
    tcp: await PythonPeer.start('tcp-echo', ['--payload', '64', '--reset', 'connection']),
    http1: await PythonPeer.start('http1', ['--reset', 'connection']),
    http2: await PythonPeer.start('h2', ['--reset', 'connection']),
    // grpc-js against the h2 peer: HTTP/2 is up (the channel is ready), then a call's connection breaks.
    grpc: await PythonPeer.start('h2', ['--reset', 'connection']),
    http2Stream: await PythonPeer.start('h2', ['--reset', 'stream']),
  };
  t.teardown(() => Promise.all(Object.values(peers).map((p) => p.close())));
  const [tcp, http1, http2, grpc, stream] = await Promise.all([
    openLoop(make.tcp(peers.tcp.port)),
    openLoop(make.http1(peers.http1.port)),
    openLoop(make.http2(peers.http2.port)),
    openLoop(make.grpc(peers.grpc.port)),
    openLoop(make.http2(peers.http2Stream.port)),
  ]);
  for (const r of [tcp, http1, http2, grpc, stream]) allFailedWith(t, r!, 'reset');
  t.ok((await peers.tcp.stats()).connections > 2, 'tcp: the runner reconnected after each reset');
  t.equal((await peers.http2Stream.stats()).connections, 2, 'http2: a stream reset leaves the session up');
});

t.test(
  'reset: requests queued behind a gRPC call that breaks its connection fail with it',
  { skip },
  async (t) => {
    // grpcio fails each call with UNAVAILABLE after 100 ms (taken, like a dropped connection, to mean the
    // connection is gone); one connection of one stream, so ~10 requests queue behind each call. They must
    // fail with it, not wait on a connection nothing will use again until the run gives up on them.
    const peer = await PythonPeer.start('grpc', ['--abort', 'UNAVAILABLE', '--delay-ms', '100']);
    t.teardown(() => peer.close());
    const r = await runLoad({
      protocol: make.grpc(peer.port),
      connections: 1,
      durationMs: WINDOW_MS,
      warmupMs: 0,
      rate: RATE,
    });
    allFailedWith(t, r, 'reset');
  },
);

t.test('reset: an HTTP/2 answer cut short by RST_STREAM is not a success', { skip }, async (t) => {
  // :status 200 and part of the body (content-length promises more), then RST_STREAM: NO_ERROR (0),
  // CANCEL (8) and INTERNAL_ERROR (2) all leave the response incomplete.
  for (const code of ['0', '8', '2']) {
    const peer = await PythonPeer.start('h2', ['--reset', 'after-headers', '--reset-code', code]);
    t.teardown(() => peer.close());
    const r = await openLoop(make.http2(peer.port));
    allFailedWith(t, r, 'reset');
  }
});

t.test('status: HTTP 500 and gRPC error statuses', { skip }, async (t) => {
  const peers = {
    http1: await PythonPeer.start('http1', ['--status', '500']),
    http2: await PythonPeer.start('h2', ['--status', '500']),
    grpc: await PythonPeer.start('grpc', ['--abort', 'INVALID_ARGUMENT']),
    grpc2: await PythonPeer.start('grpc', ['--abort', 'RESOURCE_EXHAUSTED']),
  };
  t.teardown(() => Promise.all(Object.values(peers).map((p) => p.close())));
  const runs = await Promise.all([
    openLoop(make.http1(peers.http1.port)),
    openLoop(make.http2(peers.http2.port, 4)),
    openLoop(make.grpc(peers.grpc.port)),
    openLoop(make.grpc(peers.grpc2.port, 4)),
  ]);
  for (const r of runs) allFailedWith(t, r, 'status');
  // A status is an answer: the connections stay up.
  t.equal((await peers.http1.stats()).connections, 2, 'http1: still the same two connections');
  t.equal((await peers.http2.stats()).connections, 2, 'http2: still the same two connections');
  t.equal((await peers.grpc.stats()).peerCount, 2, 'grpc: still the same two connections');
});

t.test('protocol: answers that do not parse or do not match', { skip }, async (t) => {
  // An "HTTP" server that answers with something else.
  const garbage = net.createServer((s) => {
    s.on('error', () => undefined);
    s.once('data', () => s.end('NOT HTTP AT ALL\r\n\r\n'));
  });
  await new Promise<void>((resolve) => garbage.listen(0, LOCAL, resolve));
  t.teardown(() => new Promise<void>((resolve) => garbage.close(() => resolve())));
  const peer = await PythonPeer.start('grpc', ['--wrong-length']);
  t.teardown(() => peer.close());
  const [http1, grpc] = await Promise.all([
    openLoop(make.http1((garbage.address() as AddressInfo).port)),
    openLoop(make.grpc(peer.port)),
  ]);
  allFailedWith(t, grpc, 'protocol');
  t.equal(http1.requests, 0, 'http1: nothing succeeded');
  t.ok(http1.errors.protocol > 0, `http1: ${http1.errors.protocol} protocol errors`);
  // A request queued behind the one that got garbage fails with its connection: a reset, not a protocol
  // error of its own.
  t.equal(http1.errors.protocol + http1.errors.reset, N, 'http1: the rest failed with the connection');
  t.equal(http1.errors.connect + http1.errors.status + http1.errors.timeout, 0);
});

t.test('timeout: requests of the window never answered count after the drain', { skip }, async (t) => {
  // The one test that waits out the runner's 5 s drain: all protocols at once.
  const peers = {
    tcp: await PythonPeer.start('tcp-echo', ['--payload', '64', '--never-answer']),
    http1: await PythonPeer.start('http1', ['--never-answer']),
    http2: await PythonPeer.start('h2', ['--never-answer']),
    grpc: await PythonPeer.start('grpc', ['--never-answer']),
    tcpPerRequest: await PythonPeer.start('tcp-echo', ['--payload', '64', '--never-answer']),
  };
  t.teardown(() => Promise.all(Object.values(peers).map((p) => p.close())));
  const [tcp, http1, http2, grpc, perRequest] = await Promise.all([
    openLoop(make.tcp(peers.tcp.port)),
    openLoop(make.http1(peers.http1.port)),
    openLoop(make.http2(peers.http2.port, 4)),
    openLoop(make.grpc(peers.grpc.port, 4)),
    openLoop(make.tcp(peers.tcpPerRequest.port), { connectionPerRequest: true }),
  ]);
  // The warm-up's 10 requests were in flight too, but only the window's 50 are counted.
  for (const r of [tcp, http1, http2, grpc, perRequest]) allFailedWith(t, r!, 'timeout');

  // And the runner let go of them: the servers see their connections closed (gRPC: calls cancelled).
  for (const [name, peer] of [
    ['tcp', peers.tcp],
    ['http1', peers.http1],
    ['http2', peers.http2],
    ['tcp, a connection per request', peers.tcpPerRequest],
  ] as const) {
    const s = await peer.statsWhen((s) => s.open === 0);
    t.equal(s.open, 0, `${name}: all ${s.connections} connections closed after the run`);
  }
  const g = await peers.grpc.statsWhen((s) => s.cancelled === s.requests);
  t.equal(g.cancelled, g.requests, `grpc: all ${g.requests} calls the server held were cancelled`);
});
