// HBONE client connections, pooled.
//
// Invariants:
// - Connections are keyed by (source identity, expected destination identity, destination address):
//   a connection only ever carries streams of one source workload to one verified peer.
// - A connection carries at most min(POOL_MAX_STREAMS_PER_CONNECTION, the peer's
//   SETTINGS_MAX_CONCURRENT_STREAMS) streams; the next stream opens another connection. A connection is
//   offered only once the peer's SETTINGS arrived, and a stream's slot is taken when it is handed out.
// - At most one dial per key is in flight; streams that need a connection meanwhile wait for it.
// - A connection that received GOAWAY takes no new streams; its open streams run to their end.
// - PING every PING_INTERVAL_MS, and ahead of a new stream when no PING was answered in the last
//   PING_SUSPECT_MS; no answer within PING_TIMEOUT_MS destroys the connection (its streams fail cleanly).
//   A connection without streams for POOL_IDLE_TIMEOUT_MS is closed.
// - A connection whose PING has been unanswered for PING_SUSPECT_MS is unresponsive: dead, or stalled in
//   TCP retransmission backoff after an outage. It takes no new streams until the PING is answered, and a
//   CONNECT still unanswered on it is cancelled and asked again on another connection (none of the
//   application's bytes were sent yet), within the CONNECT's one timeout. Its open streams stay on it.
import http2, {
  constants as h2c,
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type OutgoingHttpHeaders,
} from 'node:http2';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { WeftError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { formatHboneAuthority } from './authority.js';
import {
  ALPN_H2,
  CLIENT_SESSION_OPTIONS,
  CONNECT_TIMEOUT_MS,
  CONNECTION_WINDOW_BYTES,
  PING_INTERVAL_MS,
  PING_SUSPECT_MS,
  PING_TIMEOUT_MS,
  POOL_IDLE_TIMEOUT_MS,
  POOL_MAX_STREAMS_PER_CONNECTION,
} from './settings.js';
import type { WorkloadCertificate } from '../identity/manager.js';
import { expectIdentity, secureContextFor } from './tls.js';
import { tuneSocket } from '../tcp.js';

export interface PoolKey {
  readonly srcIdentity: string;
  readonly dstIdentity: string;
  readonly dstIp: string;
  readonly dstPort: number;
}

export interface PoolTimings {
  readonly pingIntervalMs: number;
  readonly pingTimeoutMs: number;
  /** Only below pingTimeoutMs does a connection turn unresponsive before it is dropped. */
  readonly pingSuspectMs: number;
  readonly idleTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly maxStreamsPerConnection: number;
}

export const DEFAULT_POOL_TIMINGS: PoolTimings = {
  pingIntervalMs: PING_INTERVAL_MS,
  pingTimeoutMs: PING_TIMEOUT_MS,
  pingSuspectMs: PING_SUSPECT_MS,
  idleTimeoutMs: POOL_IDLE_TIMEOUT_MS,
  connectTimeoutMs: CONNECT_TIMEOUT_MS,
  maxStreamsPerConnection: POOL_MAX_STREAMS_PER_CONNECTION,
};

function keyString(k: PoolKey): string {
  return `${k.srcIdentity}|${k.dstIdentity}|${formatHboneAuthority(k.dstIp, k.dstPort)}`;
}

/** A tunnel stream whose CONNECT the peer refused. */
export class TunnelRefusedError extends WeftError {
  constructor(
    readonly status: number,
    peer: string,
    authority: string,
  ) {
    super('ERR_TUNNEL', `${peer} answered ${status} to CONNECT ${authority}`, { peer, object: authority });
  }
}

/** #request's answer when its connection stopped answering PINGs before the CONNECT was answered. */
const MOVE = Symbol('move');
/** How often per pingSuspectMs a waiting CONNECT checks its connection: it moves within 1.25 of it. */
const WATCH_CHECKS = 4;

class PooledConnection {
  active = 0;
  draining = false;
  closed = false;
  readonly #idle: NodeJS.Timeout;
  readonly #ping: NodeJS.Timeout;
  /** Armed while a PING is unanswered: firing means the peer is gone. */
  #pingDeadline: NodeJS.Timeout | undefined = undefined;
  /** When the unanswered PING was sent (performance.now()). */
  #pingSentAt: number | undefined = undefined;
  /** The last proof that the peer reads us: a PING answered, or its SETTINGS (just before construction). */
  #lastAnswerAt = performance.now();

  constructor(
    readonly pool: HboneClientPool,
    readonly keyId: string,
    readonly session: ClientHttp2Session,
    readonly timings: PoolTimings,
  ) {
    this.onPingTimer = this.onPingTimer.bind(this);
    this.onPingTimeout = this.onPingTimeout.bind(this);
    this.onPong = this.onPong.bind(this);
    this.#idle = setTimeout(this.onIdle.bind(this), timings.idleTimeoutMs).unref();
    this.#ping = setInterval(this.onPingTimer, timings.pingIntervalMs).unref();
    session.on('goaway', () => {
      this.draining = true;
    });
    session.on('close', () => this.dispose());
    session.on('error', (err) =>
      pool.log.debug({ pool: keyId, error: err.message }, 'hbone connection error'),
    );
  }

  /** Streams this connection may still take. */
  capacity(): number {
    if (this.draining || this.closed || this.session.destroyed || this.session.closed) return 0;
    if (this.unresponsive()) return 0;
    const peerLimit = this.session.remoteSettings.maxConcurrentStreams ?? Infinity;
    return Math.min(this.timings.maxStreamsPerConnection, peerLimit) - this.active;
  }

  streamOpened(): void {
    this.active++;
  }

  streamClosed(): void {
    this.active--;
    if (this.active === 0) this.#idle.refresh();
  }

  onIdle(): void {
    if (this.active > 0) {
      this.#idle.refresh();
      return;
    }
    this.pool.log.debug({ pool: this.keyId }, 'hbone connection idle; closing');
    this.draining = true;
    this.session.close();
  }

  /** A PING has gone unanswered for pingSuspectMs: the peer is gone, or the link stalled. */
  unresponsive(): boolean {
    return (
      this.#pingSentAt !== undefined && performance.now() - this.#pingSentAt >= this.timings.pingSuspectMs
    );
  }

  /**
   * A PING now, unless one is unanswered or one was answered within pingSuspectMs: called for a new
   * stream and while its CONNECT waits, so a dead or stalled connection shows in a second, not at the
   * next interval tick.
   */
  probe(): void {
    if (performance.now() - this.#lastAnswerAt < this.timings.pingSuspectMs) return;
    this.onPingTimer();
  }

  onPingTimer(): void {
    // ping() throws once the session is destroyed, which precedes its 'close' (and our dispose).
    if (this.#pingDeadline || this.session.destroyed) return;
    // The deadline runs from this PING, not from the next tick: a silent peer is dropped within
    // interval + timeout of its last answer.
    if (this.session.ping(this.onPong)) {
      this.#pingSentAt = performance.now();
      this.#pingDeadline = setTimeout(this.onPingTimeout, this.timings.pingTimeoutMs).unref();
    }
  }

  onPingTimeout(): void {
    this.pool.log.warn(
      { pool: this.keyId, timeout_ms: this.timings.pingTimeoutMs },
      'hbone keepalive timed out; dropping connection',
    );
    this.session.destroy(new WeftError('ERR_TUNNEL', 'keepalive PING unanswered', { peer: this.keyId }));
  }

  onPong(err: Error | null): void {
    if (err) return;
    clearTimeout(this.#pingDeadline);
    this.#pingDeadline = undefined;
    this.#pingSentAt = undefined;
    this.#lastAnswerAt = performance.now();
  }

  dispose(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.#idle);
    clearInterval(this.#ping);
    clearTimeout(this.#pingDeadline);
    this.pool.remove(this);
  }
}

interface KeyEntry {
  readonly connections: PooledConnection[];
  dialing: Promise<PooledConnection> | undefined;
}

export class HboneClientPool {
  readonly log: Logger;
  readonly #timings: PoolTimings;
  readonly #entries = new Map<string, KeyEntry>();

  constructor(log: Logger, timings: Partial<PoolTimings> = {}) {
    this.log = log;
    this.#timings = { ...DEFAULT_POOL_TIMINGS, ...timings };
  }

  /** Open connections for a key (for tests and the admin view). */
  connections(key: PoolKey): readonly { active: number; draining: boolean }[] {
    return this.#entries.get(keyString(key))?.connections ?? [];
  }

  get connectionCount(): number {
    let n = 0;
    for (const e of this.#entries.values()) n += e.connections.length;
    return n;
  }

  /**
   * Opens a CONNECT stream for `authority` over a pooled connection for `key`, presenting `srcCert`.
   * Resolves once the peer answered 200; rejects with TunnelRefusedError for any other status. The answer
   * must come within connectTimeoutMs of the first CONNECT, whichever connections it was asked on.
   */
  async connect(
    key: PoolKey,
    srcCert: WorkloadCertificate,
    authority: string,
    headers: OutgoingHttpHeaders,
  ): Promise<ClientHttp2Stream> {
    let conn = await this.#acquire(key, srcCert);
    const deadline = performance.now() + this.#timings.connectTimeoutMs;
    for (;;) {
      const stream = await this.#request(conn, authority, headers, deadline);
      if (stream !== MOVE) return stream;
      this.log.info(
        { pool: conn.keyId, authority, suspect_ms: this.#timings.pingSuspectMs },
        'hbone connection unresponsive, or it refused the stream; CONNECT asked again on another connection',
      );
      conn = await this.#acquireBefore(key, srcCert, deadline, authority);
    }
  }

  /**
   * One CONNECT on `conn`: its stream, or MOVE when `conn` turned unresponsive before the answer or the
   * peer refused the stream unprocessed.
   */
  #request(
    conn: PooledConnection,
    authority: string,
    headers: OutgoingHttpHeaders,
    deadline: number,
  ): Promise<ClientHttp2Stream | typeof MOVE> {
    let stream: ClientHttp2Stream;
    try {
      stream = conn.session.request(
        { ...headers, ':method': 'CONNECT', ':authority': authority },
        { endStream: false },
      );
    } catch (err) {
      conn.streamClosed();
      throw new WeftError(
        'ERR_TUNNEL',
        `cannot open a stream to ${conn.keyId}: ${errorMessage(err)}`,
        { peer: conn.keyId },
        err,
      );
    }
    conn.probe();
    return new Promise((resolve, reject) => {
      let answered = false;
      const settle = (): void => {
        answered = true;
        clearTimeout(timer);
        clearInterval(watch);
      };
      // The peer answers a CONNECT after its own upstream connect: bounded by the same timeout.
      const timer = setTimeout(
        () => {
          if (answered) return;
          settle();
          stream.close(h2c.NGHTTP2_CANCEL);
          reject(this.#unanswered(authority, conn.keyId));
        },
        Math.max(0, deadline - performance.now()),
      );
      timer.unref();
      // A slow answer from a peer that answers PINGs is its upstream's business: wait. One from a peer
      // that does not is asked again elsewhere. Checked four times per pingSuspectMs: a timer due with
      // the PING's suspicion can fire a hair before performance.now() says it is due.
      const watch = setInterval(() => {
        if (answered) return;
        if (!conn.unresponsive()) return conn.probe();
        settle();
        stream.close(h2c.NGHTTP2_CANCEL);
        resolve(MOVE);
      }, this.#timings.pingSuspectMs / WATCH_CHECKS);
      watch.unref();
      // A refused stream was not processed (RFC 9113 §8.7: a peer draining or at its stream limit): asked
      // again on another connection, as the application sent nothing yet. This one takes no more.
      const refused = (): boolean => {
        if (answered || stream.rstCode !== h2c.NGHTTP2_REFUSED_STREAM) return false;
        settle();
        conn.draining = true;
        resolve(MOVE);
        return true;
      };
      stream.once('close', () => {
        clearTimeout(timer);
        clearInterval(watch);
        conn.streamClosed();
        if (refused()) return;
        if (!answered)
          reject(
            new WeftError(
              'ERR_TUNNEL',
              `tunnel to ${conn.keyId} closed before a response (code ${stream.rstCode})`,
              { peer: conn.keyId },
            ),
          );
      });
      stream.once('error', (err) => {
        if (refused()) return;
        if (!answered)
          reject(
            new WeftError(
              'ERR_TUNNEL',
              `tunnel to ${conn.keyId} failed: ${err.message}`,
              { peer: conn.keyId },
              err,
            ),
          );
      });
      stream.once('response', (h) => {
        if (answered) return;
        settle();
        const status = Number(h[':status']);
        if (status === 200) return resolve(stream);
        stream.close(h2c.NGHTTP2_CANCEL);
        reject(new TunnelRefusedError(status, conn.keyId, authority));
      });
    });
  }

  #unanswered(authority: string, peer: string): WeftError {
    return new WeftError(
      'ERR_TUNNEL',
      `no answer to CONNECT ${authority} from ${peer} within ${this.#timings.connectTimeoutMs} ms`,
      { peer },
    );
  }

  /** #acquire, given up at `deadline`; a connection it still yields later gets its slot back. */
  #acquireBefore(
    key: PoolKey,
    srcCert: WorkloadCertificate,
    deadline: number,
    authority: string,
  ): Promise<PooledConnection> {
    const acquiring = this.#acquire(key, srcCert);
    return new Promise((resolve, reject) => {
      let late = false;
      const timer = setTimeout(
        () => {
          late = true;
          acquiring.then(
            (c) => c.streamClosed(),
            () => undefined,
          );
          reject(this.#unanswered(authority, keyString(key)));
        },
        Math.max(0, deadline - performance.now()),
      );
      timer.unref();
      acquiring.then(
        (c) => {
          if (late) return;
          clearTimeout(timer);
          resolve(c);
        },
        (err: unknown) => {
          if (late) return;
          clearTimeout(timer);
          reject(err as Error);
        },
      );
    });
  }

  /**
   * A connection for `key` with one stream slot already taken for the caller. The slot is taken in the
   * same tick as the capacity check: callers woken together by one dial must not all see the same room.
   */
  async #acquire(key: PoolKey, srcCert: WorkloadCertificate): Promise<PooledConnection> {
    const id = keyString(key);
    while (true) {
      let entry = this.#entries.get(id);
      if (!entry) {
        entry = { connections: [], dialing: undefined };
        this.#entries.set(id, entry);
      }
      for (const c of entry.connections)
        if (c.capacity() > 0) {
          c.streamOpened();
          return c;
        }
      if (entry.dialing) {
        // Someone is dialing this key: share the outcome (its failure is ours), then look again.
        await entry.dialing;
        continue;
      }
      const e = entry;
      e.dialing = this.#dial(key, id, srcCert).then(
        (conn) => {
          e.dialing = undefined;
          e.connections.push(conn);
          this.#entries.set(id, e);
          return conn;
        },
        (err: unknown) => {
          e.dialing = undefined;
          if (e.connections.length === 0 && this.#entries.get(id) === e) this.#entries.delete(id);
          throw err;
        },
      );
      const conn = await e.dialing;
      if (conn.capacity() > 0) {
        conn.streamOpened();
        return conn;
      }
    }
  }

  #dial(key: PoolKey, id: string, srcCert: WorkloadCertificate): Promise<PooledConnection> {
    const peer = formatHboneAuthority(key.dstIp, key.dstPort);
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        reject(
          new WeftError(
            'ERR_TUNNEL',
            `HBONE connect to ${peer} (expecting ${key.dstIdentity}) failed: ${err.message}`,
            { peer },
            err,
          ),
        );
      };
      const socket = tls.connect({
        host: key.dstIp,
        port: key.dstPort,
        secureContext: secureContextFor(srcCert),
        ALPNProtocols: [ALPN_H2],
        rejectUnauthorized: true,
        checkServerIdentity: expectIdentity(key.dstIdentity),
      });
      const timer = setTimeout(
        () =>
          fail(
            new Error(
              `timed out after ${this.#timings.connectTimeoutMs} ms (a NetworkPolicy may block port ${key.dstPort})`,
            ),
          ),
        this.#timings.connectTimeoutMs,
      );
      socket.once('error', fail);
      socket.once('secureConnect', () => {
        if (socket.alpnProtocol !== ALPN_H2)
          return fail(new Error(`peer did not negotiate ALPN h2 (got ${String(socket.alpnProtocol)})`));
        tuneSocket(socket);
        const session = http2.connect(`https://${peer}`, {
          ...CLIENT_SESSION_OPTIONS,
          createConnection: () => socket,
        });
        session.once('error', fail);
        // Ready on the peer's first SETTINGS, not on 'connect': until then remoteSettings holds Node's
        // assumed 100 streams, and a peer allowing fewer would refuse the excess. Buffered bytes are
        // parsed on the next tick, so a listener added now sees even a SETTINGS that came with the
        // handshake (nodejs/node#35981).
        session.once('remoteSettings', () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          socket.off('error', fail);
          session.off('error', fail);
          session.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
          this.log.debug({ pool: id }, 'hbone connection established');
          resolve(new PooledConnection(this, id, session, this.#timings));
        });
      });
    });
  }

  remove(conn: PooledConnection): void {
    const entry = this.#entries.get(conn.keyId);
    if (!entry) return;
    const i = entry.connections.indexOf(conn);
    if (i >= 0) entry.connections.splice(i, 1);
    if (entry.connections.length === 0 && !entry.dialing) this.#entries.delete(conn.keyId);
  }

  /** Sends GOAWAY on every connection and lets open streams finish. */
  close(): void {
    for (const entry of this.#entries.values())
      for (const c of entry.connections) {
        c.draining = true;
        c.session.close();
      }
  }
}
