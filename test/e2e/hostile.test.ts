// Hostile input to the HBONE server (:15008), end to end on the real kernel: clients that stall the TLS
// handshake, break HTTP/2 after a valid mTLS handshake, send oversized header blocks, flood streams or
// open-and-reset them (CVE-2023-44487). Each is refused or bounded; tunnels held open from the start,
// and fresh ones, keep working throughout, the agent stays ready, and nothing an attack opened outlives
// the server's bounds. The attackers are Python peers in node-1's namespace writing frames by hand.
// Root only; skips with the reason elsewhere (and fails under CI).
//
// Connections the server ended with a GOAWAY but the attacker keeps open are closed only by the
// server's keepalive (PING_INTERVAL_MS + PING_TIMEOUT_MS, 30 s); those attacks run first, and the
// TLS-handshake case (10 s) after them, so that the wait overlaps the other cases.
import t from 'tap';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import type { ChildProcess } from 'node:child_process';
import { MeshLab } from '../../lab/mesh-lab.js';
import { manifestFile, namespaceManifest, podManifest } from '../../lab/manifests.js';
import { netnsUnavailable } from '../../lab/netns.js';
import { waitFor } from '../../lab/processes.js';
import { issueCertificateFiles } from '../../lab/certs.js';
import {
  HANDSHAKE_TIMEOUT_MS,
  MAX_PENDING_RESET_STREAMS,
  PING_INTERVAL_MS,
  PING_TIMEOUT_MS,
  SERVER_MAX_CONCURRENT_STREAMS,
} from '../../core/hbone/settings.js';
import { missingPython, skipReason, SYSTEM_PYTHON } from '../helpers/exec.js';

const peers = fileURLToPath(new URL('./peers/', import.meta.url));
const built = existsSync(fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url)));

const CLIENT = 'spiffe://cluster.local/ns/shop/sa/client';
const SERVER_HBONE = '10.77.2.10:15008';
const SERVER_ECHO = '10.77.2.10:8080';
/** A GOAWAY'd connection the peer keeps is closed by the keepalive: one interval, one timeout, slack. */
const KEEPALIVE_BOUND_S = (PING_INTERVAL_MS + PING_TIMEOUT_MS) / 1000 + 3;

const MANIFESTS = manifestFile(
  namespaceManifest('shop', { ambient: true }),
  podManifest({
    name: 'client-0',
    namespace: 'shop',
    serviceAccount: 'client',
    node: 'node-1',
    ip: '10.77.1.10',
  }),
  podManifest({
    name: 'server-0',
    namespace: 'shop',
    serviceAccount: 'server',
    node: 'node-2',
    ip: '10.77.2.10',
  }),
);

interface JsonLine {
  [k: string]: unknown;
}

/** The assertions the shared checks use; any tap test object has them. */
interface Asserts {
  ok(value: unknown, message: string): boolean;
  equal(found: unknown, wanted: unknown, message: string): boolean;
  match(found: unknown, pattern: unknown, message: string): boolean;
}

/** A peer that prints one JSON object per line; lines are queued until asked for. */
class JsonLines {
  readonly #lines: JsonLine[] = [];
  readonly #waiting: ((line: JsonLine | undefined) => void)[] = [];
  #ended = false;
  #stderr = '';

  constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! })
      .on('line', (l) => {
        const line = JSON.parse(l) as JsonLine;
        const waiter = this.#waiting.shift();
        if (waiter) waiter(line);
        else this.#lines.push(line);
      })
      .on('close', () => {
        this.#ended = true;
        for (const waiter of this.#waiting.splice(0)) waiter(undefined);
      });
    child.stderr!.on('data', (d: Buffer) => (this.#stderr += d.toString()));
  }

  async next(): Promise<JsonLine> {
    const queued = this.#lines.shift();
    const line =
      queued ??
      (this.#ended ? undefined : await new Promise<JsonLine | undefined>((r) => this.#waiting.push(r)));
    if (!line) throw new Error(`peer ended without a line: ${this.#stderr}`);
    return line;
  }
}

function python(lab: MeshLab, script: string, args: string[]): JsonLines {
  // -B: the peers import rawh2.py, and no __pycache__ should be left in the tree.
  const child = lab
    .node(0)
    .spawn(SYSTEM_PYTHON, ['-B', join(peers, script), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin!.on('error', () => undefined);
  return new JsonLines(child);
}

/** Runs a peer that needs no input; its first line. */
async function runPython(lab: MeshLab, script: string, args: string[]): Promise<JsonLine> {
  const peer = python(lab, script, args);
  peer.child.stdin!.end();
  return peer.next();
}

const unavailable =
  (await netnsUnavailable()) ??
  (await missingPython(['h2', 'ssl'])) ??
  (built ? undefined : 'no build: run npm run build');

t.test(
  'hostile input to the HBONE server is refused or bounded; other tunnels keep working',
  { skip: skipReason(t, unavailable), timeout: 120_000 },
  async (t) => {
    const lab = await MeshLab.start({ 'mesh.yaml': MANIFESTS });
    t.teardown(() => lab.stop());
    // The destination workload: an echo server in node-2's namespace, which reports every accept.
    const echo = lab.node(1).spawn(SYSTEM_PYTHON, [join(peers, 'tcp_servers.py'), SERVER_ECHO], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    t.teardown(() => echo.stdin!.end());
    const echoLines = createInterface({ input: echo.stdout! });
    const [listening] = (await once(echoLines, 'line')) as [string];
    t.equal(listening, 'listening', 'the echo server is up');
    let upstreamDials = 0;
    echoLines.on('line', () => upstreamDials++);
    for (const i of [0, 1] as const)
      await waitFor('certificates', async () => {
        const dump = await lab.configDump(i);
        return dump.certificates.length > 0 && dump.certificates.every((c) => c.state === 'available')
          ? true
          : undefined;
      });
    const certDir = mkdtempSync(join(tmpdir(), 'weft-hostile-certs-'));
    t.teardown(() => rmSync(certDir, { recursive: true, force: true }));
    const client = await issueCertificateFiles(lab.caDir, 'cluster.local', CLIENT, certDir, 'client');

    /** An attack with a valid client certificate; with `lingerS`, its second line says when it was closed. */
    const hostile = (mode: string, count = 0, lingerS = 0) => {
      const args = [mode, SERVER_HBONE, lab.rootCertFile, client.cert, client.key, SERVER_ECHO];
      const peer = python(lab, 'hostile_h2.py', [...args, String(count), String(lingerS)]);
      peer.child.stdin!.end();
      return peer;
    };
    /** Attacks whose connection the server must still close; checked once the keepalive bound passed. */
    const lingering: { mode: string; peer: JsonLines }[] = [];

    // The tunnels held open from before the first attack to after the last.
    const held = python(lab, 'hold_tunnels.py', [
      '10.77.1.10',
      '127.0.0.1:15080',
      SERVER_ECHO,
      SERVER_HBONE,
      lab.rootCertFile,
      client.cert,
      client.key,
    ]);
    t.teardown(() => held.child.stdin!.end());
    t.match(await held.next(), { phase: 'open', socks: true, hbone: true }, 'held tunnels open and echo');
    const inboundTunnels = async () => {
      const dump = JSON.parse((await lab.httpGet(1, 'http://127.0.0.1:15000/config_dump')) ?? '{}') as {
        tunnels?: { inboundConnections: number };
      };
      return dump.tunnels?.inboundConnections;
    };
    const workloadConnections = async () =>
      (await lab.node(1).exec('ss', '-tnH', 'state', 'established', '( sport = :8080 )'))
        .split('\n')
        .filter((l) => l.trim() !== '').length;
    const baseline = { tunnels: await inboundTunnels(), workload: await workloadConnections() };
    t.same(baseline, { tunnels: 2, workload: 2 }, 'the two held tunnels, each with its upstream connection');

    /** Fresh tunnels work: straight HBONE with Python's h2, and SOCKS5 through node-1's agent. */
    const freshTunnels = async (t: Asserts, when: string) => {
      const [direct, socks] = await Promise.all([
        runPython(lab, 'hbone_client.py', [
          SERVER_HBONE,
          lab.rootCertFile,
          client.cert,
          client.key,
          SERVER_ECHO,
          'CONNECT',
          '20000',
        ]),
        runPython(lab, 'socks_client.py', ['10.77.1.10', '127.0.0.1:15080', SERVER_ECHO, '20000']),
      ]);
      t.match(direct, { status: 200, echo: true }, `${when}: a new HBONE tunnel echoes`);
      t.match(socks, { reply: 0, echo: true }, `${when}: a new SOCKS5 tunnel echoes`);
    };

    /** After an attack: held and fresh tunnels echo, and the agents are up and ready. */
    const stillHealthy = async (t: Asserts, after: string) => {
      held.child.stdin!.write('round\n');
      t.match(await held.next(), { socks: true, hbone: true }, `after ${after}: the held tunnels echo`);
      await freshTunnels(t, `after ${after}`);
      t.ok(
        await lab.httpOk(1, 'http://127.0.0.1:15021/healthz/ready'),
        `after ${after}: node-2's agent is ready`,
      );
      t.ok(
        lab.children.every((c) => c.exitCode === null && c.signalCode === null),
        `after ${after}: the CA and both agents are still running`,
      );
    };

    await t.test('malformed HTTP/2 after a valid mTLS handshake: GOAWAY, then closed', async (t) => {
      const garbage = await hostile('garbage-preface').next();
      t.ok(garbage.closed, `bytes that are not the preface: closed at once (${JSON.stringify(garbage)})`);
      const cases: [mode: string, goaway: string][] = [
        ['settings-length', 'FRAME_SIZE_ERROR'],
        ['frame-too-large', 'FRAME_SIZE_ERROR'],
        ['data-stream-0', 'PROTOCOL_ERROR'],
        ['bad-hpack', 'COMPRESSION_ERROR'],
        // The same, on a connection carrying a live tunnel: the tunnel goes with it.
        ['tunnel-then-bad', 'FRAME_SIZE_ERROR'],
      ];
      const attacks = cases.map(([mode]) => ({ mode, peer: hostile(mode, 0, KEEPALIVE_BOUND_S + 5) }));
      for (const [i, [mode, goaway]] of cases.entries()) {
        const r = await attacks[i]!.peer.next();
        t.match(r, { goaway: { code: goaway } }, `${mode}: GOAWAY ${goaway} (${JSON.stringify(r)})`);
        t.notOk(r.error, `${mode}: the peer ran (${String(r.error)})`);
      }
      lingering.push(...attacks);
      const unknown = await hostile('unknown-type').next();
      t.match(
        unknown,
        { statuses: { '200': 1 }, echo: true, alive: true, closed: null, goaway: null },
        `a frame of unknown type is ignored, as RFC 9113 §5.5 requires (${JSON.stringify(unknown)})`,
      );
      await stillHealthy(t, 'malformed HTTP/2');
    });

    await t.test('oversized header blocks are refused', async (t) => {
      const bigValue = hostile('big-value', 0, KEEPALIVE_BOUND_S + 5);
      const r = await bigValue.next();
      t.match(
        r,
        { statuses: {}, goaway: { code: 'COMPRESSION_ERROR' } },
        `one 100 KiB header value: beyond HPACK's field limit, GOAWAY (${JSON.stringify(r)})`,
      );
      lingering.push({ mode: 'big-value', peer: bigValue });
      const list = await hostile('big-list').next();
      t.match(
        list,
        { statuses: {}, resets: { ENHANCE_YOUR_CALM: 1 }, goaway: null, alive: true },
        `100 KiB in 40 headers: beyond maxHeaderListSize, that stream reset (${JSON.stringify(list)})`,
      );
      const flood = await hostile('continuation-flood', 20_000).next();
      // The server sends GOAWAY and closes; a flooder still writing may hit the closed socket (EOF) before
      // it reads the GOAWAY, so the GOAWAY is not always seen: being cut off is what must hold.
      t.ok(flood.closed, `CONTINUATION flood: the connection is closed (${JSON.stringify(flood)})`);
      t.ok((flood.sent as number) < 20_000, `CONTINUATION flood: cut off after ${String(flood.sent)} frames`);
      await stillHealthy(t, 'oversized header blocks');
    });

    await t.test('streams beyond SETTINGS_MAX_CONCURRENT_STREAMS: that connection is closed', async (t) => {
      const count = SERVER_MAX_CONCURRENT_STREAMS + 60;
      const r = await hostile('stream-flood', count).next();
      t.equal(r.server_max_streams, SERVER_MAX_CONCURRENT_STREAMS, 'the server advertised its limit');
      // nghttp2 refuses the excess stream with a stream error; Node makes that a session error, so the
      // whole connection goes (GOAWAY, every stream reset): the flooder loses its own tunnels only.
      t.ok(r.closed, `the flooding connection is closed (${JSON.stringify(r)})`);
      t.ok(
        ((r.statuses as Record<string, number>)['200'] ?? 0) <= SERVER_MAX_CONCURRENT_STREAMS,
        'no more than the limit were ever answered',
      );
      await stillHealthy(t, 'a stream flood');
    });

    await t.test('rapid reset (CVE-2023-44487): the connection is closed after a few dials', async (t) => {
      const count = 5000;
      const dialsBefore = upstreamDials;
      const [r] = await Promise.all([
        hostile('rapid-reset', count).next(),
        new Promise((resolve) => setTimeout(resolve, 50)).then(() => freshTunnels(t, 'during a rapid reset')),
      ]);
      t.match(
        r,
        { goaway: { code: 'ENHANCE_YOUR_CALM' } },
        `GOAWAY ENHANCE_YOUR_CALM (${JSON.stringify(r)})`,
      );
      t.ok(r.closed, 'and the connection closed');
      t.ok((r.sent as number) < count, `cut off after ${String(r.sent)} of ${count} open-and-reset streams`);
      // Two fresh tunnels ran meanwhile: the rest are the attack's (accepts are reported as they happen).
      await new Promise((resolve) => setTimeout(resolve, 300));
      const dials = upstreamDials - dialsBefore - 2;
      t.ok(
        dials <= 2 * MAX_PENDING_RESET_STREAMS,
        `${dials} upstream dials for it (limit ${MAX_PENDING_RESET_STREAMS} resets while dialling)`,
      );
      await stillHealthy(t, 'a rapid reset');
    });

    await t.test('TLS handshakes that never finish are dropped within the handshake timeout', async (t) => {
      const idle = 200;
      const limitS = HANDSHAKE_TIMEOUT_MS / 1000 + 3;
      const stalls = python(lab, 'hostile_tls.py', [SERVER_HBONE, String(idle), String(limitS + 5)]);
      stalls.child.stdin!.end();
      t.match(await stalls.next(), { phase: 'open', open: idle + 4 }, `${idle + 4} handshakes stalled`);
      await freshTunnels(t, `while ${idle + 4} handshakes stall`);
      const r = await stalls.next();
      for (const stall of ['silent', 'half_hello', 'full_hello', 'trickle']) {
        const s = r[stall];
        t.ok(
          typeof s === 'number' && s <= limitS,
          `${stall}: dropped after ${String(s)} s (${JSON.stringify(r)})`,
        );
      }
      t.equal(
        r.idle_closed,
        idle,
        `all ${idle} idle sockets dropped (the last after ${String(r.idle_max)} s)`,
      );
      await stillHealthy(t, 'stalled handshakes');
    });

    await t.test('nothing an attack opened outlives the keepalive bound', async (t) => {
      for (const { mode, peer } of lingering) {
        const r = await peer.next();
        t.ok(
          typeof r.closed_after === 'number' && r.closed_after <= KEEPALIVE_BOUND_S,
          `${mode}: the connection kept open after GOAWAY was closed by the server after ${String(r.closed_after)} s`,
        );
      }
      let last: unknown;
      const settled = await waitFor('the attacks to be released', async () => {
        const now = { tunnels: await inboundTunnels(), workload: await workloadConnections() };
        last = now;
        return now.tunnels === baseline.tunnels && now.workload === baseline.workload ? now : undefined;
      }).catch(() => undefined);
      t.ok(
        settled,
        `only the held tunnels remain, on the agent and at the workload (last seen ${JSON.stringify(last)}; ${
          (await lab.httpGet(1, 'http://127.0.0.1:15000/config_dump')) ?? ''
        })`,
      );
      await stillHealthy(t, 'all attacks');
    });
  },
);
