// The waypoint's HBONE server (:15008): mTLS with the waypoint's own SVID, one HTTP/2 CONNECT stream per
// client connection. A stream is accepted (200) only for a destination bound to this waypoint
// (targets.ts); the tunnel then belongs to the HTTP layer or the TCP forwarder (`onTunnel`).
//
// Invariants:
// - A session is kept only for a peer proving a SPIFFE identity of our trust domain (chain checked by
//   TLS against the mesh roots); its exact identity is left to AuthorizationPolicy.
// - The client's address is the one `forwarded` names only when that pod has the proved identity.
// - Sessions end on an unanswered keepalive PING, as the agent's do (core/hbone/keepalive.ts).
// - Once draining, every session (those set up later too) is asked to move on with a graceful GOAWAY
//   naming the highest stream id, so no CONNECT that crossed it on the wire is refused; a final GOAWAY
//   with the real last stream follows a second later, and the session closes when its tunnels end
//   (./goaway.ts).
import net from 'node:net';
import http2, {
  constants as h2c,
  type Http2SecureServer,
  type Http2Session,
  type IncomingHttpHeaders,
  type ServerHttp2Stream,
} from 'node:http2';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../../core/log.js';
import type { ConfigStore } from '../../core/store.js';
import { unmapIpv4, type HostPort } from '../../core/address.js';
import type { Workload } from '../../core/model/workload.js';
import { formatSpiffeId, type SpiffeIdentity } from '../../core/spiffe.js';
import {
  CONNECTION_WINDOW_BYTES,
  PING_TIMEOUT_MS,
  SERVER_SESSION_OPTIONS,
} from '../../core/hbone/settings.js';
import { formatHboneAuthority } from '../../core/hbone/authority.js';
import { hboneServerTlsOptions, peerIdentity } from '../../core/hbone/tls.js';
import { keepAlive } from '../../core/hbone/keepalive.js';
import { respondIfOpen } from '../../core/hbone/respond.js';
import { claimedSource, type SourceAddress } from '../../core/hbone/claimed-source.js';
import type { WorkloadCertificate } from '../../core/identity/manager.js';
import { tuneSocket } from '../../core/tcp.js';
import { WeftError } from '../../core/errors.js';
import type { NamespacedName } from '../authz/index.js';
import type { ListenerFactory } from '../listeners.js';
import { askToMoveOn } from './goaway.js';
import { resolveTunnelTarget, type TunnelTarget } from './targets.js';

/** One accepted tunnel: who sent it, from where, for what. */
export interface Tunnel {
  readonly stream: ServerHttp2Stream;
  readonly peer: SpiffeIdentity;
  readonly peerId: string;
  /** The original client's address (restored from `forwarded` when believable). */
  readonly source: SourceAddress;
  /** The client pod, when the source address is one. */
  readonly sourceWorkload: Workload | undefined;
  readonly target: TunnelTarget;
  /** The CONNECT's `traceparent`, for the trace of the connection. */
  readonly traceparent: string | undefined;
}

export interface WaypointHboneInputs {
  readonly store: ConfigStore;
  readonly waypoint: NamespacedName;
  readonly trustDomain: string;
  readonly spiffeIdOf: (w: Workload) => string;
  readonly onTunnel: (tunnel: Tunnel) => void;
  readonly log: Logger;
}

interface SessionInfo {
  readonly peer: SpiffeIdentity;
  readonly peerId: string;
  readonly peerAddr: SourceAddress;
}

const noop = (): void => {};

export class WaypointHboneServer {
  readonly #in: WaypointHboneInputs;
  readonly #server: Http2SecureServer;
  readonly #sessions = new WeakMap<Http2Session, SessionInfo>();
  readonly #live = new Set<Http2Session>();
  #listener: net.Server | undefined;
  #draining = false;

  constructor(inputs: WaypointHboneInputs, cert: WorkloadCertificate) {
    this.#in = inputs;
    this.#server = http2.createSecureServer({ ...hboneServerTlsOptions(cert), ...SERVER_SESSION_OPTIONS });
    this.#server.on('session', (s: Http2Session) => this.#onSession(s));
    this.#server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) =>
      this.#onStream(stream, headers),
    );
    this.#server.on('tlsClientError', (err, socket) =>
      inputs.log.debug(
        { 'src.addr': socket.remoteAddress, error: err.message },
        'hbone tls handshake failed',
      ),
    );
    // A quiet tunnel is legitimate; dead peers are found by keepalive.
    this.#server.setTimeout(0);
  }

  /** A renewed certificate: new handshakes present it; live sessions keep theirs. */
  setCertificate(cert: WorkloadCertificate): void {
    this.#server.setSecureContext(hboneServerTlsOptions(cert));
  }

  /** Listens on `addr` through `listeners` (shared with a successor process when it can be). */
  async listen(addr: HostPort, listeners: ListenerFactory): Promise<HostPort> {
    const listener = net.createServer({ allowHalfOpen: false }, (socket) => {
      tuneSocket(socket);
      this.#server.emit('connection', socket);
    });
    this.#listener = listener;
    return listeners.listen(listener, addr);
  }

  /**
   * The start of a drain: stops accepting (connections the kernel queued move to a successor's shared
   * listener, see proxy/listeners.ts) and asks every peer to open its next tunnels elsewhere. Open
   * tunnels run on; each session closes once its tunnels have ended.
   */
  drain(): void {
    if (this.#draining) return;
    this.#draining = true;
    this.#listener?.close();
    for (const s of this.#live) askToMoveOn(s);
  }

  get sessionCount(): number {
    return this.#live.size;
  }

  destroySessions(): void {
    for (const s of this.#live) s.destroy();
    this.#live.clear();
    this.#server.close();
  }

  #onSession(session: Http2Session): void {
    const socket = session.socket as TLSSocket;
    const identity = peerIdentity(socket);
    const peerAddr = { ip: unmapIpv4(socket.remoteAddress), port: socket.remotePort ?? 0 };
    if (!identity || identity.trustDomain !== this.#in.trustDomain) {
      this.#in.log.warn(
        {
          'src.addr': formatHboneAuthority(peerAddr.ip, peerAddr.port),
          'src.identity': identity && formatSpiffeId(identity),
          trust_domain: this.#in.trustDomain,
        },
        'hbone peer refused: no identity in our trust domain',
      );
      session.destroy();
      return;
    }
    session.on('error', noop);
    session.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
    const peerId = formatSpiffeId(identity);
    this.#sessions.set(session, { peer: identity, peerId, peerAddr });
    this.#live.add(session);
    session.once('close', () => this.#live.delete(session));
    if (this.#draining) askToMoveOn(session);
    keepAlive(session, () => {
      this.#in.log.info(
        { 'src.identity': peerId, timeout_ms: PING_TIMEOUT_MS },
        'hbone peer left a keepalive PING unanswered; connection closed',
      );
      session.destroy(new WeftError('ERR_TUNNEL', 'keepalive PING unanswered', { peer: peerId }));
    });
  }

  #onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    const info = stream.session && this.#sessions.get(stream.session);
    if (!info) {
      stream.close(h2c.NGHTTP2_REFUSED_STREAM);
      return;
    }
    stream.on('error', noop);
    if (headers[':method'] !== 'CONNECT') {
      respondIfOpen(stream, 405);
      return;
    }
    const { store, waypoint, log } = this.#in;
    const target = resolveTunnelTarget(store, waypoint, headers[':authority']);
    if (target.kind === 'refuse') {
      log.warn(
        {
          'src.identity': info.peerId,
          authority: headers[':authority'],
          status: target.status,
          reason: target.reason,
        },
        'tunnel refused',
      );
      respondIfOpen(stream, target.status);
      return;
    }
    const source = claimedSource(headers.forwarded, info.peerId, info.peerAddr, store, this.#in.spiffeIdOf);
    const traceparent = headers.traceparent;
    if (!respondIfOpen(stream, 200)) return;
    this.#in.onTunnel({
      stream,
      peer: info.peer,
      peerId: info.peerId,
      source,
      sourceWorkload: store.workloadByIp(source.ip),
      target,
      traceparent: typeof traceparent === 'string' ? traceparent : undefined,
    });
  }
}
