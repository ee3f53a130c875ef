// Following targets that come and go (real admin servers on Unix sockets): a target that appears after
// the follow started is read from the follow's start (events it had before are not shown), and one
// whose server restarts is read again without repeating what was already shown.
import t from 'tap';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createAdminServer, listenHttpUnix } from '../../core/http-endpoints.js';
import { FlowRing } from '../../core/flows/ring.js';
import type { FlowEvent } from '../../core/flows/event.js';
import { followFlows, RESCAN_MS } from '../../observe/follow.js';
import type { FlowTarget } from '../../observe/targets.js';

function record(ring: FlowRing, port: number): void {
  ring.record({
    time: Date.now(),
    type: 'close',
    path: 'tunnel',
    protocol: 'tcp',
    source: { ip: '10.0.0.1', port: 1 },
    destination: { ip: '10.0.0.2', port },
    verdict: 'ALLOWED',
    flags: '-',
  });
}

async function serve(ring: FlowRing, path: string): Promise<http.Server> {
  const server = createAdminServer({ configDump: () => ({}), certificates: () => ({}), flows: ring });
  await listenHttpUnix(server, path);
  return server;
}

function stop(server: http.Server): void {
  server.close();
  server.closeAllConnections();
}

async function until(what: string, check: () => boolean, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!check() && Date.now() < deadline) await sleep(25);
  return check();
}

t.test('late and restarted targets are followed, from the start, without repeats', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-follow-'));
  const a = new FlowRing({ reporter: { kind: 'agent', name: 'a' } });
  const b = new FlowRing({ reporter: { kind: 'waypoint', name: 'ns/b' } });
  const servers: http.Server[] = [];
  const targets: FlowTarget[] = [{ kind: 'unix', name: 'a', path: join(dir, 'a.sock') }];
  servers.push(await serve(a, targets[0]!.kind === 'unix' ? targets[0]!.path : ''));
  const controller = new AbortController();
  t.teardown(() => {
    controller.abort();
    for (const s of servers) stop(s);
    rmSync(dir, { recursive: true, force: true });
  });
  record(a, 1); // before the follow: not shown (last 0)
  record(b, 2); // before the follow, on a target not yet known: not shown either
  const seen: FlowEvent[] = [];
  const failures: string[] = [];
  const done = followFlows(
    () => [...targets],
    { filter: {}, last: 0 },
    {
      line: (line) => void (line.type !== 'lost' && seen.push(line)),
      failed: (target, err) => failures.push(`${target.name}: ${err.message}`),
    },
    controller.signal,
    (err) => failures.push(err.message),
  );
  await sleep(200);
  record(a, 3);
  t.ok(await until('a:3', () => seen.some((e) => e.destination.port === 3)), 'a live event');

  // b appears: its events since the follow started come, its older one does not.
  record(b, 4);
  servers.push(await serve(b, join(dir, 'b.sock')));
  targets.push({ kind: 'unix', name: 'b', path: join(dir, 'b.sock') });
  t.ok(
    await until('b:4', () => seen.some((e) => e.destination.port === 4), RESCAN_MS * 3),
    'the late target is found by the rescan, with what it recorded since the follow began',
  );
  record(b, 5);
  t.ok(await until('b:5', () => seen.some((e) => e.destination.port === 5)), 'and followed live');

  // a's server goes and comes back on the same socket: read again, nothing repeated, nothing missed.
  stop(servers[0]!);
  await sleep(100);
  record(a, 6); // while no server listens: in the ring, shown once it is back
  servers[0] = await serve(a, join(dir, 'a.sock'));
  record(a, 7);
  t.ok(await until('a:7', () => seen.some((e) => e.destination.port === 7), RESCAN_MS * 4), 'a read again');
  controller.abort();
  await done;
  t.same(
    seen.map((e) => e.destination.port),
    [3, 4, 5, 6, 7],
    'every event after the start, once, and none from before',
  );
  t.ok(
    failures.length <= 1,
    `a failing target is reported once, not at every rescan (${failures.join('; ')})`,
  );
});
