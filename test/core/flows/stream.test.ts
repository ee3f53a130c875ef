// `/flows` on a real admin server (TCP and Unix socket): recent events, live events within a second,
// filters applied at the source, bad queries refused, the reader limit, and a client that stops reading
// costs the server a bounded buffer while events keep being recorded.
import t from 'tap';
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { createAdminServer, listenHttp, listenHttpUnix } from '../../../core/http-endpoints.js';
import { FlowRing, type FlowEventInput } from '../../../core/flows/ring.js';
import { parseFlowLine, type FlowEvent } from '../../../core/flows/event.js';

function input(port: number, verdict: FlowEvent['verdict'] = 'ALLOWED'): FlowEventInput {
  return {
    time: Date.now(),
    type: 'close',
    direction: 'inbound',
    path: 'tunnel',
    protocol: 'tcp',
    source: { ip: '10.0.0.1', port: 40000, namespace: 'shop', pod: 'client-0' },
    destination: { ip: '10.0.0.2', port, namespace: 'data', pod: 'db-0' },
    verdict,
    ...(verdict === 'DENIED' && { policy: 'data/deny', rule: 1 }),
    flags: verdict === 'DENIED' ? 'DENY' : '-',
  };
}

async function start(t: { teardown(fn: () => void): void }, ring: FlowRing) {
  const servers: http.Server[] = [];
  const inputs = { configDump: () => ({}), certificates: () => ({}), flows: ring };
  const tcp = createAdminServer(inputs);
  servers.push(tcp);
  const addr = await listenHttp(tcp, { host: '127.0.0.1', port: 0 });
  const dir = mkdtempSync(join(tmpdir(), 'weft-flows-'));
  const unix = createAdminServer(inputs);
  servers.push(unix);
  const socketPath = await listenHttpUnix(unix, join(dir, 'admin.sock'));
  t.teardown(() => {
    for (const s of servers) {
      s.close();
      s.closeAllConnections();
    }
    rmSync(dir, { recursive: true, force: true });
  });
  return { addr, socketPath, tcp };
}

function get(
  options: http.RequestOptions,
): Promise<{ status: number; type: string | undefined; lines: string[]; res: http.IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const req = http.get(options, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          type: res.headers['content-type'],
          lines: body.split('\n').filter((l) => l !== ''),
          res,
        }),
      );
    });
    req.on('error', reject);
  });
}

t.test('recent events, filtered at the source, over TCP and the Unix socket', async (t) => {
  const ring = new FlowRing({ reporter: { kind: 'agent', name: 'node-1' }, capacity: 64 });
  for (let i = 0; i < 10; i++) ring.record(input(8000 + i, i % 4 === 0 ? 'DENIED' : 'ALLOWED'));
  const { addr, socketPath } = await start(t, ring);
  t.equal(statSync(socketPath).mode & 0o777, 0o600, 'the socket is for root only');
  const all = await get({ host: addr.host, port: addr.port, path: '/flows' });
  t.equal(all.status, 200);
  t.equal(all.type, 'application/x-ndjson');
  t.equal(all.lines.length, 10);
  const denied = await get({ socketPath, path: '/flows?verdict=DENIED&last=10' });
  t.same(
    denied.lines.map((l) => (parseFlowLine(l) as FlowEvent).destination.port),
    [8000, 8004, 8008],
  );
  t.match(parseFlowLine(denied.lines[0]!), { policy: 'data/deny', rule: 1, reporter: { name: 'node-1' } });
  const last2 = await get({ socketPath, path: '/flows?last=2' });
  t.equal(last2.lines.length, 2);
  const bad = await get({ socketPath, path: '/flows?verdict=DROPPED' });
  t.equal(bad.status, 400);
  t.match(JSON.parse(bad.lines[0]!), { error: /verdict: "DROPPED"/ });
  const badLast = await get({ socketPath, path: '/flows?last=-1' });
  t.equal(badLast.status, 400);
  const other = await get({ socketPath, path: '/nothing' });
  t.equal(other.status, 404);
  t.match(JSON.parse(other.lines.join('')), { endpoints: ['/config_dump', '/certs', '/flows'] });
});

t.test('a follower sees a denial within a second; readers beyond the limit get 503', async (t) => {
  const ring = new FlowRing({ reporter: { kind: 'agent', name: 'node-1' }, capacity: 64, maxReaders: 1 });
  const { socketPath } = await start(t, ring);
  const req = http.get({ socketPath, path: '/flows?follow=1&verdict=DENIED' });
  const [res] = (await once(req, 'response')) as [http.IncomingMessage];
  t.equal(res.statusCode, 200, 'headers come at once, before any event');
  const refused = await get({ socketPath, path: '/flows?follow=1' });
  t.equal(refused.status, 503);
  t.match(JSON.parse(refused.lines[0]!), { error: /1 flow readers are already connected/ });
  res.setEncoding('utf8');
  const first = once(res, 'data') as Promise<[string]>;
  const sent = Date.now();
  ring.record(input(80, 'ALLOWED'));
  ring.record(input(81, 'DENIED'));
  const [chunk] = await first;
  t.ok(Date.now() - sent < 1000, 'within a second');
  t.match(parseFlowLine(chunk.trim()), { verdict: 'DENIED', destination: { port: 81 } });
  req.destroy();
  await sleep(50);
  t.equal(ring.readerCount, 0, 'a client that leaves frees its reader');
});

t.test(
  'a client that stops reading: bounded buffers, nothing lost for others, told what it missed',
  async (t) => {
    const ring = new FlowRing({ reporter: { kind: 'agent', name: 'node-1' }, capacity: 1024 });
    const { addr, tcp } = await start(t, ring);
    let serverResponse: http.ServerResponse | undefined;
    tcp.prependListener('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
      serverResponse = res;
    });
    // A raw client that sends the request and then never reads.
    const slow = net.connect(addr.port, addr.host);
    slow.setNoDelay(true);
    await once(slow, 'connect');
    slow.write(`GET /flows?follow=1 HTTP/1.1\r\nhost: x\r\n\r\n`);
    slow.pause();
    await sleep(100);
    const events = 200_000;
    let maxBuffered = 0;
    for (let i = 0; i < events; i++) {
      ring.record(input(i % 65536));
      if (i % 1000 === 0) {
        await new Promise((r) => setImmediate(r));
        maxBuffered = Math.max(maxBuffered, serverResponse?.socket?.writableLength ?? 0);
      }
    }
    await sleep(100);
    maxBuffered = Math.max(maxBuffered, serverResponse?.socket?.writableLength ?? 0);
    t.ok(maxBuffered < 64 * 1024, `the server buffered at most ${maxBuffered} bytes for the stalled client`);
    t.equal(ring.size, 1024, 'the ring holds its capacity, no more');
    // A fast reader meanwhile gets everything it asks for.
    const fast = await get({ host: addr.host, port: addr.port, path: '/flows?last=1024' });
    t.equal(fast.lines.length, 1024);
    // The stalled client starts reading: after what its socket held, it is told how many it lost.
    let text = '';
    slow.setEncoding('utf8');
    slow.on('data', (c: string) => (text += c));
    slow.resume();
    // Everything the client gets is an event or a count of lost ones: together, exactly what was recorded.
    let quietSince = Date.now();
    let seen = 0;
    const deadline = Date.now() + 20_000;
    while (Date.now() - quietSince < 500 && Date.now() < deadline) {
      await sleep(50);
      if (text.length !== seen) [seen, quietSince] = [text.length, Date.now()];
    }
    const body = text.slice(text.indexOf('\r\n\r\n') + 4);
    let delivered = 0;
    let lost = 0;
    for (const line of body.split('\n')) {
      // chunked encoding: size lines and blank lines are not JSON
      if (!line.startsWith('{')) continue;
      const parsed = parseFlowLine(line.trim());
      if (parsed.type === 'lost') lost += parsed.count;
      else delivered++;
    }
    t.ok(lost > events / 2, `it was told it lost ${lost} events`);
    t.equal(delivered + lost, events, `delivered ${delivered} + lost ${lost} = every event recorded`);
    slow.destroy();
  },
);
