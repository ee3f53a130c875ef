// Issue 9, CA outage: agents keep serving with the certificates they hold, keep retrying with backoff,
// report time to expiry, and nothing fails until a certificate would expire. The real CA (gRPC, TLS,
// node tokens) and two real agents run in this process; a client sends requests continuously through
// node-1's SOCKS5 entry, over HBONE, to a server pod behind node-2's agent. The CA is stopped for
// longer than a rotation interval, then started again on the same address with the same root.
//
// Pods need non-loopback addresses (the agents refuse 127/8 as pods and destinations), so two /32s from
// the benchmarking range 198.18.0.0/15 go on the loopback interface for the test's duration: root only.
import t from 'tap';
import net from 'node:net';
import { once, type EventEmitter } from 'node:events';
import { execFileSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startAgent, type AgentHandle } from '../../agent/main.js';
import { startCa, DEFAULT_WORKLOAD_TTL_S, MAX_WORKLOAD_TTL_S, type CaHandle } from '../../ca/main.js';
import { createNodeToken, NODE_TOKENS_FILE } from '../../ca/node-tokens.js';
import { SELF_SIGNED_FILES } from '../../ca/authority.js';
import type { HostPort } from '../../core/address.js';
import { manifestFile, namespaceManifest, podManifest } from '../../lab/manifests.js';
import { StaticPlacement } from '../helpers/ca.js';
import { skipReason } from '../helpers/exec.js';

const CLIENT = 'spiffe://cluster.local/ns/shop/sa/client';
const SERVER = 'spiffe://cluster.local/ns/shop/sa/server';
const LOOPBACK = { host: '127.0.0.1', port: 0 };
/** A random /24 of the benchmarking range, so two runs at once do not collide. */
const SUBNET = `198.18.${randomInt(0, 256)}`;
const CLIENT_IP = `${SUBNET}.1`;
const SERVER_IP = `${SUBNET}.2`;

/**
 * The CA backdates notBefore by 2 minutes, and rotation is at half the certificate's whole validity:
 * with 140 s asked for, half-life falls 10 s after issuance. Rotation interval 10 s, expiry 140 s.
 */
const CERT_TTL_S = 140;
const ROTATION_INTERVAL_MS = 10_000;
/** Longer than a rotation interval, well short of expiry. */
const OUTAGE_MS = 15_000;
/** The agents' retry backoff cap (ztunnel's 150 s would not fit a test). */
const MAX_BACKOFF_MS = 2_000;
/**
 * Rotation must resume within the agents' backoff cap (+20 % jitter) plus the gRPC channel's own
 * reconnect backoff (grpc-js: 1 s ×1.6, ±20 %, counted from the first failed renewal at half-life; here
 * its next connect attempt comes at most ~6 s after the CA returns).
 */
const RESUME_BOUND_MS = 20_000;
/** A failing request is one not answered within this. */
const REQUEST_TIMEOUT_MS = 5_000;
const REQUEST_GAP_MS = 25;

function podAddresses(op: 'add' | 'del'): void {
  for (const ip of [CLIENT_IP, SERVER_IP]) execFileSync('ip', ['addr', op, `${ip}/32`, 'dev', 'lo']);
}

function unavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root: pod addresses go on the loopback interface';
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
  } catch {
    return 'needs iproute2 (ip)';
  }
  return undefined;
}

/** The next `event` from `emitter`, or a rejection naming what did not happen within `ms`. */
async function nextEvent(emitter: EventEmitter, event: string, ms: number, what: string): Promise<unknown[]> {
  try {
    return await once(emitter, event, { signal: AbortSignal.timeout(ms) });
  } catch (err) {
    throw new Error(`${what}: no '${event}' within ${ms} ms`, { cause: err });
  }
}

async function readBytes(socket: net.Socket, n: number): Promise<Buffer> {
  for (;;) {
    const chunk = socket.read(n) as Buffer | null;
    if (chunk) return chunk;
    if (socket.readableEnded || socket.destroyed) throw new Error('closed during the SOCKS5 handshake');
    await once(socket, 'readable');
  }
}

/** One HTTP request from the client pod, through the SOCKS5 entry, to `dst`; resolves to the body. */
async function requestThroughMesh(socks: HostPort, dst: HostPort, n: number): Promise<string> {
  const socket = net.connect({ host: socks.host, port: socks.port, localAddress: CLIENT_IP });
  socket.setTimeout(REQUEST_TIMEOUT_MS, () => socket.destroy(new Error('timed out')));
  try {
    await once(socket, 'connect');
    socket.write(Buffer.from([5, 1, 0]));
    const method = await readBytes(socket, 2);
    if (method[1] !== 0) throw new Error(`SOCKS5 method ${method[1]}`);
    const port = Buffer.alloc(2);
    port.writeUInt16BE(dst.port);
    socket.write(Buffer.concat([Buffer.from([5, 1, 0, 1, ...dst.host.split('.').map(Number)]), port]));
    const reply = await readBytes(socket, 10);
    if (reply[1] !== 0) throw new Error(`SOCKS5 reply ${reply[1]}`);
    socket.write(`GET /${n} HTTP/1.1\r\nhost: server\r\nconnection: close\r\n\r\n`);
    const chunks: Buffer[] = [];
    for await (const chunk of socket) chunks.push(chunk as Buffer);
    const response = Buffer.concat(chunks).toString();
    if (!response.startsWith('HTTP/1.1 200')) throw new Error(`answer: ${response.slice(0, 80)}`);
    return response.slice(response.indexOf('\r\n\r\n') + 4);
  } finally {
    socket.destroy();
  }
}

/** Sends requests one after another until stopped; counts answers and keeps every failure. */
class ClientLoop {
  ok = 0;
  readonly failures: string[] = [];
  #stopped = false;
  #done: Promise<void> | undefined;
  #waiters: { n: number; resolve: () => void }[] = [];

  constructor(
    readonly socks: HostPort,
    readonly dst: HostPort,
  ) {}

  start(): void {
    this.#done = this.#run();
  }

  async #run(): Promise<void> {
    for (let n = 0; !this.#stopped; n++) {
      try {
        const body = await requestThroughMesh(this.socks, this.dst, n);
        if (body !== `ok /${n}`) throw new Error(`body ${JSON.stringify(body)}`);
        this.ok++;
        for (const w of this.#waiters.filter((w) => this.ok >= w.n)) w.resolve();
        this.#waiters = this.#waiters.filter((w) => this.ok < w.n);
      } catch (err) {
        this.failures.push(`request ${n} at ${new Date().toISOString()}: ${(err as Error).message}`);
      }
      await sleep(REQUEST_GAP_MS);
    }
  }

  /** Resolves once `more` further requests have been answered. */
  answered(more: number, ms: number): Promise<void> {
    const n = this.ok + more;
    const reached = new Promise<void>((resolve) => this.#waiters.push({ n, resolve }));
    const timeout = sleep(ms, undefined, { ref: false }).then(() => {
      throw new Error(`fewer than ${more} answers within ${ms} ms (failures: ${this.failures.length})`);
    });
    return Promise.race([reached, timeout]);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#done;
  }
}

/** A sample's value from Prometheus text: `name{labels} value`. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    const at = line.lastIndexOf(' ');
    if (at > 0 && line.slice(0, at) === series) return Number(line.slice(at + 1));
  }
  return undefined;
}

interface CertificateView {
  expiryS: number;
  consecutiveFailures: number;
  successes: number;
  failures: number;
  ready: number;
  serial: string | undefined;
}

interface CertsView {
  certificates: { spiffeId: string; serialNumber?: string }[];
}

/** What the agent's own endpoints (metrics, readiness, admin /certs) say about `identity` right now. */
async function view(agent: AgentHandle, identity: string): Promise<CertificateView> {
  const metrics = await (await fetch(`http://127.0.0.1:${agent.metricsAddress!.port}/metrics`)).text();
  const ready = await fetch(`http://127.0.0.1:${agent.readinessAddress!.port}/healthz/ready`);
  await ready.text();
  const certs = (await (
    await fetch(`http://127.0.0.1:${agent.adminAddress.port}/certs`)
  ).json()) as CertsView;
  const value = (series: string): number => {
    const v = sample(metrics, series);
    if (v === undefined) throw new Error(`no ${series} in the metrics`);
    return v;
  };
  return {
    expiryS: value(`weft_certificate_expiry_seconds{identity="${identity}"}`),
    consecutiveFailures: value(`weft_certificate_consecutive_failures{identity="${identity}"}`),
    successes: value('weft_certificate_requests_total{result="success"}'),
    failures: value('weft_certificate_requests_total{result="failure"}'),
    ready: ready.status,
    serial: certs.certificates.find((c) => c.spiffeId === identity)?.serialNumber,
  };
}

/** Resolves once `agent` holds a certificate for `identity`. */
async function holds(agent: AgentHandle, identity: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!agent.certificates.health().some((h) => h.spiffeId === identity && h.held)) {
    await nextEvent(agent.certificates, 'certificate', Math.max(1, deadline - Date.now()), identity);
  }
}

function startTestCa(stateDir: string, listen: HostPort): Promise<CaHandle> {
  return startCa({
    stateDir,
    trustDomain: 'cluster.local',
    grpcListen: listen,
    httpListen: null,
    defaultTtlSeconds: DEFAULT_WORKLOAD_TTL_S,
    maxTtlSeconds: MAX_WORKLOAD_TTL_S,
    servingDnsNames: ['localhost'],
    servingIps: ['127.0.0.1'],
    placement: new StaticPlacement({ 'node-1': ['shop/client'], 'node-2': ['shop/server'] }),
  });
}

t.test(
  'CA stopped for longer than a rotation interval: zero failed requests; rotation resumes when it returns',
  { skip: skipReason(t, unavailable()), timeout: 90_000 },
  async (t) => {
    const began = Date.now();
    podAddresses('add');
    t.teardown(() => podAddresses('del'));
    const dir = mkdtempSync(join(tmpdir(), 'weft-ca-outage-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const caDir = join(dir, 'ca');
    const manifests = join(dir, 'manifests');
    mkdirSync(caDir);
    mkdirSync(manifests);

    let ca: CaHandle | undefined = await startTestCa(caDir, LOOPBACK);
    t.teardown(() => ca?.close());
    const caAddress = ca.grpcAddress;
    const root = ca.authority.rootsPem;
    writeFileSync(
      join(manifests, 'mesh.yaml'),
      manifestFile(
        namespaceManifest('shop', { ambient: true }),
        podManifest({
          name: 'client-0',
          namespace: 'shop',
          serviceAccount: 'client',
          node: 'node-1',
          ip: CLIENT_IP,
        }),
        podManifest({
          name: 'server-0',
          namespace: 'shop',
          serviceAccount: 'server',
          node: 'node-2',
          ip: SERVER_IP,
        }),
      ),
    );

    const server: Server = createServer((req, res) => res.end(`ok ${req.url}`));
    server.listen(0, SERVER_IP);
    await once(server, 'listening');
    t.teardown(() => server.close());
    const serverPort = (server.address() as net.AddressInfo).port;

    const agents: AgentHandle[] = [];
    for (const [node, hbone, socks] of [
      ['node-1', null, LOOPBACK],
      ['node-2', { host: SERVER_IP, port: 15008 }, null],
    ] as const) {
      const tokenFile = join(dir, `${node}.token`);
      writeFileSync(tokenFile, createNodeToken(join(caDir, NODE_TOKENS_FILE), node));
      const agent = await startAgent({
        nodeName: node,
        trustDomain: 'cluster.local',
        configSource: `file:${manifests}`,
        ca: {
          address: caAddress,
          rootCertFile: join(caDir, SELF_SIGNED_FILES.cert),
          tokenFile,
          serverName: 'localhost',
        },
        certTtlSeconds: CERT_TTL_S,
        certMaxBackoffMs: MAX_BACKOFF_MS,
        adminListen: LOOPBACK,
        metricsListen: LOOPBACK,
        readinessListen: LOOPBACK,
        hboneListen: hbone,
        socksListen: socks,
        capture: null,
      });
      t.teardown(() => agent.close());
      agents.push(agent);
    }
    const [node1, node2] = agents as [AgentHandle, AgentHandle];
    const watched = [
      { agent: node1, identity: CLIENT, name: 'node-1' },
      { agent: node2, identity: SERVER, name: 'node-2' },
    ];
    await Promise.all(watched.map((w) => holds(w.agent, w.identity, 10_000)));

    const client = new ClientLoop(node1.socksAddress!, { host: SERVER_IP, port: serverPort });
    client.start();
    t.teardown(() => client.stop());
    await client.answered(1, 10_000);

    const before = await Promise.all(watched.map((w) => view(w.agent, w.identity)));
    for (const [i, w] of watched.entries()) {
      t.equal(before[i]!.ready, 200, `${w.name}: ready before the outage`);
      t.ok(before[i]!.expiryS > CERT_TTL_S - 10, `${w.name}: expires in ${before[i]!.expiryS} s`);
    }

    // The outage: the CA's server closes; every renewal from now on fails.
    await ca.close();
    ca = undefined;
    const outageStart = Date.now();
    t.comment(`CA stopped ${outageStart - began} ms into the test`);
    await Promise.all(
      watched.map((w) =>
        nextEvent(w.agent.certificates, 'fetch-failed', ROTATION_INTERVAL_MS + 5_000, `${w.name}'s renewal`),
      ),
    );
    const early = await Promise.all(watched.map((w) => view(w.agent, w.identity)));
    // New tunnels must be made with the held certificates too, on both sides: drain the pooled ones.
    node1.pool.close();
    await sleep(Math.max(0, outageStart + OUTAGE_MS - Date.now()));
    const late = await Promise.all(watched.map((w) => view(w.agent, w.identity)));
    t.comment(`CA away for ${Date.now() - outageStart} ms (rotation interval ${ROTATION_INTERVAL_MS} ms)`);
    for (const [i, w] of watched.entries()) {
      const [b, e, l] = [before[i]!, early[i]!, late[i]!];
      t.ok(l.failures > b.failures, `${w.name}: renewal failures counted (${b.failures} → ${l.failures})`);
      t.ok(
        l.consecutiveFailures >= 2,
        `${w.name}: still retrying (${l.consecutiveFailures} failed in a row)`,
      );
      t.ok(
        l.expiryS < e.expiryS - 1 && e.expiryS < b.expiryS,
        `${w.name}: time to expiry decreasing (${b.expiryS} → ${e.expiryS} → ${l.expiryS} s)`,
      );
      t.equal(l.ready, 200, `${w.name}: still ready while the certificate is valid`);
      t.equal(l.serial, b.serial, `${w.name}: serving the certificate it held`);
    }
    t.equal(client.failures.length, 0, 'no request failed during the outage');

    // The CA returns on the same address with the same root.
    const resumed = watched.map((w) =>
      nextEvent(
        w.agent.certificates,
        'certificate',
        RESUME_BOUND_MS,
        `${w.name}'s rotation after the CA returned`,
      ),
    );
    ca = await startTestCa(caDir, caAddress);
    const caBack = Date.now();
    t.equal(ca.authority.rootsPem, root, 'same root after the restart');
    await Promise.all(resumed);
    t.comment(`rotation resumed ${Date.now() - caBack} ms after the CA returned`);
    const after = await Promise.all(watched.map((w) => view(w.agent, w.identity)));
    for (const [i, w] of watched.entries()) {
      const [l, a] = [late[i]!, after[i]!];
      t.equal(a.successes, l.successes + 1, `${w.name}: the renewal counted as a success`);
      t.equal(a.consecutiveFailures, 0, `${w.name}: no failures since`);
      t.not(a.serial, l.serial, `${w.name}: a new certificate (serial ${a.serial})`);
      t.ok(a.expiryS > l.expiryS + 10, `${w.name}: expiry jumps back up (${l.expiryS} → ${a.expiryS} s)`);
      t.equal(a.ready, 200, `${w.name}: ready`);
    }

    // New tunnels with the new certificates carry traffic as well.
    node1.pool.close();
    await client.answered(20, 10_000);
    await client.stop();
    t.same(client.failures, [], `zero failed requests of ${client.ok} through the outage and after`);
    t.ok(client.ok > 200, `requests kept flowing (${client.ok})`);
    t.comment(`test body took ${Date.now() - began} ms`);
  },
);
