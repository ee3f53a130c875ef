// proxy/server/drain.ts with the whole waypoint in-process on loopback: two waypoints share one HBONE
// port (SO_REUSEPORT, proxy/listeners.ts), as an old and a new process do during a restart in place.
// Clients reach them as an agent does, through a pooled HBONE client (core/hbone/client-pool.ts): HTTP/1.1
// keep-alive loops, HTTP/2 sessions with streams in flight, and one idle TCP tunnel. The first waypoint
// drains while the traffic runs: no request may fail, HTTP/1 connections end after a response that says
// `connection: close`, HTTP/2 sessions get GOAWAY, readiness answers 503, and only the TCP tunnel is left
// for the deadline to reset. Needs the native addon (skips without it, saying why).
import { once } from 'node:events';
import http, { type IncomingMessage } from 'node:http';
import http2, { type ClientHttp2Session } from 'node:http2';
import net from 'node:net';
import t from 'tap';
import { addonUnavailable } from '../../../ebpf-redirect/native.js';
import type { DrainReport } from '../../../proxy/server/drain.js';
import { ECHO_VIP as VIP, waypointFixture } from '../../helpers/in-process-waypoint.js';

const PORTS = { http: 80, h2: 82, tcp: 83 } as const;
const REQUEST_EVERY_MS = 20;
const HTTP1_LOOPS = 4;
const HTTP2_LOOPS = 2;
const DEADLINE_MS = 3000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// Node 20 can spin in its exit-time handle cleanup once HTTP/2 sessions and sockets were cut mid-stream
// (as the deadline here does; `weft waypoint run` ends with process.exit for the same reason). Once tap
// has written its results, exit at once.
process.once('exit', (code) => process.exit(code));

/** Backends answer `ok` after `x-delay` ms (HTTP/1 and HTTP/2); the TCP one echoes. */
async function startBackends(): Promise<{ h1: number; h2: number; tcp: number; close(): void }> {
  const delayOf = (v: unknown): number => Number(typeof v === 'string' ? v : 0);
  const h1 = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => setTimeout(() => res.end('ok'), delayOf(req.headers['x-delay'])));
  });
  const h2 = http2.createServer();
  h2.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    stream.resume();
    stream.on('end', () =>
      setTimeout(() => {
        if (stream.destroyed) return;
        stream.respond({ ':status': 200 });
        stream.end('ok');
      }, delayOf(headers['x-delay'])),
    );
  });
  const h2Sessions = new Set<http2.ServerHttp2Session>();
  h2.on('session', (s: http2.ServerHttp2Session) => {
    h2Sessions.add(s);
    s.once('close', () => h2Sessions.delete(s));
  });
  const tcpSockets = new Set<net.Socket>();
  const tcp = net.createServer((s) => {
    tcpSockets.add(s);
    s.on('error', () => undefined);
    s.pipe(s);
  });
  const port = async (server: net.Server): Promise<number> => {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return (server.address() as net.AddressInfo).port;
  };
  return {
    h1: await port(h1),
    h2: await port(h2),
    tcp: await port(tcp),
    close() {
      h1.closeAllConnections();
      h1.close();
      for (const s of h2Sessions) s.destroy();
      h2.close();
      for (const s of tcpSockets) s.destroy();
      tcp.close();
    },
  };
}

interface Tally {
  ok: number;
  failed: string[];
  /** HTTP/1 responses that said `connection: close`. */
  closeAnswers: number;
  /** Connections (HTTP/1) and sessions (HTTP/2) the clients opened. */
  opened: number;
}

t.test(
  'a draining waypoint fails no request while a successor shares its port',
  { skip: addonUnavailable() && `needs the native addon: ${addonUnavailable()}`, timeout: 60_000 },
  async (t) => {
    const backends = await startBackends();
    t.teardown(() => backends.close());
    const waypoints = await waypointFixture([
      { name: 'http', port: PORTS.http, targetPort: backends.h1 },
      { name: 'http2', port: PORTS.h2, targetPort: backends.h2 },
      { name: 'tcp', port: PORTS.tcp, targetPort: backends.tcp },
    ]);
    t.teardown(() => waypoints.close());
    const drain = { deadlineMs: DEADLINE_MS, idleMs: 500, sweepMs: 20 };
    const old = await waypoints.start(0, drain);
    const port = old.hboneAddress.port;
    const tunnel = (servicePort: number) => waypoints.tunnel(port, servicePort);

    let running = true;
    const tally: Tally = { ok: 0, failed: [], closeAnswers: 0, opened: 0 };

    // HTTP/1.1 keep-alive: one connection per agent (maxSockets 1), each a tunnel through the pool.
    const tunnelAgent = (): http.Agent => waypoints.http1Agent(port, PORTS.http, () => tally.opened++);
    const get = (agent: http.Agent, path: string, delay = 0): Promise<void> =>
      new Promise<void>((resolve) => {
        const req = http.request(
          { host: VIP, port: PORTS.http, path, agent, headers: { 'x-delay': String(delay) } },
          (res: IncomingMessage) => {
            if (res.headers.connection === 'close') tally.closeAnswers++;
            res.resume();
            res.on('end', () => {
              if (res.statusCode === 200) tally.ok++;
              else tally.failed.push(`HTTP/1 ${path}: status ${res.statusCode}`);
              resolve();
            });
            res.on('error', (err) => {
              tally.failed.push(`HTTP/1 ${path}: ${err.message}`);
              resolve();
            });
          },
        );
        req.on('error', (err) => {
          tally.failed.push(`HTTP/1 ${path}: ${err.message}`);
          resolve();
        });
        req.end();
      });
    const http1Loop = async (i: number, delay = 0): Promise<void> => {
      const agent = tunnelAgent();
      while (running) {
        await get(agent, `/h1/${i}`, delay);
        await sleep(REQUEST_EVERY_MS);
      }
      agent.destroy();
    };

    // HTTP/2: a session per tunnel, two streams at once (one slow); a session that got GOAWAY takes no
    // new stream, so the next ones go on a new session (a new tunnel), as any HTTP/2 client does.
    const http2Loop = async (i: number): Promise<void> => {
      let session: ClientHttp2Session | undefined;
      const sessions: ClientHttp2Session[] = [];
      const usable = async (): Promise<ClientHttp2Session> => {
        if (session === undefined || session.closed || session.destroyed) {
          const socket = await tunnel(PORTS.h2);
          tally.opened++;
          session = http2.connect(`http://${VIP}:${PORTS.h2}`, { createConnection: () => socket });
          session.on('error', (err) => tally.failed.push(`HTTP/2 ${i} session: ${err.message}`));
          sessions.push(session);
        }
        return session;
      };
      const request = async (delay: number): Promise<void> => {
        const s = await usable();
        await new Promise<void>((resolve) => {
          const stream = s.request({ ':path': `/h2/${i}`, 'x-delay': String(delay) });
          let status = 0;
          stream.on('response', (h) => (status = Number(h[':status'])));
          stream.resume();
          stream.on('end', () => {
            if (status === 200) tally.ok++;
            else tally.failed.push(`HTTP/2 ${i}: status ${status}`);
            resolve();
          });
          stream.on('error', (err) => {
            tally.failed.push(`HTTP/2 ${i}: ${err.message}`);
            resolve();
          });
        });
      };
      while (running) {
        await Promise.all([request(0), request(150)]);
        await sleep(REQUEST_EVERY_MS);
      }
      for (const s of sessions) s.close();
    };

    // An idle TCP tunnel: nothing ends it but the deadline.
    const tcp = await tunnel(PORTS.tcp);
    tcp.on('error', () => undefined);
    const tcpClosed = once(tcp, 'close');

    // A keep-alive connection that goes quiet: the drain ends it as idle, and the client's next request
    // opens a new connection (to the successor).
    const quiet = tunnelAgent();
    await get(quiet, '/quiet');

    const loops = [
      ...Array.from({ length: HTTP1_LOOPS }, (_, i) => http1Loop(i)),
      http1Loop(HTTP1_LOOPS, 400), // slow: a request is in flight when the drain starts
      ...Array.from({ length: HTTP2_LOOPS }, (_, i) => http2Loop(i)),
    ];
    await sleep(500);
    const successor = await waypoints.start(port, drain);
    await sleep(300);
    const before = tally.ok;
    const draining = old.drain('test');
    await sleep(100);
    const readiness = await fetch(`http://127.0.0.1:${old.readinessAddress!.port}/healthz/ready`);
    t.equal(readiness.status, 503, 'readiness answers 503 while draining');
    t.match(await readiness.text(), /draining/);
    const report: DrainReport = await draining;
    t.equal(old.drain('again'), draining, 'drain is idempotent');
    await sleep(500);
    running = false;
    await Promise.all(loops);
    await tcpClosed;
    for (let i = 0; i < 100 && Object.keys(quiet.freeSockets).length > 0; i++) await sleep(20);
    t.same(Object.keys(quiet.freeSockets), [], "the quiet client's connection was closed");
    const openedBefore = tally.opened;
    await get(quiet, '/quiet-again');
    t.equal(tally.opened, openedBefore + 1, 'the quiet client opened a new connection for its next request');
    quiet.destroy();

    t.comment(JSON.stringify({ ...tally, failed: tally.failed.length, report }));
    t.same(tally.failed, [], 'no request failed');
    t.ok(tally.ok > before, 'requests went on during and after the drain');
    t.ok(
      tally.closeAnswers >= HTTP1_LOOPS + 1 - report.openAtStart.detecting,
      'HTTP/1 connections ended after a response saying connection: close',
    );
    t.equal(report.closedAfterResponse, tally.closeAnswers, 'every one the drain marked');
    t.ok(report.http2GoAways >= 1, 'HTTP/2 sessions were sent GOAWAY');
    t.same(
      report.resetAtDeadline,
      { detecting: 0, http1: 0, h2: 0, tcp: 1, upgraded: 0 },
      'only the idle TCP tunnel was left for the deadline',
    );
    t.equal(report.closedIdle, 1, 'the quiet HTTP/1 connection was ended as idle');
    t.equal(report.requestsCut, 0);
    t.ok(
      report.durationMs >= DEADLINE_MS - 50 && report.durationMs < DEADLINE_MS + 1000,
      'ended at the deadline',
    );
    const after = await fetch(`http://127.0.0.1:${successor.readinessAddress!.port}/healthz/ready`);
    t.equal(after.status, 200, 'the successor is ready');
  },
);
