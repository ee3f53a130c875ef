// The agent's HBONE server (agent/inbound.ts HboneInbound) running in-process on loopback for the hbone
// target: a test CA, the store holding one enrolled server pod at 127.0.0.1 and a client pod, an echo
// backend standing for the pod's application, and the client certificate the fuzzer presents.
import { once } from 'node:events';
import net from 'node:net';
import { Registry } from 'prom-client';
import { HboneInbound, DEFAULT_AGENT_PORTS } from '../../agent/inbound.js';
import { LocalWorkloads } from '../../agent/workloads.js';
import { PolicyAuthorizer } from '../../agent/authorizer.js';
import { ConnectionRegistry } from '../../agent/connections.js';
import { plainDialer } from '../../agent/socket.js';
import { convertManifest } from '../../core/convert/index.js';
import { FlowRing } from '../../core/flows/ring.js';
import { CertificateManager, type WorkloadCertificate } from '../../core/identity/manager.js';
import { componentLogger } from '../../core/log.js';
import type { ConfigRecord } from '../../core/model/index.js';
import { isAmbientEnrolled, isTerminated, type Workload } from '../../core/model/workload.js';
import { ConfigStore } from '../../core/store.js';
import { TcpMetrics } from '../../core/telemetry/tcp-metrics.js';
import { LocalCaClient } from '../../test/helpers/local-ca-client.js';
import { issueServerCertificate } from '../../test/helpers/hbone-test-server.js';
import { SocketSet, startEchoServer } from '../loopback.js';

export const TRUST_DOMAIN = 'cluster.local';
export const SERVER_ID = 'spiffe://cluster.local/ns/fuzz/sa/server';
export const CLIENT_ID = 'spiffe://cluster.local/ns/fuzz/sa/client';
const NODE = 'node-1';

/**
 * LocalWorkloads that accepts loopback addresses. The agent refuses them (it must never dial itself on a
 * workload's behalf); the harness has only loopback, so its server pod lives at 127.0.0.1. Everything
 * else about which workload owns an address is unchanged.
 */
class LoopbackWorkloads extends LocalWorkloads {
  override owning(ip: string): Workload | undefined {
    const w = this.store.workloadByIp(ip);
    if (!w || w.nodeName !== this.nodeName || isTerminated(w)) return undefined;
    return isAmbientEnrolled(this.store.namespace(w.namespace), w) ? w : undefined;
  }
}

function pod(name: string, serviceAccount: string, node: string, ip: string): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'fuzz', uid: `uid-${name}` },
    spec: { serviceAccountName: serviceAccount, nodeName: node, containers: [{ name: 'app' }] },
    status: { phase: 'Running', podIP: ip },
  };
}

const MANIFESTS = [
  {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: 'fuzz', labels: { 'istio.io/dataplane-mode': 'ambient' } },
  },
  pod('server-0', 'server', NODE, '127.0.0.1'),
  // The client pod's address, which `forwarded: for=` may claim (believed: its identity is the peer's).
  pod('client-0', 'client', 'node-2', '127.0.0.2'),
];

function records(): ConfigRecord[] {
  return MANIFESTS.map((m) => {
    const result = convertManifest(m);
    if (result.outcome !== 'converted')
      throw new Error(`fuzz world manifest not converted: ${JSON.stringify(result)}`);
    return result.record;
  });
}

export interface HboneServerHarness {
  readonly port: number;
  readonly echoPort: number;
  readonly clientCert: WorkloadCertificate;
  /** Server-side TCP connections (each HBONE session holds one). */
  readonly serverSockets: SocketSet;
  /** Connections the agent made to the workload (admitted CONNECTs). */
  readonly echoSockets: SocketSet;
  readonly connections: ConnectionRegistry;
  close(): Promise<void>;
}

export async function startHboneServer(): Promise<HboneServerHarness> {
  const ca = await LocalCaClient.create();
  const store = new ConfigStore();
  store.apply({ upserts: records(), deletes: [], rejections: [] });
  const log = componentLogger('fuzz.hbone');
  const certificates = new CertificateManager({
    caClient: ca,
    trustDomain: TRUST_DOMAIN,
    ttlSeconds: 3600,
    log,
  });
  const authorizer = new PolicyAuthorizer(store);
  const connections = new ConnectionRegistry(store, authorizer, log);
  const inbound = new HboneInbound({
    local: new LoopbackWorkloads(store, NODE, TRUST_DOMAIN),
    certificates,
    authorizer,
    connections,
    metrics: new TcpMetrics(new Registry()),
    flows: new FlowRing({ reporter: { kind: 'agent', name: NODE } }),
    log,
    dial: plainDialer,
    agentPorts: new Set(DEFAULT_AGENT_PORTS),
  });
  // As HboneInbound.listen does (paused until the certificate is ready), but counting the sockets.
  const serverSockets = new SocketSet();
  const listener = net.createServer({ pauseOnConnect: true }, (socket) => {
    serverSockets.add(socket);
    inbound.onTcpConnection(socket);
  });
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const echo = await startEchoServer();
  const clientCert = await issueServerCertificate(ca.authority, CLIENT_ID);
  return {
    port: (listener.address() as net.AddressInfo).port,
    echoPort: echo.port,
    clientCert,
    serverSockets,
    echoSockets: echo.sockets,
    connections,
    async close() {
      listener.close();
      await inbound.close();
      certificates.close();
      echo.server.close();
      // Sessions the server gave up on are otherwise kept until their keepalive ends them (30 s).
      serverSockets.destroyAll();
      echo.sockets.destroyAll();
    },
  };
}
