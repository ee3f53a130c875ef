// Each of the load generator's protocol clients against a server nobody here wrote (Python: asyncio echo,
// http.server, the h2 state machine, grpcio), which counts what actually arrived: the open loop sends
// exactly its schedule (warm-up included, but only the window recorded), the closed loop runs, HTTP/2 and
// gRPC `streams` really are that many streams in flight on each connection (never more), and a
// connection per request is one TCP connection per request at the server.
import t, { type Test } from 'tap';
import { grpcProtocol } from '../../../bench/load/protocols/grpc.js';
import { http1Protocol } from '../../../bench/load/protocols/http1.js';
import { http2Protocol } from '../../../bench/load/protocols/http2.js';
import { tcpProtocol } from '../../../bench/load/protocols/tcp.js';
import { runLoad, type LoadResult } from '../../../bench/load/run.js';
import type { LoadProtocol } from '../../../bench/load/types.js';
import { missingPython, skipReason } from '../../helpers/exec.js';
import { at, LOCAL, PythonPeer, scheduled, zeroErrors } from './peers.js';

t.setTimeout(90_000);

const missing = await missingPython(['h2', 'grpc']);
const skip = skipReason(t, missing);

const TCP_PAYLOAD = 64;
const BODY = 100;

interface Case {
  readonly name: 'tcp' | 'http1' | 'http2' | 'grpc';
  readonly peer: 'tcp-echo' | 'http1' | 'h2' | 'grpc';
  readonly peerArgs: readonly string[];
  /** Request bytes the server counts per request (its `bytes` stat). */
  readonly bytesPerRequest: number;
  readonly make: (port: number, streams?: number) => LoadProtocol;
}

const cases: readonly Case[] = [
  {
    name: 'tcp',
    peer: 'tcp-echo',
    peerArgs: ['--payload', String(TCP_PAYLOAD)],
    bytesPerRequest: TCP_PAYLOAD,
    make: (port) => tcpProtocol({ target: at(port), payloadBytes: TCP_PAYLOAD }),
  },
  {
    name: 'http1',
    peer: 'http1',
    peerArgs: [],
    bytesPerRequest: BODY,
    make: (port) => http1Protocol({ target: at(port), payloadBytes: BODY, path: '/load' }),
  },
  {
    name: 'http2',
    peer: 'h2',
    peerArgs: [],
    bytesPerRequest: BODY,
    make: (port, streams = 1) =>
      http2Protocol({ target: at(port), payloadBytes: BODY, path: '/load', streams }),
  },
  {
    name: 'grpc',
    peer: 'grpc',
    peerArgs: [],
    bytesPerRequest: BODY,
    make: (port, streams = 1) => grpcProtocol({ target: at(port), payloadBytes: BODY, streams }),
  },
];

/** Latency is measured from no later than the send, so every percentile is at least the service's. */
function latencyCoversService(t: Test, r: LoadResult): void {
  for (const p of ['p50', 'p90', 'p99', 'p999', 'max'] as const)
    t.ok(r.latencyUs[p] >= r.serviceUs[p], `latency ${p} ${r.latencyUs[p]} ≥ service ${r.serviceUs[p]}`);
  const curve = r.latencyCurve.map(([, us]) => us);
  t.same(
    curve,
    [...curve].sort((a, b) => a - b),
    'the percentile curve does not decrease',
  );
}

for (const c of cases) {
  t.test(`${c.name}: open loop sends exactly its schedule; the window is recorded`, { skip }, async (t) => {
    const peer = await PythonPeer.start(c.peer, c.peerArgs);
    t.teardown(() => peer.close());
    const rate = 200;
    const r = await runLoad({
      protocol: c.make(peer.port),
      connections: 2,
      durationMs: 1000,
      warmupMs: 300,
      rate,
    });
    t.same(r.errors, zeroErrors(), 'no errors');
    t.equal(r.mode, 'fixed-rate');
    t.equal(r.targetRps, rate);
    t.equal(r.protocol, c.name);
    t.equal(r.seconds, 1);
    // The schedule is exact (k / rate from the start, fired however late): far inside the ±15 % a timed
    // count would need.
    t.ok(Math.abs(r.requests - scheduled(rate, 1000)) <= 2, `${r.requests} requests recorded ≈ 200`);
    t.ok(Math.abs(r.achievedRps - rate) <= 2, `achieved ${r.achievedRps} rps`);
    const s = await peer.statsWhen((s) => s.requests >= scheduled(rate, 1300) - 2);
    t.ok(
      Math.abs(s.requests - scheduled(rate, 1300)) <= 2,
      `the server saw ${s.requests} ≈ 260 requests: the warm-up's 60 were sent, not recorded`,
    );
    t.equal(s.bytes, s.requests * c.bytesPerRequest, 'every request carried its body');
    if (c.name === 'http1' || c.name === 'http2') {
      t.same(s.paths, ['/load'], 'the path asked for');
      t.same(s.authorities, [`${LOCAL}:${peer.port}`], 'Host / :authority: the target by default');
    }
    if (c.name === 'grpc') t.equal(s.peerCount, 2, 'two connections (grpc peers)');
    else t.equal(s.connections, 2, 'two connections, kept alive');
    t.ok(r.latencyUs.p50 > 0 && r.serviceUs.p50 > 0, 'latencies recorded');
    latencyCoversService(t, r);
  });

  t.test(`${c.name}: closed loop runs at its own pace`, { skip }, async (t) => {
    const peer = await PythonPeer.start(c.peer, c.peerArgs);
    t.teardown(() => peer.close());
    const r = await runLoad({ protocol: c.make(peer.port), connections: 2, durationMs: 500, warmupMs: 100 });
    t.same(r.errors, zeroErrors(), 'no errors');
    t.equal(r.mode, 'closed-loop');
    t.equal(r.targetRps, null);
    t.equal(r.depth, 1);
    t.ok(r.requests > 0, `${r.requests} requests`);
    t.equal(r.achievedRps, Math.round(r.requests / 0.5));
    const s = await peer.stats();
    t.ok(s.requests > r.requests, `the server saw ${s.requests} (warm-up included) > ${r.requests}`);
    t.equal(c.name === 'grpc' ? s.peerCount : s.connections, 2, 'two connections');
    // Closed loop: latency is from the send (the schedule is the send, read a few µs earlier).
    latencyCoversService(t, r);
    t.ok(
      r.sendLagUs.p50 < 1000,
      `closed loop: no schedule to be late against (lag p50 ${r.sendLagUs.p50} µs)`,
    );
  });

  t.test(`${c.name}: a new connection per request`, { skip }, async (t) => {
    const peer = await PythonPeer.start(c.peer, c.peerArgs);
    t.teardown(() => peer.close());
    const rate = 50;
    const r = await runLoad({
      protocol: c.make(peer.port),
      connections: 2,
      durationMs: 1000,
      warmupMs: 200,
      rate,
      connectionPerRequest: true,
    });
    t.same(r.errors, zeroErrors(), 'no errors');
    t.equal(r.connectionPerRequest, true);
    t.ok(Math.abs(r.requests - 50) <= 1, `${r.requests} requests recorded`);
    const total = scheduled(rate, 1200);
    const s = await peer.statsWhen((s) => s.requests >= total - 1 && s.open === 0);
    t.ok(Math.abs(s.requests - total) <= 1, `the server saw ${s.requests} ≈ ${total} requests`);
    if (c.name === 'grpc') {
      t.equal(s.peerCount, s.requests, 'one client connection (peer) per call');
      t.equal(s.maxPerPeer, 1, 'no connection carried a second call');
    } else {
      t.equal(s.connections, s.requests, 'one TCP connection per request');
      t.equal(s.maxPerConnection, 1, 'no connection carried a second request');
      t.equal(s.open, 0, 'each connection was closed after its request');
    }

    const closed = await runLoad({
      protocol: c.make(peer.port),
      connections: 2,
      durationMs: 300,
      warmupMs: 0,
      connectionPerRequest: true,
    });
    t.same(closed.errors, zeroErrors(), 'closed loop: no errors');
    t.ok(closed.requests > 0, `closed loop: ${closed.requests} requests`);
    const after = await peer.statsWhen((s) => s.open === 0);
    // gRPC peers are known by address: a client port the kernel hands out again (the server closed
    // first, so the port is free at once) shows two connections as one peer, in about 1 run in 5 at
    // this many calls. Nearly as many peers as calls still tells a connection per call from reuse.
    if (c.name === 'grpc')
      t.ok(
        after.peerCount >= after.requests * 0.9 && after.maxPerPeer <= 2,
        `closed loop: one connection per call (${after.peerCount} peers for ${after.requests} calls, at most ${after.maxPerPeer} per peer)`,
      );
    else {
      t.equal(after.connections, after.requests, 'closed loop: one connection per request');
      t.equal(after.maxPerConnection, 1);
    }
  });
}

for (const c of cases.filter((c) => c.name === 'http2' || c.name === 'grpc')) {
  t.test(
    `${c.name}: --streams M puts M streams in flight per connection, never more`,
    { skip },
    async (t) => {
      // The server holds every request 30 ms, so the streams a connection has open overlap.
      const peer = await PythonPeer.start(c.peer, ['--delay-ms', '30']);
      t.teardown(() => peer.close());
      const r = await runLoad({
        protocol: c.make(peer.port, 8),
        connections: 2,
        durationMs: 600,
        warmupMs: 0,
      });
      t.same(r.errors, zeroErrors(), 'closed loop: no errors');
      t.equal(r.depth, 8, 'the result reports 8 streams per connection');
      const s = await peer.stats();
      t.equal(c.name === 'grpc' ? s.peerCount : s.connections, 2, 'two connections');
      t.equal(s.maxConcurrent, 8, 'a connection had 8 requests in flight at once, never more');
      t.ok(
        s.maxConcurrentTotal > 8 && s.maxConcurrentTotal <= 16,
        `${s.maxConcurrentTotal} in flight over both connections`,
      );
      // A request takes ≥ 30 ms, so 16 loops can complete at most ~16 / 30 ms.
      t.ok(r.requests <= Math.ceil((16 * 600) / 30) + 16, `${r.requests} requests: bounded by the hold`);

      // Open loop faster than 4 streams can serve: the excess waits in order for a free stream.
      const peer2 = await PythonPeer.start(c.peer, ['--delay-ms', '60']);
      t.teardown(() => peer2.close());
      const open = await runLoad({
        protocol: c.make(peer2.port, 4),
        connections: 1,
        durationMs: 300,
        warmupMs: 0,
        rate: 100,
      });
      t.same(open.errors, zeroErrors(), 'open loop: no errors');
      t.ok(Math.abs(open.requests - 30) <= 1, `open loop: all ${open.requests} scheduled requests done`);
      const s2 = await peer2.stats();
      t.equal(s2.maxConcurrent, 4, 'open loop: at most 4 streams in flight on the connection');
      // 29 requests through 4 streams of ≥ 60 ms: one stream served 8 of them, the last ending ≥ 480 ms in,
      // though it was scheduled by 280 ms: the latency from the schedule includes the queueing.
      t.ok(open.latencyUs.max >= 190_000, `latency max ${open.latencyUs.max} µs includes the queueing`);
    },
  );
}

t.test('a source address, a path and an authority reach the server', { skip }, async (t) => {
  // Any 127/8 address is this host's; the server sees which one the client bound.
  const source = '127.0.0.2';
  const options = { localAddress: source, path: '/p/q?r=1', authority: 'svc.example:8443' };
  for (const [kind, make] of [
    ['tcp-echo', (port: number) => tcpProtocol({ target: at(port), payloadBytes: 8, localAddress: source })],
    ['http1', (port: number) => http1Protocol({ target: at(port), payloadBytes: 0, ...options })],
    ['h2', (port: number) => http2Protocol({ target: at(port), payloadBytes: 0, streams: 2, ...options })],
  ] as const) {
    const peer = await PythonPeer.start(kind, kind === 'tcp-echo' ? ['--payload', '8'] : []);
    t.teardown(() => peer.close());
    const r = await runLoad({ protocol: make(peer.port), connections: 2, durationMs: 200, warmupMs: 0 });
    t.same(r.errors, zeroErrors(), `${kind}: no errors`);
    const s = await peer.stats();
    t.same(s.clients, [source], `${kind}: connections from ${source}`);
    if (kind !== 'tcp-echo') {
      t.same(s.paths, [options.path], `${kind}: the path`);
      t.same(s.authorities, [options.authority], `${kind}: Host / :authority`);
    }
  }
  t.throws(
    () => grpcProtocol({ target: at(1), payloadBytes: 1, streams: 1, localAddress: source }),
    /a source address cannot be chosen/,
    'grpc: refused up front, not silently ignored',
  );
});
