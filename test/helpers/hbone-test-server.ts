// A real HTTP/2 TLS server on loopback that answers HBONE CONNECTs, for pool tests: mTLS with a
// certificate from the test CA, ALPN h2, CONNECT answered 200 and echoed (or a chosen status). It counts
// what the client did (TCP and TLS connections, streams, PINGs, client identities) and can misbehave on
// demand: advertise few streams, hold answers, send GOAWAY, switch its certificate.
import { EventEmitter } from 'node:events';
import http2, {
  constants as h2c,
  type Http2SecureServer,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { SigningAuthority } from '../../ca/authority.js';
import { issueWorkloadCertificate } from '../../ca/issuer.js';
import { exportPkcs8Pem, generateP256KeyPair, x509 } from '../../core/x509.js';
import { SERVER_SESSION_OPTIONS, SERVER_SETTINGS } from '../../core/hbone/settings.js';
import type { WorkloadCertificate } from '../../core/identity/manager.js';
import { hboneServerTlsOptions, peerIdentity, tlsOptionsFor } from '../../core/hbone/tls.js';
import { formatSpiffeId } from '../../core/spiffe.js';

/** A certificate for `spiffeId` signed by `authority`, shaped as the agent holds its own. */
export async function issueServerCertificate(
  authority: SigningAuthority,
  spiffeId: string,
): Promise<WorkloadCertificate> {
  const keys = await generateP256KeyPair();
  const issued = await issueWorkloadCertificate(
    authority,
    await x509.PublicKey.create(keys.publicKey),
    spiffeId,
    3600,
  );
  return {
    spiffeId,
    privateKeyPem: await exportPkcs8Pem(keys.privateKey),
    certChainPem: issued.certChain.slice(0, -1).join(''),
    rootsPem: issued.certChain.at(-1)!,
    serialNumber: issued.leaf.serialNumber,
    notBefore: issued.leaf.notBefore,
    notAfter: issued.leaf.notAfter,
  };
}

export interface ServerSessionRecord {
  readonly session: ServerHttp2Session;
  /** The client's SPIFFE ID from its certificate. */
  readonly clientIdentity: string | undefined;
  streams: number;
  lastStreamId: number;
  pings: number;
  closed: boolean;
}

export interface HboneTestServerOptions {
  /** SETTINGS_MAX_CONCURRENT_STREAMS to advertise; the agent's server value when unset. */
  readonly maxConcurrentStreams?: number;
}

/** Emits `change` after anything it counts changed; `until` waits on that. */
export class HboneTestServer extends EventEmitter {
  /** The status CONNECTs are answered with; 200 echoes the stream. */
  status = 200;
  /** While true, CONNECTs are not answered until `releaseAnswers()`. */
  holdAnswers = false;
  /** This many next CONNECTs are refused with RST_STREAM(REFUSED_STREAM), as a draining peer may. */
  refuseNext = 0;
  tcpConnections = 0;
  tlsConnections = 0;
  readonly sessions: ServerSessionRecord[] = [];
  readonly #held: ServerHttp2Stream[] = [];
  readonly #sockets = new Set<Socket>();

  private constructor(
    readonly server: Http2SecureServer,
    readonly port: number,
  ) {
    super();
  }

  static async start(
    cert: WorkloadCertificate,
    options: HboneTestServerOptions = {},
  ): Promise<HboneTestServer> {
    const server = http2.createSecureServer({
      ...SERVER_SESSION_OPTIONS,
      ...hboneServerTlsOptions(cert),
      settings: {
        ...SERVER_SETTINGS,
        maxConcurrentStreams: options.maxConcurrentStreams ?? SERVER_SETTINGS.maxConcurrentStreams,
      },
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const s = new HboneTestServer(server, (server.address() as AddressInfo).port);
    server.on('connection', (socket: Socket) => {
      s.#sockets.add(socket);
      socket.once('close', () => s.#sockets.delete(socket));
      s.tcpConnections++;
      s.emit('change');
    });
    server.on('secureConnection', () => {
      s.tlsConnections++;
      s.emit('change');
    });
    server.on('session', (session) => s.#onSession(session));
    server.on('stream', (stream, headers) => s.#onStream(stream, headers));
    return s;
  }

  /** Resolves once `done()` holds, checked now and after every change. */
  until(done: (s: this) => boolean): Promise<void> {
    if (done(this)) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (!done(this)) return;
        this.off('change', check);
        resolve();
      };
      this.on('change', check);
    });
  }

  /** The certificate presented from the next handshake on. */
  presentCertificate(cert: WorkloadCertificate): void {
    this.server.setSecureContext(tlsOptionsFor(cert));
  }

  /** Answers every held CONNECT with the current status. */
  releaseAnswers(): void {
    this.holdAnswers = false;
    for (const stream of this.#held.splice(0)) this.#answer(stream);
  }

  get heldAnswers(): number {
    return this.#held.length;
  }

  /** GOAWAY (NO_ERROR) naming the last stream the session has seen: those still run to their end. */
  goaway(record: ServerSessionRecord): void {
    record.session.goaway(h2c.NGHTTP2_NO_ERROR, record.lastStreamId);
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const r of this.sessions) r.session.destroy();
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }

  #onSession(session: ServerHttp2Session): void {
    const identity = peerIdentity(session.socket as TLSSocket);
    const record: ServerSessionRecord = {
      session,
      clientIdentity: identity && formatSpiffeId(identity),
      streams: 0,
      lastStreamId: 0,
      pings: 0,
      closed: false,
    };
    this.sessions.push(record);
    session.on('error', () => {});
    session.on('ping', () => {
      record.pings++;
      this.emit('change');
      this.emit('ping', record);
    });
    session.once('close', () => {
      record.closed = true;
      this.emit('change');
    });
    this.emit('change');
  }

  #onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    stream.on('error', () => {});
    const record = this.sessions.find((r) => r.session === stream.session);
    if (record) {
      record.streams++;
      record.lastStreamId = Math.max(record.lastStreamId, stream.id ?? 0);
    }
    if (headers[':method'] !== 'CONNECT') {
      stream.respond({ ':status': 405 }, { endStream: true });
    } else if (this.refuseNext > 0) {
      this.refuseNext--;
      stream.close(h2c.NGHTTP2_REFUSED_STREAM);
    } else if (this.holdAnswers) {
      this.#held.push(stream);
    } else {
      this.#answer(stream);
    }
    this.emit('change');
  }

  #answer(stream: ServerHttp2Stream): void {
    if (stream.destroyed) return;
    if (this.status !== 200) {
      stream.respond({ ':status': this.status }, { endStream: true });
      return;
    }
    stream.respond({ ':status': 200 });
    stream.pipe(stream);
  }
}
