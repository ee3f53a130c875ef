// The HBONE server (:15008): mTLS with the destination workload's SVID, then one HTTP/2 CONNECT stream
// per tunnelled TCP connection, checked and delivered to the workload.
//
// Invariants:
// - A TLS handshake happens only on an address owned by an enrolled, live workload of this node, and
//   presents exactly that workload's certificate (chosen by the local address, as there is no SNI).
// - A CONNECT is delivered only to the workload whose certificate was presented, on a port that is not
//   one of the agent's own; anything else is refused before any dial (400/503).
// - 200 is sent only after the upstream connection succeeded; denial is 401, upstream failure 503.
// - Every admitted stream is registered before it is answered, so a policy change between the check and
//   the registration cannot be missed (the registry re-checks all on each config change).
// - A session ends, with its streams and their upstream connections, when its peer leaves a PING
//   unanswered for PING_TIMEOUT_MS or resets more than MAX_PENDING_RESET_STREAMS streams still being
//   dialled; nothing else on the server bounds a session nghttp2 has already given up on.
import net from 'node:net';
import http2, {
  constants as h2c,
  type Http2SecureServer,
  type Http2Session,
  type ServerHttp2Stream,
  type IncomingHttpHeaders,
} from 'node:http2';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../core/log.js';
import type { HostPort } from '../core/address.js';
import { parseHboneAuthority, formatHboneAuthority, type HboneTarget } from '../core/hbone/authority.js';
import { forwardedFor } from '../core/hbone/headers.js';
import {
  CONNECT_TIMEOUT_MS,
  CONNECTION_WINDOW_BYTES,
  MAX_PENDING_RESET_STREAMS,
  PING_INTERVAL_MS,
  PING_TIMEOUT_MS,
  SERVER_SESSION_OPTIONS,
  HBONE_PORT,
} from '../core/hbone/settings.js';
import { formatSpiffeId, type SpiffeIdentity } from '../core/spiffe.js';
import type { Workload } from '../core/model/workload.js';
import type { TcpMetrics, ResponseFlag } from '../core/telemetry/tcp-metrics.js';
import { errorMessage, WeftError } from '../core/errors.js';
import { Priority, type CertificateManager, type WorkloadCertificate } from './identity/manager.js';
import { hboneServerTlsOptions, peerIdentity } from './tls.js';
import { tuneSocket, type UpstreamDialer } from './socket.js';
import { LocalWorkloads, unmapIpv4 } from './workloads.js';
import { ConnectionResult } from './connection-result.js';
import { pump } from './copy.js';
import type { InboundAuthorizer, L4Connection, AuthorizationVerdict } from './authorizer.js';
import type { ConnectionRegistry } from './connections.js';

/** Ports the agent itself listens on: a CONNECT to one of them would loop through the agent. */
export const AGENT_PORTS: ReadonlySet<number> = new Set([15000, 15001, 15006, 15008, 15020, 15021, 15080]);

export interface PeerInfo {
  readonly ip: string;
  readonly port: number;
  readonly identity: SpiffeIdentity | undefined;
}

export type InboundDecision =
  | {
      readonly kind: 'admit';
      readonly target: HboneTarget;
      readonly verdict: AuthorizationVerdict;
      readonly conn: L4Connection;
    }
  | {
      readonly kind: 'refuse';
      readonly status: 400 | 401 | 503;
      readonly flag: ResponseFlag;
      readonly reason: string;
      readonly verdict?: AuthorizationVerdict;
    };

/**
 * Decides one CONNECT without I/O. `presented` is the workload whose certificate the peer saw;
 * `peer` the authenticated source (identity from its certificate, address from `forwarded` or the socket).
 */
export function admitInbound(
  local: LocalWorkloads,
  authorizer: InboundAuthorizer,
  presented: Workload,
  headers: IncomingHttpHeaders,
  peer: PeerInfo,
): InboundDecision {
  if (headers[':method'] !== 'CONNECT')
    return {
      kind: 'refuse',
      status: 400,
      flag: 'CONNECT',
      reason: `method ${String(headers[':method'])} is not CONNECT`,
    };
  const target = parseHboneAuthority(headers[':authority']);
  if (!target)
    return {
      kind: 'refuse',
      status: 400,
      flag: 'CONNECT',
      reason: `bad :authority ${JSON.stringify(headers[':authority'])}`,
    };
  const owner = local.owning(target.ip);
  if (!owner)
    return {
      kind: 'refuse',
      status: 503,
      flag: 'CONNECT',
      reason: `${target.ip} is not a workload of this node`,
    };
  if (owner !== presented)
    return {
      kind: 'refuse',
      status: 400,
      flag: 'CONNECT',
      reason: `:authority ${target.ip} is not ${presented.namespace}/${presented.name}, whose identity this tunnel presented`,
    };
  if (AGENT_PORTS.has(target.port))
    return { kind: 'refuse', status: 503, flag: 'CONNECT', reason: `port ${target.port} is the agent's own` };
  const conn: L4Connection = {
    srcIp: peer.ip,
    srcIdentity: peer.identity,
    dstIp: target.ip,
    dstPort: target.port,
  };
  const verdict = authorizer.authorize(owner, conn);
  if (!verdict.allowed)
    return { kind: 'refuse', status: 401, flag: 'DENY', reason: verdict.message, verdict };
  return { kind: 'admit', target, verdict, conn };
}

export interface InboundInputs {
  readonly local: LocalWorkloads;
  readonly certificates: CertificateManager;
  readonly authorizer: InboundAuthorizer;
  readonly connections: ConnectionRegistry;
  readonly metrics: TcpMetrics;
  readonly log: Logger;
  /** Delivers to the workload, from the original client's address when capture allows it. */
  readonly dial: UpstreamDialer;
}

interface PresentedServer {
  readonly server: Http2SecureServer;
  cert: WorkloadCertificate;
}

interface SessionInfo {
  readonly workload: Workload;
  readonly peerIdentity: SpiffeIdentity;
  readonly peerAddr: string;
  /** Streams the peer reset while their upstream was still being dialled. */
  resetsWhileDialling: number;
}

export class HboneInbound {
  readonly #in: InboundInputs;
  readonly #tcp: net.Server;
  /** One TLS/H2 server per local workload, each presenting that workload's certificate. */
  readonly #servers = new Map<string, PresentedServer>();
  readonly #sessions = new WeakMap<Http2Session, SessionInfo>();

  constructor(inputs: InboundInputs) {
    this.#in = inputs;
    this.onTcpConnection = this.onTcpConnection.bind(this);
    this.onSession = this.onSession.bind(this);
    this.onStream = this.onStream.bind(this);
    this.#tcp = net.createServer({ pauseOnConnect: true }, this.onTcpConnection);
  }

  async listen(host: string, port = HBONE_PORT): Promise<HostPort> {
    await new Promise<void>((resolve, reject) => {
      this.#tcp.once('error', reject);
      this.#tcp.listen(port, host, () => {
        this.#tcp.off('error', reject);
        resolve();
      });
    });
    const addr = this.#tcp.address() as net.AddressInfo;
    return { host, port: addr.port };
  }

  onTcpConnection(socket: net.Socket): void {
    const localIp = unmapIpv4(socket.localAddress);
    const workload = this.#in.local.owning(localIp);
    if (!workload) {
      this.#in.log.debug(
        { 'dst.addr': `${localIp}:${socket.localPort}`, 'src.addr': socket.remoteAddress },
        'hbone connection to an address no local workload owns',
      );
      socket.destroy();
      return;
    }
    socket.on('error', noop);
    this.#in.certificates.fetch(this.#in.local.spiffeIdOf(workload), Priority.RealTime).then(
      (cert) => {
        if (socket.destroyed) return;
        tuneSocket(socket);
        this.#serverFor(workload, cert).emit('connection', socket);
        socket.resume();
      },
      (err: unknown) => {
        this.#in.log.warn(
          { 'dst.workload': workload.name, 'dst.namespace': workload.namespace, error: errorMessage(err) },
          'no certificate to present; connection refused',
        );
        socket.destroy();
      },
    );
  }

  #serverFor(workload: Workload, cert: WorkloadCertificate): Http2SecureServer {
    let entry = this.#servers.get(workload.uid);
    if (!entry) {
      const server = http2.createSecureServer({ ...hboneServerTlsOptions(cert), ...SERVER_SESSION_OPTIONS });
      server.on('session', this.onSession);
      server.on('stream', this.onStream);
      server.on('tlsClientError', (err, tlsSocket) => {
        this.#in.log.debug(
          { 'src.addr': tlsSocket.remoteAddress, error: err.message },
          'hbone tls handshake failed',
        );
      });
      // No idle timeout: a quiet tunnel is legitimate. A session whose peer is gone ends by keepAlive.
      server.setTimeout(0);
      entry = { server, cert };
      this.#servers.set(workload.uid, entry);
    } else if (entry.cert !== cert) {
      entry.server.setSecureContext(hboneServerTlsOptions(cert));
      entry.cert = cert;
    }
    return entry.server;
  }

  onSession(session: Http2Session): void {
    const socket = session.socket as TLSSocket;
    const workload = this.#in.local.owning(unmapIpv4(socket.localAddress));
    const identity = peerIdentity(socket);
    const peerAddr = `${unmapIpv4(socket.remoteAddress)}:${socket.remotePort ?? 0}`;
    if (!workload || !identity || identity.trustDomain !== this.#in.local.trustDomain) {
      this.#in.log.warn(
        {
          'src.addr': peerAddr,
          'src.identity': identity && formatSpiffeId(identity),
          trust_domain: this.#in.local.trustDomain,
        },
        'hbone peer refused: no identity in our trust domain',
      );
      session.destroy();
      return;
    }
    session.on('error', noop);
    // The stream window comes from SETTINGS; the connection window needs its own update (RFC 9113 §6.9.2).
    session.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
    this.#sessions.set(session, { workload, peerIdentity: identity, peerAddr, resetsWhileDialling: 0 });
    keepAlive(session, () => {
      this.#in.log.info(
        { 'src.addr': peerAddr, 'src.identity': formatSpiffeId(identity), timeout_ms: PING_TIMEOUT_MS },
        'hbone peer left a keepalive PING unanswered; connection closed',
      );
      session.destroy(new WeftError('ERR_TUNNEL', 'keepalive PING unanswered', { peer: peerAddr }));
    });
  }

  onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    // Captured now: a destroyed stream no longer knows its session.
    const session = stream.session!;
    const info = this.#sessions.get(session);
    if (!info) {
      stream.close(h2c.NGHTTP2_REFUSED_STREAM);
      return;
    }
    stream.on('error', noop);
    const fwd = forwardedFor(headers.forwarded as string | undefined);
    const fwdTarget = fwd === undefined ? undefined : parseHboneAuthority(fwd);
    const [socketIp, socketPort] = splitAddr(info.peerAddr);
    const peer: PeerInfo = {
      // The source agent states the original client address; it is trusted because the peer proved a mesh identity.
      ip: fwdTarget?.ip ?? socketIp,
      port: fwdTarget?.port ?? socketPort,
      identity: info.peerIdentity,
    };
    const decision = admitInbound(this.#in.local, this.#in.authorizer, info.workload, headers, peer);
    const srcWorkload = this.#in.local.store.workloadByIp(peer.ip);
    const result = new ConnectionResult(this.#in.metrics, this.#in.log, {
      direction: 'inbound',
      srcAddr: formatHboneAuthority(peer.ip, peer.port),
      src: srcWorkload,
      srcIdentity: formatSpiffeId(info.peerIdentity),
      dstAddr: formatHboneAuthority(
        unmapIpv4((stream.session!.socket as TLSSocket).localAddress),
        HBONE_PORT,
      ),
      dstHboneAddr: typeof headers[':authority'] === 'string' ? headers[':authority'] : undefined,
      dst: info.workload,
      dstIdentity: this.#in.local.spiffeIdOf(info.workload),
      service: undefined,
      clusterDomain: this.#in.local.store.clusterDomain,
    });
    if (decision.kind === 'refuse') {
      result.decided({
        verdict: 'denied',
        policy: decision.verdict?.policy,
        rule: decision.verdict?.rule,
        reason: decision.reason,
      });
      result.failed(decision.flag, decision.reason);
      stream.respond({ ':status': decision.status }, { endStream: true });
      result.close(0, 0);
      return;
    }
    result.decided({
      verdict: 'allowed',
      policy: decision.verdict.policy,
      rule: decision.verdict.rule,
      reason: decision.verdict.message,
    });
    const entry = this.#in.connections.register(info.workload, decision.conn, stream);
    // A stream reset while we dial for it cost a dial for nothing; many at once is a rapid reset.
    let counted = false;
    const onResetWhileDialling = () => {
      if (entry.closed) return; // closed by policy, not by the peer
      counted = true;
      if (++info.resetsWhileDialling > MAX_PENDING_RESET_STREAMS && !session.destroyed) {
        this.#in.log.warn(
          { 'src.addr': info.peerAddr, 'src.identity': formatSpiffeId(info.peerIdentity) },
          'hbone peer reset too many streams before they were answered; connection closed',
        );
        session.destroy(
          new WeftError('ERR_TUNNEL', 'too many streams reset before their answer', { peer: info.peerAddr }),
          h2c.NGHTTP2_ENHANCE_YOUR_CALM,
        );
      }
    };
    stream.once('close', onResetWhileDialling);
    const dialled = () => {
      stream.off('close', onResetWhileDialling);
      if (counted) info.resetsWhileDialling--;
    };
    this.#in.dial(decision.target.ip, decision.target.port, peer.ip, CONNECT_TIMEOUT_MS).then(
      (upstream) => {
        dialled();
        if (stream.destroyed || entry.closed) {
          upstream.destroy();
          entry.release();
          result.close(0, 0);
          return;
        }
        entry.attach(upstream);
        stream.respond({ ':status': 200 });
        result.opened();
        pump(stream, upstream, (err) => {
          entry.release();
          if (err) result.failed('-', errorMessage(err));
          // From the workload's side: it sent what we wrote to the stream, it received what we read.
          result.close(upstream.bytesRead, upstream.bytesWritten);
        });
      },
      (err: unknown) => {
        dialled();
        entry.release();
        result.failed('CONNECT', errorMessage(err));
        if (!stream.destroyed) stream.respond({ ':status': 503 }, { endStream: true });
        result.close(0, 0);
      },
    );
  }

  async close(): Promise<void> {
    this.#tcp.close();
    for (const { server } of this.#servers.values()) server.close();
    this.#servers.clear();
  }
}

/**
 * Server-side keepalive, as ztunnel's serve_connection: a PING every PING_INTERVAL_MS; `onDead` when one
 * is still unanswered after PING_TIMEOUT_MS. Besides dead peers, this is what ends a session nghttp2 has
 * terminated (its GOAWAY for a protocol error, or for rapid resets): Node then stops reading the socket
 * without closing it or telling JS, so not even the peer's FIN is seen, and the session, its streams and
 * their upstream connections would otherwise stay forever.
 */
function keepAlive(session: Http2Session, onDead: () => void): void {
  let deadline: NodeJS.Timeout | undefined;
  const onPong = (err: Error | null) => {
    if (err) return; // cancelled: the session is closing
    clearTimeout(deadline);
    deadline = undefined;
  };
  const timer = setInterval(() => {
    // ping() throws once the session is destroyed, which precedes its 'close'.
    if (deadline || session.destroyed) return;
    if (session.ping(onPong)) deadline = setTimeout(onDead, PING_TIMEOUT_MS).unref();
  }, PING_INTERVAL_MS).unref();
  session.once('close', () => {
    clearInterval(timer);
    clearTimeout(deadline);
  });
}

function splitAddr(addr: string): [string, number] {
  const i = addr.lastIndexOf(':');
  return [addr.slice(0, i), Number(addr.slice(i + 1))];
}

function noop(): void {}
