// What the load runner needs from a protocol: connections that take requests and say when each one's
// response is complete, or how it failed.

/** Why a request failed, as the report counts them. */
export type LoadErrorKind =
  | 'connect' // the connection could not be opened
  | 'reset' // the connection broke with the request in flight
  | 'status' // an answer that is not success (HTTP non-2xx, gRPC non-OK)
  | 'protocol' // an answer that does not parse or does not match the request
  | 'timeout'; // no answer before the run ended (after the drain)

/**
 * Called once per request. `retryable`: it failed before any byte of its answer, in a way a client may
 * send it again on a new connection (RFC 9110 §9.2.2): an idempotent request on a reused HTTP/1.1
 * connection that closed, or an HTTP/2 stream the server refused (REFUSED_STREAM, or above a GOAWAY's
 * last stream). The runner retries it once when told to (`LoadOptions.retryIdempotent`).
 */
export type RequestDone = (error?: LoadErrorKind, retryable?: boolean) => void;

export interface LoadConnection {
  /** Starts one request now, or queues it behind those in flight; `done` is called exactly once. */
  request(done: RequestDone): void;
  /** Requests it can have in flight at once (streams for HTTP/2 and gRPC, 1 otherwise). */
  readonly depth: number;
  /** Whether it can take requests (false once it broke: the runner opens another). */
  readonly usable: boolean;
  /** Closes it; requests still in flight fail with `reset`. */
  close(): void;
}

export interface LoadProtocol {
  /** `http1`, `http2`, `grpc`, `tcp`. */
  readonly name: string;
  /** Opens one connection; rejects when it cannot. */
  connect(): Promise<LoadConnection>;
}
