// The outbound side of a same-node tunnel (capture, both pods on this node): what its access-log line
// and metrics say when the in-process inbound side refuses. A policy denial must read as it does when a
// remote agent answers 401 (verdict denied, flag DENY), not as an allowed connection that failed to
// connect. Loopback sockets stand in for the captured pod connection; the inbound side is a stub.
import t from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import YAML from 'yaml';
import { ConfigStore } from '../../core/store.js';
import { convertManifest } from '../../core/convert/index.js';
import type { ConfigRecord } from '../../core/model/index.js';
import { TcpMetrics } from '../../core/telemetry/tcp-metrics.js';
import { LocalWorkloads } from '../../agent/workloads.js';
import { OutboundProxy } from '../../agent/outbound.js';
import type { SameNodeAnswer } from '../../agent/inbound.js';
import { HboneClientPool } from '../../core/hbone/client-pool.js';
import { CertificateManager } from '../../core/identity/manager.js';
import { deniedByPolicy } from '../../core/authz/verdict.js';
import { FlowRing } from '../../core/flows/ring.js';
import type { FlowEvent } from '../../core/flows/event.js';

const MANIFESTS = `
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { istio.io/dataplane-mode: ambient } }
---
apiVersion: v1
kind: Pod
metadata: { name: client-0, namespace: shop, uid: u-client, labels: { app: client } }
spec: { serviceAccountName: client, nodeName: node-1 }
status: { phase: Running, podIP: 10.1.1.10 }
---
apiVersion: v1
kind: Pod
metadata: { name: server-0, namespace: shop, uid: u-server, labels: { app: server } }
spec: { serviceAccountName: server, nodeName: node-1 }
status: { phase: Running, podIP: 10.1.1.11 }
`;

function load(): ConfigStore {
  const store = new ConfigStore();
  const upserts: ConfigRecord[] = [];
  for (const doc of YAML.parseAllDocuments(MANIFESTS)) {
    const r = convertManifest(doc.toJS());
    if (r.outcome !== 'converted') throw new Error(JSON.stringify(r));
    upserts.push(r.record);
  }
  store.apply({ upserts, deletes: [], rejections: [] });
  return store;
}

type LogLine = Record<string, unknown>;

/**
 * Runs one captured connection from client-0 to server-0:8080 through an OutboundProxy whose same-node
 * inbound answers with `answer`; returns the outbound access-log line and the failed-connections count.
 */
async function sameNode(
  answer: (reply: SameNodeAnswer) => void,
): Promise<{ line: LogLine | undefined; failed: string; flows: FlowEvent[] }> {
  const lines: LogLine[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  const registry = new Registry();
  const local = new LocalWorkloads(load(), 'node-1', 'cluster.local');
  const flows = new FlowRing({ reporter: { kind: 'agent', name: 'node-1' } });
  const outbound = new OutboundProxy({
    local,
    // Neither is reached on the same-node path: no certificate is fetched, no tunnel dialled.
    certificates: new CertificateManager({
      caClient: { createCertificate: () => Promise.reject(new Error('not used')), close() {} },
      trustDomain: 'cluster.local',
      ttlSeconds: 3600,
      log,
    }),
    pool: new HboneClientPool(log),
    metrics: new TcpMetrics(registry),
    flows,
    log,
    dial: () => Promise.reject(new Error('not used')),
    sameNode: (_socket, _src, _authority, reply) => answer(reply),
  });
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const client = net.connect(port, '127.0.0.1');
  client.on('error', () => undefined);
  const [accepted] = (await once(server, 'connection')) as [net.Socket];
  // As capture delivers it: the pod's own address as the peer.
  Object.defineProperty(accepted, 'remoteAddress', { value: '10.1.1.10' });
  // Refused connections are reset (ECONNRESET on the client): wait for the close, whatever came first.
  const closed = new Promise((resolve) => client.once('close', resolve));
  outbound.handle(accepted, { ip: '10.1.1.11', port: 8080 });
  await closed;
  server.close();
  const failed = await registry.getSingleMetricAsString('istio_tcp_connections_failed_total');
  return { line: lines.find((l) => l.msg === 'connection complete'), failed, flows: flows.snapshot() };
}

t.test('a policy denial on the same node is logged as denied, flag DENY, with the policy', async (t) => {
  const { line, failed, flows } = await sameNode((reply) =>
    reply(false, deniedByPolicy('shop/deny-client', 0)),
  );
  t.match(line, {
    direction: 'outbound',
    'src.workload': 'client-0',
    'dst.workload': 'server-0',
    verdict: 'denied',
    policy: 'shop/deny-client',
    rule: 0,
    reason: 'explicitly denied by shop/deny-client',
    response_flags: 'DENY',
  });
  t.match(failed, /response_flags="DENY"[^\n]*\} 1/, 'counted as a DENY failure');
  t.equal(flows.length, 1, 'one flow event: the close of a connection that never opened');
  t.match(flows[0], {
    type: 'close',
    direction: 'outbound',
    path: 'tunnel',
    verdict: 'DENIED',
    policy: 'shop/deny-client',
    rule: 0,
    flags: 'DENY',
    source: {
      ip: '10.1.1.10',
      namespace: 'shop',
      pod: 'client-0',
      identity: 'spiffe://cluster.local/ns/shop/sa/client',
    },
    destination: {
      ip: '10.1.1.11',
      port: 8080,
      pod: 'server-0',
      identity: 'spiffe://cluster.local/ns/shop/sa/server',
    },
    requestBytes: 0,
    responseBytes: 0,
  });
});

t.test('any other refusal stays a connect failure without a verdict', async (t) => {
  const { line, failed, flows } = await sameNode((reply) => reply(false));
  t.match(line, {
    direction: 'outbound',
    response_flags: 'CONNECT',
    error: 'refused by the destination side',
  });
  t.equal(line?.verdict, undefined, 'no verdict: nothing was decided against it');
  t.match(failed, /response_flags="CONNECT"[^\n]*\} 1/);
  t.match(flows, [
    { type: 'close', verdict: 'ERROR', flags: 'CONNECT', reason: 'refused by the destination side' },
  ]);
  t.notOk('policy' in flows[0]!, 'no policy named');
});
