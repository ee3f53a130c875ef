// HTTP/2 cleartext (h2c, prior knowledge), through Node's http2: one session per connection, up to
// `streams` requests in flight on it; more wait in order for a free stream.
//
// A GET whose stream the server refused (REFUSED_STREAM, or left above a GOAWAY's last stream id, which
// nghttp2 closes as refused) or that found the session already going away is reported retryable: it was
// not processed (RFC 9113 §8.7).
import http2 from 'node:http2';
import type { LoadConnection, LoadErrorKind, LoadProtocol, RequestDone } from '../types.js';
import { dial } from './dial.js';
import { authorityOf, type HttpRequestOptions } from './http1.js';

export interface Http2Options extends HttpRequestOptions {
  /** Concurrent streams per connection. */
  readonly streams: number;
}

const {
  NGHTTP2_REFUSED_STREAM,
  HTTP2_HEADER_METHOD,
  HTTP2_HEADER_PATH,
  HTTP2_HEADER_STATUS,
  HTTP2_HEADER_AUTHORITY,
  HTTP2_HEADER_SCHEME,
  HTTP2_HEADER_CONTENT_LENGTH,
} = http2.constants;

class Http2Connection implements LoadConnection {
  readonly depth: number;
  readonly #session: http2.ClientHttp2Session;
  readonly #headers: http2.OutgoingHttpHeaders;
  readonly #body: Buffer | null;
  /** GET, which may be sent again. */
  readonly #idempotent: boolean;
  readonly #queue: RequestDone[] = [];
  readonly #inFlight = new Set<RequestDone>();
  #usable = true;

  constructor(session: http2.ClientHttp2Session, options: Http2Options, body: Buffer | null) {
    this.depth = options.streams;
    this.#session = session;
    this.#body = body;
    this.#idempotent = body === null;
    this.#headers = {
      [HTTP2_HEADER_METHOD]: body === null ? 'GET' : 'POST',
      [HTTP2_HEADER_PATH]: options.path,
      [HTTP2_HEADER_SCHEME]: 'http',
      [HTTP2_HEADER_AUTHORITY]: authorityOf(options),
    };
    session.on('error', () => undefined);
    session.on('close', () => this.#broken());
    session.on('goaway', () => {
      this.#usable = false;
    });
  }

  get usable(): boolean {
    return this.#usable;
  }

  request(done: RequestDone): void {
    if (!this.#usable) return done('reset', this.#idempotent);
    if (this.#inFlight.size >= this.depth) {
      this.#queue.push(done);
      return;
    }
    this.#start(done);
  }

  #start(done: RequestDone): void {
    this.#inFlight.add(done);
    let status = 0;
    let finished = false;
    const finish = (error?: LoadErrorKind, retryable?: boolean): void => {
      if (finished) return;
      finished = true;
      this.#inFlight.delete(done);
      done(error, retryable);
      const next = this.#queue.shift();
      if (next !== undefined) this.request(next);
    };
    let stream: http2.ClientHttp2Stream;
    try {
      stream = this.#session.request(this.#headers, { endStream: this.#body === null });
    } catch {
      // Going away (GOAWAY received) or closed: this request was never sent.
      this.#usable = false;
      return finish('reset', this.#idempotent);
    }
    let expectedBytes = -1;
    let bytes = 0;
    stream.on('response', (headers) => {
      status = Number(headers[HTTP2_HEADER_STATUS]);
      if (headers[HTTP2_HEADER_CONTENT_LENGTH] !== undefined)
        expectedBytes = Number(headers[HTTP2_HEADER_CONTENT_LENGTH]);
    });
    stream.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    // Node ends the stream on RST_STREAM too, without an error for NO_ERROR and CANCEL: an answer that
    // ends without its headers, by a reset, or short of its content-length was cut short (`reset`).
    const cutShort = (): boolean =>
      status === 0 || (stream.rstCode ?? 0) !== 0 || (expectedBytes >= 0 && bytes !== expectedBytes);
    const refused = (): boolean =>
      status === 0 && this.#idempotent && stream.rstCode === NGHTTP2_REFUSED_STREAM;
    stream.on('end', () =>
      finish(cutShort() ? 'reset' : status >= 200 && status < 300 ? undefined : 'status', refused()),
    );
    stream.on('error', () => finish('reset', refused()));
    stream.on('close', () => finish('reset', refused()));
    if (this.#body !== null) stream.end(this.#body);
  }

  close(): void {
    this.#session.destroy();
    this.#broken();
  }

  #broken(): void {
    this.#usable = false;
    // Queued here, never sent.
    for (const done of this.#queue.splice(0)) done('reset', this.#idempotent);
  }
}

export function http2Protocol(options: Http2Options): LoadProtocol {
  const body = options.payloadBytes > 0 ? Buffer.alloc(options.payloadBytes, 0x61) : null;
  return {
    name: 'http2',
    connect: async () => {
      const socket = await dial(options);
      const session = http2.connect(`http://${authorityOf(options)}`, { createConnection: () => socket });
      await new Promise<void>((resolve, reject) => {
        session.once('connect', () => resolve());
        session.once('error', reject);
      });
      return new Http2Connection(session, options, body);
    },
  };
}
