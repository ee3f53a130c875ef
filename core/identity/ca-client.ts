// The agent's side of the certificate API: one CSR in, a chain out (leaf first, root bundle last).
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { WeftError, errorMessage } from '../errors.js';
import {
  createCaStub,
  IMPERSONATED_IDENTITY_KEY,
  stringStruct,
  type CaServiceStub,
  type CertificateRequest,
} from '../ca-api.js';
import { formatHostPort, type HostPort } from '../address.js';

/** Signs CSRs. Implementations: GrpcCaClient; tests may pass their own. */
export interface CaClient {
  /** Asks for a certificate for `spiffeId`; resolves to the PEM chain, leaf first and root bundle last. */
  createCertificate(csrPem: string, spiffeId: string, ttlSeconds: number): Promise<string[]>;
  close(): void;
}

export interface GrpcCaClientOptions {
  readonly address: HostPort;
  /** PEM bundle that verifies the CA's serving certificate (the mesh root in local mode). */
  readonly rootCertFile: string;
  /** File holding the bearer token; read on every call so a rotated token is picked up (as ztunnel). */
  readonly tokenFile: string;
  /** Name to verify in the CA's certificate when it differs from the dialled host. */
  readonly serverName?: string | undefined;
  readonly timeoutMs?: number;
}

/** A CSR round trip is milliseconds; 10 s covers a CA under load without hanging a waiting connection. */
const DEFAULT_CA_TIMEOUT_MS = 10_000;

/** The channel's reconnect backoff cap: a returning CA is found within this. */
const MAX_RECONNECT_BACKOFF_MS = 5_000;

export class GrpcCaClient implements CaClient {
  readonly #stub: CaServiceStub;
  readonly #tokenFile: string;
  readonly #timeoutMs: number;
  readonly #target: string;

  constructor(options: GrpcCaClientOptions) {
    // The certificate manager already retries with its own backoff; a channel that also backs off (grpc-js:
    // up to 120 s) fails those retries at once with the last error long after the CA is back.
    const channelOptions: grpc.ChannelOptions = { 'grpc.max_reconnect_backoff_ms': MAX_RECONNECT_BACKOFF_MS };
    if (options.serverName) channelOptions['grpc.ssl_target_name_override'] = options.serverName;
    this.#target = formatHostPort(options.address);
    const credentials = grpc.credentials.createSsl(readFileSync(options.rootCertFile));
    this.#stub = createCaStub(this.#target, credentials, channelOptions);
    this.#tokenFile = options.tokenFile;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_CA_TIMEOUT_MS;
  }

  createCertificate(csrPem: string, spiffeId: string, ttlSeconds: number): Promise<string[]> {
    let token: string;
    try {
      token = readFileSync(this.#tokenFile, 'utf8').trim();
    } catch (err) {
      return Promise.reject(
        new WeftError(
          'ERR_CA_UNAVAILABLE',
          `cannot read CA token file ${this.#tokenFile}`,
          { object: this.#tokenFile },
          err,
        ),
      );
    }
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${token}`);
    const request: CertificateRequest = {
      csr: csrPem,
      validityDuration: String(ttlSeconds),
      metadata: stringStruct({ [IMPERSONATED_IDENTITY_KEY]: spiffeId }),
    };
    return new Promise((resolve, reject) => {
      this.#stub.CreateCertificate(
        request,
        metadata,
        { deadline: Date.now() + this.#timeoutMs },
        (err, response) => {
          if (err) {
            const code = err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.DEADLINE_EXCEEDED;
            reject(
              new WeftError(
                code ? 'ERR_CA_UNAVAILABLE' : 'ERR_CA_RESPONSE',
                `CA ${this.#target} refused ${spiffeId}: ${grpc.status[err.code]}: ${err.details || errorMessage(err)}`,
                { object: spiffeId, peer: this.#target },
                err,
              ),
            );
            return;
          }
          resolve(response?.certChain ?? []);
        },
      );
    });
  }

  close(): void {
    this.#stub.close();
  }
}
