// One error type for the mesh: a stable code plus the object, field or peer involved.

export type WeftErrorCode =
  | 'ERR_CONFIG_INVALID'
  | 'ERR_CSR_INVALID'
  | 'ERR_CSR_IDENTITY'
  | 'ERR_TTL_INVALID'
  | 'ERR_UNAUTHENTICATED'
  | 'ERR_PERMISSION_DENIED'
  | 'ERR_CA_UNAVAILABLE'
  | 'ERR_CA_RESPONSE'
  | 'ERR_CA_STATE'
  | 'ERR_SPIFFE_ID'
  | 'ERR_CERT_UNAVAILABLE'
  | 'ERR_CONNECT'
  | 'ERR_TUNNEL'
  | 'ERR_NO_ENDPOINT'
  | 'ERR_POLICY_DENIED'
  | 'ERR_PEER_IDENTITY'
  | 'ERR_UPSTREAM';

export interface WeftErrorContext {
  /** The object involved, e.g. `Pod default/web-1` or a SPIFFE ID. */
  readonly object?: string;
  /** The field of that object, e.g. `spec.serviceAccountName`. */
  readonly field?: string;
  /** The remote party, e.g. `node node-1` or `127.0.0.1:5432`. */
  readonly peer?: string;
}

export class WeftError extends Error {
  readonly code: WeftErrorCode;
  readonly context: WeftErrorContext;

  constructor(code: WeftErrorCode, message: string, context: WeftErrorContext = {}, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'WeftError';
    this.code = code;
    this.context = context;
  }
}

/** The message of an unknown thrown value, for logs and error chains. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
