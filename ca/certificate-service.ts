// IstioCertificateService/CreateCertificate: authenticate the caller, decide and authorize the identity,
// check the CSR and TTL, sign. Every refusal is a gRPC status with a reason; nothing here can stop the
// server from serving the next call.
import * as grpc from '@grpc/grpc-js';
import { WeftError, errorMessage, type WeftErrorCode } from '../core/errors.js';
import {
  IMPERSONATED_IDENTITY_KEY,
  structString,
  type CertificateRequest,
  type CertificateResponse,
} from '../core/ca-api.js';
import type { Logger } from '../core/log.js';
import type { SigningAuthority } from './authority.js';
import { describeCaller, type CallerAuthenticator } from './caller.js';
import type { NodeAuthorizer } from './node-authorizer.js';
import { checkWorkloadCsr } from './csr.js';
import { issueWorkloadCertificate } from './issuer.js';

export interface CertificateServiceInputs {
  readonly authority: SigningAuthority;
  readonly authenticator: CallerAuthenticator;
  readonly authorizer: NodeAuthorizer;
  readonly defaultTtlSeconds: number;
  readonly maxTtlSeconds: number;
  readonly log: Logger;
  /** Injected so tests can pin issuance time. */
  readonly now?: () => Date;
}

const STATUS_BY_CODE: Partial<Record<WeftErrorCode, grpc.status>> = {
  ERR_UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
  ERR_PERMISSION_DENIED: grpc.status.PERMISSION_DENIED,
  ERR_CSR_IDENTITY: grpc.status.PERMISSION_DENIED,
  ERR_CSR_INVALID: grpc.status.INVALID_ARGUMENT,
  ERR_TTL_INVALID: grpc.status.INVALID_ARGUMENT,
  ERR_SPIFFE_ID: grpc.status.INVALID_ARGUMENT,
  // The CA could not decide (the Kubernetes API did not answer): the caller should retry, not give up.
  ERR_CA_UNAVAILABLE: grpc.status.UNAVAILABLE,
};

function bearerToken(metadata: grpc.Metadata): string | undefined {
  const [value] = metadata.get('authorization');
  if (typeof value !== 'string') return undefined;
  const m = /^Bearer\s+(\S+)$/i.exec(value.trim());
  return m?.[1];
}

/** The TTL to issue: the default for 0/absent, refused when negative or above the maximum (as istiod). */
export function resolveTtlSeconds(requested: string | number, defaultTtl: number, maxTtl: number): number {
  const ttl = Number(requested);
  if (!Number.isSafeInteger(ttl))
    throw new WeftError('ERR_TTL_INVALID', `validity_duration ${String(requested)} is not an integer`, {
      field: 'validity_duration',
    });
  if (ttl === 0) return defaultTtl;
  if (ttl < 0)
    throw new WeftError('ERR_TTL_INVALID', `validity_duration ${ttl}s is negative`, {
      field: 'validity_duration',
    });
  if (ttl > maxTtl)
    throw new WeftError(
      'ERR_TTL_INVALID',
      `requested TTL ${ttl}s is greater than the max allowed TTL ${maxTtl}s`,
      {
        field: 'validity_duration',
      },
    );
  return ttl;
}

export class CertificateService {
  readonly #in: CertificateServiceInputs;
  readonly #now: () => Date;

  constructor(inputs: CertificateServiceInputs) {
    this.#in = inputs;
    this.#now = inputs.now ?? (() => new Date());
  }

  /** The handler map for grpc.Server#addService. */
  handlers(): grpc.UntypedServiceImplementation {
    return { CreateCertificate: this.#onCreateCertificate.bind(this) };
  }

  /** Decides and signs one request; throws a WeftError on refusal. */
  async createCertificate(
    request: CertificateRequest,
    metadata: grpc.Metadata,
    peer: string,
  ): Promise<CertificateResponse> {
    const caller = await this.#in.authenticator.authenticate(bearerToken(metadata), peer);
    const requested = structString(request.metadata, IMPERSONATED_IDENTITY_KEY) || undefined;
    const spiffeId = await this.#in.authorizer.authorize(caller, requested);
    const ttl = resolveTtlSeconds(
      request.validityDuration,
      this.#in.defaultTtlSeconds,
      this.#in.maxTtlSeconds,
    );
    const publicKey = await checkWorkloadCsr(request.csr ?? '', spiffeId);
    const issued = await issueWorkloadCertificate(this.#in.authority, publicKey, spiffeId, ttl, this.#now());
    this.#in.log.info(
      {
        caller: describeCaller(caller),
        peer,
        identity: spiffeId,
        serial: issued.leaf.serialNumber,
        ttl_s: ttl,
      },
      'certificate issued',
    );
    return { certChain: issued.certChain };
  }

  #onCreateCertificate(
    call: grpc.ServerUnaryCall<CertificateRequest, CertificateResponse>,
    callback: grpc.sendUnaryData<CertificateResponse>,
  ): void {
    const peer = call.getPeer();
    this.createCertificate(call.request, call.metadata, peer).then(
      (response) => callback(null, response),
      (err: unknown) => {
        const code = err instanceof WeftError ? STATUS_BY_CODE[err.code] : undefined;
        const status = code ?? grpc.status.INTERNAL;
        const details = code === undefined ? 'internal error; see the CA log' : errorMessage(err);
        const context = err instanceof WeftError ? err.context : {};
        this.#in.log.warn(
          { peer, ...context, code: grpc.status[status], error: errorMessage(err) },
          'certificate refused',
        );
        callback({ code: status, details });
      },
    );
  }
}
