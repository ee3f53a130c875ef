// agent/drain.ts over real loopback sockets: an idle connection is ended (FIN) once idle, a busy one
// runs to the deadline and is ended in its first quiet gap, one whose application ignores the FIN is
// reset at the end, one waiting for an answer is never ended with a FIN (only reset at the end), and one
// that ends by itself is counted as such.
import { once } from 'node:events';
import net from 'node:net';
import t from 'tap';
import { ConnectionDrain, exchangeControl, type DrainTimings } from '../../agent/drain.js';
import { pump } from '../../core/copy.js';
import { componentLogger } from '../../core/log.js';

const TIMINGS: DrainTimings = {
  deadlineMs: 600,
  idleMs: 150,
  sweepMs: 10,
  lastCallQuietMs: 5,
  lastCallMs: 400,
  lastCallSweepMs: 2,
  lastCallHoldMs: 20,
};

interface Pair {
  /** The side the drain holds (the agent's application-facing socket). */
  readonly held: net.Socket;
  /** The application. */
  readonly app: net.Socket;
  /** How the application saw its connection end: 'end' (FIN), 'reset', or undefined while open. */
  ended(): 'end' | 'reset' | undefined;
}

/** `deaf`: indexes of applications that never close their side after our FIN. */
async function pairs(n: number, deaf: readonly number[] = []): Promise<{ list: Pair[]; close(): void }> {
  const held: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    // Flowing, as the agent's piped sockets are (a paused socket never sees the peer's FIN).
    s.on('data', () => undefined);
    held.push(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const apps: net.Socket[] = [];
  for (let i = 0; i < n; i++) {
    const app = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    await once(app, 'connect');
    apps.push(app);
  }
  while (held.length < n) await new Promise((r) => setTimeout(r, 5));
  // Accept order follows connect order on loopback; pair by the client's port to be sure.
  const list = apps.map((app, i): Pair => {
    const h = held.find((s) => s.remotePort === app.localPort)!;
    let how: 'end' | 'reset' | undefined;
    app.on('end', () => {
      how ??= 'end';
      if (!deaf.includes(i)) app.end();
    });
    // A reset after a FIN still counts as a reset.
    app.on('error', () => (how = 'reset'));
    app.on('data', () => undefined);
    return { held: h, app, ended: () => how };
  });
  return { list, close: () => server.close() };
}

t.test('idle, busy-with-gaps, deaf and self-ending connections', async (t) => {
  const { list, close } = await pairs(5, [2]);
  t.teardown(close);
  const [idle, gappy, deaf, selfEnding, waiting] = list as [Pair, Pair, Pair, Pair, Pair];
  // A request the server is still answering (a long poll): quiet, but never ended with a FIN.
  waiting.app.write('GET /long-poll');
  // A keep-alive connection with a request every 20 ms, answered as it arrives: never idle 150 ms.
  gappy.held.on('data', () => {
    if (gappy.held.writable) gappy.held.write('200');
  });
  const gappyTimer = setInterval(() => {
    if (!gappy.app.destroyed && gappy.app.writable) gappy.app.write('GET');
  }, 20);
  t.teardown(() => clearInterval(gappyTimer));
  setTimeout(() => selfEnding.app.end(), 50);
  selfEnding.held.on('end', () => selfEnding.held.end());

  const sockets = new Set(list.map((p) => p.held));
  for (const s of sockets) s.once('close', () => sockets.delete(s));
  const appSockets = () => [...sockets].map((socket) => ({ socket, peer: 'client' as const }));
  const started = Date.now();
  const report = await new ConnectionDrain({ appSockets, log: componentLogger('test.drain') }, TIMINGS).run();
  await new Promise((r) => setTimeout(r, 50));

  t.equal(idle.ended(), 'end', 'the idle connection got a FIN');
  t.equal(gappy.ended(), 'end', 'the keep-alive connection got a FIN in a gap after the deadline');
  t.equal(deaf.ended(), 'end', 'the application that ignored the FIN got it…');
  t.ok(deaf.held.destroyed, '…and its connection was reset at the end');
  t.equal(selfEnding.ended(), 'end', 'the application ended that one itself (and got the FIN back)');
  t.equal(report.closedIdle, 2, 'two ended idle');
  t.equal(report.closedAtLastCall, 1, 'one closed at the last call');
  t.equal(
    waiting.ended(),
    'reset',
    'the connection waiting for its answer was not ended, only reset at the end',
  );
  t.equal(report.reset, 2, 'two reset (the deaf one, the waiting one)');
  t.equal(report.endedByThemselves, 1, 'one ended by itself');
  const took = Date.now() - started;
  t.ok(
    took >= TIMINGS.deadlineMs && took < TIMINGS.deadlineMs + TIMINGS.lastCallMs + 300,
    `bounded by the deadline and the last call (${took} ms)`,
  );
});

t.test('no connections: the drain ends at once', async (t) => {
  const started = Date.now();
  const report = await new ConnectionDrain(
    { appSockets: () => [], log: componentLogger('test.drain') },
    TIMINGS,
  ).run();
  t.equal(report.reset + report.closedIdle + report.closedAtLastCall, 0);
  t.ok(Date.now() - started < 100, 'did not wait for the deadline');
});

t.test('a pumped keep-alive connection is ended between two exchanges, never inside one', async (t) => {
  // The server answers each request in two parts 12 ms apart, longer than the 5 ms of quiet that picks a
  // moment at the last call; the client sends its next request 8 ms after an answer. The drain must not
  // end the connection inside an answer, and a request that crosses the end must not reach the server.
  let delivered = 0;
  const server = net.createServer((s) => {
    s.on('data', (chunk: Buffer) => {
      for (let i = 0; i < chunk.toString().split('Q').length - 1; i++) {
        delivered++;
        s.write('A1');
        setTimeout(() => s.writable && s.write('A2\n'), 12);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const upstreamPort = (server.address() as net.AddressInfo).port;
  let appSocket:
    { socket: net.Socket; peer: 'client'; exchange: ReturnType<typeof exchangeControl> } | undefined;
  const agent = net.createServer({ allowHalfOpen: true }, (socket) => {
    const upstream = net.connect({ port: upstreamPort, host: '127.0.0.1', allowHalfOpen: true });
    upstream.once('connect', () => {
      const handle = pump(socket, upstream, () => undefined);
      appSocket = { socket, peer: 'client', exchange: exchangeControl(handle, socket) };
    });
  });
  agent.listen(0, '127.0.0.1');
  await once(agent, 'listening');
  t.teardown(() => {
    server.close();
    agent.close();
  });

  const client = net.connect({ port: (agent.address() as net.AddressInfo).port, host: '127.0.0.1' });
  await once(client, 'connect');
  let answers = 0;
  let partial = '';
  let outstanding = false;
  let ended: 'fin' | 'reset' | undefined;
  const ask = (): void => {
    if (ended || client.destroyed) return;
    outstanding = true;
    client.write('Q');
  };
  client.on('data', (chunk: Buffer) => {
    partial += chunk.toString();
    while (partial.includes('\n')) {
      t.equal(partial.slice(0, partial.indexOf('\n')), 'A1A2', 'a whole answer');
      partial = partial.slice(partial.indexOf('\n') + 1);
      answers++;
      outstanding = false;
      setTimeout(ask, 8);
    }
  });
  const closed = new Promise<void>((resolve) => {
    client.once('end', () => {
      ended ??= 'fin';
      resolve();
    });
    client.once('error', () => {
      ended = 'reset';
      resolve();
    });
  });
  ask();
  while (appSocket === undefined) await new Promise((r) => setTimeout(r, 5));
  const held = appSocket;
  const report = await new ConnectionDrain(
    { appSockets: () => (held.socket.destroyed ? [] : [held]), log: componentLogger('test.drain') },
    TIMINGS,
  ).run();
  await closed;
  t.equal(ended, 'fin', 'the client got a FIN, not a reset');
  t.equal(partial, '', 'no answer was cut');
  t.equal(report.closedAtLastCall, 1, 'ended at the last call');
  t.ok(answers > 10, `requests were answered during the drain (${answers})`);
  t.equal(
    delivered,
    answers,
    `every request the server got was answered whole (${outstanding ? 'the last one, crossing the end, never reached it' : 'none crossed the end'})`,
  );
});
