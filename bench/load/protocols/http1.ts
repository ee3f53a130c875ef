// HTTP/1.1 keep-alive through undici: one undici Client per connection (pipelining 1), on a socket this
// module opened, so "connected" means connected before the clock starts and a broken connection is
// replaced by the runner instead of silently reconnected inside undici.
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
  readonly #request: Dispatcher.DispatchOptions;
  #usable = true;

  constructor(socket: net.Socket, options: HttpRequestOptions, body: Buffer | null) {
    let handedOver = false;
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
    let status = 0;
    let finished = false;
    const finish = (error?: LoadErrorKind): void => {
      if (finished) return;
      finished = true;
      done(error);
    };
    this.#client.dispatch(this.#request, {
      // Its presence selects undici's controller-style handler API.
      onRequestStart: () => undefined,
      onResponseStart: (_controller, statusCode) => {
        status = statusCode;
      },
      // The body is read and dropped: only its end matters.
      onResponseData: () => undefined,
      onResponseEnd: () => finish(status >= 200 && status < 300 ? undefined : 'status'),
      onResponseError: (_controller, err) => finish(errorKind(err)),
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
