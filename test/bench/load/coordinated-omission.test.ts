// Coordinated omission, shown both ways. A server that stalls every answer for 300 ms once in a run: the
// open loop keeps sending on schedule through the stall (the server holds dozens of requests, not one per
// connection), and the latency from the schedule counts the stall for each of them, so p99 shows it; the
// service time (from the hand-over) shows it too, the generator's own lateness does not. The closed loop,
// for contrast, stops sending during the stall. A generator that stalls itself (its event loop blocked)
// shows up as lateness instead, still in the latency. Requests scheduled in the warm-up are not counted.
import t, { type Test } from 'tap';
import { http1Protocol } from '../../../bench/load/protocols/http1.js';
import { tcpProtocol } from '../../../bench/load/protocols/tcp.js';
import { runLoad, type LoadProgress, type LoadResult } from '../../../bench/load/run.js';
import type { LoadProtocol } from '../../../bench/load/types.js';
import { missingPython, skipReason } from '../../helpers/exec.js';
import { at, PythonPeer, scheduled, zeroErrors } from './peers.js';

t.setTimeout(60_000);

const skip = skipReason(t, await missingPython(['h2']));

const STALL_MS = 300;
const RATE = 200;
const PAYLOAD = 64;

function latencyCoversService(t: Test, r: LoadResult): void {
  for (const p of ['p50', 'p90', 'p99', 'p999', 'max'] as const)
    t.ok(r.latencyUs[p] >= r.serviceUs[p], `latency ${p} ${r.latencyUs[p]} ≥ service ${r.serviceUs[p]}`);
}

const stalls: readonly {
  name: string;
  peer: 'tcp-echo' | 'http1';
  args: readonly string[];
  make: (port: number) => LoadProtocol;
}[] = [
  {
    name: 'tcp',
    peer: 'tcp-echo',
    args: ['--payload', String(PAYLOAD)],
    make: (port) => tcpProtocol({ target: at(port), payloadBytes: PAYLOAD }),
  },
  {
    name: 'http1',
    peer: 'http1',
    args: [],
    make: (port) => http1Protocol({ target: at(port), payloadBytes: 0, path: '/' }),
  },
];

for (const s of stalls) {
  t.test(
    `${s.name}: a 300 ms server stall is counted for every request scheduled during it`,
    { skip },
    async (t) => {
      // 0.3 s warm-up (60 requests), then 2 s at 200 rps; the stall starts at the 200th request (~0.7 s
      // into the window).
      const peer = await PythonPeer.start(s.peer, [
        ...s.args,
        '--stall-after',
        '200',
        '--stall-ms',
        String(STALL_MS),
      ]);
      t.teardown(() => peer.close());
      const r = await runLoad({
        protocol: s.make(peer.port),
        connections: 2,
        durationMs: 2000,
        warmupMs: 300,
        rate: RATE,
      });
      t.same(r.errors, zeroErrors(), 'no errors');
      t.ok(Math.abs(r.requests - scheduled(RATE, 2000)) <= 2, `${r.requests} requests: the schedule held`);
      const seen = await peer.stats();
      if (s.name === 'tcp')
        // ~60 requests are due in 300 ms: the open loop sent them although the ones before were unanswered
        // (a closed loop would have sent at most one per connection).
        t.ok(seen.held >= 30, `the server received ${seen.held} requests during the stall`);
      // HTTP/1.1 without pipelining has one request per connection at the server: the rest wait their
      // turn in the client, from their scheduled start all the same.
      else t.ok(seen.held >= 1 && seen.held <= 2, `one request per connection was held (${seen.held})`);
      // Requests scheduled during the stall waited from their scheduled start until it ended: uniformly
      // 0-300 ms for ~15 % of the run. p99 (the worst 4 of 400) and p95 (the worst 20) must show it.
      t.ok(r.latencyUs.p99 >= 200_000, `latency p99 ${r.latencyUs.p99} µs ≥ 200 ms`);
      const p95 = r.latencyCurve.find(([p]) => p === 95)?.[1] ?? 0;
      t.ok(p95 >= 100_000, `latency p95 ${p95} µs ≥ 100 ms: the stall is in many requests, not a few`);
      t.ok(r.latencyUs.max >= (STALL_MS - 10) * 1000, `latency max ${r.latencyUs.max} µs: the whole stall`);
      // The requests were handed over on time: the stall is the server's, so it is in the service time
      // (from the hand-over) and not in the generator's lateness.
      t.ok(r.serviceUs.p99 >= 150_000, `service p99 ${r.serviceUs.p99} µs includes the stall`);
      t.ok(
        r.sendLagUs.p99 < (STALL_MS / 2) * 1000,
        `generator lateness p99 ${r.sendLagUs.p99} µs is not the stall`,
      );
      latencyCoversService(t, r);
    },
  );
}

t.test('closed loop, for contrast: it stops sending while the server stalls', { skip }, async (t) => {
  const peer = await PythonPeer.start('tcp-echo', [
    '--payload',
    String(PAYLOAD),
    '--stall-after',
    '200',
    '--stall-ms',
    String(STALL_MS),
  ]);
  t.teardown(() => peer.close());
  const r = await runLoad({
    protocol: tcpProtocol({ target: at(peer.port), payloadBytes: PAYLOAD }),
    connections: 2,
    durationMs: 1000,
    warmupMs: 0,
  });
  t.same(r.errors, zeroErrors(), 'no errors');
  const seen = await peer.stats();
  t.ok(seen.held >= 1 && seen.held <= 2, `the server received only ${seen.held} request(s) during the stall`);
  // The stall is in the latency of the requests that were in flight (from the send), and only theirs.
  t.ok(r.latencyUs.max >= (STALL_MS - 10) * 1000, `latency max ${r.latencyUs.max} µs`);
});

t.test('a generator that stalls itself: lateness, counted in the latency', { skip }, async (t) => {
  const peer = await PythonPeer.start('tcp-echo', ['--payload', String(PAYLOAD)]);
  t.teardown(() => peer.close());
  // 0.7 s after the start (0.5 s into the window) the event loop is blocked for 300 ms: the pacer's
  // worker keeps time, and everything due meanwhile is fired late, in order, as soon as it can be.
  const block = setTimeout(() => {
    const until = performance.now() + STALL_MS;
    while (performance.now() < until);
  }, 700);
  t.teardown(() => clearTimeout(block));
  const rate = RATE;
  const r = await runLoad({
    protocol: tcpProtocol({ target: at(peer.port), payloadBytes: PAYLOAD }),
    connections: 2,
    durationMs: 1500,
    warmupMs: 200,
    rate,
  });
  t.same(r.errors, zeroErrors(), 'no errors');
  t.ok(
    Math.abs(r.requests - scheduled(rate, 1500)) <= 2,
    `${r.requests} requests: none of those due during the block was dropped`,
  );
  t.ok(r.sendLagUs.max >= (STALL_MS - 50) * 1000, `lateness max ${r.sendLagUs.max} µs: the block`);
  const lag90 = r.sendLagUs.p90;
  t.ok(lag90 >= 50_000, `lateness p90 ${lag90} µs: many requests were late, not one`);
  t.ok(r.latencyUs.max >= r.sendLagUs.max, 'the lateness is in the latency (from the schedule)');
  t.ok(r.latencyUs.p90 >= lag90, 'latency p90 ≥ lateness p90');
  // Handed over late but answered at once: the service time does not carry the block.
  t.ok(r.serviceUs.p90 < lag90, `service p90 ${r.serviceUs.p90} µs < lateness p90 ${lag90} µs`);
});

t.test('the warm-up is sent but not counted: its errors neither', { skip }, async (t) => {
  // The first 20 answers are 500s, all to requests scheduled in the first 200 ms of a 1.2 s warm-up.
  const peer = await PythonPeer.start('http1', ['--status', '500', '--status-first', '20']);
  t.teardown(() => peer.close());
  const progress: LoadProgress[] = [];
  const r = await runLoad({
    protocol: http1Protocol({ target: at(peer.port), payloadBytes: 0, path: '/' }),
    connections: 2,
    durationMs: 1500,
    warmupMs: 1200,
    rate: 100,
    onProgress: (p) => progress.push(p),
  });
  t.same(r.errors, zeroErrors(), 'the warm-up’s 500s are not counted');
  t.ok(Math.abs(r.requests - 150) <= 1, `${r.requests} requests: the window only`);
  const seen = await peer.stats();
  t.ok(Math.abs(seen.requests - 270) <= 2, `the server saw ${seen.requests}: warm-up included`);
  t.equal(seen.statuses['500'], 20, 'the server did answer 20 with 500');
  // Progress comes once a second: the first during the warm-up, a later one in the window.
  t.ok(progress.length >= 2, `${progress.length} progress reports`);
  t.equal(progress[0]?.warmingUp, true, 'the first report is in the warm-up');
  t.equal(progress[0]?.completed, 0, 'nothing is counted during the warm-up');
  t.ok(
    progress.slice(1).some((p) => !p.warmingUp && p.completed > 0 && Math.round(p.totalMs) === 2700),
    'a later report is in the window, with its completions',
  );
});
