// The flow ring: bounded whatever its readers do, readers told what they lost, a reader whose sink is
// full is not written to until it drains, non-following readers end, the reader limit holds.
import t from 'tap';
import { setImmediate as tick } from 'node:timers/promises';
import {
  FlowRing,
  FlowReadersExhausted,
  type FlowEventInput,
  type FlowSink,
} from '../../../core/flows/ring.js';
import { parseFlowLine, type FlowEvent } from '../../../core/flows/event.js';

function input(port: number, verdict: FlowEvent['verdict'] = 'ALLOWED'): FlowEventInput {
  return {
    time: 1_700_000_000_000 + port,
    type: 'close',
    direction: 'inbound',
    path: 'tunnel',
    protocol: 'tcp',
    source: { ip: '10.0.0.1', port: 40000, namespace: 'a', pod: 'client' },
    destination: { ip: '10.0.0.2', port, namespace: 'b', pod: 'server' },
    verdict,
    flags: '-',
  };
}

/** A sink that accepts `room` writes, then reports itself full until drained; keeps the lines apart. */
class TestSink implements FlowSink {
  lines: string[] = [];
  writes: string[] = [];
  constructor(public room = Infinity) {}
  write(chunk: string): boolean {
    this.writes.push(chunk);
    for (const line of chunk.split('\n')) if (line !== '') this.lines.push(line);
    return this.writes.length < this.room;
  }
  parsed() {
    return this.lines.map((l) => parseFlowLine(l));
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await tick();
}

t.test('holds at most capacity events, numbered in order', async (t) => {
  const ring = new FlowRing({ reporter: { kind: 'agent', name: 'n1' }, capacity: 8 });
  for (let i = 0; i < 20; i++) ring.record(input(i));
  t.equal(ring.size, 8);
  t.equal(ring.recorded, 20);
  t.same(
    ring.snapshot().map((e) => e.seq),
    [12, 13, 14, 15, 16, 17, 18, 19],
  );
  t.same(
    ring.snapshot((e) => e.destination.port % 2 === 0).map((e) => e.seq),
    [12, 14, 16, 18],
  );
  t.throws(() => new FlowRing({ reporter: { kind: 'agent', name: 'n1' }, capacity: 0 }), /positive integer/);
});

t.test('a non-following reader gets the last N that pass its filter, then ends', async (t) => {
  const ring = new FlowRing({ reporter: { kind: 'agent', name: 'n1' }, capacity: 100 });
  for (let i = 0; i < 10; i++) ring.record(input(i, i % 3 === 0 ? 'DENIED' : 'ALLOWED'));
  const sink = new TestSink();
  let ended = false;
  const reader = ring.read({
    last: 6,
    follow: false,
    filter: (e) => e.verdict === 'DENIED',
    sink,
    onEnd: () => (ended = true),
  });
  ring.record(input(99, 'DENIED')); // after the request: not part of it
  await settle();
  t.ok(ended, 'ended');
  t.ok(reader.closed);
  t.equal(ring.readerCount, 0);
  t.same(
    sink.parsed().map((e) => (e as FlowEvent).seq),
    [6, 9],
    'of the last 6 (seq 4..9), the denied ones',
  );
});

t.test('a follower gets new events; one that is full is paused, then skips what it lost', async (t) => {
  const ring = new FlowRing({ reporter: { kind: 'agent', name: 'n1' }, capacity: 16 });
  const sink = new TestSink(1);
  const reader = ring.read({ last: 0, follow: true, filter: () => true, sink });
  for (let i = 0; i < 10; i++) ring.record(input(i));
  await settle();
  t.equal(sink.writes.length, 1, 'the events of one turn go out in one write; then the sink is full');
  t.equal(sink.lines.length, 10);
  for (let i = 10; i < 100; i++) ring.record(input(i));
  await settle();
  t.equal(sink.writes.length, 1, 'nothing written while paused, however many events arrive');
  sink.room = Infinity;
  reader.resume();
  await settle();
  const lines = sink.parsed();
  t.match(lines[10], { type: 'lost', count: 100 - 16 - 10, reporter: { kind: 'agent', name: 'n1' } });
  t.same(
    lines.slice(11).map((e) => (e as FlowEvent).seq),
    Array.from({ length: 16 }, (_, i) => 84 + i),
    'then the 16 the ring still holds',
  );
  ring.record(input(100));
  await settle();
  t.equal((sink.parsed().at(-1) as FlowEvent).seq, 100, 'and keeps following');
  reader.close();
  t.equal(ring.readerCount, 0);
});

t.test('writes are joined lines of bounded size', async (t) => {
  const ring = new FlowRing({ reporter: { kind: 'agent', name: 'n1' }, capacity: 4096 });
  for (let i = 0; i < 1000; i++) ring.record(input(i));
  const sink = new TestSink();
  ring.read({ last: 1000, follow: false, filter: () => true, sink });
  for (let i = 0; i < 40; i++) await tick();
  t.equal(sink.lines.length, 1000);
  t.ok(sink.writes.length > 1 && sink.writes.length < 100, `${sink.writes.length} writes for 1000 events`);
  const longest = Math.max(...sink.writes.map((w) => w.length));
  t.ok(longest < 16 * 1024 + 1024, `no write much over 16 KiB (${longest})`);
  t.ok(
    sink.writes.every((w) => w.endsWith('\n')),
    'every write ends on a line boundary',
  );
});

t.test('one reader per event-loop turn gets at most a batch, so others are served alongside', async (t) => {
  const ring = new FlowRing({ reporter: { kind: 'agent', name: 'n1' }, capacity: 4096 });
  for (let i = 0; i < 2000; i++) ring.record(input(i));
  const a = new TestSink();
  const b = new TestSink();
  ring.read({ last: 2000, follow: true, filter: () => true, sink: a });
  ring.read({ last: 2000, follow: true, filter: () => true, sink: b });
  await tick();
  await tick();
  t.ok(a.lines.length > 0 && a.lines.length < 2000, `first turn wrote part (${a.lines.length})`);
  t.equal(a.lines.length, b.lines.length, 'both readers progressed alike');
  await settle();
  await settle();
  t.equal(a.lines.length, 2000);
  t.equal(b.lines.length, 2000);
});

t.test('readers beyond the limit are refused', async (t) => {
  const ring = new FlowRing({ reporter: { kind: 'waypoint', name: 'ns/wp-0' }, capacity: 4, maxReaders: 2 });
  const r1 = ring.read({ last: 0, follow: true, filter: () => true, sink: new TestSink() });
  ring.read({ last: 0, follow: true, filter: () => true, sink: new TestSink() });
  t.throws(
    () => ring.read({ last: 0, follow: true, filter: () => true, sink: new TestSink() }),
    FlowReadersExhausted,
  );
  r1.close();
  t.doesNotThrow(() => ring.read({ last: 0, follow: true, filter: () => true, sink: new TestSink() }));
});

t.test('an event is serialized once for any number of readers', async (t) => {
  const ring = new FlowRing({ reporter: { kind: 'agent', name: 'n1' }, capacity: 4 });
  const sinks = [new TestSink(), new TestSink(), new TestSink()];
  for (const sink of sinks) ring.read({ last: 0, follow: true, filter: () => true, sink });
  ring.record(input(1));
  await settle();
  t.ok(
    sinks.every((s) => s.lines[0] === sinks[0]!.lines[0]),
    'the same string object, not equal copies',
  );
  t.match(parseFlowLine(sinks[0]!.lines[0]!), { seq: 0, reporter: { name: 'n1' }, destination: { port: 1 } });
});
