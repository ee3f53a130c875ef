// The waypoint (proxy/main.ts startWaypoint) running in-process on loopback for the waypoint targets,
// from a folder of manifests as `weft waypoint run --config file:DIR` reads it. A Service bound to the
// waypoint has an HTTP port (80), an undeclared port (81, protocol sniffed), an HTTP/2 port (82, h2c
// backend) and a port on a lenient HTTP/1 backend (84); an HTTPRoute with filters serves port 80 (the
// other ports go to their own backends); a DENY policy covers /admin; the one backend pod is at
// 127.0.0.1, outside the mesh, so the waypoint reaches it in plaintext. The backends record every request
// the waypoint forwards, and any request they could not parse.
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WorkloadCertificate } from '../../core/identity/manager.js';
import { startWaypoint } from '../../proxy/main.js';
import type { WaypointHandle } from '../../proxy/options.js';
import { LocalCaClient } from '../../test/helpers/local-ca-client.js';
import { SocketSet } from '../loopback.js';
import { issueServerCertificate } from '../../test/helpers/hbone-test-server.js';

export const WAYPOINT_ID = 'spiffe://cluster.local/ns/fuzz/sa/waypoint';
const CLIENT_ID = 'spiffe://cluster.local/ns/fuzz/sa/client';
export const SERVICE_VIP = '10.96.7.7';
export const PORTS = { http: 80, undeclared: 81, h2: 82, lenient: 84 } as const;
/** Paths the harness's AuthorizationPolicy denies: no request for one may ever reach a backend. */
export const DENIED_PREFIX = '/admin';

/** What a backend received, for the checks on what the waypoint forwards. */
export interface ForwardedRequest {
  readonly protocol: 'http1' | 'h2';
  readonly method: string;
  readonly target: string;
  readonly rawHeaders: readonly string[];
}

export class RecordingBackends {
  readonly requests: ForwardedRequest[] = [];
  /** Requests a backend could not parse: the waypoint sent something malformed. */
  readonly malformed: string[] = [];

  /** Takes what was recorded since the last call. */
  take(): { requests: ForwardedRequest[]; malformed: string[] } {
    return { requests: this.requests.splice(0), malformed: this.malformed.splice(0) };
  }
}

function manifests(http1Port: number, h2Port: number, lenientPort: number): string {
  const docs = [
    {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'fuzz', labels: { 'istio.io/use-waypoint': 'waypoint' } },
    },
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: 'waypoint', namespace: 'fuzz' },
      spec: {
        gatewayClassName: 'istio-waypoint',
        listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }],
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'echo', namespace: 'fuzz' },
      spec: {
        clusterIP: SERVICE_VIP,
        selector: { app: 'echo' },
        ports: [
          { name: 'http', port: PORTS.http, targetPort: http1Port },
          { name: 'web', port: PORTS.undeclared, targetPort: http1Port },
          { name: 'http2', port: PORTS.h2, targetPort: h2Port },
          { name: 'http-lenient', port: PORTS.lenient, targetPort: lenientPort },
        ],
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'echo-0', namespace: 'fuzz', uid: 'uid-echo-0', labels: { app: 'echo' } },
      spec: { serviceAccountName: 'echo', nodeName: 'node-1', containers: [{ name: 'echo' }] },
      status: { phase: 'Running', podIP: '127.0.0.1' },
    },
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'echo', namespace: 'fuzz' },
      spec: {
        parentRefs: [{ group: '', kind: 'Service', name: 'echo', port: PORTS.http }],
        rules: [
          {
            matches: [{ path: { type: 'PathPrefix', value: '/rewrite' } }],
            filters: [
              {
                type: 'URLRewrite',
                urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/v2' } },
              },
              {
                type: 'RequestHeaderModifier',
                requestHeaderModifier: { add: [{ name: 'x-added', value: 'y' }] },
              },
            ],
            backendRefs: [{ name: 'echo', port: PORTS.http }],
          },
          {
            matches: [{ path: { type: 'PathPrefix', value: '/redirect' } }],
            filters: [
              { type: 'RequestRedirect', requestRedirect: { hostname: 'example.org', statusCode: 301 } },
            ],
          },
          {
            matches: [{ headers: [{ name: 'x-retry', value: 'yes' }] }],
            backendRefs: [{ name: 'echo', port: PORTS.http }],
            retry: { codes: [503], attempts: 2, backoff: '1ms' },
            timeouts: { request: '2s' },
          },
          { backendRefs: [{ name: 'echo', port: PORTS.http }] },
        ],
      },
    },
    {
      apiVersion: 'security.istio.io/v1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'deny-admin', namespace: 'fuzz' },
      spec: {
        targetRefs: [{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'waypoint' }],
        action: 'DENY',
        rules: [{ to: [{ operation: { paths: ['/admin/*', '/admin'] } }] }],
      },
    },
  ];
  return JSON.stringify({ apiVersion: 'v1', kind: 'List', items: docs });
}

/** What the HTTP/1 backend's parser reports for requests that are not malformed. */
const NOT_MALFORMED = new Set([
  // The connection ended mid-request: the waypoint aborting a request whose body failed, as it must
  // (proxy/http/framing.ts).
  'HPE_INVALID_EOF_STATE',
  // An HTTP/2 preface: on the undeclared port the waypoint speaks the client's protocol upstream, as
  // Istio does for a sniffed port; this backend only speaks HTTP/1.
  'HPE_PAUSED_H2_UPGRADE',
]);

async function startHttp1Backend(record: RecordingBackends): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer((req, res) => {
    record.requests.push({
      protocol: 'http1',
      method: req.method ?? '',
      target: req.url ?? '',
      rawHeaders: req.rawHeaders,
    });
    req.resume();
    req.on('end', () => res.end(`ok ${req.method} ${req.url}`));
    req.on('error', () => res.destroy());
  });
  server.on('clientError', (err: Error & { code?: string }, socket) => {
    // Parser errors only: a reset from the waypoint aborting a request is not a malformed request.
    if (err.code?.startsWith('HPE_') && !NOT_MALFORMED.has(err.code))
      record.malformed.push(`HTTP/1 backend: ${err.code} ${err.message}`);
    socket.destroy();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as net.AddressInfo).port };
}

/** Where a chunked body that starts at `from` ends (after its trailers), or -1 while incomplete. */
function chunkedEnd(buffered: Buffer, from: number): number {
  let at = from;
  for (;;) {
    const lineEnd = buffered.indexOf('\r\n', at);
    if (lineEnd === -1) return -1;
    const size = Number.parseInt(buffered.subarray(at, lineEnd).toString('latin1'), 16);
    if (!Number.isFinite(size)) return buffered.length; // not chunked after all: take it all
    if (size === 0) {
      const trailersEnd = buffered.indexOf('\r\n\r\n', lineEnd);
      if (buffered.subarray(lineEnd, lineEnd + 4).toString('latin1') === '\r\n\r\n') return lineEnd + 4;
      return trailersEnd === -1 ? -1 : trailersEnd + 4;
    }
    at = lineEnd + 2 + size + 2;
    if (at > buffered.length) return -1;
  }
}

/**
 * A lenient HTTP/1.1 backend, as many servers are: it ignores an Upgrade it does not support and keeps
 * answering request heads on the connection, honouring Content-Length and chunked bodies. Whatever bytes
 * the waypoint lets through unparsed therefore show up here as requests.
 */
async function startLenientBackend(
  record: RecordingBackends,
): Promise<{ server: net.Server; port: number; sockets: SocketSet }> {
  const sockets = new SocketSet();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    let buffered = Buffer.alloc(0);
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (let end = buffered.indexOf('\r\n\r\n'); end !== -1; end = buffered.indexOf('\r\n\r\n')) {
        const head = buffered.subarray(0, end).toString('latin1');
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        const bodyEnd = /\r\ntransfer-encoding:[^\r]*chunked/i.test(head)
          ? chunkedEnd(buffered, end + 4)
          : end + 4 + length;
        if (bodyEnd === -1 || buffered.length < bodyEnd) break;
        buffered = buffered.subarray(bodyEnd);
        const [method = '', target = ''] = head.split('\r\n')[0]!.split(' ');
        record.requests.push({ protocol: 'http1', method, target, rawHeaders: [] });
        const body = `ok ${method} ${target}`;
        socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as net.AddressInfo).port, sockets };
}

async function startH2Backend(
  record: RecordingBackends,
): Promise<{ server: http2.Http2Server; port: number; sessions: Set<http2.ServerHttp2Session> }> {
  const sessions = new Set<http2.ServerHttp2Session>();
  const server = http2.createServer();
  server.on(
    'stream',
    (
      stream: http2.ServerHttp2Stream,
      headers: http2.IncomingHttpHeaders,
      _flags: number,
      rawHeaders: string[],
    ) => {
      stream.on('error', () => undefined);
      record.requests.push({
        protocol: 'h2',
        method: String(headers[':method']),
        target: String(headers[':path']),
        rawHeaders,
      });
      stream.resume();
      stream.on('end', () => {
        if (!stream.destroyed) {
          stream.respond({ ':status': 200 });
          stream.end(`ok ${String(headers[':method'])} ${String(headers[':path'])}`);
        }
      });
    },
  );
  server.on('session', (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    session.on('error', (err: Error & { code?: string }) => {
      // Protocol errors only: a connection the waypoint resets is not malformed HTTP/2.
      if (err.code === 'ERR_HTTP2_ERROR' || err.code?.startsWith('ERR_HTTP2_INVALID'))
        record.malformed.push(`HTTP/2 backend: ${err.code} ${err.message}`);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as net.AddressInfo).port, sessions };
}

export interface WaypointHarness {
  readonly hbonePort: number;
  readonly adminPort: number;
  readonly clientCert: WorkloadCertificate;
  readonly backends: RecordingBackends;
  close(): Promise<void>;
}

export async function startWaypointHarness(): Promise<WaypointHarness> {
  const backends = new RecordingBackends();
  const h1 = await startHttp1Backend(backends);
  const h2 = await startH2Backend(backends);
  const lenient = await startLenientBackend(backends);
  const dir = mkdtempSync(join(tmpdir(), 'weft-fuzz-waypoint-'));
  writeFileSync(join(dir, 'world.json'), manifests(h1.port, h2.port, lenient.port));
  const ca = await LocalCaClient.create();
  const loopback = { host: '127.0.0.1', port: 0 };
  let waypoint: WaypointHandle;
  try {
    waypoint = await startWaypoint({
      name: 'waypoint',
      namespace: 'fuzz',
      serviceAccount: 'waypoint',
      nodeName: 'node-1',
      trustDomain: 'cluster.local',
      configSource: `file:${dir}`,
      // Unused: caClient signs in-process.
      ca: {
        address: { host: '127.0.0.1', port: 1 },
        rootCertFile: '/nonexistent',
        tokenFile: '/nonexistent',
      },
      caClient: ca,
      certTtlSeconds: 3600,
      hboneListen: loopback,
      adminListen: loopback,
      metricsListen: null,
      readinessListen: null,
      otlpEndpoint: undefined,
    });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const rejected = waypoint.store.allRejections();
  if (rejected.length > 0)
    throw new Error(`the fuzz waypoint's manifests were rejected: ${JSON.stringify(rejected)}`);
  return {
    hbonePort: waypoint.hboneAddress.port,
    adminPort: waypoint.adminAddress!.port,
    clientCert: await issueServerCertificate(ca.authority, CLIENT_ID),
    backends,
    async close() {
      await waypoint.close();
      h1.server.closeAllConnections();
      h1.server.close();
      h2.server.close();
      for (const session of h2.sessions) session.destroy();
      lenient.server.close();
      lenient.sockets.destroyAll();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
