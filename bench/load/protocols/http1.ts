// HTTP/1.1 keep-alive through undici: one undici Client per connection (pipelining 1), on a socket this
// module opened, so "connected" means connected before the clock starts and a broken connection is
// replaced by the runner instead of silently reconnected inside undici.
//
// A GET that fails before any byte of its answer on a connection that carried an earlier request is
// reported retryable: the server (or a proxy draining) closed a keep-alive connection as the request
// crossed, the case RFC 9110 §9.2.2 lets clients retry (the runner does, when asked).
import type net from 'node:net';
import { Client } from 'undici';
import { formatHostPort } from '../../../core/address.js';
import type { Dispatcher } from 'undici';
import type { LoadConnection, LoadErrorKind, LoadProtocol, RequestDone } from '../types.js';
import { dial, type DialOptions } from './dial.js';

export interface HttpRequestOptions extends DialOptions {
  /** Request body bytes: 0 sends GET, more sends POST with that body. */
  readonly payloadBytes: number;
  readonly path: string;
  /** Host header / :authority (default: the target). */
  readonly authority?: string | undefined;
}

class Http1Connection implements LoadConnection {
  readonly depth = 1;
  readonly #client: Client;
  readonly #socket: net.Socket;
  readonly #request: Dispatcher.DispatchOptions;
  /** GET, which may be sent again (POST, with a body, may not). */
  readonly #idempotent: boolean;
  /** Requests handed to this connection so far: past the first, it is a reused connection. */
  #dispatched = 0;
  #usable = true;

  constructor(socket: net.Socket, options: HttpRequestOptions, body: Buffer | null) {
    let handedOver = false;
    this.#socket = socket;
    this.#client = new Client(`http://${authorityOf(options)}`, {
      pipelining: 1,
      // The socket is ours and already connected; a second connect means it broke: fail, do not redial.
      connect: (_opts, callback) => {
        // undici expects the callback after its connector returns (a synchronous call stalls the client).
        if (handedOver) {
          this.#usable = false;
          process.nextTick(callback, new Error('connection closed'), null);
          return;
        }
        handedOver = true;
        process.nextTick(callback, null, socket);
      },
    });
    this.#client.on('disconnect', () => {
      this.#usable = false;
    });
    this.#idempotent = body === null;
    this.#request = {
      method: body === null ? 'GET' : 'POST',
      path: options.path,
      body,
      headers: body === null ? {} : { 'content-type': 'application/octet-stream' },
    };
  }

  get usable(): boolean {
    return this.#usable;
  }

  request(done: RequestDone): void {
    const reused = this.#dispatched++ > 0;
    let status = 0;
    /** The socket's bytes read when this request was written: any more, and its answer had begun. */
    let readAtStart = -1;
    let finished = false;
    const finish = (error?: LoadErrorKind, retryable?: boolean): void => {
      if (finished) return;
      finished = true;
      done(error, retryable);
    };
    this.#client.dispatch(this.#request, {
      // Its presence selects undici's controller-style handler API.
      onRequestStart: () => {
        readAtStart = this.#socket.bytesRead;
      },
      onResponseStart: (_controller, statusCode) => {
        status = statusCode;
      },
      // The body is read and dropped: only its end matters.
      onResponseData: () => undefined,
      onResponseEnd: () => finish(status >= 200 && status < 300 ? undefined : 'status'),
      onResponseError: (_controller, err) => {
        const kind = errorKind(err);
        // Never written (-1: the connection was found gone), or written with no byte of an answer back.
        const unanswered = readAtStart < 0 || this.#socket.bytesRead === readAtStart;
        finish(kind, kind === 'reset' && unanswered && reused && this.#idempotent);
      },
    });
  }

  close(): void {
    this.#usable = false;
    void this.#client.destroy().catch(() => undefined);
  }
}

function errorKind(err: Error): LoadErrorKind {
  const code = (err as { code?: string }).code ?? '';
  return code === 'HPE_INVALID_CONSTANT' || code.startsWith('HPE_') || err.name === 'HTTPParserError'
    ? 'protocol'
    : 'reset';
}

export function authorityOf(options: HttpRequestOptions): string {
  return options.authority ?? formatHostPort(options.target);
}

export function http1Protocol(options: HttpRequestOptions): LoadProtocol {
  const body = options.payloadBytes > 0 ? Buffer.alloc(options.payloadBytes, 0x61) : null;
  return {
    name: 'http1',
    connect: async () => new Http1Connection(await dial(options), options, body),
  };
}
