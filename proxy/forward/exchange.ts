// One try of a request against one endpoint, over HTTP/1.1 (undici) or HTTP/2 (Node's client), with the
// same result shape either way so that retries, timeouts and the response path do not care which.
import { constants as h2c, type IncomingHttpHeaders as H2Headers } from 'node:http2';
import { Readable } from 'node:stream';
import { WeftError, errorMessage } from '../../core/errors.js';
import type { Endpoint } from './connector.js';
import type { UpstreamClients } from './upstream-clients.js';

export type BackendProtocol = 'http1' | 'h2';

export interface UpstreamRequest {
  readonly method: string;
  /** Path and query to send. */
  readonly path: string;
  readonly authority: string;
  /** Lower-case names; no hop-by-hop, no pseudo-headers, no host (`authority` is the host). */
  readonly headers: Readonly<Record<string, string | string[]>>;
  /** A buffer can be sent again (retries, mirrors); a stream only once; null: no body. */
  readonly body: Buffer | Readable | null;
}

export interface UpstreamResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Readable;
  /** The trailers, once `body` has ended (undefined if there were none). */
  trailers(): Readonly<Record<string, string | string[] | undefined>> | undefined;
}

/** Why a try got no response: decides retry eligibility and the response flag. */
export type AttemptFailure = 'connect' | 'reset' | 'aborted';

export class AttemptError extends Error {
  constructor(
    readonly failure: AttemptFailure,
    message: string,
    options?: { cause?: unknown; unprocessed?: boolean },
  ) {
    super(message, options);
    this.unprocessed = options?.unprocessed === true;
  }

  /** The backend certainly did not act on the request (RFC 9113 §8.7): it may be sent again, any method. */
  readonly unprocessed: boolean;
}

/** Node's errors for a stream asked of an HTTP/2 session that is closing or got GOAWAY: never sent. */
const H2_NOT_SENT = new Set(['ERR_HTTP2_GOAWAY_SESSION', 'ERR_HTTP2_INVALID_SESSION']);

function classify(err: unknown, signal: AbortSignal): AttemptError {
  if (err instanceof AttemptError) return err;
  if (signal.aborted) return new AttemptError('aborted', 'aborted', { cause: err });
  // The connector's failures (no tunnel, refused CONNECT, no certificate) are connection failures.
  if (err instanceof WeftError) return new AttemptError('connect', err.message, { cause: err });
  const code = (err as { code?: string }).code;
  if (code !== undefined && H2_NOT_SENT.has(code))
    return new AttemptError('reset', errorMessage(err), { cause: err, unprocessed: true });
  if (code === 'ECONNREFUSED' || code === 'ETIMEDOUT' || code === 'UND_ERR_CONNECT_TIMEOUT')
    return new AttemptError('connect', errorMessage(err), { cause: err });
  return new AttemptError('reset', errorMessage(err), { cause: err });
}

export async function exchange(
  clients: UpstreamClients,
  ep: Endpoint,
  protocol: BackendProtocol,
  request: UpstreamRequest,
  signal: AbortSignal,
): Promise<UpstreamResponse> {
  try {
    return protocol === 'h2'
      ? await exchangeH2(clients, ep, request, signal)
      : await exchangeHttp1(clients, ep, request, signal);
  } catch (err) {
    throw classify(err, signal);
  }
}

async function exchangeHttp1(
  clients: UpstreamClients,
  ep: Endpoint,
  request: UpstreamRequest,
  signal: AbortSignal,
): Promise<UpstreamResponse> {
  const res = await clients.http1(ep).request({
    path: request.path,
    method: request.method,
    headers: { ...request.headers, host: request.authority },
    body: request.body,
    signal,
  });
  return {
    status: res.statusCode,
    headers: res.headers,
    body: res.body,
    trailers: () => (Object.keys(res.trailers).length === 0 ? undefined : res.trailers),
  };
}

async function exchangeH2(
  clients: UpstreamClients,
  ep: Endpoint,
  request: UpstreamRequest,
  signal: AbortSignal,
): Promise<UpstreamResponse> {
  const session = await clients.h2(ep);
  if (signal.aborted) throw new AttemptError('aborted', 'aborted before the request was sent');
  const stream = session.request(
    {
      ...request.headers,
      ':method': request.method,
      ':path': request.path,
      ':authority': request.authority,
      ':scheme': 'http',
    },
    { endStream: request.body === null || (Buffer.isBuffer(request.body) && request.body.length === 0) },
  );
  const onAbort = (): void => {
    if (!stream.destroyed) stream.close(h2c.NGHTTP2_CANCEL);
  };
  signal.addEventListener('abort', onAbort, { once: true });
  stream.once('close', () => signal.removeEventListener('abort', onAbort));
  let trailers: H2Headers | undefined;
  stream.once('trailers', (t: H2Headers) => (trailers = t));
  if (Buffer.isBuffer(request.body)) {
    if (request.body.length > 0) stream.end(request.body);
  } else if (request.body) {
    const body = request.body;
    body.pipe(stream);
    // A client body that fails mid-way must not finish the upstream request as if it were complete.
    body.once('error', () => stream.close(h2c.NGHTTP2_CANCEL));
  }
  const headers = await new Promise<H2Headers>((resolve, reject) => {
    stream.once('response', resolve);
    // A refused stream errors (before 'close') with its code already recorded.
    stream.once('error', (err) =>
      reject(
        stream.rstCode === h2c.NGHTTP2_REFUSED_STREAM
          ? new AttemptError('reset', errorMessage(err), { cause: err, unprocessed: true })
          : err,
      ),
    );
    stream.once('close', () =>
      reject(
        new AttemptError('reset', `stream closed before a response (code ${stream.rstCode ?? 0})`, {
          unprocessed: stream.rstCode === h2c.NGHTTP2_REFUSED_STREAM,
        }),
      ),
    );
  });
  const status = Number(headers[':status']);
  return {
    status,
    headers: headers as Record<string, string | string[] | undefined>,
    body: stream as unknown as Readable,
    trailers: () => trailers as Record<string, string | string[] | undefined> | undefined,
  };
}
