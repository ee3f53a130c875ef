// A whole waypoint (proxy/main.ts startWaypoint) in this process on loopback, configured from manifests
// in a temporary folder (the `file:` source), with backends on 127.0.0.1 as one pod's address. Clients
// reach it as an agent does: through a pooled HBONE client with a workload certificate from the same
// in-memory CA. For tests of the waypoint's request path that need no kernel features.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { ClientHttp2Stream } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { HboneClientPool, type PoolKey } from '../../core/hbone/client-pool.js';
import { startWaypoint } from '../../proxy/main.js';
import type { WaypointHandle } from '../../proxy/options.js';
import { TunnelSocket } from '../../proxy/tunnel/tunnel-socket.js';
import { issueServerCertificate } from './hbone-test-server.js';
import { LocalCaClient } from './local-ca-client.js';

export const TEST_NAMESPACE = 'wp';
export const WAYPOINT_ID = `spiffe://cluster.local/ns/${TEST_NAMESPACE}/sa/waypoint`;
export const CLIENT_ID = `spiffe://cluster.local/ns/${TEST_NAMESPACE}/sa/client`;
/** The Service `echo`'s cluster IP; its pod `echo-0` is 127.0.0.1. */
export const ECHO_VIP = '10.96.8.8';

export interface ServicePort {
  readonly name: string;
  /** The Service port clients ask for. */
  readonly port: number;
  /** Where the backend listens on 127.0.0.1. */
  readonly targetPort: number;
}

/** Namespace bound to the waypoint, its Gateway, Service `echo` (the given ports) and pod `echo-0`. */
export function waypointWorld(ports: readonly ServicePort[]): string {
  const ns = TEST_NAMESPACE;
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'List',
    items: [
      {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: ns, labels: { 'istio.io/use-waypoint': 'waypoint' } },
      },
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'Gateway',
        metadata: { name: 'waypoint', namespace: ns },
        spec: {
          gatewayClassName: 'istio-waypoint',
          listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }],
        },
      },
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'echo', namespace: ns },
        spec: { clusterIP: ECHO_VIP, selector: { app: 'echo' }, ports },
      },
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'echo-0', namespace: ns, uid: 'uid-echo-0', labels: { app: 'echo' } },
        spec: { serviceAccountName: 'echo', nodeName: 'node-1', containers: [{ name: 'echo' }] },
        status: { phase: 'Running', podIP: '127.0.0.1' },
      },
    ],
  });
}

export interface WaypointFixture {
  /** Starts a waypoint on `hbonePort` (0: any; another's port: beside it, with the addon). */
  start(
    hbonePort?: number,
    drain?: { deadlineMs: number; idleMs: number; sweepMs: number },
  ): Promise<WaypointHandle>;
  /** A CONNECT to `ECHO_VIP:servicePort` through the waypoint on `waypointPort`: its stream, once answered 200. */
  connect(waypointPort: number, servicePort: number): Promise<ClientHttp2Stream>;
  /** The same, as a socket. */
  tunnel(waypointPort: number, servicePort: number): Promise<TunnelSocket>;
  /** A keep-alive HTTP/1.1 agent whose connections are such tunnels; `onOpen` counts them. */
  http1Agent(waypointPort: number, servicePort: number, onOpen?: () => void): http.Agent;
  /** Closes every waypoint started, the client pool and the folder. */
  close(): Promise<void>;
}

export async function waypointFixture(ports: readonly ServicePort[]): Promise<WaypointFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-waypoint-'));
  writeFileSync(join(dir, 'world.json'), waypointWorld(ports));
  const ca = await LocalCaClient.create();
  const clientCert = await issueServerCertificate(ca.authority, CLIENT_ID);
  const pool = new HboneClientPool(pino({ level: 'silent' }));
  const started: WaypointHandle[] = [];

  const connect = (waypointPort: number, servicePort: number): Promise<ClientHttp2Stream> => {
    const key: PoolKey = {
      srcIdentity: CLIENT_ID,
      dstIdentity: WAYPOINT_ID,
      dstIp: '127.0.0.1',
      dstPort: waypointPort,
    };
    return pool.connect(key, clientCert, `${ECHO_VIP}:${servicePort}`, {});
  };
  const tunnel = async (waypointPort: number, servicePort: number): Promise<TunnelSocket> =>
    new TunnelSocket(await connect(waypointPort, servicePort));

  return {
    async start(hbonePort = 0, drain) {
      const waypoint = await startWaypoint({
        name: 'waypoint',
        namespace: TEST_NAMESPACE,
        serviceAccount: 'waypoint',
        nodeName: 'node-1',
        trustDomain: 'cluster.local',
        configSource: `file:${dir}`,
        ca: {
          address: { host: '127.0.0.1', port: 1 },
          rootCertFile: '/nonexistent',
          tokenFile: '/nonexistent',
        },
        caClient: ca,
        certTtlSeconds: 3600,
        hboneListen: { host: '127.0.0.1', port: hbonePort },
        adminListen: null,
        metricsListen: null,
        readinessListen: { host: '127.0.0.1', port: 0 },
        otlpEndpoint: undefined,
        ...(drain === undefined ? {} : { drain }),
      });
      started.push(waypoint);
      return waypoint;
    },
    connect,
    tunnel,
    http1Agent(waypointPort, servicePort, onOpen) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      (agent as unknown as { createConnection: unknown }).createConnection = (
        _options: unknown,
        callback: (err: Error | null, socket?: TunnelSocket) => void,
      ): undefined => {
        onOpen?.();
        tunnel(waypointPort, servicePort).then(
          (s) => {
            // As a TCP socket without allowHalfOpen: the server's FIN closes it (and the agent's pool).
            s.once('end', () => s.end());
            callback(null, s);
          },
          (err: Error) => callback(err),
        );
        return undefined;
      };
      return agent;
    },
    async close() {
      for (const w of started) await w.close();
      pool.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
