// `weft observe --config kubernetes:KUBECONFIG` against the API server double: it finds the running agent
// pods (the chart's labels, in the weft namespace) and waypoint pods (any namespace), reads each one's
// `/flows` from a real admin server through a port-forward (v4.channel.k8s.io, client-node's PortForward),
// passes filters through, follows live, and reports an unreachable pod while printing the others. First,
// the port-forward framing both ways, on the raw WebSocket and through observe/port-forward.ts.
import t from 'tap';
import { once } from 'node:events';
import type { Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { createRequire } from 'node:module';
import { KubeConfig } from '@kubernetes/client-node';
import { observeCommand, type ObserveIo } from '../../cli/observe.js';
import type { FlowEvent } from '../../core/flows/event.js';
import { FlowRing } from '../../core/flows/ring.js';
import { createAdminServer, listenHttp } from '../../core/http-endpoints.js';
import { KubernetesPortForwarder } from '../../observe/port-forward.js';
import {
  kubeconfigFor,
  kubeconfigText,
  PORT_FORWARD_PROTOCOL,
  startKubeApiServer,
  type KubeApiServer,
  type KubeObject,
} from '../helpers/kube-api-server.js';
import { connection, PODS, request } from './flows.js';

/** Bounds every wait: an event that never comes fails the test instead of hanging it. */
const WAIT_MS = 5000;
/** The bound for a live event to reach a follower. */
const FOLLOW_LATENCY_MS = 1000;

interface Teardowns {
  teardown(fn: () => unknown): void;
}

// ---- pods as the chart makes them ---------------------------------------------------------------

function chartLabels(component: string): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'weft',
    'app.kubernetes.io/instance': 'weft',
    'app.kubernetes.io/component': component,
    'app.kubernetes.io/version': '0.1.0',
    'app.kubernetes.io/managed-by': 'Helm',
    'app.kubernetes.io/part-of': 'weft',
    'helm.sh/chart': 'weft-0.1.0',
    'istio.io/dataplane-mode': 'none',
  };
}

function pod(
  namespace: string,
  name: string,
  labels: Record<string, string>,
  options: { node?: string; phase?: string } = {},
): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels },
    spec: { nodeName: options.node ?? 'node-1', containers: [{ name: 'main' }] },
    status: { phase: options.phase ?? 'Running', podIP: '10.1.0.9' },
  };
}

const AGENT = pod('weft-system', 'weft-agent-a1b2c', chartLabels('agent'), { node: 'node-1' });
/** Running, but nothing listens where its port 15000 is mapped. */
const DEAD_AGENT = pod('weft-system', 'weft-agent-d3e4f', chartLabels('agent'), { node: 'node-2' });
const WAYPOINT = pod('shop', PODS.waypoint.pod, {
  ...chartLabels('waypoint'),
  'gateway.networking.k8s.io/gateway-name': 'waypoint',
});
/** Mapped to a live admin server too: only the selection keeps them out. */
const IGNORED = [
  pod('weft-system', 'weft-agent-p7q8r', chartLabels('agent'), { node: 'node-3', phase: 'Pending' }),
  pod('weft-system', 'weft-ca-7c9d8', chartLabels('ca')),
  pod('other', 'weft-agent-x9y8z', chartLabels('agent')),
  // An Istio gateway: the gateway-name label, but Envoy's admin on 15000.
  pod('istio-ingress', 'gateway-istio-5b6c7', { 'gateway.networking.k8s.io/gateway-name': 'gateway' }),
  pod(
    'shop',
    'waypoint-old-s1t2u',
    { ...chartLabels('waypoint'), 'gateway.networking.k8s.io/gateway-name': 'waypoint' },
    { phase: 'Succeeded' },
  ),
];

// ---- agents and waypoints: real admin servers over rings ----------------------------------------

const AGENT_EVENTS = [
  ...connection(PODS.frontend, PODS.web1, 8080, { sides: 'inbound' }),
  ...connection(PODS.old, PODS.web1, 8080, { sides: 'inbound', verdict: 'DENIED', sourceIdentity: null }),
];
const WAYPOINT_EVENTS = [
  request(PODS.frontend, PODS.web0, { path: '/api/users' }),
  request(PODS.frontend, PODS.web0, { path: '/admin', status: 403, verdict: 'DENIED' }),
];

/** An admin server on loopback over a ring holding `events` (reported as `reporter`). */
async function adminServer(
  t: Teardowns,
  reporter: FlowEvent['reporter'],
  events: readonly FlowEvent[],
): Promise<{ ring: FlowRing; port: number }> {
  const ring = new FlowRing({ reporter });
  for (const { seq: _seq, reporter: _reporter, ...input } of events) ring.record(input);
  const server = createAdminServer({ configDump: () => ({}), certificates: () => ({}), flows: ring });
  const { port } = await listenHttp(server, { host: '127.0.0.1', port: 0 });
  t.teardown(() => closeServer(server));
  return { ring, port };
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A loopback port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const server = createTcpServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface Cluster {
  readonly api: KubeApiServer;
  readonly kubeconfig: string;
  readonly agentRing: FlowRing;
  /** Every port-forward the API server was asked for, as `NS/POD`. */
  readonly forwarded: string[];
}

async function cluster(t: Teardowns): Promise<Cluster> {
  const api = await startKubeApiServer(t, [AGENT, DEAD_AGENT, WAYPOINT, ...IGNORED]);
  const agent = await adminServer(t, { kind: 'agent', name: 'node-1' }, AGENT_EVENTS);
  const waypoint = await adminServer(
    t,
    { kind: 'waypoint', name: `shop/${PODS.waypoint.pod}` },
    WAYPOINT_EVENTS,
  );
  api.forwardPodPort('weft-system', AGENT.metadata.name, 15000, { port: agent.port });
  api.forwardPodPort('weft-system', DEAD_AGENT.metadata.name, 15000, { port: await closedPort() });
  api.forwardPodPort('shop', WAYPOINT.metadata.name, 15000, { port: waypoint.port });
  for (const ignored of IGNORED)
    api.forwardPodPort(ignored.metadata.namespace ?? '', ignored.metadata.name, 15000, { port: agent.port });
  const forwarded: string[] = [];
  api.on('request', (line) => {
    const match = /^GET \/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/portforward\?/.exec(line);
    if (match !== null) forwarded.push(`${match[1]}/${match[2]}`);
  });
  return { api, kubeconfig: kubeconfigFor(t, api), agentRing: agent.ring, forwarded };
}

/** Captures what a command prints; `lines()` are its JSON lines so far. */
class CapturedIo implements ObserveIo {
  stdout = '';
  readonly stderr: string[] = [];
  readonly #stop = new AbortController();
  readonly interrupt = this.#stop.signal;
  #waiting: (() => void)[] = [];

  out(text: string): void {
    this.stdout += text;
    for (const wake of this.#waiting) wake();
  }

  err(line: string): void {
    this.stderr.push(line);
  }

  events(): FlowEvent[] {
    return this.stdout
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as FlowEvent);
  }

  /** Resolves once the printed events satisfy `holds`; rejects after WAIT_MS. */
  until(what: string, holds: (events: FlowEvent[]) => boolean): Promise<void> {
    if (holds(this.events())) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting = this.#waiting.filter((w) => w !== wake);
        reject(new Error(`timed out waiting until ${what}; printed:\n${this.stdout}`));
      }, WAIT_MS);
      const wake = (): void => {
        if (!holds(this.events())) return;
        clearTimeout(timer);
        this.#waiting = this.#waiting.filter((w) => w !== wake);
        resolve();
      };
      this.#waiting.push(wake);
    });
  }

  stop(): void {
    this.#stop.abort();
  }
}

const reporters = (events: FlowEvent[]): string[] =>
  [...new Set(events.map((e) => `${e.reporter.kind} ${e.reporter.name}`))].sort();

// ---- the port-forward protocol ------------------------------------------------------------------

/** The members of the `ws` package's client used here (it ships no types). */
interface RawWebSocket {
  readonly protocol: string;
  send(data: Buffer): void;
  on(event: 'message', listener: (data: Buffer) => void): this;
  once(event: 'open', listener: () => void): this;
  once(event: 'close', listener: (code: number) => void): this;
  once(event: 'error', listener: (err: Error) => void): this;
}
const { WebSocket } = createRequire(import.meta.url)('ws') as {
  WebSocket: new (url: string, protocols: string[]) => RawWebSocket;
};

/** A raw forward: every frame it received, in order, and how it closed. */
async function rawForward(
  api: KubeApiServer,
  path: string,
): Promise<{ ws: RawWebSocket; frames: Buffer[]; closed: Promise<number> }> {
  const ws = new WebSocket(`${api.url.replace('http:', 'ws:')}${path}`, [
    'v5.channel.k8s.io',
    PORT_FORWARD_PROTOCOL,
  ]);
  const frames: Buffer[] = [];
  ws.on('message', (data) => frames.push(data));
  const closed = new Promise<number>((resolve) => ws.once('close', resolve));
  await new Promise<void>((resolve, reject) => ws.once('open', resolve).once('error', reject));
  return { ws, frames, closed };
}

function configFor(api: KubeApiServer): KubeConfig {
  const config = new KubeConfig();
  config.loadFromString(kubeconfigText(api.url));
  return config;
}

/** The payloads of `frames` as text, or a note naming the first frame on another channel. */
function dataOn(channel: number, frames: readonly Buffer[]): string {
  const stray = frames.find((f) => f[0] !== channel);
  if (stray !== undefined) return `a frame on channel ${String(stray[0])}`;
  return Buffer.concat(frames.map((f) => f.subarray(1))).toString();
}

/** A TCP server that answers its first chunk with `reply(chunk)` and ends the connection. */
async function replyOnce(t: Teardowns, reply: (chunk: Buffer) => Buffer): Promise<number> {
  const server = createTcpServer((socket) =>
    socket.once('data', (chunk: Buffer) => socket.end(reply(chunk))),
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  return (server.address() as AddressInfo).port;
}

t.test(
  'port-forward framing: the port first on each channel, data on 0, client frames by channel',
  async (t) => {
    t.plan(5);
    const api = await startKubeApiServer(t, [pod('shop', 'echo-0', { app: 'echo' })]);
    const port = await replyOnce(t, (chunk) => Buffer.from(chunk.toString().toUpperCase()));
    api.forwardPodPort('shop', 'echo-0', 9000, { port });
    const { ws, frames, closed } = await rawForward(
      api,
      '/api/v1/namespaces/shop/pods/echo-0/portforward?ports=9000',
    );
    t.equal(ws.protocol, PORT_FORWARD_PROTOCOL, 'the server picks v4 of what the client offers');
    ws.send(Buffer.from([0, ...Buffer.from('ping')]));
    t.equal(await closed, 1000, 'closed normally once the pod end closed');
    t.same(frames[0], Buffer.from([0, 0x28, 0x23]), 'channel 0 opens with port 9000, little-endian');
    t.same(frames[1], Buffer.from([1, 0x28, 0x23]), 'channel 1 opens with port 9000 too');
    t.same(dataOn(0, frames.slice(2)), 'PING', 'the reply, on channel 0 only');
  },
);

t.test(
  'port-forward framing: a port nothing listens on is an error on channel 1, then the close',
  async (t) => {
    t.plan(3);
    const api = await startKubeApiServer(t, [pod('shop', 'echo-0', { app: 'echo' })]);
    const { frames, closed } = await rawForward(
      api,
      '/api/v1/namespaces/shop/pods/echo-0/portforward?ports=9001',
    );
    t.equal(await closed, 1000);
    t.same(frames.slice(0, 2), [Buffer.from([0, 0x29, 0x23]), Buffer.from([1, 0x29, 0x23])]);
    t.match(
      dataOn(1, frames.slice(2)),
      /^error forwarding port 9001 to pod echo-0, uid [-0-9a-f]+: .*connection refused$/,
    );
  },
);

t.test('PortForwardSocket: bytes both ways through client-node, and the end', async (t) => {
  t.plan(2);
  const api = await startKubeApiServer(t, [pod('shop', 'echo-0', { app: 'echo' })]);
  const port = await replyOnce(t, (chunk) => Buffer.concat([Buffer.from('echo:'), chunk]));
  api.forwardPodPort('shop', 'echo-0', 9000, { port });
  const socket = new KubernetesPortForwarder(configFor(api)).open('shop', 'echo-0', 9000);
  const closed = once(socket, 'close');
  socket.write('hello');
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
  await once(socket, 'end');
  t.equal(received, 'echo:hello');
  await closed;
  t.ok(socket.destroyed, 'closed once the pod end closed');
});

t.test(
  'PortForwardSocket: more than its buffers hold arrives whole (the reader paces the forward)',
  async (t) => {
    t.plan(1);
    const payload = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < payload.length; i++) payload[i] = i % 251;
    const api = await startKubeApiServer(t, [pod('shop', 'bulk-0', { app: 'bulk' })]);
    const server = createTcpServer((socket) => socket.end(payload)).listen(0, '127.0.0.1');
    await once(server, 'listening');
    t.teardown(() => new Promise((resolve) => server.close(resolve)));
    api.forwardPodPort('shop', 'bulk-0', 9000, { port: (server.address() as AddressInfo).port });
    const socket = new KubernetesPortForwarder(configFor(api)).open('shop', 'bulk-0', 9000);
    const chunks: Buffer[] = [];
    // for await reads one chunk at a time: the socket's buffer fills and pauses the WebSocket between reads.
    for await (const chunk of socket) chunks.push(chunk as Buffer);
    t.ok(Buffer.concat(chunks).equals(payload), `${payload.length} bytes, in order`);
  },
);

t.test('PortForwardSocket: an idle timeout, as net.Socket has', async (t) => {
  t.plan(2);
  const api = await startKubeApiServer(t, [pod('shop', 'quiet-0', { app: 'quiet' })]);
  const held: Socket[] = [];
  const server = createTcpServer((socket) => held.push(socket)).listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    for (const socket of held) socket.destroy();
    return new Promise((resolve) => server.close(resolve));
  });
  api.forwardPodPort('shop', 'quiet-0', 9000, { port: (server.address() as AddressInfo).port });
  const socket = new KubernetesPortForwarder(configFor(api)).open('shop', 'quiet-0', 9000);
  t.teardown(() => socket.destroy());
  const started = Date.now();
  await once(socket.setTimeout(50), 'timeout');
  t.ok(Date.now() - started >= 45, 'after the idle time');
  socket.setTimeout(0);
  t.notOk(socket.destroyed, 'a timeout only tells; the owner decides');
});

t.test('PortForwardSocket: a pod the API server does not know fails with the reason', async (t) => {
  t.plan(1);
  const api = await startKubeApiServer(t, []);
  const socket = new KubernetesPortForwarder(configFor(api)).open('shop', 'gone-0', 15000);
  const [err] = (await once(socket, 'error')) as [Error];
  t.match(err.message, /^port-forward to port 15000 failed: Unexpected server response: 404$/);
});

// ---- weft observe on a cluster ------------------------------------------------------------------

t.test('lists the flows of every agent and waypoint pod, and reports the one it cannot reach', async (t) => {
  t.plan(6);
  const { kubeconfig, forwarded } = await cluster(t);
  const io = new CapturedIo();
  const code = await observeCommand(['--config', `kubernetes:${kubeconfig}`, '-o', 'json'], io);
  t.equal(code, 0, 'others read: success');
  const events = io.events();
  t.same(reporters(events), ['agent node-1', `waypoint shop/${PODS.waypoint.pod}`]);
  t.equal(events.length, AGENT_EVENTS.length + WAYPOINT_EVENTS.length, 'every event of both');
  t.equal(io.stderr.length, 1, 'one failure');
  t.match(
    io.stderr[0],
    /^weft: agent node-2 \(weft-system\/weft-agent-d3e4f\): error forwarding port 15000 to pod weft-agent-d3e4f, uid .*ECONNREFUSED/,
  );
  t.same(
    [...forwarded].sort(),
    ['shop/waypoint-6c8d-zzpqr', 'weft-system/weft-agent-a1b2c', 'weft-system/weft-agent-d3e4f'],
    'only running pods with the chart labels are forwarded to',
  );
});

t.test('passes filters through to every pod', async (t) => {
  t.plan(3);
  const { kubeconfig } = await cluster(t);
  const io = new CapturedIo();
  const code = await observeCommand(
    ['--config', `kubernetes:${kubeconfig}`, '-o', 'json', '--verdict', 'DENIED'],
    io,
  );
  t.equal(code, 0);
  const events = io.events();
  t.same(reporters(events), ['agent node-1', `waypoint shop/${PODS.waypoint.pod}`]);
  t.ok(events.length === 2 && events.every((e) => e.verdict === 'DENIED'), 'only the denials');
});

t.test('--weft-namespace says where the agents run', async (t) => {
  t.plan(2);
  const { kubeconfig, forwarded } = await cluster(t);
  const io = new CapturedIo();
  const code = await observeCommand(
    ['--config', `kubernetes:${kubeconfig}`, '-o', 'json', '--weft-namespace', 'other'],
    io,
  );
  t.equal(code, 0);
  t.same([...forwarded].sort(), ['other/weft-agent-x9y8z', 'shop/waypoint-6c8d-zzpqr']);
});

t.test('-f follows every pod: an event recorded after the start arrives within a second', async (t) => {
  t.plan(4);
  const { kubeconfig, agentRing } = await cluster(t);
  const io = new CapturedIo();
  const running = observeCommand(
    ['--config', `kubernetes:${kubeconfig}`, '-f', '-o', 'json', '--last', '1'],
    io,
  );
  // Each pod's newest event first: both streams are open once both have arrived.
  await io.until('both pods stream', (events) => reporters(events).length === 2);
  const [template] = connection(PODS.frontend, PODS.web1, 8080, { sides: 'inbound', path: 'direct' });
  const { seq: _seq, reporter: _reporter, ...input } = template!;
  const recordedAt = Date.now();
  const live = agentRing.record({ ...input, time: recordedAt });
  await io.until('the live event arrives', (events) =>
    events.some((e) => e.reporter.name === 'node-1' && e.seq === live.seq),
  );
  t.ok(Date.now() - recordedAt < FOLLOW_LATENCY_MS, `arrived in ${Date.now() - recordedAt} ms`);
  io.stop();
  t.equal(await running, 0, 'ends normally when interrupted');
  t.equal(io.events().length, 3, "each pod's last event, then the live one");
  t.ok(
    io.stderr.some((line) => line.startsWith('weft: agent node-2 (weft-system/weft-agent-d3e4f): ')),
    'the unreachable pod is reported',
  );
});

t.test('-f finds a waypoint pod that starts after it', async (t) => {
  t.plan(2);
  const { api, kubeconfig } = await cluster(t);
  const io = new CapturedIo();
  const running = observeCommand(
    ['--config', `kubernetes:${kubeconfig}`, '-f', '-o', 'json', '--last', '1'],
    io,
  );
  await io.until('both pods stream', (events) => reporters(events).length === 2);
  const name = 'waypoint-6c8d-n3w9x';
  const later = await adminServer(t, { kind: 'waypoint', name: `shop/${name}` }, [
    { ...request(PODS.frontend, PODS.web1), time: Date.now() },
  ]);
  api.forwardPodPort('shop', name, 15000, { port: later.port });
  api.create(
    pod('shop', name, { ...chartLabels('waypoint'), 'gateway.networking.k8s.io/gateway-name': 'waypoint' }),
  );
  await io.until('the new pod streams', (events) => reporters(events).includes(`waypoint shop/${name}`));
  io.stop();
  t.equal(await running, 0);
  t.equal(io.events().length, 3, "each first pod's last event, then the new pod's");
});

t.test('an API server that cannot be reached is an error naming the source', async (t) => {
  t.plan(1);
  const api = await startKubeApiServer(t, []);
  const kubeconfig = kubeconfigFor(t, api);
  await api.close();
  await t.rejects(
    observeCommand(['--config', `kubernetes:${kubeconfig}`], new CapturedIo()),
    /^--config kubernetes:.*: cannot list the agent and waypoint pods: /,
  );
});

t.test('no agent or waypoint pods is an error with a hint', async (t) => {
  t.plan(1);
  const api = await startKubeApiServer(t, IGNORED);
  await t.rejects(
    observeCommand(['--config', `kubernetes:${kubeconfigFor(t, api)}`], new CapturedIo()),
    /no running agent pods .* in weft-system nor waypoint pods .*--weft-namespace/,
  );
});

t.test('weft observe map reads the same pods', async (t) => {
  t.plan(2);
  const { kubeconfig } = await cluster(t);
  const io = new CapturedIo();
  const code = await observeCommand(['map', '--config', `kubernetes:${kubeconfig}`], io);
  t.equal(code, 0);
  t.match(io.stdout, /web/, 'a map of what was seen');
});
