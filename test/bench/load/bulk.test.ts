// Bulk TCP: the bytes runBulk reports are the bytes that arrived, as counted by a discard server nobody
// here wrote (Python asyncio) and, separately, by watching the sockets of the bench's own discard server.
// A server that answers with anything but an 8-byte count fails the run.
import t from 'tap';
import type net from 'node:net';
import type { AddressInfo } from 'node:net';
import { runBulk } from '../../../bench/load/bulk.js';
import { startDiscardServer } from '../../../bench/tcp-servers.js';
import { missingPython, skipReason } from '../../helpers/exec.js';
import { at, LOCAL, PythonPeer } from './peers.js';

t.setTimeout(30_000);

const skip = skipReason(t, await missingPython(['asyncio']));

t.test('the byte count is the Python discard server’s', { skip }, async (t) => {
  const peer = await PythonPeer.start('discard');
  t.teardown(() => peer.close());
  const r = await runBulk({ target: at(peer.port), durationMs: 500, streams: 3 });
  const seen = await peer.statsWhen((s) => s.open === 0);
  t.equal(seen.connections, 3, 'three streams, three connections');
  t.equal(seen.open, 0, 'all closed');
  t.ok(r.bytes > 0, `${r.bytes} bytes`);
  t.equal(r.bytes, seen.bytes, 'the bytes reported are the bytes the server received');
  t.equal(r.streams, 3);
  t.ok(r.seconds >= 0.5, `${r.seconds} s: at least the duration`);
  const gbit = (r.bytes * 8) / r.seconds / 1e9;
  // Rounded to 0.01 from the unrounded time: within what the rounding of seconds can move it.
  t.ok(Math.abs(r.gbitPerSecond - gbit) <= 0.02 + gbit * 0.02, `${r.gbitPerSecond} Gbit/s ≈ bytes / seconds`);
});

t.test('the byte count is what the bench’s own discard server’s sockets received', async (t) => {
  const server = await startDiscardServer({ host: LOCAL, port: 0 });
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  let observed = 0;
  let connections = 0;
  server.on('connection', (s: net.Socket) => {
    connections++;
    s.on('data', (d: Buffer) => (observed += d.length));
  });
  const r = await runBulk({
    target: at((server.address() as AddressInfo).port),
    durationMs: 300,
    streams: 2,
  });
  t.equal(connections, 2);
  t.ok(r.bytes > 0, `${r.bytes} bytes`);
  t.equal(r.bytes, observed, 'reported = received');
});

t.test('an answer that is not an 8-byte count fails the run', { skip }, async (t) => {
  // An echo server answers with everything it got.
  const peer = await PythonPeer.start('tcp-echo');
  t.teardown(() => peer.close());
  await t.rejects(runBulk({ target: at(peer.port), durationMs: 50, streams: 1 }), {
    message: /bulk: the server answered \d+ bytes, not a count/,
  });
});
