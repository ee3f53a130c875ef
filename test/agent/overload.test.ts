// Overload and exhaustion at a real agent (SOCKS5 entry, pod addresses on the loopback device of a
// network namespace of the test's own, passthrough to a TCP echo server): one pod's flood is refused at
// its own bound while another pod is still served; the agent bound holds for all; with the process out
// of file descriptors, new connections are refused cleanly, the open ones keep working, and service
// comes back when descriptors free up. Root: the file runs itself again inside that namespace.
import t, { type Test } from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startAgent, type AgentHandle } from '../../agent/main.js';
import { openFileLimit } from '../../agent/connection-budget.js';
import { LocalCaClient } from '../helpers/local-ca-client.js';
import { netnsUnavailable } from '../../lab/netns.js';
import { skipReason } from '../helpers/exec.js';

const FLOODER = '10.250.0.2';
const NEIGHBOUR = '10.250.0.3';
/** The destination: outside the mesh (passthrough), not loopback (the agent never proxies to that). */
const ECHO = '10.250.0.9';
const LOOPBACK = { host: '127.0.0.1', port: 0 };
const IN_NETNS = 'WEFT_OVERLOAD_NETNS';

if (process.env[IN_NETNS] === undefined) {
  const unavailable = await netnsUnavailable();
  if (unavailable !== undefined) {
    t.test('overload', { skip: skipReason(t, unavailable) }, () => undefined);
  } else {
    const ns = `weft-ovl-${process.pid}`;
    const ip = (...args: string[]) => execFileSync('ip', args);
    ip('netns', 'add', ns);
    try {
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      for (const addr of [FLOODER, NEIGHBOUR, ECHO]) ip('-n', ns, 'addr', 'add', `${addr}/32`, 'dev', 'lo');
      const run = spawnSync(
        'ip',
        ['netns', 'exec', ns, process.execPath, ...process.execArgv, fileURLToPath(import.meta.url)],
        { stdio: 'inherit', env: { ...process.env, [IN_NETNS]: ns } },
      );
      process.exitCode = run.status ?? 1;
    } finally {
      ip('netns', 'del', ns);
    }
  }
} else {
  await overloadTests();
  // The parent waits for this process: once the tests are done, a connection the fd-starved run left
  // half set up must not keep it alive.
  t.teardown(() => void setTimeout(() => process.exit(), 1000).unref());
}

const MANIFESTS = `
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { istio.io/dataplane-mode: ambient } }
---
apiVersion: v1
kind: Pod
metadata: { name: flooder, namespace: shop, uid: u-flooder, labels: { app: flooder } }
spec: { serviceAccountName: flooder, nodeName: node-1 }
status: { phase: Running, podIP: ${FLOODER} }
---
apiVersion: v1
kind: Pod
metadata: { name: neighbour, namespace: shop, uid: u-neighbour, labels: { app: neighbour } }
spec: { serviceAccountName: neighbour, nodeName: node-1 }
status: { phase: Running, podIP: ${NEIGHBOUR} }
`;

async function echoServer(t: Test): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    s.pipe(s);
  });
  server.listen(0, ECHO);
  await once(server, 'listening');
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return (server.address() as net.AddressInfo).port;
}

async function agentWith(t: Test, limits: { perAgent: number; perWorkload: number }): Promise<AgentHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-overload-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'mesh.yaml'), MANIFESTS);
  const agent = await startAgent({
    nodeName: 'node-1',
    trustDomain: 'cluster.local',
    configSource: `file:${dir}`,
    ca: { address: '127.0.0.1:1', rootCertFile: '/nonexistent', tokenFile: '/nonexistent' } as never,
    caClient: await LocalCaClient.create(),
    certTtlSeconds: 3600,
    adminListen: LOOPBACK,
    metricsListen: LOOPBACK,
    readinessListen: null,
    hboneListen: null,
    socksListen: LOOPBACK,
    capture: null,
    connectionLimits: limits,
  });
  t.teardown(() => agent.close());
  return agent;
}

/**
 * A SOCKS5 CONNECT from `from` to the echo server's `port` through the agent, then one echoed round trip:
 * the open socket, or undefined when the agent refused or reset it.
 */
async function open(agent: AgentHandle, from: string, port: number): Promise<net.Socket | undefined> {
  const socket = net.connect({ ...agent.socksAddress!, localAddress: from });
  socket.on('error', () => undefined);
  let buffered = Buffer.alloc(0);
  const onData = (d: Buffer) => (buffered = Buffer.concat([buffered, d]));
  socket.on('data', onData);
  const waitFor = async (n: number): Promise<boolean> => {
    for (let i = 0; i < 200; i++) {
      if (buffered.length >= n) return true;
      if (socket.destroyed) return false;
      await sleep(5);
    }
    return false;
  };
  try {
    await once(socket, 'connect');
  } catch {
    return undefined;
  }
  socket.write(Buffer.from([5, 1, 0]));
  if (!(await waitFor(2))) return end(socket);
  buffered = Buffer.alloc(0);
  socket.write(Buffer.from([5, 1, 0, 1, ...ECHO.split('.').map(Number), port >> 8, port & 0xff]));
  if (!(await waitFor(10)) || buffered[1] !== 0) return end(socket);
  buffered = Buffer.alloc(0);
  socket.write('ping');
  if (!(await waitFor(4)) || buffered.toString() !== 'ping') return end(socket);
  socket.off('data', onData);
  return socket;
}

function end(socket: net.Socket): undefined {
  socket.destroy();
  return undefined;
}

async function roundTrip(socket: net.Socket): Promise<boolean> {
  if (socket.destroyed) return false;
  const got = new Promise<boolean>((resolve) => {
    socket.once('data', (d: Buffer) => resolve(d.toString() === 'again'));
    socket.once('close', () => resolve(false));
    setTimeout(() => resolve(false), 2000);
  });
  socket.write('again');
  return got;
}

async function metric(agent: AgentHandle, name: string): Promise<string[]> {
  const res = await fetch(`http://127.0.0.1:${agent.metricsAddress!.port}/metrics`);
  return (await res.text()).split('\n').filter((l) => l.startsWith(name));
}

async function overloadTests(): Promise<void> {
  t.test('a flooding pod is held at its own bound; its neighbour is served', async (t) => {
    const port = await echoServer(t);
    const agent = await agentWith(t, { perAgent: 60, perWorkload: 20 });
    const flood: (net.Socket | undefined)[] = [];
    for (let i = 0; i < 50; i++) flood.push(await open(agent, FLOODER, port));
    const accepted = flood.filter((s) => s !== undefined);
    t.equal(accepted.length, 20, 'the flooder got its 20 connections and no more');
    const neighbour: (net.Socket | undefined)[] = [];
    for (let i = 0; i < 10; i++) neighbour.push(await open(agent, NEIGHBOUR, port));
    t.equal(
      neighbour.filter((s) => s !== undefined).length,
      10,
      'every connection of the neighbour went through',
    );
    const trips = await Promise.all(accepted.map(roundTrip));
    t.ok(
      trips.every((ok) => ok),
      'the flooder’s accepted connections still work',
    );
    t.match(
      (await metric(agent, 'weft_connections_refused_total')).join('\n'),
      /reason="workload_limit",direction="outbound"} 30/,
      'the 30 refusals counted by reason',
    );
    // Freed places are taken again.
    for (const s of accepted.slice(0, 5)) s?.destroy();
    await sleep(100);
    const again = await open(agent, FLOODER, port);
    t.ok(again, 'a place freed by a closed connection is given again');
    for (const s of [...flood, ...neighbour, again]) s?.destroy();
  });

  t.test('the agent bound holds across pods', async (t) => {
    const port = await echoServer(t);
    const agent = await agentWith(t, { perAgent: 25, perWorkload: 20 });
    const a: (net.Socket | undefined)[] = [];
    for (let i = 0; i < 20; i++) a.push(await open(agent, FLOODER, port));
    const b: (net.Socket | undefined)[] = [];
    for (let i = 0; i < 10; i++) b.push(await open(agent, NEIGHBOUR, port));
    t.equal(a.filter(Boolean).length, 20);
    t.equal(b.filter(Boolean).length, 5, 'the agent bound (25) left five for the neighbour');
    t.match((await metric(agent, 'weft_connections_open')).join('\n'), /weft_connections_open 25/);
    for (const s of [...a, ...b]) s?.destroy();
  });

  t.test(
    'out of file descriptors: refused cleanly, open connections unharmed, service comes back',
    { skip: process.platform !== 'linux' ? 'needs prlimit on Linux' : false },
    async (t) => {
      const port = await echoServer(t);
      const agent = await agentWith(t, { perAgent: 100_000, perWorkload: 100_000 });
      const before = openFileLimit();
      t.ok(before !== undefined, 'the open-file limit is readable');
      const held: net.Socket[] = [];
      for (let i = 0; i < 10; i++) {
        const s = await open(agent, FLOODER, port);
        if (s) held.push(s);
      }
      t.equal(held.length, 10, 'ten connections open before the limit');
      // This process is the agent (and the test's clients and echo server): lower its own soft limit to
      // a little above what it uses now, so the flood below runs it out of descriptors.
      const inUse = Number(
        execFileSync('sh', ['-c', `ls /proc/${process.pid}/fd | wc -l`])
          .toString()
          .trim(),
      );
      const hard = execFileSync('prlimit', [
        '--pid',
        String(process.pid),
        '--nofile',
        '--noheadings',
        '-o',
        'HARD',
      ])
        .toString()
        .trim();
      execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${inUse + 40}:${hard}`]);
      t.teardown(() => {
        execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${before ?? 1024}:${hard}`]);
      });
      const flood: (net.Socket | undefined)[] = [];
      let failedToDial = 0;
      for (let i = 0; i < 60; i++) {
        try {
          flood.push(await open(agent, NEIGHBOUR, port));
        } catch {
          failedToDial++; // the test's own side ran out of descriptors
        }
      }
      const through = flood.filter(Boolean).length;
      t.ok(
        through < 60,
        `not every connection got through (${through} did, ${failedToDial} not even dialled)`,
      );
      const trips = await Promise.all(held.map(roundTrip));
      t.ok(
        trips.every((ok) => ok),
        'the connections opened before still work',
      );
      for (const s of flood) s?.destroy();
      execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${before ?? 1024}:${hard}`]);
      await sleep(200);
      const after = await open(agent, NEIGHBOUR, port);
      t.ok(after, 'new connections go through again once descriptors are free');
      after?.destroy();
      for (const s of held) s.destroy();
    },
  );
}
