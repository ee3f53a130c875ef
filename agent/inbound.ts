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
import {
  CONNECTION_WINDOW_BYTES,
  MAX_PENDING_RESET_STREAMS,
  PING_TIMEOUT_MS,
  SERVER_SESSION_OPTIONS,
  HBONE_PORT,
} from '../core/hbone/settings.js';
import { formatSpiffeId, parseSpiffeId, type SpiffeIdentity } from '../core/spiffe.js';
import type { Workload } from '../core/model/workload.js';
import type { TcpMetrics, ResponseFlag } from '../core/telemetry/tcp-metrics.js';
import { errorMessage, WeftError } from '../core/errors.js';
import { Priority, type CertificateManager, type WorkloadCertificate } from '../core/identity/manager.js';
import { hboneServerTlsOptions, peerIdentity } from '../core/hbone/tls.js';
import { survivingAcceptErrors, type ConnectionBudget } from './connection-budget.js';
import type { UpstreamDialer } from './socket.js';
import { tuneSocket } from '../core/tcp.js';
import { LocalWorkloads } from './workloads.js';
import { unmapIpv4 } from '../core/address.js';
import { ConnectionResult } from './connection-result.js';
import { deliver } from './delivery.js';
import { keepAlive } from '../core/hbone/keepalive.js';
import { respondIfOpen } from '../core/hbone/respond.js';
import { claimedSource } from '../core/hbone/claimed-source.js';
import type { InboundAuthorizer, L4Connection, AuthorizationVerdict } from './authorizer.js';
import type { ConnectionRegistry } from './connections.js';
import type { FlowRing } from '../core/flows/ring.js';
import { GATEWAY_NAME_LABEL } from '../core/waypoints.js';

/** The agent's well-known ports (ztunnel's): a CONNECT to one of them would loop through the agent. */
export const DEFAULT_AGENT_PORTS: readonly number[] = [15000, 15001, 15006, 15008, 15020, 15021, 15080];

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
  agentPorts: ReadonlySet<number>,
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
  // By uid: the store replaces the record on every edit, and a pooled tunnel outlives edits.
  if (owner.uid !== presented.uid)
    return {
      kind: 'refuse',
      status: 400,
      flag: 'CONNECT',
      reason: `:authority ${target.ip} is not ${presented.namespace}/${presented.name}, whose identity this tunnel presented`,
    };
  if (agentPorts.has(target.port))
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

/**
 * How a same-node tunnel's setup ends: `ok` once the workload is reached; otherwise `denied` holds the
 * verdict when policy refused it, so the source side can log a denial as it does for a remote 401.
 */
export type SameNodeAnswer = (ok: boolean, denied?: AuthorizationVerdict) => void;

export interface InboundInputs {
  readonly local: LocalWorkloads;
  readonly certificates: CertificateManager;
  readonly authorizer: InboundAuthorizer;
  readonly connections: ConnectionRegistry;
  readonly metrics: TcpMetrics;
  readonly flows: FlowRing;
  readonly log: Logger;
  /** Delivers to the workload, from the original client's address when capture allows it. */
  readonly dial: UpstreamDialer;
  /** Ports the agent listens on (defaults plus what it actually bound): never a CONNECT target. */
  readonly agentPorts: ReadonlySet<number>;
  /** Connection bounds (per agent, per destination pod); unbounded without. */
  readonly budget?: ConnectionBudget;
}

interface PresentedServer {
  readonly server: Http2SecureServer;
  /** The workload this server presents; its sessions belong to it, whatever the store says later. */
  workload: Workload;
  cert: WorkloadCertificate;
}

interface SessionInfo {
  /** The workload whose certificate this session's server presented. */
  readonly workload: Workload;
  readonly workloadId: string;
  readonly peerIdentity: SpiffeIdentity;
  readonly peerId: string;
  readonly peerAddr: string;
  readonly peerIp: string;
  readonly peerPort: number;
  /** `<pod ip>:15008`, the L4 address the peer reached. */
  readonly localAddr: string;
  /** Streams the peer reset while their upstream was still being dialled. */
  resetsWhileDialling: number;
}

export class HboneInbound {
  readonly #in: InboundInputs;
  /** The listening sockets: :15008 on an address, and/or capture's transparent :15008. */
  readonly #listeners: net.Server[] = [];
  /** One TLS/H2 server per local workload, each presenting that workload's certificate. */
  readonly #servers = new Map<string, PresentedServer>();
  readonly #sessions = new WeakMap<Http2Session, SessionInfo>();
  /** Open sessions, so close() can end them rather than leave them to the process exit. */
  readonly #live = new Set<Http2Session>();
  #draining = false;

  constructor(inputs: InboundInputs) {
    this.#in = inputs;
    this.onTcpConnection = this.onTcpConnection.bind(this);
    this.onStream = this.onStream.bind(this);
  }

  async listen(host: string, port = HBONE_PORT): Promise<HostPort> {
    const server = await this.#listen((srv, cb) => srv.listen(port, host, cb));
    return { host, port: (server.address() as net.AddressInfo).port };
  }

  /** Serves an already-bound listening socket (capture's transparent listener). */
  async listenFd(fd: number): Promise<void> {
    await this.#listen((srv, cb) => srv.listen({ fd }, cb));
  }

  async #listen(start: (server: net.Server, cb: () => void) => void): Promise<net.Server> {
    const server = net.createServer({ pauseOnConnect: true }, this.onTcpConnection);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      start(server, () => {
        server.off('error', reject);
        resolve();
      });
    });
    survivingAcceptErrors(server, 'hbone', this.#in.log);
    this.#listeners.push(server);
    return server;
  }

  /**
   * A tunnel whose two ends are on this node: the same admission, policy and delivery as a CONNECT
   * from another node, without TLS (the bytes never leave the node). `socket` is the source pod's
   * captured connection; `answer` learns whether the workload was reached, and the verdict when policy
   * refused it (what a 401 tells a remote source).
   */
  deliverLocal(socket: net.Socket, src: Workload, authority: string, answer: SameNodeAnswer): void {
    const target = parseHboneAuthority(authority);
    const presented = target && this.#in.local.owning(target.ip);
    const srcIp = src.podIps[0] ?? unmapIpv4(socket.remoteAddress);
    const srcId = this.#in.local.spiffeIdOf(src);
    const result = new ConnectionResult(
      this.#in.metrics,
      this.#in.log,
      {
        direction: 'inbound',
        srcAddr: formatHboneAuthority(srcIp, socket.remotePort ?? 0),
        src,
        srcIdentity: srcId,
        dstAddr: authority,
        dstHboneAddr: authority,
        dst: presented,
        dstIdentity: presented && this.#in.local.spiffeIdOf(presented),
        service: undefined,
        clusterDomain: this.#in.local.store.clusterDomain,
        path: 'tunnel',
      },
      this.#in.flows,
    );
    if (!presented) {
      result.failed('CONNECT', `${authority} is not a workload of this node`);
      result.close(0, 0);
      answer(false);
      return;
    }
    const peer: PeerInfo = { ip: srcIp, port: socket.remotePort ?? 0, identity: parseSpiffeId(srcId) };
    const decision = admitInbound(
      this.#in.local,
      this.#in.authorizer,
      this.#in.agentPorts,
      presented,
      { ':method': 'CONNECT', ':authority': authority },
      peer,
    );
    if (decision.kind === 'refuse') {
      recordRefusal(result, decision);
      answer(false, decision.verdict);
      return;
    }
    result.decided({
      verdict: 'allowed',
      policy: decision.verdict.policy,
      rule: decision.verdict.rule,
      reason: decision.verdict.message,
    });
    const entry = this.#in.connections.register(presented, decision.conn, socket, result);
    deliver(
      this.#in.dial,
      { ip: decision.target.ip, port: decision.target.port, sourceIp: srcIp },
      socket,
      entry,
      result,
      {
        connected: () => {
          if (socket.destroyed) return false;
          answer(true);
          return true;
        },
        unreachable: () => answer(false),
      },
      this.#in.log,
    );
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
    this.#in.certificates
      .fetch(this.#in.local.spiffeIdOf(workload), Priority.RealTime)
      .then((cert) => {
        if (socket.destroyed) return;
        tuneSocket(socket);
        this.#serverFor(workload, cert).emit('connection', socket);
        socket.resume();
      })
      .catch((err: unknown) => {
        this.#in.log.warn(
          { 'dst.workload': workload.name, 'dst.namespace': workload.namespace, error: errorMessage(err) },
          'no certificate to present (or no TLS server for it); connection refused',
        );
        socket.destroy();
      });
  }

  #serverFor(workload: Workload, cert: WorkloadCertificate): Http2SecureServer {
    let entry = this.#servers.get(workload.uid);
    if (!entry) {
      const server = http2.createSecureServer({ ...hboneServerTlsOptions(cert), ...SERVER_SESSION_OPTIONS });
      const created: PresentedServer = { server, workload, cert };
      server.on('session', (session: Http2Session) => this.onSession(session, created.workload));
      server.on('stream', this.onStream);
      server.on('tlsClientError', (err, tlsSocket) => {
        this.#in.log.debug(
          { 'src.addr': tlsSocket.remoteAddress, error: err.message },
          'hbone tls handshake failed',
        );
      });
      // No idle timeout: a quiet tunnel is legitimate. A session whose peer is gone ends by keepAlive.
      server.setTimeout(0);
      entry = created;
      this.#servers.set(workload.uid, entry);
    } else if (entry.cert !== cert) {
      entry.server.setSecureContext(hboneServerTlsOptions(cert));
      entry.cert = cert;
    }
    entry.workload = workload;
    return entry.server;
  }

  onSession(session: Http2Session, workload: Workload): void {
    const socket = session.socket as TLSSocket;
    const identity = peerIdentity(socket);
    const peerIp = unmapIpv4(socket.remoteAddress);
    const peerPort = socket.remotePort ?? 0;
    const peerAddr = formatHboneAuthority(peerIp, peerPort);
    if (!identity || identity.trustDomain !== this.#in.local.trustDomain) {
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
    this.#live.add(session);
    session.once('close', () => this.#live.delete(session));
    if (this.#draining) askToMoveOn(session);
    // The stream window comes from SETTINGS; the connection window needs its own update (RFC 9113 §6.9.2).
    session.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
    this.#sessions.set(session, {
      workload,
      workloadId: this.#in.local.spiffeIdOf(workload),
      peerIdentity: identity,
      peerId: formatSpiffeId(identity),
      peerAddr,
      peerIp,
      peerPort,
      localAddr: formatHboneAuthority(unmapIpv4(socket.localAddress), socket.localPort ?? HBONE_PORT),
      resetsWhileDialling: 0,
    });
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
    const local = this.#in.local;
    const source = claimedSource(
      headers.forwarded,
      info.peerId,
      { ip: info.peerIp, port: info.peerPort },
      local.store,
      (w) => local.spiffeIdOf(w),
    );
    const peer: PeerInfo = { ...source, identity: info.peerIdentity };
    const decision = admitInbound(
      this.#in.local,
      this.#in.authorizer,
      this.#in.agentPorts,
      info.workload,
      headers,
      peer,
    );
    const src = this.#in.local.store.workloadByIp(peer.ip);
    const result = new ConnectionResult(
      this.#in.metrics,
      this.#in.log,
      {
        direction: 'inbound',
        srcAddr: formatHboneAuthority(peer.ip, peer.port),
        src,
        srcIdentity: info.peerId,
        dstAddr: info.localAddr,
        dstHboneAddr: typeof headers[':authority'] === 'string' ? headers[':authority'] : undefined,
        dst: info.workload,
        dstIdentity: info.workloadId,
        service: undefined,
        clusterDomain: this.#in.local.store.clusterDomain,
        // A waypoint speaks for its clients with its own identity and address (claimedSource believes no
        // `forwarded` from it), so its pod is the source here.
        path: src?.labels[GATEWAY_NAME_LABEL] !== undefined ? 'waypoint' : 'tunnel',
      },
      this.#in.flows,
    );
    if (decision.kind === 'refuse') {
      respondIfOpen(stream, decision.status);
      recordRefusal(result, decision);
      return;
    }
    result.decided({
      verdict: 'allowed',
      policy: decision.verdict.policy,
      rule: decision.verdict.rule,
      reason: decision.verdict.message,
    });
    const budget = this.#in.budget;
    const dstIp = decision.target.ip;
    if (budget) {
      const refused = budget.acquire('inbound', dstIp);
      if (refused !== undefined) {
        respondIfOpen(stream, 503);
        result.failed('OVERLOAD', `connection bound reached (${refused})`);
        result.close(0, 0);
        return;
      }
      stream.once('close', () => budget.release('inbound', dstIp));
    }
    const entry = this.#in.connections.register(info.workload, decision.conn, stream, result);
    // A stream reset while we dial for it cost a dial for nothing; many at once is a rapid reset.
    let counted = false;
    const onResetWhileDialling = () => {
      if (entry.closed) return; // closed by policy, not by the peer
      counted = true;
      if (++info.resetsWhileDialling > MAX_PENDING_RESET_STREAMS && !session.destroyed) {
        this.#in.log.warn(
          { 'src.addr': info.peerAddr, 'src.identity': info.peerId },
          'hbone peer reset too many streams before they were answered; connection closed',
        );
        session.destroy(
          new WeftError('ERR_TUNNEL', 'too many streams reset before their answer', { peer: info.peerAddr }),
          h2c.NGHTTP2_ENHANCE_YOUR_CALM,
        );
      }
    };
    stream.once('close', onResetWhileDialling);
    deliver(
      this.#in.dial,
      { ip: decision.target.ip, port: decision.target.port, sourceIp: peer.ip },
      stream,
      entry,
      result,
      {
        settled: () => {
          stream.off('close', onResetWhileDialling);
          if (counted) info.resetsWhileDialling--;
        },
        connected: () => respondIfOpen(stream, 200),
        unreachable: () => respondIfOpen(stream, 503),
      },
      this.#in.log,
    );
  }

  /** Drops the TLS servers of workloads this node no longer serves (their keys go with them). */
  prune(): void {
    for (const [uid, entry] of this.#servers) {
      const w = this.#in.local.store.workloadByUid(uid);
      if (w && w.podIps.some((ip) => this.#in.local.owning(ip) === w)) continue;
      entry.server.close();
      this.#servers.delete(uid);
    }
  }

  /**
   * The start of a drain: stops accepting, and asks every peer to open its next tunnels elsewhere
   * (GOAWAY; sessions still being set up get theirs when they are). Open tunnels run on. Resolves once
   * every TCP connection the listeners accepted has ended.
   */
  async drain(): Promise<void> {
    this.#draining = true;
    const ended = this.#listeners.map((l) => new Promise<void>((resolve) => l.close(() => resolve())));
    for (const session of this.#live) askToMoveOn(session);
    await Promise.all(ended);
  }

  /** Live HBONE sessions (connections from peers). */
  get sessionCount(): number {
    return this.#live.size;
  }

  /** Stops accepting and tears down every session (their tunnels are reset). */
  async close(): Promise<void> {
    for (const l of this.#listeners) l.close();
    for (const { server } of this.#servers.values()) server.close();
    this.#servers.clear();
    for (const session of this.#live) session.destroy();
    this.#live.clear();
  }
}

/** Writes a refused CONNECT's access-log line and metrics: the verdict, the deciding policy, the flag. */
function recordRefusal(
  result: ConnectionResult,
  decision: Extract<InboundDecision, { kind: 'refuse' }>,
): void {
  result.decided({
    verdict: 'denied',
    policy: decision.verdict?.policy,
    rule: decision.verdict?.rule,
    reason: decision.reason,
  });
  result.failed(decision.flag, decision.reason);
  result.close(0, 0);
}

function noop(): void {}

/**
 * GOAWAY naming the highest possible stream: the peer opens no new stream here, and none it already sent
 * is refused (RFC 9113 §6.8's graceful shutdown; a lower last-stream-id could refuse a CONNECT that
 * crossed it on the wire and fail that application connection). Node's client then closes the session
 * once its streams end.
 */
function askToMoveOn(session: Http2Session): void {
  if (session.closed || session.destroyed) return;
  try {
    session.goaway(h2c.NGHTTP2_NO_ERROR, 2 ** 31 - 1);
  } catch {
    // already going away
  }
}
